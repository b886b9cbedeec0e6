//! [`NanaSQLite`]: the sync, dict-like store. A front end: each method checks and encodes its
//! input on the caller's thread, answers from the cache when it can, and otherwise runs one
//! engine operation under the store's lock.

pub(crate) mod builder;
mod kv;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod scan;
mod sql;
pub(crate) mod typed;
pub(crate) mod write_back;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::database::{Database, Waits};
use crate::engine::{FlushAll, Front, OpenHandles, Opening, Operation, Shared, Table};
use crate::error::Result;
use crate::hook::Registration;
use crate::sql::SqlPolicy;
use crate::storage::{SqliteStorage, Storage};

/// A dict-like key/value table in a SQLite file: every write is committed before the call
/// returns, and reads are served from an in-memory cache once a key has been seen.
///
/// Values are any `serde` type, stored as JSON text in the same layout as Python NanaSQLite
/// (`"<table>"(key TEXT PRIMARY KEY, value TEXT)`), so either library reads the other's files.
/// The handle is cheap to clone and can be used from many threads at once; database work is
/// serialised by one lock per file, while cache hits take only the cache's read lock.
///
/// # Examples
///
/// ```
/// use nanasqlite_core::NanaSQLite;
/// use serde_json::json;
///
/// let db = NanaSQLite::open(":memory:")?;
/// db.set("user_1", &json!({"name": "Alice", "age": 25}))?;
/// let user: Option<serde_json::Value> = db.get("user_1")?;
/// assert_eq!(user.unwrap()["name"], "Alice");
/// assert!(db.delete("user_1")?);
/// assert!(db.is_empty()?);
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
pub struct NanaSQLite<S: Storage = SqliteStorage> {
    table: Arc<Table<S>>,
    database: Arc<Database<S>>,
    /// Held by every handle: dropping the last commits what write-back mode staged.
    handles: Arc<OpenHandles>,
}

impl<S: Storage> Clone for NanaSQLite<S> {
    fn clone(&self) -> Self {
        Self {
            table: Arc::clone(&self.table),
            database: Arc::clone(&self.database),
            handles: Arc::clone(&self.handles),
        }
    }
}

impl<S: Storage> fmt::Debug for NanaSQLite<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NanaSQLite")
            .field("path", &self.database.path())
            .field("table", self.table.name())
            .finish_non_exhaustive()
    }
}

// ===== opening and plumbing =====

impl<S: Storage> NanaSQLite<S> {
    /// A store on `storage`: creates (or checks) the table and takes the last steps of
    /// `opening`.
    pub(crate) fn start(storage: S, path: PathBuf, waits: Waits, opening: Opening) -> Result<Self> {
        let (shared, table) = opening.connect(&storage)?;
        let database = Arc::new(Database::new(storage, path, shared, waits));
        let store = Self { handles: Self::open_handles(&database, &table), table, database };
        store.start_flusher(&store.handles)?;
        store.finish_opening(opening)?;
        Ok(store)
    }

    /// Runs `operation`, which may borrow from its caller (a closure of the SQL helpers), as
    /// [`Front::run`] does.
    pub(crate) fn run_borrowing<O: Operation<S>>(&self, operation: O) -> Result<O::Output> {
        self.before(&operation).transpose()?;
        self.database.run(&self.table, operation)
    }

    pub(crate) fn database(&self) -> &Database<S> {
        &self.database
    }

    pub(crate) fn engine_table(&self) -> &Table<S> {
        &self.table
    }

    /// The rules SQL fragments of this handle are checked against.
    #[must_use]
    pub fn sql_policy(&self) -> &SqlPolicy {
        self.table.policy()
    }

    /// Another key/value table in the same file: it shares this store's connection and lock,
    /// has its own cache, and inherits its cache strategy, SQL policy and lock timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// let users = db.table("users")?;
    /// users.set("alice", &30)?;
    /// assert_eq!(db.get::<i32>("alice")?, None);
    /// assert_eq!(users.get::<i32>("alice")?, Some(30));
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a bad name (nothing is created),
    /// [`Error::Schema`](crate::Error::Schema) for an existing table of another layout,
    /// [`Error::Closed`](crate::Error::Closed), or SQLite's error.
    pub fn table(&self, name: &str) -> Result<Self> {
        Ok(Self { table: self.other_table(name, None)?, ..self.clone() })
    }

