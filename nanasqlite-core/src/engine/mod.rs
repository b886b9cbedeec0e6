//! The engine: every store operation, written once, for both stores and any backend.
//!
//! An operation ([`Operation`]) is a small value (the key, the encoded value, …) whose
//! [`run`](Operation::run) does its work on a [`Storage`] inside the transaction or read
//! snapshot it is handed, and returns its result with the change to the caches it implies
//! ([`Applied`], whose change a store hands to [`Table::apply`] once committed). It never
//! opens a transaction of its own, never locks, never touches the cache. The two stores are
//! two ways of running the same operations:
//!
//! - the sync store ([`NanaSQLite`](crate::NanaSQLite)) takes its lock, begins a transaction
//!   for a write (`run_write`), runs the operation, commits, and applies the change;
//! - the async store's writer thread (crate `nanasqlite-pool`) runs the writes waiting in its
//!   queue between one begin and one commit ([`write_group`], expired rows deleted first),
//!   and applies each one's change after the commit; its readers run reads in one snapshot.
//!
//! A capability added here (a codec, a check around writes, a backend) is therefore added to
//! both stores at once.
//!
//! **Internal to the workspace.** This module is public only so that the pool crate
//! (`nanasqlite-pool`) can run operations; it is hidden from the documentation and carries no
//! stability promise: any item here may change or go in any release. Applications use the
//! stores.

mod file;
mod front;
mod front_sql;
mod hooks;
pub(crate) mod kv;
mod open;
mod room;
pub(crate) mod sql;
mod staging;
mod table;

use crate::error::Result;
use crate::storage::{End, Storage};

// What the pool crate runs the stores with: the front end, operations and their results, the
// state every table of a file shares, and the few helpers its lanes and builder call.
pub(crate) use crate::cache::CacheChange;
pub use crate::cache::CachedValue;
pub use crate::scan::Paging;
pub use file::{CheckExternalWrites, Checkpoint};
pub use front::Front;
pub use front_sql::{SqlFront, encode_record};
pub use hooks::contained;
pub use kv::{RowsPage, encode};
pub use open::{Opening, Options};
pub use sql::Call;
pub use staging::{FlushAll, OpenHandles};
pub(crate) use table::TableSettings;
pub use table::{Shared, Table};

// The rest is the engine's own, for the sync store and the front end.
pub(crate) use crate::cache::Lookup;
pub(crate) use file::{Backup, DeleteExpired, OpenTable, Rekey, Restore, Size, purge_expired};
pub(crate) use hooks::{AddHooks, Events, Reader};
pub(crate) use kv::{
    AllRows, BatchDelete, BatchReport, BatchUpdate, Clear, Contains, Count, Delete, Get, GetByPath, GetMany, KeyValue,
    Keys, LoadAll, Pop, PopItem, ScanPage, Set, SetDefault, Transform, UnreadableKeys, encode_rows,
    encode_rows_partial,
};
pub(crate) use sql::{RunTransaction, Sql, Transaction};
pub(crate) use staging::{Flushed, Remedy, Staging, retry_dead_letters, stage};
pub(crate) use table::ReadStart;

/// Where an operation runs: writes are grouped into one write transaction, reads into one read
/// snapshot, and the two never share one. An exclusive operation runs alone on the writer,
/// outside any transaction (it may open its own, or need none, as `VACUUM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Reads only; may run on a read-only connection.
    Read,
    /// Writes; runs inside a write transaction that the runner opens and commits.
    Write,
    /// Runs alone on the read-write connection, outside any transaction.
    Exclusive,
}

/// What an operation returns: its result for the caller, and what the table's cache must
/// learn once the transaction holding it has committed.
#[derive(Debug)]
#[must_use = "the change must be applied once committed"]
pub struct Applied<R> {
    /// The caller's answer.
    pub output: R,
    /// What the cache must learn: a token for [`Table::apply`], opaque outside the engine.
    pub change: CacheChange,
}

