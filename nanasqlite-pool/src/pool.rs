//! The pool: one writer lane, reader lanes started when reads need them, their queues, and
//! their lifecycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use nanasqlite_core::engine::{self, Applied, CheckExternalWrites, Checkpoint, Kind, Operation, Shared, Table};
use nanasqlite_core::storage::{OpenReader, Storage};
use nanasqlite_core::{Error, Result};
use parking_lot::{Mutex, RwLock};

use crate::job::{Answer, Job, Task, Ticket};
use crate::lanes::{self, Jobs, Lane, Queue, Role, Slot};
use crate::spawn::Spawn;
use crate::stats::{Counters, Stats};
use crate::waiting::Waiting;

/// How deep the queues are, how many readers may start, whether point reads and writes may run
/// on the caller's thread, and how the pool's threads are named.
#[derive(Clone, Debug)]
pub(crate) struct Sizes {
    pub(crate) readers: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) inline_reads: bool,
    pub(crate) inline_writes: bool,
    pub(crate) thread_prefix: Arc<str>,
}

/// The receiver of a handed-over job's answer, and the job itself when its queue was full (to
/// be sent with [`Pool::send`]).
pub(crate) type Handed<R, S> = (Answer<R>, Option<Box<dyn Job<S>>>);

/// What the writer made while opening: the state every table of the file shares, the first
/// table, and how to open readers.
pub(crate) struct Opened<S: Storage> {
    pub(crate) shared: Arc<Shared<S>>,
    pub(crate) table: Arc<Table<S>>,
    pub(crate) readers: Option<OpenReader<S>>,
}

/// What the writer's connection allows on callers' threads ([`Storage::runs_on_callers`],
/// [`Storage::commits_cheaply`]).
struct Inline {
    reads: bool,
    writes: bool,
}

/// The lanes of one database and the queues that feed them.
pub(crate) struct Pool<S: Storage> {
    writer: RwLock<Option<Queue<S>>>,
    /// Set by the writer while it runs a group.
    writer_busy: Arc<AtomicBool>,
    /// `None` when the backend has no readers (an in-memory database) or none are allowed.
    readers: Option<Readers<S>>,
    /// One receiver per lane started, answered with how closing its connection went.
    exits: Mutex<Vec<flume::Receiver<Result<()>>>>,
    /// The lanes' connections, for point reads on the caller's thread (readers first, the
    /// writer last); empty when inline reads are off.
    slots: RwLock<Vec<Slot<S>>>,
    /// The writer's connection, for point writes on the caller's thread; `None` when inline
    /// writes are off or the backend does not commit cheaply.
    writer_slot: Option<Slot<S>>,
    /// Point writes waiting to run on a caller's thread, shared with the writer.
    waiting: Arc<Mutex<Waiting<S>>>,
    /// Jobs handed to the writer and not yet answered (each holds a [`Ticket`]): a write waits
    /// for a caller only when there are none, so it never overtakes an earlier one.
    writer_jobs: Arc<AtomicUsize>,
    closed: AtomicBool,
    /// A `begin()` transaction holds the writer.
    transaction_open: AtomicBool,
    shared: Arc<Shared<S>>,
    spawner: Arc<dyn Spawn>,
    /// Threads are named `<prefix>-writer` and `<prefix>-reader-<n>`.
    thread_prefix: Arc<str>,
    lock_timeout: Option<Duration>,
    counters: Arc<Counters>,
}

/// The reader lanes: started one at a time, when a read finds the writer busy and no reader
/// idle, up to `max`.
struct Readers<S: Storage> {
    queue: RwLock<Option<Queue<S>>>,
    jobs: Jobs<S>,
    open: OpenReader<S>,
    max: usize,
    started: AtomicUsize,
    idle: Arc<AtomicUsize>,
}

