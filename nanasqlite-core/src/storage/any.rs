//! A backend chosen at run time from a URL: SQLite (`sqlite://…`) or, with the `postgres`
//! feature, PostgreSQL (`postgres://…`), behind one type, so that a program (or a helper taking
//! `&NanaSQLite<AnyStorage>`) does not name the backend.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use super::{
    ConnectionOptions, Duplicate, End, KeyRange, OnChange, OpenReader, ScannedRow, SqliteStorage, SqliteTable, Storage,
    Stored, StoredRef, Watch,
};
#[cfg(feature = "postgres")]
use super::{PostgresConfig, PostgresStorage, PostgresTable};
use crate::error::{Error, Result};
use crate::identifier::Identifier;
use crate::sql::SqlConnection;

/// A connection to a database whose backend was chosen at run time ([`AnyStorage::connect`]).
///
/// # Examples
///
/// ```
/// use nanasqlite_core::NanaSQLite;
///
/// let dir = tempfile::tempdir()?;
/// let url = format!("sqlite://{}", dir.path().join("app.db").display());
/// let db = NanaSQLite::open_url(&url)?; // NanaSQLite<AnyStorage>
/// db.set("k", &1)?;
/// assert_eq!(db.get::<i32>("k")?, Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
#[cfg_attr(
    feature = "postgres",
    expect(
        clippy::large_enum_variant,
        reason = "one per connection, held in place by its lane or store: a box would add a hop to every SQLite call"
    )
)]
pub enum AnyStorage {
    /// A SQLite file (or an in-memory database).
    Sqlite(SqliteStorage),
    /// A PostgreSQL server (boxed: its client is several times the size of a SQLite
    /// connection, and each call crosses the network anyway).
    #[cfg(feature = "postgres")]
    Postgres(Box<PostgresStorage>),
}

/// A table of an [`AnyStorage`]: the handle of its backend.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyTable {
    /// A table of a SQLite database.
    Sqlite(SqliteTable),
    /// A table on a PostgreSQL server.
    #[cfg(feature = "postgres")]
    Postgres(PostgresTable),
}

/// Where a URL points.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Sqlite(&'a str),
    Postgres,
}

/// Reads the scheme of `url`: `sqlite://path` or `sqlite:path` (`sqlite::memory:` for a
/// database in memory), `postgres://…` or `postgresql://…`.
fn target(url: &str) -> Result<Target<'_>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres);
    }
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(Error::validation(
            "a database URL starts with sqlite:// (a file: sqlite://app.db, sqlite:///abs/app.db, \
             sqlite::memory:) or postgres://",
        ));
    };
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.is_empty() || path.contains('?') || path.contains('\0') {
        return Err(Error::validation(
            "a sqlite:// URL names a file (sqlite://app.db) and takes no parameters; set options on the builder",
        ));
    }
    Ok(Target::Sqlite(path))
}

impl AnyStorage {
    /// Connects to the database `url` names: `sqlite://app.db` (relative),
    /// `sqlite:///var/lib/app.db` (absolute), `sqlite::memory:`, or, with the `postgres`
    /// feature, `postgres://user:password@host/db`. A SQLite file is opened with `options`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a URL of another scheme, a `sqlite://` URL with parameters,
    /// or `postgres://` without the `postgres` feature; the backend's error when it cannot
    /// connect.
    pub fn connect(url: &str, options: &ConnectionOptions) -> Result<Self> {
        match target(url)? {
            Target::Sqlite(path) => SqliteStorage::open(Path::new(path), options).map(Self::Sqlite),
            Target::Postgres => Self::postgres(url),
        }
    }

    #[cfg(feature = "postgres")]
    fn postgres(url: &str) -> Result<Self> {
        PostgresStorage::connect(&PostgresConfig::new(url)?).map(|backend| Self::Postgres(Box::new(backend)))
    }

    #[cfg(not(feature = "postgres"))]
    fn postgres(_: &str) -> Result<Self> {
        Err(Error::validation("a postgres:// URL needs nanasqlite's `postgres` feature"))
    }

