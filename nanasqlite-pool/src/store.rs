//! [`AsyncNanaSQLite`]: the runtime-neutral async store.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nanasqlite_core::atomic::{self, Amount, Increment};
use nanasqlite_core::cache::{Cache, CachedValue, Lookup};
use nanasqlite_core::sql::SqlPolicy;
use nanasqlite_core::storage::{SqliteStorage, SqliteTable, Storage};
use nanasqlite_core::{CacheStrategy, Error, Identifier, KeyValue, Result, codec, encode_rows, scan_rows};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;

use crate::builder::AsyncBuilder;
use crate::job::{Kind, Outcome};
use crate::pool::Pool;
use crate::stats::Stats;

/// A dict-like key/value table in a SQLite file, for async code on any runtime.
///
/// Every SQLite call runs on the store's own threads (see [`AsyncBuilder`] for what runs
/// where); the caller's task only looks in the cache, encodes and decodes values, and awaits
/// a channel, so the runtime is never blocked. A cache hit completes without leaving the
/// caller's thread. Writes waiting together are committed together (group commit), and each
/// caller's future resolves only after the commit that holds its write.
///
/// The handle is cheap to clone, `Send + Sync + 'static`, and every future it returns is
/// `Send + 'static` (it can be spawned). The same files are read and written by
/// [`NanaSQLite`](nanasqlite_core::NanaSQLite) and by Python NanaSQLite.
///
/// # Cancellation
///
/// Dropping a future before its job starts means the job is skipped: a write is then not made.
/// Once a job has started it runs to the end: a write commits whole (or fails whole) even if
/// its caller is gone. Batches are one savepoint, so they are never applied in part.
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
pub struct AsyncNanaSQLite {
    pub(crate) shared: Arc<Shared>,
}

/// One table of a pool, and its cache.
pub(crate) struct Shared {
    pub(crate) pool: Arc<Pool>,
    name: Identifier,
    pub(crate) table: SqliteTable,
    pub(crate) cache: Arc<Cache>,
    strategy: CacheStrategy,
    pub(crate) policy: Arc<SqlPolicy>,
}

impl Clone for AsyncNanaSQLite {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared) }
    }
}

impl fmt::Debug for AsyncNanaSQLite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncNanaSQLite")
            .field("path", &self.shared.pool.path())
            .field("table", &self.shared.name)
            .finish_non_exhaustive()
    }
}

/// Either the answer (found in the cache), or what is needed to ask a lane.
enum Step<T, L> {
    Done(Result<T>),
    Load(Arc<Shared>, L),
}

// ===== plumbing =====

impl Shared {
    /// Runs `work` on a lane with this table's handle and cache, in a `nanasqlite` tracing
    /// span named after the operation (entered on the lane too).
    pub(crate) fn job<R, F>(
        self: &Arc<Self>,
        op: &'static str,
        kind: Kind,
        work: F,
    ) -> impl Future<Output = Result<R>> + Send + use<R, F>
    where
        F: Fn(&mut SqliteStorage, &SqliteTable, &Arc<Cache>) -> Result<Outcome<R>> + Send + 'static,
        R: Send + 'static,
    {
        let shared = Arc::clone(self);
        let span = tracing::debug_span!("nanasqlite", op, table = %self.name);
        let job_span = span.clone();
        // A TTL cache that deletes expired keys does it in its table's next write.
        let expired = if kind == Kind::Write { self.cache.take_expired() } else { Vec::new() };
        async move {
            let (table, cache) = (shared.table.clone(), Arc::clone(&shared.cache));
            let job = move |storage: &mut SqliteStorage| {
                for key in &expired {
                    if let Err(error) = storage.delete(&table, key) {
                        tracing::warn!(%key, %error, "could not delete an expired key");
                    }
                }
                work(storage, &table, &cache)
            };
            shared.pool.run(kind, job_span, job).await
        }
        .instrument(span)
    }

