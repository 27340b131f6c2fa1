-- Issue 14: PostgreSQL's 0015 takes a batch of issuances in one round trip. SQLite's
-- issuance writer owns its connection (src/store/issuance/sqlite.rs) and has no round trip
-- to save, so nothing changes here; the version exists so that both engines keep the same.
SELECT 1;
