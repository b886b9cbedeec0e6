//! Write-back mode in the engine: the rows staged per table ([`TableStaging`]), the state one
//! open database shares ([`WriteBackState`]: bounds, the dead-letter queue, counters, the
//! flusher's wake-up), staging a write ([`stage`]), and committing what is staged in chunks
//! ([`FlushAll`], an operation both stores run on their writer).

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use hashlink::LinkedHashMap;
use parking_lot::{Condvar, Mutex};

use super::room::{Room, WaitingForRoom};

use super::hooks::{self, Events, Hooks};
use super::{Applied, Kind, Operation, Shared, Table, TableSettings};
use crate::cache::{CacheChange, CachedValue, Change};
use crate::error::{Error, Result};
use crate::identifier::Identifier;
use crate::storage::{Storage, atomically};
use crate::writeback::{DeadLetter, Flush, OnFull, WriteBack, WriteBackStats};

/// One staged row: its value (`None`: a delete), when it was staged, and its size.
#[derive(Clone, Debug)]
struct Staged {
    value: Option<Arc<CachedValue>>,
    seq: u64,
    bytes: usize,
}

/// The rows staged for one table (shared by every handle on it), with what committing them
/// needs: the backend's handle and the table's codec.
pub struct TableStaging<S: Storage> {
    name: Identifier,
    handle: S::Table,
    settings: TableSettings,
    /// The table's hooks: they hear of each row once its chunk commits.
    hooks: Arc<Hooks<S>>,
    rows: Mutex<LinkedHashMap<Box<str>, Staged>>,
}

impl<S: Storage> fmt::Debug for TableStaging<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableStaging").field("name", &self.name).field("rows", &self.rows.lock().len()).finish()
    }
}

impl<S: Storage> TableStaging<S> {
    /// What is staged for `key`: `Some(None)` for a staged delete, `None` when nothing is.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<Option<Arc<CachedValue>>> {
        self.rows.lock().get(key).map(|staged| staged.value.clone())
    }
}

/// A row taken for a commit.
struct Taken<S: Storage> {
    table: Arc<TableStaging<S>>,
    key: Box<str>,
    staged: Staged,
}

#[derive(Debug, Default)]
struct Counters {
    flushes: u64,
    chunks: u64,
    rows: u64,
    largest: usize,
}

/// Write-back mode's state for one open database.
pub struct WriteBackState<S: Storage> {
    config: WriteBack,
    tables: Mutex<Vec<Arc<TableStaging<S>>>>,
    next_seq: AtomicU64,
    staged: AtomicUsize,
    staged_bytes: AtomicUsize,
    /// Held while a write checks the bound and claims its room, so that writes to different
    /// tables cannot pass the bound together: it bounds the whole database, not each table.
    bound: Mutex<()>,
    /// Signalled when rows leave the staging area (room for waiting writers).
    room: Arc<Room>,
    /// Signalled to wake the flusher (`true`: flush now).
    wake: (Mutex<bool>, Condvar),
    stopped: AtomicBool,
    dead: Mutex<VecDeque<DeadLetter>>,
    dropped: AtomicU64,
    counters: Mutex<Counters>,
}

impl<S: Storage> fmt::Debug for WriteBackState<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBackState").field("config", &self.config).field("stats", &self.stats()).finish()
    }
}

impl<S: Storage> WriteBackState<S> {
    /// The state of a database opened with `config`.
    #[must_use]
    pub fn new(config: WriteBack) -> Self {
        Self {
            config,
            tables: Mutex::default(),
            next_seq: AtomicU64::new(1),
            staged: AtomicUsize::new(0),
            staged_bytes: AtomicUsize::new(0),
            bound: Mutex::new(()),
            room: Arc::default(),
            wake: (Mutex::new(false), Condvar::new()),
            stopped: AtomicBool::new(false),
            dead: Mutex::default(),
            dropped: AtomicU64::new(0),
            counters: Mutex::default(),
        }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &WriteBack {
        &self.config
    }

    /// The staging area of table `name`, made on first use.
    pub(crate) fn table(
        &self,
        name: &Identifier,
        handle: &S::Table,
        settings: &TableSettings,
        hooks: &Arc<Hooks<S>>,
    ) -> Arc<TableStaging<S>> {
        let mut tables = self.tables.lock();
        if let Some(found) = tables.iter().find(|table| &table.name == name) {
            return Arc::clone(found);
        }
        let staging = Arc::new(TableStaging {
            name: name.clone(),
            handle: handle.clone(),
            settings: settings.clone(),
            hooks: Arc::clone(hooks),
            rows: Mutex::default(),
        });
        tables.push(Arc::clone(&staging));
        staging
    }

    /// When a flush at close must stop: the close timeout from now.
    #[must_use]
    pub fn close_deadline(&self) -> Instant {
        Instant::now() + self.config.close_timeout
    }

    /// Whether nothing is staged.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.staged.load(Ordering::Acquire) == 0
    }