    /// Reads `key` on a lane and fills the cache with it.
    async fn load(self: &Arc<Self>, key: String) -> Result<Option<Arc<CachedValue>>> {
        let since = self.cache.epoch();
        self.job("get", Kind::Read, move |storage, table, cache| {
            let value = storage.get(table, &key)?.map(CachedValue::new);
            cache.fill(&key, value.clone(), since);
            Ok(Outcome::plain(value))
        })
        .await
    }

    /// Reads `keys` in one snapshot (all of them, so the answer is one state) and fills the cache.
    async fn load_many(self: &Arc<Self>, keys: Vec<String>) -> Result<Vec<(String, Arc<CachedValue>)>> {
        let since = self.cache.epoch();
        self.job("batch_get", Kind::Read, move |storage, table, cache| {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut rows = Vec::with_capacity(keys.len());
            storage.get_many(table, &keys, &mut |key, json| rows.push((key.to_owned(), CachedValue::new(json))))?;
            cache.fill_many(&keys, &rows, since);
            Ok(Outcome::plain(rows))
        })
        .await
    }

    /// Fills the cache with the whole table.
    async fn load_all(self: &Arc<Self>) -> Result<()> {
        let since = self.cache.epoch();
        self.job("load_all", Kind::Read, move |storage, table, cache| {
            cache.fill_all(scan_rows(storage, table)?, since);
            Ok(Outcome::plain(()))
        })
        .await
    }

    /// Every row, sorted by key, filling the cache with the whole table.
    async fn all_rows(self: &Arc<Self>) -> Result<Vec<(String, Arc<CachedValue>)>> {
        let since = self.cache.epoch();
        self.job("items", Kind::Read, move |storage, table, cache| {
            let rows = scan_rows(storage, table)?;
            let mut sorted: Vec<_> =
                rows.iter().map(|(key, value)| (String::from(&**key), Arc::clone(value))).collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            cache.fill_all(rows, since);
            Ok(Outcome::plain(sorted))
        })
        .await
    }
}

impl AsyncNanaSQLite {
    /// Opens the database at `path` (created if missing) with table `"data"`, a lazy cache,
    /// Python NanaSQLite's pragmas, and a pool of one writer thread.
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

    /// A handle on table `name` (already created) of `pool`, with a fresh cache.
    pub(crate) fn new(
        pool: Arc<Pool>,
        name: Identifier,
        table: SqliteTable,
        strategy: CacheStrategy,
        policy: Arc<SqlPolicy>,
    ) -> Self {
        let cache = Arc::new(Cache::new(strategy));
        pool.register(&name, &cache);
        Self { shared: Arc::new(Shared { pool, name, table, cache, strategy, policy }) }
    }

    /// A handle on table `name` of `pool`, creating the table if needed.
    async fn attach(
        pool: Arc<Pool>,
        name: Identifier,
        strategy: CacheStrategy,
        policy: Arc<SqlPolicy>,
    ) -> Result<Self> {
        let create = name.clone();
        let span = tracing::debug_span!("nanasqlite", op = "open_table", table = %name);
        let table = pool.run(Kind::Write, span, move |storage| storage.open_table(&create).map(Outcome::plain)).await?;
        Ok(Self::new(pool, name, table, strategy, policy))
    }

    /// The rules SQL fragments of this handle are checked against.
    #[must_use]
    pub fn sql_policy(&self) -> &SqlPolicy {
        &self.shared.policy
    }

    /// Another key/value table in the same file: it shares this store's threads and
    /// connections, and has its own cache.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad name (nothing is created), [`Error::Closed`], SQLite's error.
    pub fn table(&self, name: &str) -> impl Future<Output = Result<Self>> + Send + use<> {
        let checked = self.ensure_open().and_then(|()| Identifier::new(name));
        let (pool, strategy, policy) =
            (Arc::clone(&self.shared.pool), self.shared.strategy, Arc::clone(&self.shared.policy));
        async move { Self::attach(pool, checked?, strategy, policy).await }
    }