impl<R> Applied<R> {
    /// An answer that changes nothing in the cache.
    pub fn plain(output: R) -> Self {
        Self { output, change: CacheChange::none() }
    }

    pub(crate) fn with(output: R, change: crate::cache::Change) -> Self {
        Self { output, change: CacheChange::new(change) }
    }
}

/// One store operation, run on a connection by whichever store holds it.
///
/// `run` may be called again on the same value: when another write of its group failed, the
/// group's transaction is rolled back and the others run again. So it must not consume what it
/// needs (an exclusive operation, which never shares a transaction, runs once).
pub trait Operation<S: Storage> {
    /// The caller's answer.
    type Output;

    /// The operation's name, for tracing (`"set"`, `"query"`, …).
    fn name(&self) -> &'static str;

    /// Where it runs.
    fn kind(&self) -> Kind;

    /// Whether it touches one row by its key (a point read or write), cheap enough (a few
    /// microseconds) for the async store to run on the caller's thread when a connection is
    /// free at that instant ([`may_write_inline`] for a write).
    fn inline(&self) -> bool {
        false
    }

    /// Whether it reads rows of the file that the cache would answer for key by key (a count,
    /// a listing, a scan, a batch read): the rows that expired in a TTL cache with
    /// `delete_expired` are then deleted first (`DeleteExpired`), so that it does not list
    /// a key every point read calls absent.
    fn lists(&self) -> bool {
        false
    }

    /// Does the work on `storage` for `table`, inside the transaction or snapshot the runner
    /// opened for its [`Kind`].
    ///
    /// # Errors
    ///
    /// The operation's error; the runner then rolls its transaction back.
    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<Self::Output>>;
}

/// Runs write `operation` as the sync store does: in one write transaction of its own, with the
/// file's expired rows purged first. The caller applies the change after this returns.
///
/// # Errors
///
/// The operation's error, or the backend's when the transaction cannot begin or commit.
pub(crate) fn run_write<S: Storage, O: Operation<S>>(
    storage: &mut S,
    shared: &Shared<S>,
    table: &Table<S>,
    operation: &mut O,
) -> Result<Applied<O::Output>> {
    write_group(storage, Some(shared), |storage| {
        let applied = operation.run(storage, table);
        let end = if applied.is_ok() { End::Commit } else { End::Rollback };
        (applied, end)
    })
}

/// Whether write `operation` on `table` may run on a caller's thread (the async store's inline
/// writes, run through [`Storage::write_on_callers_thread`]): a point write, on a table with
/// neither hooks (a hook is the user's code, and a unique or foreign-key hook reads the file)
/// nor staged writes.
pub fn may_write_inline<S: Storage, O: Operation<S>>(table: &Table<S>, operation: &O) -> bool {
    operation.inline() && operation.kind() == Kind::Write && table.hooks().is_empty() && !table.writes_back()
}

/// Runs `work` in one write transaction, which `work` ends, after deleting the rows that
/// expired in the caches of `shared` (a TTL cache with `delete_expired`); once it has
/// committed, confirms those deletions to the caches. Every write transaction of either store
/// begins here: the sync store's one operation (`run_write`), the writer lane's group.
///
/// # Errors
///
/// The backend's error when the transaction cannot begin or commit, or the expired rows cannot
/// be deleted (then `work` does not run); otherwise what `work` returned.
pub fn write_group<S: Storage, R>(
    storage: &mut S,
    shared: Option<&Shared<S>>,
    work: impl FnOnce(&mut S) -> (Result<R>, End),
) -> Result<R> {
    let (result, purged) = storage.transaction(|storage| {
        let purged = match shared.map(|shared| purge_expired(storage, shared)).transpose() {
            Ok(purged) => purged.unwrap_or_default(),
            Err(error) => return ((Err(error), None), End::Rollback),
        };
        let (result, end) = work(storage);
        ((result, (end == End::Commit).then_some(purged)), end)
    })?;
    if let Some(purged) = purged {
        purged.apply();
    }
    result
}
