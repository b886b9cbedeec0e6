//! The key/value calls of [`AsyncNanaSQLite`]: reads, writes, atomic updates and cache control,
//! each a call of the engine's front end ([`Front`]).

use super::AsyncNanaSQLite;
use crate::budget::Pending;
use nanasqlite_core::Amount;
use nanasqlite_core::engine::Front;
use nanasqlite_core::storage::Storage;
use nanasqlite_core::{BatchReport, KeyValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

// ===== reads =====

impl<S: Storage> AsyncNanaSQLite<S> {
    /// The value of `key`, or `None` if it is absent (a stored JSON `null` is present).
    /// A cache hit completes on the caller's thread; a miss is read by a lane and cached.
    /// A hit decodes the cached JSON text; [`get_cloned`](Self::get_cloned) keeps a decoded
    /// copy of types that can be cloned instead.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](nanasqlite_core::Error::Decode) when the value does not fit `T`; [`Error::Closed`](nanasqlite_core::Error::Closed);
    /// [`Error::LockTimeout`](nanasqlite_core::Error::LockTimeout); SQLite's error.
    pub fn get<T: DeserializeOwned + Send + 'static>(&self, key: &str) -> Pending<Option<T>> {
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
    pub fn get_cloned<T: DeserializeOwned + Clone + Send + Sync + 'static>(&self, key: &str) -> Pending<Option<T>> {
        self.finish(key, self.cached(key, true), |table, key, found| {
            found.map(|value| table.decode_cloned(key, &value)).transpose()
        })
    }

    /// The value of `key` as a shared, parsed JSON value: on a cache hit no copy is made.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_shared(&self, key: &str) -> Pending<Option<Arc<Value>>> {
        self.shared_value(key)
    }

    /// Reads `key` from the file, bypassing (then refreshing) the cache.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_fresh<T: DeserializeOwned + Send + 'static>(&self, key: &str) -> Pending<Option<T>> {
        self.finish(key, self.fresh(key), |table, key, found| found.map(|value| table.decode(key, &value)).transpose())
    }

    /// Whether `key` exists (answered from the cache when it knows).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](nanasqlite_core::Error::Closed), [`Error::LockTimeout`](nanasqlite_core::Error::LockTimeout), SQLite's error.
    pub fn contains(&self, key: &str) -> Pending<bool> {
        self.contains_key(key)
    }

    /// The number of keys (counted in the file).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](nanasqlite_core::Error::Closed), [`Error::LockTimeout`](nanasqlite_core::Error::LockTimeout), SQLite's error.
    pub fn len(&self) -> Pending<usize> {
        self.key_count()
    }

    /// Whether the table has no keys.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn is_empty(&self) -> Pending<bool> {
        Self::then(self.key_count(), |count| Pending::now(Ok(count == 0)))
    }

    /// Every key, sorted by byte order; keys that cannot be named are left out (see
    /// [`unreadable_keys`](Self::unreadable_keys)).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn keys(&self) -> Pending<Vec<String>> {
        self.sorted_keys()
    }

    /// How many keys cannot be named (stored by another tool as numbers, blobs or invalid
    /// UTF-8), as [`NanaSQLite::unreadable_keys`](nanasqlite_core::NanaSQLite::unreadable_keys).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn unreadable_keys(&self) -> Pending<u64> {
        self.unreadable_key_count()
    }

    /// Every `(key, value)`, sorted by key; loads the whole table into the cache.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), for the first value that fails.
    pub fn items<T: DeserializeOwned + Send + 'static>(&self) -> Pending<Vec<(String, T)>> {
        self.decoded_rows()
    }

    /// Every value, sorted by key; loads the whole table into the cache.
    ///
    /// # Errors
    ///
    /// As [`items`](Self::items).
    pub fn values<T: DeserializeOwned + Send + 'static>(&self) -> Pending<Vec<T>> {
        Self::then(self.decoded_rows::<T>(), |items| {
            Pending::now(Ok(items.into_iter().map(|(_, value)| value).collect()))
        })
    }

    /// The whole table as a sorted map; loads it into the cache.
    ///
    /// # Errors
    ///
    /// As [`items`](Self::items).
    pub fn to_dict<T: DeserializeOwned + Send + 'static>(&self) -> Pending<BTreeMap<String, T>> {
        Self::then(self.decoded_rows::<T>(), |items| Pending::now(Ok(items.into_iter().collect())))
    }

    /// The values of the keys among `keys` that exist. When the cache knows every key the
    /// answer comes from it at once; otherwise all of them are read in one snapshot.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn batch_get<T: DeserializeOwned + Send + 'static>(
        &self,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Pending<HashMap<String, T>> {
        let (table, keys) = (Arc::clone(&self.table), keys.into_iter().map(|key| Box::from(key.as_ref())).collect());
        Self::then(self.rows_of(keys), move |rows| {
            Pending::now(table.reader().decode_rows(rows).map(|rows| rows.into_iter().collect()))
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
    /// [`Error::Encode`](nanasqlite_core::Error::Encode) when `value` cannot be JSON (nothing is written); [`Error::Closed`](nanasqlite_core::Error::Closed);
    /// [`Error::LockTimeout`](nanasqlite_core::Error::LockTimeout); SQLite's error (this write alone fails; the cache is unchanged).
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Pending<()> {
        self.put(key, value)
    }

    /// Deletes `key`; `false` if it was absent.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](nanasqlite_core::Error::Closed), [`Error::LockTimeout`](nanasqlite_core::Error::LockTimeout), SQLite's error.
    pub fn delete(&self, key: &str) -> Pending<bool> {
        self.remove(key)
    }

    /// Stores every `(key, value)` atomically: all of them or, on any error, none. Values are
    /// encoded on the caller's thread, when this is called.
    ///
    /// Like every write, a batch takes its place among this store's writes when its future is
    /// first polled: a write polled before it is applied before it, one polled after it after
    /// it.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`](nanasqlite_core::Error::Encode) naming the first value that cannot be JSON (nothing is written), or as
    /// [`set`](Self::set).
    pub fn batch_update<K: AsRef<str>, V: Serialize>(
        &self,
        rows: impl IntoIterator<Item = impl KeyValue<K, V>>,
    ) -> Pending<()> {
        self.put_rows(rows)
    }

    /// Stores, best effort, every row whose value can be encoded (in one transaction) and
    /// reports the others, as
    /// [`NanaSQLite::batch_update_partial`](nanasqlite_core::NanaSQLite::batch_update_partial).
    ///
    /// # Errors
    ///
    /// As [`batch_update`](Self::batch_update) for the transaction itself.
    pub fn batch_update_partial<K: AsRef<str>, V: Serialize>(
        &self,
        rows: impl IntoIterator<Item = impl KeyValue<K, V>>,
    ) -> Pending<BatchReport> {
        self.put_partial(rows)
    }

    /// The same as [`batch_update`](Self::batch_update).
    ///
    /// # Errors
    ///
    /// As [`batch_update`](Self::batch_update).
    pub fn update<K: AsRef<str>, V: Serialize>(
        &self,
        rows: impl IntoIterator<Item = impl KeyValue<K, V>>,
    ) -> Pending<()> {
        self.batch_update(rows)
    }

    /// Deletes every key of `keys` atomically; returns how many existed.
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete); on error nothing is deleted.
    pub fn batch_delete(&self, keys: impl IntoIterator<Item = impl AsRef<str>>) -> Pending<usize> {
        self.remove_keys(keys.into_iter().map(|key| Box::from(key.as_ref())).collect())
    }

    /// Removes `key` and returns its value, atomically; `None` if it was absent. The value is
    /// decoded on the writer thread before the delete, so one that does not fit `T` is left
    /// in place.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](nanasqlite_core::Error::Decode) (the key is then **not** removed), or as [`delete`](Self::delete).
    pub fn pop<T: DeserializeOwned + Send + 'static>(&self, key: &str) -> Pending<Option<T>> {
        self.pop_value(key)
    }

    /// One page of the rows `scan` selects and the cursor of the next, as
    /// [`NanaSQLite::scan_page`](nanasqlite_core::NanaSQLite::scan_page).
    ///
    /// # Errors
    ///
    /// As the sync store's.
    pub fn scan_page<T: DeserializeOwned + Send + 'static>(
        &self,
        scan: nanasqlite_core::Scan,
    ) -> Pending<nanasqlite_core::Page<T>> {
        self.page(scan)
    }

    /// The rows `scan` selects, decoded as `T`, as
    /// [`NanaSQLite::scan`](nanasqlite_core::NanaSQLite::scan) (read a page at a time on the
    /// lanes).
    ///
    /// # Errors
    ///
    /// As the sync store's.
    pub fn scan<T: DeserializeOwned + Send + 'static>(&self, scan: nanasqlite_core::Scan) -> Pending<Vec<(String, T)>> {
        let stream = self.stream::<T>(scan);
        Pending::later(async move {
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
        })
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
    pub fn get_by_path<T>(&self, key: &str, path: &str) -> Pending<Option<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.value_at_path(key, path)
    }

    /// Removes the first key (in key order) and returns it with its value, as
    /// [`NanaSQLite::popitem`](nanasqlite_core::NanaSQLite::popitem).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](nanasqlite_core::Error::Decode) (nothing is then removed), or as [`delete`](Self::delete).
    pub fn popitem<T: DeserializeOwned + Send + 'static>(&self) -> Pending<Option<(String, T)>> {
        self.pop_first()
    }

    /// The value of `key` if present; otherwise stores `default` and returns it.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get) and [`set`](Self::set).
    pub fn setdefault<T: Serialize + DeserializeOwned + Send + 'static>(&self, key: &str, default: &T) -> Pending<T> {
        let (key, table) = (key.to_owned(), Arc::clone(&self.table));
        Self::then(self.set_default(&key, default), move |stored| Pending::now(table.decode(&key, &stored)))
    }

    /// Deletes every row of this table.
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    pub fn clear(&self) -> Pending<()> {
        self.clear_table()
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
    /// `impl Into<Amount>`.
    pub fn increment<T: DeserializeOwned + Send + 'static>(
        &self,
        key: &str,
        amount: impl Into<Amount>,
        field: Option<&str>,
    ) -> Pending<T> {
        self.increment_from(key, amount, field, 0)
    }

    /// As [`increment`](Self::increment), a missing key or field counting as `start`, as
    /// [`NanaSQLite::increment_from`](nanasqlite_core::NanaSQLite::increment_from).
    ///
    /// # Errors
    ///
    /// As the sync store's.
    pub fn increment_from<T: DeserializeOwned + Send + 'static>(
        &self,
        key: &str,
        amount: impl Into<Amount>,
        field: Option<&str>,
        start: impl Into<Amount>,
    ) -> Pending<T> {
        let stored = self.increment_by(key, amount.into(), field, start.into());
        let (key, table) = (key.to_owned(), Arc::clone(&self.table));
        Self::then(stored, move |stored| Pending::now(table.decode_result(&key, &stored)))
    }

    /// As [`NanaSQLite::patch`](nanasqlite_core::NanaSQLite::patch): merges `changes` into the
    /// object under `key` atomically, on the writer, and returns the result.
    ///
    /// # Errors
    ///
    /// As the sync store's.
    pub fn patch<T: Serialize + ?Sized>(&self, key: &str, changes: &T, create: bool) -> Pending<Value> {
        let stored = self.patch_with(key, changes, create);
        let (key, table) = (key.to_owned(), Arc::clone(&self.table));
        Self::then(stored, move |stored| Pending::now(table.decode_result(&key, &stored)))
    }
}

