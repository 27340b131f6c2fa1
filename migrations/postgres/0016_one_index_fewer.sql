-- Issue 14: as SQLite's 0016. keys_by_tenant_state (tenant_id, revoked_at, expires_at)
-- serves the webhooks' expiry scan (tenant, revoked_at IS NULL, a range of expires_at), so
-- keys_by_tenant_expiry only cost every issuance one more index insertion.
DROP INDEX keys_by_tenant_expiry;
