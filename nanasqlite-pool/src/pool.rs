//! The pool: one writer lane, optional reader lanes, their queues, and their lifecycle.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use nanasqlite_core::cache::Cache;
use nanasqlite_core::storage::{ConnectionOptions, SqliteStorage, SqliteTable, Storage};
use nanasqlite_core::watch::ExternalWrites;
use nanasqlite_core::{Error, Identifier, Options, Result};
use parking_lot::{Mutex, RwLock};

use crate::job::{Job, Kind, Outcome, Task};
use crate::lanes::{Lane, Reopen};
use crate::spawn::Spawn;
use crate::stats::{Counters, Stats};

type Queue = flume::Sender<Box<dyn Job>>;

/// How many lanes, and how deep their queues.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    pub(crate) readers: usize,
    pub(crate) queue_capacity: usize,
}

/// The lanes of one database file and the queues that feed them.
pub(crate) struct Pool {
    writer: RwLock<Option<Queue>>,
    /// `None` without readers: reads then run on the writer lane.
    readers: RwLock<Option<Queue>>,
    /// One receiver per lane, answered with how closing its connection went.
    exits: Mutex<Vec<flume::Receiver<Result<()>>>>,
    closed: AtomicBool,
    /// A `begin()` transaction holds the writer.
    transaction_open: AtomicBool,
    /// Bumped when a restore replaced the file: readers reopen.
    generation: Arc<AtomicU64>,
    /// The tables opened on this pool and their caches, for a restore to reset.
    tables: Mutex<Vec<(Identifier, Weak<Cache>)>>,
    connection: ConnectionOptions,
    /// Opt-in: notice writes by other connections.
    external: Option<ExternalWrites>,
    lanes: usize,
    lock_timeout: Option<Duration>,
    counters: Arc<Counters>,
    path: PathBuf,
}

impl Pool {
    /// Starts the writer lane, which opens the file and creates `table`, then (once the file
    /// is in WAL mode) the readers. Returns the pool and the table's handle.
    pub(crate) async fn open(
        options: &Options,
        sizes: Sizes,
        spawner: &dyn Spawn,
        table: Identifier,
    ) -> Result<(Self, SqliteTable)> {
        let counters = Arc::new(Counters::default());
        let (writer, queue) = flume::bounded(sizes.queue_capacity);
        let (path, connection) = (options.path.clone(), options.connection_options());
        let open_writer = move || {
            let storage = SqliteStorage::open(&path, &connection)?;
            let table = storage.open_table(&table)?;
            let version = storage.data_version()?;
            Ok((storage, (table, version)))
        };
        let (exit, (table, version)) =
            start_lane(spawner, "nanasqlite-writer".into(), open_writer, queue, &counters, None).await?;
        let mut exits = vec![exit];
        let generation = Arc::new(AtomicU64::new(0));
        let readers = if sizes.readers == 0 || options.is_memory() {
            None
        } else {
            let (readers, queue) = flume::bounded(sizes.queue_capacity);
            for i in 0..sizes.readers {
                let (path, connection) = (options.path.clone(), options.connection_options());
                let reopen = {
                    let (path, connection) = (path.clone(), connection.clone());
                    let open: Box<dyn Fn() -> Result<SqliteStorage> + Send> =
                        Box::new(move || SqliteStorage::open_read_only(&path, &connection));
                    Reopen { generation: Arc::clone(&generation), seen: 0, open }
                };
                let open_reader = move || Ok((SqliteStorage::open_read_only(&path, &connection)?, ()));
                let name = format!("nanasqlite-reader-{i}");
                exits.push(start_lane(spawner, name, open_reader, queue.clone(), &counters, Some(reopen)).await?.0);
            }
            Some(readers)
        };
        let pool = Self {
            lanes: exits.len(),
            writer: RwLock::new(Some(writer)),
            readers: RwLock::new(readers),
            exits: Mutex::new(exits),
            closed: AtomicBool::new(false),
            transaction_open: AtomicBool::new(false),
            generation,
            tables: Mutex::new(Vec::new()),
            connection: options.connection_options(),
            external: options.watch_external_writes.map(|interval| {
                let external = ExternalWrites::new(interval);
                if let Some(version) = version {
                    external.changed(version); // the baseline
                }
                external
            }),
            lock_timeout: options.lock_timeout,
            counters,
            path: options.path.clone(),
        };
        Ok((pool, table))
    }

    /// Runs `work` on a lane, inside `span`: writes on the writer, reads on a reader (or the
    /// writer when there is none). Waits while the queue is full.
    pub(crate) async fn run<R, F>(&self, kind: Kind, span: tracing::Span, work: F) -> Result<R>
    where
        F: Fn(&mut SqliteStorage) -> Result<Outcome<R>> + Send + 'static,
        R: Send + 'static,
    {
        self.submit(kind, span, work).await?.await.map_err(|_| Error::Closed)?
    }

    /// Hands `work` to a lane and returns the receiver of its answer (dropping the receiver
    /// before the job starts cancels it).
    pub(crate) async fn submit<R, F>(
        &self,
        kind: Kind,
        span: tracing::Span,
        work: F,
    ) -> Result<futures_channel::oneshot::Receiver<Result<R>>>
    where
        F: Fn(&mut SqliteStorage) -> Result<Outcome<R>> + Send + 'static,
        R: Send + 'static,
    {
        let queue = self.queue(kind)?;
        let (job, answer) = Task::prepare(kind, self.lock_timeout, span, work);
        queue.send_async(job).await.map_err(|_| Error::Closed)?;
        Ok(answer)
    }