    /// What has been done so far.
    #[must_use]
    pub fn stats(&self) -> WriteBackStats {
        let counters = self.counters.lock();
        WriteBackStats {
            staged: self.staged.load(Ordering::Acquire),
            staged_bytes: self.staged_bytes.load(Ordering::Acquire),
            flushes: counters.flushes,
            chunks: counters.chunks,
            rows_committed: counters.rows,
            largest_chunk: counters.largest,
            dead_letters: self.dead.lock().len(),
            dead_letters_dropped: self.dropped.load(Ordering::Acquire),
        }
    }

    /// Stages `value` (`None`: a delete) for `key` of `table`, replacing what was staged for
    /// it; `false` when the bound leaves no room (nothing is staged then).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the store has begun closing ([`stop`](Self::stop)). The check and
    /// the row's place in line happen under the bound's lock, which `stop` takes too: a row is
    /// either staged before the close's last flush reads the line, so that flush takes it, or
    /// refused.
    fn put(&self, table: &TableStaging<S>, key: &str, value: Option<Arc<CachedValue>>) -> Result<bool> {
        let bytes = key.len() + value.as_ref().and_then(|value| value.json()).map_or(0, str::len);
        let mut rows = table.rows.lock();
        let (replaced_rows, replaced_bytes) = rows.get(key).map_or((0, 0), |staged| (1, staged.bytes));
        let bound = self.bound.lock();
        if self.stopped.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let staged = self.staged.load(Ordering::Acquire) + 1 - replaced_rows;
        let staged_bytes = self.staged_bytes.load(Ordering::Acquire) + bytes - replaced_bytes;
        if staged > self.config.max_staged || staged_bytes > self.config.max_staged_bytes {
            return Ok(false);
        }
        self.staged.fetch_add(1 - replaced_rows, Ordering::AcqRel);
        self.staged_bytes.fetch_add(bytes, Ordering::AcqRel);
        self.staged_bytes.fetch_sub(replaced_bytes, Ordering::AcqRel);
        let seq = self.next_seq.fetch_add(1, Ordering::AcqRel);
        drop(bound);
        // Still under the rows lock: a flush that read its line after this row's place waits
        // here for the row to be in (see `stop`).
        rows.remove(key);
        rows.insert(key.into(), Staged { value, seq, bytes });
        drop(rows);
        let due = match self.config.flush {
            Flush::Immediate => true,
            Flush::Every(rows) => staged >= rows,
            Flush::Interval(_) | Flush::Manual => false,
        };
        if due {
            self.wake_flusher();
        }
        Ok(true)
    }

    /// How many times room was made so far ([`Remedy::WaitForRoom`] carries it).
    fn room_seen(&self) -> u64 {
        self.room.seen()
    }

    /// Blocks this thread until rows leave the staging area after `seen` (or the store
    /// stops), or at most `limit`: how the sync store waits for room.
    pub fn wait_for_room(&self, seen: u64, limit: Duration) {
        self.room.wait(seen, limit);
    }

    /// A future resolving once rows leave the staging area after `seen` (or the store stops):
    /// how the async store waits for room, without blocking its caller's thread.
    #[must_use]
    pub fn room_made(&self, seen: u64) -> WaitingForRoom {
        WaitingForRoom::new(Arc::clone(&self.room), seen)
    }

    /// How a write that found no room (after `seen` times room was made) makes room.
    fn remedy(&self, seen: u64) -> Remedy {
        match self.config.on_full {
            OnFull::Wait => {
                self.wake_flusher();
                Remedy::WaitForRoom(seen)
            }
            OnFull::Flush => Remedy::Flush,
            OnFull::Error => Remedy::Refuse(self.full()),
        }
    }

