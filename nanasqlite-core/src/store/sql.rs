//! The SQL helpers and transactions of [`NanaSQLite`]: each runs one engine operation.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::Front;
use crate::engine::{Backup, Kind, Rekey, Restore, RunTransaction, Size, Sql, Transaction};
use crate::error::{Error, Result};
use crate::sql::{ColumnInfo, IndexInfo, Query, Row, SqlOps, SqlValue};
use crate::storage::Storage;
use crate::store::NanaSQLite;

impl<S: Storage> NanaSQLite<S> {
    /// Runs SQL helper `name` (`work`) where `kind` says, under the store's lock.
    fn sql<R>(&self, name: &'static str, kind: Kind, work: impl FnMut(&SqlOps<'_>) -> Result<R>) -> Result<R> {
        self.run_borrowing(Sql::new(name, kind, work))
    }

    /// Creates table `name` with `columns` (name, type) if it does not exist.
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// db.create_table("users", &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT"), ("email", "TEXT UNIQUE")])?;
    /// assert!(db.table_exists("users")?);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a bad name or column type (nothing
    /// is created); SQLite's error.
    pub fn create_table(&self, name: &str, columns: &[(&str, &str)]) -> Result<()> {
        self.sql("create_table", Kind::Write, |sql| sql.create_table(name, columns))
    }

    /// Creates index `name` on `table`'s `columns` if it does not exist.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn create_index(&self, name: &str, table: &str, columns: &[&str], unique: bool) -> Result<()> {
        self.sql("create_index", Kind::Write, |sql| sql.create_index(name, table, columns, unique))
    }

    /// Drops table `name` if it exists.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn drop_table(&self, name: &str) -> Result<()> {
        self.sql("drop_table", Kind::Write, |sql| sql.drop_table(name))
    }

    /// Drops index `name` if it exists.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn drop_index(&self, name: &str) -> Result<()> {
        self.sql("drop_index", Kind::Write, |sql| sql.drop_index(name))
    }

    /// Whether table `name` exists.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed), SQLite's error.
    pub fn table_exists(&self, name: &str) -> Result<bool> {
        self.sql("table_exists", Kind::Read, |sql| sql.table_exists(name))
    }

    /// The tables of the file, by name.
    ///
    /// # Errors
    ///
    /// As [`table_exists`](Self::table_exists).
    pub fn list_tables(&self) -> Result<Vec<String>> {
        self.sql("list_tables", Kind::Read, |sql| sql.list_tables())
    }

    /// The columns of `table`.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn get_table_schema(&self, table: &str) -> Result<Vec<ColumnInfo>> {
        self.sql("get_table_schema", Kind::Read, |sql| sql.get_table_schema(table))
    }

    /// The indexes of `table` (of every table with `None`).
    ///
    /// # Errors
    ///
    /// As [`table_exists`](Self::table_exists).
    pub fn list_indexes(&self, table: Option<&str>) -> Result<Vec<IndexInfo>> {
        self.sql("list_indexes", Kind::Read, |sql| sql.list_indexes(table))
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
    ) -> Result<()> {
        self.sql("alter_table_add_column", Kind::Write, |sql| {
            sql.alter_table_add_column(table, column, column_type, default.as_ref())
        })
    }

    /// Inserts `data` (a struct or map of columns) into `table`; returns the new rowid.
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// # db.create_table("users", &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT")])?;
    /// let id = db.sql_insert("users", &serde_json::json!({"name": "Alice"}))?;
    /// assert_eq!(id, 1);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn sql_insert<T: Serialize + ?Sized>(&self, table: &str, data: &T) -> Result<i64> {
        self.sql("sql_insert", Kind::Write, |sql| sql.sql_insert(table, data))
    }

    /// Every row of `table` (Python's `export_table_to_dict`); each [`Row`] serialises as an
    /// object of its columns.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn export_table(&self, table: &str) -> Result<Vec<Row>> {
        self.query(Query::table(table))
    }

    /// Inserts `rows` into `table` in one transaction (Python's `import_from_dict_list`);
    /// returns how many. The columns are the first row's; a later row lacking one stores NULL,
    /// and one with a column the first lacks is refused, with nothing imported.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde_json::json;
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// db.create_table("users", &[("name", "TEXT"), ("age", "INTEGER")])?;
    /// let rows = [json!({"name": "Alice", "age": 30}), json!({"name": "Bob"})];
    /// assert_eq!(db.import_rows("users", &rows)?, 2);
    /// let exported = db.export_table("users")?;
    /// assert_eq!(serde_json::to_value(&exported)?, json!([{"name": "Alice", "age": 30}, {"name": "Bob", "age": null}]));
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`SqlOps::import_rows`]; nothing is imported on any error.
    pub fn import_rows<T: Serialize>(&self, table: &str, rows: &[T]) -> Result<usize> {
        self.sql("import_rows", Kind::Write, |sql| sql.import_rows(table, rows))
    }

    /// Sets `data`'s columns on the rows matching `condition`; returns how many changed.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a bad name or condition; SQLite's error.
    pub fn sql_update<T: Serialize + ?Sized>(
        &self,
        table: &str,
        data: &T,
        condition: &str,
        params: impl AsRef<[SqlValue]>,
    ) -> Result<usize> {
        let params = params.as_ref();
        self.sql("sql_update", Kind::Write, |sql| sql.sql_update(table, data, condition, params))
    }

    /// Deletes the rows of `table` matching `condition`; returns how many.
    ///
    /// # Errors
    ///
    /// As [`sql_update`](Self::sql_update).
    pub fn sql_delete(&self, table: &str, condition: &str, params: impl AsRef<[SqlValue]>) -> Result<usize> {
        let params = params.as_ref();
        self.sql("sql_delete", Kind::Write, |sql| sql.sql_delete(table, condition, params))
    }

    /// Inserts `data`, or updates the row it conflicts with on `conflict` columns (replaces
    /// it when `conflict` is empty); returns the rowid (0 when nothing was inserted).
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn upsert<T: Serialize + ?Sized>(&self, table: &str, data: &T, conflict: &[&str]) -> Result<i64> {
        self.sql("upsert", Kind::Write, |sql| sql.upsert(table, data, conflict))
    }

    /// The rows `query` selects.
    ///
    /// # Examples
    ///
    /// ```
    /// use nanasqlite_core::{params, sql::Query};
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// # db.create_table("users", &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT")])?;
    /// # db.sql_insert("users", &serde_json::json!({"name": "Alice"}))?;
    /// let rows = db.query(Query::table("users").filter("name LIKE ?", params!["A%"]))?;
    /// assert_eq!(rows[0].to_json()["name"], "Alice");
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a bad part (nothing runs); SQLite's error.
    pub fn query(&self, query: Query) -> Result<Vec<Row>> {
        self.sql("query", Kind::Read, |sql| sql.query(&query))
    }

    /// The rows `query` selects, deserialised into `T`.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query), and [`Error::Decode`](crate::Error::Decode) for a row that
    /// does not fit `T`.
    pub fn query_as<T: DeserializeOwned>(&self, query: Query) -> Result<Vec<T>> {
        self.query(query)?.iter().map(Row::deserialize).collect()
    }

    /// The number of rows `query` selects.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn count(&self, query: Query) -> Result<u64> {
        self.sql("count", Kind::Read, |sql| sql.count(&query))
    }

    /// The rowid of the last row inserted through this store's connection (by `sql_insert`,
    /// `execute` or any other statement), as Python's `get_last_insert_rowid`; 0 before any.
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// db.create_table("log", &[("id", "INTEGER PRIMARY KEY"), ("m", "TEXT")])?;
    /// db.execute("INSERT INTO log (m) VALUES ('a'), ('b')", nanasqlite_core::params![])?;
    /// assert_eq!(db.last_insert_rowid()?, 2);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed).
    pub fn last_insert_rowid(&self) -> Result<i64> {
        self.sql("last_insert_rowid", Kind::Exclusive, |sql| Ok(sql.last_insert_rowid()))
    }

    /// Whether `query` selects any row.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn exists(&self, query: Query) -> Result<bool> {
        self.sql("exists", Kind::Read, |sql| sql.exists(&query))
    }

    /// Runs one SQL statement of yours with bound parameters; returns the rows changed. Rows
    /// of key/value tables changed this way are not seen by their caches: use
    /// [`get_fresh`](Self::get_fresh) or [`clear_cache`](Self::clear_cache).
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn execute(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Result<usize> {
        let params = params.as_ref();
        self.sql("execute", Kind::Write, |ops| ops.execute(sql, params))
    }

    /// Runs `sql` once per parameter list, all in one transaction; returns the rows changed.
    ///
    /// # Errors
    ///
    /// SQLite's error; then nothing is changed.
    pub fn execute_many(&self, sql: &str, params: impl IntoIterator<Item = impl AsRef<[SqlValue]>>) -> Result<usize> {
        let params: Vec<Vec<SqlValue>> = params.into_iter().map(|params| params.as_ref().to_vec()).collect();
        self.sql("execute_many", Kind::Write, |ops| ops.execute_many(sql, &params))
    }

    /// The first row of your query, if any.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn fetch_one(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Result<Option<Row>> {
        let params = params.as_ref();
        self.sql("fetch_one", Kind::Read, |ops| ops.fetch_one(sql, params))
    }

    /// Every row of your query.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn fetch_all(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Result<Vec<Row>> {
        let params = params.as_ref();
        self.sql("fetch_all", Kind::Read, |ops| ops.fetch_all(sql, params))
    }

    /// Rebuilds the file to reclaim free space.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn vacuum(&self) -> Result<()> {
        self.sql("vacuum", Kind::Exclusive, |sql| sql.vacuum())
    }

    /// Reads (`value` `None`) or sets one of the whitelisted pragmas.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a pragma or value not allowed; SQLite's error.
    pub fn pragma(&self, name: &str, value: Option<SqlValue>) -> Result<Option<SqlValue>> {
        self.sql("pragma", Kind::Exclusive, |sql| sql.pragma(name, value.as_ref()))
    }

    /// The size of the database file in bytes (0 for an in-memory database; the WAL is not
    /// counted).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed), or the file system's error.
    pub fn get_db_size(&self) -> Result<u64> {
        self.run_borrowing(Size)
    }

    /// Copies the database online into `dest`, atomically: the copy is one consistent snapshot,
    /// written to a temp file beside `dest`, checked with `PRAGMA integrity_check`, synced,
    /// then renamed over `dest`. The store stays usable meanwhile (a file database is copied
    /// through a separate read-only connection).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) when `dest` is in memory or is this
    /// database; SQLite's or the file system's error (then `dest` is untouched).
    pub fn backup(&self, dest: impl AsRef<std::path::Path>) -> Result<()> {
        let backup = Backup::new(dest.as_ref().to_path_buf());
        self.before(&backup).transpose()?;
        self.database().run_beside(self.engine_table(), backup)
    }

    /// Replaces the whole database (every table) with the one in `source`: `source` is checked
    /// first and copied beside the file; only then is the connection closed, the file swapped
    /// and reopened, the tables of every handle recreated and every cache emptied.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) when `source` is missing, not SQLite or
    /// damaged, or the database is in memory (nothing changes then);
    /// [`Error::Transaction`](crate::Error::Transaction) during a transaction;
    /// [`Error::LockTimeout`](crate::Error::LockTimeout); SQLite's or the file system's error.
    /// If the file cannot be reopened the store is closed.
    pub fn restore(&self, source: impl AsRef<std::path::Path>) -> Result<()> {
        self.database().ensure_open()?;
        if self.database().in_transaction() {
            return Err(Error::Transaction { message: "cannot restore during a transaction".to_owned() });
        }
        let source = PathBuf::from(source.as_ref());
        self.run_borrowing(Restore::new(source, Arc::clone(self.database().shared())))?
    }

    /// Re-encrypts every key/value table of the file (open or not) with `to`, in one write
    /// transaction: a crash leaves every value under the old key or every value under the new
    /// one, never a mix. Afterwards every table of this store reads and writes with `to`; other
    /// stores and processes need the new key. `None` stores values as plain JSON text again.
    /// Plaintext rows this store can read (an unencrypted store, or `allow_legacy_plaintext`)
    /// are encrypted too, and so are rows whose key is not text (another tool's). The SQL
    /// helpers' own tables are left as they are. The rotation ends legacy mode: plaintext
    /// written afterwards is refused, unless the store is opened with
    /// [`allow_legacy_plaintext`](crate::Builder::allow_legacy_plaintext) again. A read that
    /// overlaps the rotation may fail for its key, but leaves nothing in the cache.
    ///
    /// # Examples
    ///
    /// ```
    /// use nanasqlite_core::{Encryption, NanaSQLite};
    ///
    /// let db = NanaSQLite::builder(":memory:").encryption(Encryption::aes_gcm([1u8; 32])?).open()?;
    /// db.set("k", &"v")?;
    /// db.rekey(Encryption::chacha20([2u8; 32])?)?;
    /// assert_eq!(db.get_fresh::<String>("k")?.as_deref(), Some("v"));
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) naming the table and key of a row that
    /// does not decrypt with the current key (nothing is changed then);
    /// [`Error::Transaction`](crate::Error::Transaction) inside a transaction; the backend's error.
    pub fn rekey(&self, to: impl Into<Option<crate::Encryption>>) -> Result<()> {
        self.database().ensure_open()?;
        if self.database().in_transaction() {
            return Err(Error::Transaction { message: "cannot rekey during a transaction".to_owned() });
        }
        self.run_borrowing(Rekey::new(to.into()))
    }

    /// Runs `work` in one write transaction: committed if it returns `Ok`, rolled back if it
    /// returns `Err` or panics. Key/value writes made through the [`Transaction`] reach the
    /// cache only once committed. Other threads wait for it; calling the store itself (not
    /// the transaction) inside `work` is an [`Error::Transaction`](crate::Error::Transaction),
    /// as is closing the store meanwhile.
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// # db.create_table("log", &[("m", "TEXT")])?;
    /// db.transaction(|tx| {
    ///     tx.set("a", &1)?;
    ///     tx.sql_insert("log", &serde_json::json!({"m": "a"}))?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(db.get::<i32>("a")?, Some(1));
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `work`'s error, or SQLite's when the transaction cannot begin or commit.
    pub fn transaction<R>(&self, work: impl FnOnce(&Transaction<'_, S>) -> Result<R>) -> Result<R> {
        let transaction = RunTransaction::new(work);
        self.before(&transaction).transpose()?;
        self.database().run_transaction(self.engine_table(), transaction)
    }
}

impl NanaSQLite<crate::storage::SqliteStorage> {
    /// Runs `work` with the SQLite connection itself, under the store's lock and outside any
    /// transaction of the store's: an escape hatch for what the helpers do not offer (Python's
    /// `db._connection`). It bypasses the SQL checks and **the cache**: after writing to a
    /// key/value table through it, call [`clear_cache`](Self::clear_cache) (or
    /// [`refresh`](Self::refresh)) before reading those keys. A transaction `work` leaves open
    /// is rolled back and reported.
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = nanasqlite_core::NanaSQLite::open(":memory:")?;
    /// let version: String = db.call(|conn| conn.query_row("SELECT sqlite_version()", [], |row| row.get(0)))?;
    /// assert!(version.starts_with('3'));
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `work`'s error as [`Error::Sqlite`]; [`Error::Transaction`] if it left a transaction
    /// open, or if called inside [`transaction`](Self::transaction); [`Error::Closed`].
    pub fn call<R>(&self, work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>) -> Result<R> {
        self.database().ensure_open()?;
        if self.database().in_transaction() {
            return Err(Error::Transaction { message: "cannot call during a transaction".to_owned() });
        }
        self.run_borrowing(crate::engine::Call::new(work))
    }
}
