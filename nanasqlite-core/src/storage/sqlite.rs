//! The SQLite backend on rusqlite. Every SQL string of the key/value store lives here.

use std::borrow::Cow;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, params};

use super::Storage;
use crate::error::{Error, Result};
use crate::identifier::Identifier;

/// SQLite's limit on bound parameters is 32766 now, but was 999 for long; chunks of 900 keep
/// `IN (…)` queries portable to older system SQLites (the chunk size Python uses).
const IN_CHUNK: usize = 900;

/// Prepared statements kept per connection: about ten per table, for a handful of tables.
const STATEMENT_CACHE: usize = 128;

/// How a connection is set up. The defaults are Python NanaSQLite's, plus a busy timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// Apply the performance pragmas (WAL, `synchronous=NORMAL`, mmap, page cache, in-memory
    /// temp store). Default `true`.
    pub optimize: bool,
    /// How long SQLite retries when another connection holds a lock. Default 5 s.
    pub busy_timeout: Duration,
    /// SQLite's page cache in MiB (`PRAGMA cache_size`). Default 64.
    pub cache_size_mb: u32,
    /// Bytes of the file SQLite may memory-map (`PRAGMA mmap_size`). Default 256 MiB.
    pub mmap_size: u64,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self { optimize: true, busy_timeout: Duration::from_secs(5), cache_size_mb: 64, mmap_size: 256 * 1024 * 1024 }
    }
}

/// A read-write SQLite connection holding key/value tables.
///
/// # Examples
///
/// ```
/// use nanasqlite_core::storage::{ConnectionOptions, SqliteStorage, Storage};
/// use nanasqlite_core::Identifier;
///
/// let storage = SqliteStorage::open(":memory:", &ConnectionOptions::default())?;
/// let table = storage.open_table(&Identifier::new("data")?)?;
/// storage.put(&table, "k", "[1,2]")?;
/// assert_eq!(storage.get(&table, "k")?.as_deref(), Some("[1,2]"));
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
#[derive(Debug)]
pub struct SqliteStorage {
    conn: Connection,
}

/// The statements of one key/value table, built once.
#[derive(Clone, Debug)]
pub struct SqliteTable {
    sql: Arc<TableSql>,
}

#[derive(Debug)]
struct TableSql {
    quoted: String,
    get: String,
    contains: String,
    put: String,
    delete: String,
    count: String,
    keys: String,
    scan: String,
    clear: String,
    get_chunk: String,
}

impl TableSql {
    fn new(name: &Identifier) -> Self {
        let t = name.quoted();
        Self {
            get: format!("SELECT value FROM {t} WHERE key = ?"),
            contains: format!("SELECT 1 FROM {t} WHERE key = ? LIMIT 1"),
            put: format!("INSERT OR REPLACE INTO {t} (key, value) VALUES (?, ?)"),
            delete: format!("DELETE FROM {t} WHERE key = ?"),
            count: format!("SELECT COUNT(*) FROM {t}"),
            keys: format!("SELECT key FROM {t} ORDER BY key"),
            scan: format!("SELECT key, value FROM {t}"),
            clear: format!("DELETE FROM {t}"),
            get_chunk: get_many_sql(&t, IN_CHUNK),
            quoted: t,
        }
    }
}