    /// Asks the flusher to flush now.
    pub fn wake_flusher(&self) {
        *self.wake.0.lock() = true;
        self.wake.1.notify_one();
    }

    /// The rows staged up to `upto`, at most `limit` of them, oldest first.
    fn take(&self, limit: usize, upto: u64) -> Vec<Taken<S>> {
        let mut taken = Vec::new();
        for table in self.tables.lock().iter() {
            let rows = table.rows.lock();
            for (key, staged) in rows.iter().filter(|(_, staged)| staged.seq <= upto) {
                if taken.len() == limit {
                    return taken;
                }
                taken.push(Taken { table: Arc::clone(table), key: key.clone(), staged: staged.clone() });
            }
        }
        taken
    }

    /// Takes `rows` out of the staging area, those not staged again since they were taken.
    /// Takes committed `rows` out of the staging area, those not staged again since they were
    /// taken; with `uncache`, the caches of their tables (those `shared` has open) forget them
    /// too (write-back's `cache_committed(false)`), under the staging lock, so that a write
    /// staged meanwhile stays cached.
    fn release(&self, rows: &[Taken<S>], uncache: Option<&Shared<S>>) {
        let tables = uncache.map(Shared::tables).unwrap_or_default();
        for row in rows {
            let mut staged = row.table.rows.lock();
            if staged.get(&row.key).is_some_and(|now| now.seq == row.staged.seq) {
                staged.remove(&row.key);
                self.staged.fetch_sub(1, Ordering::AcqRel);
                self.staged_bytes.fetch_sub(row.staged.bytes, Ordering::AcqRel);
                for table in tables.iter().filter(|table| table.name() == &row.table.name) {
                    table.forget(&row.key);
                }
            }
        }
        self.room.made();
    }