    /// The file this store was opened on.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        self.shared.pool.path().to_path_buf()
    }

    /// The name of this handle's table.
    #[must_use]
    pub fn table_name(&self) -> &str {
        self.shared.name.as_str()
    }

    /// Closes the store: stops taking jobs, runs every job already queued, closes each
    /// connection and ends the pool's threads, then reports how closing went. Every handle on
    /// the file (clones and other tables) returns [`Error::Closed`] from then on. Closing again
    /// does nothing.
    ///
    /// Dropping every handle without `close` shuts the pool down the same way in the
    /// background (queued jobs still run), without blocking the caller.
    ///
    /// # Errors
    ///
    /// SQLite's error if closing a connection failed; the store is closed all the same.
    pub fn close(&self) -> impl Future<Output = Result<()>> + Send + use<> {
        let shared = Arc::clone(&self.shared);
        async move {
            if shared.pool.in_transaction() {
                return Err(Error::Transaction {
                    message: "cannot close the database during a transaction".to_owned(),
                });
            }
            let closed = shared.pool.close().await;
            shared.cache.clear();
            closed
        }
    }

    /// Counters of the pool and the caches: queue depths, group sizes, cache hits and misses.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.shared.pool.stats()
    }

    pub(crate) fn ensure_open(&self) -> Result<()> {
        if self.shared.pool.is_closed() { Err(Error::Closed) } else { Ok(()) }
    }

    /// What the cache knows of `key`, counting the hit or miss.
    fn lookup(&self, key: &str) -> Result<Lookup> {
        self.ensure_open()?;
        self.shared.pool.notice_external_writes();
        let lookup = self.shared.cache.lookup(key);
        self.shared.pool.counters().record_cache(!matches!(lookup, Lookup::Miss));
        Ok(lookup)
    }

    /// The cached value of `key`, or the way to load it.
    fn step(&self, key: &str) -> Step<Option<Arc<CachedValue>>, String> {
        match self.lookup(key) {
            Ok(Lookup::Hit(value)) => Step::Done(Ok(Some(value))),
            Ok(Lookup::Absent) => Step::Done(Ok(None)),
            Ok(Lookup::Miss) => Step::Load(Arc::clone(&self.shared), key.to_owned()),
            Err(error) => Step::Done(Err(error)),
        }
    }

    fn write<R, F>(&self, op: &'static str, work: F) -> impl Future<Output = Result<R>> + Send + use<R, F>
    where
        F: Fn(&mut SqliteStorage, &SqliteTable, &Arc<Cache>) -> Result<Outcome<R>> + Send + 'static,
        R: Send + 'static,
    {
        self.shared.job(op, Kind::Write, work)
    }

    fn read<R, F>(&self, op: &'static str, work: F) -> impl Future<Output = Result<R>> + Send + use<R, F>
    where
        F: Fn(&mut SqliteStorage, &SqliteTable, &Arc<Cache>) -> Result<Outcome<R>> + Send + 'static,
        R: Send + 'static,
    {
        self.shared.job(op, Kind::Read, work)
    }
}

// ===== reads =====

impl AsyncNanaSQLite {
    /// The value of `key`, or `None` if it is absent (a stored JSON `null` is present).
    /// A cache hit completes on the caller's thread; a miss is read by a lane and cached.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the value does not fit `T`; [`Error::Closed`];
    /// [`Error::LockTimeout`]; SQLite's error.
    pub fn get<T>(&self, key: &str) -> impl Future<Output = Result<Option<T>>> + Send + use<T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let step = match self.step(key) {
            Step::Done(found) => Step::Done(found.and_then(|value| value.map(|value| value.decode(key)).transpose())),
            Step::Load(shared, key) => Step::Load(shared, key),
        };
        async move {
            match step {
                Step::Done(result) => result,
                Step::Load(shared, key) => {
                    let value = shared.load(key.clone()).await?;
                    value.map(|value| value.decode(&key)).transpose()
                }
            }
        }
    }

    /// The value of `key` as a shared, parsed JSON value: on a cache hit no copy is made.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_shared(&self, key: &str) -> impl Future<Output = Result<Option<Arc<Value>>>> + Send + use<> {
        let shared_value =
            |key: &str, value: Option<Arc<CachedValue>>| value.map(|v| v.value(key).cloned()).transpose();
        let step = match self.step(key) {
            Step::Done(found) => Step::Done(found.and_then(|value| shared_value(key, value))),
            Step::Load(shared, key) => Step::Load(shared, key),
        };
        async move {
            match step {
                Step::Done(result) => result,
                Step::Load(shared, key) => shared_value(&key, shared.load(key.clone()).await?),
            }
        }
    }

    /// Reads `key` from the file, bypassing (then refreshing) the cache.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_fresh<T>(&self, key: &str) -> impl Future<Output = Result<Option<T>>> + Send + use<T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let (checked, shared, key) = (self.ensure_open(), Arc::clone(&self.shared), key.to_owned());
        async move {
            checked?;
            let value = shared.load(key.clone()).await?;
            value.map(|value| value.decode(&key)).transpose()
        }
    }

    /// Whether `key` exists (answered from the cache when it knows).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::LockTimeout`], SQLite's error.
    pub fn contains(&self, key: &str) -> impl Future<Output = Result<bool>> + Send + use<> {
        let step = match self.step(key) {
            Step::Done(found) => Step::Done(found.map(|value| value.is_some())),
            Step::Load(shared, key) => Step::Load(shared, key),
        };
        async move {
            match step {
                Step::Done(result) => result,
                Step::Load(shared, key) => {
                    let since = shared.cache.epoch();
                    let exists = shared.job("contains", Kind::Read, move |storage, table, cache| {
                        let exists = storage.contains(table, &key)?;
                        if !exists {
                            cache.fill(&key, None, since);
                        }
                        Ok(Outcome::plain(exists))
                    });
                    exists.await
                }
            }
        }
    }

    /// The number of keys (counted in the file).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::LockTimeout`], SQLite's error.
    pub fn len(&self) -> impl Future<Output = Result<usize>> + Send + use<> {
        let count = self.read("len", |storage, table, _| storage.count(table).map(Outcome::plain));
        async move { Ok(usize::try_from(count.await?).unwrap_or(usize::MAX)) }
    }

    /// Whether the table has no keys.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn is_empty(&self) -> impl Future<Output = Result<bool>> + Send + use<> {
        let len = self.len();
        async move { Ok(len.await? == 0) }
    }

    /// Every key, sorted by byte order.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn keys(&self) -> impl Future<Output = Result<Vec<String>>> + Send + use<> {
        self.read("keys", |storage, table, _| storage.keys(table).map(Outcome::plain))
    }

    /// Every `(key, value)`, sorted by key; loads the whole table into the cache.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), for the first value that fails.
    pub fn items<T>(&self) -> impl Future<Output = Result<Vec<(String, T)>>> + Send + use<T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let step = match self.ensure_open() {
            Err(error) => Step::Done(Err(error)),
            Ok(()) if self.shared.cache.is_all_loaded() => Step::Done(Ok(self.shared.cache.present_sorted())),
            Ok(()) => Step::Load(Arc::clone(&self.shared), ()),
        };
        async move {
            let rows = match step {
                Step::Done(rows) => rows?,
                Step::Load(shared, ()) => shared.all_rows().await?,
            };
            rows.into_iter().map(|(key, value)| Ok((value.decode(&key)?, key))).map(|pair| pair.map(swap)).collect()
        }
    }

    /// Every value, sorted by key; loads the whole table into the cache.
    ///
    /// # Errors
    ///
    /// As [`items`](Self::items).
    pub fn values<T>(&self) -> impl Future<Output = Result<Vec<T>>> + Send + use<T>
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
    pub fn to_dict<T>(&self) -> impl Future<Output = Result<BTreeMap<String, T>>> + Send + use<T>
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
    pub fn batch_get<T, I>(&self, keys: I) -> impl Future<Output = Result<HashMap<String, T>>> + Send + use<T, I>
    where
        T: DeserializeOwned + Send + 'static,
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let keys: Vec<String> = keys.into_iter().map(|key| key.as_ref().to_owned()).collect();
        self.shared.pool.notice_external_writes();
        let step = match self.ensure_open() {
            Err(error) => Step::Done(Err(error)),
            Ok(()) => {
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                let cached = self.shared.cache.lookup_all(&refs);
                self.shared.pool.counters().record_cache(cached.is_some());
                match cached {
                    Some(rows) => Step::Done(Ok(rows)),
                    None => Step::Load(Arc::clone(&self.shared), keys),
                }
            }
        };
        async move {
            let rows = match step {
                Step::Done(rows) => rows?,
                Step::Load(shared, keys) => shared.load_many(keys).await?,
            };
            rows.into_iter().map(|(key, value)| Ok((value.decode(&key)?, key))).map(|pair| pair.map(swap)).collect()
        }
    }
}

