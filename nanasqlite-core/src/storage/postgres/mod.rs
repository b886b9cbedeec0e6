//! The PostgreSQL backend (feature `postgres`): the key/value tables on a shared server, on
//! the `postgres` sync client, with every process's cache kept coherent through
//! `LISTEN`/`NOTIFY`.
//!
//! # What the client starts
//!
//! Each connection of the `postgres` crate carries a tokio current-thread runtime that runs
//! only inside the connection's own calls: it starts no thread. So that runtime must never be
//! entered from an async task's thread (it would panic): the async store runs this backend on
//! its own threads only ([`Storage::runs_on_callers`] is `false`). The backend starts one thread
//! of its own per open store, `nanasqlite-pg-listen`, which holds one more connection, listens
//! for other clients' writes and drops what they changed from the caches.
//!
//! # Layout
//!
//! A key/value table is `"<name>"(key TEXT COLLATE "C" PRIMARY KEY, value TEXT, value_bytes
//! BYTEA)`: JSON text in `value`, an encrypted value's bytes in `value_bytes`. Keys order by
//! byte, as in SQLite. PostgreSQL text cannot hold the NUL character: a key or value with one
//! is refused with [`Error::Validation`].
//!
//! # Coherence
//!
//! Statement-level triggers on each table announce each statement's changed keys on channel
//! `nanasqlite`: `{"pid": <writer's server process>, "table": "<name>", "keys": [...]}`, or
//! `"all": true` when the keys would not fit the 8,000 bytes a notice may carry (a large batch,
//! a `TRUNCATE`). PostgreSQL delivers notices when the transaction commits, never for one rolled
//! back. Every open store listens on a connection of its own and drops the keys from its
//! caches, ignoring the notices of its own writer. Writes by other programs are announced too,
//! as long as they go through the tables (the triggers fire for any client).
//!
//! The staleness bound is [`STALENESS`]: a notice normally arrives within milliseconds of the
//! commit. When the listening connection is lost (a server restart, a network cut), the notices
//! sent meanwhile are lost too, so every cache is emptied at once, and again once the listener
//! has reconnected (it retries every second).
//!
//! # Connections lost
//!
//! A statement outside a transaction (a read) that finds its connection lost runs once more on
//! a new one. A write's transaction that loses its connection fails with [`Error::Backend`]
//! (nothing of it is kept, unless the commit itself had reached the server: the usual
//! uncertainty of a commit whose answer is lost); the next call reconnects. Nothing acknowledged
//! is lost.

mod listen;
mod session;
mod sql;

use std::fmt;
use std::fmt::Write as _;
use std::ops::Bound;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row};

use self::session::{Session, bytes_literal, text_literal};

use super::{Duplicate, End, KeyRange, OpenReader, ScannedRow, Storage, Stored, StoredRef, Watch};
use crate::error::{Error, Result};
use crate::identifier::Identifier;
use crate::sql::SqlConnection;

pub use crate::store::postgres::PostgresBuilder;
pub use listen::{SILENT_CUT, STALENESS};

/// The `postgres` client's keepalive idle time when the URL sets none (two hours, the OS's).
const DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// How to reach the server: a connection URL (`postgres://user:password@host:port/db`) or
/// key=value string, as the `postgres` crate takes it, and optionally a TLS connector.
///
/// Without [`tls`](Self::tls), connections are plain (`NoTls`): fine on a trusted network or a
/// local socket. For TLS, pass the connector of the TLS crate you already use (the
/// `postgres-native-tls`, `postgres-openssl` or `tokio-postgres-rustls` crates make one), so
/// that this crate does not choose a TLS stack for you; the URL's `sslmode` then applies.
#[derive(Clone)]
pub struct PostgresConfig {
    config: postgres::Config,
    shown: Arc<str>,
    connector: Connector,
}

