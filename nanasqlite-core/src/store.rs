//! [`NanaSQLite`]: the sync, dict-like store.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::atomic::{self, Amount, Increment};
use crate::builder::Builder;
use crate::cache::{Cache, CacheStrategy, CachedValue, Lookup};
use crate::codec;
use crate::database::Database;
use crate::error::Result;
use crate::identifier::Identifier;
use crate::sql::SqlPolicy;
use crate::storage::{SqliteStorage, Storage};

/// A dict-like key/value table in a SQLite file: every write is committed before the call
/// returns, and reads are served from an in-memory cache once a key has been seen.
///
/// Values are any `serde` type, stored as JSON text in the same layout as Python NanaSQLite
/// (`"<table>"(key TEXT PRIMARY KEY, value TEXT)`), so either library reads the other's files.
/// The handle is cheap to clone and can be used from many threads at once; SQLite work is
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
    inner: Arc<Table<S>>,
}

/// What one handle refers to: a table of a shared database, and that table's cache.
struct Table<S: Storage> {
    database: Arc<Database<S>>,
    name: Identifier,
    storage_table: S::Table,
    strategy: CacheStrategy,
    policy: SqlPolicy,
    cache: Arc<Cache>,
}

impl<S: Storage> Clone for NanaSQLite<S> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<S: Storage> fmt::Debug for NanaSQLite<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NanaSQLite")
            .field("path", &self.inner.database.path())
            .field("table", &self.inner.name)
            .finish_non_exhaustive()
    }
}

// ===== opening =====

impl NanaSQLite {
    /// Opens the database at `path` (created if missing) with table `"data"`, a lazy unbounded
    /// cache and Python NanaSQLite's pragmas. `":memory:"` opens a private in-memory database.
    ///
    /// # Errors
    ///
    /// See [`Builder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).open()
    }

    /// A [`Builder`] for opening `path` with options.
    pub fn builder(path: impl AsRef<Path>) -> Builder {
        Builder::new(path)
    }
}

impl<S: Storage> NanaSQLite<S> {
    /// A handle on `name` in `database`, creating the table if needed.
    pub(crate) fn attach(
        database: Arc<Database<S>>,
        name: Identifier,
        strategy: CacheStrategy,
        policy: SqlPolicy,
    ) -> Result<Self> {
        let storage_table = database.lock()?.open_table(&name)?;
        let cache = Arc::new(Cache::new(strategy));
        database.register(&name, &cache);
        Ok(Self { inner: Arc::new(Table { database, name, storage_table, strategy, policy, cache }) })
    }

    /// The rules SQL fragments of this handle are checked against.
    #[must_use]
    pub fn sql_policy(&self) -> &SqlPolicy {
        &self.inner.policy
    }

    pub(crate) fn storage_table(&self) -> &S::Table {
        &self.inner.storage_table
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
    /// [`Error::Closed`](crate::Error::Closed), or SQLite's error.
    pub fn table(&self, name: &str) -> Result<Self> {
        self.database().ensure_open()?;
        let name = Identifier::new(name)?;
        Self::attach(Arc::clone(&self.inner.database), name, self.inner.strategy, self.inner.policy.clone())
    }

    /// The file this store was opened on.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.database().path()
    }

    /// The name of this handle's table.
    #[must_use]
    pub fn table_name(&self) -> &str {
        self.inner.name.as_str()
    }

    /// Closes the database: the connection is closed and every handle on the file (clones and
    /// other tables included) returns [`Error::Closed`](crate::Error::Closed) from then on.
    /// Closing again does nothing. Dropping every handle closes the file too, without the
    /// report.
    ///
    /// # Errors
    ///
    /// SQLite's error if closing the connection failed; the store is closed all the same.
    pub fn close(&self) -> Result<()> {
        let result = self.database().close();
        self.inner.cache.clear();
        result
    }

    pub(crate) fn database(&self) -> &Database<S> {
        &self.inner.database
    }

    /// Runs `work` on the connection under the store's lock.
    /// Expired keys of a TTL cache with `delete_expired` are deleted from the file first.
    /// A write that another process locked out for the whole busy timeout is a `LockTimeout`.
    pub(crate) fn with_storage<R>(&self, work: impl FnOnce(&mut S, &S::Table) -> Result<R>) -> Result<R> {
        let mut storage = self.database().lock()?;
        for key in self.cache().take_expired() {
            if let Err(error) = storage.delete(&self.inner.storage_table, &key) {
                tracing::warn!(%key, %error, "could not delete an expired key");
            }
        }
        let busy = self.database().busy_timeout();
        work(&mut storage, &self.inner.storage_table).map_err(|error| error.busy_as_lock_timeout(busy))
    }