impl<S: Storage> Pool<S> {
    /// Starts the writer lane, which opens the database with `open` (creating the first table
    /// there). Readers start later, when reads need them.
    pub(crate) async fn open(
        open: impl FnOnce() -> Result<(S, Opened<S>)> + Send + 'static,
        sizes: Sizes,
        spawner: Arc<dyn Spawn>,
        lock_timeout: Option<Duration>,
    ) -> Result<(Self, Arc<Table<S>>)> {
        let counters = Arc::new(Counters::default());
        let (writer, jobs) = flume::bounded(sizes.queue_capacity);
        let busy = Arc::new(AtomicBool::new(false));
        let (ready, opened) = flume::bounded(1);
        let (exit, exited) = flume::bounded(1);
        let slot: Slot<S> = Arc::default();
        let waiting: Arc<Mutex<Waiting<S>>> = Arc::default();
        // The shared state is made on the writer, with the connection, and sent back.
        let (lane_counters, lane_busy, lane_slot) = (Arc::clone(&counters), Arc::clone(&busy), Arc::clone(&slot));
        let lane_waiting = Arc::clone(&waiting);
        spawner.spawn(
            format!("{}-writer", sizes.thread_prefix),
            Box::new(move || match open() {
                Ok((storage, made)) => {
                    let shared = Arc::clone(&made.shared);
                    let role = Role::Writer { shared: Arc::clone(&shared), busy: lane_busy, waiting: lane_waiting };
                    let inline = Inline { reads: storage.runs_on_callers(), writes: storage.commits_cheaply() };
                    *lane_slot.lock() = Some(storage);
                    let _ = ready.send(Ok((made, inline)));
                    let _ = exit.send(Lane::new(jobs, lane_slot, lane_counters, role).run());
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                }
            }),
        )?;
        let (made, inline) = opened.recv_async().await.unwrap_or_else(|_| Err(lane_lost()))?;
        let readers = made.readers.filter(|_| sizes.readers > 0).map(|open| {
            let (queue, jobs) = flume::bounded(sizes.queue_capacity);
            Readers {
                queue: RwLock::new(Some(queue)),
                jobs,
                open,
                max: sizes.readers,
                started: AtomicUsize::new(0),
                idle: Arc::default(),
            }
        });
        let pool = Self {
            writer: RwLock::new(Some(writer)),
            writer_busy: busy,
            readers,
            exits: Mutex::new(vec![exited]),
            // A backend whose client runs an async runtime of its own must stay off callers' threads.
            writer_slot: (sizes.inline_writes && inline.reads && inline.writes).then(|| Arc::clone(&slot)),
            waiting,
            writer_jobs: Arc::default(),
            slots: RwLock::new(if sizes.inline_reads && inline.reads { vec![slot] } else { Vec::new() }),
            closed: AtomicBool::new(false),
            transaction_open: AtomicBool::new(false),
            shared: made.shared,
            spawner,
            thread_prefix: sizes.thread_prefix,
            lock_timeout,
            counters,
        };
        Ok((pool, made.table))
    }

    /// Runs `operation` for `table` on a lane, inside `span`: writes and exclusive jobs on the
    /// writer, reads on a reader (or the writer when it is free). Waits while the queue is full.
    pub(crate) async fn run<O>(&self, table: Arc<Table<S>>, operation: O, span: tracing::Span) -> Result<O::Output>
    where
        O: Operation<S> + Send + 'static,
        O::Output: Send + 'static,
    {
        self.submit(table, operation, span).await?.await.map_err(|_| Error::Closed)?
    }

    /// Hands `operation` to a lane and returns the receiver of its answer (dropping the
    /// receiver before the job starts cancels it).
    pub(crate) async fn submit<O>(
        &self,
        table: Arc<Table<S>>,
        operation: O,
        span: tracing::Span,
    ) -> Result<Answer<O::Output>>
    where
        O: Operation<S> + Send + 'static,
        O::Output: Send + 'static,
    {
        let (answer, unsent) = self.hand_over(table, operation, span)?;
        if let Some(job) = unsent {
            self.send(job).await?;
        }
        Ok(answer)
    }