/// A TLS connector of the `postgres` crate's kind (`MakeTlsConnect`, as the
/// `postgres-native-tls`, `postgres-openssl` and `tokio-postgres-rustls` crates make), with what
/// the store's threads need of it; every such connector is one.
pub trait TlsConnector:
    postgres::tls::MakeTlsConnect<
        postgres::Socket,
        TlsConnect: postgres::tls::TlsConnect<postgres::Socket, Future: Send> + Send,
        Stream: Send,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> TlsConnector for T where
    T: postgres::tls::MakeTlsConnect<
            postgres::Socket,
            TlsConnect: postgres::tls::TlsConnect<postgres::Socket, Future: Send> + Send,
            Stream: Send,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Opens a client for a config: with `NoTls`, or with the caller's TLS connector.
type Connector = Arc<dyn Fn(&postgres::Config) -> std::result::Result<Client, postgres::Error> + Send + Sync>;

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresConfig").field(&self.shown).finish()
    }
}

impl PostgresConfig {
    /// The server at `url`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a URL the client cannot read.
    pub fn new(url: &str) -> Result<Self> {
        let mut config: postgres::Config =
            url.parse().map_err(|error| Error::validation(format!("invalid PostgreSQL URL: {error}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        // A connection the network cut silently fails within seconds instead of hours: data
        // left unacknowledged for `UNANSWERED` gives it up, and keepalive probes after a second
        // of quiet find a dead peer (unless the URL says otherwise).
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(listen::UNANSWERED);
        }
        config.keepalives(true);
        if config.get_keepalives_idle() == DEFAULT_KEEPALIVE_IDLE {
            config.keepalives_idle(Duration::from_secs(1));
            config.keepalives_interval(Duration::from_secs(1));
            config.keepalives_retries(2);
        }
        let shown = redacted(&config);
        let connector: Connector = Arc::new(|config: &postgres::Config| config.connect(NoTls));
        Ok(Self { config, shown: shown.into(), connector })
    }

    /// Connects through `tls`, a TLS connector of the `postgres` crate's kind, instead of in
    /// plain text.
    ///
    /// # Examples
    ///
    /// ```
    /// use nanasqlite_core::storage::PostgresConfig;
    ///
    /// // Any `MakeTlsConnect` connector; `NoTls` stands in for a real one here.
    /// let config = PostgresConfig::new("postgres://app:secret@db.internal/app?sslmode=require")?.tls(postgres::NoTls);
    /// assert_eq!(config.shown(), "postgres://app@db.internal:5432/app", "the password is never shown");
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    #[must_use]
    pub fn tls(mut self, tls: impl TlsConnector) -> Self {
        self.connector = Arc::new(move |config: &postgres::Config| config.connect(tls.clone()));
        self
    }

    /// The server, without the password: how the store names its "path".
    #[must_use]
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn connect(&self, application: &str) -> Result<Client> {
        let mut config = self.config.clone();
        if config.get_application_name().is_none() {
            config.application_name(application);
        }
        (self.connector)(&config).map_err(backend)
    }
}

/// `postgres://user@host:port/db`, the password left out.
fn redacted(config: &postgres::Config) -> String {
    let host = config.get_hosts().first().map_or_else(String::new, |host| match host {
        postgres::config::Host::Tcp(name) => name.clone(),
        postgres::config::Host::Unix(path) => path.display().to_string(),
    });
    let port = config.get_ports().first().map(|port| format!(":{port}")).unwrap_or_default();
    let user = config.get_user().map(|user| format!("{user}@")).unwrap_or_default();
    let db = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{host}{port}/{db}")
}

/// A PostgreSQL error as the store's [`Error::Backend`], with the server's SQLSTATE code.
pub(crate) fn backend(error: postgres::Error) -> Error {
    if let Some(db) = error.as_db_error().filter(|db| db.code().code() == REFUSED) {
        return Error::Refused {
            key: db.message().to_owned(),
            by: db.detail().unwrap_or(crate::hook::UNIQUE_RULE).to_owned(),
        };
    }
    let code = error.code().map(|code| code.code().to_owned());
    let message = match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None if error.is_closed() => format!("the connection to the server was lost ({error})"),
        None => error.to_string(),
    };
    Error::Backend { backend: "postgres", message, code, source: Some(Arc::new(error)) }
}

/// The SQLSTATE of a unique check's refusal raised by the server (`nanasqlite_refuse`).
const REFUSED: &str = "NSQ01";

/// One connection to a PostgreSQL database, with the key/value tables on it.
pub struct PostgresStorage {
    session: Session,
    config: PostgresConfig,
    /// The server process of this connection when it was opened (it changes when the session
    /// reconnects).
    pid: i32,
    /// The store's token, which the notices of its own writes carry (see `Session`).
    origin: Arc<str>,
    last_insert: std::cell::Cell<i64>,
}

impl fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStorage").field("server", &self.config.shown).field("pid", &self.pid).finish()
    }
}

