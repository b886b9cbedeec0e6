//! Options for opening a store, and [`NanaSQLite::open`] / [`NanaSQLite::builder`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cache::CacheStrategy;
use crate::database::Waits;
use crate::encryption::Encryption;
use crate::engine::{Opening, Options};
use crate::error::Result;
use crate::hook::Registration;
use crate::sql::SqlPolicy;
use crate::storage::{AnyStorage, ConnectionOptions, SqliteStorage, Storage};
use crate::store::NanaSQLite;

/// The table a store uses when none is named, as in Python NanaSQLite.
pub const DEFAULT_TABLE: &str = "data";

impl NanaSQLite {
    /// Opens the database at `path` (created if missing) with table `"data"`, a lazy unbounded
    /// cache and Python NanaSQLite's pragmas. `":memory:"` opens a private in-memory database.
    ///
    /// # Errors
    ///
    /// See [`Builder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).open()
    }

    /// A [`Builder`] for opening `path` with options.
    pub fn builder(path: impl AsRef<Path>) -> Builder {
        Builder::new(path)
    }
}

impl NanaSQLite<AnyStorage> {
    /// Opens the database `url` names, on the backend it names, chosen at run time:
    /// `sqlite://app.db` (relative), `sqlite:///var/lib/app.db` (absolute), `sqlite::memory:`,
    /// or, with the `postgres` feature, `postgres://user:password@host/db`. Options go on a
    /// builder made with the URL as its path: `NanaSQLite::builder(url).table("users")
    /// .open_url()`. A helper that takes any store is generic over the backend
    /// (`fn f<S: Storage>(db: &NanaSQLite<S>)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use nanasqlite_core::NanaSQLite;
    ///
    /// let db = NanaSQLite::open_url("sqlite::memory:")?;
    /// db.set("k", &"v")?;
    /// assert_eq!(db.get::<String>("k")?.as_deref(), Some("v"));
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// See [`Builder::open_url`].
    pub fn open_url(url: impl AsRef<str>) -> Result<Self> {
        Builder::new(url.as_ref()).open_url()
    }
}

/// Opens a [`NanaSQLite`] with options; made by [`NanaSQLite::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nanasqlite_core::NanaSQLite;
///
/// let db = NanaSQLite::builder(":memory:")
///     .table("users")
///     .bulk_load(true)
///     .lock_timeout(Duration::from_secs(2))
///     .open()?;
/// assert_eq!(db.table_name(), "users");
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct Builder {
    options: Options,
}

