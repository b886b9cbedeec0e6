//! [`AsyncNanaSQLite`]: the runtime-neutral async store. A front end: each method checks and
//! encodes its input on the caller's thread, answers from the cache when it can, and otherwise
//! hands one engine operation to the pool.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::FutureExt as _;
use futures_util::future::{Either, ready};
use nanasqlite_core::engine::{
    self, AddHooks, AllRows, BatchDelete, BatchReport, BatchUpdate, CachedValue, Clear, Contains, Count, Delete,
    DeleteExpired, Get, GetByPath, GetMany, KeyValue, Keys, LoadAll, Lookup, OpenHandles, OpenTable, Operation, Pop,
    PopItem, Set, SetDefault, Table, UnreadableKeys,
};
use nanasqlite_core::hook::Registration;
use nanasqlite_core::sql::SqlPolicy;
use nanasqlite_core::storage::{SqliteStorage, Storage};
use nanasqlite_core::{Amount, Error, Identifier, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;

use crate::batch::BatchFuture;
use crate::budget::{Answer, budgeted};
use crate::builder::AsyncBuilder;
use crate::pool::Pool;
use crate::stats::Stats;

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

/// Either the answer (found in the cache), or an operation to hand to a lane.
enum Plan<T, O> {
    Answered(Result<T>),
    Run(O),
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

impl<S: Storage> AsyncNanaSQLite<S> {
    /// A handle on `table` of `pool`, registered with the pool's database.
    pub(crate) fn new(pool: Arc<Pool<S>>, table: Table<S>, path: Arc<PathBuf>, handles: Arc<OpenHandles>) -> Self {
        let table = Arc::new(table);
        pool.shared().register(&table);
        Self { table, pool, path, handles }
    }

    /// Hands `operation` on this handle's table to the pool, in a `nanasqlite` tracing span
    /// named after the operation (entered on the lane too).
    ///
    /// A point read runs at once on the caller's thread instead when a connection is free (see
    /// [`AsyncBuilder::inline_reads`]).
    pub(crate) fn run<O>(&self, operation: O) -> impl Future<Output = Result<O::Output>> + Send + use<O, S>
    where
        O: Operation<S> + Send + 'static,
        O::Output: Send + 'static,
    {
        self.run_prepared(Ok(operation))
    }

    /// As [`run`](Self::run), for an operation whose input may have failed to prepare on the
    /// caller's thread (then the future answers with that error). One state machine: wrapping
    /// `run`'s future in another would store it twice.
    fn run_prepared<O>(&self, mut prepared: Result<O>) -> impl Future<Output = Result<O::Output>> + Send + use<O, S>
    where
        O: Operation<S> + Send + 'static,
        O::Output: Send + 'static,
    {
        let span = self.span(prepared.as_ref().map_or("invalid input", |operation| operation.name()));
        let inline = match &mut prepared {
            Ok(operation) => span.in_scope(|| self.pool.try_inline(&self.table, operation)),
            Err(_) => None,
        };
        self.answer_or_queue(prepared, inline, span)
    }

    /// The span every call runs in, named after its operation.
    pub(crate) fn span(&self, operation: &'static str) -> tracing::Span {
        tracing::debug_span!("nanasqlite", op = operation, table = %self.table.name())
    }

    /// The future of `prepared`: its answer when it already ran on the caller's thread
    /// (`inline`), else the lane's, after what write-back mode has staged is committed.
    fn answer_or_queue<O>(
        &self,
        prepared: Result<O>,
        inline: Option<Result<O::Output>>,
        span: tracing::Span,
    ) -> impl Future<Output = Result<O::Output>> + Send + use<O, S>
    where
        O: Operation<S> + Send + 'static,
        O::Output: Send + 'static,
    {
        // In write-back mode, what is staged commits first, unless this is a point read (which
        // sees staged rows through the cache). Boxed: it is rare, and must not grow every
        // operation's future.
        let flush = match &prepared {
            Ok(operation) if !operation.inline() => self.flush_first().map(Box::pin),
            _ => None,
        };
        // A listing runs after the rows that expired (TTL, `delete_expired`) are deleted.
        let delete_expired =
            prepared.as_ref().is_ok_and(|operation| operation.lists() && self.pool.shared().expired_pending());
        let (pool, table, lane_span) = (Arc::clone(&self.pool), Arc::clone(&self.table), span.clone());
        let queued = async move {
            let operation = prepared?;
            if let Some(flush) = flush {
                flush.await?;
            }
            if delete_expired {
                Box::pin(pool.run(Arc::clone(&table), DeleteExpired, lane_span.clone())).await?;
            }
            match inline {
                Some(answer) => answer,
                None => pool.run(table, operation, lane_span).await,
            }
        }
        .instrument(span);
        budgeted(queued)
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
    pub fn table(&self, name: &str) -> impl Future<Output = Result<Self>> + Send + use<S> {
        let name = self.ensure_open().and_then(|()| Identifier::new(name));
        let this = self.clone();
        async move {
            let name = name?;
            let handle = this.run(OpenTable::new(name.clone())).await?;
            let table = this.pool.shared().table(name, handle, this.table.settings().clone());
            Ok(Self::new(this.pool, table, this.path, this.handles))
        }
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
    pub fn add_hook<H: Into<Registration>>(&self, hook: H) -> impl Future<Output = Result<()>> + Send + use<H, S> {
        self.add_hooks(vec![hook.into()])
    }

    /// Registers `hooks` in order, in one step on the writer.
    pub(crate) fn add_hooks(&self, hooks: Vec<Registration>) -> impl Future<Output = Result<()>> + Send + use<S> {
        self.run(AddHooks::new(hooks))
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

    /// Closes the store: stops taking jobs, runs every job already queued (each reports its
    /// own outcome to its caller), closes each connection and ends the pool's lanes, then
    /// reports how closing went. A lane's thread goes back to its [`Spawn`](crate::Spawn)er:
    /// the default [`Threads`](crate::Threads) ends it after it has waited 5 seconds for a lane
    /// of another store; a runtime's blocking pool keeps it as it keeps its others. Every handle on
    /// the file (clones and other tables) returns [`Error::Closed`] from then on. Closing again
    /// does nothing.
    ///
    /// Dropping every handle without `close` shuts the pool down the same way in the
    /// background (queued jobs still run), without blocking the caller. In write-back mode
    /// such a drop wakes the flusher, which commits what is staged on its own thread; a
    /// process that exits before it has finished loses what it had not committed, so await
    /// `close` before exiting.
    ///
    /// # Errors
    ///
    /// [`Error::Transaction`] while a `begin()` transaction is open; SQLite's error if closing a
    /// connection failed (the store is closed all the same).
    pub fn close(&self) -> impl Future<Output = Result<()>> + Send + use<S> {
        let (pool, flush) = (Arc::clone(&self.pool), self.flush_for_close());
        async move {
            if pool.in_transaction() {
                return Err(Error::Transaction {
                    message: "cannot close the database during a transaction".to_owned(),
                });
            }
            let unflushed = flush.await;
            pool.close().await?;
            unflushed
        }
    }

    /// Counters of the pool and the caches: queue depths, group sizes, cache hits and misses.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.pool.stats()
    }

    pub(crate) fn ensure_open(&self) -> Result<()> {
        if self.pool.is_closed() { Err(Error::Closed) } else { Ok(()) }
    }

    /// Whether the store is open, noticing other writers first when watching for them.
    fn ready(&self) -> Result<()> {
        self.ensure_open()?;
        self.pool.notice_external_writes(&self.table);
        Ok(())
    }

    /// What the cache knows of `key`, counting the hit or miss.
    fn lookup(&self, key: &str) -> Result<Lookup> {
        self.counted_lookup(key, false)
    }

    /// As [`lookup`](Self::lookup); `keeping` for a read that keeps its decoded form in the
    /// entry ([`Table::lookup_for`](nanasqlite_core::engine::Table::lookup_for)).
    fn counted_lookup(&self, key: &str, keeping: bool) -> Result<Lookup> {
        self.ready()?;
        let lookup = self.table.lookup_for(key, keeping);
        self.pool.counters().record_cache(!matches!(lookup, Lookup::Miss));
        Ok(lookup)
    }

    /// The cached value of `key`, or the read to run.
    fn cached(&self, key: &str, keeping: bool) -> Plan<Option<Arc<CachedValue>>, Get<String>> {
        match self.counted_lookup(key, keeping) {
            Ok(Lookup::Hit(value)) => Plan::Answered(Ok(Some(value))),
            Ok(Lookup::Absent) => Plan::Answered(Ok(None)),
            Ok(Lookup::Miss) => Plan::Run(Get::new(&self.table, key.to_owned())),
            Err(error) => Plan::Answered(Err(error)),
        }
    }

    /// A point read of `key`, answered through `finish`: from the cache, or read now on the
    /// caller's thread when a connection is free (both ready at once, as a future of a few
    /// words), or else queued for a lane (boxed: a queued read's state machine is 1.2 KB, which
    /// every hit's future would otherwise carry and move). `keeping` for a read that keeps its
    /// decoded form in the cache entry.
    fn point_read<T: Send + 'static>(&self, key: &str, keeping: bool, finish: Finish<S, T>) -> PointRead<T> {
        let get = match self.cached(key, keeping) {
            Plan::Answered(found) => return now(found.and_then(|found| finish(&self.table, key, found))),
            Plan::Run(get) => get,
        };
        let read = match self.read_now(get) {
            Ok(found) => return now(found.and_then(|found| finish(&self.table, key, found))),
            Err((get, span)) => self.answer_or_queue(Ok(get), None, span),
        };
        let (table, key) = (Arc::clone(&self.table), key.to_owned());
        Answer::later(async move { finish(&table, &key, read.await?) })
    }

    /// Runs `operation` now on the caller's thread if a connection is free; otherwise hands
    /// it back with its span, to be queued (without trying again).
    fn read_now<O: Operation<S>>(
        &self,
        mut operation: O,
    ) -> std::result::Result<Result<O::Output>, (O, tracing::Span)> {
        let span = self.span(operation.name());
        match span.in_scope(|| self.pool.try_inline(&self.table, &mut operation)) {
            Some(answer) => Ok(answer),
            None => Err((operation, span)),
        }
    }
}

/// What a point read makes of the row it found (or of its absence).
type Finish<S, T> = fn(&Table<S>, &str, Option<Arc<CachedValue>>) -> Result<T>;

/// The future of a point read: ready (a hit, or a read run on the caller's thread), or queued;
/// taking part in the cooperative budget either way.
type PointRead<T> = Answer<Result<T>>;

/// A point read's answer, had at once: ready at the first poll, unless the budget says to
/// yield first.
fn now<T>(answer: Result<T>) -> PointRead<T> {
    Answer::now(answer)
}

// ===== reads =====

impl<S: Storage> AsyncNanaSQLite<S> {
    /// The value of `key`, or `None` if it is absent (a stored JSON `null` is present).
    /// A cache hit completes on the caller's thread; a miss is read by a lane and cached.
    /// A hit decodes the cached JSON text; [`get_cloned`](Self::get_cloned) keeps a decoded
    /// copy of types that can be cloned instead.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the value does not fit `T`; [`Error::Closed`];
    /// [`Error::LockTimeout`]; SQLite's error.
    pub fn get<T>(&self, key: &str) -> impl Future<Output = Result<Option<T>>> + Send + use<T, S>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.point_read(key, false, |table, key, found| found.map(|value| table.decode(key, &value)).transpose())
    }

    /// As [`get`](Self::get), keeping the first decoded `T` beside the cached text so that
    /// later hits clone it instead of decoding again, as
    /// [`NanaSQLite::get_cloned`](nanasqlite_core::NanaSQLite::get_cloned).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_cloned<T>(&self, key: &str) -> impl Future<Output = Result<Option<T>>> + Send + use<T, S>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.point_read(key, true, |table, key, found| found.map(|value| table.decode_cloned(key, &value)).transpose())
    }

    /// The value of `key` as a shared, parsed JSON value: on a cache hit no copy is made.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_shared(&self, key: &str) -> impl Future<Output = Result<Option<Arc<Value>>>> + Send + use<S> {
        if self.ready().is_ok()
            && let Some(value) = self.table.shared_hit(key)
        {
            self.pool.counters().record_cache(true);
            return now(Ok(Some(value)));
        }
        self.point_read(key, true, |table, key, found| {
            found.map(|value| table.reader().shared(key, &value)).transpose()
        })
    }

    /// Reads `key` from the file, bypassing (then refreshing) the cache.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_fresh<T>(&self, key: &str) -> impl Future<Output = Result<Option<T>>> + Send + use<T, S>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let (checked, read, key) =
            (self.ensure_open(), self.run(Get::new(&self.table, key.to_owned())), key.to_owned());
        let table = Arc::clone(&self.table);
        async move {
            checked?;
            read.await?.map(|value| table.decode(&key, &value)).transpose()
        }
    }

    /// Whether `key` exists (answered from the cache when it knows).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::LockTimeout`], SQLite's error.
    pub fn contains(&self, key: &str) -> impl Future<Output = Result<bool>> + Send + use<S> {
        match self.lookup(key) {
            Ok(Lookup::Hit(_)) => now(Ok(true)),
            Ok(Lookup::Absent) => now(Ok(false)),
            // Read now if a connection is free; else queued, boxed as `point_read` says.
            Ok(Lookup::Miss) => match self.read_now(Contains::new(&self.table, key.to_owned())) {
                Ok(found) => now(found),
                Err((contains, span)) => Answer::later(self.answer_or_queue(Ok(contains), None, span)),
            },
            Err(error) => now(Err(error)),
        }
    }

    /// The number of keys (counted in the file).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::LockTimeout`], SQLite's error.
    pub fn len(&self) -> impl Future<Output = Result<usize>> + Send + use<S> {
        let count = self.run(Count);
        async move { Ok(usize::try_from(count.await?).unwrap_or(usize::MAX)) }
    }

    /// Whether the table has no keys.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn is_empty(&self) -> impl Future<Output = Result<bool>> + Send + use<S> {
        let len = self.len();
        async move { Ok(len.await? == 0) }
    }

    /// Every key, sorted by byte order; keys that cannot be named are left out (see
    /// [`unreadable_keys`](Self::unreadable_keys)).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn keys(&self) -> impl Future<Output = Result<Vec<String>>> + Send + use<S> {
        self.run(Keys)
    }

    /// How many keys cannot be named (stored by another tool as numbers, blobs or invalid
    /// UTF-8), as [`NanaSQLite::unreadable_keys`](nanasqlite_core::NanaSQLite::unreadable_keys).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn unreadable_keys(&self) -> impl Future<Output = Result<u64>> + Send + use<S> {
        self.run(UnreadableKeys)
    }

    /// Every `(key, value)`, sorted by key; loads the whole table into the cache.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), for the first value that fails.
    pub fn items<T>(&self) -> impl Future<Output = Result<Vec<(String, T)>>> + Send + use<T, S>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let step = match self.ready() {
            Err(error) => Plan::Answered(Err(error)),
            Ok(()) => self
                .table
                .all_cached()
                .map_or_else(|| Plan::Run(AllRows::new(&self.table)), |rows| Plan::Answered(Ok(rows))),
        };
        let this = self.clone();
        budgeted(async move {
            let rows = match step {
                Plan::Answered(rows) => rows?,
                Plan::Run(all) => this.run(all).await?,
            };
            this.table.reader().decode_rows(rows)
        })
    }

    /// Every value, sorted by key; loads the whole table into the cache.
    ///
    /// # Errors
    ///
    /// As [`items`](Self::items).
    pub fn values<T>(&self) -> impl Future<Output = Result<Vec<T>>> + Send + use<T, S>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let items = self.items();
        async move { Ok(items.await?.into_iter().map(|(_, value)| value).collect()) }
    }

    /// The whole table as a sorted map; loads it into the cache.
    ///
    /// # Errors
    ///
    /// As [`items`](Self::items).
    pub fn to_dict<T>(&self) -> impl Future<Output = Result<BTreeMap<String, T>>> + Send + use<T, S>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let items = self.items();
        async move { Ok(items.await?.into_iter().collect()) }
    }

    /// The values of the keys among `keys` that exist. When the cache knows every key the
    /// answer comes from it at once; otherwise all of them are read in one snapshot.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn batch_get<T, I>(&self, keys: I) -> impl Future<Output = Result<HashMap<String, T>>> + Send + use<T, I, S>
    where
        T: DeserializeOwned + Send + 'static,
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let keys: Vec<Box<str>> = keys.into_iter().map(|key| Box::from(key.as_ref())).collect();
        let step = match self.ready() {
            Err(error) => Plan::Answered(Err(error)),
            Ok(()) => {
                let names: Vec<&str> = keys.iter().map(|key| &**key).collect();
                let cached = self.table.lookup_all(&names);
                self.pool.counters().record_cache(cached.is_some());
                cached.map_or_else(|| Plan::Run(GetMany::new(&self.table, keys)), |rows| Plan::Answered(Ok(rows)))
            }
        };
        let this = self.clone();
        budgeted(async move {
            let rows = match step {
                Plan::Answered(rows) => rows?,
                Plan::Run(get_many) => this.run(get_many).await?,
            };
            this.table.reader().decode_rows(rows).map(|rows| rows.into_iter().collect())
        })
    }
}

