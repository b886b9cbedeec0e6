//! Storage backends: the few operations the key/value store needs from a database.
//!
//! A backend stores, per table, rows of `(key, JSON text)`. It knows nothing of caching,
//! serde or locking: the store above it owns those. [`SqliteStorage`] is the backend of this
//! crate; [`conformance`] checks any backend against the behaviour the store relies on.

use std::fmt::Debug;

use crate::error::Result;
use crate::identifier::Identifier;

pub mod conformance;
mod sqlite;

pub use sqlite::{ConnectionOptions, SqliteStorage, SqliteTable};

/// One connection to a key/value database.
///
/// All methods act on one connection from one thread at a time (`&mut self` for the ones that
/// must not interleave with others); the store serialises access.
pub trait Storage: Send + 'static {
    /// A prepared handle on one key/value table.
    type Table: Clone + Debug + Send + Sync + 'static;

    /// Creates the table if needed and returns its handle.
    ///
    /// # Errors
    ///
    /// The backend's error when the table cannot be created.
    fn open_table(&self, name: &Identifier) -> Result<Self::Table>;

    /// The stored JSON text of `key`.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn get(&self, table: &Self::Table, key: &str) -> Result<Option<String>>;

    /// Calls `found` with each of `keys` that exists, and its JSON text (in no set order).
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn get_many(&self, table: &Self::Table, keys: &[&str], found: &mut dyn FnMut(&str, &str)) -> Result<()>;

    /// Whether `key` exists.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn contains(&self, table: &Self::Table, key: &str) -> Result<bool>;

    /// Inserts or replaces one row.
    ///
    /// # Errors
    ///
    /// The backend's error; the row is then unchanged.
    fn put(&self, table: &Self::Table, key: &str, json: &str) -> Result<()>;

    /// Inserts or replaces each row, in order. Atomic only inside [`Storage::transaction`].
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn put_many(&self, table: &Self::Table, rows: &[(String, String)]) -> Result<()>;

    /// Deletes one row; `false` if it did not exist.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn delete(&self, table: &Self::Table, key: &str) -> Result<bool>;

    /// Deletes each of `keys`; returns how many existed. Atomic only inside a transaction.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn delete_many(&self, table: &Self::Table, keys: &[&str]) -> Result<usize>;

    /// The number of rows.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn count(&self, table: &Self::Table) -> Result<u64>;

    /// Every key, sorted by byte order.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn keys(&self, table: &Self::Table) -> Result<Vec<String>>;

    /// Calls `visit` with every row.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn scan(&self, table: &Self::Table, visit: &mut dyn FnMut(&str, &str)) -> Result<()>;

    /// Deletes every row; returns how many there were.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn clear(&self, table: &Self::Table) -> Result<usize>;

    /// Runs `work` in one write transaction: committed if it returns `Ok`, rolled back if it
    /// returns `Err` or panics (the panic then continues).
    ///
    /// # Errors
    ///
    /// `work`'s error, or the backend's error when the transaction cannot begin or commit.
    fn transaction<R>(&mut self, work: impl FnOnce(&mut Self) -> Result<R>) -> Result<R>
    where
        Self: Sized;

    /// Runs `work` inside the current transaction as one unit: its changes are kept if it
    /// returns `Ok`, undone if it returns `Err` or panics (the panic then continues), while the
    /// rest of the transaction stands. This is how one failing write leaves its group alone.
    ///
    /// # Errors
    ///
    /// `work`'s error, or the backend's error when the unit cannot be opened or closed.
    fn savepoint<R>(&mut self, work: impl FnOnce(&mut Self) -> Result<R>) -> Result<R>
    where
        Self: Sized;

    /// Runs `work` in one read transaction: its reads see one snapshot, and share the cost of
    /// starting a transaction.
    ///
    /// # Errors
    ///
    /// The backend's error when the transaction cannot begin.
    fn read_snapshot<R>(&mut self, work: impl FnOnce(&mut Self) -> R) -> Result<R>
    where
        Self: Sized;

    /// A number that changes when another connection (or process) commits to the database;
    /// `None` when the backend cannot tell.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn data_version(&self) -> Result<Option<i64>> {
        Ok(None)
    }

    /// Closes the connection, reporting what the close reports.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn close(self) -> Result<()>
    where
        Self: Sized;
}
