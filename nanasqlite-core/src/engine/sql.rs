//! The SQL helpers as operations, and transactions that mix them with key/value writes.

use std::cell::RefCell;
use std::ops::Deref;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::hooks::{self, Events};
use super::kv::write;
use super::{Applied, Kind, Operation, Table};
use crate::cache::{CacheChange, CachedValue, Change, Writes};
use crate::codec;
use crate::error::{Error, Result};
use crate::sql::{Dialect, Fence, Row, SqlConnection, SqlOps, SqlValue};
use crate::storage::{End, Storage};

/// A SQL helper: `work` runs with [`SqlOps`] on the connection, as a read, a write or alone.
/// The helpers' bodies live in [`SqlOps`]; this carries one of them to a connection.
pub(crate) struct Sql<F> {
    name: &'static str,
    kind: Kind,
    work: F,
}

impl<F> std::fmt::Debug for Sql<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sql").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl<F> Sql<F> {
    /// Helper `name` running `work` where `kind` says.
    pub(crate) fn new<R>(name: &'static str, kind: Kind, work: F) -> Self
    where
        F: FnMut(&SqlOps<'_>) -> Result<R>,
    {
        Self { name, kind, work }
    }
}

impl<S: Storage, F: FnMut(&SqlOps<'_>) -> Result<R>, R> Operation<S> for Sql<F> {
    type Output = R;

    fn name(&self) -> &'static str {
        self.name
    }

    fn kind(&self) -> Kind {
        self.kind
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<R>> {
        let ops = SqlOps::new(storage.sql()?, table.policy());
        (self.work)(&ops).map(Applied::plain)
    }
}

/// An open write transaction: the key/value methods of one table, and (through `Deref`) every
/// SQL helper of [`SqlOps`]. Given to the closures of both stores' `transaction`; key/value
/// writes made through it reach the table's cache only once the transaction has committed.
pub struct Transaction<'a, S: Storage> {
    storage: &'a S,
    table: &'a Table<S>,
    ops: SqlOps<'a>,
    writes: RefCell<Writes>,
    events: RefCell<Events>,
}

impl<S: Storage> std::fmt::Debug for Transaction<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").field("table", self.table.name()).finish_non_exhaustive()
    }
}

impl<'a, S: Storage> Transaction<'a, S> {
    /// The operations of a transaction already begun on `storage`, for `table`.
    pub fn new(storage: &'a S, table: &'a Table<S>) -> Self {
        let connection = storage.sql().unwrap_or(&NoSql);
        let ops = SqlOps::new(connection, table.policy());
        let events = RefCell::new(Events::of(table));
        Self { storage, table, ops, writes: RefCell::new(Vec::new()), events }
    }

    /// What the table's cache (and its hooks) must learn once the transaction has committed.
    pub fn into_change(self) -> CacheChange {
        CacheChange::new(Change::Writes(self.writes.into_inner())).then(self.events.into_inner().into_change())
    }

    /// Stores `value` under `key` in the store's table, as part of the transaction (through
    /// the table's hooks).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`]; a hook's refusal; the backend's error.
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.set_encoded(key, &CachedValue::new(codec::encode(key, value)?))
    }

    /// As [`set`](Self::set), with the value encoded already (by the async store, on its
    /// caller's thread). Internal to the workspace.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set), without the encode error.
    #[doc(hidden)]
    pub fn set_encoded(&self, key: &str, value: &Arc<CachedValue>) -> Result<()> {
        let value = write(self.storage, self.table, key, value, &mut self.events.borrow_mut())?;
        self.writes.borrow_mut().push((key.into(), Some(value)));
        Ok(())
    }

    /// The value of `key` as the transaction sees it (its own writes included).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`]; the backend's error.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let stored = self.storage.get(self.table.handle(), key)?;
        stored.map(|stored| self.table.decode(key, &self.table.codec().read_owned(stored))).transpose()
    }

    /// Deletes `key` from the store's table; `false` if it was absent.
    ///
    /// # Errors
    ///
    /// A hook's refusal; the backend's error.
    pub fn delete(&self, key: &str) -> Result<bool> {
        let existed = hooks::remove(self.storage, self.table, key, &mut self.events.borrow_mut())?;
        self.writes.borrow_mut().push((key.into(), None));
        Ok(existed)
    }
}