// ===== cache control =====

impl<S: Storage> AsyncNanaSQLite<S> {
    /// Loads every row of the table into the cache.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](nanasqlite_core::Error::Closed), [`Error::LockTimeout`](nanasqlite_core::Error::LockTimeout), SQLite's error.
    pub fn load_all(&self) -> Pending<()> {
        self.load_table()
    }

    /// Forgets what the cache knows of `key` and reads it again from the file.
    ///
    /// # Errors
    ///
    /// As [`load_all`](Self::load_all).
    pub fn refresh(&self, key: &str) -> Pending<()> {
        self.refresh_key(key)
    }

    /// Empties this table's cache; the file is untouched. Needs no `.await`: no I/O.
    pub fn clear_cache(&self) {
        self.table.clear_cache();
    }

    /// Whether a [`begin`](Self::begin) transaction is open on this store now (Python
    /// NanaSQLite's `in_transaction()`), counted from the moment `begin()` is first polled,
    /// while it still waits for the writer. A [`transaction`](Self::transaction) closure runs
    /// on the writer, where other calls wait for it; it does not count.
    #[must_use]
    pub fn in_transaction(&self) -> bool {
        self.pool.in_transaction()
    }

    /// Whether the cache can answer for `key` without the file. Needs no `.await`: no I/O.
    /// Always `false` once closed.
    #[must_use]
    pub fn is_cached(&self, key: &str) -> bool {
        self.knows(key)
    }
}

// ===== the async guide's names =====

impl<S: Storage> AsyncNanaSQLite<S> {
    /// The async guide's name for [`get`](Self::get).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn aget<T>(&self, key: &str) -> Pending<Option<T>>
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
    pub fn aset<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Pending<()> {
        self.set(key, value)
    }

    /// The async guide's name for [`delete`](Self::delete).
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    pub fn adelete(&self, key: &str) -> Pending<bool> {
        self.delete(key)
    }

    /// The async guide's name for [`contains`](Self::contains).
    ///
    /// # Errors
    ///
    /// As [`contains`](Self::contains).
    pub fn acontains(&self, key: &str) -> Pending<bool> {
        self.contains(key)
    }

    /// The async guide's name for [`len`](Self::len).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn alen(&self) -> Pending<usize> {
        self.len()
    }

    /// The async guide's name for [`keys`](Self::keys).
    ///
    /// # Errors
    ///
    /// As [`keys`](Self::keys).
    pub fn akeys(&self) -> Pending<Vec<String>> {
        self.keys()
    }
}