// ===== writes =====

impl<S: Storage> AsyncNanaSQLite<S> {
    /// Runs `operation` once `prepared` (its input, checked and encoded on the caller's thread
    /// before the future is first polled) is ready.
    pub(crate) fn write<O>(&self, prepared: Result<O>) -> impl Future<Output = Result<O::Output>> + Send + use<O, S>
    where
        O: Operation<S> + Send + 'static,
        O::Output: Send + 'static,
    {
        self.run_prepared(prepared)
    }

    /// Stores `value` under `key`; resolves once the commit holding the write is done.
    /// The value is encoded on the caller's thread, before the future is first polled.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when `value` cannot be JSON (nothing is written); [`Error::Closed`];
    /// [`Error::LockTimeout`]; SQLite's error (this write alone fails; the cache is unchanged).
    pub fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> impl Future<Output = Result<()>> + Send + use<T, S> {
        let encoded = engine::encode(key, value);
        match encoded {
            Ok(value) if self.writes_back() => Either::Left(Box::pin(self.stage(key, Some(value)))),
            encoded => Either::Right(self.write(encoded.map(|value| Set::new(key.to_owned(), value)))),
        }
    }

    /// Deletes `key`; `false` if it was absent.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::LockTimeout`], SQLite's error.
    pub fn delete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send + use<S> {
        if !self.writes_back() {
            return Either::Right(self.run(Delete::new(key.to_owned())));
        }
        let (this, key, exists) = (self.clone(), key.to_owned(), self.contains(key));
        Either::Left(Box::pin(async move {
            let existed = exists.await?;
            if existed {
                this.stage(&key, None).await?;
            }
            Ok(existed)
        }))
    }

