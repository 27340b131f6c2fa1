//! SQLite's issuance writer: a thread that owns its connection (see `embedded.rs`), so a
//! batch is a transaction of function calls and one fsync, with no round trip to another
//! thread per statement. It takes this process's write turn for each batch, as every other
//! SQLite writer of the process does (`store::WriteTx`).

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::mpsc;

use super::values::IssuanceValues;
use super::{BatchResult, Issuance, MAX_BATCH, Queued, answer};
use crate::store::checkpointer::Checkpointer;
use crate::store::embedded::{is_unique_violation, message, store_error};
use crate::store::refusal::Refusal;
use crate::store::{StoreError, WriteTurn};

/// An issuance as an INSERT into the `issuances` view: its trigger checks the token, the
/// tenant, the owner and the public key and writes the key, the certificate, the token's
/// use, the audit event and the webhook messages (migration 0014), or raises a `latchkey:`
/// refusal and writes nothing.
const ISSUE: &str = "INSERT INTO issuances (key_id, tenant_id, owner, name, description, \
     scopes, created_at, expires_at, token_id, used_at, serial, issuer_id, subject, \
     public_key_sha256, not_before, not_after, der, recorded_at, event_at, actor, action, \
     event_tenant, target, detail, webhook_event, webhook_detail) VALUES ($1, $2, $3, $4, \
     $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
     $23, $24, $25, $26)";

/// Runs on the writer's thread until the last queue handle is dropped: waits for an
/// issuance, records it with whatever else queues up meanwhile in one transaction, answers.
pub(super) fn write_issuances(
    mut conn: Connection,
    checkpointer: Checkpointer,
    turn: WriteTurn,
    mut queue: mpsc::Receiver<Queued>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        let recorded = {
            let _turn = turn.blocking_lock();
            record_batch(&mut conn, &mut batch, &mut queue)
        };
        checkpointer.nudge();
        answer(&mut batch, recorded);
    }
}

/// Records `batch` in one `BEGIN IMMEDIATE` transaction, taking into it what queues up
/// while its statements run, up to [`MAX_BATCH`]: those then wait for no commit of their
/// own. A refused or failed issuance undoes its own statement only (the trigger's
/// `RAISE(ABORT)`, a constraint), so the batch goes on without savepoints.
fn record_batch(
    conn: &mut Connection,
    batch: &mut Vec<Queued>,
    queue: &mut mpsc::Receiver<Queued>,
) -> BatchResult {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_error)?;
    let mut results = Vec::with_capacity(MAX_BATCH);
    while let Some((issuance, _)) = batch.get(results.len()) {
        results.push(record_one(&tx, issuance)?);
        if results.len() == batch.len()
            && batch.len() < MAX_BATCH
            && let Ok(next) = queue.try_recv()
        {
            batch.push(next);
        }
    }
    tx.commit().map_err(store_error)?;
    Ok(results)
}

/// One issuance, with its webhook messages. The inner `Err` is this issuance's refusal,
/// collision or failure; the outer one a failure of the transaction.
fn record_one(
    conn: &Connection,
    issuance: &Issuance,
) -> Result<Result<(), StoreError>, StoreError> {
    let v = IssuanceValues::of(issuance);
    let mut issue = conn.prepare_cached(ISSUE).map_err(store_error)?;
    let issued = issue.execute(params![
        v.key_id,
        v.tenant_id,
        v.owner,
        v.name,
        v.description,
        v.scopes,
        v.created_at,
        v.expires_at,
        v.token_id,
        v.used_at,
        v.serial.to_string(),
        v.issuer_id,
        v.subject,
        v.public_key_sha256,
        v.not_before,
        v.not_after,
        v.der,
        v.recorded_at,
        v.event_at,
        v.actor,
        v.action,
        v.event_tenant,
        v.target,
        v.detail,
        v.webhook_event,
        v.webhook_detail,
    ]);
    if let Err(e) = issued {
        // Some failures (I/O, a full disk) make SQLite roll the whole transaction back:
        // then the batch has failed. Otherwise only this statement was undone.
        if conn.is_autocommit() {
            return Err(store_error(e));
        }
        return Ok(Err(
            match message(&e).map(Refusal::from_message).transpose() {
                Ok(Some(Some(refusal))) => refusal.into(),
                // A `latchkey:` refusal this build does not know: corrupt, as on PostgreSQL.
                Err(unknown) => unknown,
                _ if is_unique_violation(&e) => StoreError::Collision,
                _ => store_error(e),
            },
        ));
    }
    Ok(Ok(()))
}
