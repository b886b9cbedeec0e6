//! Storage backends: the few operations the key/value store needs from a database.
//!
//! A backend stores, per table, rows of `(key, stored value)`. It knows nothing of caching,
//! serde or locking: the engine above it owns those. [`SqliteStorage`] is the backend of this
//! crate; [`conformance`] checks any backend against the behaviour the stores rely on.
//!
//! Transactions are opened by the engine, never by a backend method on its own: every method
//! below runs inside whatever transaction (or read snapshot) the engine has opened with
//! [`Storage::transaction`] or [`Storage::read_snapshot`], or in autocommit mode outside one.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::identifier::Identifier;
use crate::sql::SqlConnection;

mod any;
pub mod conformance;
#[cfg(feature = "postgres")]
pub mod postgres;
mod sqlite;

pub use any::{AnyStorage, AnyTable};
#[cfg(feature = "postgres")]
pub use postgres::{
    MAX_NAME_BYTES, PostgresBuilder, PostgresConfig, PostgresStorage, PostgresTable, SILENT_CUT, STALENESS,
    TlsConnector,
};
pub use sqlite::{ConnectionOptions, SqliteStorage, SqliteTable};

/// What another client changed, as a backend that can tell reports it ([`Storage::watch`]).
#[derive(Clone, Copy, Debug)]
pub enum Changed<'a> {
    /// These keys of `table`.
    Keys {
        /// The table.
        table: &'a str,
        /// Its changed keys.
        keys: &'a [String],
    },
    /// Any row of this table.
    Table(&'a str),
    /// Anything: what changed may have been missed.
    All,
}

/// Hears what other clients changed, on a thread of the backend's.
pub type OnChange = Arc<dyn Fn(Changed<'_>) + Send + Sync>;

/// Keeps a backend's watch for other clients' writes running; dropping it stops the watch.
pub type Watch = Box<dyn std::any::Any + Send + Sync>;

/// A stored value, as the backend holds it: text (JSON, normally) or bytes (an encrypted
/// value). Text is handed on as stored, so text another tool wrote as invalid UTF-8 reaches the
/// codec, which reports it for its key alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// A text value (SQLite `TEXT`, or a number or `NULL` another tool wrote, as its JSON text).
    Text(Vec<u8>),
    /// A binary value (SQLite `BLOB`).
    Blob(Vec<u8>),
}

impl Stored {
    /// The value borrowed.
    #[must_use]
    pub fn as_ref(&self) -> StoredRef<'_> {
        match self {
            Self::Text(bytes) => StoredRef::Text(bytes),
            Self::Blob(bytes) => StoredRef::Blob(bytes),
        }
    }
}

/// A stored value, borrowed: what a backend is handed to write, and what a scan visits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredRef<'a> {
    /// A text value.
    Text(&'a [u8]),
    /// A binary value.
    Blob(&'a [u8]),
}

impl StoredRef<'_> {
    /// The value owned.
    #[must_use]
    pub fn to_owned(self) -> Stored {
        match self {
            Self::Text(bytes) => Stored::Text(bytes.to_vec()),
            Self::Blob(bytes) => Stored::Blob(bytes.to_vec()),
        }
    }
}

/// How a write transaction ends: the work run inside it decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Make the transaction's writes durable.
    Commit,
    /// Undo them.
    Rollback,
}

/// Opens another connection to the same database, read-only, for a reader thread.
pub type OpenReader<S> = Arc<dyn Fn() -> Result<S> + Send + Sync>;

