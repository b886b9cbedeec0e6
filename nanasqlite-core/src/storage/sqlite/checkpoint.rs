//! Automatic checkpoints that a write committed on a caller's thread leaves to the
//! connection's own thread.
//!
//! SQLite's own automatic checkpoint runs inside the commit that lets the write-ahead log grow
//! past [`AUTOCHECKPOINT_PAGES`]; on a caller's thread that would turn one cheap commit into a
//! copy of the whole log. The writer connection therefore gets a log hook of its own (which
//! replaces SQLite's): a commit on the connection's own thread checkpoints exactly where
//! SQLite would, and a commit on a caller's thread only notes that a checkpoint is due, for
//! the connection's thread to run next. File size and checkpoint behaviour stay SQLite's.

use std::cell::Cell;
use std::ffi::c_int;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

use super::SqliteStorage;
use crate::error::Result;
use crate::sql::{SqlValue, plain_pragma};

/// SQLite's default `wal_autocheckpoint`: the log's size in pages past which a commit
/// checkpoints.
pub(super) const AUTOCHECKPOINT_PAGES: c_int = 1000;

thread_local! {
    /// Set while this thread commits on behalf of a connection it does not own.
    static DEFERRING: Cell<bool> = const { Cell::new(false) };
    /// A commit made while deferring found the log past its bound.
    static DUE: Cell<bool> = const { Cell::new(false) };
}

/// Puts the checkpoint hook on the read-write connection `conn`.
pub(super) fn install(conn: &Connection) {
    conn.wal_hook(Some(after_commit));
}

/// Runs `work` (which commits) with checkpoints deferred; its result and whether one is due.
pub(crate) fn deferred<R>(work: impl FnOnce() -> R) -> (R, bool) {
    DUE.with(|due| due.set(false));
    DEFERRING.with(|deferring| deferring.set(true));
    let result = {
        // Lifted even if `work` panics: the thread's later commits must checkpoint again.
        let _deferring = Deferring;
        work()
    };
    (result, DUE.with(Cell::take))
}

/// Ends [`deferred`]'s deferral when dropped.
struct Deferring;

impl Drop for Deferring {
    fn drop(&mut self) {
        DEFERRING.with(|deferring| deferring.set(false));
    }
}

/// SQLite's hook after each commit in WAL mode, with the log's size in pages.
fn after_commit(wal: &Wal, pages: c_int) -> rusqlite::Result<()> {
    if pages < AUTOCHECKPOINT_PAGES {
        return Ok(());
    }
    if DEFERRING.with(Cell::get) {
        DUE.with(|due| due.set(true));
    } else {
        // As SQLite's own hook: a checkpoint that cannot run now (another connection is in
        // one) is tried again after the next commit. An error here would make the commit,
        // which has happened, report a failure.
        let _ = wal.checkpoint();
    }
    Ok(())
}

impl SqliteStorage {
    /// [`SqlConnection::pragma`](crate::sql::SqlConnection::pragma) on SQLite: as any
    /// connection, but `wal_autocheckpoint` reads as the bound this module keeps while its hook
    /// is on (SQLite reports 0 for a hook not its own), setting it to that bound keeps the hook
    /// (SQLite would put its own in place), and after any pragma set the connection checks
    /// whether its commits are still cheap.
    pub(super) fn run_pragma(&self, name: &str, literal: Option<&str>) -> Result<Option<SqlValue>> {
        let autocheckpoint = name.eq_ignore_ascii_case("wal_autocheckpoint");
        let Some(literal) = literal else {
            if autocheckpoint && self.own_checkpoints.get() {
                return Ok(Some(SqlValue::Integer(AUTOCHECKPOINT_PAGES.into())));
            }
            return plain_pragma(self, name, None);
        };
        plain_pragma(self, name, Some(literal))?;
        if autocheckpoint {
            let keep_own = self.tuned_for_writes && literal.parse() == Ok(AUTOCHECKPOINT_PAGES);
            if keep_own {
                install(&self.conn);
            }
            self.own_checkpoints.set(keep_own);
        }
        self.check_commit_cost();
        Ok(None)
    }

    /// Checks again whether a commit on this connection is cheap enough to run on a caller's
    /// thread, after something (a pragma, the `call` escape hatch) may have changed it.
    pub(super) fn check_commit_cost(&self) {
        let cheap = self.tuned_for_writes && commits_without_sync_or_checkpoint(&self.conn).unwrap_or(false);
        self.commits_cheaply.set(cheap);
    }
}

/// Whether a commit on `conn` neither syncs the disk nor checkpoints: `synchronous=OFF`, or
/// `NORMAL` with a log that needs no sync at commit (WAL, or none); and no checkpoint of
/// SQLite's own in the commit (it reports `wal_autocheckpoint` as 0 while the hook is this
/// module's, or when there is none).
fn commits_without_sync_or_checkpoint(conn: &Connection) -> rusqlite::Result<bool> {
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
    let journal: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    let autocheckpoint: i64 = conn.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))?;
    let log_syncs_at_commit = !["wal", "memory", "off"].iter().any(|mode| journal.eq_ignore_ascii_case(mode));
    Ok(autocheckpoint == 0 && (synchronous == 0 || (synchronous == 1 && !log_syncs_at_commit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_deferring_ends_the_deferral() {
        let caught = std::panic::catch_unwind(|| deferred(|| panic!("a write panicked")));
        assert!(caught.is_err());
        assert!(!DEFERRING.with(Cell::get), "later commits on this thread checkpoint again");
        let ((), due) = deferred(|| DUE.with(|due| due.set(true)));
        assert!(due, "a deferral still reports a checkpoint due");
        assert!(!DEFERRING.with(Cell::get));
    }
}
