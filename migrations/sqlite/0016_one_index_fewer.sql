-- Issue 14: every issuance writes a leaf page of each index of `keys`, and each commit
-- writes those pages to the WAL again. keys_by_tenant_expiry (0012) serves the webhooks'
-- expiry scan, which keys_by_tenant_state (0013) serves as well: tenant, revoked_at IS NULL,
-- then a range of expires_at. SQLite's planner already chose keys_by_tenant_state for that
-- scan with both present (EXPLAIN QUERY PLAN), so the index was written and never read.
DROP INDEX keys_by_tenant_expiry;