fn swap<A, B>((a, b): (A, B)) -> (B, A) {
    (b, a)
}

// ===== writes =====

impl AsyncNanaSQLite {
    /// Stores `value` under `key`; resolves once the commit holding the write is done.
    /// The value is encoded on the caller's thread, before the future is first polled.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when `value` cannot be JSON (nothing is written); [`Error::Closed`];
    /// [`Error::LockTimeout`]; SQLite's error (this write alone fails; the cache is unchanged).
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> impl Future<Output = Result<()>> + Send + use<T> {
        let encoded = codec::encode(key, value);
        let (shared, key) = (Arc::clone(&self.shared), key.to_owned());
        async move {
            let value = CachedValue::new(encoded?);
            let write = shared.job("set", Kind::Write, move |storage, table, cache| {
                storage.put(table, &key, value.json())?;
                let (cache, key, value) = (Arc::clone(cache), key.clone(), Arc::clone(&value));
                Ok(Outcome::then((), move || cache.write(&key, Some(value))))
            });
            write.await
        }
    }

    /// Deletes `key`; `false` if it was absent.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::LockTimeout`], SQLite's error.
    pub fn delete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send + use<> {
        let key = key.to_owned();
        self.write("delete", move |storage, table, cache| {
            let existed = storage.delete(table, &key)?;
            let (cache, key) = (Arc::clone(cache), key.clone());
            Ok(Outcome::then(existed, move || cache.write(&key, None)))
        })
    }