    /// Stores every `(key, value)` atomically: all of them or, on any error, none. Values are
    /// encoded on the caller's thread, when this is called.
    ///
    /// A large batch (1,024 rows or more, as its iterator's `size_hint` announces; not on
    /// PostgreSQL, nor in write-back mode) is handed to the writer first and encoded into it
    /// chunk by chunk, so that SQLite stores the first rows while the rest are encoded. It runs
    /// in a write transaction of its own, and is still committed only once the future is
    /// polled: a future not yet polled when the writer has the last row (kept, dropped, or one
    /// of several joined batches) gets its rows back, nothing written, and writes them as an
    /// ordinary batch when polled, so it may then be committed after writes made later. The
    /// writer waits at most [`PATIENCE`](engine::PATIENCE) in all for the caller's chunks,
    /// holding the write lock; a caller slower than that (an iterator doing its own I/O) gets
    /// its rows back the same way.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] naming the first value that cannot be JSON (nothing is written), or as
    /// [`set`](Self::set).
    pub fn batch_update<K, V, I>(&self, rows: I) -> impl Future<Output = Result<()>> + Send + use<K, V, I, S>
    where
        K: AsRef<str>,
        V: Serialize,
        I: IntoIterator,
        I::Item: KeyValue<K, V>,
    {
        let rows = rows.into_iter();
        if self.feeds(rows.size_hint().0) {
            return Either::Left(self.feed_batch(rows));
        }
        let rows = engine::encode_rows(rows);
        match rows {
            Ok(rows) if self.writes_back() => {
                let staged: Vec<_> = rows.iter().map(|(key, value)| self.stage(key, Some(Arc::clone(value)))).collect();
                let staging: BatchFuture = Box::pin(async move {
                    for stage in staged {
                        stage.await?;
                    }
                    Ok(())
                });
                Either::Left(staging)
            }
            rows => Either::Right(self.write_batch(rows.map(BatchUpdate::new)).map(|written| written.map(drop))),
        }
    }

