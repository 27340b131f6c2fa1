-- Issue 14: an issuance's webhook messages written by the issuance's own statement. They
-- were a second statement per certificate; the view takes the message's event and detail
-- (the detail is made by the CA, store/webhooks.rs) and the trigger writes one outbox row
-- per webhook of the tenant that takes the event, as store/webhooks.rs `ENQUEUE` does for
-- other changes. PostgreSQL's 0014 does the same in one function call.
DROP VIEW issuances; -- and its trigger
CREATE VIEW issuances AS SELECT
    NULL AS key_id, NULL AS tenant_id, NULL AS owner, NULL AS name, NULL AS description,
    NULL AS scopes, NULL AS created_at, NULL AS expires_at, NULL AS token_id, NULL AS used_at,
    NULL AS serial, NULL AS issuer_id, NULL AS subject, NULL AS public_key_sha256,
    NULL AS not_before, NULL AS not_after, NULL AS der, NULL AS recorded_at,
    NULL AS event_at, NULL AS actor, NULL AS action, NULL AS event_tenant, NULL AS target,
    NULL AS detail, NULL AS webhook_event, NULL AS webhook_detail
WHERE 0;

-- 0009's issuance, unchanged but for the last INSERT.
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
    INSERT INTO webhook_outbox (webhook_id, event_type, key_id, occurred_at, detail,
                                next_attempt_at)
    SELECT id, NEW.webhook_event, NEW.key_id, NEW.used_at, NEW.webhook_detail, NEW.used_at
    FROM webhooks WHERE tenant_id = NEW.tenant_id AND removed_at IS NULL
    AND events LIKE '%,' || NEW.webhook_event || ',%';
END;