    /// Hands `operation` to a lane without waiting: the receiver of its answer, and the job
    /// itself when its queue is full (to [`send`](Self::send) later).
    pub(crate) fn hand_over<O>(
        &self,
        table: Arc<Table<S>>,
        operation: O,
        span: tracing::Span,
    ) -> Result<Handed<O::Output, S>>
    where
        O: Operation<S> + Send + 'static,
        O::Output: Send + 'static,
    {
        let queue = self.queue(operation.kind())?;
        let ticket = (operation.kind() != Kind::Read).then(|| Ticket::new(&self.writer_jobs));
        let (job, answer) = Task::prepare(operation, table, self.lock_timeout, span, ticket);
        match queue.try_send(job) {
            Ok(()) => Ok((answer, None)),
            Err(flume::TrySendError::Disconnected(_)) => Err(Error::Closed),
            Err(flume::TrySendError::Full(job)) => Ok((answer, Some(job))),
        }
    }

    /// Sends `job` to its lane, waiting while the queue is full.
    pub(crate) async fn send(&self, job: Box<dyn Job<S>>) -> Result<()> {
        let queue = self.queue(job.kind())?;
        let _waiting = self.counters.wait_for_room();
        queue.send_async(job).await.map_err(|_| Error::Closed)
    }

    /// The queue for a job of `kind`: writes and exclusive jobs go to the writer; a read goes
    /// to the writer when it is free (it answers at once, and polls for the next job), else to
    /// the readers, starting one when none is idle.
    fn queue(&self, kind: nanasqlite_core::engine::Kind) -> Result<Queue<S>> {
        let writer = || self.writer.read().clone().ok_or(Error::Closed);
        let Some(readers) = self.readers.as_ref().filter(|_| kind == nanasqlite_core::engine::Kind::Read) else {
            return writer();
        };
        let writer_free = !self.writer_busy.load(Ordering::Acquire)
            && self.writer.read().as_ref().is_some_and(flume::Sender::is_empty);
        if writer_free {
            return writer();
        }
        if readers.idle.load(Ordering::Acquire) == 0 {
            self.start_reader(readers);
        }
        if readers.started.load(Ordering::Acquire) == 0 {
            return writer();
        }
        readers.queue.read().clone().ok_or(Error::Closed)
    }

    /// Starts another reader lane, unless `max` are running or the pool is closed. The reader
    /// opens its connection on its own thread.
    fn start_reader(&self, readers: &Readers<S>) {
        let mut exits = self.exits.lock();
        let started = readers.started.load(Ordering::Acquire);
        if started >= readers.max || self.is_closed() {
            return;
        }
        let (exit, exited) = flume::bounded(1);
        let (jobs, open, counters) = (readers.jobs.clone(), Arc::clone(&readers.open), Arc::clone(&self.counters));
        let idle = Arc::clone(&readers.idle);
        let slot: Slot<S> = Arc::default();
        let lane_slot = Arc::clone(&slot);
        let lane = Box::new(move || match open() {
            Ok(storage) => {
                *lane_slot.lock() = Some(storage);
                let role = Role::Reader { reopen: open, idle };
                let _ = exit.send(Lane::new(jobs, lane_slot, counters, role).run());
            }
            Err(error) => {
                tracing::warn!(%error, "a reader could not open its connection");
                let _ = exit.send(Err(error));
            }
        });
        match self.spawner.spawn(format!("{}-reader-{started}", self.thread_prefix), lane) {
            Ok(()) => {
                readers.started.fetch_add(1, Ordering::AcqRel);
                exits.push(exited);
                let mut slots = self.slots.write();
                if !slots.is_empty() {
                    slots.insert(0, slot); // readers before the writer
                }
            }
            Err(error) => tracing::warn!(%error, "could not start a reader thread"),
        }
    }

    /// Runs point read `operation` on the caller's thread, on a lane's connection that is free
    /// at this instant (never waiting for one, nor for another connection's lock), and applies
    /// its cache change; `None` when no connection was free or the read would have waited, so
    /// that the caller hands it to a lane instead.
    pub(crate) fn try_inline<O: Operation<S>>(&self, table: &Table<S>, operation: &mut O) -> Option<Result<O::Output>> {
        if !operation.inline() || operation.kind() != Kind::Read || self.is_closed() {
            return None;
        }
        let slots = self.slots.read();
        let mut storage = slots.iter().find_map(|slot| slot.try_lock().filter(|storage| storage.is_some()))?;
        let storage = storage.as_mut()?;
        match storage.without_waiting(|storage| operation.run(storage, table)) {
            Ok(applied) => {
                self.counters.record_inline_read();
                table.apply(applied.change);
                Some(Ok(applied.output))
            }
            Err(error) if error.is_busy() => None,
            Err(error) => Some(Err(error)),
        }
    }

