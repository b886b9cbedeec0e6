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
    let result = work();
    DEFERRING.with(|deferring| deferring.set(false));
    (result, DUE.with(Cell::take))
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