    /// Runs `batch` in one transaction on the writer, answering with the rows the hooks refused
    /// (a partial batch's); an empty one only checks that the store is open.
    pub(crate) fn write_batch(
        &self,
        batch: Result<BatchUpdate>,
    ) -> impl Future<Output = Result<Vec<(String, Error)>>> + Send + use<S> {
        if batch.as_ref().is_ok_and(BatchUpdate::is_empty) {
            return Either::Left(budgeted(ready(self.ensure_open().map(|()| Vec::new()))));
        }
        Either::Right(self.write(batch))
    }

    /// Stores, best effort, every row whose value can be encoded (in one transaction) and
    /// reports the others, as
    /// [`NanaSQLite::batch_update_partial`](nanasqlite_core::NanaSQLite::batch_update_partial).
    ///
    /// # Errors
    ///
    /// As [`batch_update`](Self::batch_update) for the transaction itself.
    pub fn batch_update_partial<K, V, I>(
        &self,
        rows: I,
    ) -> impl Future<Output = Result<BatchReport>> + Send + use<K, V, I, S>
    where
        K: AsRef<str>,
        V: Serialize,
        I: IntoIterator,
        I::Item: KeyValue<K, V>,
    {
        let (encoded, failed) = engine::encode_rows_partial(rows);
        let batch = BatchUpdate::partial(encoded);
        let attempted = batch.len();
        let write = self.write_batch(Ok(batch));
        async move { Ok(BatchReport::of(attempted, failed, write.await?)) }
    }