    /// Stores every `(key, value)` atomically: all of them or, on any error, none. Values are
    /// encoded on the caller's thread.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] naming the first value that cannot be JSON (nothing is written), or as
    /// [`set`](Self::set).
    pub fn batch_update<K, V, I>(&self, rows: I) -> impl Future<Output = Result<()>> + Send + use<K, V, I>
    where
        K: AsRef<str>,
        V: Serialize,
        I: IntoIterator,
        I::Item: KeyValue<K, V>,
    {
        let encoded = encode_rows(rows).map(Arc::new);
        let shared = Arc::clone(&self.shared);
        async move {
            let rows = encoded?;
            if rows.is_empty() {
                return if shared.pool.is_closed() { Err(Error::Closed) } else { Ok(()) };
            }
            let write = shared.job("batch_update", Kind::Write, move |storage, table, cache| {
                storage.put_many(table, &rows)?;
                let (cache, rows) = (Arc::clone(cache), Arc::clone(&rows));
                Ok(Outcome::then((), move || {
                    let cached = rows.iter().map(|(key, json)| (key.as_str(), CachedValue::new(json.as_str())));
                    cache.write_many(cached, []);
                }))
            });
            write.await
        }
    }

    /// The same as [`batch_update`](Self::batch_update).
    ///
    /// # Errors
    ///
    /// As [`batch_update`](Self::batch_update).
    pub fn update<K, V, I>(&self, rows: I) -> impl Future<Output = Result<()>> + Send + use<K, V, I>
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
    pub fn batch_delete<I>(&self, keys: I) -> impl Future<Output = Result<usize>> + Send + use<I>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let keys: Arc<Vec<String>> = Arc::new(keys.into_iter().map(|key| key.as_ref().to_owned()).collect());
        self.write("batch_delete", move |storage, table, cache| {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let removed = storage.delete_many(table, &refs)?;
            let (cache, keys) = (Arc::clone(cache), Arc::clone(&keys));
            Ok(Outcome::then(removed, move || cache.write_many([], keys.iter().map(String::as_str))))
        })
    }

    /// Removes `key` and returns its value, atomically; `None` if it was absent. The value is
    /// decoded on the writer thread before the delete, so one that does not fit `T` is left
    /// in place.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] (the key is then **not** removed), or as [`delete`](Self::delete).
    pub fn pop<T>(&self, key: &str) -> impl Future<Output = Result<Option<T>>> + Send + use<T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let key = key.to_owned();
        self.write("pop", move |storage, table, cache| {
            let Some(json) = storage.get(table, &key)? else { return Ok(Outcome::plain(None)) };
            let value: T = codec::decode(&key, &json)?;
            storage.delete(table, &key)?;
            let (cache, key) = (Arc::clone(cache), key.clone());
            Ok(Outcome::then(Some(value), move || cache.write(&key, None)))
        })
    }

    /// The value of `key` if present; otherwise stores `default` and returns it.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get) and [`set`](Self::set).
    pub fn setdefault<T>(&self, key: &str, default: &T) -> impl Future<Output = Result<T>> + Send + use<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let encoded = codec::encode(key, default);
        let (shared, key) = (Arc::clone(&self.shared), key.to_owned());
        async move {
            let default = encoded?;
            let job_key = key.clone();
            let stored = shared.job("setdefault", Kind::Write, move |storage, table, cache| {
                let value = match storage.get(table, &job_key)? {
                    Some(json) => CachedValue::new(json),
                    None => {
                        storage.put(table, &job_key, &default)?;
                        CachedValue::new(default.as_str())
                    }
                };
                let (cache, key, cached) = (Arc::clone(cache), job_key.clone(), Arc::clone(&value));
                Ok(Outcome::then(value, move || cache.write(&key, Some(cached))))
            });
            stored.await?.decode(&key)
        }
    }

    /// Deletes every row of this table.
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    pub fn clear(&self) -> impl Future<Output = Result<()>> + Send + use<> {
        self.write("clear", |storage, table, cache| {
            storage.clear(table)?;
            let cache = Arc::clone(cache);
            Ok(Outcome::then((), move || cache.clear()))
        })
    }
}

