//! Checkpoints of the embedded database's WAL, on a thread of their own.
//!
//! A checkpoint copies the pages committed to the WAL back into the database file. SQLite
//! syncs the file, and lets the next commit start the WAL over from its beginning, only when
//! a checkpoint has copied the WAL to its very end. Under a steady stream of issuances a
//! checkpoint made beside the writer never gets there: the writer commits while it copies.
//! So the WAL grew to the writer's backstop of 10,000 pages, and the writer checkpointed
//! itself, syncing in one go every page the checkpointer had copied meanwhile: 55–60 ms of
//! fsync on a store of a few GB, seven times in eight seconds, with every issuance waiting
//! behind it (BENCHMARKS.md, issue 14).
//!
//! Here each round has two steps:
//!
//! 1. Beside the writer: `PASSIVE` checkpoints, each followed by an fdatasync of the file,
//!    until what is left to copy is small. The pages are then on disk before SQLite asks.
//! 2. When the WAL is long enough to be worth starting over, one more checkpoint holding the
//!    process's write turn, so that nothing is added while it runs. It reaches the end and
//!    SQLite syncs the file, which now holds few unsynced pages. The writer waits for those
//!    few, and its next commit starts the WAL over.
//!
//! Durability does not rest on step 1's syncs. They only move the work out of step 2: SQLite
//! still syncs the file itself before it lets the WAL start over.

use std::fs::File;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

use super::embedded::{Embedded, store_error};
use super::{StoreError, WriteTurn};

/// The least time between two rounds. Short, so that each round's syncs are small: on a
/// store of 2.4 GB at c=16 the p99 was 19 ms with 100 ms between rounds, 12–13 ms with 30,
/// 9–11 with 10 or none, and 56 with 1 s (BENCHMARKS.md, issue 14).
const ROUND_INTERVAL: Duration = Duration::from_millis(10);

/// A round's first step ends when at most this many frames are left to copy…
const LEFT_FOR_THE_TURN: i64 = 32;

/// …or after this many checkpoints, when the writer adds frames as fast as they are copied.
const MAX_PASSES: usize = 16;

/// The second step runs once the WAL holds this many frames (4 KiB pages: 4 MiB). Between
/// 200 and 2,000 the p99 measured the same.
const START_OVER_AT: i64 = 1_000;

/// The checkpointer's handle: the writer nudges it after each commit.
#[derive(Debug)]
pub(super) struct Checkpointer(mpsc::SyncSender<()>);

impl Checkpointer {
    /// Starts the thread, on a connection of its own and the database file opened once more
    /// for its syncs. It ends with the last nudge's sender.
    pub(super) fn start(embedded: &Embedded, turn: WriteTurn) -> Result<Self, StoreError> {
        let conn = embedded.open_read_write()?;
        let file = DatabaseFile::open(embedded)?;
        let (nudges, nudged) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("wal-checkpointer".into())
            .spawn(move || {
                while nudged.recv().is_ok() {
                    if let Err(e) = round(&conn, &file, &turn) {
                        tracing::warn!(error = %e, "a WAL checkpoint failed; the next nudge retries");
                    }
                    std::thread::sleep(ROUND_INTERVAL);
                }
            })
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Self(nudges))
    }

    /// Tells the checkpointer that something was committed; never waits.
    pub(super) fn nudge(&self) {
        let _ = self.0.try_send(());
    }
}

/// One round: copy beside the writer until little is left, then, if the WAL is long, the
/// rest holding the write turn.
fn round(conn: &Connection, file: &DatabaseFile, turn: &WriteTurn) -> Result<(), StoreError> {
    let mut wal = checkpoint(conn)?;
    file.sync()?;
    for _ in 1..MAX_PASSES {
        if wal.left_to_copy() <= LEFT_FOR_THE_TURN {
            break;
        }
        wal = checkpoint(conn)?;
        file.sync()?;
    }
    if wal.frames >= START_OVER_AT {
        let _turn = turn.blocking_lock();
        checkpoint(conn)?;
    }
    Ok(())
}

/// The WAL as a checkpoint left it.
#[derive(Debug, Clone, Copy)]
struct WalState {
    /// Frames in the WAL.
    frames: i64,
    /// Of those, the frames copied into the database file.
    copied: i64,
}

impl WalState {
    fn left_to_copy(self) -> i64 {
        self.frames - self.copied
    }
}

/// A `PASSIVE` checkpoint: copies what no reader still needs from the WAL, never waits for
/// the writer nor stops it.
fn checkpoint(conn: &Connection) -> Result<WalState, StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok(WalState {
            frames: row.get(1)?,
            copied: row.get(2)?,
        })
    })
    .map_err(store_error)
}

/// The database file, open for syncs only, and never closed: closing any descriptor of a
/// file drops every POSIX lock the process holds on it, SQLite's own included (which is why
/// SQLite itself defers such closes). One descriptor per store opened.
#[derive(Debug)]
struct DatabaseFile(std::mem::ManuallyDrop<File>);

impl DatabaseFile {
    fn open(embedded: &Embedded) -> Result<Self, StoreError> {
        let file = File::open(embedded.path()).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Self(std::mem::ManuallyDrop::new(file)))
    }

    /// Writes the pages copied so far to the disk (fdatasync).
    fn sync(&self) -> Result<(), StoreError> {
        self.0
            .sync_data()
            .map_err(|e| StoreError::Unavailable(Box::new(e)))
    }
}
