//! [`AsyncNanaSQLite`]: the runtime-neutral async store. A front end: each method checks and
//! encodes its input on the caller's thread, answers from the cache when it can, and otherwise
//! hands one engine operation to the pool.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nanasqlite_core::engine::{
    self, AddHooks, BatchReport, CachedValue, Clear, Front, GetByPath, KeyValue, Keys, OpenHandles, OpenTable,
    Operation, Pop, PopItem, SetDefault, Shared, Table, UnreadableKeys,
};
use nanasqlite_core::hook::Registration;
use nanasqlite_core::sql::SqlPolicy;
use nanasqlite_core::storage::{SqliteStorage, Storage};
use nanasqlite_core::{Amount, Error, Identifier, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;

use crate::budget::Answer;
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
    pub fn table(&self, name: &str) -> impl Future<Output = Result<Self>> + Send + use<S> {
        let name = self.ensure_open().and_then(|()| Identifier::new(name));
        let this = self.clone();
        async move {
            let name = name?;
            let handle = this.run(Ok(OpenTable::new(name.clone()))).await?;
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
        self.run(Ok(AddHooks::new(hooks)))
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

    /// A point read's answer: `found` (from the cache, or read now on the caller's thread when
    /// a connection was free: both at once, a future of a few words), or else the queued read
    /// (boxed), made into the caller's answer by `finish`.
    fn finish<T: Send + 'static>(
        &self,
        key: &str,
        found: Answer<Result<Option<Arc<CachedValue>>>>,
        finish: Finish<S, T>,
    ) -> Answer<Result<T>> {
        match found.settled() {
            Ok(found) => Answer::now(found.and_then(|found| finish(&self.table, key, found))),
            Err(queued) => {
                let (table, key) = (Arc::clone(&self.table), key.to_owned());
                Answer::later(async move { finish(&table, &key, queued.await?) })
            }
        }
    }
}

/// The async store runs the engine's front end on its lanes, or on the caller's thread for a
/// point read when a connection is free: an answer is a future, ready at once when the cache
/// or an inline read had it.
impl<S: Storage> Front<S> for AsyncNanaSQLite<S> {
    type Answer<T: Send + 'static> = Answer<Result<T>>;

    fn table(&self) -> &Arc<Table<S>> {
        &self.table
    }

    fn shared(&self) -> &Arc<Shared<S>> {
        self.pool.shared()
    }

    fn ensure_open(&self) -> Result<()> {
        if self.pool.is_closed() { Err(Error::Closed) } else { Ok(()) }
    }

    fn notice_external_writes(&self) {
        self.pool.notice_external_writes(&self.table);
    }

    fn record_cache(&self, hit: bool) {
        self.pool.counters().record_cache(hit);
    }

    fn now<T: Send + 'static>(answer: Result<T>) -> Answer<Result<T>> {
        Answer::now(answer)
    }

    fn settled<T: Send + 'static>(answer: Answer<Result<T>>) -> std::result::Result<Result<T>, Answer<Result<T>>> {
        answer.settled()
    }

    fn after<T: Send + 'static, U: Send + 'static>(
        answer: Answer<Result<T>>,
        next: impl FnOnce(Result<T>) -> Answer<Result<U>> + Send + 'static,
    ) -> Answer<Result<U>> {
        match answer.settled() {
            Ok(result) => next(result),
            Err(queued) => Answer::later(async move { next(queued.await).await }),
        }
    }

    /// Runs a point read at once on the caller's thread when a connection is free (see
    /// [`AsyncBuilder::inline_reads`]); hands anything else to the pool, in a `nanasqlite`
    /// tracing span named after the operation (entered on the lane too).
    fn execute<O>(&self, mut operation: O) -> Answer<Result<O::Output>>
    where
        O: Operation<S> + Send + 'static,
        O::Output: Send + 'static,
    {
        let span = self.span(operation.name());
        if let Some(answer) = span.in_scope(|| self.pool.try_inline(&self.table, &mut operation)) {
            return Answer::now(answer);
        }
        let (pool, table) = (Arc::clone(&self.pool), Arc::clone(&self.table));
        Answer::later(async move { pool.run(table, operation, span.clone()).instrument(span).await })
    }

    fn wait_for_room(&self, seen: u64) -> Answer<Result<()>> {
        let Some(waiting) = self.table.write_back_state().map(|state| state.room_made(seen)) else {
            return Answer::now(Ok(()));
        };
        Answer::later(async move {
            waiting.await;
            Ok(())
        })
    }
}

impl<S: Storage> AsyncNanaSQLite<S> {
    /// Every row, sorted by key, decoded as `T`.
    fn decoded_rows<T: DeserializeOwned + Send + 'static>(&self) -> Answer<Result<Vec<(String, T)>>> {
        let table = Arc::clone(&self.table);
        Self::then(self.all_rows(), move |rows| Answer::now(table.reader().decode_rows(rows)))
    }
}

