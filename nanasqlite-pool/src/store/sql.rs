//! The SQL helpers, backup, restore and transactions of [`AsyncNanaSQLite`]: each runs one
//! engine operation on a lane.

use std::path::Path;

use nanasqlite_core::Result;
use nanasqlite_core::Transaction;
use nanasqlite_core::engine::{Front, SqlFront};
use nanasqlite_core::sql::{ColumnInfo, IndexInfo, Query, Row, SqlValue};
use nanasqlite_core::storage::Storage;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::budget::Pending;
use crate::store::AsyncNanaSQLite;
use crate::store::transaction::AsyncTransaction;

/// Encodes a row on the caller's side, naming the table on failure.
impl<S: Storage> AsyncNanaSQLite<S> {
    /// Runs SQL helper `name` (`work`) on a lane (`kind` says which).
    /// As [`NanaSQLite::create_table`](nanasqlite_core::NanaSQLite::create_table).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](nanasqlite_core::Error::Validation) for a bad name or type (nothing is created); SQLite's error.
    pub fn create_table(&self, name: &str, columns: &[(&str, &str)]) -> Pending<()> {
        SqlFront::create_table(self, name, columns)
    }

    /// As [`NanaSQLite::create_index`](nanasqlite_core::NanaSQLite::create_index).
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn create_index(&self, name: &str, table: &str, columns: &[&str], unique: bool) -> Pending<()> {
        SqlFront::create_index(self, name, table, columns, unique)
    }

