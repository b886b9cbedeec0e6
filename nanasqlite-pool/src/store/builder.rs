//! Options for opening an [`AsyncNanaSQLite`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nanasqlite_core::engine::{Front, Opening, Options};
use nanasqlite_core::storage::{AnyStorage, SqliteStorage, Storage};
use nanasqlite_core::{Builder, CacheStrategy, Error, Result};

use crate::pool::{Opened, Pool, Sizes};
use crate::spawn::{Spawn, Threads};
use crate::store::AsyncNanaSQLite;

/// Threads the pool may run when not told otherwise (the async guide's default): the writer
/// and up to four readers.
pub const DEFAULT_MAX_WORKERS: usize = 5;

/// Jobs each queue holds before callers wait for room.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// Opens an [`AsyncNanaSQLite`] with options; made by [`AsyncNanaSQLite::builder`].
///
/// # What runs where
///
/// The pool runs **one writer thread**, which owns the read-write connection and runs every
/// write (grouped into shared commits), plus **reader threads**, each owning a read-only
/// connection, which run uncached reads in parallel (WAL lets them read beside the writer).
/// Cache hits run on the caller's thread, and values are encoded and decoded there.
///
/// Readers start when reads need them, so opening stays cheap: an uncached read goes to the
/// writer when it is free (it answers at once), and otherwise to the readers, one more of which
/// starts when none is idle. `max_workers` (default 5) is the most threads the store runs: the
/// writer and up to `max_workers - 1` readers, unless `read_pool_size` sets another number of
/// readers (which must leave room for the writer). SQLite allows one writer at a time, so more
/// write threads could only wait; concurrency comes from group commit and the readers instead.
/// An in-memory database (`:memory:`) has no readers: no other connection can see it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nanasqlite_pool::AsyncNanaSQLite;
///
/// # futures::executor::block_on(async {
/// let db = AsyncNanaSQLite::builder(":memory:")
///     .max_workers(10)
///     .lock_timeout(Duration::from_secs(2))
///     .open()
///     .await?;
/// db.set("k", &1).await?;
/// db.close().await?;
/// # Ok::<(), nanasqlite_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct AsyncBuilder {
    core: Builder,
    max_workers: usize,
    read_pool_size: Option<usize>,
    queue_capacity: usize,
    inline_reads: bool,
    inline_writes: bool,
    thread_name_prefix: String,
    spawner: Arc<dyn Spawn>,
}

impl fmt::Debug for AsyncBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncBuilder")
            .field("options", self.core.options())
            .field("max_workers", &self.max_workers)
            .field("read_pool_size", &self.read_pool_size)
            .field("queue_capacity", &self.queue_capacity)
            .field("inline_reads", &self.inline_reads)
            .field("inline_writes", &self.inline_writes)
            .field("thread_name_prefix", &self.thread_name_prefix)
            .finish_non_exhaustive()
    }
}

/// Setters that forward to the [`Builder`] of the same name, each with its own doc.
macro_rules! as_the_sync_builder {
    ($($(#[$doc:meta])* fn $name:ident($arg:ident: $type:ty);)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, $arg: $type) -> Self {
            self.core = self.core.$name($arg);
            self
        }
    )*};
}

impl AsyncBuilder {
    pub(crate) fn new(path: impl AsRef<Path>) -> Self {
        Self {
            core: Builder::new(path),
            max_workers: DEFAULT_MAX_WORKERS,
            read_pool_size: None,
            inline_reads: true,
            inline_writes: false,
            thread_name_prefix: "nanasqlite".to_owned(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            spawner: Arc::new(Threads),
        }
    }

    /// How the store's threads are named: `<prefix>-writer` and `<prefix>-reader-<n>` (Python's
    /// `thread_name_prefix`), as debuggers, profilers and `top -H` show them. Default
    /// `"nanasqlite"`. Threads of the default spawner are reused only by stores of the same
    /// prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let db = nanasqlite_pool::AsyncNanaSQLite::builder(":memory:").thread_name_prefix("orders-db").open().await?;
    /// let name = db.transaction(|_| Ok(std::thread::current().name().map(str::to_owned))).await?;
    /// assert_eq!(name.as_deref(), Some("orders-db-writer"));
    /// # db.close().await?;
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name_prefix = prefix.into();
        self
    }