    /// As [`table`](Self::table), with a cache strategy of its own (Python's
    /// `table(name, cache_strategy=…)`): a small LRU for a large table beside an unbounded cache,
    /// a TTL for sessions.
    ///
    /// # Examples
    ///
    /// ```
    /// use nanasqlite_core::{CacheStrategy, NanaSQLite};
    ///
    /// let db = NanaSQLite::open(":memory:")?;
    /// let logs = db.table_with("logs", CacheStrategy::Lru { size: 2 })?;
    /// logs.batch_update([("a", 1), ("b", 2), ("c", 3)])?;
    /// assert!(!logs.is_cached("a") && logs.is_cached("c"), "the two newest only");
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`table`](Self::table), and [`Error::Validation`](crate::Error::Validation) for a bad
    /// cache size or TTL.
    pub fn table_with(&self, name: &str, cache: crate::CacheStrategy) -> Result<Self> {
        Ok(Self { table: self.other_table(name, Some(cache))?, ..self.clone() })
    }

    /// Registers `hook` on this store's table, after the hooks it has: it runs for every handle
    /// on the table from the next call on. See [`hook`](crate::hook) for where and when hooks
    /// run, and [`Builder::hook`](crate::Builder::hook) for registering them at open.
    ///
    /// # Examples
    ///
    /// ```
    /// use nanasqlite_core::{hook, NanaSQLite};
    /// use serde_json::json;
    ///
    /// let db = NanaSQLite::open(":memory:")?;
    /// let users = db.table("users")?;
    /// users.add_hook(hook::unique("email"))?;
    /// users.set("ann", &json!({"email": "a@example.com"}))?;
    /// assert!(db.table("users")?.set("bob", &json!({"email": "a@example.com"})).unwrap_err().is_refused());
    /// db.set("bob", &json!({"email": "a@example.com"}))?; // another table
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a bad field or table name (nothing is
    /// registered); [`Error::Closed`](crate::Error::Closed); SQLite's error creating an index or
    /// a referenced table.
    pub fn add_hook(&self, hook: impl Into<Registration>) -> Result<()> {
        self.register_hooks(vec![hook.into()])
    }

    /// The file this store was opened on.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.database.path()
    }

    /// The name of this handle's table.
    #[must_use]
    pub fn table_name(&self) -> &str {
        self.table.name().as_str()
    }

    /// Closes the database: in write-back mode staging stops (a later write fails with
    /// [`Error::Closed`](crate::Error::Closed)) and what is staged is committed, then the
    /// connection is closed and every handle on the file (clones and other tables included)
    /// returns [`Error::Closed`](crate::Error::Closed) from then on. Closing again does
    /// nothing. Dropping every handle closes the file too, without the report.
    ///
    /// # Errors
    ///
    /// [`Error::Transaction`](crate::Error::Transaction) while a
    /// [`transaction`](Self::transaction) runs, on any thread, or when called from the thread
    /// running one of this store's operations: a hook that runs under its lock (such as
    /// `on_write_success`) or a [`call`](Self::call) closure (nothing is committed or closed then; a
    /// transaction that begins on another thread after this check is waited for instead);
    /// [`Error::Unflushed`](crate::Error::Unflushed) for staged rows that could not be
    /// committed; [`Error::LockTimeout`](crate::Error::LockTimeout) when the commit of staged
    /// rows waited longer than the store's `lock_timeout`; SQLite's error if closing the
    /// connection failed. The store is closed all the same after any of the last three.
    pub fn close(&self) -> Result<()> {
        self.close_database()
    }
}

/// The sync store runs the engine's front end under its lock: an answer is a `Result`, had
/// when the call returns.
impl<S: Storage> Front<S> for NanaSQLite<S> {
    type Answer<T: Send + 'static> = Result<T>;

    fn table(&self) -> &Arc<Table<S>> {
        &self.table
    }

    fn shared(&self) -> &Arc<Shared<S>> {
        self.database.shared()
    }

    fn ensure_open(&self) -> Result<()> {
        self.database.ensure_open()
    }

    fn transaction_open(&self) -> bool {
        // A hook's or a `call` closure's call runs inside its operation's transaction too:
        // `close` from there must be refused before it stops the write-back flusher.
        self.database.in_transaction() || self.database.runs_an_operation_here()
    }

    fn notice_external_writes(&self) {
        self.database.notice_external_writes(&self.table);
    }

