//! [`AsyncTypedTable`]: the async store's table of one Rust type.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use nanasqlite_core::engine::Front;
use nanasqlite_core::hook::Registration;
use nanasqlite_core::storage::{SqliteStorage, Storage};
use nanasqlite_core::{Record, Scan, Validator};

use crate::ScanStream;
use crate::budget::Pending;
use crate::store::AsyncNanaSQLite;

/// A table whose values are `T`, as [`TypedTable`](nanasqlite_core::TypedTable) for the async
/// store: made by [`AsyncNanaSQLite::typed`]. The validator runs on the caller's side, before
/// the write is queued.
pub struct AsyncTypedTable<T, S: Storage = SqliteStorage> {
    store: AsyncNanaSQLite<S>,
    validator: Option<Validator<T>>,
    values: PhantomData<fn() -> T>,
}

impl<T, S: Storage> Clone for AsyncTypedTable<T, S> {
    fn clone(&self) -> Self {
        Self { store: self.store.clone(), validator: self.validator.clone(), values: PhantomData }
    }
}

impl<T, S: Storage> fmt::Debug for AsyncTypedTable<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncTypedTable")
            .field("table", &self.store.table_name())
            .field("type", &std::any::type_name::<T>())
            .field("validator", &self.validator.is_some())
            .finish()
    }
}

impl<T, S> AsyncTypedTable<T, S>
where
    T: Record,
    S: Storage,
{
    /// Checks every value before it is written, as
    /// [`TypedTable::validator`](nanasqlite_core::TypedTable::validator).
    #[must_use]
    pub fn validator(mut self, check: impl Fn(&T) -> std::result::Result<(), String> + Send + Sync + 'static) -> Self {
        self.validator = Some(Arc::new(check));
        self
    }

    /// The untyped store of this table.
    #[must_use]
    pub fn store(&self) -> &AsyncNanaSQLite<S> {
        &self.store
    }

    /// The value of `key`, as [`AsyncNanaSQLite::get_cloned`]: a hit clones the value decoded
    /// at the key's first read.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::get`].
    pub fn get(&self, key: &str) -> Pending<Option<T>> {
        self.store.get_cloned(key)
    }

    /// Stores `value` under `key` once the validator accepts it.
    ///
    /// # Errors
    ///
    /// `Error::Refused` from the validator; as [`AsyncNanaSQLite::set`].
    pub fn set(&self, key: &str, value: &T) -> Pending<()> {
        self.store.put_valid(self.validator.as_ref(), key, value)
    }

    /// Stores every row in one transaction once the validator accepts all of them.
    ///
    /// # Errors
    ///
    /// `Error::Refused` naming the first refused key (nothing is written); as
    /// [`AsyncNanaSQLite::batch_update`].
    pub fn batch_update<K: AsRef<str>>(&self, rows: &[(K, T)]) -> Pending<()> {
        self.store.put_valid_rows(self.validator.as_ref(), rows)
    }

    /// Deletes `key`; `false` if it was absent.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::delete`].
    pub fn delete(&self, key: &str) -> Pending<bool> {
        self.store.delete(key)
    }

    /// Whether `key` exists.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::contains`].
    pub fn contains(&self, key: &str) -> Pending<bool> {
        self.store.contains(key)
    }

    /// The rows `scan` selects as a stream, as [`AsyncNanaSQLite::stream`].
    pub fn stream(&self, scan: Scan) -> ScanStream<T, S> {
        self.store.stream(scan)
    }

    /// The rows `scan` selects, decoded, as [`AsyncNanaSQLite::scan`].
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::scan`].
    pub fn scan(&self, scan: Scan) -> Pending<Vec<(String, T)>> {
        self.store.scan(scan)
    }

    /// The number of keys.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::len`].
    pub fn len(&self) -> Pending<usize> {
        self.store.len()
    }

    /// Whether the table has no keys.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::len`].
    pub fn is_empty(&self) -> Pending<bool> {
        self.store.is_empty()
    }

    /// Every key, sorted by byte order.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::keys`].
    pub fn keys(&self) -> Pending<Vec<String>> {
        self.store.keys()
    }

    /// Every `(key, value)`, sorted by key.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::items`].
    pub fn items(&self) -> Pending<Vec<(String, T)>> {
        self.store.items()
    }

    /// The values of the keys among `keys` that exist.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::batch_get`].
    pub fn batch_get(&self, keys: impl IntoIterator<Item = impl AsRef<str>>) -> Pending<HashMap<String, T>> {
        self.store.batch_get(keys)
    }

    /// Deletes every key of `keys` atomically; how many existed.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::batch_delete`].
    pub fn batch_delete(&self, keys: impl IntoIterator<Item = impl AsRef<str>>) -> Pending<usize> {
        self.store.batch_delete(keys)
    }

    /// Registers `hook` on this table, as [`AsyncNanaSQLite::add_hook`].
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::add_hook`].
    pub fn add_hook<H: Into<Registration>>(&self, hook: H) -> Pending<()> {
        self.store.add_hook(hook)
    }

    /// This table with `hook` registered, to chain after [`AsyncNanaSQLite::typed`]:
    /// `db.typed::<User>("users").await?.hook(hook::unique("email")).await?`.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::add_hook`].
    pub fn hook<H: Into<Registration>>(self, hook: H) -> Pending<Self> {
        AsyncNanaSQLite::<S>::then(self.add_hook(hook), move |()| Pending::now(Ok(self)))
    }

    /// One page of the rows `scan` selects and the cursor of the next, as
    /// [`AsyncNanaSQLite::scan_page`].
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::scan_page`].
    pub fn scan_page(&self, scan: Scan) -> Pending<nanasqlite_core::Page<T>> {
        self.store.scan_page(scan)
    }
}

impl<S: Storage> AsyncNanaSQLite<S> {
    /// The table `name` as an [`AsyncTypedTable`] of `T` (created if needed, inheriting this
    /// store's settings as [`table`](Self::table) does).
    ///
    /// # Errors
    ///
    /// As [`table`](Self::table).
    pub fn typed<T: Record>(&self, name: &str) -> Pending<AsyncTypedTable<T, S>> {
        Self::then(self.table(name), |store| {
            Pending::now(Ok(AsyncTypedTable { store, validator: None, values: PhantomData }))
        })
    }
}
