//! [`TypedTable`]: a table whose values are one Rust type, with an optional validator.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{BatchUpdate, Front, encode_rows};
use crate::error::{Error, Result};
use crate::hook::Registration;
use crate::scan::Scan;
use crate::storage::{SqliteStorage, Storage};
use crate::store::NanaSQLite;
use crate::store::scan::Iter;

/// What a typed table's values are: stored as JSON, and cloned on cache hits (a table keeps
/// the first decoded copy of each value beside its text, so a hit costs a clone instead of a
/// parse). Implemented for every type with these traits; derive `Serialize`, `Deserialize`
/// and `Clone` on a record to use it.
pub trait Record: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Record for T {}

/// A check run on every value before it is written: `Err(why)` refuses the write.
pub type Validator<T> = Arc<dyn Fn(&T) -> std::result::Result<(), String> + Send + Sync>;

/// A key/value table whose values are `T`: `get` returns `T` without a turbofish and writes
/// take `&T`, checked first by the validator if one is set. Values already in the file that do
/// not fit `T` are an [`Error::Decode`] for their key alone. Made by [`NanaSQLite::typed`].
///
/// # Examples
///
/// ```
/// use nanasqlite_core::NanaSQLite;
///
/// #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
/// struct User { name: String, age: u32 }
///
/// let db = NanaSQLite::open(":memory:")?;
/// let users = db.typed::<User>("users")?.validator(|user| {
///     if user.name.is_empty() { Err("a user needs a name".into()) } else { Ok(()) }
/// });
/// users.set("u1", &User { name: "Alice".into(), age: 30 })?;
/// assert_eq!(users.get("u1")?.map(|u| u.age), Some(30));
/// assert!(users.set("u2", &User { name: String::new(), age: 1 }).is_err(), "refused, nothing written");
/// assert!(!users.contains("u2")?);
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
pub struct TypedTable<T, S: Storage = SqliteStorage> {
    store: NanaSQLite<S>,
    validator: Option<Validator<T>>,
    values: PhantomData<fn() -> T>,
}

impl<T, S: Storage> Clone for TypedTable<T, S> {
    fn clone(&self) -> Self {
        Self { store: self.store.clone(), validator: self.validator.clone(), values: PhantomData }
    }
}

impl<T, S: Storage> fmt::Debug for TypedTable<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedTable")
            .field("table", &self.store.table_name())
            .field("type", &std::any::type_name::<T>())
            .field("validator", &self.validator.is_some())
            .finish()
    }
}

/// Runs `validator` on `value`, naming `key` and `table` when it refuses.
///
/// # Errors
///
/// [`Error::Refused`] with the validator's reason.
pub(crate) fn validate<T>(validator: Option<&Validator<T>>, table: &str, key: &str, value: &T) -> Result<()> {
    match validator.map(|check| check(value)) {
        Some(Err(why)) => Err(Error::refused(key, format!("the validator of table {table}: {why}"))),
        _ => Ok(()),
    }
}

/// The batch of `rows` for `table`, each accepted by `validator` first and encoded; the first
/// refusal or encoding failure is the error, and nothing is written then.
///
/// # Errors
///
/// [`Error::Refused`] naming the refused key; [`Error::Encode`].
pub(crate) fn validated_batch<K: AsRef<str>, T: Serialize>(
    validator: Option<&Validator<T>>,
    table: &str,
    rows: &[(K, T)],
) -> Result<BatchUpdate> {
    for (key, value) in rows {
        validate(validator, table, key.as_ref(), value)?;
    }
    Ok(BatchUpdate::new(encode_rows(rows.iter().map(|(key, value)| (key.as_ref(), value)))?))
}

impl<T: Record, S: Storage> TypedTable<T, S> {
    pub(crate) fn new(store: NanaSQLite<S>) -> Self {
        Self { store, validator: None, values: PhantomData }
    }

    /// Checks every value before it is written; a refusal is [`Error::Refused`] naming the
    /// key, and nothing is written (for a batch: nothing of it).
    #[must_use]
    pub fn validator(mut self, check: impl Fn(&T) -> std::result::Result<(), String> + Send + Sync + 'static) -> Self {
        self.validator = Some(Arc::new(check));
        self
    }

    /// The untyped store of this table (its SQL helpers, `len`, `clear`, …).
    #[must_use]
    pub fn store(&self) -> &NanaSQLite<S> {
        &self.store
    }