// ===== atomic updates =====

impl AsyncNanaSQLite {
    /// As [`NanaSQLite::increment`](nanasqlite_core::NanaSQLite::increment): adds `amount` to
    /// the number under `key` (or its `field`) atomically, on the writer, and returns the new value.
    ///
    /// # Errors
    ///
    /// As the sync store's.
    pub fn increment<A: Into<Amount>>(
        &self,
        key: &str,
        amount: A,
        field: Option<&str>,
    ) -> impl Future<Output = Result<Value>> + Send + use<A> {
        let step = Increment::new(amount.into(), field);
        let (shared, key) = (Arc::clone(&self.shared), key.to_owned());
        async move {
            let step = step?;
            let transform = move |key: &str, current| step.apply(key, current);
            transform_job(&shared, "increment", key, transform).await
        }
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
    ) -> impl Future<Output = Result<Value>> + Send + use<T> {
        let changes = serde_json::to_value(changes)
            .map_err(|source| Error::Encode { key: key.to_owned(), source })
            .and_then(atomic::changes);
        let (shared, key) = (Arc::clone(&self.shared), key.to_owned());
        async move {
            let changes = changes?;
            let transform = move |key: &str, current| atomic::patch(key, current, changes.clone(), create);
            transform_job(&shared, "patch", key, transform).await
        }
    }
}

