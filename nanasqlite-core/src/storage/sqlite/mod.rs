//! The SQLite backend on rusqlite. Every SQL string of the key/value store lives here.

use std::borrow::Cow;
use std::cell::Cell;
use std::ops::Bound;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, params};

use super::{End, KeyRange, OpenReader, ScannedRow, Storage, Stored, StoredRef};
use crate::error::{Error, Result};
use crate::identifier::Identifier;
use crate::sql::SqlConnection;

pub(crate) mod checkpoint;
mod file;
mod schema;
mod sql;

/// SQLite's limit on bound parameters is 32766 now, but was 999 for long; chunks of 900 keep
/// `IN (…)` queries portable to older system SQLites (the chunk size Python uses).
const IN_CHUNK: usize = 900;

/// Prepared statements kept per connection: about ten per table, for a handful of tables.
const STATEMENT_CACHE: usize = 128;

/// How a connection is set up. The defaults are Python NanaSQLite's, plus a busy timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionOptions {
    /// Apply the performance pragmas (WAL, `synchronous=NORMAL`, mmap, page cache, in-memory
    /// temp store). Default `true`.
    pub optimize: bool,
    /// How long SQLite retries when another connection holds a lock. Default 5 s.
    pub busy_timeout: Duration,
    /// SQLite's page cache in MiB (`PRAGMA cache_size`). Default 64.
    pub cache_size_mb: u32,
    /// Bytes of the file SQLite may memory-map (`PRAGMA mmap_size`) on the read-write
    /// connection. Default 256 MiB. Read-only connections (the async store's readers) map
    /// nothing: SQLite unmaps a reader's mapping each time another connection has committed.
    pub mmap_size: u64,
    /// The longest string or blob a statement may make or store, in bytes
    /// (`SQLITE_LIMIT_LENGTH`), so that no query can allocate without bound. Default 256 MiB
    /// (SQLite's own is 1 GB).
    pub max_length: u32,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self {
            optimize: true,
            busy_timeout: Duration::from_secs(5),
            cache_size_mb: 64,
            mmap_size: 256 * 1024 * 1024,
            max_length: 256 * 1024 * 1024,
        }
    }
}

/// What every connection gets, writer or reader: SQLite's defensive mode (no writes to the
/// schema tables, no corrupting pragmas), no functions or virtual tables run from the schema
/// unless marked safe (`trusted_schema = OFF`), and the length limit.
fn harden(conn: &Connection, options: &ConnectionOptions) -> rusqlite::Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    let max_length = i32::try_from(options.max_length).unwrap_or(i32::MAX);
    conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, max_length)?;
    Ok(())
}

/// A SQLite connection holding key/value tables.
///
/// # Examples
///
/// ```
/// use nanasqlite_core::storage::{ConnectionOptions, SqliteStorage, Storage, Stored, StoredRef};
/// use nanasqlite_core::Identifier;
///
/// let storage = SqliteStorage::open(":memory:", &ConnectionOptions::default())?;
/// let table = storage.open_table(&Identifier::new("data")?)?;
/// storage.put(&table, "k", StoredRef::Text(b"[1,2]"))?;
/// assert_eq!(storage.get(&table, "k")?, Some(Stored::Text(b"[1,2]".to_vec())));
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
#[derive(Debug)]
pub struct SqliteStorage {
    conn: Connection,
    options: ConnectionOptions,
    /// A read-write connection opened with the performance pragmas (WAL, `synchronous=NORMAL`,
    /// the checkpoint hook of [`checkpoint`]).
    tuned_for_writes: bool,
    /// Tuned for writes, and no pragma set since made a commit sync or checkpoint.
    commits_cheaply: Cell<bool>,
    /// The checkpoint hook of [`checkpoint`] is on (no `wal_autocheckpoint` set since replaced
    /// it with SQLite's own).
    own_checkpoints: Cell<bool>,
    /// The busy timeout in force (the builder's, or one a `pragma` set since): what the busy
    /// handler comes back to after a call that must not wait.
    busy_timeout: Cell<Duration>,
}

