//! PostgreSQL's issuance writer: a task on the pool, each issuance a call of
//! `latchkey_issue` in a savepoint of its own (a refusal aborts PostgreSQL's transaction,
//! so a refused issuance is rolled back to its savepoint and the batch goes on).

use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::mpsc;

use super::{BatchResult, Issuance, MAX_BATCH, Queued, answer};
use crate::model::WebhookEvent;
use crate::store::refusal::Refusal;
use crate::store::rows::seconds;
use crate::store::{Backend, StoreError, WriteTurn, begin_on, unique_as, webhooks};

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
        sqlx::query("SAVEPOINT issuance").execute(&mut **tx).await?;
        let result = record_one(&mut tx, issuance).await?;
        if result.is_err() {
            sqlx::query("ROLLBACK TO SAVEPOINT issuance")
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query("RELEASE SAVEPOINT issuance")
            .execute(&mut **tx)
            .await?;
        results.push(result);
    }
    tx.commit().await?;
    Ok(results)
}

/// One issuance: a call of `latchkey_issue` (migration 0005, made again by 0009), then the
/// tenant's webhook messages. A refusal ([`Refusal`]) undoes the call. The outer `Err` is a
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
    let issued = sqlx::query(
        "SELECT latchkey_issue($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)",
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
    .execute(&mut **tx)
    .await;
    Ok(match issued {
        Ok(_) => {
            // The tenant's webhooks hear of it from this same transaction.
            webhooks::enqueue(
                tx,
                key.tenant_id.get(),
                WebhookEvent::KeyIssued,
                key.id.as_str(),
                *now,
                webhooks::issued_detail(key, c),
            )
            .await?;
            Ok(())
        }
        Err(e) => match Refusal::from_error(&e) {
            Ok(Some(refusal)) => Err(refusal.into()),
            Ok(None) => Err(unique_as(e, StoreError::Collision)),
            Err(unknown) => Err(unknown),
        },
    })
}