/// The statements of one key/value table, built once.
#[derive(Clone, Debug)]
pub struct PostgresTable {
    sql: Arc<TableSql>,
}

#[derive(Debug)]
struct TableSql {
    name: Identifier,
    quoted: String,
    get: String,
    get_many: String,
    contains: String,
    put_many: String,
    delete: String,
    delete_many: String,
    count: String,
    keys: String,
    first_key: String,
    scan: String,
    clear: String,
    lock_key: String,
}

impl TableSql {
    fn new(name: &Identifier) -> Self {
        let t = name.quoted();
        let upsert = "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, value_bytes = EXCLUDED.value_bytes";
        Self {
            get: format!("SELECT value, value_bytes FROM {t} WHERE key = $1"),
            get_many: format!("SELECT key, value, value_bytes FROM {t} WHERE key = ANY($1)"),
            contains: format!("SELECT 1 FROM {t} WHERE key = $1"),
            put_many: format!(
                "INSERT INTO {t} (key, value, value_bytes) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) {upsert}"
            ),
            delete: format!("DELETE FROM {t} WHERE key = $1"),
            delete_many: format!("DELETE FROM {t} WHERE key = ANY($1)"),
            count: format!("SELECT count(*) FROM {t}"),
            keys: format!("SELECT key FROM {t} ORDER BY key"),
            first_key: format!("SELECT key FROM {t} ORDER BY key LIMIT 1"),
            scan: format!("SELECT key, value, value_bytes FROM {t}"),
            clear: format!("DELETE FROM {t}"),
            // One lock per (table, key) for the rest of the transaction: increments and patches of
            // one key from several clients wait for each other, even while the row is absent.
            lock_key: "SELECT pg_advisory_xact_lock(hashtextextended($1 || '.' || $2, 0))".to_owned(),
            quoted: t,
            name: name.clone(),
        }
    }
}

/// The longest name PostgreSQL keeps whole: it cuts longer ones to this many bytes, so two
/// names sharing their first 63 bytes would name one thing.
pub const MAX_NAME_BYTES: usize = 63;

/// `name` as a name PostgreSQL keeps whole: as it is when it fits, otherwise its first bytes
/// and a hash of the whole (FNV-1a, stable across builds), so that long names stay apart.
fn fitted_name(name: &str) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name.to_owned();
    }
    let hash = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    let mut kept = MAX_NAME_BYTES - 17;
    while !name.is_char_boundary(kept) {
        kept -= 1;
    }
    format!("{}_{hash:016x}", &name[..kept])
}

/// `name`, refused unless PostgreSQL can hold it whole as a table name.
fn whole_table_name(name: &Identifier) -> Result<()> {
    let bytes = name.as_str().len();
    if bytes > MAX_NAME_BYTES {
        return Err(Error::validation(format!(
            "PostgreSQL keeps names of at most {MAX_NAME_BYTES} bytes, and cuts longer ones (so that two long names \
             sharing a prefix would share one table): table name {:?} has {bytes}",
            name.as_str()
        )));
    }
    Ok(())
}

