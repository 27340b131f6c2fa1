-- The admin console (/ui/) finds keys among millions by owner or name across tenants, lists
-- the revoked ones, counts each tenant's keys by state and shows one key's audit trail.
-- Without these, each of those read the whole keys (or audit_events) table: seconds at ten
-- million keys. Paging stays newest first (seq descending), so each search index ends in seq.
-- Measured with EXPLAIN QUERY PLAN and timings on a million keys (README, "The admin console").
CREATE INDEX keys_by_owner_any_tenant ON keys (owner, seq);
CREATE INDEX keys_by_name ON keys (name, seq);
-- Revoked keys are few: a small partial index, walked newest first.
CREATE INDEX keys_revoked ON keys (seq) WHERE revoked_at IS NOT NULL;
-- The tenants page counts active, expiring and revoked keys from the index alone.
CREATE INDEX keys_by_tenant_state ON keys (tenant_id, revoked_at, expires_at);
-- A bulk revocation's preview counts the unrevoked certificates of the keys in scope.
CREATE INDEX certificates_live ON certificates (key_id, not_after) WHERE revoked_at IS NULL;
CREATE INDEX audit_events_by_target ON audit_events (target, id);