    /// Offers point write `operation` to run on a caller's thread, at its future's first poll:
    /// when inline writes are on, the engine allows it ([`engine::may_write_inline`]), no
    /// transaction is open and the writer has nothing to do (no job of its unanswered), it
    /// joins the writes waiting for a caller, and the receiver of its answer comes back; else
    /// the operation comes back, for the writer. The caller then yields once, so that writes
    /// polled beside it (as by `join_all`) join it, and runs them all
    /// ([`run_waiting_writes`](Self::run_waiting_writes)).
    pub(crate) fn offer_inline_write<O>(
        self: &Arc<Self>,
        table: &Arc<Table<S>>,
        operation: O,
        span: &tracing::Span,
    ) -> std::result::Result<Answer<O::Output>, O>
    where
        O: Operation<S> + Send + 'static,
        O::Output: Send + 'static,
    {
        let eligible = self.writer_slot.is_some() && engine::may_write_inline(table, &operation);
        if !eligible || self.in_transaction() || self.is_closed() {
            return Err(operation);
        }
        let mut waiting = self.waiting.lock();
        // Checked again under the lock the writer's last drain takes at close, so that no write
        // joins the list after it.
        if self.writer_jobs.load(Ordering::SeqCst) > 0 || self.is_closed() {
            return Err(operation);
        }
        let (job, answer) = Task::prepare(operation, Arc::clone(table), self.lock_timeout, span.clone(), None);
        waiting.push(job, self, table);
        Ok(answer)
    }

    /// Runs the writes waiting for a caller on this thread, as one group on the writer's
    /// connection, if it is free at this instant and no other connection holds the file's
    /// write lock; answers each (its cache change applied while the connection is still held,
    /// so that later writes find the cache as the file). Otherwise wakes the writer, which runs
    /// them before anything handed to it after them.
    pub(crate) fn run_waiting_writes(&self, table: &Arc<Table<S>>) {
        let Some(slot) = &self.writer_slot else { return };
        let Some(mut storage) = slot.try_lock() else {
            // Whoever holds the connection runs what waits, unless it took its jobs already.
            if !self.waiting.lock().is_empty() {
                self.send_to_writer(Wake, table);
            }
            return;
        };
        if storage.as_ref().is_some_and(|connection| !connection.commits_cheaply()) {
            // A pragma set since the open made commits sync or checkpoint: the writer's to run.
            drop(storage);
            return self.send_to_writer(Wake, table);
        }
        let jobs = self.waiting.lock().take(lanes::MAX_WRITE_GROUP);
        let Some(connection) = storage.as_mut().filter(|_| !jobs.is_empty()) else { return };
        let (settled, checkpoint_due) = connection.write_on_callers_thread(|connection| {
            lanes::run_waiting_here(connection, &self.shared, &self.counters, jobs)
        });
        let (handed_over, settled) = lanes::hand_over_busy(settled);
        if !settled.is_empty() {
            self.counters.record_write_group(settled.len());
            self.counters.record_inline_writes(settled.len());
        }
        for (job, failure) in settled {
            job.finish(failure.as_ref());
        }
        let wake = !handed_over.is_empty();
        if wake {
            self.waiting.lock().put_back(handed_over);
        }
        drop(storage);
        if wake {
            self.send_to_writer(Wake, table);
        }
        if checkpoint_due {
            self.send_to_writer(Checkpoint, table);
        }
    }

