//! PostgreSQL's issuance writer: a task on the pool, each issuance one round trip, a call
//! of `latchkey_issue_once` (migration 0014), whose exception block is the savepoint that
//! lets a refused issuance be undone alone while the batch goes on.

use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::mpsc;

use super::{BatchResult, Issuance, MAX_BATCH, Queued, answer};
use crate::model::WebhookEvent;
use crate::store::refusal::Refusal;
use crate::store::rows::seconds;
use crate::store::{Backend, StoreError, WriteTurn, begin_on, is_outage_code, webhooks};

pub(super) async fn write_issuances(
    pool: AnyPool,
    turn: WriteTurn,
    mut queue: mpsc::Receiver<Queued>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let recorded = record_batch(&pool, &turn, &batch).await;
        answer(&mut batch, recorded);
    }
}

async fn record_batch(pool: &AnyPool, turn: &WriteTurn, batch: &[Queued]) -> BatchResult {
    let mut tx = begin_on(pool, Backend::Postgres, turn).await?;
    let mut results = Vec::with_capacity(batch.len());
    for (issuance, _) in batch {
        results.push(record_one(&mut tx, issuance).await?);
    }
    tx.commit().await?;
    Ok(results)
}

/// One issuance: a call of `latchkey_issue_once` (migration 0014), which records it and
/// its webhook messages or, refused, undoes itself alone and says why. The outer `Err` is a
/// failure of the transaction.
async fn record_one(
    tx: &mut Transaction<'static, Any>,
    Issuance {
        key,
        certificate: c,
        token,
        now,
        event,
    }: &Issuance,
) -> Result<Result<(), StoreError>, StoreError> {
    let refused: Option<String> = sqlx::query_scalar(
        "SELECT latchkey_issue_once($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)",
    )
    .bind(key.id.as_str())
    .bind(key.tenant_id.get())
    .bind(key.owner.as_str())
    .bind(&key.name)
    .bind(&key.description)
    .bind(key.scopes.to_stored())
    .bind(seconds(key.created_at))
    .bind(seconds(key.expires_at))
    .bind(token.map(|t| t.token_id))
    .bind(seconds(*now))
    .bind(c.serial.to_string())
    .bind(c.issuer_id)
    .bind(&c.subject)
    .bind(&c.public_key_sha256)
    .bind(seconds(c.not_before))
    .bind(seconds(c.not_after))
    .bind(&c.der)
    .bind(seconds(c.created_at))
    .bind(seconds(event.at))
    .bind(&event.actor)
    .bind(event.action)
    .bind(&event.tenant)
    .bind(&event.target)
    .bind(event.detail.to_string())
    .bind(WebhookEvent::KeyIssued.as_str())
    .bind(webhooks::issued_detail(key, c).to_string())
    .fetch_one(&mut **tx)
    .await?;
    let Some(refused) = refused else {
        return Ok(Ok(()));
    };
    Ok(Err(match Refusal::from_message(&refused) {
        Ok(Some(refusal)) => refusal.into(),
        Ok(None) if refused == "unique_violation" => StoreError::Collision,
        Ok(None) => database_error(refused),
        Err(unknown) => unknown,
    }))
}

/// An error `latchkey_issue_once` caught and answered as `<SQLSTATE> <message>`: an outage
/// or a bug, as [`StoreError::from`] tells them apart.
fn database_error(answer: String) -> StoreError {
    let sqlstate = answer.split(' ').next().unwrap_or_default();
    if is_outage_code(sqlstate) {
        StoreError::Unavailable(answer.into())
    } else {
        StoreError::Internal(answer.into())
    }
}
