-- The public-key rule, once: a public key is certified for one key only. It was checked
-- twice, by the issuance trigger (0005) for a new key and in Rust for a renewal
-- (store/keys.rs). A trigger on certificates checks every key certificate instead, whichever
-- path inserts it; the issuance trigger is made again without its own check. A certificate
-- of the same key (a renewal that keeps its key pair) passes; one of another key, or of the
-- CA's own (admin, server, key_id NULL), refuses. SQLite admits one writer at a time, so the
-- check and the insert cannot be separated by another transaction.
CREATE TRIGGER certificates_public_key_once BEFORE INSERT ON certificates
WHEN NEW.kind = 'key'
BEGIN
    SELECT RAISE(ABORT, 'latchkey:public_key_in_use')
    WHERE EXISTS (SELECT 1 FROM certificates WHERE public_key_sha256 = NEW.public_key_sha256
                  AND (key_id IS NULL OR key_id <> NEW.key_id));
END;

-- 0005's issuance, unchanged but for the public-key check, which the trigger above makes
-- when this one inserts the certificate (its RAISE undoes this whole statement too).
DROP TRIGGER issue;
CREATE TRIGGER issue INSTEAD OF INSERT ON issuances
BEGIN
    -- The token is consumed first, so a token raced from two requests gives one key.
    SELECT RAISE(ABORT, 'latchkey:token_spent')
    WHERE NEW.token_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM enrollment_tokens WHERE id = NEW.token_id
        AND used_at IS NULL AND revoked_at IS NULL AND expires_at > NEW.used_at);
    UPDATE enrollment_tokens SET used_at = NEW.used_at, key_id = NEW.key_id
    WHERE id = NEW.token_id;
    -- A disable that committed after authentication still stops this key.
    SELECT RAISE(ABORT, 'latchkey:disabled')
    WHERE EXISTS (
        SELECT 1 FROM tenants t LEFT JOIN users u ON u.tenant_id = t.id AND u.name = NEW.owner
        WHERE t.id = NEW.tenant_id AND (t.disabled_at IS NOT NULL OR u.disabled_at IS NOT NULL));
    INSERT INTO keys (id, tenant_id, owner, name, description, scopes, created_at, expires_at)
    VALUES (NEW.key_id, NEW.tenant_id, NEW.owner, NEW.name, NEW.description, NEW.scopes,
            NEW.created_at, NEW.expires_at);
    INSERT INTO certificates (serial, issuer_id, kind, key_id, subject, public_key_sha256,
                              not_before, not_after, der, created_at)
    VALUES (NEW.serial, NEW.issuer_id, 'key', NEW.key_id, NEW.subject, NEW.public_key_sha256,
            NEW.not_before, NEW.not_after, NEW.der, NEW.recorded_at);
    INSERT INTO audit_events (at, actor, action, tenant, target, detail)
    VALUES (NEW.event_at, NEW.actor, NEW.action, NEW.event_tenant, NEW.target, NEW.detail);
END;