    /// What a store opened on `url` shows as its path: the file of a SQLite URL, a PostgreSQL
    /// URL without its password.
    #[must_use]
    pub fn shown(url: &str) -> String {
        match target(url) {
            Ok(Target::Sqlite(path)) => path.to_owned(),
            #[cfg(feature = "postgres")]
            Ok(Target::Postgres) => PostgresConfig::new(url)
                .map_or_else(|_| "postgres://(invalid URL)".to_owned(), |c| c.shown().to_owned()),
            _ => url.to_owned(),
        }
    }
}

impl AnyStorage {
    /// The SQLite connection, if that is the backend.
    fn sqlite(&self) -> Option<&SqliteStorage> {
        match self {
            Self::Sqlite(sqlite) => Some(sqlite),
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => None,
        }
    }
}

/// A table handle of one backend handed to a connection of the other: a store never does this.
#[cfg(feature = "postgres")]
fn mismatched() -> Error {
    Error::validation("a table of one backend was used on a connection of another")
}

/// Calls the same method on whichever backend `$storage` is.
macro_rules! on_backend {
    ($storage:expr, |$backend:ident| $call:expr) => {
        match $storage {
            AnyStorage::Sqlite($backend) => $call,
            #[cfg(feature = "postgres")]
            AnyStorage::Postgres($backend) => $call,
        }
    };
}

/// Calls the same method on whichever backend `$storage` is, with its own table handle.
macro_rules! on_table {
    ($storage:expr, $table:expr, |$backend:ident, $handle:ident| $call:expr) => {
        match ($storage, $table) {
            (AnyStorage::Sqlite($backend), AnyTable::Sqlite($handle)) => $call,
            #[cfg(feature = "postgres")]
            (AnyStorage::Postgres($backend), AnyTable::Postgres($handle)) => $call,
            #[cfg(feature = "postgres")]
            _ => Err(mismatched()),
        }
    };
}

impl Storage for AnyStorage {
    type Table = AnyTable;

    fn runs_on_callers(&self) -> bool {
        on_backend!(self, |backend| backend.runs_on_callers())
    }

