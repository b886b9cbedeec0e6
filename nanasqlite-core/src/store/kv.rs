//! The key/value calls of [`NanaSQLite`]: reads, writes, atomic updates and cache control,
//! each a call of the engine's front end ([`Front`]).

use super::NanaSQLite;
use super::scan::Iter;
use crate::atomic::Amount;
use crate::engine::{BatchReport, Front, GetByPath, KeyValue, Pop, PopItem};
use crate::error::Result;
use crate::scan::Scan;
use crate::storage::Storage;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

// ===== reads =====

impl<S: Storage> NanaSQLite<S> {
    /// The value of `key`, or `None` if it is absent. A stored JSON `null` is present: read it
    /// as `Option<serde_json::Value>` to get `Some(Value::Null)`.
    ///
    /// Served from the cache when the key has been read or written before (or found absent);
    /// otherwise read from the file and cached.
    ///
    /// A hit decodes the cached JSON text; [`get_cloned`](Self::get_cloned) keeps a decoded
    /// copy of types that can be cloned instead.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) when the stored value is not JSON or does not
    /// fit `T`; [`Error::Closed`](crate::Error::Closed); [`Error::LockTimeout`](crate::Error::LockTimeout);
    /// SQLite's error.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.cached(key, false)?.map(|value| self.table.decode(key, &value)).transpose()
    }

    /// As [`get`](Self::get), keeping the first decoded `T` beside the cached text so that
    /// later hits clone it instead of decoding again: for a small record a clone costs a
    /// fraction of parsing. A key read as another type, or through a hook's `after_read`,
    /// decodes as [`get`](Self::get) does. Typed tables read this way.
    ///
    /// # Examples
    ///
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    /// struct User { name: String }
    ///
    /// let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// db.set("u1", &User { name: "Alice".into() })?;
    /// assert_eq!(db.get_cloned::<User>("u1")?, Some(User { name: "Alice".into() }));
    /// assert_eq!(db.get_cloned::<User>("u1")?, Some(User { name: "Alice".into() })); // a clone
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_cloned<T>(&self, key: &str) -> Result<Option<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.cached(key, true)?.map(|value| self.table.decode_cloned(key, &value)).transpose()
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
        self.shared_value(key)
    }

    /// Whether `key` exists (answered from the cache when it knows).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), without the decode error.
    pub fn contains(&self, key: &str) -> Result<bool> {
        self.contains_key(key)
    }

    /// The number of keys (always counted in the file).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed), [`Error::LockTimeout`](crate::Error::LockTimeout), SQLite's error.
    pub fn len(&self) -> Result<usize> {
        self.key_count()
    }

    /// Whether the table has no keys.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Every key, sorted by byte order (as Python NanaSQLite returns them). Keys another tool
    /// stored as numbers, blobs or invalid UTF-8 cannot be named by a `&str` and are left out;
    /// [`unreadable_keys`](Self::unreadable_keys) counts them.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn keys(&self) -> Result<Vec<String>> {
        self.sorted_keys()
    }

    /// How many keys of the table cannot be named (stored by another tool as numbers, blobs or
    /// invalid UTF-8): [`keys`](Self::keys), [`items`](Self::items) and the like leave them out
    /// rather than fail for the whole table.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn unreadable_keys(&self) -> Result<u64> {
        self.unreadable_key_count()
    }

    /// Every value, in key order. Loads the whole table into the cache, as upstream does.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), for the first value that fails.
    pub fn values<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        let reader = self.table.reader();
        self.all_rows()?.iter().map(|(key, value)| reader.decode(key, value)).collect()
    }

    /// Every `(key, value)` pair, in key order. Loads the whole table into the cache.
    ///
    /// # Errors
    ///
    /// As [`values`](Self::values).
    pub fn items<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>> {
        self.table.reader().decode_rows(self.all_rows()?)
    }

    /// The whole table as a sorted map. Loads the whole table into the cache.
    ///
    /// # Errors
    ///
    /// As [`values`](Self::values).
    pub fn to_dict<T: DeserializeOwned>(&self) -> Result<BTreeMap<String, T>> {
        self.items().map(|items| items.into_iter().collect())
    }

    /// The values of the keys that exist among `keys`; absent keys are left out. When the
    /// cache knows every key the answer comes from it; otherwise all of them are read in one
    /// go (per 900 keys) and cached.
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
        let rows = self.rows_of(keys.into_iter().map(|key| Box::from(key.as_ref())).collect())?;
        self.table.reader().decode_rows(rows).map(|rows| rows.into_iter().collect())
    }

    /// Reads `key` from the file, bypassing (and then refreshing) the cache: for rows changed
    /// by another connection or process.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_fresh<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.fresh(key)?.map(|value| self.table.decode(key, &value)).transpose()
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
        self.put(key, value)
    }

    /// Stores, best effort, every `(key, value)` whose value can be encoded and that the
    /// table's hooks admit, in one transaction, and reports each other one with its error
    /// instead of failing the whole batch (Python's `batch_update_partial`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// let fine: HashMap<(i32, i32), i32> = HashMap::new();
    /// let bad = HashMap::from([((1, 2), 3)]); // JSON object keys must be strings
    /// let report = db.batch_update_partial([("fine", fine), ("bad", bad)])?;
    /// assert_eq!(report.written, 1);
    /// assert_eq!(report.failed[0].0, "bad");
    /// assert!(db.contains("fine")? && !db.contains("bad")?);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`batch_update`](Self::batch_update) for the transaction itself (then nothing is
    /// written); a value that cannot be encoded, or that a hook refuses, is reported, not
    /// returned as an error.
    pub fn batch_update_partial<K, V>(&self, rows: impl IntoIterator<Item = impl KeyValue<K, V>>) -> Result<BatchReport>
    where
        K: AsRef<str>,
        V: Serialize,
    {
        self.put_partial(rows)
    }

    /// Deletes `key`; `false` if it was absent.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed), [`Error::LockTimeout`](crate::Error::LockTimeout), SQLite's error.
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.remove(key)
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
        self.put_rows(rows)
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
        self.remove_keys(keys.into_iter().map(|key| Box::from(key.as_ref())).collect())
    }

    /// Removes `key` and returns its value, atomically; `None` if it was absent.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) when the value does not fit `T`: the key is
    /// then **not** removed. Otherwise as [`delete`](Self::delete).
    pub fn pop<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.run_borrowing(Pop::new(key))
    }

    /// One page of the rows `scan` selects (its limit, or [`SCAN_PAGE`](crate::SCAN_PAGE) rows),
    /// with the cursor of the next page: `None` at the end, else the key to pass to
    /// [`Scan::after`] for the following page. Read from the file in one snapshot, as
    /// [`iter`](Self::iter) reads each page, and held whole: cap a page size that comes from a
    /// client. A limit of 0 reads nothing and ends the paging. See [`Page`](crate::Page).
    ///
    /// # Errors
    ///
    /// As [`scan`](Self::scan).
    pub fn scan_page<T: DeserializeOwned>(&self, scan: Scan) -> Result<crate::Page<T>> {
        let rows = self.page_rows(&scan)?;
        scan.page_of(&self.table.reader(), rows)
    }

    /// The rows `scan` selects, in key order (or descending), decoded as `T`; read from the
    /// file a page at a time (the cache is not filled). For large ranges prefer
    /// [`iter`](Self::iter), which holds one page at a time.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) for a value that does not fit `T`; as
    /// [`get`](Self::get).
    pub fn scan<T: DeserializeOwned>(&self, scan: Scan) -> Result<Vec<(String, T)>> {
        self.iter(scan)?.collect()
    }

    /// An iterator over the rows `scan` selects, reading [`SCAN_PAGE`](crate::SCAN_PAGE) rows
    /// at a time, so a scan of any size holds one page. **Snapshot rule:** each page is read in
    /// one snapshot and pages follow each other by key, so every key present for the whole
    /// iteration is yielded once, in order; a key written or deleted during it may or may not
    /// be seen, depending on whether its page was already read. Cache hits are not used: the
    /// values come from the file, which the cache never runs ahead of.
    ///
    /// # Examples
    ///
    /// ```
    /// use nanasqlite_core::{NanaSQLite, Scan};
    /// # let db = NanaSQLite::open(":memory:")?;
    /// db.batch_update((0..1000).map(|i| (format!("k{i:04}"), i)))?;
    /// let mut sum = 0;
    /// for row in db.iter::<i64>(Scan::prefix("k0"))? {
    ///     let (_key, value) = row?;
    ///     sum += value;
    /// }
    /// assert_eq!(sum, (0..1000).sum::<i64>());
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed). Each item: [`Error::Decode`](crate::Error::Decode)
    /// for a value that does not fit `T` (for that key alone: the iteration goes on), or a read
    /// error (which ends the iteration).
    pub fn iter<T: DeserializeOwned>(&self, scan: Scan) -> Result<Iter<T, S>> {
        self.database.ensure_open()?;
        Ok(Iter::new(self.clone(), scan))
    }

    /// One element of `key`'s value, read by SQLite from the stored JSON (`json_extract`'s
    /// paths: `$.a.b[0]`; `a.b` and `.a.b` mean `$.a.b`, as in Python), without loading the
    /// whole value. Reads the file, not the cache. An absent key, an absent path and a JSON
    /// `null` read as `None`. Unlike Python's, JSON booleans stay booleans and a string that
    /// looks like a number stays a string.
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// db.set("user", &serde_json::json!({"name": "Alice", "tags": ["admin"], "active": true}))?;
    /// assert_eq!(db.get_by_path::<String>("user", "tags[0]")?.as_deref(), Some("admin"));
    /// assert_eq!(db.get_by_path::<bool>("user", "$.active")?, Some(true));
    /// assert_eq!(db.get_by_path::<String>("user", "missing")?, None);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) if the element does not fit `T`; SQLite's error
    /// for a malformed path; [`Error::Validation`](crate::Error::Validation) on an encrypted
    /// store (the database cannot see into encrypted values).
    pub fn get_by_path<T: DeserializeOwned>(&self, key: &str, path: &str) -> Result<Option<T>> {
        self.run_borrowing(GetByPath::new(key, path))
    }

    /// Removes the first key (in key order) and returns it with its value; `None` when the
    /// table is empty (Python's `popitem` raises `KeyError` there).
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// db.batch_update([("b", 2), ("a", 1)])?;
    /// assert_eq!(db.popitem::<i32>()?, Some(("a".to_owned(), 1)));
    /// assert_eq!(db.len()?, 1);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) if the value does not fit `T` (nothing is
    /// removed then), or as [`set`](Self::set).
    pub fn popitem<T: DeserializeOwned>(&self) -> Result<Option<(String, T)>> {
        self.run_borrowing(PopItem::new())
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
        let value = self.set_default(key, default)?;
        self.table.decode(key, &value)
    }

    /// Deletes every row of this table (other tables are untouched).
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    pub fn clear(&self) -> Result<()> {
        self.clear_table()
    }
}

