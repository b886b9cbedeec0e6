//! [`AsyncNanaSQLite`]: the runtime-neutral async store. A front end: each method checks and
//! encodes its input on the caller's thread, answers from the cache when it can, and otherwise
//! hands one engine operation to the pool.

pub(crate) mod builder;
mod kv;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod scan;
pub(crate) mod sql;
pub(crate) mod transaction;
pub(crate) mod typed;
mod write_back;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nanasqlite_core::engine::{CachedValue, FlushAll, Front, OpenHandles, Operation, Shared, Table};
use nanasqlite_core::hook::Registration;
use nanasqlite_core::sql::SqlPolicy;
use nanasqlite_core::storage::{AnyStorage, SqliteStorage, Storage};
use nanasqlite_core::{Error, Result};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::budget::Pending;
use crate::pool::Pool;
use crate::stats::Stats;
use crate::store::builder::AsyncBuilder;

/// A dict-like key/value table in a SQLite file, for async code on any runtime.
///
/// Every database call runs on the store's own threads (see [`AsyncBuilder`] for what runs
/// where); the caller's task only looks in the cache, encodes and decodes values, and awaits
/// a channel, so the runtime is never blocked. A cache hit completes without leaving the
/// caller's thread. Writes waiting together are committed together (group commit), and each
/// caller's future resolves only after the commit that holds its write.
///
/// The handle is cheap to clone, `Send + Sync + 'static`, and every future it returns is
/// `Send + 'static` (it can be spawned). The same files are read and written by
/// [`NanaSQLite`](nanasqlite_core::NanaSQLite) and by Python NanaSQLite. The store is generic
/// over its [`Storage`] backend; SQLite is the default.
///
/// # Cancellation
///
/// Dropping a future before its job starts means the job is skipped: a write is then not made
/// (and counted in [`Stats::abandoned`]). Once a job has started it runs to the end: a write
/// commits whole (or fails whole) even if its caller is gone. A batch is one job in one
/// transaction, so it is never applied in part.
///
/// # Examples
///
/// ```
/// use nanasqlite_pool::AsyncNanaSQLite;
/// use serde_json::{json, Value};
///
/// # futures::executor::block_on(async {
/// let db = AsyncNanaSQLite::open(":memory:").await?;
/// db.aset("user_1", &json!({"name": "Alice", "age": 25})).await?;
/// let user: Option<Value> = db.aget("user_1").await?;
/// assert_eq!(user.unwrap()["name"], "Alice");
///
/// let data: Vec<_> = (0..100).map(|i| (format!("user_{i}"), json!({"name": format!("User{i}")}))).collect();
/// db.batch_update(&data).await?;
/// let users = futures::future::try_join_all((0..3).map(|i| db.get::<Value>(&format!("user_{i}")))).await?;
/// assert_eq!(users.len(), 3);
/// db.close().await?;
/// # Ok::<(), nanasqlite_core::Error>(())
/// # }).unwrap();
/// ```
pub struct AsyncNanaSQLite<S: Storage = SqliteStorage> {
    pub(crate) table: Arc<Table<S>>,
    pub(crate) pool: Arc<Pool<S>>,
    path: Arc<PathBuf>,
    /// Held by every handle: dropping the last wakes the write-back flusher, which commits
    /// what is staged in the background.
    pub(crate) handles: Arc<OpenHandles>,
}

impl<S: Storage> Clone for AsyncNanaSQLite<S> {
    fn clone(&self) -> Self {
        Self {
            table: Arc::clone(&self.table),
            pool: Arc::clone(&self.pool),
            path: Arc::clone(&self.path),
            handles: Arc::clone(&self.handles),
        }
    }
}

impl<S: Storage> fmt::Debug for AsyncNanaSQLite<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncNanaSQLite")
            .field("path", &self.path)
            .field("table", self.table.name())
            .finish_non_exhaustive()
    }
}

// ===== opening and plumbing =====

impl AsyncNanaSQLite {
    /// Opens the database at `path` (created if missing) with table `"data"`, a lazy cache,
    /// Python NanaSQLite's pragmas, and a pool of one writer thread (readers start when
    /// concurrent reads need them).
    ///
    /// # Errors
    ///
    /// See [`AsyncBuilder::open`].
    pub fn open<P: AsRef<Path>>(path: P) -> impl Future<Output = Result<Self>> + Send + use<P> {
        Self::builder(path).open()
    }

    /// An [`AsyncBuilder`] for opening `path` with options.
    pub fn builder(path: impl AsRef<Path>) -> AsyncBuilder {
        AsyncBuilder::new(path)
    }
}