impl SqliteStorage {
    /// Runs `work` with the connection itself (the stores' `call` escape hatch), outside any
    /// transaction of the store's. A transaction `work` leaves open, or one open when it
    /// panics, is rolled back, so the connection is always handed back as it was taken.
    ///
    /// # Errors
    ///
    /// `work`'s error; [`Error::Transaction`] if it left a transaction open.
    pub fn with_connection<R>(&self, work: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R> {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&self.conn)));
        // `work` may have set a pragma the connection keeps track of.
        self.note_settings();
        self.note_busy_timeout();
        let left_open = !self.conn.is_autocommit();
        if left_open {
            self.conn.execute_batch("ROLLBACK")?;
        }
        match outcome {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(_) if left_open => Err(Error::Transaction {
                message: "the closure left a transaction open; it was rolled back".to_owned(),
            }),
            Ok(result) => Ok(result?),
        }
    }
}

/// The statements of one key/value table, built once.
#[derive(Clone, Debug)]
pub struct SqliteTable {
    sql: Arc<TableSql>,
}

#[derive(Debug)]
struct TableSql {
    name: Identifier,
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
    get_path: String,
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
            // `->` returns the element as JSON text (strings quoted), NULL for an absent path.
            get_path: format!("SELECT value -> ?2 FROM {t} WHERE key = ?1"),
            quoted: t,
            name: name.clone(),
        }
    }
}

/// The expression a field index is built on, and field lookups query: the element at `path`
/// of the JSON value, `NULL` for a row that is not JSON text (an encrypted BLOB, another
/// tool's text), so that neither building the index nor a lookup fails on such rows. `path`
/// is written into the SQL, so only `$.name.name…` paths of plain names are taken.
fn field_expression(path: &str) -> Result<String> {
    let plain = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match path.strip_prefix("$.") {
        Some(parts) if parts.split('.').all(plain) => {
            Ok(format!("json_extract(CASE WHEN json_valid(value) THEN value END, '{path}')"))
        }
        _ => Err(crate::Error::Validation { message: format!("invalid field path {path:?}") }),
    }
}

/// Whether SQLite refused `error`'s statement because it would put a function the library does
/// not call innocuous into the schema (`trusted_schema` is off).
fn refused_in_schema(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(_, Some(message)) if message.starts_with("unsafe use of "))
}

fn get_many_sql(quoted_table: &str, n: usize) -> String {
    let marks = vec!["?"; n].join(",");
    format!("SELECT key, value FROM {quoted_table} WHERE key IN ({marks})")
}

