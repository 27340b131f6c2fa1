-- Webhooks (issue 15): per-tenant endpoints told of key changes, signed as the Standard
-- Webhooks specification says, delivered at least once from an outbox.
--
-- webhooks.events:  the event types it takes, comma-separated with a comma at each end
--                   (',key.issued,key.revoked,'), so that one LIKE '%,key.issued,%' matches.
-- webhooks.secret:  'whsec_' and the base64 of the HMAC key; shown once, kept to sign.
-- webhooks.allow_http: 1 when the URL is plain http to a loopback address (`--allow-http`).
-- webhooks.removed_at: set by `webhook remove`; its pending deliveries are not attempted.
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   BIGINT  NOT NULL REFERENCES tenants (id),
    url         TEXT    NOT NULL,
    events      TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    allow_http  BIGINT  NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    removed_at  BIGINT
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant_id) WHERE removed_at IS NULL;

-- The outbox: one row per event and webhook, written in the transaction of the change
-- (issuance, renewal, revocation) or of the expiry notice. The message is made from the row
-- when it is sent: its type, the key (whose tenant, owner and name never change), the time
-- and `detail` (a JSON object), so every attempt sends the same bytes.
-- claimed_by/claimed_until: the replica sending it now; another takes it once the lease ends.
CREATE TABLE webhook_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id       BIGINT  NOT NULL REFERENCES webhooks (id),
    event_type       TEXT    NOT NULL,
    key_id           TEXT    NOT NULL REFERENCES keys (id),
    occurred_at      BIGINT  NOT NULL,
    detail           TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    claimed_by       TEXT,
    claimed_until    BIGINT,
    delivered_at     BIGINT,
    failed_at        BIGINT,
    last_status      BIGINT,
    last_error       TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_outbox_by_webhook ON webhook_outbox (webhook_id, id);

-- Which expiry notices each webhook was given: once per key and lead time.
-- (The id orders the rows for `latchkey migrate`'s copy; the unique triple is the rule.)
CREATE TABLE webhook_expiry_notices (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id    BIGINT NOT NULL REFERENCES webhooks (id),
    key_id        TEXT   NOT NULL REFERENCES keys (id),
    lead_seconds  BIGINT NOT NULL,
    noticed_at    BIGINT NOT NULL,
    UNIQUE (webhook_id, key_id, lead_seconds)
);

-- The expiry scan reads a subscribed tenant's active keys by their end.
CREATE INDEX keys_by_tenant_expiry ON keys (tenant_id, expires_at) WHERE revoked_at IS NULL;