    /// The same as [`batch_update`](Self::batch_update).
    ///
    /// # Errors
    ///
    /// As [`batch_update`](Self::batch_update).
    pub fn update<K, V, I>(&self, rows: I) -> impl Future<Output = Result<()>> + Send + use<K, V, I, S>
    where
        K: AsRef<str>,
        V: Serialize,
        I: IntoIterator,
        I::Item: KeyValue<K, V>,
    {
        self.batch_update(rows)
    }

    /// Deletes every key of `keys` atomically; returns how many existed.
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete); on error nothing is deleted.
    pub fn batch_delete<I>(&self, keys: I) -> impl Future<Output = Result<usize>> + Send + use<I, S>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let keys: Vec<Box<str>> = keys.into_iter().map(|key| Box::from(key.as_ref())).collect();
        if !self.writes_back() {
            return Either::Right(self.run(BatchDelete::new(keys)));
        }
        let deletes: Vec<_> = keys.iter().map(|key| self.delete(key)).collect();
        Either::Left(Box::pin(async move {
            let mut deleted = 0;
            for delete in deletes {
                deleted += usize::from(delete.await?);
            }
            Ok(deleted)
        }))
    }

    /// Removes `key` and returns its value, atomically; `None` if it was absent. The value is
    /// decoded on the writer thread before the delete, so one that does not fit `T` is left
    /// in place.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] (the key is then **not** removed), or as [`delete`](Self::delete).
    pub fn pop<T>(&self, key: &str) -> impl Future<Output = Result<Option<T>>> + Send + use<T, S>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.run(Pop::new(key.to_owned()))
    }

    /// The rows `scan` selects, decoded as `T`, as
    /// [`NanaSQLite::scan`](nanasqlite_core::NanaSQLite::scan) (read a page at a time on the
    /// lanes).
    ///
    /// # Errors
    ///
    /// As the sync store's.
    pub fn scan<T>(
        &self,
        scan: nanasqlite_core::Scan,
    ) -> impl Future<Output = Result<Vec<(String, T)>>> + Send + use<T, S>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let stream = self.stream::<T>(scan);
        async move {
            let mut stream = stream;
            let mut rows = Vec::new();
            while let Some(row) = std::future::poll_fn(|context| {
                futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), context)
            })
            .await
            {
                rows.push(row?);
            }
            Ok(rows)
        }
    }

    /// The rows `scan` selects as a [`Stream`](futures_core::Stream), a page of
    /// [`SCAN_PAGE`](nanasqlite_core::SCAN_PAGE) rows at a time, with the snapshot rule of
    /// [`NanaSQLite::iter`](nanasqlite_core::NanaSQLite::iter).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use nanasqlite_core::Scan;
    /// # futures::executor::block_on(async {
    /// let db = nanasqlite_pool::AsyncNanaSQLite::open(":memory:").await?;
    /// db.batch_update((0..600).map(|i| (format!("k{i:03}"), i))).await?;
    /// let mut rows = db.stream::<i32>(Scan::all().descending());
    /// assert_eq!(rows.next().await.transpose()?, Some(("k599".to_owned(), 599)));
    /// assert_eq!(rows.count().await, 599);
    /// # db.close().await?;
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn stream<T: DeserializeOwned>(&self, scan: nanasqlite_core::Scan) -> crate::ScanStream<T, S> {
        crate::ScanStream::new(self.clone(), scan)
    }

    /// One element of `key`'s stored value, read by SQLite, as
    /// [`NanaSQLite::get_by_path`](nanasqlite_core::NanaSQLite::get_by_path).
    ///
    /// # Errors
    ///
    /// As the sync store's.
    pub fn get_by_path<T>(&self, key: &str, path: &str) -> impl Future<Output = Result<Option<T>>> + Send + use<T, S>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.run(GetByPath::new(key, path))
    }

    /// Removes the first key (in key order) and returns it with its value, as
    /// [`NanaSQLite::popitem`](nanasqlite_core::NanaSQLite::popitem).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] (nothing is then removed), or as [`delete`](Self::delete).
    pub fn popitem<T>(&self) -> impl Future<Output = Result<Option<(String, T)>>> + Send + use<T, S>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.run(PopItem::new())
    }

    /// The value of `key` if present; otherwise stores `default` and returns it.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get) and [`set`](Self::set).
    pub fn setdefault<T>(&self, key: &str, default: &T) -> impl Future<Output = Result<T>> + Send + use<T, S>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let stored = self.write(engine::encode(key, default).map(|default| SetDefault::new(key.to_owned(), default)));
        let (key, table) = (key.to_owned(), Arc::clone(&self.table));
        async move { table.decode(&key, &*stored.await?) }
    }

    /// Deletes every row of this table.
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    pub fn clear(&self) -> impl Future<Output = Result<()>> + Send + use<S> {
        self.run(Clear)
    }
}

