//! The embedded SQLite database, reached directly on the issuance hot path.
//!
//! sqlx runs each SQLite connection on a thread of its own and every statement is a round
//! trip across a channel to it; on the issuance path those round trips, and the context
//! switches between them and the tokio workers, were most of the CA's CPU per certificate
//! (BENCHMARKS.md, issue 14). Here the same database file is opened with rusqlite, on the
//! same `libsqlite3-sys` as sqlx, so one SQLite library holds the file's locks for both:
//!
//! - the issuance writer owns one connection in a thread of its own (`issuance/sqlite.rs`),
//!   so a batch of issuances is function calls and one fsync;
//! - the token lookup that authenticates an enrollment runs on the caller's thread on a
//!   read-only connection from [`Readers`]: an indexed read of a few microseconds, where a
//!   round trip to sqlx's thread cost more than the read.
//!
//! Everything else stays on sqlx. The SQL is the same text for both (`$N` placeholders in
//! order of first use, which SQLite numbers 1, 2, … as rusqlite binds them).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// How long a statement waits for another connection's lock before failing, as the sqlx
/// connections' `busy_timeout`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many idle read connections are kept.
const MAX_IDLE_READERS: usize = 8;

/// The file of the embedded database, and the read connections kept open on it.
#[derive(Debug)]
pub(super) struct Embedded {
    path: PathBuf,
    readers: Readers,
}

impl Embedded {
    /// The database at `path`, which sqlx has opened (and migrated) already.
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            readers: Readers(Mutex::new(Vec::new())),
        }
    }

    /// The database file.
    pub(super) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The SQLite file path of a `sqlite:` URL, or `Unsupported` for an in-memory database,
    /// which no second connection could reach.
    pub(super) fn path_of(url: &str) -> Result<PathBuf, StoreError> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() || path == ":memory:" || rest.contains("mode=memory") {
            return Err(StoreError::Unsupported(
                "an in-memory SQLite database; the CA's store is a file",
            ));
        }
        Ok(PathBuf::from(path))
    }

    /// A read-write connection for the issuance writer, set up as the sqlx connections are:
    /// WAL, `synchronous=FULL` (a CA ledger must survive power loss), foreign keys. Its
    /// statement journals are kept in memory: an issuance is one statement that may be
    /// refused (undone) inside the batch's transaction, so SQLite journals the pages each
    /// statement changes, and in a temporary file that was 7% of an issuance's CPU. It does
    /// not checkpoint the WAL itself but at 10,000 pages, as a backstop: the checkpointer
    /// does, off the issuance path (`checkpointer.rs`). (A larger page cache measured worse:
    /// SQLite walks the whole cache at every commit.)
    pub(super) fn open_writer(&self) -> Result<Connection, StoreError> {
        let conn = self.open_read_write()?;
        conn.execute_batch("PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 10000;")
            .map_err(store_error)?;
        Ok(conn)
    }

    /// A read-write connection set up as the sqlx connections are.
    pub(super) fn open_read_write(&self) -> Result<Connection, StoreError> {
        let conn = self.open(OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(store_error)?;
        Ok(conn)
    }

    /// Runs `read` on a read-only connection, on this thread. Only for indexed reads of a
    /// row or two: the calling task's thread waits for it.
    pub(super) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = match self.readers.take() {
            Some(conn) => conn,
            None => self.open_reader()?,
        };
        let result = read(&conn).map_err(store_error);
        self.readers.put_back(conn);
        result
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        self.open(OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    /// A connection of this thread's (no SQLite mutex) with `flags`, waiting for other
    /// connections' locks as the sqlx connections do.
    fn open(&self, flags: OpenFlags) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(&self.path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(store_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(store_error)?;
        Ok(conn)
    }
}

/// Idle read connections. A connection is taken for one synchronous read and put back, so
/// there are never more in use than threads reading at once.
#[derive(Debug)]
struct Readers(Mutex<Vec<Connection>>);

impl Readers {
    fn take(&self) -> Option<Connection> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

/// A rusqlite error as the store's error, classified as sqlx errors are
/// ([`StoreError::from`]): an outage when SQLite says "not now" (busy, locked, I/O, full,
/// cannot open), a bug of the CA otherwise.
pub(super) fn store_error(err: rusqlite::Error) -> StoreError {
    let outage = match &err {
        rusqlite::Error::SqliteFailure(e, _) => super::is_outage_code(&e.extended_code.to_string()),
        _ => false,
    };
    if outage {
        StoreError::Unavailable(Box::new(err))
    } else {
        StoreError::Internal(Box::new(err))
    }
}

/// Whether `err` is a unique or primary-key constraint violation.
pub(super) fn is_unique_violation(err: &rusqlite::Error) -> bool {
    const UNIQUE: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE;
    const PRIMARY_KEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY;
    matches!(err, rusqlite::Error::SqliteFailure(e, _)
        if e.extended_code == UNIQUE || e.extended_code == PRIMARY_KEY)
}

/// The message SQLite gave with a failed statement (a trigger's `RAISE` text), if any.
pub(super) fn message(err: &rusqlite::Error) -> Option<&str> {
    match err {
        rusqlite::Error::SqliteFailure(_, Some(message)) => Some(message),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_of_a_sqlite_url() {
        let path = |url| Embedded::path_of(url).map(|p| p.display().to_string());
        assert_eq!(
            path("sqlite:///var/lib/ca.db?mode=rwc").unwrap(),
            "/var/lib/ca.db"
        );
        assert_eq!(path("sqlite://ca.db").unwrap(), "ca.db");
        assert_eq!(path("sqlite:ca.db?mode=rwc").unwrap(), "ca.db");
        for memory in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://x?mode=memory",
        ] {
            assert!(
                matches!(path(memory), Err(StoreError::Unsupported(_))),
                "{memory}"
            );
        }
    }

    #[test]
    fn sqlite_failures_are_outages_or_bugs() {
        let failure = |code: i32| {
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some("x".into()))
        };
        assert!(store_error(failure(rusqlite::ffi::SQLITE_BUSY)).is_unavailable());
        assert!(store_error(failure(rusqlite::ffi::SQLITE_IOERR_FSYNC)).is_unavailable());
        assert!(store_error(failure(rusqlite::ffi::SQLITE_FULL)).is_unavailable());
        let bug = store_error(failure(rusqlite::ffi::SQLITE_ERROR));
        assert!(matches!(bug, StoreError::Internal(_)), "{bug:?}");
        assert!(is_unique_violation(&failure(
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        )));
        assert!(!is_unique_violation(&failure(
            rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER
        )));
        assert_eq!(message(&failure(1)), Some("x"));
    }
}