fn get_many_sql(quoted_table: &str, n: usize) -> String {
    let marks = vec!["?"; n].join(",");
    format!("SELECT key, value FROM {quoted_table} WHERE key IN ({marks})")
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path`; `":memory:"` is a private
    /// in-memory database.
    ///
    /// # Errors
    ///
    /// [`Error::Open`] when the file cannot be opened or is not a SQLite database.
    pub fn open(path: impl AsRef<Path>, options: &ConnectionOptions) -> Result<Self> {
        let path = path.as_ref();
        let open_error = |source| Error::Open { path: PathBuf::from(path), source };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
        configure(&conn, options).map_err(open_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self { conn })
    }

    /// Opens a read-only connection to an existing database, for reader threads.
    ///
    /// # Errors
    ///
    /// [`Error::Open`] when the file cannot be opened.
    pub fn open_read_only(path: impl AsRef<Path>, options: &ConnectionOptions) -> Result<Self> {
        let path = path.as_ref();
        let open_error = |source| Error::Open { path: PathBuf::from(path), source };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
        configure_reader(&conn, options).map_err(open_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self { conn })
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE`), for callers that drive one by hand.
    ///
    /// # Errors
    ///
    /// SQLite's error, e.g. when another connection holds the write lock past the busy timeout.
    pub fn begin_write(&self) -> Result<()> {
        self.execute_cached("BEGIN IMMEDIATE", []).map(drop)
    }

    /// Commits the open transaction; rolls it back if the commit fails.
    ///
    /// # Errors
    ///
    /// SQLite's error; the transaction is then rolled back.
    pub fn commit(&self) -> Result<()> {
        match self.execute_cached("COMMIT", []) {
            Ok(_) => Ok(()),
            Err(error) => Err(self.rollback_after(error)),
        }
    }

    /// Rolls back the open transaction, if there is one.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn rollback(&self) -> Result<()> {
        if self.in_transaction() {
            self.execute_cached("ROLLBACK", [])?;
        }
        Ok(())
    }

    /// Whether a transaction is open (SQLite ends one by itself after some errors, such as a
    /// full disk).
    #[must_use]
    pub fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// The rusqlite connection, for what this type does not cover.
    #[must_use]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn execute_cached(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
        Ok(self.conn.prepare_cached(sql)?.execute(params)?)
    }

    fn get_chunk(&self, table: &SqliteTable, keys: &[&str], found: &mut dyn FnMut(&str, &str)) -> Result<()> {
        let sql: Cow<'_, str> = if keys.len() == IN_CHUNK {
            Cow::Borrowed(&table.sql.get_chunk)
        } else {
            Cow::Owned(get_many_sql(&table.sql.quoted, keys.len()))
        };
        let mut statement = self.conn.prepare_cached(&sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(keys))?;
        while let Some(row) = rows.next()? {
            found(&value_text(row.get_ref(0)?), &value_text(row.get_ref(1)?));
        }
        Ok(())
    }
}

/// Busy timeout first, so that switching to WAL waits for other connections instead of failing.
fn configure(conn: &Connection, options: &ConnectionOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    if options.optimize {
        switch_to_wal(conn, options.busy_timeout)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "mmap_size", i64::try_from(options.mmap_size).unwrap_or(i64::MAX))?;
        conn.pragma_update(None, "cache_size", -(i64::from(options.cache_size_mb) * 1024))?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
    } else {
        // Still touch the file, so that a file that is not a database fails here.
        conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(()))?;
    }
    Ok(())
}

/// Switches the file to WAL. When several connections open a new file at once, SQLite answers
/// "busy" to all but one at once, without waiting in its busy handler (waiting could deadlock
/// two connections that both hold a shared lock), so the busy timeout is applied here.
fn switch_to_wal(conn: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(error)
                if error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) && start.elapsed() < busy_timeout =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            outcome => return outcome,
        }
    }
}

/// A reader needs no WAL switch (the writer made it) and a smaller page cache than the writer.
fn configure_reader(conn: &Connection, options: &ConnectionOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    if options.optimize {
        conn.pragma_update(None, "mmap_size", i64::try_from(options.mmap_size).unwrap_or(i64::MAX))?;
        conn.pragma_update(None, "cache_size", -(i64::from(options.cache_size_mb.div_ceil(8)) * 1024))?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
    }
    conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(()))
}

/// A stored key or value as text. Rows written by other tools may hold numbers, NULL or blobs:
/// numbers and NULL are valid JSON as they are; other text is handed on, and the codec
/// reports it as a decode error for that key alone.
fn value_text(value: ValueRef<'_>) -> Cow<'_, str> {
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => String::from_utf8_lossy(bytes),
        ValueRef::Integer(i) => Cow::Owned(i.to_string()),
        ValueRef::Real(f) => Cow::Owned(f.to_string()),
        ValueRef::Null => Cow::Borrowed("null"),
    }
}

impl Storage for SqliteStorage {
    type Table = SqliteTable;

    fn open_table(&self, name: &Identifier) -> Result<SqliteTable> {
        let sql = TableSql::new(name);
        let create = format!("CREATE TABLE IF NOT EXISTS {} (key TEXT PRIMARY KEY, value TEXT)", sql.quoted);
        self.conn.execute(&create, [])?;
        Ok(SqliteTable { sql: Arc::new(sql) })
    }

    fn get(&self, table: &SqliteTable, key: &str) -> Result<Option<String>> {
        let mut statement = self.conn.prepare_cached(&table.sql.get)?;
        let mut rows = statement.query([key])?;
        match rows.next()? {
            Some(row) => Ok(Some(value_text(row.get_ref(0)?).into_owned())),
            None => Ok(None),
        }
    }