/// A JSON path of plain names (`$.address.city`) as a PostgreSQL text-array literal
/// (`'{"address","city"}'`), for `#>`.
fn text_array_path(path: &str) -> Result<String> {
    let parts: Vec<&str> = path.strip_prefix("$.").unwrap_or(path).split('.').collect();
    if parts.iter().any(|part| part.is_empty() || !part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
        return Err(Error::validation(format!("a field path of plain names is expected, not {path:?}")));
    }
    Ok(format!("'{{{}}}'", parts.iter().map(|part| format!("\"{part}\"")).collect::<Vec<_>>().join(",")))
}

/// A fresh token naming one open store in its notices: 32 hex digits from the OS's randomness.
fn origin_token() -> Result<Arc<str>> {
    let mut bytes = [0_u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|error| Error::Io(std::io::Error::other(error.to_string())))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>().into())
}

/// The stored value of a row's `value` and `value_bytes`.
fn stored(row: &Row, first: usize) -> Result<Stored> {
    let text: Option<String> = row.try_get(first).map_err(backend)?;
    let bytes: Option<Vec<u8>> = row.try_get(first + 1).map_err(backend)?;
    Ok(match (text, bytes) {
        (Some(text), _) => Stored::Text(text.into_bytes()),
        (None, Some(bytes)) => Stored::Blob(bytes),
        (None, None) => Stored::Text(b"null".to_vec()),
    })
}

/// A value as the two columns it is stored in.
fn columns(value: StoredRef<'_>) -> Result<(Option<&str>, Option<&[u8]>)> {
    match value {
        StoredRef::Text(bytes) => std::str::from_utf8(bytes)
            .map_err(|_| Error::validation("PostgreSQL stores text as UTF-8; this value is not"))
            .and_then(storable)
            .map(|text| (Some(text), None)),
        StoredRef::Blob(bytes) => Ok((None, Some(bytes))),
    }
}

/// `text`, if PostgreSQL's text can hold it: everything but the NUL character.
fn storable(text: &str) -> Result<&str> {
    if text.contains('\0') {
        Err(Error::validation("PostgreSQL text cannot hold the NUL character (\\0), in a key or a value"))
    } else {
        Ok(text)
    }
}

/// Whether `key` could be stored at all (a key holding NUL cannot, so it is absent).
fn may_exist(key: &str) -> bool {
    !key.contains('\0')
}

impl PostgresStorage {
    /// Connects to the server `config` names, for reading and writing.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the server cannot be reached or refuses the connection.
    pub fn connect(config: &PostgresConfig) -> Result<Self> {
        Self::open(config, false, origin_token()?)
    }

    fn open(config: &PostgresConfig, reader: bool, origin: Arc<str>) -> Result<Self> {
        let application = if reader { "nanasqlite-reader" } else { "nanasqlite" };
        let session = Session::connect(config, application, reader, Arc::clone(&origin))?;
        let pid: i32 = session.query("SELECT pg_backend_pid()", &[])?[0].get(0);
        Ok(Self { session, config: config.clone(), pid, origin, last_insert: 0.into() })
    }