// ===== atomic updates =====

impl<S: Storage> NanaSQLite<S> {
    /// Adds `amount` to the number stored under `key` (or, with `field`, to that field of the
    /// object stored there) and returns the new stored value, atomically: the read, the sum and
    /// the write are one `BEGIN IMMEDIATE` transaction, so concurrent increments from other
    /// threads and processes all count. A missing key or field starts from 0 (Python
    /// NanaSQLite raises `KeyError` unless given a default).
    ///
    /// The result comes back as the caller's type: a number type (`i64`, `u64`, `f64`, …), a
    /// struct for a field of an object, or `serde_json::Value`. Integer arithmetic is exact: up
    /// to 128 bits (a result past `i64` is stored exactly; read it as `i128` or `u64`), and an
    /// overflow is an error, never a float. Fields the call does not touch are written back as
    /// they were read, digit for digit.
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// let visits: i64 = db.increment("visits", 1, None)?;
    /// assert_eq!(visits, 1);
    /// assert_eq!(db.increment::<i64>("visits", 2_usize, None)?, 3);
    /// db.set("page", &serde_json::json!({"hits": 1, "title": "home"}))?;
    /// let page: serde_json::Value = db.increment("page", 1, Some("hits"))?;
    /// assert_eq!(page["hits"], 2);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) when the stored value (or field) is not
    /// a number, the value is not an object when `field` is given, or the result is not finite;
    /// [`Error::Decode`](crate::Error::Decode) when the stored value (or the result, as `T`)
    /// does not fit; SQLite's error. Nothing is written then, except for a result that does
    /// not fit `T` (it is stored; read it as another type).
    pub fn increment<T: DeserializeOwned>(
        &self,
        key: &str,
        amount: impl Into<Amount>,
        field: Option<&str>,
    ) -> Result<T> {
        self.increment_from(key, amount, field, 0)
    }