    fn backend(&self) -> &'static str {
        on_backend!(self, |backend| backend.backend())
    }

    fn open_table(&self, name: &Identifier) -> Result<AnyTable> {
        match self {
            Self::Sqlite(backend) => backend.open_table(name).map(AnyTable::Sqlite),
            #[cfg(feature = "postgres")]
            Self::Postgres(backend) => backend.open_table(name).map(AnyTable::Postgres),
        }
    }

    fn key_value_tables(&self) -> Result<Vec<Identifier>> {
        on_backend!(self, |backend| backend.key_value_tables())
    }

    fn get(&self, table: &AnyTable, key: &str) -> Result<Option<Stored>> {
        on_table!(self, table, |backend, table| backend.get(table, key))
    }

    fn get_for_update(&self, table: &AnyTable, key: &str) -> Result<Option<Stored>> {
        on_table!(self, table, |backend, table| backend.get_for_update(table, key))
    }

    fn get_many(&self, table: &AnyTable, keys: &[&str], found: &mut dyn FnMut(&str, StoredRef<'_>)) -> Result<()> {
        on_table!(self, table, |backend, table| backend.get_many(table, keys, found))
    }

    fn contains(&self, table: &AnyTable, key: &str) -> Result<bool> {
        on_table!(self, table, |backend, table| backend.contains(table, key))
    }

    fn put(&self, table: &AnyTable, key: &str, value: StoredRef<'_>) -> Result<()> {
        on_table!(self, table, |backend, table| backend.put(table, key, value))
    }

    fn put_many(&self, table: &AnyTable, rows: &mut dyn Iterator<Item = (&str, StoredRef<'_>)>) -> Result<()> {
        on_table!(self, table, |backend, table| backend.put_many(table, rows))
    }

    fn delete(&self, table: &AnyTable, key: &str) -> Result<bool> {
        on_table!(self, table, |backend, table| backend.delete(table, key))
    }

    fn delete_many(&self, table: &AnyTable, keys: &[&str]) -> Result<usize> {
        on_table!(self, table, |backend, table| backend.delete_many(table, keys))
    }

    fn count(&self, table: &AnyTable) -> Result<u64> {
        on_table!(self, table, |backend, table| backend.count(table))
    }

    fn keys(&self, table: &AnyTable) -> Result<Vec<String>> {
        on_table!(self, table, |backend, table| backend.keys(table))
    }

    fn first_key(&self, table: &AnyTable) -> Result<Option<String>> {
        on_table!(self, table, |backend, table| backend.first_key(table))
    }

    fn get_path(&self, table: &AnyTable, key: &str, path: &str) -> Result<Option<Stored>> {
        on_table!(self, table, |backend, table| backend.get_path(table, key, path))
    }

    fn index_field(&self, table: &AnyTable, field: &str, path: &str) -> Result<bool> {
        on_table!(self, table, |backend, table| backend.index_field(table, field, path))
    }

    fn keys_where(&self, table: &AnyTable, path: &str, json: &str) -> Result<Vec<String>> {
        on_table!(self, table, |backend, table| backend.keys_where(table, path, json))
    }

    fn lock_field_value(&self, table: &AnyTable, path: &str, value: &str) -> Result<()> {
        on_table!(self, table, |backend, table| backend.lock_field_value(table, path, value))
    }

    fn refuse_duplicate_at_commit(&self, table: &AnyTable, duplicate: &Duplicate<'_>) -> Result<bool> {
        on_table!(self, table, |backend, table| backend.refuse_duplicate_at_commit(table, duplicate))
    }

    fn scan_page(&self, table: &AnyTable, range: &KeyRange<'_>, visit: &mut dyn FnMut(ScannedRow<'_>)) -> Result<()> {
        on_table!(self, table, |backend, table| backend.scan_page(table, range, visit))
    }

    fn scan(&self, table: &AnyTable, visit: &mut dyn FnMut(&str, StoredRef<'_>)) -> Result<()> {
        on_table!(self, table, |backend, table| backend.scan(table, visit))
    }

    fn unreadable_keys(&self, table: &AnyTable) -> Result<u64> {
        on_table!(self, table, |backend, table| backend.unreadable_keys(table))
    }

    fn rewrite_unnamed(
        &self,
        table: &AnyTable,
        rewrite: &mut dyn FnMut(StoredRef<'_>) -> Result<Stored>,
    ) -> Result<u64> {
        on_table!(self, table, |backend, table| backend.rewrite_unnamed(table, rewrite))
    }

    fn clear(&self, table: &AnyTable) -> Result<usize> {
        on_table!(self, table, |backend, table| backend.clear(table))
    }

    fn transaction<R>(&mut self, work: impl FnOnce(&mut Self) -> (R, End)) -> Result<R> {
        on_backend!(&*self, |backend| backend.begin_write())?;
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| work(self)));
        on_backend!(&*self, |backend| backend.end_write(outcome))
    }

    fn read_snapshot<R>(&mut self, work: impl FnOnce(&mut Self) -> R) -> Result<R> {
        // PostgreSQL: each statement sees a snapshot of its own (as its own `read_snapshot`).
        let Some(sqlite) = self.sqlite() else { return Ok(work(self)) };
        sqlite.begin_read()?;
        let value = panic::catch_unwind(AssertUnwindSafe(|| work(self)));
        match self.sqlite() {
            Some(sqlite) => sqlite.end_read(value),
            None => Ok(value.unwrap_or_else(|payload| panic::resume_unwind(payload))),
        }
    }

    fn without_waiting<R>(&mut self, work: impl FnOnce(&mut Self) -> R) -> R {
        self.sqlite().inspect(|sqlite| sqlite.wait_for_locks(false));
        // The busy handler comes back even if `work` panics (a caller may catch it and go on).
        let result = panic::catch_unwind(AssertUnwindSafe(|| work(self)));
        self.sqlite().inspect(|sqlite| sqlite.wait_for_locks(true));
        result.unwrap_or_else(|payload| panic::resume_unwind(payload))
    }

    fn commits_cheaply(&self) -> bool {
        on_backend!(self, |backend| backend.commits_cheaply())
    }

    fn write_on_callers_thread<R>(&mut self, work: impl FnOnce(&mut Self) -> R) -> (R, bool) {
        match self {
            Self::Sqlite(_) => super::sqlite::checkpoint::deferred(|| self.without_waiting(work)),
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => (self.without_waiting(work), false),
        }
    }

    fn checkpoint(&mut self) -> Result<()> {
        on_backend!(self, |backend| backend.checkpoint())
    }

    fn data_version(&self) -> Result<Option<i64>> {
        on_backend!(self, |backend| backend.data_version())
    }

    fn readers(&self) -> Option<OpenReader<Self>> {
        match self {
            Self::Sqlite(backend) => {
                let open = backend.readers()?;
                Some(Arc::new(move || open().map(Self::Sqlite)))
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(backend) => {
                let open = backend.readers()?;
                Some(Arc::new(move || open().map(|backend| Self::Postgres(Box::new(backend)))))
            }
        }
    }

    fn watch(&self, changed: OnChange) -> Result<Option<Watch>> {
        on_backend!(self, |backend| backend.watch(changed))
    }

    fn sql(&self) -> Result<&dyn SqlConnection> {
        on_backend!(self, |backend| backend.sql())
    }

    fn size(&self) -> Result<u64> {
        on_backend!(self, |backend| backend.size())
    }

    fn backup_to(&self, dest: &Path) -> Result<()> {
        on_backend!(self, |backend| backend.backup_to(dest))
    }

    fn restore_from(&mut self, source: &Path) -> Result<()> {
        on_backend!(self, |backend| backend.restore_from(source))
    }

    fn close(self) -> Result<()> {
        match self {
            Self::Sqlite(backend) => backend.close(),
            #[cfg(feature = "postgres")]
            Self::Postgres(backend) => backend.close(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_backend() {
        assert_eq!(target("sqlite://app.db").unwrap(), Target::Sqlite("app.db"));
        assert_eq!(target("sqlite:///var/lib/app.db").unwrap(), Target::Sqlite("/var/lib/app.db"));
        assert_eq!(target("sqlite:app.db").unwrap(), Target::Sqlite("app.db"));
        assert_eq!(target("sqlite::memory:").unwrap(), Target::Sqlite(":memory:"));
        assert_eq!(target("postgres://u@localhost/db").unwrap(), Target::Postgres);
        assert_eq!(target("postgresql://u@localhost/db").unwrap(), Target::Postgres);
        for bad in ["app.db", "mysql://x", "sqlite://", "sqlite:", "sqlite://a.db?mode=ro", "SQLITE://a.db", ""] {
            assert!(matches!(target(bad), Err(Error::Validation { .. })), "{bad:?}");
        }
    }

    #[test]
    fn a_sqlite_url_opens_a_file_that_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("any.db").display());
        let options = ConnectionOptions::default();
        let storage = AnyStorage::connect(&url, &options).unwrap();
        assert_eq!(storage.backend(), "sqlite");
        assert!(storage.runs_on_callers() && storage.commits_cheaply());
        storage.close().unwrap();
        super::super::conformance::check(|| AnyStorage::connect(&url, &options));
    }

    #[cfg(not(feature = "postgres"))]
    #[test]
    fn a_postgres_url_without_the_feature_is_refused() {
        let refused = AnyStorage::connect("postgres://localhost/db", &ConnectionOptions::default());
        assert!(matches!(refused, Err(Error::Validation { message }) if message.contains("`postgres` feature")));
    }
}