    /// Drops table `name` if it exists.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn drop_table(&self, name: &str) -> Pending<()> {
        SqlFront::drop_table(self, name)
    }

    /// Drops index `name` if it exists.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn drop_index(&self, name: &str) -> Pending<()> {
        SqlFront::drop_index(self, name)
    }

    /// Whether table `name` exists.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](nanasqlite_core::Error::Closed), SQLite's error.
    pub fn table_exists(&self, name: &str) -> Pending<bool> {
        SqlFront::table_exists(self, name)
    }

    /// The tables of the file, by name.
    ///
    /// # Errors
    ///
    /// As [`table_exists`](Self::table_exists).
    pub fn list_tables(&self) -> Pending<Vec<String>> {
        SqlFront::list_tables(self)
    }

    /// The columns of `table`.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn get_table_schema(&self, table: &str) -> Pending<Vec<ColumnInfo>> {
        SqlFront::get_table_schema(self, table)
    }

    /// The indexes of `table` (every table's with `None`).
    ///
    /// # Errors
    ///
    /// As [`table_exists`](Self::table_exists).
    pub fn list_indexes(&self, table: Option<&str>) -> Pending<Vec<IndexInfo>> {
        SqlFront::list_indexes(self, table)
    }

    /// Adds a column to `table`, with an optional default.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn alter_table_add_column(
        &self,
        table: &str,
        column: &str,
        column_type: &str,
        default: Option<SqlValue>,
    ) -> Pending<()> {
        SqlFront::alter_table_add_column(self, table, column, column_type, default)
    }

    /// Inserts `data` (a struct or map of columns, encoded on the caller's side) into `table`;
    /// returns the new rowid.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn sql_insert<T: Serialize + ?Sized>(&self, table: &str, data: &T) -> Pending<i64> {
        SqlFront::sql_insert(self, table, data)
    }

    /// Every row of `table`, as [`NanaSQLite::export_table`](nanasqlite_core::NanaSQLite::export_table).
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn export_table(&self, table: &str) -> Pending<Vec<Row>> {
        self.query(Query::table(table))
    }

    /// Inserts `rows` into `table` in one transaction, as
    /// [`NanaSQLite::import_rows`](nanasqlite_core::NanaSQLite::import_rows).
    ///
    /// # Errors
    ///
    /// As the sync store's.
    pub fn import_rows<T: Serialize>(&self, table: &str, rows: &[T]) -> Pending<usize> {
        SqlFront::import_rows(self, table, rows)
    }

    /// Sets `data`'s columns on the rows matching `condition`; returns how many changed.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](nanasqlite_core::Error::Validation) for a bad name or condition; SQLite's error.
    pub fn sql_update<T: Serialize + ?Sized>(
        &self,
        table: &str,
        data: &T,
        condition: &str,
        params: impl AsRef<[SqlValue]>,
    ) -> Pending<usize> {
        SqlFront::sql_update(self, table, data, condition, params.as_ref())
    }

    /// Deletes the rows of `table` matching `condition`; returns how many.
    ///
    /// # Errors
    ///
    /// As [`sql_update`](Self::sql_update).
    pub fn sql_delete(&self, table: &str, condition: &str, params: impl AsRef<[SqlValue]>) -> Pending<usize> {
        SqlFront::sql_delete(self, table, condition, params.as_ref())
    }

    /// Inserts `data` or updates the row it conflicts with on `conflict` columns; returns the rowid.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn upsert<T: Serialize + ?Sized>(&self, table: &str, data: &T, conflict: &[&str]) -> Pending<i64> {
        SqlFront::upsert(self, table, data, conflict)
    }

    /// The rows `query` selects (on a reader when there is one).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](nanasqlite_core::Error::Validation) for a bad part (nothing runs); SQLite's error.
    pub fn query(&self, query: Query) -> Pending<Vec<Row>> {
        SqlFront::query(self, query)
    }

    /// The rows `query` selects, deserialised into `T` on the caller's side.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query), and [`Error::Decode`](nanasqlite_core::Error::Decode) for a row that does not fit `T`.
    pub fn query_as<T: DeserializeOwned + Send + 'static>(&self, query: Query) -> Pending<Vec<T>> {
        Self::then(self.query(query), |rows| Pending::now(rows.iter().map(Row::deserialize).collect()))
    }

    /// The number of rows `query` selects.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn count(&self, query: Query) -> Pending<u64> {
        SqlFront::count(self, query)
    }

    /// The rowid of the last row inserted through the writer's connection, as
    /// [`NanaSQLite::last_insert_rowid`](nanasqlite_core::NanaSQLite::last_insert_rowid).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](nanasqlite_core::Error::Closed).
    pub fn last_insert_rowid(&self) -> Pending<i64> {
        SqlFront::last_insert_rowid(self)
    }

    /// Whether `query` selects any row.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn exists(&self, query: Query) -> Pending<bool> {
        SqlFront::exists(self, query)
    }

    /// Runs one SQL statement of yours on the writer; returns the rows changed.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn execute(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Pending<usize> {
        SqlFront::execute(self, sql, params.as_ref())
    }

    /// Runs `sql` once per parameter list, atomically; returns the rows changed.
    ///
    /// # Errors
    ///
    /// SQLite's error; then nothing is changed.
    pub fn execute_many(&self, sql: &str, params: impl IntoIterator<Item = impl AsRef<[SqlValue]>>) -> Pending<usize> {
        SqlFront::execute_many(self, sql, params.into_iter().map(|params| params.as_ref().to_vec()).collect())
    }

    /// The first row of your query (on a reader when there is one).
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn fetch_one(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Pending<Option<Row>> {
        SqlFront::fetch_one(self, sql, params.as_ref())
    }

    /// Every row of your query (on a reader when there is one).
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn fetch_all(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Pending<Vec<Row>> {
        SqlFront::fetch_all(self, sql, params.as_ref())
    }

    /// Rebuilds the file to reclaim free space (alone on the writer).
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn vacuum(&self) -> Pending<()> {
        SqlFront::vacuum(self)
    }

    /// Reads or sets one of the whitelisted pragmas, on the writer's connection.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](nanasqlite_core::Error::Validation) for a pragma or value not allowed; SQLite's error.
    pub fn pragma(&self, name: &str, value: Option<SqlValue>) -> Pending<Option<SqlValue>> {
        SqlFront::pragma(self, name, value)
    }

    /// The size of the database file in bytes (0 in memory).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](nanasqlite_core::Error::Closed), or the file system's error.
    pub fn get_db_size(&self) -> Pending<u64> {
        SqlFront::get_db_size(self)
    }

    /// As [`NanaSQLite::backup`](nanasqlite_core::NanaSQLite::backup): copies the database
    /// online into `dest`, atomically and verified. Runs on a reader when the writer is busy,
    /// so writes go on meanwhile.
    ///
    /// # Errors
    ///
    /// As the sync store's.
    pub fn backup<P: AsRef<Path>>(&self, dest: P) -> Pending<()> {
        SqlFront::backup(self, dest.as_ref())
    }

    /// As [`NanaSQLite::restore`](nanasqlite_core::NanaSQLite::restore): replaces the content
    /// of the whole database with `source`'s, in place, alone on the writer: every connection
    /// (the readers, other stores and processes) sees the restored content at its next
    /// transaction; the tables of every handle are recreated and every cache emptied.
    ///
    /// # Errors
    ///
    /// As the sync store's; [`Error::Transaction`](nanasqlite_core::Error::Transaction) while a `begin()` transaction is open.
    pub fn restore<P: AsRef<Path>>(&self, source: P) -> Pending<()> {
        SqlFront::restore(self, source.as_ref())
    }

    /// As [`NanaSQLite::rekey`](nanasqlite_core::NanaSQLite::rekey): re-encrypts every
    /// key/value table of the file with `to`, in one transaction alone on the writer.
    ///
    /// # Errors
    ///
    /// As the sync store's; [`Error::Transaction`](nanasqlite_core::Error::Transaction) while a `begin()` transaction is open.
    pub fn rekey<E: Into<Option<nanasqlite_core::Encryption>>>(&self, to: E) -> Pending<()> {
        SqlFront::rekey(self, to.into())
    }

    /// Runs `work` in one write transaction on the writer: committed if it returns `Ok`,
    /// rolled back if it returns `Err` or panics. Key/value writes reach the cache only once
    /// committed.
    ///
    /// # Errors
    ///
    /// `work`'s error, or SQLite's when the transaction cannot begin or commit.
    pub fn transaction<R, F>(&self, work: F) -> Pending<R>
    where
        F: FnOnce(&Transaction<'_, S>) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        SqlFront::transaction(self, work)
    }

    /// Opens a write transaction that holds the writer across awaits, until
    /// [`commit`](AsyncTransaction::commit), [`rollback`](AsyncTransaction::rollback), or the
    /// guard being dropped (which rolls back). Other writes wait meanwhile.
    ///
    /// Inside it, use the guard's methods. A call to the store itself (not the guard) that
    /// needs the writer waits until the guard is dropped: awaited in the same task, it never
    /// ends, unless the store has a `lock_timeout` (then it fails with
    /// [`Error::LockTimeout`](nanasqlite_core::Error::LockTimeout)). Reads answered by the cache, or by a reader when the store has
    /// readers, do not wait.
    ///
    /// # Errors
    ///
    /// [`Error::Transaction`](nanasqlite_core::Error::Transaction) when a `begin()` transaction is already open on this database;
    /// [`Error::Closed`](nanasqlite_core::Error::Closed); [`Error::LockTimeout`](nanasqlite_core::Error::LockTimeout)
    /// when it waited longer than the store's `lock_timeout` for the writer; in write-back
    /// mode, the error of committing what is staged (committed first); SQLite's error when the
    /// transaction cannot begin.
    pub fn begin(&self) -> Pending<AsyncTransaction<S>> {
        AsyncTransaction::begin(self)
    }
}

impl AsyncNanaSQLite<nanasqlite_core::storage::SqliteStorage> {
    /// Runs `work` with the writer's SQLite connection, alone on the writer thread, as
    /// [`NanaSQLite::call`](nanasqlite_core::NanaSQLite::call): an escape hatch that bypasses
    /// the SQL checks and the caches (call [`clear_cache`](Self::clear_cache) after writing to
    /// a key/value table through it).
    ///
    /// # Errors
    ///
    /// As the sync store's; [`Error::Panic`](nanasqlite_core::Error::Panic) if `work` panicked (a transaction it left open is
    /// rolled back first); [`Error::Transaction`](nanasqlite_core::Error::Transaction) while a `begin()` transaction is open.
    pub fn call<R, F>(&self, work: F) -> Pending<R>
    where
        F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.run(self.outside_transaction("call").map(|()| nanasqlite_core::engine::Call::new(work)))
    }
}
