-- Issuers over the CA's life (issue 12): intermediates are rotated, retired, and dedicated
-- to a tenant, and the keys of those made after initialization live here, encrypted, so
-- that every replica can sign with a new intermediate without a file being copied.
--
-- role:          'root', 'intermediate' or 'cross', set by the CA when it records the row (rows
--                recorded before this version are named at the next start).
-- tenant_id:     the tenant a dedicated intermediate signs for; NULL for a shared one.
-- key_pem:       the intermediate's key as PKCS#8 ENCRYPTED PRIVATE KEY (PEM); NULL when
--                the key is the CA home's intermediate-key.pem or in a PKCS#11 token.
-- key_label:     the label of its key in the PKCS#11 token named by latchkey.json.
-- superseded_at: when a newer intermediate took over; it signs nothing new from then on.
-- retired_at:    when its last certificate had expired (plus one CRL validity): no CRL.
ALTER TABLE issuers ADD COLUMN role TEXT;
ALTER TABLE issuers ADD COLUMN tenant_id BIGINT REFERENCES tenants (id);
ALTER TABLE issuers ADD COLUMN key_pem TEXT;
ALTER TABLE issuers ADD COLUMN key_label TEXT;
ALTER TABLE issuers ADD COLUMN superseded_at BIGINT;
ALTER TABLE issuers ADD COLUMN retired_at BIGINT;

-- One active intermediate shared by all tenants, and one per dedicated tenant: two replicas
-- rotating at once cannot both win.
CREATE UNIQUE INDEX issuers_one_active ON issuers (COALESCE(tenant_id, 0))
    WHERE role = 'intermediate' AND superseded_at IS NULL;

-- One active root: a root rollover (`latchkey ca rotate --root`) supersedes the old one in the
-- transaction that records the new one. Cross-certificates between roots are rows of role
-- 'cross' (no key, no CRL of their own).
CREATE UNIQUE INDEX issuers_one_active_root ON issuers (role)
    WHERE role = 'root' AND superseded_at IS NULL;