/// What a point read makes of the row it found (or of its absence).
type Finish<S, T> = fn(&Table<S>, &str, Option<Arc<CachedValue>>) -> Result<T>;

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
        self.finish(key, self.cached(key, false), |table, key, found| {
            found.map(|value| table.decode(key, &value)).transpose()
        })
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
        self.finish(key, self.cached(key, true), |table, key, found| {
            found.map(|value| table.decode_cloned(key, &value)).transpose()
        })
    }

    /// The value of `key` as a shared, parsed JSON value: on a cache hit no copy is made.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_shared(&self, key: &str) -> impl Future<Output = Result<Option<Arc<Value>>>> + Send + use<S> {
        self.shared_value(key)
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
        self.finish(key, self.fresh(key), |table, key, found| found.map(|value| table.decode(key, &value)).transpose())
    }

    /// Whether `key` exists (answered from the cache when it knows).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::LockTimeout`], SQLite's error.
    pub fn contains(&self, key: &str) -> impl Future<Output = Result<bool>> + Send + use<S> {
        self.contains_key(key)
    }

    /// The number of keys (counted in the file).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::LockTimeout`], SQLite's error.
    pub fn len(&self) -> impl Future<Output = Result<usize>> + Send + use<S> {
        self.key_count()
    }

    /// Whether the table has no keys.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn is_empty(&self) -> impl Future<Output = Result<bool>> + Send + use<S> {
        Self::then(self.key_count(), |count| Answer::now(Ok(count == 0)))
    }

    /// Every key, sorted by byte order; keys that cannot be named are left out (see
    /// [`unreadable_keys`](Self::unreadable_keys)).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn keys(&self) -> impl Future<Output = Result<Vec<String>>> + Send + use<S> {
        self.run(Ok(Keys))
    }

    /// How many keys cannot be named (stored by another tool as numbers, blobs or invalid
    /// UTF-8), as [`NanaSQLite::unreadable_keys`](nanasqlite_core::NanaSQLite::unreadable_keys).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn unreadable_keys(&self) -> impl Future<Output = Result<u64>> + Send + use<S> {
        self.run(Ok(UnreadableKeys))
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
        self.decoded_rows()
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
        Self::then(self.decoded_rows::<T>(), |items| {
            Answer::now(Ok(items.into_iter().map(|(_, value)| value).collect()))
        })
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
        Self::then(self.decoded_rows::<T>(), |items| Answer::now(Ok(items.into_iter().collect())))
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
        let (table, keys) = (Arc::clone(&self.table), keys.into_iter().map(|key| Box::from(key.as_ref())).collect());
        Self::then(self.rows_of(keys), move |rows| {
            Answer::now(table.reader().decode_rows(rows).map(|rows| rows.into_iter().collect()))
        })
    }
}

// ===== writes =====

impl<S: Storage> AsyncNanaSQLite<S> {
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
        self.put(key, engine::encode(key, value))
    }

    /// Deletes `key`; `false` if it was absent.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::LockTimeout`], SQLite's error.
    pub fn delete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send + use<S> {
        self.remove(key)
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
            return Answer::Later(self.feed_batch(rows));
        }
        self.put_rows(engine::encode_rows(rows))
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
        let (encoded, unencodable) = engine::encode_rows_partial(rows);
        self.put_partial(encoded, unencodable)
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
        self.remove_keys(keys.into_iter().map(|key| Box::from(key.as_ref())).collect())
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
        self.run(Ok(Pop::new(key.to_owned())))
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
        self.run(Ok(GetByPath::new(key, path)))
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
        self.run(Ok(PopItem::new()))
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
        let stored = self.run(engine::encode(key, default).map(|default| SetDefault::new(key.to_owned(), default)));
        let (key, table) = (key.to_owned(), Arc::clone(&self.table));
        Self::then(stored, move |stored| Answer::now(table.decode(&key, &stored)))
    }

    /// Deletes every row of this table.
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    pub fn clear(&self) -> impl Future<Output = Result<()>> + Send + use<S> {
        self.run(Ok(Clear))
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
        let stored = self.run(engine::increment(key.to_owned(), amount.into(), field));
        let (key, table) = (key.to_owned(), Arc::clone(&self.table));
        Box::pin(Self::then(stored, move |stored| Answer::now(table.decode_result(&key, &stored))))
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
        let stored = self.run(engine::patch(key.to_owned(), changes, create));
        let (key, table) = (key.to_owned(), Arc::clone(&self.table));
        Self::then(stored, move |stored| Answer::now(table.decode_result(&key, &stored)))
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
        self.load_table()
    }

    /// Forgets what the cache knows of `key` and reads it again from the file.
    ///
    /// # Errors
    ///
    /// As [`load_all`](Self::load_all).
    pub fn refresh(&self, key: &str) -> impl Future<Output = Result<()>> + Send + use<S> {
        self.refresh_key(key)
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