// ===== atomic updates =====

impl<S: Storage> AsyncNanaSQLite<S> {
    /// As [`NanaSQLite::increment`](nanasqlite_core::NanaSQLite::increment): adds `amount` to
    /// the number under `key` (or its `field`) atomically, on the writer, and returns the new value.
    ///
    /// # Errors
    ///
    /// As the sync store's.
    ///
    /// The same turbofish as the sync store's (`db.increment::<i64>(..)`): the amount is any
    /// `impl Into<Amount>`, so the future is boxed (one allocation beside a write's commit).
    pub fn increment<T>(
        &self,
        key: &str,
        amount: impl Into<Amount>,
        field: Option<&str>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let stored = self.write(engine::increment(key.to_owned(), amount.into(), field));
        let (key, table) = (key.to_owned(), Arc::clone(&self.table));
        Box::pin(async move { table.decode_result(&key, &*stored.await?) })
    }

    /// As [`NanaSQLite::patch`](nanasqlite_core::NanaSQLite::patch): merges `changes` into the
    /// object under `key` atomically, on the writer, and returns the result.
    ///
    /// # Errors
    ///
    /// As the sync store's.
    pub fn patch<T: Serialize + ?Sized>(
        &self,
        key: &str,
        changes: &T,
        create: bool,
    ) -> impl Future<Output = Result<Value>> + Send + use<T, S> {
        let stored = self.write(engine::patch(key.to_owned(), changes, create));
        let (key, table) = (key.to_owned(), Arc::clone(&self.table));
        async move { table.decode_result(&key, &*stored.await?) }
    }
}

