//! The async store on a PostgreSQL server (feature `postgres`).

use nanasqlite_core::Result;
use nanasqlite_core::storage::{PostgresBuilder, PostgresConfig, PostgresStorage, TlsConnector};

use crate::{AsyncBuilder, AsyncNanaSQLite};

/// Opens an [`AsyncNanaSQLite`] on a PostgreSQL server; made by
/// [`AsyncNanaSQLite::postgres`]. Every option of [`AsyncBuilder`] is reached through
/// [`with`](Self::with); the common ones are here. The client runs only on the store's own
/// threads (never inline on a caller's: its connections carry a runtime of their own).
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct AsyncPostgresBuilder {
    config: Result<PostgresConfig>,
    core: AsyncBuilder,
}

impl AsyncNanaSQLite<PostgresStorage> {
    /// A builder for an async store on the PostgreSQL server at `url`
    /// (`postgres://user:password@host:port/database`), table `"data"` by default.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use nanasqlite_pool::AsyncNanaSQLite;
    ///
    /// # futures::executor::block_on(async {
    /// let db = AsyncNanaSQLite::postgres("postgres://app@127.0.0.1:5432/app").read_pool_size(4).open().await?;
    /// db.set("greeting", &"hello").await?;
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn postgres(url: impl AsRef<str>) -> AsyncPostgresBuilder {
        // The URL is read as the sync store reads it: one place says what is shown of it.
        let sync = PostgresBuilder::new(url);
        AsyncPostgresBuilder { config: sync.config().cloned(), core: AsyncBuilder::new(&sync.options().path) }
    }
}

impl AsyncPostgresBuilder {
    /// Changes any option of the underlying [`AsyncBuilder`].
    pub fn with(mut self, change: impl FnOnce(AsyncBuilder) -> AsyncBuilder) -> Self {
        self.core = change(self.core);
        self
    }

    /// The key/value table, as [`AsyncBuilder::table`].
    pub fn table(self, name: impl Into<String>) -> Self {
        self.with(|core| core.table(name))
    }

    /// Reader threads, each with its own connection, as [`AsyncBuilder::read_pool_size`].
    pub fn read_pool_size(self, readers: usize) -> Self {
        self.with(|core| core.read_pool_size(readers))
    }

    /// How values are cached, as [`AsyncBuilder::cache`].
    pub fn cache(self, strategy: nanasqlite_core::CacheStrategy) -> Self {
        self.with(|core| core.cache(strategy))
    }

    /// Connects through a TLS connector, as [`PostgresConfig::tls`].
    pub fn tls(mut self, tls: impl TlsConnector) -> Self {
        self.config = self.config.map(|config| config.tls(tls));
        self
    }

    /// A hook, as [`AsyncBuilder::hook`].
    pub fn hook(self, hook: impl Into<nanasqlite_core::hook::Registration>) -> Self {
        self.with(|core| core.hook(hook))
    }

    /// Connects (on the writer thread), creates (or checks) the table and its triggers, and
    /// starts listening for other clients' writes.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](nanasqlite_core::Error::Validation) for a bad URL or option;
    /// [`Error::Backend`](nanasqlite_core::Error::Backend) when the server cannot be reached;
    /// [`Error::Schema`](nanasqlite_core::Error::Schema) for a table of another layout.
    pub async fn open(self) -> Result<AsyncNanaSQLite<PostgresStorage>> {
        let config = self.config?;
        self.core.open_on(move || PostgresStorage::connect(&config)).await
    }
}
