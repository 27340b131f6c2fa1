-- The core CA: issuers, tenants, users, enrollment tokens, keys, certificates, audit events.
-- Timestamps are unix seconds (UTC); serials and fingerprints are lowercase hex.

CREATE TABLE issuers (
    id           BIGSERIAL PRIMARY KEY,
    fingerprint  TEXT    NOT NULL UNIQUE,   -- SHA-256 of the issuer certificate
    subject      TEXT    NOT NULL,
    certificate  BYTEA   NOT NULL,
    not_after    BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL
);

CREATE TABLE tenants (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    max_key_days  BIGINT  NOT NULL,
    disabled_at   BIGINT,
    created_at    BIGINT  NOT NULL
);

CREATE TABLE users (
    id             BIGSERIAL PRIMARY KEY,
    tenant_id      BIGINT  NOT NULL REFERENCES tenants (id),
    name           TEXT    NOT NULL,
    password_hash  TEXT    NOT NULL,         -- argon2id PHC string
    scopes         TEXT    NOT NULL,         -- granted scopes, sorted, space-separated
    disabled_at    BIGINT,
    created_at     BIGINT  NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE enrollment_tokens (
    id          BIGSERIAL PRIMARY KEY,
    token_hash  TEXT    NOT NULL UNIQUE,     -- SHA-256 of the secret; the secret is never stored
    tenant_id   BIGINT  NOT NULL REFERENCES tenants (id),
    owner       TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used_at     BIGINT,
    key_id      TEXT,                        -- the key it enrolled, once used
    revoked_at  BIGINT
);

CREATE TABLE keys (
    seq                BIGSERIAL PRIMARY KEY,  -- paging order
    id                 TEXT    NOT NULL UNIQUE,
    tenant_id          BIGINT  NOT NULL REFERENCES tenants (id),
    owner              TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    description        TEXT    NOT NULL,
    scopes             TEXT    NOT NULL,
    created_at         BIGINT  NOT NULL,
    expires_at         BIGINT  NOT NULL,
    revoked_at         BIGINT,
    revocation_reason  TEXT
);
CREATE INDEX keys_by_owner ON keys (tenant_id, owner, seq);

CREATE TABLE certificates (
    serial                 TEXT    PRIMARY KEY,
    issuer_id              BIGINT  NOT NULL REFERENCES issuers (id),
    kind                   TEXT    NOT NULL,   -- 'key' | 'admin' | 'server'
    key_id                 TEXT    REFERENCES keys (id),
    subject                TEXT    NOT NULL,   -- the SPIFFE URI, or the server's first name
    public_key_sha256      TEXT    NOT NULL,
    not_before             BIGINT  NOT NULL,
    not_after              BIGINT  NOT NULL,
    der                    BYTEA   NOT NULL,
    created_at             BIGINT  NOT NULL,
    revoked_at             BIGINT,
    revocation_reason      TEXT
);
CREATE INDEX certificates_by_key ON certificates (key_id);
CREATE INDEX certificates_by_public_key ON certificates (public_key_sha256);

CREATE TABLE audit_events (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT  NOT NULL,
    actor   TEXT    NOT NULL,   -- admin:<name>, user:<owner>@<tenant>, token:<owner>@<tenant>, key:<id>, system
    action  TEXT    NOT NULL,   -- e.g. key.issue, tenant.add
    tenant  TEXT,
    target  TEXT,
    detail  TEXT    NOT NULL    -- JSON object
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant, id);