// ===== cache control =====

impl<S: Storage> AsyncNanaSQLite<S> {
    /// Loads every row of the table into the cache.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::LockTimeout`], SQLite's error.
    pub fn load_all(&self) -> impl Future<Output = Result<()>> + Send + use<S> {
        self.write(self.ensure_open().map(|()| LoadAll::new(&self.table)))
    }

    /// Forgets what the cache knows of `key` and reads it again from the file.
    ///
    /// # Errors
    ///
    /// As [`load_all`](Self::load_all).
    pub fn refresh(&self, key: &str) -> impl Future<Output = Result<()>> + Send + use<S> {
        let read = self.ensure_open().map(|()| {
            self.table.forget(key);
            Get::new(&self.table, key.to_owned())
        });
        let read = self.write(read);
        async move { read.await.map(drop) }
    }

    /// Empties this table's cache; the file is untouched. Needs no `.await`: no I/O.
    pub fn clear_cache(&self) {
        self.table.clear_cache();
    }

    /// Whether a [`begin`](Self::begin) transaction is open on this store now (Python
    /// NanaSQLite's `in_transaction()`). A [`transaction`](Self::transaction) closure runs on
    /// the writer, where other calls wait for it; it does not count.
    #[must_use]
    pub fn in_transaction(&self) -> bool {
        self.pool.in_transaction()
    }