/// Whether SQLite reports `conn` as a database no other connection can open: `:memory:`, a
/// `file::memory:` or `mode=memory` URI, or the private temporary database of an empty path.
/// Asking SQLite (rather than reading the path) gives one answer for every spelling.
fn is_private(conn: &Connection) -> bool {
    conn.path().is_none_or(str::is_empty)
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path`; `":memory:"` is a private
    /// in-memory database, and `file:` URIs are understood.
    ///
    /// # Errors
    ///
    /// [`Error::Open`] when the file cannot be opened or is not a SQLite database.
    pub fn open(path: impl AsRef<Path>, options: &ConnectionOptions) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Self::open_with(path.as_ref(), flags, options, configure)
    }

    /// Opens a read-only connection to an existing database, for reader threads.
    ///
    /// # Errors
    ///
    /// [`Error::Open`] when the file cannot be opened.
    pub fn open_read_only(path: impl AsRef<Path>, options: &ConnectionOptions) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Self::open_with(path.as_ref(), flags, options, configure_reader)
    }

    fn open_with(
        path: &Path,
        flags: OpenFlags,
        options: &ConnectionOptions,
        setup: fn(&Connection, &ConnectionOptions) -> rusqlite::Result<()>,
    ) -> Result<Self> {
        let open_error = |source| Error::Open { path: PathBuf::from(path), source };
        let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
        setup(&conn, options).map_err(open_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let tuned_for_writes = options.optimize && flags.contains(OpenFlags::SQLITE_OPEN_READ_WRITE);
        let storage = Self {
            conn,
            options: options.clone(),
            tuned_for_writes,
            commits_cheaply: Cell::new(false),
            own_checkpoints: Cell::new(tuned_for_writes),
            busy_timeout: Cell::new(options.busy_timeout),
        };
        // Whether the file took WAL, and so commits without a sync.
        storage.note_settings();
        Ok(storage)
    }

    /// Whether this is a database no other connection can open (in memory, or the private
    /// temporary database of an empty path).
    #[must_use]
    pub fn is_private(&self) -> bool {
        is_private(&self.conn)
    }

    /// The file of the database, as SQLite resolved it; `None` when it is private.
    #[must_use]
    pub fn file(&self) -> Option<PathBuf> {
        self.conn.path().filter(|path| !path.is_empty()).map(PathBuf::from)
    }

    fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    fn execute_cached(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
        Ok(self.conn.prepare_cached(sql)?.execute(params)?)
    }

    fn get_chunk(&self, table: &SqliteTable, keys: &[&str], found: &mut dyn FnMut(&str, StoredRef<'_>)) -> Result<()> {
        let sql: Cow<'_, str> = if keys.len() == IN_CHUNK {
            Cow::Borrowed(&table.sql.get_chunk)
        } else {
            Cow::Owned(get_many_sql(&table.sql.quoted, keys.len()))
        };
        let mut statement = self.conn.prepare_cached(&sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(keys))?;
        while let Some(row) = rows.next()? {
            if let Some(key) = key_text(row.get_ref(0)?) {
                with_stored(row.get_ref(1)?, |value| found(key, value));
            }
        }
        Ok(())
    }

    /// Rolls back what is still open and returns `cause` (the error that made us roll back), or
    /// the rollback's own error when that failed too: the graver news, as the connection may
    /// then still be inside the transaction. After some errors (a full disk, an I/O error)
    /// SQLite has already rolled back by itself; then there is nothing to undo.
    fn rollback_after(&self, cause: Error) -> Error {
        if self.in_transaction()
            && let Err(error) = self.execute_cached("ROLLBACK", [])
        {
            return error;
        }
        cause
    }

    /// Begins a write transaction (the first half of [`Storage::transaction`], which
    /// [`end_write`](Self::end_write) ends).
    pub(crate) fn begin_write(&self) -> Result<()> {
        self.execute_cached("BEGIN IMMEDIATE", []).map(drop)
    }

    /// Ends the transaction [`begin_write`](Self::begin_write) began, as the work run in it
    /// says (a panic of the work rolls back and goes on).
    pub(crate) fn end_write<R>(&self, outcome: std::thread::Result<(R, End)>) -> Result<R> {
        match outcome {
            Ok((value, End::Commit)) => match self.execute_cached("COMMIT", []) {
                Ok(_) => Ok(value),
                Err(error) => Err(self.rollback_after(error)),
            },
            Ok((value, End::Rollback)) => self.rollback().map(|()| value),
            Err(panic) => {
                let _ = self.rollback();
                panic::resume_unwind(panic)
            }
        }
    }

    /// Begins a read snapshot (the first half of [`Storage::read_snapshot`]).
    pub(crate) fn begin_read(&self) -> Result<()> {
        self.execute_cached("BEGIN", []).map(drop)
    }

    /// Ends the snapshot [`begin_read`](Self::begin_read) began.
    pub(crate) fn end_read<R>(&self, value: std::thread::Result<R>) -> Result<R> {
        let ended = self.execute_cached("COMMIT", []);
        match value {
            Ok(value) => ended.map(|_| value),
            Err(panic) => panic::resume_unwind(panic),
        }
    }

    /// Turns waiting for other connections' locks (the busy handler) off or back on.
    pub(crate) fn wait_for_locks(&self, wait: bool) {
        let _ = self.conn.busy_timeout(if wait { self.busy_timeout.get() } else { Duration::ZERO });
    }

    fn rollback(&self) -> Result<()> {
        if self.in_transaction() {
            self.execute_cached("ROLLBACK", [])?;
        }
        Ok(())
    }
}

/// Busy timeout first, so that switching to WAL waits for other connections instead of failing.
fn configure(conn: &Connection, options: &ConnectionOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    harden(conn, options)?;
    if options.optimize {
        switch_to_wal(conn, options.busy_timeout)?;
        checkpoint::install(conn);
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

/// A reader needs no WAL switch (the writer made it), a smaller page cache than the writer,
/// and no memory map.
fn configure_reader(conn: &Connection, options: &ConnectionOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    harden(conn, options)?;
    if options.optimize {
        // No memory map for readers: in WAL mode SQLite drops a connection's whole mapping
        // whenever it begins a read after another connection committed, and each unmap
        // interrupts every thread of the process (TLB shootdown). With reads beside writes (W6)
        // that cost readers 25-40% of their rate; their page cache serves them instead.
        conn.pragma_update(None, "mmap_size", 0)?;
        conn.pragma_update(None, "cache_size", -(i64::from(options.cache_size_mb.div_ceil(8)) * 1024))?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
    }
    conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(()))
}

/// A key the store can name: stored as text, in valid UTF-8. Keys another tool stored as
/// numbers, blobs or invalid UTF-8 cannot be looked up by a text key, so they are left out.
fn key_text(key: ValueRef<'_>) -> Option<&str> {
    match key {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes).ok(),
        _ => None,
    }
}

/// Calls `visit` with a stored value as the codec expects it. Rows written by other tools may
/// hold numbers or `NULL`: those are valid JSON as text.
fn with_stored<R>(value: ValueRef<'_>, visit: impl FnOnce(StoredRef<'_>) -> R) -> R {
    match value {
        ValueRef::Text(bytes) => visit(StoredRef::Text(bytes)),
        ValueRef::Blob(bytes) => visit(StoredRef::Blob(bytes)),
        ValueRef::Integer(i) => visit(StoredRef::Text(i.to_string().as_bytes())),
        ValueRef::Real(f) => visit(StoredRef::Text(real_json(f).as_bytes())),
        ValueRef::Null => visit(StoredRef::Text(b"null")),
    }
}

/// The statement and parameters of one page of `range` of the table `quoted`: one statement
/// per shape of range (a few dozen at most), so the statement cache keeps them all.
fn page_query<'a>(quoted: &str, range: &KeyRange<'a>) -> (String, Vec<ToSqlOutput<'a>>) {
    let mut sql = format!("SELECT key, value FROM {quoted} WHERE typeof(key) = 'text'");
    let mut params = Vec::new();
    let mut bound = |operator: &str, key: &'a [u8]| {
        sql.push_str(&format!(" AND key {operator} ?"));
        params.push(ToSqlOutput::Borrowed(ValueRef::Text(key)));
    };
    match range.lower {
        Bound::Included(key) => bound(">=", key.as_bytes()),
        Bound::Excluded(key) => bound(">", key.as_bytes()),
        Bound::Unbounded => {}
    }
    match range.upper {
        Bound::Included(key) => bound("<=", key.as_bytes()),
        Bound::Excluded(key) => bound("<", key.as_bytes()),
        Bound::Unbounded => {}
    }
    if let Some(after) = range.after {
        bound(if range.descending { "<" } else { ">" }, after);
    }
    sql.push_str(if range.descending { " ORDER BY key DESC" } else { " ORDER BY key" });
    sql.push_str(" LIMIT ?");
    params.push(ToSqlOutput::Borrowed(ValueRef::Integer(i64::try_from(range.limit).unwrap_or(i64::MAX))));
    (sql, params)
}

/// A float as JSON text (non-finite ones as `null`, which is what JSON can say of them).
fn real_json(f: f64) -> String {
    serde_json::Number::from_f64(f).map_or_else(|| "null".to_owned(), |n| n.to_string())
}

/// A key as SQLite stores it, owned, whatever its type: what finds another tool's row again.
enum StoredKey {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl StoredKey {
    fn of(key: ValueRef<'_>) -> Self {
        match key {
            ValueRef::Null => Self::Null,
            ValueRef::Integer(i) => Self::Integer(i),
            ValueRef::Real(f) => Self::Real(f),
            ValueRef::Text(bytes) => Self::Text(bytes.to_vec()),
            ValueRef::Blob(bytes) => Self::Blob(bytes.to_vec()),
        }
    }

    fn bind(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Borrowed(match self {
            Self::Null => ValueRef::Null,
            Self::Integer(i) => ValueRef::Integer(*i),
            Self::Real(f) => ValueRef::Real(*f),
            Self::Text(bytes) => ValueRef::Text(bytes),
            Self::Blob(bytes) => ValueRef::Blob(bytes),
        })
    }
}

fn bind(value: StoredRef<'_>) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(match value {
        StoredRef::Text(bytes) => ValueRef::Text(bytes),
        StoredRef::Blob(bytes) => ValueRef::Blob(bytes),
    })
}

impl Storage for SqliteStorage {
    type Table = SqliteTable;

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn open_table(&self, name: &Identifier) -> Result<SqliteTable> {
        let sql = TableSql::new(name);
        schema::create_or_check(&self.conn, name, &sql.quoted)?;
        // Prepared now, on the thread that opens the store: the first read is most often the
        // next call, and may run on the caller's thread.
        self.conn.prepare_cached(&sql.get)?;
        Ok(SqliteTable { sql: Arc::new(sql) })
    }

    fn key_value_tables(&self) -> Result<Vec<Identifier>> {
        schema::key_value_tables(&self.conn)
    }

    fn get(&self, table: &SqliteTable, key: &str) -> Result<Option<Stored>> {
        let mut statement = self.conn.prepare_cached(&table.sql.get)?;
        let mut rows = statement.query([key])?;
        match rows.next()? {
            Some(row) => Ok(Some(with_stored(row.get_ref(0)?, |value| value.to_owned()))),
            None => Ok(None),
        }
    }

    fn get_many(&self, table: &SqliteTable, keys: &[&str], found: &mut dyn FnMut(&str, StoredRef<'_>)) -> Result<()> {
        keys.chunks(IN_CHUNK).try_for_each(|chunk| self.get_chunk(table, chunk, found))
    }

    fn contains(&self, table: &SqliteTable, key: &str) -> Result<bool> {
        Ok(self.conn.prepare_cached(&table.sql.contains)?.exists([key])?)
    }

    fn put(&self, table: &SqliteTable, key: &str, value: StoredRef<'_>) -> Result<()> {
        self.execute_cached(&table.sql.put, params![key, bind(value)]).map(drop)
    }

    fn put_many(&self, table: &SqliteTable, rows: &mut dyn Iterator<Item = (&str, StoredRef<'_>)>) -> Result<()> {
        let mut statement = self.conn.prepare_cached(&table.sql.put)?;
        for (key, value) in rows {
            statement.execute(params![key, bind(value)])?;
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
        let mut rows = statement.query([])?;
        let mut keys = Vec::new();
        while let Some(row) = rows.next()? {
            keys.extend(key_text(row.get_ref(0)?).map(str::to_owned));
        }
        Ok(keys)
    }

    fn get_path(&self, table: &SqliteTable, key: &str, path: &str) -> Result<Option<Stored>> {
        let mut statement = self.conn.prepare_cached(&table.sql.get_path)?;
        let mut rows = statement.query([key, path])?;
        match rows.next()? {
            Some(row) => match row.get_ref(0)? {
                ValueRef::Null => Ok(None),
                element => Ok(Some(with_stored(element, |value| value.to_owned()))),
            },
            None => Ok(None),
        }
    }

    fn index_field(&self, table: &SqliteTable, field: &str, path: &str) -> Result<bool> {
        let index = Identifier::new(&format!("{}_by_{field}", table.sql.name.as_str()))?;
        let sql = format!(
            "CREATE INDEX IF NOT EXISTS {} ON {}({})",
            index.quoted(),
            table.sql.quoted,
            field_expression(path)?
        );
        match self.conn.execute_batch(&sql) {
            Ok(()) => Ok(true),
            // SQLite before 3.45 (a system library, without the `bundled` feature) does not mark
            // its JSON functions innocuous, so with the untrusted schema this store sets it
            // refuses them in an index: lookups then read the rows instead.
            Err(error) if refused_in_schema(&error) => {
                tracing::debug!(%error, field, "this SQLite cannot index a JSON field; lookups scan");
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }

    fn keys_where(&self, table: &SqliteTable, path: &str, json: &str) -> Result<Vec<String>> {
        let sql =
            format!("SELECT key FROM {} WHERE {} = json_extract(?1, '$')", table.sql.quoted, field_expression(path)?);
        let mut statement = self.conn.prepare_cached(&sql)?;
        let mut rows = statement.query([json])?;
        let mut keys = Vec::new();
        while let Some(row) = rows.next()? {
            keys.extend(key_text(row.get_ref(0)?).map(str::to_owned));
        }
        Ok(keys)
    }

    fn scan_page(
        &self,
        table: &SqliteTable,
        range: &KeyRange<'_>,
        visit: &mut dyn FnMut(ScannedRow<'_>),
    ) -> Result<()> {
        let (sql, params) = page_query(&table.sql.quoted, range);
        let mut statement = self.conn.prepare_cached(&sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            let ValueRef::Text(raw) = row.get_ref(0)? else { continue };
            let key = key_text(ValueRef::Text(raw));
            with_stored(row.get_ref(1)?, |value| visit(ScannedRow { raw_key: raw, key, value }));
        }
        Ok(())
    }

    fn first_key(&self, table: &SqliteTable) -> Result<Option<String>> {
        let mut statement = self.conn.prepare_cached(&table.sql.keys)?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            if let Some(key) = key_text(row.get_ref(0)?) {
                return Ok(Some(key.to_owned()));
            }
        }
        Ok(None)
    }

    fn scan(&self, table: &SqliteTable, visit: &mut dyn FnMut(&str, StoredRef<'_>)) -> Result<()> {
        let mut statement = self.conn.prepare_cached(&table.sql.scan)?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            if let Some(key) = key_text(row.get_ref(0)?) {
                with_stored(row.get_ref(1)?, |value| visit(key, value));
            }
        }
        Ok(())
    }

    fn unreadable_keys(&self, table: &SqliteTable) -> Result<u64> {
        let mut statement = self.conn.prepare_cached(&table.sql.keys)?;
        let mut rows = statement.query([])?;
        let mut unreadable = 0;
        while let Some(row) = rows.next()? {
            unreadable += u64::from(key_text(row.get_ref(0)?).is_none());
        }
        Ok(unreadable)
    }

    fn rewrite_unnamed(
        &self,
        table: &SqliteTable,
        rewrite: &mut dyn FnMut(StoredRef<'_>) -> Result<Stored>,
    ) -> Result<u64> {
        // Rewritten after the scan: the rows are few (another tool's), and a statement may not
        // change a table while a read of it is still stepping.
        let mut rewritten = Vec::new();
        {
            let mut statement = self.conn.prepare_cached(&table.sql.scan)?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let key = row.get_ref(0)?;
                if key_text(key).is_none() {
                    let value = with_stored(row.get_ref(1)?, &mut *rewrite)?;
                    rewritten.push((StoredKey::of(key), value));
                }
            }
        }
        // `IS`, not `=`: another tool's key may even be NULL.
        let mut update = self.conn.prepare(&format!("UPDATE {} SET value = ?1 WHERE key IS ?2", table.sql.quoted))?;
        for (key, value) in &rewritten {
            update.execute(params![bind(value.as_ref()), key.bind()])?;
        }
        Ok(rewritten.len() as u64)
    }

    fn clear(&self, table: &SqliteTable) -> Result<usize> {
        self.execute_cached(&table.sql.clear, [])
    }

    fn transaction<R>(&mut self, work: impl FnOnce(&mut Self) -> (R, End)) -> Result<R> {
        self.begin_write()?;
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| work(self)));
        self.end_write(outcome)
    }

    fn read_snapshot<R>(&mut self, work: impl FnOnce(&mut Self) -> R) -> Result<R> {
        self.begin_read()?;
        let value = panic::catch_unwind(AssertUnwindSafe(|| work(self)));
        self.end_read(value)
    }

    fn without_waiting<R>(&mut self, work: impl FnOnce(&mut Self) -> R) -> R {
        self.wait_for_locks(false);
        // The busy handler comes back even if `work` panics (a caller may catch it and go on).
        let result = panic::catch_unwind(AssertUnwindSafe(|| work(self)));
        self.wait_for_locks(true);
        result.unwrap_or_else(|panic| panic::resume_unwind(panic))
    }

    fn commits_cheaply(&self) -> bool {
        self.commits_cheaply.get()
    }

    fn write_on_callers_thread<R>(&mut self, work: impl FnOnce(&mut Self) -> R) -> (R, bool) {
        checkpoint::deferred(|| self.without_waiting(work))
    }

    fn checkpoint(&mut self) -> Result<()> {
        self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn data_version(&self) -> Result<Option<i64>> {
        Ok(Some(self.conn.prepare_cached("PRAGMA data_version")?.query_row([], |row| row.get(0))?))
    }

    fn readers(&self) -> Option<OpenReader<Self>> {
        let file = self.file()?;
        let options = self.options.clone();
        Some(Arc::new(move || Self::open_read_only(&file, &options)))
    }

    fn sql(&self) -> Result<&dyn SqlConnection> {
        Ok(self)
    }

    fn size(&self) -> Result<u64> {
        match self.file() {
            Some(file) => Ok(std::fs::metadata(file)?.len()),
            None => Ok(0),
        }
    }

    fn backup_to(&self, dest: &Path) -> Result<()> {
        file::check_destination(self.file().as_deref(), dest)?;
        file::copy_to(&self.conn, dest)
    }

    fn restore_from(&mut self, source: &Path) -> Result<()> {
        if self.is_private() {
            return Err(Error::validation("cannot restore into an in-memory database"));
        }
        file::restore_into(&mut self.conn, source)?;
        if self.options.optimize {
            switch_to_wal(&self.conn, self.options.busy_timeout)?;
        }
        Ok(())
    }

    fn close(self) -> Result<()> {
        self.conn.close().map_err(|(_, error)| Error::Sqlite(error))
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

    fn text(value: &str) -> Option<Stored> {
        Some(Stored::Text(value.as_bytes().to_vec()))
    }

    #[test]
    fn a_function_refused_in_the_schema_is_told_from_other_errors() {
        // Every SQLite refuses `load_extension` in a schema it does not trust; a system SQLite
        // before 3.45 refuses `json_extract` in a field index the same way.
        let (storage, _) = memory();
        let refused = storage
            .conn
            .execute_batch("CREATE VIEW v AS SELECT load_extension(key) FROM data; SELECT * FROM v;")
            .unwrap_err();
        assert!(refused_in_schema(&refused), "{refused}");
        let other = storage.conn.execute_batch("SELECT * FROM missing").unwrap_err();
        assert!(!refused_in_schema(&other), "{other}");
    }

    #[test]
    fn a_file_gets_python_pragmas_a_busy_timeout_and_python_schema() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(dir.path().join("p.db"), &ConnectionOptions::default()).unwrap();
        storage.open_table(&Identifier::new("data").unwrap()).unwrap();
        let pragma = |name: &str| -> String {
            storage
                .conn
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
        let mut columns = storage.conn.prepare("SELECT name, type, pk FROM pragma_table_info('data')").unwrap();
        let columns: Vec<(String, String, i64)> =
            columns.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
        assert_eq!(columns, [("key".into(), "TEXT".into(), 1), ("value".into(), "TEXT".into(), 0)]);
        let reader = SqliteStorage::open_read_only(dir.path().join("p.db"), &ConnectionOptions::default()).unwrap();
        let mmap: i64 = reader.conn.query_row("PRAGMA mmap_size", [], |row| row.get(0)).unwrap();
        assert_eq!(mmap, 0, "a reader maps nothing: SQLite would unmap it after every other commit");
    }

    #[test]
    fn one_rule_for_what_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let options = ConnectionOptions::default();
        for private in [":memory:", "", "file::memory:", "file:shared?mode=memory&cache=shared"] {
            let storage = SqliteStorage::open(private, &options).unwrap();
            assert!(storage.is_private(), "{private:?}");
            assert!(storage.readers().is_none(), "{private:?}");
            assert_eq!(storage.size().unwrap(), 0, "{private:?}");
        }
        let uri = format!("file:{}", dir.path().join("uri.db").display());
        let storage = SqliteStorage::open(&uri, &options).unwrap();
        storage.open_table(&Identifier::new("data").unwrap()).unwrap();
        assert!(!storage.is_private());
        assert!(storage.size().unwrap() > 0, "a file: URI names a file");
        assert!((storage.readers().unwrap())().is_ok());
    }

    #[test]
    fn a_read_only_connection_reads_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.db");
        let options = ConnectionOptions::default();
        let writer = SqliteStorage::open(&path, &options).unwrap();
        let table = writer.open_table(&Identifier::new("data").unwrap()).unwrap();
        writer.put(&table, "k", StoredRef::Text(b"1")).unwrap();
        let mut reader = (writer.readers().unwrap())().unwrap();
        let snapshot = reader
            .read_snapshot(|r| {
                let before = r.get(&table, "k").unwrap();
                writer.put(&table, "k", StoredRef::Text(b"2")).unwrap();
                (before, r.get(&table, "k").unwrap())
            })
            .unwrap();
        assert_eq!(snapshot, (text("1"), text("1")), "one snapshot per read transaction");
        assert_eq!(reader.get(&table, "k").unwrap(), text("2"));
        assert!(reader.put(&table, "k", StoredRef::Text(b"3")).is_err());
        assert!(SqliteStorage::open_read_only(dir.path().join("missing.db"), &options).is_err());
    }

    #[test]
    fn rows_written_by_other_tools_are_handed_on_as_stored() {
        let (storage, table) = memory();
        storage
            .conn
            .execute_batch(
                "INSERT INTO data VALUES ('i', 7), ('n', NULL), ('r', 1.5), ('b', x'00ff'), ('u', CAST(x'ff' AS TEXT))",
            )
            .unwrap();
        assert_eq!(storage.get(&table, "i").unwrap(), text("7"));
        assert_eq!(storage.get(&table, "n").unwrap(), text("null"));
        assert_eq!(storage.get(&table, "r").unwrap(), text("1.5"));
        assert_eq!(storage.get(&table, "b").unwrap(), Some(Stored::Blob(vec![0, 255])));
        assert_eq!(storage.get(&table, "u").unwrap(), Some(Stored::Text(vec![255])), "not silently replaced");
    }

    #[test]
    fn keys_that_cannot_be_named_are_left_out_and_counted() {
        let (storage, table) = memory();
        storage
            .conn
            .execute_batch("INSERT INTO data VALUES ('a', '1'), (CAST(x'ff' AS TEXT), '2'), (x'01', '3'), ('b', '4')")
            .unwrap();
        assert_eq!(storage.keys(&table).unwrap(), ["a", "b"]);
        let mut seen = Vec::new();
        storage.scan(&table, &mut |key, _| seen.push(key.to_owned())).unwrap();
        seen.sort();
        assert_eq!(seen, ["a", "b"]);
        assert_eq!(storage.unreadable_keys(&table).unwrap(), 2);
    }

    #[test]
    fn get_many_spans_chunks() {
        let (mut storage, table) = memory();
        let rows: Vec<_> = (0..2000).map(|i| (format!("k{i}"), i.to_string())).collect();
        super::super::atomically(&mut storage, |s| {
            s.put_many(&table, &mut rows.iter().map(|(k, v)| (k.as_str(), StoredRef::Text(v.as_bytes()))))
        })
        .unwrap();
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
            storage.transaction(|s| -> ((), End) {
                s.put(&table, "k", StoredRef::Text(b"1")).unwrap();
                panic!("boom")
            })
        }));
        assert!(result.is_err());
        assert!(storage.conn.is_autocommit());
        assert_eq!(storage.get(&table, "k").unwrap(), None);
        storage.put(&table, "k", StoredRef::Text(b"2")).unwrap();
    }

    #[test]
    fn a_transaction_ends_as_its_work_says() {
        let (mut storage, table) = memory();
        let kept = storage.transaction(|s| (s.put(&table, "a", StoredRef::Text(b"1")), End::Commit)).unwrap();
        kept.unwrap();
        let undone = storage.transaction(|s| (s.put(&table, "b", StoredRef::Text(b"1")), End::Rollback)).unwrap();
        undone.unwrap();
        assert_eq!(storage.keys(&table).unwrap(), ["a"]);
    }
}
