//! The SQL helpers and transactions of [`NanaSQLite`]: each runs one engine operation.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{Backup, Front, RunTransaction, SqlFront, Transaction};
use crate::error::Result;
use crate::sql::{ColumnInfo, IndexInfo, Query, Row, SqlValue};
use crate::storage::{End, Storage};
use crate::store::NanaSQLite;

impl<S: Storage> NanaSQLite<S> {
    /// Runs SQL helper `name` (`work`) where `kind` says, under the store's lock.
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
        SqlFront::create_table(self, name, columns)
    }

    /// Creates index `name` on `table`'s `columns` if it does not exist.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn create_index(&self, name: &str, table: &str, columns: &[&str], unique: bool) -> Result<()> {
        SqlFront::create_index(self, name, table, columns, unique)
    }

    /// Drops table `name` if it exists.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn drop_table(&self, name: &str) -> Result<()> {
        SqlFront::drop_table(self, name)
    }

    /// Drops index `name` if it exists.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn drop_index(&self, name: &str) -> Result<()> {
        SqlFront::drop_index(self, name)
    }

    /// Whether table `name` exists.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed), SQLite's error.
    pub fn table_exists(&self, name: &str) -> Result<bool> {
        SqlFront::table_exists(self, name)
    }

    /// The tables of the file, by name.
    ///
    /// # Errors
    ///
    /// As [`table_exists`](Self::table_exists).
    pub fn list_tables(&self) -> Result<Vec<String>> {
        SqlFront::list_tables(self)
    }

    /// The columns of `table`.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn get_table_schema(&self, table: &str) -> Result<Vec<ColumnInfo>> {
        SqlFront::get_table_schema(self, table)
    }

    /// The indexes of `table` (of every table with `None`).
    ///
    /// # Errors
    ///
    /// As [`table_exists`](Self::table_exists).
    pub fn list_indexes(&self, table: Option<&str>) -> Result<Vec<IndexInfo>> {
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
    ) -> Result<()> {
        SqlFront::alter_table_add_column(self, table, column, column_type, default)
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
        SqlFront::sql_insert(self, table, data)
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
    /// As [`SqlOps::import_rows`](crate::sql::SqlOps::import_rows); nothing is imported on any error.
    pub fn import_rows<T: Serialize>(&self, table: &str, rows: &[T]) -> Result<usize> {
        SqlFront::import_rows(self, table, rows)
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
        SqlFront::sql_update(self, table, data, condition, params.as_ref())
    }

    /// Deletes the rows of `table` matching `condition`; returns how many.
    ///
    /// # Errors
    ///
    /// As [`sql_update`](Self::sql_update).
    pub fn sql_delete(&self, table: &str, condition: &str, params: impl AsRef<[SqlValue]>) -> Result<usize> {
        SqlFront::sql_delete(self, table, condition, params.as_ref())
    }

    /// Inserts `data`, or updates the row it conflicts with on `conflict` columns (replaces
    /// it when `conflict` is empty); returns the rowid (0 when nothing was inserted).
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn upsert<T: Serialize + ?Sized>(&self, table: &str, data: &T, conflict: &[&str]) -> Result<i64> {
        SqlFront::upsert(self, table, data, conflict)
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
        SqlFront::query(self, query)
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
        SqlFront::count(self, query)
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
        SqlFront::last_insert_rowid(self)
    }

    /// Whether `query` selects any row.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn exists(&self, query: Query) -> Result<bool> {
        SqlFront::exists(self, query)
    }

    /// Runs one SQL statement of yours with bound parameters; returns the rows changed. Rows
    /// of key/value tables changed this way are not seen by their caches: use
    /// [`get_fresh`](Self::get_fresh) or [`clear_cache`](Self::clear_cache).
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn execute(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Result<usize> {
        SqlFront::execute(self, sql, params.as_ref())
    }

    /// Runs `sql` once per parameter list, all in one transaction; returns the rows changed.
    ///
    /// # Errors
    ///
    /// SQLite's error; then nothing is changed.
    pub fn execute_many(&self, sql: &str, params: impl IntoIterator<Item = impl AsRef<[SqlValue]>>) -> Result<usize> {
        SqlFront::execute_many(self, sql, params.into_iter().map(|params| params.as_ref().to_vec()).collect())
    }

    /// The first row of your query, if any.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn fetch_one(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Result<Option<Row>> {
        SqlFront::fetch_one(self, sql, params.as_ref())
    }

    /// Every row of your query.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn fetch_all(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Result<Vec<Row>> {
        SqlFront::fetch_all(self, sql, params.as_ref())
    }

    /// Rebuilds the file to reclaim free space.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn vacuum(&self) -> Result<()> {
        SqlFront::vacuum(self)
    }

    /// Reads (`value` `None`) or sets one of the whitelisted pragmas.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a pragma or value not allowed; SQLite's error.
    pub fn pragma(&self, name: &str, value: Option<SqlValue>) -> Result<Option<SqlValue>> {
        SqlFront::pragma(self, name, value)
    }

    /// The size of the database file in bytes (0 for an in-memory database; the WAL is not
    /// counted).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed), or the file system's error.
    pub fn get_db_size(&self) -> Result<u64> {
        SqlFront::get_db_size(self)
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
        SqlFront::restore(self, source.as_ref())
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
        SqlFront::rekey(self, to.into())
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
        let transaction = RunTransaction::new(|tx: &Transaction<'_, S>| (work(tx), End::Commit));
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
    /// `work`'s error as [`Error::Sqlite`](crate::Error::Sqlite); [`Error::Transaction`](crate::Error::Transaction) if it left a transaction
    /// open, if called inside [`transaction`](Self::transaction), or from a hook or a `call`
    /// closure of this store running under its lock; [`Error::Closed`](crate::Error::Closed).
    pub fn call<R>(&self, work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>) -> Result<R> {
        self.outside_transaction("call")?;
        self.run_borrowing(crate::engine::Call::new(work))
    }
}