/// On the writer, inside its transaction: reads `key` from the file, applies `transform`, writes.
async fn transform_job(
    shared: &Arc<Shared>,
    op: &'static str,
    key: String,
    transform: impl Fn(&str, Option<Value>) -> Result<Value> + Send + 'static,
) -> Result<Value> {
    shared
        .job(op, Kind::Write, move |storage, table, cache| {
            let current = storage.get(table, &key)?.map(|json| codec::parse(&key, &json)).transpose()?;
            let value = transform(&key, current)?;
            let cached = CachedValue::new(codec::encode(&key, &value)?);
            storage.put(table, &key, cached.json())?;
            let (cache, key) = (Arc::clone(cache), key.clone());
            Ok(Outcome::then(value, move || cache.write(&key, Some(cached))))
        })
        .await
}

// ===== cache control =====

impl AsyncNanaSQLite {
    /// Loads every row of the table into the cache.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::LockTimeout`], SQLite's error.
    pub fn load_all(&self) -> impl Future<Output = Result<()>> + Send + use<> {
        let (checked, shared) = (self.ensure_open(), Arc::clone(&self.shared));
        async move {
            checked?;
            shared.load_all().await
        }
    }

    /// Forgets what the cache knows of `key` and reads it again from the file.
    ///
    /// # Errors
    ///
    /// As [`load_all`](Self::load_all).
    pub fn refresh(&self, key: &str) -> impl Future<Output = Result<()>> + Send + use<> {
        let (checked, shared, key) = (self.ensure_open(), Arc::clone(&self.shared), key.to_owned());
        async move {
            checked?;
            shared.cache.forget(&key);
            shared.load(key).await.map(drop)
        }
    }

    /// Empties this table's cache; the file is untouched. Needs no `.await`: no I/O.
    pub fn clear_cache(&self) {
        self.shared.cache.clear();
    }

    /// Whether the cache can answer for `key` without the file. Needs no `.await`: no I/O.
    /// Always `false` once closed.
    #[must_use]
    pub fn is_cached(&self, key: &str) -> bool {
        !self.shared.pool.is_closed() && self.shared.cache.knows(key)
    }
}

// ===== the seed's names =====

impl AsyncNanaSQLite {
    /// The seed's name for [`get`](Self::get).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn aget<T>(&self, key: &str) -> impl Future<Output = Result<Option<T>>> + Send + use<T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.get(key)
    }

    /// The seed's name for [`set`](Self::set).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn aset<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> impl Future<Output = Result<()>> + Send + use<T> {
        self.set(key, value)
    }

    /// The seed's name for [`delete`](Self::delete).
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    pub fn adelete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send + use<> {
        self.delete(key)
    }

    /// The seed's name for [`contains`](Self::contains).
    ///
    /// # Errors
    ///
    /// As [`contains`](Self::contains).
    pub fn acontains(&self, key: &str) -> impl Future<Output = Result<bool>> + Send + use<> {
        self.contains(key)
    }

    /// The seed's name for [`len`](Self::len).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn alen(&self) -> impl Future<Output = Result<usize>> + Send + use<> {
        self.len()
    }

    /// The seed's name for [`keys`](Self::keys).
    ///
    /// # Errors
    ///
    /// As [`keys`](Self::keys).
    pub fn akeys(&self) -> impl Future<Output = Result<Vec<String>>> + Send + use<> {
        self.keys()
    }
}