    pub(crate) fn cache(&self) -> &Cache {
        &self.inner.cache
    }
}

// ===== reads =====

impl<S: Storage> NanaSQLite<S> {
    /// The value of `key`, or `None` if it is absent. A stored JSON `null` is present: read it
    /// as `Option<serde_json::Value>` to get `Some(Value::Null)`.
    ///
    /// Served from the cache when the key has been read or written before (or found absent);
    /// otherwise read from the file and cached.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) when the stored text is not JSON or does not
    /// fit `T`; [`Error::Closed`](crate::Error::Closed); [`Error::LockTimeout`](crate::Error::LockTimeout);
    /// SQLite's error.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.cached(key)?.map(|value| value.decode(key)).transpose()
    }

    /// The value of `key` as a shared, parsed JSON value: on a cache hit no copy is made, so
    /// this is the fastest read (about a hash lookup). Prefer [`get`](Self::get) for typed
    /// values; use this for hot paths that only look at the value.
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// db.set("user", &serde_json::json!({"name": "Alice"}))?;
    /// let user = db.get_shared("user")?.expect("present");
    /// assert_eq!(user["name"], "Alice");
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_shared(&self, key: &str) -> Result<Option<Arc<Value>>> {
        self.cached(key)?.map(|value| value.value(key).cloned()).transpose()
    }

    /// Whether `key` exists (answered from the cache when it knows).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), without the decode error.
    pub fn contains(&self, key: &str) -> Result<bool> {
        self.database().ensure_open()?;
        self.database().notice_external_writes();
        match self.cache().lookup(key) {
            Lookup::Hit(_) => Ok(true),
            Lookup::Absent => Ok(false),
            Lookup::Miss => self.with_storage(|storage, table| {
                let since = self.cache().epoch();
                let exists = storage.contains(table, key)?;
                if !exists {
                    self.cache().fill(key, None, since);
                }
                Ok(exists)
            }),
        }
    }

    /// The number of keys (always counted in the file).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed), [`Error::LockTimeout`](crate::Error::LockTimeout), SQLite's error.
    pub fn len(&self) -> Result<usize> {
        let count = self.with_storage(|storage, table| storage.count(table))?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    /// Whether the table has no keys.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Every key, sorted by byte order (as Python NanaSQLite returns them).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn keys(&self) -> Result<Vec<String>> {
        self.with_storage(|storage, table| storage.keys(table))
    }

    /// Every value, in key order. Loads the whole table into the cache, as upstream does.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), for the first value that fails.
    pub fn values<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.all_rows()?.iter().map(|(key, value)| value.decode(key)).collect()
    }

    /// Every `(key, value)` pair, in key order. Loads the whole table into the cache.
    ///
    /// # Errors
    ///
    /// As [`values`](Self::values).
    pub fn items<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>> {
        let decode = |(key, value): (String, Arc<CachedValue>)| {
            let value = value.decode(&key)?;
            Ok((key, value))
        };
        self.all_rows()?.into_iter().map(decode).collect()
    }

    /// The whole table as a sorted map. Loads the whole table into the cache.
    ///
    /// # Errors
    ///
    /// As [`values`](Self::values).
    pub fn to_dict<T: DeserializeOwned>(&self) -> Result<BTreeMap<String, T>> {
        self.items().map(|items| items.into_iter().collect())
    }

    /// The values of the keys that exist among `keys`; absent keys are left out. Cached keys
    /// are answered from the cache, the rest are read in one query (per 900 keys) and cached.
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// db.batch_update([("a", 1), ("b", 2)])?;
    /// let found = db.batch_get::<i32>(["a", "b", "missing"])?;
    /// assert_eq!(found.len(), 2);
    /// assert_eq!(found["b"], 2);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn batch_get<T: DeserializeOwned>(
        &self,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<HashMap<String, T>> {
        self.database().ensure_open()?;
        self.database().notice_external_writes();
        let keys: Vec<_> = keys.into_iter().collect();
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let rows = match self.cache().lookup_all(&keys) {
            Some(rows) => rows,
            None => self.with_storage(|storage, table| self.lookup_or_load(storage, table, &keys))?,
        };
        rows.into_iter()
            .map(|(key, value)| {
                let decoded = value.decode(&key)?;
                Ok((key, decoded))
            })
            .collect()
    }

    /// Reads `key` from the file, bypassing (and then refreshing) the cache: for rows changed
    /// by another connection or process.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_fresh<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let value = self.with_storage(|storage, table| self.load_key(storage, table, key))?;
        value.map(|value| value.decode(key)).transpose()
    }

    /// The cached value of `key`, reading the file on a cache miss.
    fn cached(&self, key: &str) -> Result<Option<Arc<CachedValue>>> {
        self.database().ensure_open()?;
        self.database().notice_external_writes();
        match self.cache().lookup(key) {
            Lookup::Hit(value) => Ok(Some(value)),
            Lookup::Absent => Ok(None),
            Lookup::Miss => self.with_storage(|storage, table| self.load_key(storage, table, key)),
        }
    }

    /// Reads `key` and records the result in the cache (under the lock, so no write interleaves).
    fn load_key(&self, storage: &S, table: &S::Table, key: &str) -> Result<Option<Arc<CachedValue>>> {
        let since = self.cache().epoch();
        let value = storage.get(table, key)?.map(CachedValue::new);
        self.cache().fill(key, value.clone(), since);
        Ok(value)
    }

    /// The present values among `keys`: from the cache where it knows, the rest read in one
    /// go (cached, the missing ones marked absent). Runs under the store's lock, so no batch
    /// commits halfway through and the answer is one consistent state.
    fn lookup_or_load(&self, storage: &S, table: &S::Table, keys: &[&str]) -> Result<Vec<(String, Arc<CachedValue>)>> {
        let mut rows = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for &key in keys {
            match self.cache().lookup(key) {
                Lookup::Hit(value) => rows.push((key.to_owned(), value)),
                Lookup::Absent => {}
                Lookup::Miss => missing.push(key),
            }
        }
        let loaded_from = rows.len();
        let since = self.cache().epoch();
        storage.get_many(table, &missing, &mut |key, json| rows.push((key.to_owned(), CachedValue::new(json))))?;
        self.cache().fill_many(&missing, &rows[loaded_from..], since);
        Ok(rows)
    }

    /// Every row, sorted by key, loading the table into the cache first if needed.
    fn all_rows(&self) -> Result<Vec<(String, Arc<CachedValue>)>> {
        self.database().notice_external_writes();
        if self.cache().is_all_loaded() {
            self.database().ensure_open()?;
            return Ok(self.cache().present_sorted());
        }
        self.with_storage(|storage, table| {
            let since = self.cache().epoch();
            let rows = scan_rows(storage, table)?;
            let mut sorted: Vec<_> =
                rows.iter().map(|(key, value)| (String::from(&**key), Arc::clone(value))).collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            self.cache().fill_all(rows, since);
            Ok(sorted)
        })
    }
}