    /// The shared state whose caches forget committed rows, if the configuration says so.
    fn uncaching<'a>(&self, shared: &'a Shared<S>) -> Option<&'a Shared<S>> {
        (!self.config.cache_committed).then_some(shared)
    }

    /// Queues `rows`, which failed to commit with `error`, as dead letters.
    fn bury(&self, rows: &[Taken<S>], error: &Error) {
        let mut dead = self.dead.lock();
        for row in rows {
            while !dead.is_empty() && dead.len() >= self.config.dead_letter_capacity {
                dead.pop_front();
                self.dropped.fetch_add(1, Ordering::AcqRel);
            }
            if self.config.dead_letter_capacity == 0 {
                self.dropped.fetch_add(1, Ordering::AcqRel);
                continue;
            }
            dead.push_back(DeadLetter {
                table: row.table.name.as_str().to_owned(),
                key: row.key.to_string(),
                value: row.staged.value.as_ref().and_then(|value| value.json()).map(str::to_owned),
                error: error.to_string(),
                at: SystemTime::now(),
            });
        }
    }

    /// The dead letters, oldest first.
    #[must_use]
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead.lock().iter().cloned().collect()
    }

    /// Empties the dead-letter queue; how many rows it held.
    pub fn clear_dead_letters(&self) -> usize {
        std::mem::take(&mut *self.dead.lock()).len()
    }

    /// Takes the dead letters out, to stage them again.
    pub(crate) fn take_dead_letters(&self) -> Vec<DeadLetter> {
        std::mem::take(&mut *self.dead.lock()).into()
    }

    /// The error of a write refused at the bound ([`OnFull::Error`]).
    fn full(&self) -> Error {
        let stats = self.stats();
        Error::validation(format!(
            "write-back staging is full ({} rows, {} bytes staged): flush, or raise max_staged",
            stats.staged, stats.staged_bytes
        ))
    }

    /// What an explicit flush reports: [`Error::Unflushed`] when rows of it became dead letters.
    ///
    /// # Errors
    ///
    /// [`Error::Unflushed`].
    pub fn report_flush(&self, flushed: Flushed) -> Result<()> {
        if flushed.failed > 0 { Err(self.unflushed()) } else { Ok(()) }
    }

    /// What close reports, after its last flush (`flushed`): stops the flusher, then
    /// [`Error::Unflushed`] when rows are left staged or in the dead-letter queue. A store
    /// already closed has nothing to report.
    ///
    /// # Errors
    ///
    /// The flush's error; [`Error::Unflushed`].
    pub fn report_close(&self, flushed: Result<Flushed>) -> Result<()> {
        self.stop();
        match flushed {
            Err(Error::Closed) => Ok(()),
            Err(error) => Err(error),
            Ok(_) => {
                let stats = self.stats();
                if stats.staged > 0 || stats.dead_letters > 0 { Err(self.unflushed()) } else { Ok(()) }
            }
        }
    }

    fn unflushed(&self) -> Error {
        let stats = self.stats();
        Error::Unflushed { staged: stats.staged, dead_letters: stats.dead_letters }
    }

    /// Starts the flusher thread, `nanasqlite-flush`: it runs [`run_flusher`](Self::run_flusher)
    /// with `flush`, which runs [`FlushAll`] on the store's writer.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the thread cannot start.
    pub fn spawn_flusher(
        self: &Arc<Self>,
        handles: Weak<OpenHandles>,
        flush: impl Fn(Option<Instant>) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let state = Arc::clone(self);
        std::thread::Builder::new()
            .name("nanasqlite-flush".to_owned())
            .spawn(move || state.run_flusher(&handles, &flush))
            .map(drop)
            .map_err(Error::Io)
    }

    /// Stops the flusher (at close), refuses every row staged from now on with
    /// [`Error::Closed`], and lets writers waiting for room see the store closed.
    pub fn stop(&self) {
        // Under the bound's lock, as `put` checks it: once this returns, no row is half staged.
        let bound = self.bound.lock();
        self.stopped.store(true, Ordering::Release);
        drop(bound);
        self.wake_flusher();
        self.room.made();
    }

    /// Runs the flusher on this thread until the store closes or its last handle is gone
    /// (`alive` dies), calling `flush` (which runs [`FlushAll`] on the store's writer) when the
    /// policy says, and a last time, bounded by the close timeout, once the handles are gone.
    pub fn run_flusher<A: ?Sized>(&self, alive: &Weak<A>, flush: &dyn Fn(Option<Instant>) -> Result<()>) {
        const LOOK: Duration = Duration::from_millis(100);
        let mut next_interval = match self.config.flush {
            Flush::Interval(interval) => Some(Instant::now() + interval),
            _ => None,
        };
        while !self.stopped.load(Ordering::Acquire) {
            let woken = {
                let mut wake = self.wake.0.lock();
                let until = next_interval.map_or(LOOK, |at| at.saturating_duration_since(Instant::now()).min(LOOK));
                if !*wake {
                    self.wake.1.wait_for(&mut wake, until);
                }
                std::mem::take(&mut *wake)
            };
            if self.stopped.load(Ordering::Acquire) {
                return;
            }
            if alive.strong_count() == 0 {
                let deadline = Instant::now() + self.config.close_timeout;
                if let Err(error) = flush(Some(deadline)) {
                    tracing::error!(%error, "write-back: the last flush after the handles were dropped failed");
                }
                return;
            }
            let interval_due = next_interval.is_some_and(|at| Instant::now() >= at);
            if (woken || interval_due)
                && !self.is_empty()
                && let Err(error) = flush(None)
            {
                tracing::warn!(%error, "write-back: a background flush failed");
            }
            if interval_due && let Flush::Interval(interval) = self.config.flush {
                next_interval = Some(Instant::now() + interval);
            }
        }
    }
}

/// Held by every handle on one open store (clones and other tables alike): dropping the last
/// one runs what the store does then. In write-back mode the sync store commits what is staged
/// before the drop returns; the async store, which must not block its caller's runtime, wakes
/// its flusher to commit it in the background. The flusher watches it (through a `Weak`) to
/// know when the handles are gone.
pub struct OpenHandles {
    at_last_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl fmt::Debug for OpenHandles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenHandles").field("at_last_drop", &self.at_last_drop.is_some()).finish()
    }
}

impl OpenHandles {
    /// The handles of a store that does nothing when the last is dropped.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self { at_last_drop: None })
    }

    /// The handles of a store that runs `work` when the last is dropped.
    #[must_use]
    pub fn at_last_drop(work: impl FnOnce() + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self { at_last_drop: Some(Box::new(work)) })
    }
}