    /// Wakes the writer if a write has waited [`CALLER_GRACE`](crate::waiting::CALLER_GRACE)
    /// for its caller's next poll (the deadline thread calls it; it must not block).
    pub(crate) fn wake_for_stragglers(self: &Arc<Self>, table: &Arc<Table<S>>) {
        let due = self.waiting.lock().fallback_due(self, table);
        if due {
            self.send_to_writer(Wake, table);
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<S>> {
        &self.shared
    }

    /// If a check for writes by other connections is due, sends one to the writer (without
    /// waiting, and skipped when its queue is full): it empties every cache if another
    /// connection committed. Nothing here touches the database on the caller's thread.
    pub(crate) fn notice_external_writes(&self, table: &Arc<Table<S>>) {
        if self.shared.watch_due() {
            self.send_to_writer(CheckExternalWrites::new(Arc::clone(&self.shared)), table);
        }
    }

    /// Hands housekeeping `operation` to the writer without waiting (skipped when its queue is
    /// full: it is asked for again later).
    fn send_to_writer<O>(&self, operation: O, table: &Arc<Table<S>>)
    where
        O: Operation<S> + Send + 'static,
        O::Output: Send + 'static,
    {
        let Some(queue) = self.writer.read().clone() else { return };
        let span = tracing::debug_span!("nanasqlite", op = operation.name());
        let job = Task::detached(operation, Arc::clone(table), span, Ticket::new(&self.writer_jobs));
        let _ = queue.try_send(job);
    }

    /// Whether a `begin()` transaction is open.
    pub(crate) fn in_transaction(&self) -> bool {
        self.transaction_open.load(Ordering::Acquire)
    }

    /// Marks a `begin()` transaction open; `None` if one already was. The mark is lifted when
    /// the returned guard is dropped, unless the transaction took it over.
    pub(crate) fn open_transaction(self: &Arc<Self>) -> Option<TransactionSlot<S>> {
        let free = !self.transaction_open.swap(true, Ordering::AcqRel);
        free.then(|| TransactionSlot { pool: Arc::clone(self) })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Stops taking jobs, lets the lanes finish every job already queued, and waits until each
    /// has closed its connection. Later calls return at once.
    pub(crate) async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        self.shared.stop_watching();
        if let Some(readers) = &self.readers {
            drop(readers.queue.write().take());
        }
        drop(self.writer.write().take());
        let exits = std::mem::take(&mut *self.exits.lock());
        let mut result = Ok(());
        for exit in exits {
            let closed = exit.recv_async().await.unwrap_or_else(|_| Err(lane_lost()));
            result = result.and(closed);
        }
        for table in self.shared.tables() {
            table.clear_cache();
        }
        result
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn stats(&self) -> Stats {
        let depth = |queue: &RwLock<Option<Queue<S>>>| queue.read().as_ref().map_or(0, flume::Sender::len);
        let (read_queue, readers) =
            self.readers.as_ref().map_or((0, 0), |r| (depth(&r.queue), r.started.load(Ordering::Acquire)));
        self.counters.snapshot(depth(&self.writer), read_queue, 1 + readers)
    }
}

/// Nothing: sent to the writer when a caller could not run the writes waiting for one (the
/// writer's connection was busy), so that the writer runs them before it sleeps.
#[derive(Debug)]
struct Wake;

impl<S: Storage> Operation<S> for Wake {
    type Output = ();

    fn name(&self) -> &'static str {
        "wake"
    }

    fn kind(&self) -> Kind {
        Kind::Exclusive
    }

    fn run(&mut self, _: &mut S, _: &Table<S>) -> Result<Applied<()>> {
        Ok(Applied::plain(()))
    }
}

/// The mark of an open `begin()` transaction: lifted on drop, so a `begin()` future dropped
/// before it resolved (a timeout, a `select!`) leaves the writer free for the next one.
pub(crate) struct TransactionSlot<S: Storage> {
    pool: Arc<Pool<S>>,
}

impl<S: Storage> Drop for TransactionSlot<S> {
    fn drop(&mut self) {
        self.pool.transaction_open.store(false, Ordering::Release);
    }
}

fn lane_lost() -> Error {
    Error::Panic { message: "a lane thread stopped before reporting".to_owned() }
}
