-- The public-key rule, once: a public key is certified for one key only. It was checked
-- twice, by latchkey_issue (0005) for a new key and in Rust for a renewal (store/keys.rs).
-- A trigger on certificates checks every key certificate instead, whichever path inserts
-- it; latchkey_issue is made again without its own check. A certificate of the same key (a
-- renewal that keeps its key pair) passes; one of another key, or of the CA's own (admin,
-- server, key_id NULL), refuses.
--
-- Replicas write at once, and under READ COMMITTED two transactions with one key pair could
-- both find it unused: a transaction-scoped advisory lock on the public key's hash serializes
-- them, and the second one's check (a new snapshot, after the lock) sees the first one's
-- certificate once it commits. `latchkey migrate` disables this trigger while it copies
-- (rows checked at their source, and one lock per row would exhaust the lock table).
CREATE FUNCTION latchkey_public_key_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(NEW.public_key_sha256, 0));
    IF EXISTS (SELECT 1 FROM certificates WHERE public_key_sha256 = NEW.public_key_sha256
               AND (key_id IS NULL OR key_id <> NEW.key_id)) THEN
        RAISE EXCEPTION 'latchkey:public_key_in_use';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER certificates_public_key_once BEFORE INSERT ON certificates
FOR EACH ROW WHEN (NEW.kind = 'key') EXECUTE FUNCTION latchkey_public_key_once();

-- 0005's issuance, unchanged but for the public-key check and its lock, which the trigger
-- above takes when this function inserts the certificate.
CREATE OR REPLACE FUNCTION latchkey_issue(
    p_key_id TEXT, p_tenant_id BIGINT, p_owner TEXT, p_name TEXT, p_description TEXT,
    p_scopes TEXT, p_created_at BIGINT, p_expires_at BIGINT, p_token_id BIGINT,
    p_used_at BIGINT, p_serial TEXT, p_issuer_id BIGINT, p_subject TEXT,
    p_public_key_sha256 TEXT, p_not_before BIGINT, p_not_after BIGINT, p_der BYTEA,
    p_recorded_at BIGINT, p_event_at BIGINT, p_actor TEXT, p_action TEXT,
    p_event_tenant TEXT, p_target TEXT, p_detail TEXT
) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    v_tenant_disabled BIGINT;
    v_user_disabled BIGINT;
BEGIN
    -- The token is consumed first, so a token raced from two requests gives one key.
    IF p_token_id IS NOT NULL THEN
        UPDATE enrollment_tokens SET used_at = p_used_at, key_id = p_key_id
        WHERE id = p_token_id AND used_at IS NULL AND revoked_at IS NULL
          AND expires_at > p_used_at;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'latchkey:token_spent';
        END IF;
    END IF;
    -- A disable that committed after authentication still stops this key, and one that comes
    -- while this transaction is open waits for it: the rows are read FOR SHARE, so a disable
    -- (and the bulk revocation that usually follows it) sees this key once it commits.
    SELECT disabled_at INTO v_tenant_disabled FROM tenants WHERE id = p_tenant_id FOR SHARE;
    SELECT disabled_at INTO v_user_disabled FROM users
    WHERE tenant_id = p_tenant_id AND name = p_owner FOR SHARE;
    IF v_tenant_disabled IS NOT NULL OR v_user_disabled IS NOT NULL THEN
        RAISE EXCEPTION 'latchkey:disabled';
    END IF;
    INSERT INTO keys (id, tenant_id, owner, name, description, scopes, created_at, expires_at)
    VALUES (p_key_id, p_tenant_id, p_owner, p_name, p_description, p_scopes, p_created_at,
            p_expires_at);
    INSERT INTO certificates (serial, issuer_id, kind, key_id, subject, public_key_sha256,
                              not_before, not_after, der, created_at)
    VALUES (p_serial, p_issuer_id, 'key', p_key_id, p_subject, p_public_key_sha256,
            p_not_before, p_not_after, p_der, p_recorded_at);
    INSERT INTO audit_events (at, actor, action, tenant, target, detail)
    VALUES (p_event_at, p_actor, p_action, p_event_tenant, p_target, p_detail);
    RETURN 1;
END
$$;
