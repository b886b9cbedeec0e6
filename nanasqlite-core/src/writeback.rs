//! Write-back mode: writes staged in memory and committed in the background, for write-heavy
//! work that may lose its last moments in a crash ([`WriteBack`]).
//!
//! In write-back mode `set`, `delete`, `batch_update`, `update` and `batch_delete` stage their
//! rows and return at once: reads of the same store see them at once (read your writes), and a
//! later write of a key replaces its staged one (the last write wins, deletes included). Staged
//! rows are committed in chunks, each atomic, in the order they were staged, when the
//! [`Flush`] policy says, when [`flush`](crate::NanaSQLite::flush) is called, at `close`, and
//! in the background when the last handle is dropped.
//!
//! Every other call first commits what is staged, so that it sees it and keeps its order:
//! `len`, `keys`, `items`, scans, `batch_get`, `pop`, `setdefault`, `increment`, `patch`,
//! `clear`, transactions and every SQL helper. Only point reads (`get`, `contains`) answer from
//! the staged rows without committing them.
//!
//! A chunk that fails to commit (a full disk) is replayed row by row; the rows that still fail
//! go to a bounded dead-letter queue with their error ([`DeadLetter`]), and their keys read as
//! the file has them again.
//!
//! Hooks' checks and rewrites run when a write is staged; `on_write_success` and
//! `on_delete_success` run once the chunk holding the row has committed, once per row (never
//! for a dead letter).
//!
//! # Closing and dropping
//!
//! `close` commits what is staged (within [`close_timeout`](WriteBack::close_timeout)) and
//! reports what it could not. Dropping the last handle without `close` differs by store:
//!
//! - the sync store commits what is staged before that drop returns (within the close
//!   timeout; rows it could not commit are reported through `tracing`), so a program that
//!   drops its store and returns from `main` keeps its writes;
//! - the async store must not block its caller's runtime, so its drop only wakes the flusher,
//!   which commits on its own thread right away. A process that goes on running keeps
//!   everything; one that exits (returns from `main`) before the flusher has finished loses
//!   what it had not committed. Await `close()` before exiting to keep every staged write.
//!
//! # Durability
//!
//! | mode | a panic or error in the process | a SIGKILL / crash of the process | a power cut |
//! |---|---|---|---|
//! | normal (default) | nothing acknowledged | nothing acknowledged | nothing acknowledged with `synchronous=FULL`; with the default `NORMAL` (WAL), the last commits before the cut |
//! | write-back, `close` or `flush` returned | nothing | nothing | as normal mode |
//! | write-back, otherwise | what is staged (the sync store's last drop commits it; the async store's commits it in the background, lost if the process exits first) | what is staged (up to one flush interval, or [`max_staged`](WriteBack::max_staged) rows); the file holds a prefix of the chunks | as a SIGKILL |

use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// When staged writes are committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flush {
    /// As soon as possible, in the background: the caller never waits for the commit, and
    /// writes arriving meanwhile share the next one.
    Immediate,
    /// Whenever this many rows are staged.
    Every(usize),
    /// Every interval.
    Interval(Duration),
    /// Only when asked ([`flush`](crate::NanaSQLite::flush), `close`, a call that must see
    /// the staged rows, or the bound with [`OnFull::Flush`]).
    Manual,
}

/// What a write does when the staged rows reach the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnFull {
    /// Asks the flusher to flush now (whatever the [`Flush`] policy, manual included) and waits
    /// until rows leave the staging area: the sync store's thread blocks, the async store's
    /// future waits without blocking its thread. The same on both stores.
    Wait,
    /// Commits what is staged now, on the caller's call, then stages.
    Flush,
    /// Fails with [`Error::Validation`]; nothing is staged.
    Error,
}

/// Write-back mode for a store ([`Builder::write_back`](crate::Builder::write_back)): see the
/// [module](self) for what it changes and what a crash can lose.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nanasqlite_core::{NanaSQLite, WriteBack};
///
/// let dir = tempfile::tempdir()?;
/// let db = NanaSQLite::builder(dir.path().join("wb.db"))
///     .write_back(WriteBack::interval(Duration::from_millis(100)).chunk_size(1000).max_staged(100_000))
///     .open()?;
/// db.set("counter", &1)?; // staged: returns before any commit
/// assert_eq!(db.get::<i32>("counter")?, Some(1)); // read your writes
/// db.flush()?; // committed
/// assert!(db.dead_letters().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteBack {
    pub(crate) flush: Flush,
    pub(crate) chunk_size: usize,
    pub(crate) max_staged: usize,
    pub(crate) max_staged_bytes: usize,
    pub(crate) on_full: OnFull,
    pub(crate) dead_letter_capacity: usize,
    pub(crate) close_timeout: Duration,
    pub(crate) load_all: bool,
    pub(crate) cache_committed: bool,
}

