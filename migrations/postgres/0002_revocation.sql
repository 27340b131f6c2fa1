-- Revocation: published CRLs, and indexes for building them and reading the audit log.

CREATE TABLE crls (
    number       BIGINT  PRIMARY KEY,          -- the CRL number, strictly increasing
    issuer_id    BIGINT  NOT NULL REFERENCES issuers (id),
    this_update  BIGINT  NOT NULL,
    next_update  BIGINT  NOT NULL,
    entries      BIGINT  NOT NULL,
    der          BYTEA   NOT NULL,
    created_at   BIGINT  NOT NULL
);

CREATE INDEX certificates_revoked ON certificates (issuer_id, not_after) WHERE revoked_at IS NOT NULL;
CREATE INDEX keys_by_tenant ON keys (tenant_id, seq);
CREATE INDEX audit_events_by_action ON audit_events (action, id);