impl Drop for OpenHandles {
    fn drop(&mut self) {
        if let Some(work) = self.at_last_drop.take() {
            work();
        }
    }
}

/// What staging one write did.
#[derive(Debug)]
pub(crate) enum Staging {
    /// Staged.
    Done,
    /// The bound leaves no room: make room as the remedy says, then stage again.
    Full(Remedy),
}

/// How a write that finds the bound reached makes room, as [`OnFull`] says: decided here, for
/// both stores alike.
#[derive(Debug)]
pub(crate) enum Remedy {
    /// The flusher was asked to flush now: wait until rows leave the staging area after this
    /// count of times room was made (the sync store blocks its thread, the async store awaits
    /// [`WriteBackState::room_made`]), then stage again.
    WaitForRoom(u64),
    /// Run a flush now, on the caller's call, then stage again.
    Flush,
    /// Fail the write with this error; nothing is staged.
    Refuse(Error),
}

/// Stages a write of `key` in write-back mode: `value` (`None`: a delete, of a key the caller
/// found present) through the table's hooks (their checks and rewrites; constraints that need
/// the write's transaction cannot be registered on a write-back store), then into the staging
/// area and the cache. The hooks hear of the write once the chunk holding it commits.
///
/// # Errors
///
/// A hook's refusal.
pub(crate) fn stage<S: Storage>(table: &Table<S>, key: &str, value: Option<Arc<CachedValue>>) -> Result<Staging> {
    let Some((state, staging)) = table.write_back() else {
        return Err(Error::validation("this table is not in write-back mode"));
    };
    let value = match value {
        Some(value) => Some(hooks::admit::<S>(None, table, key, &value)?),
        None => {
            if !table.hooks().is_empty() {
                hooks::may_delete(table, key)?;
            }
            None
        }
    };
    let seen = state.room_seen();
    if !state.put(staging, key, value.clone())? {
        return Ok(Staging::Full(state.remedy(seen)));
    }
    let change = match value {
        Some(value) => Change::Put(key.into(), value),
        None => Change::Remove(key.into()),
    };
    table.apply(CacheChange::new(change));
    Ok(Staging::Done)
}

/// Commits what is staged, up to now, in chunks of the configured size, each in a transaction
/// of its own (so after a crash the file holds a prefix of the chunks). A chunk that fails
/// goes to the dead-letter queue, and its keys read as the file has them again. Runs alone on
/// the writer; stops early past `deadline`.
pub struct FlushAll<S: Storage> {
    shared: Arc<Shared<S>>,
    deadline: Option<Instant>,
}

impl<S: Storage> fmt::Debug for FlushAll<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushAll").field("deadline", &self.deadline).finish_non_exhaustive()
    }
}

impl<S: Storage> FlushAll<S> {
    /// Flushes the write-back rows of `shared`'s database, stopping past `deadline`.
    #[must_use]
    pub fn new(shared: Arc<Shared<S>>, deadline: Option<Instant>) -> Self {
        Self { shared, deadline }
    }
}

/// What a flush did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Rows committed.
    pub committed: usize,
    /// Rows sent to the dead-letter queue.
    pub failed: usize,
    /// Rows still staged (staged during the flush, or left by the deadline).
    pub remaining: usize,
}

impl<S: Storage> Operation<S> for FlushAll<S> {
    type Output = Flushed;

    fn name(&self) -> &'static str {
        "flush"
    }

    fn kind(&self) -> Kind {
        Kind::Exclusive
    }

    fn run(&mut self, storage: &mut S, _: &Table<S>) -> Result<Applied<Flushed>> {
        let Some(state) = self.shared.write_back() else { return Ok(Applied::plain(Flushed::default())) };
        let upto = state.next_seq.load(Ordering::Acquire);
        let mut flushed = Flushed::default();
        loop {
            let chunk = state.take(state.config.chunk_size, upto);
            if chunk.is_empty() || self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                break;
            }
            match atomically(storage, |storage| write_chunk(storage, &chunk)) {
                Ok(()) => {
                    state.release(&chunk, state.uncaching(&self.shared));
                    announce(&chunk);
                    flushed.committed += chunk.len();
                    let mut counters = state.counters.lock();
                    counters.chunks += 1;
                    counters.rows += chunk.len() as u64;
                    counters.largest = counters.largest.max(chunk.len());
                }
                Err(error) => {
                    tracing::warn!(%error, rows = chunk.len(), "write-back: a chunk failed to commit; replaying it row by row");
                    let (committed, failed) = self.replay(storage, state, &chunk);
                    flushed.committed += committed;
                    flushed.failed += failed;
                }
            }
        }
        state.counters.lock().flushes += 1;
        flushed.remaining = state.staged.load(Ordering::Acquire);
        Ok(Applied::plain(flushed))
    }
}