impl Builder {
    /// A builder for `path` with the defaults (also reached as [`NanaSQLite::builder`]).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            options: Options {
                path: path.as_ref().to_path_buf(),
                table: DEFAULT_TABLE.to_owned(),
                bulk_load: false,
                cache: CacheStrategy::default(),
                clock: crate::Clock::system(),
                lock_timeout: None,
                connection: ConnectionOptions::default(),
                sql_policy: SqlPolicy::default(),
                watch_external_writes: None,
                encryption: None,
                allow_legacy_plaintext: false,
                check_key: true,
                hooks: Vec::new(),
                write_back: None,
            },
        }
    }

    /// What this builder has collected, for the async store's builder: internal to the
    /// workspace (an [`engine`](crate::engine) type), with no stability promise.
    #[doc(hidden)]
    #[must_use]
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The key/value table to use. Default [`DEFAULT_TABLE`] (`"data"`).
    /// Validated at [`open`](Self::open) (see [`Identifier`](crate::Identifier)).
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.options.table = name.into();
        self
    }

    /// Load every row into the cache at open, so reads never touch the file. Default `false`
    /// (rows are cached as they are read).
    ///
    /// With the default [`CacheStrategy::Unbounded`](crate::CacheStrategy::Unbounded), the
    /// rows are kept packed: their keys and JSON text side by side in large pages, about 1.5×
    /// the JSON in memory. `get` decodes a copy of a packed row's text; a write, or a read
    /// that keeps its decoded form for the next hits (`get_shared`, `get_cloned`, typed
    /// tables), makes that row an ordinary entry (about 3.8× its JSON, without what it keeps).
    /// A listing (`items()`, `values()`, …) copies the packed rows it returns. Other
    /// strategies cache the loaded rows as ordinary entries.
    pub fn bulk_load(mut self, bulk_load: bool) -> Self {
        self.options.bulk_load = bulk_load;
        self
    }

    /// How values are cached. Default [`CacheStrategy::Unbounded`].
    pub fn cache(mut self, strategy: CacheStrategy) -> Self {
        self.options.cache = strategy;
        self
    }

    /// Where TTL expiry ([`CacheStrategy::Ttl`]) and the watch for other writers
    /// ([`watch_external_writes`](Self::watch_external_writes)) read the time. Default
    /// [`Clock::system`](crate::Clock::system); a [`ManualClock`](crate::ManualClock) lets a test
    /// move time on without waiting for it.
    pub fn clock(mut self, clock: impl Into<crate::Clock>) -> Self {
        self.options.clock = clock.into();
        self
    }

    /// The longest a call waits for the store's lock before failing with
    /// [`Error::LockTimeout`](crate::Error::LockTimeout). It also caps the busy timeout: a write
    /// waits at most this long for another process to release the file's lock.
    /// Default `None`: wait as long as it takes for the store, `busy_timeout` for the file.
    pub fn lock_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.options.lock_timeout = timeout.into();
        self
    }

    /// Apply the performance pragmas (WAL, `synchronous=NORMAL`, 256 MiB mmap, page cache,
    /// in-memory temp store). Default `true`, as in Python NanaSQLite.
    pub fn optimize(mut self, optimize: bool) -> Self {
        self.options.connection.optimize = optimize;
        self
    }

    /// How long SQLite waits for another connection or process to release the file's lock;
    /// a write still locked out after it fails with
    /// [`Error::LockTimeout`](crate::Error::LockTimeout). Default 5 s (Python NanaSQLite sets
    /// none, so its writes fail at once).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.options.connection.busy_timeout = timeout;
        self
    }

    /// SQLite's page cache in MiB. Default 64.
    pub fn cache_size_mb(mut self, megabytes: u32) -> Self {
        self.options.connection.cache_size_mb = megabytes;
        self
    }

    /// The rules for SQL fragments (`filter`, `order_by`, …): extra allowed or forbidden
    /// functions, the length limit, strictness. Default [`SqlPolicy::default`].
    pub fn sql_policy(mut self, policy: SqlPolicy) -> Self {
        self.options.sql_policy = policy;
        self
    }

    /// Notice writes by other connections and processes: at most once per `interval`, a read
    /// asks SQLite (`PRAGMA data_version`) whether another connection committed, and if so every
    /// cache of the file is emptied. A cached value is then at most about `interval` stale.
    /// Default off (as Python NanaSQLite, whose caches never notice other writers).
    pub fn watch_external_writes(mut self, interval: Duration) -> Self {
        self.options.watch_external_writes = Some(interval);
        self
    }

    /// Encrypt every value written, and decrypt every value read, with `encryption` (the same
    /// formats as Python NanaSQLite's `encryption_key` and `encryption_mode`). Tables opened
    /// from this store (`table(name)`) are encrypted too, as in Python NanaSQLite 1.6.2. Keys
    /// and the SQL helpers' own tables are not encrypted. Default: none.
    ///
    /// # Examples
    ///
    /// ```
    /// use nanasqlite_core::{Encryption, NanaSQLite};
    ///
    /// let key = "a 32-byte key, better from a KMS".as_bytes();
    /// let db = NanaSQLite::builder(":memory:").encryption(Encryption::aes_gcm(key)?).open()?;
    /// db.set("secret", &42)?;
    /// assert_eq!(db.get::<i32>("secret")?, Some(42));
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    pub fn encryption(mut self, encryption: Encryption) -> Self {
        self.options.encryption = Some(encryption);
        self
    }

    /// With an AES-GCM or ChaCha20 [`encryption`](Self::encryption), read rows stored as
    /// plaintext (written before encryption was turned on) as they are, instead of failing on
    /// them with a decode error naming the key. New writes are encrypted either way. Default
    /// `false`, as in Python NanaSQLite 1.6.2.
    ///
    /// Such rows have neither confidentiality nor tamper evidence: whoever can write the file
    /// can plant a plaintext value that reads as genuine. Turn this on only to migrate a file,
    /// then `rekey`: a rotation seals every plaintext row and ends legacy mode (plaintext
    /// written afterwards is refused again, unless the store is opened with this again).
    pub fn allow_legacy_plaintext(mut self, allow: bool) -> Self {
        self.options.allow_legacy_plaintext = allow;
        self
    }

    /// Whether opening an encrypted store reads one row of its table and fails with
    /// [`Error::WrongKey`](crate::Error::WrongKey) when it does not decrypt with the key given
    /// (default `true`): a wrong key is then a clear error at open, before any work, instead of
    /// every read failing later. An empty table has nothing to check. Turn it off to open a
    /// store whose first row is known to be damaged.
    ///
    /// ```
    /// use nanasqlite_core::{Encryption, NanaSQLite};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("secret.db");
    /// let right = Encryption::aes_gcm([7; 32])?;
    /// NanaSQLite::builder(&path).encryption(right).open()?.set("card", &"4111")?;
    /// let wrong = Encryption::aes_gcm([8; 32])?;
    /// let error = NanaSQLite::builder(&path).encryption(wrong.clone()).open().unwrap_err();
    /// assert!(error.is_wrong_key(), "{error}");
    /// let unchecked = NanaSQLite::builder(&path).encryption(wrong).check_key(false).open()?;
    /// assert!(unchecked.get::<String>("card").unwrap_err().is_wrong_key());
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    pub fn check_key(mut self, check: bool) -> Self {
        self.options.check_key = check;
        self
    }

    /// Registers `hook` on the table this builder opens, after the hooks given before it: a
    /// [`Hook`](crate::hook::Hook) of yours, or a ready-made [`hook::check`](crate::hook::check),
    /// [`hook::unique`](crate::hook::unique) or [`hook::foreign_key`](crate::hook::foreign_key).
    /// It runs for every handle on that table (not for other tables opened from the store,
    /// which take their own with `add_hook`). See [`hook`](crate::hook) for where and when
    /// hooks run.
    ///
    /// A unique field or a foreign key is checked, and prepared in the file, at
    /// [`open`](Self::open), which fails with [`Error::Validation`](crate::Error::Validation)
    /// for a bad field or table name.
    ///
    /// # Examples
    ///
    /// ```
    /// use nanasqlite_core::{hook, NanaSQLite};
    /// use serde_json::{json, Value};
    ///
    /// let db = NanaSQLite::builder(":memory:")
    ///     .hook(hook::check(|_key, v: &Value| v["age"].as_i64().is_some_and(|age| age >= 0)))
    ///     .open()?;
    /// assert!(db.set("ann", &json!({"age": -1})).unwrap_err().is_refused());
    /// assert_eq!(db.get::<Value>("ann")?, None);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    pub fn hook(mut self, hook: impl Into<Registration>) -> Self {
        self.options.hooks.push(hook.into());
        self
    }

    /// Write-back mode: writes are staged in memory and committed in the background, in
    /// chunks, as `write_back` says; see [`writeback`](crate::writeback) for what it changes
    /// and what a crash can lose. [`WriteBack::memory_first`](crate::WriteBack::memory_first)
    /// also loads the table at open. Default: off (every write commits before it returns).
    pub fn write_back(mut self, write_back: crate::WriteBack) -> Self {
        self.options.bulk_load |= write_back.load_all;
        self.options.write_back = Some(write_back);
        self
    }

    /// The longest string or blob a statement may make or store, in bytes: a query or a value
    /// past it fails with SQLite's "string or blob too big" instead of allocating without bound.
    /// Default 256 MiB.
    pub fn max_length(mut self, bytes: u32) -> Self {
        self.options.connection.max_length = bytes;
        self
    }

    /// Bytes of the file SQLite may memory-map on the read-write connection. Default 256 MiB.
    /// The async store's reader connections map nothing (see [`ConnectionOptions::mmap_size`](crate::storage::ConnectionOptions::mmap_size)).
    pub fn mmap_size(mut self, bytes: u64) -> Self {
        self.options.connection.mmap_size = bytes;
        self
    }

    /// Opens the database (creating the file and the table if needed).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a bad table name or cache setting
    /// (nothing is created); [`Error::Open`](crate::Error::Open) when the file cannot be opened
    /// or is not a SQLite database; [`Error::Schema`](crate::Error::Schema) when the table
    /// exists with another layout; [`Error::Sqlite`](crate::Error::Sqlite) when the table
    /// cannot be created or read.
    pub fn open(self) -> Result<NanaSQLite> {
        let path = &self.options.path;
        self.start(path.clone(), || SqliteStorage::open(path, &self.options.connection_options()))
    }

    /// Opens the database whose URL was given as this builder's path
    /// ([`NanaSQLite::open_url`] lists the forms), on the backend the URL names. The store's
    /// [`path`](NanaSQLite::path) is then the file (SQLite) or the URL without its password
    /// (PostgreSQL).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a URL of another scheme, a
    /// `sqlite://` URL with parameters (options go on the builder), or `postgres://` without
    /// the `postgres` feature; otherwise as [`open`](Self::open), with the backend's errors.
    pub fn open_url(self) -> Result<NanaSQLite<AnyStorage>> {
        let url = self.url()?;
        let shown = PathBuf::from(AnyStorage::shown(&url));
        self.start(shown, || AnyStorage::connect(&url, &self.options.connection_options()))
    }

    /// This builder's path read as a URL ([`open_url`](Self::open_url)).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) when the path is not text.
    pub fn url(&self) -> Result<String> {
        let url = self.options.path.to_str().ok_or_else(|| crate::Error::validation("a database URL is text"))?;
        Ok(url.to_owned())
    }

    /// Opens the store on a connection of any backend (the path is then only a name for it):
    /// creates or checks the table and loads it if asked.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), with the backend's errors.
    pub fn open_on<S: Storage>(self, storage: S) -> Result<NanaSQLite<S>> {
        self.start(self.options.path.clone(), || Ok(storage))
    }

    /// Checks every option, then connects with `connect` (so that nothing is created for a
    /// bad option) and opens the store there, known as `path`.
    pub(crate) fn start<S: Storage>(
        &self,
        path: PathBuf,
        connect: impl FnOnce() -> Result<S>,
    ) -> Result<NanaSQLite<S>> {
        let options = &self.options;
        let waits =
            Waits { lock_timeout: options.lock_timeout, busy_timeout: options.connection_options().busy_timeout };
        let opening = Opening::new(options)?;
        NanaSQLite::start(connect()?, path, waits, opening)
    }
}