impl AsyncNanaSQLite<AnyStorage> {
    /// Opens the database `url` names, on the backend it names, chosen at run time, as
    /// [`NanaSQLite::open_url`](nanasqlite_core::NanaSQLite::open_url) does: `sqlite://app.db`,
    /// `sqlite:///var/lib/app.db`, `sqlite::memory:`, or, with the `postgres` feature,
    /// `postgres://…`. Options go on a builder made with the URL as its path
    /// (`AsyncNanaSQLite::builder(url).open_url()`).
    ///
    /// # Examples
    ///
    /// ```
    /// use nanasqlite_pool::AsyncNanaSQLite;
    ///
    /// # futures::executor::block_on(async {
    /// let db = AsyncNanaSQLite::open_url("sqlite::memory:").await?;
    /// db.set("k", &1).await?;
    /// assert_eq!(db.get::<i32>("k").await?, Some(1));
    /// db.close().await?;
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// See [`AsyncBuilder::open_url`].
    pub fn open_url(url: impl AsRef<str>) -> impl Future<Output = Result<Self>> + Send {
        AsyncBuilder::new(url.as_ref()).open_url()
    }
}

impl<S: Storage> AsyncNanaSQLite<S> {
    /// The span every call runs in, named after its operation.
    pub(crate) fn span(&self, operation: &'static str) -> tracing::Span {
        tracing::debug_span!("nanasqlite", op = operation, table = %self.table.name())
    }

    /// The rules SQL fragments of this handle are checked against.
    #[must_use]
    pub fn sql_policy(&self) -> &SqlPolicy {
        self.table.policy()
    }

    /// Another key/value table in the same file: it shares this store's threads and
    /// connections, has its own cache, and inherits this one's settings.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad name (nothing is created); [`Error::Schema`] for an
    /// existing table of another layout; [`Error::Closed`]; SQLite's error.
    pub fn table(&self, name: &str) -> Pending<Self> {
        let this = self.clone();
        Self::then(self.other_table(name, None), move |table| Pending::now(Ok(Self { table, ..this })))
    }

    /// As [`table`](Self::table), with a cache strategy of its own, as
    /// [`NanaSQLite::table_with`](nanasqlite_core::NanaSQLite::table_with).
    ///
    /// # Errors
    ///
    /// As [`table`](Self::table), and [`Error::Validation`] for a bad cache size or TTL.
    pub fn table_with(&self, name: &str, cache: nanasqlite_core::CacheStrategy) -> Pending<Self> {
        let this = self.clone();
        Self::then(self.other_table(name, Some(cache)), move |table| Pending::now(Ok(Self { table, ..this })))
    }

    /// Registers `hook` on this store's table, as
    /// [`NanaSQLite::add_hook`](nanasqlite_core::NanaSQLite::add_hook): it runs for every
    /// handle on the table once this completes. Writes run their hooks on the writer thread;
    /// reads run `after_read` on the caller's.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad field or table name (nothing is registered);
    /// [`Error::Closed`]; SQLite's error creating an index or a referenced table.
    pub fn add_hook<H: Into<Registration>>(&self, hook: H) -> Pending<()> {
        self.add_hooks(vec![hook.into()])
    }

    /// Registers `hooks` in order, in one step on the writer.
    pub(crate) fn add_hooks(&self, hooks: Vec<Registration>) -> Pending<()> {
        self.register_hooks(hooks)
    }

    /// The file this store was opened on.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The name of this handle's table.
    #[must_use]
    pub fn table_name(&self) -> &str {
        self.table.name().as_str()
    }

    /// Closes the store: in write-back mode stops staging (a later write fails with
    /// [`Error::Closed`]) and commits what is staged; stops taking jobs, runs every job
    /// already queued (each reports its own outcome to its caller), closes each connection
    /// and ends the pool's lanes, then reports how closing went. A lane's thread goes back to
    /// its [`Spawn`](crate::Spawn)er: the default [`Threads`](crate::Threads) ends it after it
    /// has waited 5 seconds for a lane of another store; a runtime's blocking pool keeps it as
    /// it keeps its others. Every handle on the file (clones and other tables) returns
    /// [`Error::Closed`] from then on. Closing again does nothing. Nothing happens before the
    /// returned future is first polled: dropped unpolled, it closes nothing, and whether a
    /// transaction is open is asked at that poll.
    /// Once polled, the store closes even if the future is then dropped (in write-back mode
    /// the close runs on a thread of its own, `nanasqlite-close`, so that its last flush
    /// cannot be cancelled halfway).
    ///
    /// Dropping every handle without `close` shuts the pool down the same way in the
    /// background (queued jobs still run), without blocking the caller. In write-back mode
    /// such a drop wakes the flusher, which commits what is staged on its own thread; a
    /// process that exits before it has finished loses what it had not committed, so await
    /// `close` before exiting.
    ///
    /// # Errors
    ///
    /// [`Error::Transaction`] while a `begin()` transaction is open;
    /// [`Error::Unflushed`] for staged rows that could not be committed; SQLite's error if
    /// closing a connection failed (the store is closed all the same after either).
    pub fn close(&self) -> Pending<()> {
        let this = self.clone();
        // Everything at the first poll: a transaction open then refuses the close.
        Pending::later(async move {
            match this.shared().write_back() {
                Some(_) => write_back::close_to_the_end(this).await,
                None => this.close_database().await,
            }
        })
    }