    /// The server process of this connection.
    #[must_use]
    pub fn pid(&self) -> i32 {
        self.pid
    }

    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.session.query(sql, params)
    }

    /// As [`query`](Self::query), for a query of the caller's that must not write.
    fn query_read_only(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.session.read_only(|| self.session.query(sql, params))
    }

    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.session.execute(sql, params)
    }

    fn batch(&self, sql: &str) -> Result<()> {
        self.session.batch(sql)
    }

    /// Begins a write transaction (the first half of [`Storage::transaction`], which
    /// [`end_write`](Self::end_write) ends); a lost connection fails the whole of it.
    pub(crate) fn begin_write(&self) -> Result<()> {
        if self.session.in_transaction() {
            return Err(Error::Transaction { message: "a transaction is already open on this connection".to_owned() });
        }
        self.session.begin("BEGIN");
        Ok(())
    }

    /// Ends the transaction [`begin_write`](Self::begin_write) began, as the work run in it
    /// says (a panic of the work rolls back and goes on).
    pub(crate) fn end_write<R>(&self, outcome: std::thread::Result<(R, End)>) -> Result<R> {
        match outcome {
            Ok((result, End::Commit)) => self.session.commit().map(|()| result),
            Ok((result, End::Rollback)) => self.session.rollback().map(|()| result),
            Err(payload) => {
                let _ = self.session.rollback();
                panic::resume_unwind(payload)
            }
        }
    }

    /// Creates the table and its triggers, or checks an existing one, under a lock so that two
    /// clients opening it at once do not collide. An existing table whose triggers or trigger
    /// function are not this version's (a table made by an older version, or whose triggers
    /// PostgreSQL's cut names made collide) gets them again.
    fn create_or_check(&self, sql: &TableSql) -> Result<()> {
        whole_table_name(&sql.name)?;
        let t = &sql.quoted;
        let name = sql.name.as_str();
        let columns: Vec<String> = self
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                &[&name],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if !columns.is_empty() && columns != ["key", "value", "value_bytes"] {
            return Err(Error::Schema {
                table: name.to_owned(),
                message: format!("found columns {columns:?}; a key/value table has key, value and value_bytes"),
            });
        }
        if !columns.is_empty() && self.triggers_current(t)? {
            return Ok(());
        }
        let script = format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock(hashtextextended('nanasqlite.create', 0));
             CREATE TABLE IF NOT EXISTS {t} (key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT, value_bytes BYTEA);
             {functions}
             {triggers}
             COMMIT;",
            functions = listen::FUNCTION,
            triggers = listen::triggers(t),
        );
        self.batch(&script).inspect_err(|_| {
            let _ = self.batch("ROLLBACK");
        })
    }

    /// Whether table `quoted` has exactly this version's four triggers and trigger function.
    fn triggers_current(&self, quoted: &str) -> Result<bool> {
        let rows = self.query(
            "SELECT t.tgname::text, position($2 in p.prosrc) > 0 FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid \
             WHERE t.tgrelid = $1::text::regclass AND p.proname = 'nanasqlite_changed' AND NOT t.tgisinternal \
             ORDER BY 1",
            &[&quoted, &listen::VERSION],
        )?;
        let mut found: Vec<(String, bool)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        found.sort();
        let wanted = listen::TRIGGER_NAMES;
        Ok(found.len() == wanted.len()
            && found.iter().zip(wanted).all(|((name, current), wanted)| name == wanted && *current))
    }

    fn key_rows(rows: &[Row]) -> Vec<String> {
        rows.iter().map(|row| row.get(0)).collect()
    }
}

impl Storage for PostgresStorage {
    type Table = PostgresTable;