    /// As [`increment`](Self::increment), a missing key or field counting as `start` instead
    /// of 0 (Python NanaSQLite's `increment(key, amount, default=start)`; Python raises
    /// `KeyError` when no default is given, here that is `increment`'s 0).
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// assert_eq!(db.increment_from::<i64>("stock", -1, None, 10)?, 9, "a missing key starts at 10");
    /// assert_eq!(db.increment_from::<i64>("stock", -1, None, 10)?, 8, "a stored one goes on");
    /// db.set("page", &serde_json::json!({"title": "home"}))?;
    /// let page: serde_json::Value = db.increment_from("page", 0.5, Some("score"), 1.0)?;
    /// assert_eq!(page["score"], 1.5);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`increment`](Self::increment), and [`Error::Validation`](crate::Error::Validation)
    /// for a start that is not finite.
    pub fn increment_from<T: DeserializeOwned>(
        &self,
        key: &str,
        amount: impl Into<Amount>,
        field: Option<&str>,
        start: impl Into<Amount>,
    ) -> Result<T> {
        let stored = self.increment_by(key, amount.into(), field, start.into())?;
        self.table.decode_result(key, &stored)
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
        let stored = self.patch_with(key, changes, create)?;
        self.table.decode_result(key, &stored)
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
        self.load_table()
    }

    /// Forgets what the cache knows of `key` and reads it again from the file.
    ///
    /// # Errors
    ///
    /// As [`load_all`](Self::load_all).
    pub fn refresh(&self, key: &str) -> Result<()> {
        self.refresh_key(key)
    }

    /// Empties this table's cache; the file is untouched.
    pub fn clear_cache(&self) {
        self.table.clear_cache();
    }

    /// Whether a [`transaction`](Self::transaction) is running on this store's database now,
    /// on any thread (Python NanaSQLite's `in_transaction()`).
    #[must_use]
    pub fn in_transaction(&self) -> bool {
        self.database().in_transaction()
    }

    /// Whether the cache can answer for `key` without the file (it holds the value, or knows
    /// the key is absent). Always `false` after [`close`](Self::close).
    #[must_use]
    pub fn is_cached(&self, key: &str) -> bool {
        self.knows(key)
    }
}