    /// Counters of the pool and the caches: queue depths, group sizes, cache hits and misses.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.pool.stats()
    }

    /// A point read's answer: `found` (from the cache, or read now on the caller's thread when
    /// a connection was free: both at once, a future of a few words), or else the queued read
    /// (boxed), made into the caller's answer by `finish`.
    fn finish<T: Send + 'static>(
        &self,
        key: &str,
        found: Pending<Option<Arc<CachedValue>>>,
        finish: Finish<S, T>,
    ) -> Pending<T> {
        match found.settled() {
            Ok(found) => Pending::now(found.and_then(|found| finish(&self.table, key, found))),
            Err(queued) => {
                let (table, key) = (Arc::clone(&self.table), key.to_owned());
                Pending::later(async move { finish(&table, &key, queued.await?) })
            }
        }
    }
}

/// The async store runs the engine's front end on its lanes, or on the caller's thread for a
/// point read when a connection is free: an answer is a future, ready at once when the cache
/// or an inline read had it.
impl<S: Storage> Front<S> for AsyncNanaSQLite<S> {
    type Answer<T: Send + 'static> = Pending<T>;

    fn table(&self) -> &Arc<Table<S>> {
        &self.table
    }

    fn shared(&self) -> &Arc<Shared<S>> {
        self.pool.shared()
    }

    fn ensure_open(&self) -> Result<()> {
        if self.pool.is_closed() { Err(Error::Closed) } else { Ok(()) }
    }

    fn transaction_open(&self) -> bool {
        self.pool.in_transaction()
    }

    fn notice_external_writes(&self) {
        self.pool.notice_external_writes(&self.table);
    }

    fn record_cache(&self, hit: bool) {
        self.pool.counters().record_cache(hit);
    }

    fn now<T: Send + 'static>(answer: Result<T>) -> Pending<T> {
        Pending::now(answer)
    }

    fn settled<T: Send + 'static>(answer: Pending<T>) -> std::result::Result<Result<T>, Pending<T>> {
        answer.settled()
    }

    fn after<T: Send + 'static, U: Send + 'static>(
        answer: Pending<T>,
        next: impl FnOnce(Result<T>) -> Pending<U> + Send + 'static,
    ) -> Pending<U> {
        match answer.settled() {
            Ok(result) => next(result),
            Err(queued) => Pending::later(async move { next(queued.await).await }),
        }
    }

    /// Runs a point read at once on the caller's thread when a connection is free (see
    /// [`AsyncBuilder::inline_reads`]); hands anything else to the pool, in a `nanasqlite`
    /// tracing span named after the operation (entered on the lane too).
    fn execute<O>(&self, mut operation: O) -> Pending<O::Output>
    where
        O: Operation<S> + Send + 'static,
        O::Output: Send + 'static,
    {
        let span = self.span(operation.name());
        if let Some(answer) = span.in_scope(|| self.pool.try_inline(&self.table, &mut operation)) {
            return Pending::now(answer);
        }
        let (pool, table) = (Arc::clone(&self.pool), Arc::clone(&self.table));
        Pending::later(async move {
            // At the first poll, not before: a write whose future is dropped unpolled writes nothing.
            let operation = match pool.offer_inline_write(&table, operation, &span) {
                Ok(answer) => {
                    crate::budget::yield_once().await; // writes polled beside this one join it
                    span.in_scope(|| pool.run_waiting_writes(&table));
                    return answer.await.map_err(|_| Error::Closed)?;
                }
                Err(operation) => operation,
            };
            pool.run(table, operation, span.clone()).instrument(span).await
        })
    }

    fn flush_from_thread(&self) -> impl Fn(Option<std::time::Instant>) -> Result<()> + Send + 'static {
        let (pool, table) = (Arc::clone(&self.pool), Arc::clone(&self.table));
        move |deadline| {
            let flush = FlushAll::new(Arc::clone(pool.shared()), deadline);
            let span = tracing::debug_span!("nanasqlite", op = "flush");
            write_back::block_on(pool.run(Arc::clone(&table), flush, span)).map(drop)
        }
    }

    fn shut_down(&self) -> Pending<()> {
        let pool = Arc::clone(&self.pool);
        Pending::later(async move { pool.close().await })
    }

    fn wait_for_room(&self, seen: u64) -> Pending<()> {
        let Some(waiting) = self.table.write_back_state().map(|state| state.room_made(seen)) else {
            return Pending::now(Ok(()));
        };
        Pending::later(async move {
            waiting.await;
            Ok(())
        })
    }
}

impl<S: Storage> AsyncNanaSQLite<S> {
    /// Every row, sorted by key, decoded as `T`.
    fn decoded_rows<T: DeserializeOwned + Send + 'static>(&self) -> Pending<Vec<(String, T)>> {
        let table = Arc::clone(&self.table);
        Self::then(self.all_rows(), move |rows| Pending::now(table.reader().decode_rows(rows)))
    }
}

/// What a point read makes of the row it found (or of its absence).
type Finish<S, T> = fn(&Table<S>, &str, Option<Arc<CachedValue>>) -> Result<T>;