    fn now<T: Send + 'static>(answer: Result<T>) -> Result<T> {
        answer
    }

    fn settled<T: Send + 'static>(answer: Result<T>) -> std::result::Result<Result<T>, Result<T>> {
        Ok(answer)
    }

    fn after<T: Send + 'static, U: Send + 'static>(
        answer: Result<T>,
        next: impl FnOnce(Result<T>) -> Result<U> + Send + 'static,
    ) -> Result<U> {
        next(answer)
    }

    fn execute<O: Operation<S>>(&self, operation: O) -> Result<O::Output> {
        self.database.run(&self.table, operation)
    }

    fn flush_from_thread(&self) -> impl Fn(Option<std::time::Instant>) -> Result<()> + Send + 'static {
        let (database, table) = (Arc::clone(&self.database), Arc::clone(&self.table));
        move |deadline| database.run(&table, FlushAll::new(Arc::clone(database.shared()), deadline)).map(drop)
    }

    fn shut_down(&self) -> Result<()> {
        self.database.close()
    }

    fn wait_for_room(&self, seen: u64) -> Result<()> {
        if let Some(state) = self.table.write_back_state() {
            state.wait_for_room(seen, crate::store::write_back::ROOM_CHECK);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::Error;

    #[test]
    fn a_held_lock_gives_lock_timeout_and_leaves_the_cache_alone() {
        let db = NanaSQLite::builder(":memory:").lock_timeout(Duration::from_millis(20)).open().unwrap();
        db.set("k", &1).unwrap();
        let held = db.database().hold();
        assert!(matches!(db.set("k", &2), Err(Error::LockTimeout { .. })));
        assert!(matches!(db.get::<i32>("other"), Err(Error::LockTimeout { .. })));
        assert_eq!(db.get::<i32>("k").unwrap(), Some(1), "a cache hit needs no lock");
        drop(held);
        db.set("k", &2).unwrap();
        assert_eq!(db.get_fresh::<i32>("k").unwrap(), Some(2));
    }

    #[test]
    fn closing_waits_for_a_transaction_begun_on_another_thread() {
        // The store refuses `close` while a transaction is open, but one may begin between that
        // check and the connection closing: the database then waits for it to end.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("close.db");
        let db = NanaSQLite::open(&path).unwrap();
        let (began, wait_for_begin) = std::sync::mpsc::channel();
        let (end, wait_for_end) = std::sync::mpsc::channel::<()>();
        let other = db.clone();
        let transaction = std::thread::spawn(move || {
            other.transaction(|tx| {
                tx.set("k", &1)?;
                began.send(()).unwrap();
                wait_for_end.recv().unwrap();
                Ok(())
            })
        });
        wait_for_begin.recv().unwrap();
        assert!(matches!(db.close(), Err(Error::Transaction { .. })), "the store's own check refuses");
        let closer = {
            let db = db.clone();
            std::thread::spawn(move || db.database().close())
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while db.database().ensure_open().is_ok() && !closer.is_finished() {
            assert!(std::time::Instant::now() < deadline, "close neither began nor returned");
            std::thread::yield_now();
        }
        end.send(()).unwrap();
        closer.join().unwrap().expect("the close waited for the transaction instead of refusing");
        transaction.join().unwrap().unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let value: String = conn.query_row("SELECT value FROM data WHERE key = 'k'", [], |row| row.get(0)).unwrap();
        assert_eq!(value, "1", "the transaction committed before the connection closed");
    }

    #[test]
    fn closing_from_inside_a_transaction_is_refused_not_a_deadlock() {
        let db = NanaSQLite::open(":memory:").unwrap();
        db.transaction(|tx| {
            tx.set("k", &1)?;
            assert!(matches!(db.database().close(), Err(Error::Transaction { .. })));
            Ok(())
        })
        .unwrap();
        assert_eq!(db.get::<i32>("k").unwrap(), Some(1), "still open");
    }

    #[test]
    fn a_call_closure_calling_its_store_gets_an_error_not_a_wait_for_itself() {
        let db = NanaSQLite::builder(":memory:").lock_timeout(Duration::from_secs(30)).open().unwrap();
        db.set("k", &1).unwrap();
        let inner = db.clone();
        db.call(move |_| {
            assert!(matches!(inner.len(), Err(Error::Transaction { .. })), "not a LockTimeout after 30 s");
            assert_eq!(inner.get::<i32>("k").unwrap(), Some(1), "a cache hit needs no lock");
            assert!(matches!(inner.close(), Err(Error::Transaction { .. })));
            Ok(())
        })
        .unwrap();
        assert_eq!(db.len().unwrap(), 1, "still open");
    }

    #[test]
    fn a_failed_write_never_shows_in_the_cache() {
        let db = NanaSQLite::open(":memory:").unwrap();
        db.set("k", &1).unwrap();
        db.execute(
            "CREATE TRIGGER no_twos BEFORE INSERT ON data WHEN NEW.value = '2' BEGIN SELECT RAISE(ABORT, 'no'); END",
            crate::params![],
        )
        .unwrap();
        assert!(matches!(db.set("k", &2), Err(Error::Sqlite(_))));
        assert_eq!(db.get::<i32>("k").unwrap(), Some(1));
        assert!(db.batch_update([("a", 1), ("b", 2)]).is_err());
        assert!(!db.is_cached("a"));
        assert_eq!(db.get::<i32>("a").unwrap(), None);
    }

    #[test]
    fn expired_rows_are_deleted_by_the_next_write_and_never_served_again() {
        let ttl = Duration::from_millis(30);
        let cache = crate::CacheStrategy::Ttl { ttl, size: None, delete_expired: true };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ttl.db");
        let db = NanaSQLite::builder(&path).cache(cache).open().unwrap();
        let in_file = || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.query_row("SELECT COUNT(*) FROM data", [], |row| row.get::<_, i64>(0)).unwrap()
        };
        db.set("session", &"s").unwrap();
        std::thread::sleep(ttl * 2);
        assert_eq!(db.get::<String>("session").unwrap(), None, "expired: absent");
        assert_eq!(in_file(), 1, "not yet deleted from the file");
        db.set("other", &1).unwrap();
        assert_eq!(in_file(), 1, "the next write deleted it");
        assert_eq!(db.get::<String>("session").unwrap(), None);
    }
}