    /// Whether the cache can answer for `key` without the file. Needs no `.await`: no I/O.
    /// Always `false` once closed.
    #[must_use]
    pub fn is_cached(&self, key: &str) -> bool {
        !self.pool.is_closed() && self.table.is_cached(key)
    }
}

// ===== the async guide's names =====

impl<S: Storage> AsyncNanaSQLite<S> {
    /// The async guide's name for [`get`](Self::get).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn aget<T>(&self, key: &str) -> impl Future<Output = Result<Option<T>>> + Send + use<T, S>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.get(key)
    }

    /// The async guide's name for [`set`](Self::set).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn aset<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> impl Future<Output = Result<()>> + Send + use<T, S> {
        self.set(key, value)
    }

    /// The async guide's name for [`delete`](Self::delete).
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    pub fn adelete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send + use<S> {
        self.delete(key)
    }

    /// The async guide's name for [`contains`](Self::contains).
    ///
    /// # Errors
    ///
    /// As [`contains`](Self::contains).
    pub fn acontains(&self, key: &str) -> impl Future<Output = Result<bool>> + Send + use<S> {
        self.contains(key)
    }

    /// The async guide's name for [`len`](Self::len).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn alen(&self) -> impl Future<Output = Result<usize>> + Send + use<S> {
        self.len()
    }

    /// The async guide's name for [`keys`](Self::keys).
    ///
    /// # Errors
    ///
    /// As [`keys`](Self::keys).
    pub fn akeys(&self) -> impl Future<Output = Result<Vec<String>>> + Send + use<S> {
        self.keys()
    }
}