    /// The value of `key`, as [`NanaSQLite::get_cloned`]: a hit clones the value decoded at
    /// the key's first read.
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::get`].
    pub fn get(&self, key: &str) -> Result<Option<T>> {
        self.store.get_cloned(key)
    }

    /// Stores `value` under `key` once the validator accepts it.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] from the validator; as [`NanaSQLite::set`].
    pub fn set(&self, key: &str, value: &T) -> Result<()> {
        self.store.put_valid(self.validator.as_ref(), key, value)
    }

    /// Stores every row in one transaction once the validator accepts all of them.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] naming the first refused key (nothing is written); as
    /// [`NanaSQLite::batch_update`].
    pub fn batch_update<K: AsRef<str>>(&self, rows: &[(K, T)]) -> Result<()> {
        self.store.put_valid_rows(self.validator.as_ref(), rows)
    }

    /// Deletes `key`; `false` if it was absent.
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::delete`].
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.store.delete(key)
    }

    /// Whether `key` exists.
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::contains`].
    pub fn contains(&self, key: &str) -> Result<bool> {
        self.store.contains(key)
    }

    /// The rows `scan` selects, a page at a time, as [`NanaSQLite::iter`].
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::iter`].
    pub fn iter(&self, scan: Scan) -> Result<Iter<T, S>> {
        self.store.iter(scan)
    }

    /// The rows `scan` selects, decoded, as [`NanaSQLite::scan`].
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::scan`].
    pub fn scan(&self, scan: Scan) -> Result<Vec<(String, T)>> {
        self.store.scan(scan)
    }

    /// The number of keys, as [`NanaSQLite::len`].
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::len`].
    pub fn len(&self) -> Result<usize> {
        self.store.len()
    }

    /// Whether the table has no keys.
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::len`].
    pub fn is_empty(&self) -> Result<bool> {
        self.store.is_empty()
    }

    /// Every key, sorted by byte order, as [`NanaSQLite::keys`].
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::keys`].
    pub fn keys(&self) -> Result<Vec<String>> {
        self.store.keys()
    }

    /// Every `(key, value)`, sorted by key, as [`NanaSQLite::items`].
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::items`].
    pub fn items(&self) -> Result<Vec<(String, T)>> {
        self.store.items()
    }

    /// The values of the keys among `keys` that exist, as [`NanaSQLite::batch_get`].
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::batch_get`].
    pub fn batch_get(&self, keys: impl IntoIterator<Item = impl AsRef<str>>) -> Result<HashMap<String, T>> {
        self.store.batch_get(keys)
    }

    /// Deletes every key of `keys` in one transaction; how many existed.
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::batch_delete`].
    pub fn batch_delete(&self, keys: impl IntoIterator<Item = impl AsRef<str>>) -> Result<usize> {
        self.store.batch_delete(keys)
    }

    /// Registers `hook` on this table, as [`NanaSQLite::add_hook`].
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::add_hook`].
    pub fn add_hook(&self, hook: impl Into<Registration>) -> Result<()> {
        self.store.add_hook(hook)
    }

    /// This table with `hook` registered, to chain after [`NanaSQLite::typed`].
    ///
    /// ```
    /// use nanasqlite_core::{hook, NanaSQLite};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Clone)]
    /// struct User { email: String }
    ///
    /// let db = NanaSQLite::open(":memory:")?;
    /// let users = db.typed::<User>("users")?.hook(hook::unique("email"))?;
    /// users.set("ann", &User { email: "a@example.com".into() })?;
    /// assert!(users.set("bob", &User { email: "a@example.com".into() }).unwrap_err().is_unique_violation());
    /// assert_eq!((users.len()?, users.keys()?), (1, vec!["ann".to_owned()]));
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::add_hook`].
    pub fn hook(self, hook: impl Into<Registration>) -> Result<Self> {
        self.add_hook(hook)?;
        Ok(self)
    }

    /// One page of the rows `scan` selects and the cursor of the next, as
    /// [`NanaSQLite::scan_page`].
    ///
    /// # Errors
    ///
    /// As [`NanaSQLite::scan_page`].
    pub fn scan_page(&self, scan: Scan) -> Result<crate::Page<T>> {
        self.store.scan_page(scan)
    }
}

impl<S: Storage> NanaSQLite<S> {
    /// The table `name` as a [`TypedTable`] of `T` (created if needed, inheriting this store's
    /// settings as [`table`](Self::table) does).
    ///
    /// # Errors
    ///
    /// As [`table`](Self::table).
    pub fn typed<T: Record>(&self, name: &str) -> Result<TypedTable<T, S>> {
        Ok(TypedTable::new(self.table(name)?))
    }
}