    fn get_many(&self, table: &SqliteTable, keys: &[&str], found: &mut dyn FnMut(&str, &str)) -> Result<()> {
        keys.chunks(IN_CHUNK).try_for_each(|chunk| self.get_chunk(table, chunk, found))
    }

    fn contains(&self, table: &SqliteTable, key: &str) -> Result<bool> {
        Ok(self.conn.prepare_cached(&table.sql.contains)?.exists([key])?)
    }

    fn put(&self, table: &SqliteTable, key: &str, json: &str) -> Result<()> {
        self.execute_cached(&table.sql.put, params![key, json]).map(drop)
    }

    fn put_many(&self, table: &SqliteTable, rows: &[(String, String)]) -> Result<()> {
        let mut statement = self.conn.prepare_cached(&table.sql.put)?;
        for (key, json) in rows {
            statement.execute(params![key, json])?;
        }
        Ok(())
    }

    fn delete(&self, table: &SqliteTable, key: &str) -> Result<bool> {
        Ok(self.execute_cached(&table.sql.delete, [key])? > 0)
    }

    fn delete_many(&self, table: &SqliteTable, keys: &[&str]) -> Result<usize> {
        let mut statement = self.conn.prepare_cached(&table.sql.delete)?;
        keys.iter().try_fold(0, |removed, key| Ok(removed + statement.execute([key])?))
    }