// ===== writes =====

impl<S: Storage> NanaSQLite<S> {
    /// Stores `value` under `key`; committed to the file when this returns.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`](crate::Error::Encode) when `value` cannot be JSON (nothing is
    /// written); [`Error::Closed`](crate::Error::Closed); [`Error::LockTimeout`](crate::Error::LockTimeout);
    /// SQLite's error (the cache is then unchanged).
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let json = codec::encode(key, value)?;
        self.with_storage(|storage, table| {
            storage.put(table, key, &json)?;
            self.cache().write(key, Some(CachedValue::new(json)));
            Ok(())
        })
    }

    /// Deletes `key`; `false` if it was absent.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed), [`Error::LockTimeout`](crate::Error::LockTimeout), SQLite's error.
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.with_storage(|storage, table| {
            let existed = storage.delete(table, key)?;
            self.cache().write(key, None);
            Ok(existed)
        })
    }

    /// Stores every `(key, value)` in one transaction: all of them or, on any error, none.
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// let users: Vec<(String, String)> = (0..3).map(|i| (format!("user_{i}"), format!("User{i}"))).collect();
    /// db.batch_update(&users)?;
    /// assert_eq!(db.len()?, 3);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Encode`](crate::Error::Encode) naming the first value that cannot be JSON
    /// (nothing of the batch is written), or as [`set`](Self::set).
    pub fn batch_update<K, V>(&self, rows: impl IntoIterator<Item = impl KeyValue<K, V>>) -> Result<()>
    where
        K: AsRef<str>,
        V: Serialize,
    {
        let rows = encode_rows(rows)?;
        self.with_storage(|storage, table| {
            if !rows.is_empty() {
                storage.transaction(|storage| storage.put_many(table, &rows))?;
                let cached = rows.iter().map(|(key, json)| (key.as_str(), CachedValue::new(json.as_str())));
                self.cache().write_many(cached, []);
            }
            Ok(())
        })
    }

    /// The same as [`batch_update`](Self::batch_update) (Python's `update`; note that there it
    /// commits key by key, here it is one transaction).
    ///
    /// # Errors
    ///
    /// As [`batch_update`](Self::batch_update).
    pub fn update<K, V>(&self, rows: impl IntoIterator<Item = impl KeyValue<K, V>>) -> Result<()>
    where
        K: AsRef<str>,
        V: Serialize,
    {
        self.batch_update(rows)
    }

    /// Deletes every key of `keys` in one transaction; returns how many existed.
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete); on error nothing is deleted.
    pub fn batch_delete(&self, keys: impl IntoIterator<Item = impl AsRef<str>>) -> Result<usize> {
        let keys: Vec<_> = keys.into_iter().collect();
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        self.with_storage(|storage, table| {
            let removed = storage.transaction(|storage| storage.delete_many(table, &keys))?;
            self.cache().write_many([], keys.iter().copied());
            Ok(removed)
        })
    }

    /// Removes `key` and returns its value, atomically; `None` if it was absent.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) when the value does not fit `T`: the key is
    /// then **not** removed. Otherwise as [`delete`](Self::delete).
    pub fn pop<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.with_storage(|storage, table| {
            let popped = storage.transaction(|storage| {
                let Some(json) = storage.get(table, key)? else {
                    return Ok(None);
                };
                let value = CachedValue::new(json).decode(key)?;
                storage.delete(table, key)?;
                Ok(Some(value))
            })?;
            self.cache().write(key, None);
            Ok(popped)
        })
    }

    /// The value of `key` if present; otherwise stores `default` and returns it (as stored).
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// assert_eq!(db.setdefault("visits", &0)?, 0);
    /// db.set("visits", &5)?;
    /// assert_eq!(db.setdefault("visits", &0)?, 5);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get) and [`set`](Self::set).
    pub fn setdefault<T: Serialize + DeserializeOwned>(&self, key: &str, default: &T) -> Result<T> {
        let value = self.with_storage(|storage, table| {
            let value = storage.transaction(|storage| match storage.get(table, key)? {
                Some(json) => Ok(CachedValue::new(json)),
                None => {
                    let json = codec::encode(key, default)?;
                    storage.put(table, key, &json)?;
                    Ok(CachedValue::new(json))
                }
            })?;
            self.cache().write(key, Some(Arc::clone(&value)));
            Ok(value)
        })?;
        value.decode(key)
    }

    /// Deletes every row of this table (other tables are untouched).
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    pub fn clear(&self) -> Result<()> {
        self.with_storage(|storage, table| {
            storage.clear(table)?;
            self.cache().clear();
            Ok(())
        })
    }
}

