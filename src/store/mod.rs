//! The store: the only code that speaks SQL.
//!
//! One set of SQL serves SQLite (the embedded default) and PostgreSQL (for replicas) through
//! sqlx's Any driver: `$N` placeholders in ascending order of first use (SQLite numbers named
//! parameters by first appearance), integers, text and bytes only, timestamps as unix seconds.
//! The alternative, a trait with two implementations, would double the SQL for native types
//! nobody here needs. Every mutation writes its audit event in the same transaction.

mod audit;
mod checkpointer;
mod copy;
mod embedded;
mod filter;
mod issuance;
mod issuers;
mod keys;
mod ledger;
mod outbox;
mod refusal;
mod revocations;
mod root_crls;
mod rows;
mod synthetic;
mod tenants;
mod tokens;
mod webhooks;

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Executor, Transaction};

pub use audit::{AuditEvent, AuditFilter};
pub use issuers::{IssuerRecord, IssuerRole, NewIssuer, RootRecord, RootRollover};
pub use keys::{
    CertificateRow, KeyFilter, KeyRow, ListedCertificate, NewCertificate, NewKey, Renewal, TokenUse,
};
pub use ledger::RevocationLedger;
pub use outbox::{AttemptOutcome, OutboxMessage, WebhookOutbox};
pub use revocations::{
    CrlBasis, CrlMarks, CrlRow, Revisions, RevocationScope, RevokedCertificate, RevokedList,
};
pub use root_crls::RootCrlRow;
pub use rows::{CertificateKind, CertificateKindError, whole_second};
pub use tenants::UserChange;
pub use tenants::{TenantRow, UserRow};
pub use tokens::{NewToken, TokenCredential, TokenRow};
pub use webhooks::{NewWebhook, WebhookRow};

/// What went wrong in the store.
///
/// Outages and bugs are apart: [`StoreError::Unavailable`] means the database could not be
/// reached (try again later, 503), [`StoreError::Internal`] and [`StoreError::Corrupt`] that
/// the CA or its data is wrong (500). Conversions from `sqlx::Error` go through
/// [`StoreError::from`], which decides which one an error is.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached, or dropped the connection; nothing was changed.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] DatabaseError),
    /// The database answered, but refused or failed the statement in a way no mapping
    /// covers: a bug of the CA (bad SQL, a value of the wrong type), not an outage.
    #[error("store error: {0}")]
    Internal(#[source] DatabaseError),
    /// A row with the same unique name exists already.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// A random serial or key id collided with an existing one; retry with new ones.
    #[error("serial or key id already in use")]
    Collision,
    /// The public key is already certified for another key.
    #[error("public key already in use")]
    PublicKeyInUse,
    /// The tenant or the owner was disabled before this transaction.
    #[error("tenant or user disabled")]
    Disabled,
    /// The key was revoked or expired before this transaction.
    #[error("key revoked or expired")]
    KeyNotActive,
    /// The key got a certificate at `newest_at`, within the renewal interval.
    #[error("the key's newest certificate was issued at {newest_at}, too recently to renew")]
    TooSoon {
        /// When the key's newest certificate was recorded.
        newest_at: time::OffsetDateTime,
    },
    /// The enrollment token was used, revoked or expired before this transaction.
    #[error("enrollment token already used, revoked or expired")]
    TokenSpent,
    /// The target of a copy already holds data.
    #[error("the target database is not empty; migrate only into a fresh database")]
    NotEmpty,
    /// A copied table differs from its source.
    #[error("the copy of table {0} differs from the source")]
    CopyMismatch(&'static str),
    /// The operation exists for the other database engine only.
    #[error("not supported here: {0}")]
    Unsupported(&'static str),
    /// A stored value is not what the CA writes. Never replaced by a default: a corrupt row
    /// is loud.
    #[error("corrupt store: {table}.{column} holds {value:?}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// The value found (or a description of it).
        value: String,
    },
    /// The transaction that was to record this, along with other issuances, failed;
    /// nothing of it was recorded.
    #[error("store unavailable: {0}")]
    BatchFailed(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// The database driver's own error: sqlx's, or rusqlite's on the embedded database's hot
/// path (`embedded.rs`).
pub type DatabaseError = Box<dyn std::error::Error + Send + Sync>;

impl StoreError {
    /// A corrupt value in `table.column`.
    pub(crate) fn corrupt(table: &'static str, column: &'static str, value: impl ToString) -> Self {
        Self::Corrupt {
            table,
            column,
            value: value.to_string(),
        }
    }

    /// True when the database could not be reached: the same request may succeed later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::BatchFailed(_))
    }
}

impl From<sqlx::Error> for StoreError {
    /// An outage (`Unavailable`) when the database could not be reached, dropped the
    /// connection, or said it cannot serve now; anything else is `Internal`.
    fn from(err: sqlx::Error) -> Self {
        if is_outage(&err) {
            Self::Unavailable(Box::new(err))
        } else {
            Self::Internal(Box::new(err))
        }
    }
}

/// Whether `err` says the database is out of reach rather than that the statement is wrong.
fn is_outage(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_outage_code(&code)),
        _ => false,
    }
}