    fn count(&self, table: &SqliteTable) -> Result<u64> {
        let count: i64 = self.conn.prepare_cached(&table.sql.count)?.query_row([], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    fn keys(&self, table: &SqliteTable) -> Result<Vec<String>> {
        let mut statement = self.conn.prepare_cached(&table.sql.keys)?;
        let keys = statement.query_map([], |row| row.get(0))?;
        Ok(keys.collect::<rusqlite::Result<_>>()?)
    }

    fn scan(&self, table: &SqliteTable, visit: &mut dyn FnMut(&str, &str)) -> Result<()> {
        let mut statement = self.conn.prepare_cached(&table.sql.scan)?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            visit(&value_text(row.get_ref(0)?), &value_text(row.get_ref(1)?));
        }
        Ok(())
    }

    fn clear(&self, table: &SqliteTable) -> Result<usize> {
        self.execute_cached(&table.sql.clear, [])
    }

    fn transaction<R>(&mut self, work: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        self.execute_cached("BEGIN IMMEDIATE", [])?;
        let value = self.undo_on_failure(work, "ROLLBACK")?;
        match self.execute_cached("COMMIT", []) {
            Ok(_) => Ok(value),
            Err(error) => Err(self.rollback_after(error)),
        }
    }

    fn savepoint<R>(&mut self, work: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        self.execute_cached("SAVEPOINT nanasqlite_unit", [])?;
        let value = self.undo_on_failure(work, "ROLLBACK TO nanasqlite_unit")?;
        self.execute_cached("RELEASE nanasqlite_unit", [])?;
        Ok(value)
    }

    fn read_snapshot<R>(&mut self, work: impl FnOnce(&mut Self) -> R) -> Result<R> {
        self.execute_cached("BEGIN", [])?;
        let value = panic::catch_unwind(AssertUnwindSafe(|| work(self)));
        let ended = self.execute_cached("COMMIT", []);
        match value {
            Ok(value) => ended.map(|_| value),
            Err(panic) => panic::resume_unwind(panic),
        }
    }

    fn data_version(&self) -> Result<Option<i64>> {
        Ok(Some(self.conn.prepare_cached("PRAGMA data_version")?.query_row([], |row| row.get(0))?))
    }

    fn close(self) -> Result<()> {
        self.conn.close().map_err(|(_, error)| Error::Sqlite(error))
    }
}

impl SqliteStorage {
    /// Runs `work`; when it fails or panics, runs `undo` (and for a savepoint releases it)
    /// before handing on the error or the panic. After some errors (a full disk, an I/O error)
    /// SQLite has already rolled the whole transaction back: then there is nothing to undo, and
    /// the error to report is the one that caused it.
    fn undo_on_failure<R>(&mut self, work: impl FnOnce(&mut Self) -> Result<R>, undo: &str) -> Result<R> {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| work(self)));
        let failed = !matches!(outcome, Ok(Ok(_)));
        if failed && self.in_transaction() {
            let undone = self.execute_cached(undo, []);
            if undo.starts_with("ROLLBACK TO") {
                let _ = self.execute_cached("RELEASE nanasqlite_unit", []);
            }
            if let (Ok(Err(_)), Err(error)) = (&outcome, undone) {
                return Err(error);
            }
        }
        match outcome {
            Ok(result) => result,
            Err(panic) => panic::resume_unwind(panic),
        }
    }

    /// Rolls back what is still open and returns `cause` (the error that made us roll back), or
    /// the rollback's own error when that failed too: the graver news, as the connection may
    /// then still be inside the transaction.
    fn rollback_after(&self, cause: Error) -> Error {
        if !self.conn.is_autocommit()
            && let Err(error) = self.execute_cached("ROLLBACK", [])
        {
            return error;
        }
        cause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> (SqliteStorage, SqliteTable) {
        let storage = SqliteStorage::open(":memory:", &ConnectionOptions::default()).unwrap();
        let table = storage.open_table(&Identifier::new("data").unwrap()).unwrap();
        (storage, table)
    }

    #[test]
    fn a_file_gets_python_pragmas_a_busy_timeout_and_python_schema() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(dir.path().join("p.db"), &ConnectionOptions::default()).unwrap();
        storage.open_table(&Identifier::new("data").unwrap()).unwrap();
        let pragma = |name: &str| -> String {
            storage
                .connection()
                .query_row(&format!("PRAGMA {name}"), [], |row| row.get::<_, rusqlite::types::Value>(0))
                .map(|value| format!("{value:?}"))
                .unwrap()
        };
        assert_eq!(pragma("journal_mode"), r#"Text("wal")"#);
        assert_eq!(pragma("synchronous"), "Integer(1)", "NORMAL");
        assert_eq!(pragma("mmap_size"), "Integer(268435456)");
        assert_eq!(pragma("cache_size"), "Integer(-65536)");
        assert_eq!(pragma("temp_store"), "Integer(2)", "MEMORY");
        assert_eq!(pragma("busy_timeout"), "Integer(5000)");
        let mut columns = storage.connection().prepare("SELECT name, type, pk FROM pragma_table_info('data')").unwrap();
        let columns: Vec<(String, String, i64)> =
            columns.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
        assert_eq!(columns, [("key".into(), "TEXT".into(), 1), ("value".into(), "TEXT".into(), 0)]);
    }

    #[test]
    fn a_read_only_connection_reads_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.db");
        let options = ConnectionOptions::default();
        let writer = SqliteStorage::open(&path, &options).unwrap();
        let table = writer.open_table(&Identifier::new("data").unwrap()).unwrap();
        writer.put(&table, "k", "1").unwrap();
        let mut reader = SqliteStorage::open_read_only(&path, &options).unwrap();
        let snapshot = reader
            .read_snapshot(|r| {
                let before = r.get(&table, "k").unwrap();
                writer.put(&table, "k", "2").unwrap();
                (before, r.get(&table, "k").unwrap())
            })
            .unwrap();
        assert_eq!(snapshot, (Some("1".into()), Some("1".into())), "one snapshot per read transaction");
        assert_eq!(reader.get(&table, "k").unwrap().as_deref(), Some("2"));
        assert!(reader.put(&table, "k", "3").is_err());
        assert!(SqliteStorage::open_read_only(dir.path().join("missing.db"), &options).is_err());
    }

    #[test]
    fn rows_written_by_other_tools_read_as_text() {
        let (storage, table) = memory();
        storage.connection().execute("INSERT INTO data VALUES ('i', 7), ('n', NULL), ('r', 1.5)", []).unwrap();
        assert_eq!(storage.get(&table, "i").unwrap().as_deref(), Some("7"));
        assert_eq!(storage.get(&table, "n").unwrap().as_deref(), Some("null"));
        assert_eq!(storage.get(&table, "r").unwrap().as_deref(), Some("1.5"));
    }

    #[test]
    fn get_many_spans_chunks() {
        let (mut storage, table) = memory();
        let rows: Vec<_> = (0..2000).map(|i| (format!("k{i}"), i.to_string())).collect();
        storage.transaction(|s| s.put_many(&table, &rows)).unwrap();
        let keys: Vec<String> = (0..2100).map(|i| format!("k{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut found = 0;
        storage.get_many(&table, &keys, &mut |_, _| found += 1).unwrap();
        assert_eq!(found, 2000);
    }

    #[test]
    fn a_panicking_transaction_rolls_back_and_leaves_the_connection_usable() {
        let (mut storage, table) = memory();
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            storage.transaction(|s| -> Result<()> {
                s.put(&table, "k", "1")?;
                panic!("boom")
            })
        }));
        assert!(result.is_err());
        assert!(storage.connection().is_autocommit());
        assert_eq!(storage.get(&table, "k").unwrap(), None);
        storage.put(&table, "k", "2").unwrap();
    }
}