/// Every row of `table`, as cache entries (for [`Cache::fill_all`](crate::cache::Cache::fill_all)).
///
/// # Errors
///
/// The backend's error.
pub fn scan_rows<S: Storage>(storage: &S, table: &S::Table) -> Result<Vec<(Box<str>, Arc<CachedValue>)>> {
    let mut rows = Vec::new();
    storage.scan(table, &mut |key, json| rows.push((Box::from(key), CachedValue::new(json))))?;
    Ok(rows)
}

/// A `(key, value)` pair, owned or borrowed: what [`NanaSQLite::batch_update`] takes, so that
/// it accepts `[("a", 1)]`, `Vec<(String, V)>`, `&Vec<(String, V)>`, `&HashMap<String, V>`
/// and the like.
pub trait KeyValue<K, V> {
    /// The pair's parts.
    fn parts(&self) -> (&K, &V);
}

impl<K, V> KeyValue<K, V> for (K, V) {
    fn parts(&self) -> (&K, &V) {
        (&self.0, &self.1)
    }
}

impl<K, V> KeyValue<K, V> for &(K, V) {
    fn parts(&self) -> (&K, &V) {
        (&self.0, &self.1)
    }
}

/// Encodes every `(key, value)` first, so an unencodable value stops a batch before anything
/// is written.
///
/// # Errors
///
/// [`Error::Encode`](crate::Error::Encode) naming the first key whose value fails.
pub fn encode_rows<K: AsRef<str>, V: Serialize>(
    rows: impl IntoIterator<Item = impl KeyValue<K, V>>,
) -> Result<Vec<(String, String)>> {
    rows.into_iter()
        .map(|row| {
            let (key, value) = row.parts();
            let key = key.as_ref();
            Ok((key.to_owned(), codec::encode(key, value)?))
        })
        .collect()
}

// ===== atomic updates =====

