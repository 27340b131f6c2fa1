//! Recording issuances with group commit.
//!
//! Every issuance must be durable before its certificate is handed out, and on SQLite a
//! durable commit is an fsync: one commit per certificate caps throughput at one fsync
//! each, and concurrent writers waiting for SQLite's lock poll it with sleeps of up to
//! 100 ms. So issuances go to one writer, which takes whatever has queued up while the
//! previous batch was committing and records it in one transaction, one commit for all, a
//! refused issuance undone alone. Nobody gets an answer before the commit that holds their
//! record has returned.
//!
//! An issuance is one statement on either engine: on SQLite an INSERT into the `issuances`
//! view, whose trigger makes the checks and the writes (migrations/sqlite/0005, as made
//! again by 0009, whose trigger on `certificates` checks the public key), undone as a whole
//! by SQLite when a check refuses; on PostgreSQL a call of `latchkey_issue`, which does the
//! same, in a savepoint. The writers differ in where they run: SQLite's is a thread that
//! owns its connection (`sqlite.rs`, see `embedded.rs` for why), PostgreSQL's a task on the
//! pool (`postgres.rs`) that sends each batch in one call.

mod postgres;
mod sqlite;
mod values;

use sqlx::AnyPool;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::audit::AuditEvent;
use super::checkpointer::Checkpointer;
use super::embedded::Embedded;
use super::keys::{NewCertificate, NewKey, TokenUse};
use super::{Store, StoreError, WriteTurn};

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

/// An issuance waiting for the writer, and where its answer goes.
type Queued = (Issuance, Reply);

/// What recording a batch gave: one result per issuance, or the failure of the transaction
/// itself, in which case none of them was recorded.
type BatchResult = Result<Vec<Result<(), StoreError>>, StoreError>;

/// The queue to the writer.
#[derive(Debug, Clone)]
pub(super) struct IssuanceQueue(mpsc::Sender<Queued>);

impl IssuanceQueue {
    /// Starts PostgreSQL's writer task on `pool`. It ends when the last queue handle is
    /// dropped.
    pub(super) fn on_postgres(pool: AnyPool, turn: WriteTurn) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(postgres::write_issuances(pool, turn, receiver));
        Self(sender)
    }

    /// Starts SQLite's writer thread on a connection of its own to `embedded`, taking this
    /// process's write `turn` for each batch. It ends when the last queue handle is dropped.
    pub(super) fn on_sqlite(embedded: &Embedded, turn: WriteTurn) -> Result<Self, StoreError> {
        let conn = embedded.open_writer()?;
        let checkpointer = Checkpointer::start(embedded, turn.clone())?;
        let (sender, receiver) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("issuance-writer".into())
            .spawn(move || sqlite::write_issuances(conn, checkpointer, turn, receiver))
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Self(sender))
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

/// Answers every issuance of `batch`, emptying it: each its own result, or, when the
/// transaction failed, that failure.
fn answer(batch: &mut Vec<Queued>, recorded: BatchResult) {
    let results = match recorded {
        Ok(results) => results,
        Err(e) => {
            let why = e.to_string();
            tracing::warn!(error = %why, issuances = batch.len(), "an issuance batch failed");
            batch
                .iter()
                .map(|_| Err(StoreError::BatchFailed(why.clone())))
                .collect()
        }
    };
    for ((_, reply), result) in batch.drain(..).zip(results) {
        // A caller that gave up (its connection closed) gets no certificate; its record
        // stays, as any issued certificate's does.
        let _ = reply.send(result);
    }
}