    fn runs_on_callers(&self) -> bool {
        false
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn open_table(&self, name: &Identifier) -> Result<PostgresTable> {
        let sql = TableSql::new(name);
        self.create_or_check(&sql)?;
        Ok(PostgresTable { sql: Arc::new(sql) })
    }

    fn key_value_tables(&self) -> Result<Vec<Identifier>> {
        let rows = self.query(
            "SELECT table_name::text FROM information_schema.columns WHERE table_schema = current_schema() \
             GROUP BY table_name HAVING array_agg(column_name::text ORDER BY ordinal_position) = \
             ARRAY['key', 'value', 'value_bytes'] ORDER BY table_name",
            &[],
        )?;
        Ok(Self::key_rows(&rows).iter().filter_map(|name| Identifier::new(name).ok()).collect())
    }

    fn get(&self, table: &PostgresTable, key: &str) -> Result<Option<Stored>> {
        if !may_exist(key) {
            return Ok(None);
        }
        self.query(&table.sql.get, &[&key])?.first().map(|row| stored(row, 0)).transpose()
    }

    fn get_for_update(&self, table: &PostgresTable, key: &str) -> Result<Option<Stored>> {
        storable(key)?;
        self.query(&table.sql.lock_key, &[&table.sql.name.as_str(), &key])?;
        self.get(table, key)
    }

    fn get_many(&self, table: &PostgresTable, keys: &[&str], found: &mut dyn FnMut(&str, StoredRef<'_>)) -> Result<()> {
        let keys: Vec<&str> = keys.iter().copied().filter(|key| may_exist(key)).collect();
        for row in self.query(&table.sql.get_many, &[&keys])? {
            let key: String = row.try_get(0).map_err(backend)?;
            found(&key, stored(&row, 1)?.as_ref());
        }
        Ok(())
    }

    fn contains(&self, table: &PostgresTable, key: &str) -> Result<bool> {
        if !may_exist(key) {
            return Ok(false);
        }
        Ok(!self.query(&table.sql.contains, &[&key])?.is_empty())
    }

    fn put(&self, table: &PostgresTable, key: &str, value: StoredRef<'_>) -> Result<()> {
        let (key, (text, bytes)) = (storable(key)?, columns(value)?);
        // Held, to go with the commit: one round trip for a write, or a group of them.
        self.session.hold(|sql| {
            let _ = write!(sql, "INSERT INTO {} (key, value, value_bytes) VALUES (", table.sql.quoted);
            text_literal(sql, key);
            sql.push_str(", ");
            match (text, bytes) {
                (Some(text), _) => text_literal(sql, text),
                (None, Some(bytes)) => {
                    sql.push_str("NULL, ");
                    bytes_literal(sql, bytes);
                }
                (None, None) => sql.push_str("NULL, NULL"),
            }
            if text.is_some() {
                sql.push_str(", NULL");
            }
            sql.push_str(
                ") ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, value_bytes = EXCLUDED.value_bytes;",
            );
        })
    }

    fn put_many(&self, table: &PostgresTable, rows: &mut dyn Iterator<Item = (&str, StoredRef<'_>)>) -> Result<()> {
        // One statement for the batch; the last write of a key wins, as row by row.
        let mut latest: Vec<(&str, StoredRef<'_>)> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for (key, value) in rows {
            match index.get(key) {
                Some(&at) => latest[at] = (key, value),
                None => {
                    index.insert(key, latest.len());
                    latest.push((key, value));
                }
            }
        }
        let mut keys = Vec::with_capacity(latest.len());
        let (mut texts, mut blobs) = (Vec::with_capacity(latest.len()), Vec::with_capacity(latest.len()));
        for (key, value) in latest {
            let (text, bytes) = columns(value)?;
            keys.push(storable(key)?);
            texts.push(text);
            blobs.push(bytes);
        }
        self.execute(&table.sql.put_many, &[&keys, &texts, &blobs]).map(drop)
    }

    fn delete(&self, table: &PostgresTable, key: &str) -> Result<bool> {
        if !may_exist(key) {
            return Ok(false);
        }
        Ok(self.execute(&table.sql.delete, &[&key])? > 0)
    }

    fn delete_many(&self, table: &PostgresTable, keys: &[&str]) -> Result<usize> {
        let keys: Vec<&str> = keys.iter().copied().filter(|key| may_exist(key)).collect();
        Ok(usize::try_from(self.execute(&table.sql.delete_many, &[&keys])?).unwrap_or(usize::MAX))
    }

    fn count(&self, table: &PostgresTable) -> Result<u64> {
        let count: i64 = self.query(&table.sql.count, &[])?.first().map_or(0, |row| row.get(0));
        Ok(u64::try_from(count).unwrap_or_default())
    }

    fn keys(&self, table: &PostgresTable) -> Result<Vec<String>> {
        Ok(Self::key_rows(&self.query(&table.sql.keys, &[])?))
    }

    fn first_key(&self, table: &PostgresTable) -> Result<Option<String>> {
        Ok(Self::key_rows(&self.query(&table.sql.first_key, &[])?).pop())
    }

    /// An expression index on the field (through `nanasqlite_json`, which reads a value that
    /// is not JSON as `NULL`), named after the table and field, cut to a name PostgreSQL keeps
    /// whole.
    fn index_field(&self, table: &PostgresTable, field: &str, path: &str) -> Result<bool> {
        let index = fitted_name(&format!("{}_by_{field}", table.sql.name.as_str()));
        let script = format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock(hashtextextended('nanasqlite.create', 0));
             {json}
             {refuse}
             CREATE INDEX IF NOT EXISTS \"{index}\" ON {t} ((nanasqlite_json(value) #> {path}));
             COMMIT;",
            json = listen::JSON_FUNCTION,
            refuse = listen::REFUSE_FUNCTION,
            t = table.sql.quoted,
            path = text_array_path(path)?,
        );
        self.batch(&script).inspect_err(|_| {
            let _ = self.batch("ROLLBACK");
        })?;
        Ok(true)
    }

    /// Sent with the lock the unique check holds just before ([`lock_field_value`]), in one
    /// message: one round trip for the lock and the lookup. The lookup is a statement of its
    /// own, so at READ COMMITTED it sees what the lock waited for.
    ///
    /// [`lock_field_value`]: Storage::lock_field_value
    fn keys_where(&self, table: &PostgresTable, path: &str, json: &str) -> Result<Vec<String>> {
        // The expression of the index, spelled the same, so that the lookup uses it; jsonb
        // compares numbers by value, as the check does.
        let mut sql = format!(
            "SELECT key FROM {} WHERE (nanasqlite_json(value) #> {}) = ",
            table.sql.quoted,
            text_array_path(path)?
        );
        text_literal(&mut sql, storable(json)?);
        sql.push_str("::jsonb");
        let rows = self.session.query_with_held(&sql)?;
        Ok(rows.into_iter().filter_map(|row| row.into_iter().next().flatten()).collect())
    }

    /// Held back to go with the write and its `COMMIT` in one message: a statement that raises
    /// the refusal (`nanasqlite_refuse`, SQLSTATE `NSQ01`, mapped back to
    /// [`Error::Refused`]) if the index finds another key with the value, so that the check
    /// costs no round trip of its own. The advisory lock held before it
    /// ([`lock_field_value`](Storage::lock_field_value)) makes a second writer of the value
    /// wait, and its statement, run after the lock is granted, sees the first one's commit.
    fn refuse_duplicate_at_commit(&self, table: &PostgresTable, duplicate: &Duplicate<'_>) -> Result<bool> {
        let path = text_array_path(duplicate.path)?;
        let (key, json, by) = (storable(duplicate.key)?, storable(duplicate.json)?, storable(duplicate.by)?);
        let prefix = duplicate.prefix.map(storable).transpose()?;
        self.session.hold(|sql| {
            sql.push_str("SELECT nanasqlite_refuse(");
            text_literal(sql, key);
            sql.push_str(", ");
            text_literal(sql, by);
            sql.push_str(&format!(") FROM {} WHERE (nanasqlite_json(value) #> {path}) = ", table.sql.quoted));
            text_literal(sql, json);
            sql.push_str("::jsonb AND key <> ");
            text_literal(sql, key);
            if let Some(prefix) = prefix {
                sql.push_str(" AND starts_with(key, ");
                text_literal(sql, prefix);
                sql.push(')');
            }
            sql.push_str(" LIMIT 1;");
        })?;
        Ok(true)
    }

    /// A transaction-scoped advisory lock on (table, path, value), held back to go with the
    /// lookup ([`keys_where`](Storage::keys_where)): two clients writing one value wait for
    /// each other, and the second looks it up once the first has committed.
    fn lock_field_value(&self, table: &PostgresTable, path: &str, value: &str) -> Result<()> {
        let lock = format!("nanasqlite.unique.{}.{path}.{value}", table.sql.name.as_str());
        let lock = storable(&lock)?.to_owned();
        self.session.hold(|sql| {
            sql.push_str("SELECT pg_advisory_xact_lock(hashtextextended(");
            text_literal(sql, &lock);
            sql.push_str(", 0));");
        })
    }

    fn scan_page(
        &self,
        table: &PostgresTable,
        range: &KeyRange<'_>,
        visit: &mut dyn FnMut(ScannedRow<'_>),
    ) -> Result<()> {
        let mut conditions: Vec<(&str, String)> = Vec::new();
        match range.lower {
            Bound::Included(key) => conditions.push((">=", key.to_owned())),
            Bound::Excluded(key) => conditions.push((">", key.to_owned())),
            Bound::Unbounded => {}
        }
        match range.upper {
            Bound::Included(key) => conditions.push(("<=", key.to_owned())),
            Bound::Excluded(key) => conditions.push(("<", key.to_owned())),
            Bound::Unbounded => {}
        }
        if let Some(after) = range.after {
            let op = if range.descending { "<" } else { ">" };
            conditions.push((op, String::from_utf8_lossy(after).into_owned()));
        }
        let filter: Vec<String> =
            conditions.iter().enumerate().map(|(i, (op, _))| format!("key {op} ${}", i + 1)).collect();
        let filter = if filter.is_empty() { String::new() } else { format!(" WHERE {}", filter.join(" AND ")) };
        let params: Vec<&(dyn ToSql + Sync)> = conditions.iter().map(|(_, key)| key as &(dyn ToSql + Sync)).collect();
        let order = if range.descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT key, value, value_bytes FROM {}{filter} ORDER BY key {order} LIMIT {}",
            table.sql.quoted, range.limit
        );
        for row in self.query(&sql, &params)? {
            let key: String = row.try_get(0).map_err(backend)?;
            let value = stored(&row, 1)?;
            visit(ScannedRow { raw_key: key.as_bytes(), key: Some(&key), value: value.as_ref() });
        }
        Ok(())
    }

    fn scan(&self, table: &PostgresTable, visit: &mut dyn FnMut(&str, StoredRef<'_>)) -> Result<()> {
        for row in self.query(&table.sql.scan, &[])? {
            let key: String = row.try_get(0).map_err(backend)?;
            visit(&key, stored(&row, 1)?.as_ref());
        }
        Ok(())
    }

    fn clear(&self, table: &PostgresTable) -> Result<usize> {
        Ok(usize::try_from(self.execute(&table.sql.clear, &[])?).unwrap_or(usize::MAX))
    }

    fn transaction<R>(&mut self, work: impl FnOnce(&mut Self) -> (R, End)) -> Result<R> {
        self.begin_write()?;
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| work(self)));
        self.end_write(outcome)
    }

    /// Each read is one statement, which sees one snapshot of its own; the reads of a group
    /// are independent callers' and need no common one, so no transaction is opened for them
    /// (it would cost two round trips).
    fn read_snapshot<R>(&mut self, work: impl FnOnce(&mut Self) -> R) -> Result<R> {
        Ok(work(self))
    }

    fn readers(&self) -> Option<OpenReader<Self>> {
        let (config, origin) = (self.config.clone(), Arc::clone(&self.origin));
        Some(Arc::new(move || Self::open(&config, true, Arc::clone(&origin))))
    }

    fn watch(&self, changed: super::OnChange) -> Result<Option<Watch>> {
        listen::start(&self.config, Arc::clone(&self.origin), changed).map(Some)
    }

    fn sql(&self) -> Result<&dyn SqlConnection> {
        Ok(self)
    }

    fn size(&self) -> Result<u64> {
        let size: i64 = self.query("SELECT pg_database_size(current_database())", &[])?[0].get(0);
        Ok(u64::try_from(size).unwrap_or_default())
    }

    fn close(self) -> Result<()> {
        self.session.into_client().close().map_err(backend)
    }
}