impl<'a, S: Storage> Deref for Transaction<'a, S> {
    type Target = SqlOps<'a>;

    fn deref(&self) -> &SqlOps<'a> {
        &self.ops
    }
}

/// The SQL connection of a backend that has none: every helper is `Unsupported`.
struct NoSql;

impl NoSql {
    fn refuse(&self) -> Error {
        Error::Unsupported { operation: "the SQL helpers", backend: "this" }
    }
}

impl SqlConnection for NoSql {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, _: &str, _: &[SqlValue], _: Fence<'_>) -> Result<usize> {
        Err(self.refuse())
    }

    fn execute_many(&self, _: &str, _: &[Vec<SqlValue>], _: Fence<'_>) -> Result<usize> {
        Err(self.refuse())
    }

    fn rows(&self, _: &str, _: &[SqlValue], _: Option<usize>, _: Fence<'_>) -> Result<Vec<Row>> {
        Err(self.refuse())
    }

    fn execute_batch(&self, _: &str) -> Result<()> {
        Err(self.refuse())
    }

    fn last_insert_rowid(&self) -> i64 {
        0
    }
}

/// Runs a closure in one write transaction, alone. The closure returns its answer and how the
/// transaction ends: committed, or rolled back as it asks, on an `Err`, or on a panic.
pub(crate) struct RunTransaction<F> {
    work: Option<F>,
}

impl<F> std::fmt::Debug for RunTransaction<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunTransaction").field("ran", &self.work.is_none()).finish()
    }
}

impl<F> RunTransaction<F> {
    /// A transaction running `work`.
    pub(crate) fn new(work: F) -> Self {
        Self { work: Some(work) }
    }
}

impl<S, F, R> Operation<S> for RunTransaction<F>
where
    S: Storage,
    F: FnOnce(&Transaction<'_, S>) -> (Result<R>, End),
{
    type Output = R;

    fn name(&self) -> &'static str {
        "transaction"
    }

    fn kind(&self) -> Kind {
        Kind::Exclusive
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<R>> {
        let work = self.work.take().ok_or(Error::Transaction { message: "a transaction runs once".to_owned() })?;
        let applied = storage.transaction(|storage| {
            let tx = Transaction::new(storage, table);
            match work(&tx) {
                (Ok(output), End::Commit) => (Ok(Applied { output, change: tx.into_change() }), End::Commit),
                (Ok(output), End::Rollback) => (Ok(Applied::plain(output)), End::Rollback),
                (Err(error), _) => (Err(error), End::Rollback),
            }
        });
        applied?
    }
}

/// Runs a closure with the SQLite connection itself, alone (the stores' `call`): an escape
/// hatch for what the helpers do not offer. Nothing it writes reaches a cache.
pub struct Call<F> {
    work: Option<F>,
}

impl<F> Call<F> {
    /// A call of `work`.
    pub fn new(work: F) -> Self {
        Self { work: Some(work) }
    }
}

impl<F> std::fmt::Debug for Call<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").finish_non_exhaustive()
    }
}

impl<F, R> Operation<crate::storage::SqliteStorage> for Call<F>
where
    F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
{
    type Output = R;

    fn name(&self) -> &'static str {
        "call"
    }

    fn kind(&self) -> Kind {
        Kind::Exclusive
    }

    fn run(
        &mut self,
        storage: &mut crate::storage::SqliteStorage,
        _: &Table<crate::storage::SqliteStorage>,
    ) -> Result<Applied<R>> {
        let work = self.work.take().ok_or(Error::Transaction { message: "a call runs once".to_owned() })?;
        storage.with_connection(work).map(Applied::plain)
    }
}
