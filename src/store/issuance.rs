//! Recording issuances with group commit.
//!
//! Every issuance must be durable before its certificate is handed out, and on SQLite a
//! durable commit is an fsync: one commit per certificate caps throughput at one fsync
//! each, and concurrent writers waiting for SQLite's lock poll it with sleeps of up to
//! 100 ms. So issuances go to one writer task, which takes whatever has queued up while
//! the previous batch was committing and records it in one transaction: each issuance in a
//! savepoint of its own (a refused one is rolled back alone), one commit for all. Nobody
//! gets an answer before the commit that holds their record has returned.

use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::audit::{self, AuditEvent};
use super::keys::{NewCertificate, NewKey, TokenUse, insert_certificate};
use super::{Backend, Store, StoreError, changed_one, unique_as};

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
    now: i64,
    event: AuditEvent,
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// The queue to the writer task.
#[derive(Debug, Clone)]
pub(super) struct IssuanceQueue(mpsc::Sender<(Issuance, Reply)>);

impl IssuanceQueue {
    /// Starts the writer task on `pool`. It ends when the last queue handle is dropped.
    pub(super) fn start(pool: AnyPool, backend: Backend) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_issuances(pool, backend, receiver));
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
        now: i64,
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
    mut queue: mpsc::Receiver<(Issuance, Reply)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let results = record_batch(&pool, backend, &batch).await;
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
    batch: &[(Issuance, Reply)],
) -> Vec<Result<(), StoreError>> {
    match try_record_batch(pool, backend, batch).await {
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
    batch: &[(Issuance, Reply)],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let mut tx = super::begin_on(pool, backend).await?;
    let mut results = Vec::with_capacity(batch.len());
    for (issuance, _) in batch {
        sqlx::query("SAVEPOINT issuance").execute(&mut *tx).await?;
        let result = record_one(&mut tx, issuance).await;
        if result.is_err() {
            sqlx::query("ROLLBACK TO SAVEPOINT issuance")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("RELEASE SAVEPOINT issuance")
            .execute(&mut *tx)
            .await?;
        results.push(result);
    }
    tx.commit().await?;
    Ok(results)
}

/// One issuance's statements. Each check rides on the write it guards, so a refusal costs
/// no extra round trip; the savepoint undoes what came before it.
async fn record_one(
    tx: &mut Transaction<'static, Any>,
    Issuance {
        key,
        certificate,
        token,
        now,
        event,
    }: &Issuance,
) -> Result<(), StoreError> {
    if let Some(token) = token {
        // Consumed first, so a token raced from two requests gives exactly one key.
        let used = sqlx::query(
            "UPDATE enrollment_tokens SET used_at = $1, key_id = $2 \
             WHERE id = $3 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(&key.id)
        .bind(token.token_id)
        .execute(&mut **tx)
        .await?;
        if !changed_one(&used) {
            return Err(StoreError::TokenSpent);
        }
    }
    // Checked under the write lock: a disable that committed after authentication still
    // stops this key.
    let inserted = sqlx::query(
        "INSERT INTO keys (id, tenant_id, owner, name, description, scopes, created_at, expires_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS (\
           SELECT 1 FROM tenants t LEFT JOIN users u ON u.tenant_id = t.id AND u.name = $3 \
           WHERE t.id = $2 AND (t.disabled_at IS NOT NULL OR u.disabled_at IS NOT NULL))",
    )
    .bind(&key.id)
    .bind(key.tenant_id)
    .bind(&key.owner)
    .bind(&key.name)
    .bind(&key.description)
    .bind(&key.scopes)
    .bind(key.created_at)
    .bind(key.expires_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| unique_as(e, StoreError::Collision))?;
    if !changed_one(&inserted) {
        return Err(StoreError::Disabled);
    }
    // Checked under the write lock too, so two enrollments racing with one key pair cannot
    // both pass.
    if !insert_certificate(tx, certificate, true).await? {
        return Err(StoreError::PublicKeyInUse);
    }
    audit::insert(tx, event).await
}
