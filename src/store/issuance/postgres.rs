//! PostgreSQL's issuance writer: a task on the pool, each batch one round trip, a call of
//! `latchkey_issue_batch` (migration 0015), which calls `latchkey_issue_once` (0014) for
//! each issuance in order; that function's exception block is the savepoint that lets a
//! refused issuance be undone alone while the batch goes on.

use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::mpsc;

use super::{BatchResult, Issuance, MAX_BATCH, Queued, answer};
use crate::model::{Serial, WebhookEvent};
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

/// Records `batch` in one transaction with one call of `latchkey_issue_batch`. An answer
/// that is not one result per issuance is a bug, and then nothing is committed.
async fn record_batch(pool: &AnyPool, turn: &WriteTurn, batch: &[Queued]) -> BatchResult {
    let issuances: Vec<IssuanceArgs> = batch.iter().map(|(i, _)| IssuanceArgs::of(i)).collect();
    let issuances =
        serde_json::to_string(&issuances).map_err(|e| StoreError::Internal(Box::new(e)))?;
    let mut tx = begin_on(pool, Backend::Postgres, turn).await?;
    let answers = call_batch(&mut tx, issuances).await?;
    if answers.len() != batch.len() {
        return Err(StoreError::corrupt(
            "latchkey_issue_batch",
            "answer",
            format!("{} answers to {} issuances", answers.len(), batch.len()),
        ));
    }
    tx.commit().await?;
    Ok(answers.into_iter().map(refusal_of).collect())
}

/// One call of `latchkey_issue_batch` with `issuances` (a JSON array of [`IssuanceArgs`]):
/// what `latchkey_issue_once` answered for each, in order. An `Err` is a failure of the
/// transaction.
async fn call_batch(
    tx: &mut Transaction<'static, Any>,
    issuances: String,
) -> Result<Vec<Option<String>>, StoreError> {
    let answers: String = sqlx::query_scalar("SELECT latchkey_issue_batch($1)")
        .bind(issuances)
        .fetch_one(&mut **tx)
        .await?;
    serde_json::from_str(&answers)
        .map_err(|e| StoreError::corrupt("latchkey_issue_batch", "answer", e))
}

/// An issuance as the JSON object `latchkey_issue_batch` reads: `latchkey_issue_once`'s
/// parameters by name, the DER in hex, serialized straight from the issuance's fields.
#[derive(serde::Serialize)]
struct IssuanceArgs<'a> {
    key_id: &'a str,
    tenant_id: i64,
    owner: &'a str,
    name: &'a str,
    description: &'a str,
    scopes: String,
    created_at: i64,
    expires_at: i64,
    token_id: Option<i64>,
    used_at: i64,
    serial: Serial,
    issuer_id: i64,
    subject: &'a str,
    public_key_sha256: &'a str,
    not_before: i64,
    not_after: i64,
    der: String,
    recorded_at: i64,
    event_at: i64,
    actor: &'a str,
    action: &'a str,
    event_tenant: Option<&'a str>,
    target: Option<&'a str>,
    detail: String,
    webhook_event: &'a str,
    webhook_detail: String,
}

impl<'a> IssuanceArgs<'a> {
    fn of(
        Issuance {
            key,
            certificate: c,
            token,
            now,
            event,
        }: &'a Issuance,
    ) -> Self {
        Self {
            key_id: key.id.as_str(),
            tenant_id: key.tenant_id.get(),
            owner: key.owner.as_str(),
            name: &key.name,
            description: &key.description,
            scopes: key.scopes.to_stored(),
            created_at: seconds(key.created_at),
            expires_at: seconds(key.expires_at),
            token_id: token.map(|t| t.token_id),
            used_at: seconds(*now),
            serial: c.serial,
            issuer_id: c.issuer_id,
            subject: &c.subject,
            public_key_sha256: &c.public_key_sha256,
            not_before: seconds(c.not_before),
            not_after: seconds(c.not_after),
            der: hex::encode(&c.der),
            recorded_at: seconds(c.created_at),
            event_at: seconds(event.at),
            actor: &event.actor,
            action: event.action,
            event_tenant: event.tenant.as_deref(),
            target: event.target.as_deref(),
            detail: event.detail.to_string(),
            webhook_event: WebhookEvent::KeyIssued.as_str(),
            webhook_detail: webhooks::issued_detail(key, c).to_string(),
        }
    }
}

/// What one answer of `latchkey_issue_once` means: recorded, refused, a collision, or the
/// database's error.
fn refusal_of(answered: Option<String>) -> Result<(), StoreError> {
    let Some(refused) = answered else {
        return Ok(());
    };
    Err(match Refusal::from_message(&refused) {
        Ok(Some(refusal)) => refusal.into(),
        Ok(None) if refused == "unique_violation" => StoreError::Collision,
        Ok(None) => database_error(refused),
        Err(unknown) => unknown,
    })
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
