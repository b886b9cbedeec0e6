//! Opening a store, once for both: the options their builders collect, checked before
//! anything is opened ([`Opening`]), the state made on the connection, and the steps taken
//! once the store exists ([`Front::finish_opening`](super::Front::finish_opening)).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::CacheStrategy;
use crate::encryption::Encryption;
use crate::error::Result;
use crate::hook::Registration;
use crate::identifier::Identifier;
use crate::sql::SqlPolicy;
use crate::storage::{ConnectionOptions, Storage};

use super::{Shared, Table, TableSettings};

/// Everything a [`Builder`](crate::Builder) collects (the async store's builder wraps one).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// The database file (`":memory:"` for a private in-memory database).
    pub path: PathBuf,
    /// The key/value table, not yet validated.
    pub table: String,
    /// Load every row into the cache at open.
    pub bulk_load: bool,
    /// How values are cached.
    pub cache: CacheStrategy,
    /// Where TTL expiry and the watch for other writers read the time.
    pub clock: crate::Clock,
    /// The longest a call waits for the store (`None`: no limit).
    pub lock_timeout: Option<Duration>,
    /// Connection settings.
    pub connection: ConnectionOptions,
    /// The rules SQL fragments are checked against.
    pub sql_policy: SqlPolicy,
    /// Check for writes by other connections at most this often (`None`: never).
    pub watch_external_writes: Option<Duration>,
    /// How values are encrypted (`None`: stored as JSON text).
    pub encryption: Option<Encryption>,
    /// Read plaintext rows of an AEAD-encrypted table instead of failing on them.
    pub allow_legacy_plaintext: bool,
    /// Whether opening an encrypted store decrypts one row first, to fail with
    /// [`Error::WrongKey`](crate::Error::WrongKey) before any work when the key is wrong.
    pub check_key: bool,
    /// Hooks registered on the table at open, in order.
    pub hooks: Vec<Registration>,
    /// Write-back mode (`None`: every write commits before it returns).
    pub write_back: Option<crate::WriteBack>,
}

impl Options {
    /// The connection settings to open with: the busy timeout is capped by `lock_timeout`, so
    /// that waiting for another process's lock is bounded by it too.
    #[must_use]
    pub fn connection_options(&self) -> ConnectionOptions {
        let mut connection = self.connection.clone();
        if let Some(limit) = self.lock_timeout {
            connection.busy_timeout = connection.busy_timeout.min(limit);
        }
        connection
    }

    /// The table's name, checked.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a bad name.
    pub fn table_name(&self) -> Result<Identifier> {
        Identifier::new(&self.table)
    }
}

/// What [`Opening::connect`] makes on a connection: the state every table of the file shares,
/// and the first table.
type Connected<S> = (Arc<Shared<S>>, Arc<Table<S>>);

/// What opening a store needs besides its connection, checked from the [`Options`] before
/// anything is opened.
#[derive(Clone, Debug)]
pub struct Opening {
    table: Identifier,
    settings: TableSettings,
    watch: Option<(Duration, crate::Clock)>,
    write_back: Option<crate::WriteBack>,
    /// Hooks registered on the table once the store exists, in order.
    pub(crate) hooks: Vec<Registration>,
    /// Whether an encrypted store decrypts one row before it is handed out.
    pub(crate) check_key: bool,
    /// Whether every row is loaded into the cache before the store is handed out.
    pub(crate) bulk_load: bool,
}

impl Opening {
    /// The checked plan of opening with `options`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a bad table name, cache size or
    /// TTL, or write-back setting.
    pub fn new(options: &Options) -> Result<Self> {
        let (table, settings) = (options.table_name()?, TableSettings::new(options)?);
        if let Some(write_back) = &options.write_back {
            write_back.validate()?;
        }
        Ok(Self {
            table,
            settings,
            watch: options.watch_external_writes.map(|interval| (interval, options.clock.clone())),
            write_back: options.write_back.clone(),
            hooks: options.hooks.clone(),
            check_key: options.check_key,
            bulk_load: options.bulk_load,
        })
    }

    /// On the connection's own thread: creates (or checks) the table, makes the state every
    /// table of the file shares (reading the data version when other writers are watched),
    /// starts the backend's watch for other clients, and registers the table there.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`](crate::Error::Schema) for an existing table of another layout, or the
    /// backend's error.
    pub fn connect<S: Storage>(&self, storage: &S) -> Result<Connected<S>> {
        let handle = storage.open_table(&self.table)?;
        let version = if self.watch.is_some() { storage.data_version()? } else { None };
        let shared = Arc::new(Shared::new(self.watch.clone(), version).with_write_back(self.write_back.clone()));
        shared.watch_others(storage)?;
        let table = Arc::new(shared.table(self.table.clone(), handle, self.settings.clone()));
        shared.register(&table);
        Ok((shared, table))
    }
}
