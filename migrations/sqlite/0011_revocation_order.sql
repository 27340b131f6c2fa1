-- The revocation order (issue 13): each revoked certificate carries the revision of the
-- transaction that revoked it, so that a CRL builder reads only what was revoked since its
-- last CRL, and a delta CRL lists exactly what changed between two CRLs.
--
-- Why the order is the commit order, on PostgreSQL too: a revoking transaction marks the
-- certificates it revokes with revision 0 ("pending"), then, last before committing, moves
-- the one `crl_demand` row (UPDATE ... RETURNING) and stamps its pending certificates with the
-- new revision. The row lock on `crl_demand` is held until commit, so a second revoking
-- transaction takes revision R+1 only after the one with R has committed: revisions commit in
-- ascending order. A reader that sees revision R in `crl_demand` therefore sees every
-- certificate stamped with R or less, and no later transaction can commit one at or below R.
-- (A sequence value would not do: two replicas take 5 and 6, and 6 commits first.) Each
-- transaction stamps only its own pending rows: another's are not visible to it before they
-- commit, and are stamped before they do.
--
-- Certificates revoked before this version get the revision of the time of migration.
ALTER TABLE certificates ADD COLUMN revocation_revision BIGINT;
UPDATE certificates SET revocation_revision = (SELECT COALESCE(MAX(revision), 0) FROM crl_demand)
    WHERE revoked_at IS NOT NULL;
CREATE INDEX certificates_by_revocation_revision
    ON certificates (issuer_id, revocation_revision) WHERE revocation_revision IS NOT NULL;
CREATE INDEX certificates_pending_revision
    ON certificates (serial) WHERE revocation_revision = 0;

-- What a CRL lists, so that a delta between two CRLs can be computed from the store: the
-- revoked certificates stamped at or below `covers` whose notAfter is after `cutoff`. NULL for
-- CRLs built before this version (no delta starts from them). CRLs older than the newest
-- few keep this row without their bytes (`der` empty) for the delta horizon.
ALTER TABLE crls ADD COLUMN cutoff BIGINT;