impl<S: Storage> NanaSQLite<S> {
    /// Adds `amount` to the number stored under `key` (or, with `field`, to that field of the
    /// object stored there) and returns the new stored value, atomically: the read, the sum and
    /// the write are one `BEGIN IMMEDIATE` transaction, so concurrent increments from other
    /// threads and processes all count. A missing key or field starts from 0 (Python
    /// NanaSQLite raises `KeyError` unless given a default).
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// assert_eq!(db.increment("visits", 1, None)?, 1);
    /// assert_eq!(db.increment("visits", 2, None)?, 3);
    /// db.set("page", &serde_json::json!({"hits": 1, "title": "home"}))?;
    /// assert_eq!(db.increment("page", 1, Some("hits"))?["hits"], 2);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) when the stored value (or field) is not
    /// a number, the value is not an object when `field` is given, or the result is not finite;
    /// [`Error::Decode`](crate::Error::Decode); SQLite's error. Nothing is written then.
    pub fn increment(&self, key: &str, amount: impl Into<Amount>, field: Option<&str>) -> Result<Value> {
        let step = Increment::new(amount.into(), field)?;
        self.transform(key, |current| step.apply(key, current))
    }

    /// Merges `changes` (an object) into the object stored under `key`, one level deep, and
    /// returns the result, atomically as [`increment`](Self::increment). A missing key is an
    /// error unless `create` is true.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) for a missing key without `create`;
    /// [`Error::Validation`](crate::Error::Validation) when either side is not an object;
    /// [`Error::Encode`](crate::Error::Encode); SQLite's error. Nothing is written then.
    pub fn patch<T: Serialize + ?Sized>(&self, key: &str, changes: &T, create: bool) -> Result<Value> {
        let value =
            serde_json::to_value(changes).map_err(|source| crate::Error::Encode { key: key.to_owned(), source })?;
        let changes = atomic::changes(value)?;
        self.transform(key, |current| atomic::patch(key, current, changes.clone(), create))
    }

    /// Reads `key` from the file, applies `step`, and writes the result, in one transaction.
    fn transform(&self, key: &str, step: impl Fn(Option<Value>) -> Result<Value>) -> Result<Value> {
        self.with_storage(|storage, table| {
            let (value, json) = storage.transaction(|storage| {
                let current = storage.get(table, key)?.map(|json| codec::parse(key, &json)).transpose()?;
                let value = step(current)?;
                let json = codec::encode(key, &value)?;
                storage.put(table, key, &json)?;
                Ok((value, json))
            })?;
            self.cache().write(key, Some(CachedValue::new(json)));
            Ok(value)
        })
    }
}

// ===== cache control =====

impl<S: Storage> NanaSQLite<S> {
    /// Loads every row of the table into the cache; afterwards reads never touch the file,
    /// and keys not loaded are known to be absent.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed), [`Error::LockTimeout`](crate::Error::LockTimeout), SQLite's error.
    pub fn load_all(&self) -> Result<()> {
        self.with_storage(|storage, table| self.load_all_locked(storage, table))
    }

    /// Forgets what the cache knows of `key` and reads it again from the file.
    ///
    /// # Errors
    ///
    /// As [`load_all`](Self::load_all).
    pub fn refresh(&self, key: &str) -> Result<()> {
        self.with_storage(|storage, table| {
            self.cache().forget(key);
            self.load_key(storage, table, key).map(drop)
        })
    }

    /// Empties this table's cache; the file is untouched.
    pub fn clear_cache(&self) {
        self.cache().clear();
    }

    /// Whether the cache can answer for `key` without the file (it holds the value, or knows
    /// the key is absent). Always `false` after [`close`](Self::close).
    #[must_use]
    pub fn is_cached(&self, key: &str) -> bool {
        self.database().ensure_open().is_ok() && self.cache().knows(key)
    }

    fn load_all_locked(&self, storage: &S, table: &S::Table) -> Result<()> {
        let since = self.cache().epoch();
        let rows = scan_rows(storage, table)?;
        self.cache().fill_all(rows, since);
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
    fn a_failed_write_never_shows_in_the_cache() {
        let db = NanaSQLite::open(":memory:").unwrap();
        db.set("k", &1).unwrap();
        db.with_storage(|s, _| {
            s.connection().execute_batch(
                "CREATE TRIGGER no_twos BEFORE INSERT ON data WHEN NEW.value = '2' BEGIN SELECT RAISE(ABORT, 'no'); END;",
            )?;
            Ok(())
        })
        .unwrap();
        assert!(matches!(db.set("k", &2), Err(Error::Sqlite(_))));
        assert_eq!(db.get::<i32>("k").unwrap(), Some(1));
        assert!(db.batch_update([("a", 1), ("b", 2)]).is_err());
        assert!(!db.is_cached("a"));
        assert_eq!(db.get::<i32>("a").unwrap(), None);
    }
}
