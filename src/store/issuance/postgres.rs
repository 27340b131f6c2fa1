//! PostgreSQL's issuance writer: a task on the pool, each batch one round trip, a call of
//! `latchkey_issue_batch` (migration 0015), which calls `latchkey_issue_once` (0014) for
//! each issuance in order; that function's exception block is the savepoint that lets a
//! refused issuance be undone alone while the batch goes on.

use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::mpsc;

use super::values::IssuanceValues;
use super::{BatchResult, MAX_BATCH, Queued, answer};
use crate::store::refusal::Refusal;
use crate::store::{Backend, StoreError, WriteTurn, begin_on, is_outage_code};

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
    let issuances: Vec<IssuanceValues> = batch.iter().map(|(i, _)| IssuanceValues::of(i)).collect();
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

/// One call of `latchkey_issue_batch` with `issuances` (a JSON array of [`IssuanceValues`]):
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
