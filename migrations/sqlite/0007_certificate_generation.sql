-- A key's certificates in the order they were issued. A key keeps its newest few valid
-- certificates and supersedes the others, and lists its newest first, so "newest" must be
-- exact; times are whole seconds, and renewals within one second (a renewal interval of 0)
-- tie. A key's first certificate, and every certificate recorded before this column, has
-- none (read as 0); each renewal gets one more than the key's highest.
ALTER TABLE certificates ADD COLUMN generation BIGINT;