impl<S: Storage> FlushAll<S> {
    /// Commits the rows of a failed chunk one by one, each in a transaction of its own (as
    /// Python NanaSQLite does), so that only the rows that cannot commit become dead letters.
    fn replay(&self, storage: &mut S, state: &WriteBackState<S>, chunk: &[Taken<S>]) -> (usize, usize) {
        let (mut committed, mut failed) = (0, 0);
        for row in chunk {
            let one = std::slice::from_ref(row);
            match atomically(storage, |storage| write_chunk(storage, one)) {
                Ok(()) => {
                    announce(one);
                    committed += 1;
                }
                Err(error) => {
                    tracing::error!(%error, key = %row.key, "write-back: a row failed to commit; it is a dead letter");
                    state.bury(one, &error);
                    self.forget(one);
                    failed += 1;
                }
            }
            state.release(one, state.uncaching(&self.shared));
        }
        let mut counters = state.counters.lock();
        counters.rows += committed as u64;
        (committed, failed)
    }

    /// Drops `chunk`'s keys from every cache of their tables, so that they read as the file
    /// has them (the failed values were cached when staged).
    fn forget(&self, chunk: &[Taken<S>]) {
        for table in self.shared.tables() {
            for row in chunk.iter().filter(|row| &row.table.name == table.name()) {
                table.forget(&row.key);
            }
        }
    }
}

/// Tells the hooks of each row's table, row by row in order, that `chunk` has committed.
fn announce<S: Storage>(chunk: &[Taken<S>]) {
    for row in chunk {
        let mut events = Events::of_hooks(&row.table.hooks);
        match &row.staged.value {
            Some(value) => events.written(&row.key, value),
            None => events.deleted(&row.key),
        }
        events.notify();
    }
}

/// Writes `chunk` in the transaction the caller opened.
fn write_chunk<S: Storage>(storage: &S, chunk: &[Taken<S>]) -> Result<()> {
    for row in chunk {
        let handle = &row.table.handle;
        match &row.staged.value {
            Some(value) => {
                let codec = row.table.settings.codec.read().clone();
                storage.put(handle, &row.key, codec.seal(value.text(&row.key)?)?.stored())?;
            }
            None => {
                storage.delete(handle, &row.key)?;
            }
        }
    }
    Ok(())
}

/// Stages the dead letters again (their values as they were), for the next flush; how many.
/// A letter the table's hooks refuse now stays a dead letter, with the refusal as its error;
/// the others are staged. Letters of tables not open on this store stay, and so do the
/// letters left when the staging area is full.
#[must_use]
pub(crate) fn retry_dead_letters<S: Storage>(shared: &Shared<S>) -> usize {
    let Some(state) = shared.write_back() else { return 0 };
    let tables = shared.tables();
    let (mut retried, mut kept) = (0, Vec::new());
    let mut letters = state.take_dead_letters().into_iter();
    for mut letter in letters.by_ref() {
        let Some(table) = tables.iter().find(|table| table.name().as_str() == letter.table) else {
            kept.push(letter);
            continue;
        };
        match stage(table, &letter.key, letter.value.clone().map(CachedValue::new)) {
            Ok(Staging::Done) => retried += 1,
            Ok(Staging::Full(_)) => {
                kept.push(letter);
                break;
            }
            // The store is closing: every letter stays as it was, with its own cause.
            Err(Error::Closed) => {
                kept.push(letter);
                break;
            }
            Err(refusal) => {
                letter.error = refusal.to_string();
                letter.at = SystemTime::now();
                kept.push(letter);
            }
        }
    }
    kept.extend(letters);
    state.dead.lock().extend(kept);
    retried
}
