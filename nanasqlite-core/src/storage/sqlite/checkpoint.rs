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
        if name.eq_ignore_ascii_case("busy_timeout") {
            self.note_busy_timeout();
        }
        if autocheckpoint {
            let keep_own = self.tuned_for_writes && literal.parse() == Ok(AUTOCHECKPOINT_PAGES);
            if keep_own {
                install(&self.conn);
            }
            self.own_checkpoints.set(keep_own);
        }
        self.note_settings();
        Ok(None)
    }

    /// Notes the busy timeout in force, after a pragma or the `call` escape hatch may have set
    /// it (never while the busy handler is off for a call that must not wait).
    pub(super) fn note_busy_timeout(&self) {
        let millis = self.conn.query_row("PRAGMA busy_timeout", [], |row| row.get::<_, i64>(0));
        if let Ok(millis) = millis {
            self.busy_timeout.set(std::time::Duration::from_millis(millis.try_into().unwrap_or(0)));
        }
    }

    /// Notes the settings a commit's cost hangs on, after something (a pragma, a caller's own
    /// statement, the `call` escape hatch) may have changed them: whether the checkpoint hook
    /// is still this module's, and whether a commit is still cheap enough to run on a caller's
    /// thread.
    pub(super) fn note_settings(&self) {
        if !self.tuned_for_writes {
            return; // a reader, or a connection without the performance pragmas: never cheap
        }
        let settings = Settings::read(&self.conn);
        if settings.as_ref().is_ok_and(|settings| settings.autocheckpoint > 0) {
            self.own_checkpoints.set(false); // SQLite's own hook replaced this module's
        }
        let in_memory = super::is_private(&self.conn);
        self.commits_cheaply.set(settings.is_ok_and(|settings| settings.commits_cheaply(in_memory)));
    }
}

/// The settings of a connection that decide what a commit costs.
struct Settings {
    synchronous: i64,
    journal: String,
    /// 0 while the checkpoint hook is this module's (SQLite reports 0 for a hook not its
    /// own) or there is none.
    autocheckpoint: i64,
}

impl Settings {
    fn read(conn: &Connection) -> rusqlite::Result<Self> {
        let pragma = |name: &str| conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get::<_, i64>(0));
        Ok(Self {
            synchronous: pragma("synchronous")?,
            journal: conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?,
            autocheckpoint: pragma("wal_autocheckpoint")?,
        })
    }

    /// Whether a commit neither syncs the disk nor checkpoints: `synchronous=OFF`, or `NORMAL`
    /// in WAL mode (which syncs at checkpoints only), or a database in memory; and no
    /// checkpoint of SQLite's own in the commit.
    fn commits_cheaply(&self, in_memory: bool) -> bool {
        let wal = self.journal.eq_ignore_ascii_case("wal");
        self.autocheckpoint == 0 && (in_memory || self.synchronous == 0 || (self.synchronous == 1 && wal))
    }
}
