//! The sync store on a PostgreSQL server (feature `postgres`); the async twin is the pool
//! crate's `store/postgres.rs`.

use crate::encryption::Encryption;
use crate::engine::Options;
use crate::error::{Error, Result};
use crate::hook::Registration;
use crate::storage::{PostgresConfig, PostgresStorage, TlsConnector};
use crate::{Builder, CacheStrategy, NanaSQLite};

/// Opens a [`NanaSQLite`](NanaSQLite) on a PostgreSQL server; made by
/// [`NanaSQLite::postgres`](NanaSQLite::postgres). Every option of
/// [`Builder`](Builder) is reached through [`with`](Self::with); the common ones are here.
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct PostgresBuilder {
    /// The URL read once, at `new`; a bad one is reported by `open`, as every other option is.
    config: Result<PostgresConfig>,
    core: Builder,
}

impl NanaSQLite<PostgresStorage> {
    /// A builder for a store on the PostgreSQL server at `url`
    /// (`postgres://user:password@host:port/database`), table `"data"` by default.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use nanasqlite_core::NanaSQLite;
    ///
    /// let db = NanaSQLite::postgres("postgres://app@127.0.0.1:5432/app").table("data").open()?;
    /// db.set("greeting", &"hello")?;
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    pub fn postgres(url: impl AsRef<str>) -> PostgresBuilder {
        PostgresBuilder::new(url)
    }
}

impl PostgresBuilder {
    /// A builder for the server at `url` (a `&str`, a `String` from `env::var`, …).
    pub fn new(url: impl AsRef<str>) -> Self {
        let config = PostgresConfig::new(url.as_ref());
        let shown = config.as_ref().map_or_else(|_| "postgres://(invalid URL)".to_owned(), |c| c.shown().to_owned());
        Self { config, core: Builder::new(shown) }
    }

    /// Changes any option of the underlying [`Builder`](Builder).
    pub fn with(mut self, change: impl FnOnce(Builder) -> Builder) -> Self {
        self.core = change(self.core);
        self
    }

    /// The key/value table, as [`Builder::table`](Builder::table).
    pub fn table(self, name: impl Into<String>) -> Self {
        self.with(|core| core.table(name))
    }

    /// How values are cached, as [`Builder::cache`](Builder::cache).
    pub fn cache(self, strategy: CacheStrategy) -> Self {
        self.with(|core| core.cache(strategy))
    }

    /// Load the table into the cache at open, as [`Builder::bulk_load`](Builder::bulk_load).
    pub fn bulk_load(self, bulk_load: bool) -> Self {
        self.with(|core| core.bulk_load(bulk_load))
    }

    /// A hook, as [`Builder::hook`](Builder::hook).
    pub fn hook(self, hook: impl Into<Registration>) -> Self {
        self.with(|core| core.hook(hook))
    }

    /// Connects through a TLS connector, as [`PostgresConfig::tls`].
    pub fn tls(mut self, tls: impl TlsConnector) -> Self {
        self.config = self.config.map(|config| config.tls(tls));
        self
    }

    /// Encrypted values, as [`Builder::encryption`](Builder::encryption).
    pub fn encryption(self, encryption: Encryption) -> Self {
        self.with(|core| core.encryption(encryption))
    }

    /// Connects, creates (or checks) the table and its triggers, and starts listening for
    /// other clients' writes.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad URL or option; [`Error::Backend`] when the server cannot
    /// be reached; [`Error::Schema`] for a table of another layout.
    pub fn open(self) -> Result<NanaSQLite<PostgresStorage>> {
        let config = self.config?;
        // Every option is checked before the server is reached, as a file is not opened first.
        self.core.start(self.core.options().path.clone(), || PostgresStorage::connect(&config))
    }

    /// The server to connect to, checked.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad URL.
    pub fn config(&self) -> Result<&PostgresConfig> {
        self.config.as_ref().map_err(Error::clone)
    }

    /// What this builder has collected, for the async store's builder: internal to the
    /// workspace (an [`engine`](crate::engine) type), with no stability promise.
    #[doc(hidden)]
    #[must_use]
    pub fn options(&self) -> &Options {
        self.core.options()
    }
}
