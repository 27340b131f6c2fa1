//! Recording issuances with group commit.
//!
//! Every issuance must be durable before its certificate is handed out, and on SQLite a
//! durable commit is an fsync: one commit per certificate caps throughput at one fsync
//! each, and concurrent writers waiting for SQLite's lock poll it with sleeps of up to
//! 100 ms. So issuances go to one writer task, which takes whatever has queued up while
//! the previous batch was committing and records it in one transaction: each issuance in a
//! savepoint of its own (a refused one is rolled back alone), one commit for all. Nobody
//! gets an answer before the commit that holds their record has returned.
//!
//! On SQLite every statement is a round trip to the connection's thread, and those round
//! trips were most of an issuance's CPU time; there, an issuance is one INSERT into a view
//! whose trigger makes the same checks and writes (migrations/sqlite/0005, as made again by
//! 0009, whose trigger on `certificates` checks the public key), undone as a
//! whole by SQLite when a check refuses. On PostgreSQL the statements go one by one in a
//! savepoint.
use sqlx::{Any, AnyPool, Transaction};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::audit::AuditEvent;
use super::keys::{NewCertificate, NewKey, TokenUse};
use super::refusal::Refusal;
use super::rows::seconds;
use super::{Backend, Store, StoreError, WriteTurn, unique_as};
use crate::model::WebhookEvent;

/// The most issuances one transaction records.
const MAX_BATCH: usize = 64;
/// How many issuances may wait for the writer.
const QUEUE: usize = 1024;

/// One issuance to record: a new key, its first certificate, the token that paid for it
/// and the audit event.
#[derive(Debug)]
struct Issuance {
    key: NewKey,
    certificate: NewCertificate,
    token: Option<TokenUse>,
    now: OffsetDateTime,
    event: AuditEvent,
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// The queue to the writer task.
#[derive(Debug, Clone)]
pub(super) struct IssuanceQueue(mpsc::Sender<(Issuance, Reply)>);

impl IssuanceQueue {
    /// Starts the writer task on `pool`. It ends when the last queue handle is dropped.
    pub(super) fn start(pool: AnyPool, backend: Backend, turn: WriteTurn) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_issuances(pool, backend, turn, receiver));
        Self(sender)
    }
}

impl Store {
    /// Records a new key, its first certificate, the use of the token that paid for it and
    /// the audit event, all or nothing, and returns once that is durable. `Collision` means
    /// the random serial or key id was taken (retry with new ones); `TokenSpent` that the
    /// token was used meanwhile; `Disabled` that the tenant or owner was disabled;
    /// `PublicKeyInUse` that another key has this public key.
    pub async fn record_key_issuance(
        &self,
        key: &NewKey,
        certificate: &NewCertificate,
        token: Option<TokenUse>,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let issuance = Issuance {
            key: key.clone(),
            certificate: certificate.clone(),
            token,
            now,
            event: event.clone(),
        };
        let (reply, answer) = oneshot::channel();
        let writer_gone = || StoreError::BatchFailed("the issuance writer has stopped".into());
        self.issuances
            .0
            .send((issuance, reply))
            .await
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

async fn write_issuances(
    pool: AnyPool,
    backend: Backend,
    turn: WriteTurn,
    mut queue: mpsc::Receiver<(Issuance, Reply)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let results = record_batch(&pool, backend, &turn, &batch).await;
        for ((_, reply), result) in batch.drain(..).zip(results) {
            // A caller that gave up (its connection closed) gets no certificate; its record
            // stays, as any issued certificate's does.
            let _ = reply.send(result);
        }
    }
}

/// Records `batch` in one transaction; one result per issuance. If the transaction itself
/// fails, every issuance in it fails: none of them was recorded.
async fn record_batch(
    pool: &AnyPool,
    backend: Backend,
    turn: &WriteTurn,
    batch: &[(Issuance, Reply)],
) -> Vec<Result<(), StoreError>> {
    match try_record_batch(pool, backend, turn, batch).await {
        Ok(results) => results,
        Err(e) => {
            let why = e.to_string();
            tracing::warn!(error = %why, issuances = batch.len(), "an issuance batch failed");
            batch
                .iter()
                .map(|_| Err(StoreError::BatchFailed(why.clone())))
                .collect()
        }
    }
}

async fn try_record_batch(
    pool: &AnyPool,
    backend: Backend,
    turn: &WriteTurn,
    batch: &[(Issuance, Reply)],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let mut tx = super::begin_on(pool, backend, turn).await?;
    let mut results = Vec::with_capacity(batch.len());
    if backend == Backend::Sqlite {
        for (issuance, _) in batch {
            results.push(record_one_as_statement(&mut tx, backend, issuance).await?);
        }
        tx.commit().await?;
        return Ok(results);
    }
    // PostgreSQL: a refusal aborts the transaction, so each issuance has its own savepoint.
    for (issuance, _) in batch {
        sqlx::query("SAVEPOINT issuance").execute(&mut **tx).await?;
        let result = record_one_as_statement(&mut tx, backend, issuance).await?;
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

/// One issuance as one statement: on SQLite an INSERT into the `issuances` view, whose
/// trigger does the checks and the writes, on PostgreSQL a call of `latchkey_issue`, which
/// does the same (both engines' migration 0005, made again by 0009, where the public-key
/// check moved to a trigger on `certificates`). A refusal ([`Refusal`]) undoes the whole
/// statement. The outer `Err` is a failure of the transaction.
async fn record_one_as_statement(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    Issuance {
        key,
        certificate: c,
        token,
        now,
        event,
    }: &Issuance,
) -> Result<Result<(), StoreError>, StoreError> {
    let sql = match backend {
        Backend::Sqlite => {
            "INSERT INTO issuances (key_id, tenant_id, owner, name, description, scopes, \
             created_at, expires_at, token_id, used_at, serial, issuer_id, subject, \
             public_key_sha256, not_before, not_after, der, recorded_at, event_at, actor, action, \
             event_tenant, target, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
             $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
        }
        Backend::Postgres => {
            "SELECT latchkey_issue($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
        }
    };
    let inserted = sqlx::query(sql)
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
    Ok(match inserted {
        Ok(_) => {
            // The tenant's webhooks hear of it from this same transaction.
            super::webhooks::enqueue(
                tx,
                key.tenant_id.get(),
                WebhookEvent::KeyIssued,
                key.id.as_str(),
                *now,
                super::webhooks::issued_detail(key, c),
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