    /// The most threads the store runs (the writer plus readers, started when needed). Default
    /// [`DEFAULT_MAX_WORKERS`] (5). See [What runs where](Self#what-runs-where).
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = max_workers;
        self
    }

    /// The most read-only connections, each on its own thread, for parallel uncached reads
    /// (started when needed; 0 for none). Default: `max_workers - 1`.
    pub fn read_pool_size(mut self, readers: usize) -> Self {
        self.read_pool_size = Some(readers);
        self
    }

    /// Whether an uncached point read (`get`, `contains` of one key) may run on the caller's
    /// thread when one of the store's connections is free at that instant: one primary-key
    /// lookup, a few microseconds, saving two thread wake-ups. It never waits, neither for a
    /// connection nor for another connection's lock (the busy handler is off for it); when it
    /// would, the read goes to the store's threads. Default `true`.
    pub fn inline_reads(mut self, inline: bool) -> Self {
        self.inline_reads = inline;
        self
    }

    /// Whether point writes (`set`, `delete`) may commit on the caller's thread when the writer
    /// has nothing to do (no job of this store's handed to it and unanswered, no transaction
    /// open), saving the two thread wake-ups of a hand-off. At its first poll such a write
    /// joins the writes waiting for a caller and yields once, so that writes polled beside it
    /// (`join_all`, spawned tasks) join it too; at its next poll it runs them all as one group,
    /// one `BEGIN IMMEDIATE` … `COMMIT` on the writer's connection, if that connection is free
    /// at that instant. It never waits: when the connection is busy, or another connection
    /// holds the file's write lock, the writer runs them instead, before anything handed to it
    /// after them, so a write never overtakes one polled before it. Only where a commit is
    /// cheap: SQLite with the performance pragmas (WAL, `synchronous=NORMAL`), and only while
    /// no `pragma` set since made commits sync (`synchronous=FULL`) or checkpoint in the commit
    /// (a `wal_autocheckpoint` other than 1,000); not for a value over 64 KiB, not in
    /// write-back mode, not on a table with hooks, not on PostgreSQL; at most 256 writes in one
    /// caller's group. A checkpoint the commit makes due runs on the writer's thread,
    /// at SQLite's own bound (1,000 pages of log). A future dropped before its write ran writes
    /// nothing; one polled once and then kept aside (neither polled nor dropped) has its write
    /// run by the writer after 50 ms.
    ///
    /// Default `false`. Measured (2026-12-05, `BENCHMARKS.md`), it runs sequential `set`s 2.8×
    /// as fast (W1 at 0.83× raw rusqlite, against 0.29× through the writer) and writes made
    /// together (W8) 1.3× as fast; beside it, a task sleeping 1 ms at a time wakes as late as
    /// without it on a current-thread runtime, but up to about 4 ms late on a multi-thread one
    /// (p99 3.8–4.9 ms against 1.2 ms): the callers' next writes wait for the checkpoints the
    /// writer then runs every few milliseconds. Turn it on where sequential writes matter more
    /// than timer precision.
    pub fn inline_writes(mut self, inline: bool) -> Self {
        self.inline_writes = inline;
        self
    }

    /// Jobs each queue holds; when full, callers wait (asynchronously) for room. Default
    /// [`DEFAULT_QUEUE_CAPACITY`].
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Where the pool's threads come from. Default [`Threads`] (dedicated threads); the
    /// runtime adapters offer their runtime's blocking pool.
    pub fn spawner(mut self, spawner: impl Spawn) -> Self {
        self.spawner = Arc::new(spawner);
        self
    }

    // Each forwards to the sync builder's setter of the same name.
    as_the_sync_builder! {
        /// The key/value table (default `"data"`), as [`Builder::table`].
        fn table(name: impl Into<String>);

        /// Load every row into the cache at open, as [`Builder::bulk_load`].
        fn bulk_load(bulk_load: bool);

        /// Where TTL expiry and the watch for other writers read the time, as
        /// [`Builder::clock`].
        fn clock(clock: impl Into<nanasqlite_core::Clock>);

        /// How values are cached, as [`Builder::cache`].
        fn cache(strategy: CacheStrategy);

        /// The longest a job may wait in the queue before it fails with
        /// [`Error::LockTimeout`]. Default `None`: no limit.
        fn lock_timeout(timeout: impl Into<Option<Duration>>);

        /// Apply the performance pragmas, as [`Builder::optimize`].
        fn optimize(optimize: bool);

        /// SQLite's busy timeout, as [`Builder::busy_timeout`].
        fn busy_timeout(timeout: Duration);

        /// SQLite's page cache in MiB, as [`Builder::cache_size_mb`].
        fn cache_size_mb(megabytes: u32);

        /// The rules for SQL fragments, as [`Builder::sql_policy`].
        fn sql_policy(policy: nanasqlite_core::sql::SqlPolicy);

        /// Notice writes by other connections and processes, as
        /// [`Builder::watch_external_writes`]; the check runs on the writer thread, never on the
        /// caller's.
        fn watch_external_writes(interval: Duration);

        /// Encrypt values at rest, as [`Builder::encryption`]. Values are encrypted on the writer
        /// thread and decrypted where they are read (a lane, or the caller for an inline point read:
        /// microseconds, as the decoding that follows).
        fn encryption(encryption: nanasqlite_core::Encryption);

        /// Read plaintext rows of an AEAD-encrypted table, as [`Builder::allow_legacy_plaintext`].
        fn allow_legacy_plaintext(allow: bool);

        /// Whether opening an encrypted store decrypts one row first, as [`Builder::check_key`].
        fn check_key(check: bool);

        /// Registers `hook` on the table this builder opens, as [`Builder::hook`]. Writes run their
        /// hooks on the writer thread; reads run `after_read` on the caller's.
        ///
        /// # Examples
        ///
        /// ```
        /// use nanasqlite_core::hook;
        /// use nanasqlite_pool::AsyncNanaSQLite;
        /// use serde_json::json;
        ///
        /// # futures::executor::block_on(async {
        /// let db = AsyncNanaSQLite::builder(":memory:").hook(hook::unique("email")).open().await?;
        /// db.set("ann", &json!({"email": "a@example.com"})).await?;
        /// assert!(db.set("bob", &json!({"email": "a@example.com"})).await.unwrap_err().is_refused());
        /// # Ok::<(), nanasqlite_core::Error>(())
        /// # }).unwrap();
        /// ```
        fn hook(hook: impl Into<nanasqlite_core::hook::Registration>);

        /// Write-back mode, as [`Builder::write_back`]: writes are staged on the caller's thread and
        /// committed on the writer in chunks. At the bound, [`OnFull::Wait`](nanasqlite_core::writeback::OnFull::Wait)
        /// awaits a flush: the async store never blocks its caller's thread.
        fn write_back(write_back: nanasqlite_core::WriteBack);

        /// The longest string or blob a statement may make or store, as [`Builder::max_length`].
        fn max_length(bytes: u32);

        /// Bytes SQLite may memory-map, as [`Builder::mmap_size`].
        fn mmap_size(bytes: u64);
    }

    fn sizes(&self) -> Result<Sizes> {
        let readers = self.read_pool_size.unwrap_or(self.max_workers.saturating_sub(1));
        if self.max_workers == 0 || readers >= self.max_workers {
            return Err(Error::Validation {
                message: format!(
                    "max_workers ({}) must leave room for the writer and {readers} reader(s)",
                    self.max_workers
                ),
            });
        }
        if self.queue_capacity == 0 {
            return Err(Error::Validation { message: "queue_capacity must be at least 1".to_owned() });
        }
        if self.thread_name_prefix.is_empty() || self.thread_name_prefix.contains('\0') {
            return Err(Error::Validation {
                message: "thread_name_prefix must be non-empty text without NUL characters".to_owned(),
            });
        }
        Ok(Sizes {
            readers,
            queue_capacity: self.queue_capacity,
            inline_reads: self.inline_reads,
            inline_writes: self.inline_writes,
            thread_prefix: self.thread_name_prefix.as_str().into(),
        })
    }

    /// Starts the pool, opens the database and the table (creating them if needed), and loads
    /// the table if asked. No database call runs on the caller's thread.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad table name or sizes; [`Error::Open`] when the file
    /// cannot be opened or is not SQLite; [`Error::Schema`] when the table exists with another
    /// layout; [`Error::Io`] when no thread can be started.
    pub async fn open(self) -> Result<AsyncNanaSQLite> {
        let (path, connection) = (self.core.options().path.clone(), self.core.options().connection_options());
        self.open_on(move || SqliteStorage::open(&path, &connection)).await
    }

    /// Opens the database whose URL was given as this builder's path, on the backend the URL
    /// names ([`AsyncNanaSQLite::open_url`] lists the forms), connecting on the writer thread.
    /// The store's [`path`](AsyncNanaSQLite::path) is the file (SQLite) or the URL without
    /// its password (PostgreSQL).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a URL of another scheme, a `sqlite://` URL with parameters
    /// (options go on the builder), or `postgres://` without the `postgres` feature; otherwise
    /// as [`open`](Self::open), with the backend's errors.
    pub async fn open_url(self) -> Result<AsyncNanaSQLite<AnyStorage>> {
        let url = self.core.url()?;
        let (shown, connection) = (AnyStorage::shown(&url), self.core.options().connection_options());
        let mut store = self.open_on(move || AnyStorage::connect(&url, &connection)).await?;
        store.path = Arc::new(PathBuf::from(shown));
        Ok(store)
    }

    /// As [`open`](Self::open), on connections of any backend that `connect` opens (on the
    /// writer thread); the path is then only a name for the database. Readers are opened as
    /// the backend says ([`Storage::readers`]).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), with the backend's errors.
    pub async fn open_on<S: Storage>(
        self,
        connect: impl FnOnce() -> Result<S> + Send + 'static,
    ) -> Result<AsyncNanaSQLite<S>> {
        let sizes = self.sizes()?;
        let options: &Options = self.core.options();
        let opening = Opening::new(options)?;
        let (path, lock_timeout, connecting) = (Arc::new(options.path.clone()), options.lock_timeout, opening.clone());
        let open = move || {
            let storage = connect()?;
            let (shared, table) = connecting.connect(&storage)?;
            let readers = storage.readers();
            Ok((storage, Opened { shared, table, readers }))
        };
        let (pool, table) = Pool::open(open, sizes, self.spawner, lock_timeout).await?;
        let handles = AsyncNanaSQLite::open_handles(&pool);
        let store = AsyncNanaSQLite { table, pool: Arc::new(pool), path, handles };
        store.start_flusher(&store.handles)?;
        store.finish_opening(opening).await?;
        Ok(store)
    }
}
