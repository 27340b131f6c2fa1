-- Issue 14: an issuance in one round trip. Each took four (a savepoint, the call of
-- latchkey_issue, its webhook messages, the savepoint's release), and on two cores shared
-- with PostgreSQL the round trips were what the CA spent. This function is all four: its
-- exception block is the savepoint (PL/pgSQL makes one), so a refused issuance is undone
-- alone and the batch's transaction goes on; it answers what refused it instead of raising:
--   NULL                 recorded;
--   'latchkey:<name>'    a refusal of latchkey_issue (store/refusal.rs reads it);
--   'unique_violation'   the random serial or key id was taken (the CA retries);
--   '<SQLSTATE> <text>'  anything else, for the CA to report as the database's error.
-- The webhook messages are written as store/webhooks.rs `ENQUEUE` writes them; `p_used_at`
-- is the issuance's time. SQLite's 0014 does the same in the issuance trigger.
CREATE OR REPLACE FUNCTION latchkey_issue_once(
    p_key_id TEXT, p_tenant_id BIGINT, p_owner TEXT, p_name TEXT, p_description TEXT,
    p_scopes TEXT, p_created_at BIGINT, p_expires_at BIGINT, p_token_id BIGINT,
    p_used_at BIGINT, p_serial TEXT, p_issuer_id BIGINT, p_subject TEXT,
    p_public_key_sha256 TEXT, p_not_before BIGINT, p_not_after BIGINT, p_der BYTEA,
    p_recorded_at BIGINT, p_event_at BIGINT, p_actor TEXT, p_action TEXT,
    p_event_tenant TEXT, p_target TEXT, p_detail TEXT, p_webhook_event TEXT,
    p_webhook_detail TEXT
) RETURNS TEXT LANGUAGE plpgsql AS $$
BEGIN
    PERFORM latchkey_issue(p_key_id, p_tenant_id, p_owner, p_name, p_description, p_scopes,
        p_created_at, p_expires_at, p_token_id, p_used_at, p_serial, p_issuer_id, p_subject,
        p_public_key_sha256, p_not_before, p_not_after, p_der, p_recorded_at, p_event_at,
        p_actor, p_action, p_event_tenant, p_target, p_detail);
    INSERT INTO webhook_outbox (webhook_id, event_type, key_id, occurred_at, detail,
                                next_attempt_at)
    SELECT id, p_webhook_event, p_key_id, p_used_at, p_webhook_detail, p_used_at
    FROM webhooks WHERE tenant_id = p_tenant_id AND removed_at IS NULL
    AND events LIKE '%,' || p_webhook_event || ',%';
    RETURN NULL;
EXCEPTION
    WHEN raise_exception THEN
        IF SQLERRM LIKE 'latchkey:%' THEN
            RETURN SQLERRM;
        END IF;
        RETURN SQLSTATE || ' ' || SQLERRM;
    WHEN unique_violation THEN
        RETURN 'unique_violation';
    WHEN OTHERS THEN
        RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