    fn queue(&self, kind: Kind) -> Result<Queue> {
        let readers = self.readers.read();
        let queue = match (kind, readers.as_ref()) {
            // Exclusive jobs and writes go to the writer; reads to a reader when there is one.
            (Kind::Read, Some(readers)) => Some(readers.clone()),
            _ => self.writer.read().clone(),
        };
        queue.ok_or(Error::Closed)
    }

    /// Remembers a table and its cache, for a restore to recreate and reset.
    pub(crate) fn register(&self, name: &Identifier, cache: &Arc<Cache>) {
        let mut tables = self.tables.lock();
        tables.retain(|(_, cache)| cache.strong_count() > 0);
        tables.push((name.clone(), Arc::downgrade(cache)));
    }

    /// The live tables, and their caches.
    pub(crate) fn tables(&self) -> Vec<(Identifier, Arc<Cache>)> {
        self.tables.lock().iter().filter_map(|(name, cache)| Some((name.clone(), cache.upgrade()?))).collect()
    }

    /// If a check for writes by other connections is due, sends one to the writer (without
    /// waiting, and skipped when its queue is full): it empties every cache if another
    /// connection committed. Nothing here touches SQLite on the caller's thread.
    pub(crate) fn notice_external_writes(self: &Arc<Self>) {
        if !self.external.as_ref().is_some_and(ExternalWrites::due) {
            return;
        }
        let Ok(queue) = self.queue(Kind::Exclusive) else { return };
        let pool = Arc::downgrade(self);
        let check = move |storage: &mut SqliteStorage| {
            let version = storage.data_version()?;
            let Some(pool) = pool.upgrade() else { return Ok(Outcome::plain(())) };
            let changed = version.zip(pool.external.as_ref()).is_some_and(|(v, external)| external.changed(v));
            if changed {
                pool.tables().iter().for_each(|(_, cache)| cache.clear());
            }
            Ok(Outcome::plain(()))
        };
        let _ =
            queue.try_send(Task::detached(Kind::Exclusive, tracing::debug_span!("nanasqlite", op = "watch"), check));
    }

    /// After a restore: readers reopen before their next group.
    pub(crate) fn file_replaced(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The file could not be reopened: no more jobs.
    pub(crate) fn fail(&self) {
        self.closed.store(true, Ordering::Release);
        drop(self.readers.write().take());
        drop(self.writer.write().take());
    }

    pub(crate) fn connection_options(&self) -> &ConnectionOptions {
        &self.connection
    }

    /// Whether a `begin()` transaction is open.
    pub(crate) fn in_transaction(&self) -> bool {
        self.transaction_open.load(Ordering::Acquire)
    }

    /// Marks a `begin()` transaction open; `false` if one already was.
    pub(crate) fn open_transaction(&self) -> bool {
        !self.transaction_open.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn end_transaction(&self) {
        self.transaction_open.store(false, Ordering::Release);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Stops taking jobs, lets the lanes finish every job already queued, and waits until each
    /// has closed its connection. Later calls return at once.
    pub(crate) async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        drop(self.readers.write().take());
        drop(self.writer.write().take());
        let exits = std::mem::take(&mut *self.exits.lock());
        let mut result = Ok(());
        for exit in exits {
            let closed = exit.recv_async().await.unwrap_or_else(|_| Err(lane_lost()));
            result = result.and(closed);
        }
        result
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn stats(&self) -> Stats {
        let depth = |queue: &RwLock<Option<Queue>>| queue.read().as_ref().map_or(0, flume::Sender::len);
        self.counters.snapshot(depth(&self.writer), depth(&self.readers), self.lanes)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Starts one lane, which opens its own connection (and whatever else `open` makes there);
/// returns the receiver of its exit report, and what `open` made.
async fn start_lane<T: Send + 'static>(
    spawner: &dyn Spawn,
    name: String,
    open: impl FnOnce() -> Result<(SqliteStorage, T)> + Send + 'static,
    queue: flume::Receiver<Box<dyn Job>>,
    counters: &Arc<Counters>,
    reopen: Option<Reopen>,
) -> Result<(flume::Receiver<Result<()>>, T)> {
    let (ready, opened) = flume::bounded(1);
    let (exit, exited) = flume::bounded(1);
    let counters = Arc::clone(counters);
    spawner.spawn(
        name,
        Box::new(move || match open() {
            Ok((storage, made)) => {
                let _ = ready.send(Ok(made));
                // The writer (the lane that reopens nothing) polls before parking.
                let spins = reopen.is_none();
                let _ = exit.send(Lane::new(queue, storage, counters, spins, reopen).run());
            }
            Err(error) => {
                let _ = ready.send(Err(error));
            }
        }),
    )?;
    let made = opened.recv_async().await.unwrap_or_else(|_| Err(lane_lost()))?;
    Ok((exited, made))
}

fn lane_lost() -> Error {
    Error::Panic { message: "a lane thread stopped before reporting".to_owned() }
}