/// One connection to a key/value database.
///
/// All methods act on one connection from one thread at a time (`&mut self` for the ones that
/// must not interleave with others); the stores serialise access.
pub trait Storage: Send + 'static {
    /// A prepared handle on one key/value table.
    type Table: Clone + Debug + Send + Sync + 'static;

    /// Whether a point read may run on the caller's thread, which may be an async runtime's:
    /// `false` for a backend whose client runs an async runtime of its own inside its calls.
    /// Default `true`.
    fn runs_on_callers(&self) -> bool {
        true
    }

    /// A short name of the backend (`"sqlite"`), for error messages.
    fn backend(&self) -> &'static str;

    /// Creates the table if needed, checks that an existing one has the layout the store
    /// needs, and returns its handle.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] for a table of another layout; the backend's error when the table
    /// cannot be created.
    fn open_table(&self, name: &Identifier) -> Result<Self::Table>;

    /// The tables of the database that have the key/value layout (the ones `open_table`
    /// accepts), for operations on every table of a file such as re-encryption.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] by default; the backend's error.
    fn key_value_tables(&self) -> Result<Vec<Identifier>> {
        Err(self.unsupported("key_value_tables"))
    }

    /// The stored value of `key`.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn get(&self, table: &Self::Table, key: &str) -> Result<Option<Stored>>;

    /// As [`get`](Self::get), inside a write transaction, locking `key` (present or not) until
    /// the transaction ends, so that a read-modify-write of it (`increment`, `patch`) by
    /// another client waits instead of losing an update. The default is `get`, for backends
    /// whose write transactions are serialised anyway (SQLite).
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn get_for_update(&self, table: &Self::Table, key: &str) -> Result<Option<Stored>> {
        self.get(table, key)
    }

    /// Calls `found` with each of `keys` that exists, and its stored value (in no set order).
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn get_many(&self, table: &Self::Table, keys: &[&str], found: &mut dyn FnMut(&str, StoredRef<'_>)) -> Result<()>;

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
    fn put(&self, table: &Self::Table, key: &str, value: StoredRef<'_>) -> Result<()>;

    /// Inserts or replaces each row, in order. Atomic only inside a transaction.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn put_many(&self, table: &Self::Table, rows: &mut dyn Iterator<Item = (&str, StoredRef<'_>)>) -> Result<()>;

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

    /// Every key, sorted by byte order. Keys that are not valid UTF-8 (written by another
    /// tool) are left out: they cannot be named by a caller.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn keys(&self, table: &Self::Table) -> Result<Vec<String>>;

    /// The first key of `table` in key order (as [`keys`](Self::keys) sorts them), if any.
    /// The default reads every key; a backend with ordered keys should stop at the first.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn first_key(&self, table: &Self::Table) -> Result<Option<String>> {
        Ok(self.keys(table)?.into_iter().next())
    }

    /// The JSON text of the element at `path` (a JSON path such as `$.a[0]`) of `key`'s stored
    /// value: `None` when the key or the path is absent. Backends that store JSON where the
    /// database can read it offer this; the default says it is unsupported.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] by default; the backend's error (a malformed path or value).
    fn get_path(&self, table: &Self::Table, key: &str, path: &str) -> Result<Option<Stored>> {
        let _ = (table, key, path);
        Err(self.unsupported("get_path"))
    }

    /// Prepares fast lookups of rows by the JSON element at `path` (such as `$.email`) of their
    /// value, for [`keys_where`](Self::keys_where): an index named after `field` (a plain
    /// name). `false` when the backend cannot (the default), and the engine then reads every
    /// row instead.
    ///
    /// # Errors
    ///
    /// The backend's error; [`Error::Validation`] for a path or field it refuses.
    fn index_field(&self, table: &Self::Table, field: &str, path: &str) -> Result<bool> {
        let _ = (table, field, path);
        Ok(false)
    }

    /// The keys whose stored JSON value has, at `path`, an element equal to `json` (JSON
    /// text), found through the index of [`index_field`](Self::index_field). It may return more
    /// keys than match exactly (numbers and booleans compare loosely); the caller checks each.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] by default; the backend's error.
    fn keys_where(&self, table: &Self::Table, path: &str, json: &str) -> Result<Vec<String>> {
        let _ = (table, path, json);
        Err(self.unsupported("keys_where"))
    }

    /// Makes the transactions that write `value` (a scalar's canonical text: numbers by value)
    /// at `path` of this table wait for each other until each ends: the lock a unique check
    /// takes before it looks the value up, so that two writers of one value cannot both find it
    /// absent. The default does nothing, for a backend whose write transaction already keeps
    /// every other writer out (SQLite's `BEGIN IMMEDIATE`).
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn lock_field_value(&self, table: &Self::Table, path: &str, value: &str) -> Result<()> {
        let _ = (table, path, value);
        Ok(())
    }

    /// Refuses the write of `key`, when its transaction commits, if another key (starting with
    /// `prefix`, when one is given) holds `json` (JSON text) at `path`: the unique check made
    /// by the server in the write's own message, instead of a lookup before the write (one
    /// round trip instead of two). The refusal is [`Error::Refused`]
    /// naming `key` and `by`. `false` when the backend does not check so (the default); the
    /// caller then looks the value up itself ([`keys_where`](Self::keys_where)).
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn refuse_duplicate_at_commit(&self, table: &Self::Table, duplicate: &Duplicate<'_>) -> Result<bool> {
        let _ = (table, duplicate);
        Ok(false)
    }

    /// Visits one page of `range` in key order: each row's key as stored (bytes, for the next
    /// page's cursor), the key as text when it is valid UTF-8, and the value. Backends with
    /// ordered keys offer this; the default says it is unsupported.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] by default; the backend's error.
    fn scan_page(
        &self,
        table: &Self::Table,
        range: &KeyRange<'_>,
        visit: &mut dyn FnMut(ScannedRow<'_>),
    ) -> Result<()> {
        let _ = (table, range, visit);
        Err(self.unsupported("scan_page"))
    }

    /// Calls `visit` with every row whose key is valid UTF-8, in key order.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn scan(&self, table: &Self::Table, visit: &mut dyn FnMut(&str, StoredRef<'_>)) -> Result<()>;

    /// How many keys of the table are not valid UTF-8 (left out of [`keys`](Self::keys) and
    /// [`scan`](Self::scan)).
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn unreadable_keys(&self, table: &Self::Table) -> Result<u64> {
        let _ = table;
        Ok(0)
    }

    /// Gives every row whose key is not valid UTF-8 text (a number, a blob, or bytes that are
    /// not UTF-8, as another tool may store them: rows the stores cannot name) the value
    /// `rewrite` makes of its stored value, leaving its key exactly as it is; how many rows it
    /// rewrote. A key rotation re-seals those rows with the rest. The default does nothing, for
    /// a backend whose keys are always text.
    ///
    /// # Errors
    ///
    /// `rewrite`'s error (stopping at the first), or the backend's.
    fn rewrite_unnamed(
        &self,
        table: &Self::Table,
        rewrite: &mut dyn FnMut(StoredRef<'_>) -> Result<Stored>,
    ) -> Result<u64> {
        let _ = (table, rewrite);
        Ok(0)
    }

    /// Deletes every row; returns how many there were.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn clear(&self, table: &Self::Table) -> Result<usize>;

    /// Runs `work` in one write transaction, which `work` ends: committed on [`End::Commit`],
    /// rolled back on [`End::Rollback`] or if it panics (the panic then continues).
    ///
    /// # Errors
    ///
    /// The backend's error when the transaction cannot begin or commit (then rolled back).
    fn transaction<R>(&mut self, work: impl FnOnce(&mut Self) -> (R, End)) -> Result<R>
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

    /// Runs `work` without waiting for other connections' locks: a call that would wait fails
    /// with the backend's "busy" error instead. For reads run on a caller's thread, which must
    /// never sleep in a busy handler.
    fn without_waiting<R>(&mut self, work: impl FnOnce(&mut Self) -> R) -> R
    where
        Self: Sized,
    {
        work(self)
    }

    /// Whether a lone write commits cheaply enough (a few microseconds, no sync) to run on a
    /// caller's thread ([`write_on_callers_thread`](Self::write_on_callers_thread)): SQLite in
    /// WAL with `synchronous=NORMAL`. Default `false`.
    fn commits_cheaply(&self) -> bool {
        false
    }

    /// Runs `work`, one write transaction, on a caller's thread (where the backend
    /// [commits cheaply](Self::commits_cheaply)): without waiting for other connections' locks
    /// (as [`without_waiting`](Self::without_waiting)), and leaving the checkpoint a commit may
    /// make due to the connection's own thread. Answers with `work`'s result and whether a
    /// checkpoint is due (then run [`checkpoint`](Self::checkpoint) there).
    fn write_on_callers_thread<R>(&mut self, work: impl FnOnce(&mut Self) -> R) -> (R, bool)
    where
        Self: Sized,
    {
        (self.without_waiting(work), false)
    }

    /// Copies what the write-ahead log holds into the database, as far as readers allow,
    /// without waiting for them (SQLite's passive checkpoint); nothing for a backend without
    /// one.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn checkpoint(&mut self) -> Result<()> {
        Ok(())
    }

    /// A number that changes when another connection (or process) commits to the database;
    /// `None` when the backend cannot tell.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn data_version(&self) -> Result<Option<i64>> {
        Ok(None)
    }

    /// How to open read-only connections to the same database, for reader threads; `None`
    /// when there can be none (an in-memory database, which no other connection can see).
    fn readers(&self) -> Option<OpenReader<Self>>
    where
        Self: Sized,
    {
        None
    }

    /// Starts telling `changed` of other clients' writes (so that caches drop what they
    /// changed), when the backend can; the watch runs until the returned guard is dropped.
    /// `None` (the default) when the backend cannot: other writers are then noticed through
    /// [`data_version`](Self::data_version), if at all.
    ///
    /// # Errors
    ///
    /// The backend's error when the watch cannot start.
    fn watch(&self, changed: OnChange) -> Result<Option<Watch>> {
        let _ = changed;
        Ok(None)
    }

    /// The SQL helpers' connection.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the backend has none.
    fn sql(&self) -> Result<&dyn SqlConnection> {
        Err(self.unsupported("the SQL helpers"))
    }

    /// The size of the database in bytes (0 for one in memory).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`], or the backend's error.
    fn size(&self) -> Result<u64> {
        Err(self.unsupported("get_db_size"))
    }

    /// Copies the whole database, as one consistent snapshot, into a new file at `dest`
    /// (checked, synced and renamed into place).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`], or the backend's error (`dest` is then untouched).
    fn backup_to(&self, dest: &Path) -> Result<()> {
        let _ = dest;
        Err(self.unsupported("backup"))
    }

    /// Replaces the whole content of the database with that of the file `source`, in place:
    /// every connection sees the new content at its next transaction.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`], or the backend's error (the database is then unchanged).
    fn restore_from(&mut self, source: &Path) -> Result<()> {
        let _ = source;
        Err(self.unsupported("restore"))
    }

    /// An [`Error::Unsupported`] for `operation` on this backend.
    fn unsupported(&self, operation: &'static str) -> Error {
        Error::Unsupported { operation, backend: self.backend() }
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

/// One page of a key-ordered read ([`Storage::scan_page`]): the keys within `lower` and
/// `upper`, after `after` in the page's direction, at most `limit` of them.
#[derive(Clone, Copy, Debug)]
pub struct KeyRange<'a> {
    /// Where the range starts.
    pub lower: std::ops::Bound<&'a str>,
    /// Where the range ends.
    pub upper: std::ops::Bound<&'a str>,
    /// The last key of the previous page as stored (a stored key need not be valid UTF-8).
    pub after: Option<&'a [u8]>,
    /// Largest key first.
    pub descending: bool,
    /// The most rows of the page.
    pub limit: usize,
}

/// One row of a [`Storage::scan_page`].
#[derive(Clone, Copy, Debug)]
pub struct ScannedRow<'a> {
    /// The key as stored (for the next page's cursor).
    pub raw_key: &'a [u8],
    /// The key as text, when it is valid UTF-8 (rows without one are skipped by the stores).
    pub key: Option<&'a str>,
    /// The value as stored.
    pub value: StoredRef<'a>,
}

/// What a unique check refuses at commit ([`Storage::refuse_duplicate_at_commit`]): the write
/// of `key` when another key (starting with `prefix`, when given) holds `json` at `path`.
#[derive(Clone, Copy, Debug)]
pub struct Duplicate<'a> {
    /// The key being written.
    pub key: &'a str,
    /// The field's path, as `index_field` was given it.
    pub path: &'a str,
    /// The field's value, as JSON text.
    pub json: &'a str,
    /// Only other keys starting with this count.
    pub prefix: Option<&'a str>,
    /// The rule's name, for the refusal (`unique(email)`).
    pub by: &'a str,
}

/// Runs `work` in one write transaction: committed if it returns `Ok`, rolled back if it
/// returns `Err` or panics.
///
/// # Errors
///
/// `work`'s error, or the backend's when the transaction cannot begin or commit.
pub fn atomically<S: Storage, R>(storage: &mut S, work: impl FnOnce(&mut S) -> Result<R>) -> Result<R> {
    storage
        .transaction(|storage| {
            let result = work(storage);
            let end = if result.is_ok() { End::Commit } else { End::Rollback };
            (result, end)
        })
        .and_then(|result| result)
}