impl WriteBack {
    fn with(flush: Flush) -> Self {
        Self {
            flush,
            chunk_size: 1000,
            max_staged: 100_000,
            max_staged_bytes: 256 << 20,
            on_full: OnFull::Wait,
            dead_letter_capacity: 1000,
            close_timeout: Duration::from_secs(30),
            load_all: false,
            cache_committed: true,
        }
    }

    /// Commits in the background as soon as possible ([`Flush::Immediate`]).
    #[must_use]
    pub fn immediate() -> Self {
        Self::with(Flush::Immediate)
    }

    /// Commits whenever `rows` rows are staged ([`Flush::Every`]).
    #[must_use]
    pub fn every(rows: usize) -> Self {
        Self::with(Flush::Every(rows.max(1)))
    }

    /// Commits every `interval` ([`Flush::Interval`]).
    #[must_use]
    pub fn interval(interval: Duration) -> Self {
        Self::with(Flush::Interval(interval))
    }

    /// Commits only when asked ([`Flush::Manual`]).
    #[must_use]
    pub fn manual() -> Self {
        Self::with(Flush::Manual)
    }

    /// Python NanaSQLite's `memory_first`: the whole table loaded at open, every write
    /// staged, committed every second and at close.
    #[must_use]
    pub fn memory_first() -> Self {
        Self { load_all: true, ..Self::interval(Duration::from_secs(1)) }
    }

    /// Whether a staged row stays in the cache once its chunk has committed (default `true`:
    /// it is the table's cache, with its strategy). With `false` it leaves the cache when it
    /// commits, unless it was written again meanwhile: an import of many rows, or a table
    /// written more than read, then holds in memory only what is staged (and what reads bring
    /// in), not every row it ever wrote. A bounded cache strategy (`CacheStrategy::Lru`) bounds
    /// it too, for reads as well.
    #[must_use]
    pub fn cache_committed(mut self, keep: bool) -> Self {
        self.cache_committed = keep;
        self
    }

    /// The most rows one commit holds. Default 1,000.
    #[must_use]
    pub fn chunk_size(mut self, rows: usize) -> Self {
        self.chunk_size = rows.max(1);
        self
    }

    /// The most rows staged at once, in every table of the store together (a key staged twice
    /// counts once): a hard bound, whatever number of threads write. Default 100,000.
    #[must_use]
    pub fn max_staged(mut self, rows: usize) -> Self {
        self.max_staged = rows.max(1);
        self
    }

    /// The most bytes of staged keys and values (their JSON text), in every table together.
    /// Default 256 MiB.
    #[must_use]
    pub fn max_staged_bytes(mut self, bytes: usize) -> Self {
        self.max_staged_bytes = bytes.max(1);
        self
    }

    /// What a write does at the bound. Default [`OnFull::Wait`].
    #[must_use]
    pub fn on_full(mut self, on_full: OnFull) -> Self {
        self.on_full = on_full;
        self
    }

    /// The most rows the dead-letter queue keeps; the oldest are dropped (and counted) past it.
    /// Default 1,000.
    #[must_use]
    pub fn dead_letter_capacity(mut self, rows: usize) -> Self {
        self.dead_letter_capacity = rows;
        self
    }

    /// How long `close` spends committing what is staged before it gives up and reports it.
    /// Default 30 s.
    #[must_use]
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Checks the settings (done at open).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a zero interval.
    pub fn validate(&self) -> Result<()> {
        if let Flush::Interval(interval) = self.flush
            && interval.is_zero()
        {
            return Err(Error::validation("a write-back interval must be longer than zero"));
        }
        Ok(())
    }
}

/// A staged row that could not be committed, with why. `Debug` prints the value's size, not
/// the value (which may be an encrypted store's plaintext).
#[derive(Clone)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its table.
    pub table: String,
    /// Its key.
    pub key: String,
    /// The JSON text it was to store; `None` for a delete.
    pub value: Option<String>,
    /// Why its commit failed.
    pub error: String,
    /// When.
    pub at: SystemTime,
}

impl std::fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetter")
            .field("table", &self.table)
            .field("key", &self.key)
            .field("value_bytes", &self.value.as_ref().map(String::len))
            .field("error", &self.error)
            .field("at", &self.at)
            .finish()
    }
}

/// What write-back mode has done, as [`write_back_stats`](crate::NanaSQLite::write_back_stats)
/// reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteBackStats {
    /// Rows staged now (committing included).
    pub staged: usize,
    /// Bytes of their values.
    pub staged_bytes: usize,
    /// Flushes run (each commits one or more chunks).
    pub flushes: u64,
    /// Chunks committed.
    pub chunks: u64,
    /// Rows committed.
    pub rows_committed: u64,
    /// The largest chunk committed.
    pub largest_chunk: usize,
    /// Rows in the dead-letter queue now.
    pub dead_letters: usize,
    /// Rows dropped from a full dead-letter queue.
    pub dead_letters_dropped: u64,
}