/// Database error codes that mean "not now" rather than "not this". PostgreSQL's are
/// five-character SQLSTATEs: class 08 (connection exception), 53 (insufficient resources:
/// too many connections, disk full), 57P01..57P05 (shutdown, cannot connect now, idle
/// timeouts), and 42P01/3F000 (no such table or schema): migrations created the CA's tables
/// before it started, so their absence means the database was swapped or restored under
/// the running CA, an operator's matter, not a statement the code got wrong. SQLite's are numbers, primary code in the low byte: BUSY (5), LOCKED (6),
/// IOERR (10), FULL (13), CANTOPEN (14).
fn is_outage_code(code: &str) -> bool {
    if code.len() == 5 && code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57P")
            || code == "42P01"
            || code == "3F000";
    }
    code.parse::<u32>()
        .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 13 | 14))
}

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in WAL mode, `synchronous=FULL`.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The connection pool and the engine behind it.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Issuances go through one writer, in batches (group commit).
    issuances: issuance::IssuanceQueue,
    write_turn: WriteTurn,
    /// On SQLite, the database file reached directly on the issuance hot path.
    embedded: Option<std::sync::Arc<embedded::Embedded>>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// Connects to `url` (`sqlite://PATH?mode=rwc` or `postgres://…`) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let embedded = match backend {
            Backend::Sqlite => {
                let path = embedded::Embedded::path_of(url)?;
                create_private_file(&path)?;
                Some(std::sync::Arc::new(embedded::Embedded::new(path)))
            }
            Backend::Postgres => None,
        };
        let options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(5))
            // A SQLite file does not drop connections; pinging one before each use is a
            // round trip to its worker thread for nothing. A server's connections do drop.
            .test_before_acquire(backend == Backend::Postgres);
        let options = match backend {
            // A CA ledger must survive power loss: WAL with synchronous=FULL. Writers queue
            // on busy_timeout instead of failing at once.
            Backend::Sqlite => options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                    )
                    .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options,
        };
        let pool = options.connect(url).await?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        let write_turn = WriteTurn::default();
        let issuances = match &embedded {
            Some(embedded) => issuance::IssuanceQueue::on_sqlite(embedded, write_turn.clone())?,
            None => issuance::IssuanceQueue::on_postgres(pool.clone(), write_turn.clone()),
        };
        Ok(Self {
            pool,
            backend,
            issuances,
            write_turn,
            embedded,
        })
    }

    /// The SQLite database at `path`, created if missing.
    pub async fn open_sqlite(path: &std::path::Path) -> Result<Self, StoreError> {
        Self::connect(&sqlite_url(path)).await
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks that the database answers with the CA's tables, not just that a connection
    /// opens.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT id FROM issuers LIMIT 1")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The number of rows in each table, and of revoked keys and certificates, for operators
    /// and tests.
    pub async fn row_counts(&self) -> Result<BTreeMap<&'static str, i64>, StoreError> {
        const TABLES: [(&str, &str); 9] = [
            ("issuers", "SELECT COUNT(*) FROM issuers"),
            ("tenants", "SELECT COUNT(*) FROM tenants"),
            ("users", "SELECT COUNT(*) FROM users"),
            (
                "enrollment_tokens",
                "SELECT COUNT(*) FROM enrollment_tokens",
            ),
            ("keys", "SELECT COUNT(*) FROM keys"),
            ("certificates", "SELECT COUNT(*) FROM certificates"),
            ("audit_events", "SELECT COUNT(*) FROM audit_events"),
            // Revocations are columns of keys and certificates, counted on their own.
            (
                "revoked_keys",
                "SELECT COUNT(*) FROM keys WHERE revoked_at IS NOT NULL",
            ),
            (
                "revoked_certificates",
                "SELECT COUNT(*) FROM certificates WHERE revoked_at IS NOT NULL",
            ),
        ];
        let mut counts = BTreeMap::new();
        for (table, sql) in TABLES {
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&self.pool).await?;
            counts.insert(table, n);
        }
        Ok(counts)
    }

    /// Records `event` about a change outside the database that has happened (the CA's key
    /// files were encrypted), so that the audit log holds it too.
    pub async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.write(event, async |_, _| Ok(Change::Made(()))).await
    }

    /// Closes every connection; pending work finishes first.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `change` in a write transaction and, when it changed something, writes `event`
    /// (as `change` may have completed it) in the same transaction before committing. Every
    /// audited mutation goes through here, so none can commit without its audit row: this is
    /// the only caller of `audit::insert`. (Issuances are recorded by one SQL statement that
    /// writes their event itself, `issuance.rs`; CRL storage and leases are bookkeeping, not
    /// changes anybody made.)
    async fn write<T>(
        &self,
        event: &AuditEvent,
        change: impl AsyncFnOnce(&mut WriteTx, &mut AuditEvent) -> Result<Change<T>, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tx = self.begin().await?;
        let mut event = event.clone();
        let (value, revoked) = match change(&mut tx, &mut event).await? {
            // Dropped without a commit: rolled back.
            Change::None(value) => return Ok(value),
            Change::Made(value) => (value, false),
            Change::Revoked(value) => (value, true),
        };
        audit::insert(&mut tx, &event).await?;
        if revoked {
            revocations::bump_crl_revision(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(value)
    }

    /// Runs `sql`, an `UPDATE` of one row whose `$1` is `now` and `$2` the row's `id`, with
    /// its audit event: true when it changed the row, false (and nothing written) otherwise.
    async fn update_one_row(
        &self,
        sql: &'static str,
        now: time::OffsetDateTime,
        id: i64,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.write(event, async |tx, _| {
            let changed = sqlx::query(sql)
                .bind(rows::seconds(now))
                .bind(id)
                .execute(tx.conn())
                .await?;
            Ok(Change::one_row(changed.rows_affected()))
        })
        .await
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails with
    /// "database is locked" without waiting.
    async fn begin(&self) -> Result<WriteTx, StoreError> {
        begin_on(&self.pool, self.backend, &self.write_turn).await
    }
}

/// What an audited change did: see [`Store::write`].
enum Change<T> {
    /// Nothing: the transaction is rolled back and no event is written.
    None(T),
    /// Something: the event is written.
    Made(T),
    /// Something, revoking certificates: the event is written and, last in the transaction,
    /// the revocation revision moves, so that CRL builders learn of it.
    Revoked(T),
}

impl Change<bool> {
    /// An update of one row by id: made (true) when it matched, nothing (false) otherwise.
    fn one_row(rows_affected: u64) -> Self {
        if rows_affected == 1 {
            Self::Made(true)
        } else {
            Self::None(false)
        }
    }
}

impl<R> Change<Option<R>> {
    /// An update of one row by name: made when the row was there, nothing otherwise.
    fn made_if_found(row: Option<R>) -> Self {
        match row {
            Some(row) => Self::Made(Some(row)),
            None => Self::None(None),
        }
    }
}

/// [`Store::begin`] on a pool.
async fn begin_on(
    pool: &AnyPool,
    backend: Backend,
    turn: &WriteTurn,
) -> Result<WriteTx, StoreError> {
    Ok(match backend {
        Backend::Sqlite => {
            let turn = turn.clone().lock_owned().await;
            WriteTx {
                tx: pool.begin_with("BEGIN IMMEDIATE").await?,
                _turn: Some(turn),
            }
        }
        Backend::Postgres => WriteTx {
            tx: pool.begin().await?,
            _turn: None,
        },
    })
}

/// This process's turn to write to SQLite.
type WriteTurn = std::sync::Arc<tokio::sync::Mutex<()>>;

/// A write transaction. On SQLite it holds this process's write turn too: SQLite admits one
/// writer at a time and makes the others poll its lock with sleeps of up to 100 ms (a 49 MB
/// CRL insert held issuers up that way); waiting for the turn instead queues them, and each
/// starts the moment the one before ends. Other processes on the same file still meet the
/// busy timeout.
struct WriteTx {
    // Declared first, so that without a commit it is rolled back before the turn passes on.
    tx: Transaction<'static, Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// The connection, to run statements on.
    fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

impl std::ops::Deref for WriteTx {
    type Target = Transaction<'static, Any>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// The URL of the SQLite database at `path`, created if missing.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Creates a missing SQLite file with mode 0600: it holds password and token hashes. SQLite
/// gives its `-wal` and `-shm` files the same mode.
fn create_private_file(path: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(|_| ())
        .map_err(|e| StoreError::from(sqlx::Error::Io(e)))
}

/// Maps a unique-constraint violation to `on_unique`, anything else as [`StoreError::from`]
/// does.
fn unique_as(err: sqlx::Error, on_unique: StoreError) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => on_unique,
        _ => err.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Store, StoreError};

    fn is_unavailable(err: sqlx::Error) -> bool {
        StoreError::from(err).is_unavailable()
    }

    /// Errors that say the database is out of reach are outages (503, try again); the rest
    /// are bugs (500), and keep their source.
    #[test]
    fn sqlx_errors_are_outages_or_bugs() {
        let io = |kind| sqlx::Error::Io(std::io::Error::from(kind));
        assert!(is_unavailable(io(std::io::ErrorKind::ConnectionRefused)));
        assert!(is_unavailable(io(std::io::ErrorKind::ConnectionReset)));
        assert!(is_unavailable(sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(sqlx::Error::PoolClosed));
        assert!(is_unavailable(sqlx::Error::WorkerCrashed));
        assert!(!is_unavailable(sqlx::Error::RowNotFound));
        assert!(!is_unavailable(sqlx::Error::ColumnNotFound("x".into())));
        assert!(!is_unavailable(sqlx::Error::Protocol("bad message".into())));
        let decode = StoreError::from(sqlx::Error::Decode("not an integer".into()));
        assert!(matches!(decode, StoreError::Internal(_)), "{decode:?}");
        assert!(std::error::Error::source(&decode).is_some());
    }

    #[test]
    fn database_codes_for_outages() {
        // PostgreSQL SQLSTATEs.
        for code in ["08006", "08001", "53300", "57P01", "57P03", "42P01"] {
            assert!(super::is_outage_code(code), "{code}");
        }
        for code in ["42601", "42703", "23505", "22P02", "P0001", "40001"] {
            assert!(!super::is_outage_code(code), "{code}");
        }
        // SQLite result codes, extended ones included (SQLITE_BUSY_SNAPSHOT = 517,
        // SQLITE_IOERR_FSYNC = 1034, SQLITE_CONSTRAINT_UNIQUE = 2067).
        for code in ["5", "6", "10", "13", "14", "517", "1034"] {
            assert!(super::is_outage_code(code), "{code}");
        }
        for code in ["1", "19", "2067", "1555", "11"] {
            assert!(!super::is_outage_code(code), "{code}");
        }
    }

    /// Against a real database: a statement the database rejects is a bug, a closed pool
    /// is an outage.
    #[tokio::test]
    async fn store_errors_from_a_real_database() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("ca.db")).await.unwrap();
        let bad = sqlx::query("SELECT no_such_column FROM issuers")
            .execute(&store.pool)
            .await
            .unwrap_err();
        assert!(matches!(StoreError::from(bad), StoreError::Internal(_)));
        store.close().await;
        let closed = store.ping().await.unwrap_err();
        assert!(closed.is_unavailable(), "{closed:?}");
    }

    /// Both engines' migrations have the same versions, named alike: a version means one
    /// change of the schema, whichever engine holds it, and `latchkey migrate` relies on it.
    #[test]
    fn both_engines_have_the_same_migration_versions() {
        let versions = |m: &sqlx::migrate::Migrator| {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect::<Vec<_>>()
        };
        let sqlite = versions(&super::SQLITE_MIGRATIONS);
        assert_eq!(sqlite, versions(&super::POSTGRES_MIGRATIONS));
        assert!(sqlite.len() >= 5, "{sqlite:?}");
    }
}
