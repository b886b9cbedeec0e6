//! Lanes: threads that each own one connection and run the jobs of one queue.
//!
//! The writer lane owns the read-write connection. Writes waiting in its queue are run as one
//! group in one write transaction (expired rows of TTL caches purged first), joined by the
//! writes that reach the queue while it runs, up to a bound and never past a job of another
//! kind queued before them; when one fails,
//! the transaction is rolled back and the others run again without it, so one failing write
//! fails alone. Every caller is answered after the commit that holds its write. Reader lanes
//! own read-only connections and run the reads waiting in their shared queue in one read
//! snapshot; a reader whose connection fails under a group (an I/O error, a file it can no
//! longer read) opens a new one and runs the group again there.
//! A lane stops when its queue is empty and every sender is gone, then closes its connection.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use nanasqlite_core::Error;
use nanasqlite_core::engine::{self, Kind, Shared};
use nanasqlite_core::storage::{End, OpenReader, Storage};

use crate::job::Job;
use crate::stats::Counters;
use crate::waiting::Waiting;

/// How long the idle writer polls its queue before it parks (not before its first job; readers
/// park at once: there are several, and polling would take the cores the callers need).
const SPIN: Duration = Duration::from_micros(50);

/// Most writes run in one group: bounds how long the first of them waits for its answer.
pub(crate) const MAX_WRITE_GROUP: usize = 256;

/// Most reads one reader takes at once, so that concurrent reads spread over the readers.
const MAX_READ_GROUP: usize = 16;

pub(crate) type Queue<S> = flume::Sender<Box<dyn Job<S>>>;
pub(crate) type Jobs<S> = flume::Receiver<Box<dyn Job<S>>>;

/// A job that has run (or been settled without running), and the failure of its whole group,
/// if any: ready to answer its caller.
pub(crate) type Settled<S> = Vec<(Box<dyn Job<S>>, Option<Error>)>;

/// What a lane is for.
pub(crate) enum Role<S: Storage> {
    /// The read-write connection: writes (grouped), exclusive jobs, and reads while no
    /// reader is needed. `busy` is set while it runs a group, so reads can go elsewhere; the
    /// writes `waiting` for a caller run before each group.
    Writer { shared: Arc<Shared<S>>, busy: Arc<AtomicBool>, waiting: Arc<Mutex<Waiting<S>>> },
    /// A read-only connection; `idle` counts the readers waiting for work.
    Reader { reopen: OpenReader<S>, idle: Arc<AtomicUsize> },
}

/// A lane's connection. The lane locks it while it runs a group; while the lane waits for
/// work it is free, and a point read may run on it from the caller's thread (`try_inline`).
/// `None` once the lane has closed it.
pub(crate) type Slot<S> = Arc<Mutex<Option<S>>>;

/// One lane: its queue, its connection, and the job it took but could not group (in a
/// `Cell`, so that a write group running under `&self` can hold the job that ends it).
pub(crate) struct Lane<S: Storage> {
    queue: Jobs<S>,
    slot: Slot<S>,
    counters: Arc<Counters>,
    held: Cell<Option<Box<dyn Job<S>>>>,
    role: Role<S>,
}

impl<S: Storage> Lane<S> {
    /// A lane on `queue` over the connection in `slot`.
    pub(crate) fn new(queue: Jobs<S>, slot: Slot<S>, counters: Arc<Counters>, role: Role<S>) -> Self {
        Self { queue, slot, counters, held: Cell::new(None), role }
    }

    /// Runs jobs until the queue is empty and closed; returns how closing the connection went.
    pub(crate) fn run(mut self) -> nanasqlite_core::Result<()> {
        let busy = match &self.role {
            Role::Writer { busy, .. } => Some(Arc::clone(busy)),
            Role::Reader { .. } => None,
        };
        let mark = |working: bool| busy.as_ref().inspect(|busy| busy.store(working, Ordering::Release));
        // The writer waits actively for the next job only once it has run one: calls come in
        // runs (a caller's next call follows its answer within microseconds), while right after
        // the open the next call is most often a read the caller runs itself, and a spinning
        // writer would take a core from it. (Spinning after writes only cost sequential SQL
        // calls a wake-up each: the round trip went from 19 to 55 µs.)
        let mut spin = false;
        while let Some(first) = self.held.get_mut().take().or_else(|| self.next(spin)) {
            mark(true);
            spin = true;
            let group = self.gather(first);
            // Writes queued behind a held job must wait for it: only an open queue feeds a group.
            let room = if self.held.get_mut().is_some() { 0 } else { MAX_WRITE_GROUP.saturating_sub(group.len()) };
            let settled = {
                let mut storage = self.slot.lock();
                match storage.as_mut() {
                    Some(storage) => {
                        self.finish_waiting(storage);
                        self.run_group(storage, group, room)
                    }
                    None => group.into_iter().map(|job| (job, Some(Error::Closed))).collect(),
                }
            };
            // Free before the callers hear back, so that a caller's next read finds it free.
            mark(false);
            for (job, failure) in settled {
                job.finish(failure.as_ref());
            }
        }
        let mut storage = self.slot.lock();
        if let Some(storage) = storage.as_mut() {
            // Writes polled before the close and not yet run by their callers.
            self.finish_waiting(storage);
        }
        storage.take().map_or(Ok(()), Storage::close)
    }

    /// Runs the writes waiting for a caller (none on a reader) as one group, and answers them
    /// while it still holds the connection: they were polled before the job the writer took,
    /// so their cache changes land before any later write's (an inline write needs this
    /// connection), and their callers hear back before that job runs (a caller may await one
    /// of them inside the transaction that job begins).
    fn finish_waiting(&self, storage: &mut S) {
        let Role::Writer { waiting, .. } = &self.role else { return };
        loop {
            let jobs = waiting.lock().take(MAX_WRITE_GROUP);
            if jobs.is_empty() {
                return;
            }
            for (job, failure) in self.run_group(storage, jobs, 0) {
                job.finish(failure.as_ref());
            }
        }
    }

    /// The next job: with `spin`, the writer waits a moment actively (a call often follows the
    /// last one within microseconds, and waking a parked thread costs tens of them), then
    /// blocks.
    fn next(&self, spin: bool) -> Option<Box<dyn Job<S>>> {
        match &self.role {
            Role::Writer { .. } if spin => {
                let start = Instant::now();
                while start.elapsed() < SPIN {
                    match self.queue.try_recv() {
                        Ok(job) => return Some(job),
                        Err(flume::TryRecvError::Disconnected) => return None,
                        Err(flume::TryRecvError::Empty) => std::thread::yield_now(),
                    }
                }
                self.queue.recv().ok()
            }
            Role::Writer { .. } => self.queue.recv().ok(),
            Role::Reader { idle, .. } => {
                idle.fetch_add(1, Ordering::AcqRel);
                let job = self.queue.recv().ok();
                idle.fetch_sub(1, Ordering::AcqRel);
                job
            }
        }
    }

    /// `first` and the jobs of the same kind queued behind it.
    fn gather(&mut self, first: Box<dyn Job<S>>) -> Vec<Box<dyn Job<S>>> {
        let kind = first.kind();
        let limit = match kind {
            Kind::Write => MAX_WRITE_GROUP,
            Kind::Read => MAX_READ_GROUP,
            Kind::Exclusive => 1,
        };
        let mut group = vec![first];
        while group.len() < limit {
            match self.queue.try_recv() {
                Ok(job) if job.kind() == kind => group.push(job),
                Ok(job) => {
                    self.held.set(Some(job));
                    break;
                }
                Err(_) => break,
            }
        }
        group
    }

    /// Runs `group`; a write group also takes in up to `room` writes queued while it runs.
    fn run_group(&self, storage: &mut S, group: Vec<Box<dyn Job<S>>>, room: usize) -> Settled<S> {
        let kind = group[0].kind();
        let jobs = self.startable(group);
        if jobs.is_empty() {
            return Vec::new();
        }
        match kind {
            Kind::Write => {
                let shared = match &self.role {
                    Role::Writer { shared, .. } => Some(Arc::clone(shared)),
                    Role::Reader { .. } => None,
                };
                let mut feed = Feed { lane: self, room };
                let settled = run_writes(storage, shared.as_deref(), jobs, &mut || feed.next());
                self.counters.record_write_group(settled.len());
                settled
            }
            Kind::Read => {
                self.counters.record_read_group(jobs.len());
                self.read_recovering(storage, jobs)
            }
            Kind::Exclusive => run_alone(storage, jobs),
        }
    }

    fn startable(&self, group: Vec<Box<dyn Job<S>>>) -> Vec<Box<dyn Job<S>>> {
        startable(group, &self.counters)
    }

    fn start(&self, job: Box<dyn Job<S>>, now: Instant) -> Option<Box<dyn Job<S>>> {
        start(job, now, &self.counters)
    }

    /// Runs a read group; if the connection failed under it, runs it once more on a new one.
    fn read_recovering(&self, storage: &mut S, mut jobs: Vec<Box<dyn Job<S>>>) -> Settled<S> {
        let mut failure = self.read_once(storage, &mut jobs);
        if connection_failed(failure.as_ref(), &jobs) && self.reconnect(storage) {
            self.counters.record_reconnect();
            tracing::warn!(error = ?failure, "a reader's connection failed; reads run again on a new one");
            failure = self.read_once(storage, &mut jobs);
        }
        jobs.into_iter().map(|job| (job, failure.as_ref().cloned())).collect()
    }

    fn read_once(&self, storage: &mut S, jobs: &mut [Box<dyn Job<S>>]) -> Option<Error> {
        #[cfg(feature = "failpoints")]
        fail::fail_point!("nanasqlite-reader-connection", matches!(self.role, Role::Reader { .. }), |_| Some(
            injected_io_error()
        ));
        run_reads(storage, jobs)
    }

    /// Replaces this reader's connection with a new one; whether that worked (the writer
    /// never reconnects: it has nothing to reopen with).
    fn reconnect(&self, storage: &mut S) -> bool {
        let Role::Reader { reopen, .. } = &self.role else { return false };
        match reopen() {
            Ok(fresh) => {
                let _ = std::mem::replace(storage, fresh).close();
                true
            }
            Err(error) => {
                tracing::warn!(%error, "a reader could not open a new connection");
                false
            }
        }
    }
}

/// Drops jobs whose caller is gone, and answers overdue ones with `LockTimeout`.
fn startable<S>(group: Vec<Box<dyn Job<S>>>, counters: &Counters) -> Vec<Box<dyn Job<S>>> {
    let now = Instant::now();
    group.into_iter().filter_map(|job| start(job, now, counters)).collect()
}

/// `job`, if it is to run: not when its caller is gone or its deadline has passed (then it is
/// answered with `LockTimeout`).
fn start<S>(mut job: Box<dyn Job<S>>, now: Instant, counters: &Counters) -> Option<Box<dyn Job<S>>> {
    if !job.claim() {
        None // the deadline thread answered it with LockTimeout already
    } else if job.is_abandoned() {
        counters.record_abandoned();
        None
    } else if let Some(waited) = job.overdue(now) {
        job.reject(Error::LockTimeout { waited });
        None
    } else {
        // Counted once it is sure to run: a caller that sees `jobs_started` grow knows its job
        // can no longer be abandoned.
        counters.record_wait(now.saturating_duration_since(job.queued_at()));
        Some(job)
    }
}

/// Runs the waiting writes `jobs` on a caller's thread, as the writer runs a group (skipping
/// those whose caller is gone), on the writer's connection; settles nothing (the caller
/// finishes each while it still holds the connection).
pub(crate) fn run_waiting_here<S: Storage>(
    storage: &mut S,
    shared: &Shared<S>,
    counters: &Counters,
    jobs: Vec<Box<dyn Job<S>>>,
) -> Settled<S> {
    let jobs = startable(jobs, counters);
    if jobs.is_empty() {
        return Vec::new();
    }
    run_writes(storage, Some(shared), jobs, &mut || None)
}

/// Splits a group run on a caller's thread into the jobs to hand to the writer and those to
/// answer: when nothing committed, those that found the file's write lock held by another
/// connection go to the writer, which waits for the lock (the others keep their failure).
/// Once something committed, every job keeps its answer: a write run again later could land
/// after a later write that committed here.
pub(crate) fn hand_over_busy<S: Storage>(settled: Settled<S>) -> (Vec<Box<dyn Job<S>>>, Settled<S>) {
    let busy = |failure: &Option<Error>| failure.as_ref().is_some_and(Error::is_busy);
    // A job dropped from a group's rerun (it failed alone) is settled without a group failure
    // too: only one that ran without failing committed.
    if settled.iter().any(|(job, failure)| failure.is_none() && !job.failed()) {
        return (Vec::new(), settled);
    }
    let (busy, others): (Settled<S>, _) = settled.into_iter().partition(|(_, failure)| busy(failure));
    (busy.into_iter().map(|(job, _)| job).collect(), others)
}

/// Writes that reach the writer's queue while a write group runs, taken into that group's
/// transaction until the group is full: under load each commit carries every write waiting by
/// then (fewer commits, fewer wake-ups), while a lone write still commits at once.
struct Feed<'a, S: Storage> {
    lane: &'a Lane<S>,
    /// Writes the group may still take; zero once another kind of job came (it is held, and
    /// the writes behind it wait for it).
    room: usize,
}

impl<S: Storage> Feed<'_, S> {
    fn next(&mut self) -> Option<Box<dyn Job<S>>> {
        while self.room > 0 {
            let job = self.lane.queue.try_recv().ok()?;
            if job.kind() != Kind::Write {
                self.lane.held.set(Some(job));
                self.room = 0;
                return None;
            }
            self.room -= 1;
            if let Some(job) = self.lane.start(job, Instant::now()) {
                return Some(job);
            }
        }
        None
    }
}

/// How a write group's transaction went.
enum Group {
    /// Every live job ran; commit.
    Ran,
    /// The live job at this position failed; roll back and run the others again.
    Failed(usize),
}

/// Runs `jobs`, and the writes `more` hands over while they run, in one write transaction;
/// each is answered after the commit.
///
/// Writes run without savepoints (they cost a statement journal per write). When one fails,
/// the transaction is rolled back, that write is answered with its error, and the others run
/// again in a new transaction: a failing write fails alone, and costs a rerun only then.
fn run_writes<S: Storage>(
    storage: &mut S,
    shared: Option<&Shared<S>>,
    mut jobs: Vec<Box<dyn Job<S>>>,
    more: &mut dyn FnMut() -> Option<Box<dyn Job<S>>>,
) -> Settled<S> {
    let mut live: Vec<usize> = (0..jobs.len()).collect();
    let failure = loop {
        let ran = engine::write_group(storage, shared, |storage| {
            let mut position = 0;
            loop {
                if let Some(failed) = run_until_failure(storage, &mut jobs, &mut live, &mut position) {
                    return (Ok(Group::Failed(failed)), End::Rollback);
                }
                let Some(job) = more() else { return (Ok(Group::Ran), End::Commit) };
                live.push(jobs.len());
                jobs.push(job);
            }
        });
        match ran {
            Ok(Group::Ran) => break None,
            Ok(Group::Failed(position)) => {
                live.remove(position);
            }
            // A check the server makes at commit (a unique field on PostgreSQL) refused one of
            // the writes, and the commit does not say which: each runs again alone, so that it
            // fails alone.
            Err(error) if error.is_refused() && live.len() > 1 => return run_each_alone(storage, shared, jobs, &live),
            Err(error) => break Some(error),
        }
    };
    let failed = |i: usize| failure.as_ref().filter(|_| live.contains(&i)).cloned();
    jobs.into_iter().enumerate().map(|(i, job)| (job, failed(i))).collect()
}

/// Runs each of the `live` jobs in a write transaction of its own; the others are settled
/// already (answered with their own error).
fn run_each_alone<S: Storage>(
    storage: &mut S,
    shared: Option<&Shared<S>>,
    jobs: Vec<Box<dyn Job<S>>>,
    live: &[usize],
) -> Settled<S> {
    let mut settled = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.into_iter().enumerate() {
        if live.contains(&i) {
            settled.extend(run_writes(storage, shared, vec![job], &mut || None));
        } else {
            settled.push((job, None));
        }
    }
    settled
}

/// Runs the `live` jobs in order from `position` (dropping those past their deadline from
/// `live`), leaving `position` past the last one run; the position in `live` of the first
/// that failed.
fn run_until_failure<S>(
    storage: &mut S,
    jobs: &mut [Box<dyn Job<S>>],
    live: &mut Vec<usize>,
    position: &mut usize,
) -> Option<usize> {
    while let Some(&i) = live.get(*position) {
        if jobs[i].time_out(Instant::now()) {
            live.remove(*position);
            continue;
        }
        jobs[i].run(storage);
        if jobs[i].failed() {
            return Some(*position);
        }
        *position += 1;
    }
    None
}

/// Runs each of `jobs` by itself, outside any transaction the lane opens.
fn run_alone<S>(storage: &mut S, jobs: Vec<Box<dyn Job<S>>>) -> Settled<S> {
    let run = |mut job: Box<dyn Job<S>>| {
        if !job.time_out(Instant::now()) {
            job.run(storage);
        }
        (job, None)
    };
    jobs.into_iter().map(run).collect()
}

/// Runs `jobs` in one read snapshot (a lone read needs none); the snapshot's own failure.
fn run_reads<S: Storage>(storage: &mut S, jobs: &mut [Box<dyn Job<S>>]) -> Option<Error> {
    let alone = jobs.len() == 1;
    let mut run = |storage: &mut S| {
        for job in jobs.iter_mut() {
            if !job.time_out(Instant::now()) {
                job.run(storage);
            }
        }
    };
    if alone {
        run(storage);
        None
    } else {
        storage.read_snapshot(run).err()
    }
}

/// Whether `failure`, or the error of one of `jobs`, says the connection itself is broken
/// (rather than the request being wrong): an I/O error, a file it cannot open, or one it
/// reads as corrupt or not a database (as after the file was swapped under it).
fn connection_failed<S>(failure: Option<&Error>, jobs: &[Box<dyn Job<S>>]) -> bool {
    failure.is_some_and(Error::is_broken_connection)
        || jobs.iter().filter_map(|job| job.error()).any(Error::is_broken_connection)
}

/// The error the `nanasqlite-reader-connection` fail point makes a read group fail with.
#[cfg(feature = "failpoints")]
fn injected_io_error() -> Error {
    Error::Io(std::io::Error::other("a read failed: injected by a fail point"))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use nanasqlite_core::Identifier;
    use nanasqlite_core::storage::{ConnectionOptions, SqliteStorage, StoredRef};

    use super::*;

    /// Another connection holding the file's write lock (see `another_writer_holding_the_lock`).
    struct Locker {
        release: flume::Sender<()>,
        thread: std::thread::JoinHandle<()>,
    }

    impl Locker {
        /// Ends its transaction (rolled back), which frees the lock.
        fn release(self) {
            self.release.send(()).unwrap();
            self.thread.join().unwrap();
        }
    }

    /// What a fake job does when run.
    #[derive(Clone, Copy)]
    enum Act {
        /// Writes its key.
        Put,
        /// Fails after writing its key (so its write must be undone).
        Fail,
        /// Takes this long, then writes its key.
        Slow(Duration),
        /// Reads the row count (a read job).
        Count,
        /// A read whose first run fails as if the connection broke (an I/O error).
        BrokenOnce,
        /// A read refused for what it asks (not for its connection).
        Refuse,
    }

    /// What happened to a fake job, shared with the test.
    #[derive(Default)]
    struct Log {
        runs: AtomicUsize,
        answers: Mutex<Vec<(String, Result<usize, String>)>>,
    }

    struct Fake {
        key: String,
        act: Act,
        kind: Kind,
        deadline: Option<Instant>,
        table: nanasqlite_core::storage::SqliteTable,
        outcome: Option<Result<usize, Error>>,
        log: Arc<Log>,
        /// Jobs this one queues when it runs (as if other callers sent them meanwhile).
        queues: Option<(Queue<SqliteStorage>, Vec<FakeJob>)>,
    }

    type FakeJob = Box<dyn Job<SqliteStorage>>;

    impl Job<SqliteStorage> for Fake {
        fn kind(&self) -> Kind {
            self.kind
        }
        fn claim(&mut self) -> bool {
            true
        }
        fn is_abandoned(&self) -> bool {
            false
        }
        fn queued_at(&self) -> Instant {
            Instant::now()
        }
        fn overdue(&self, now: Instant) -> Option<Duration> {
            self.deadline.filter(|deadline| now > *deadline).map(|_| Duration::ZERO)
        }
        fn time_out(&mut self, now: Instant) -> bool {
            let late = self.overdue(now).is_some();
            if late {
                self.outcome = Some(Err(Error::LockTimeout { waited: Duration::ZERO }));
            }
            late
        }
        fn run(&mut self, storage: &mut SqliteStorage) {
            self.log.runs.fetch_add(1, Ordering::SeqCst);
            if let Some((queue, jobs)) = self.queues.take() {
                jobs.into_iter().for_each(|job| queue.send(job).unwrap());
            }
            let put = |storage: &SqliteStorage| storage.put(&self.table, &self.key, StoredRef::Text(b"1")).map(|()| 1);
            self.outcome = Some(match self.act {
                Act::Put => put(storage),
                Act::Fail => put(storage).and_then(|_| Err(Error::Validation { message: "refused".into() })),
                Act::Slow(pause) => {
                    std::thread::sleep(pause);
                    put(storage)
                }
                Act::Count => storage.count(&self.table).map(|n| n as usize),
                Act::Refuse => Err(Error::Validation { message: "bad request".into() }),
                Act::BrokenOnce => {
                    self.act = Act::Count;
                    Err(Error::Io(std::io::Error::other("the connection broke")))
                }
            });
        }
        fn failed(&self) -> bool {
            !matches!(self.outcome, Some(Ok(_)))
        }
        fn error(&self) -> Option<&Error> {
            self.outcome.as_ref().and_then(|outcome| outcome.as_ref().err())
        }
        fn finish(self: Box<Self>, error: Option<&Error>) {
            let answer = match (error, self.outcome) {
                (Some(error), _) => Err(error.to_string()),
                (None, Some(Ok(n))) => Ok(n),
                (None, Some(Err(error))) => Err(error.to_string()),
                (None, None) => Err("never ran".into()),
            };
            self.log.answers.lock().unwrap().push((self.key, answer));
        }
        fn reject(self: Box<Self>, error: Error) {
            self.log.answers.lock().unwrap().push((self.key, Err(error.to_string())));
        }
    }

    struct Bench {
        storage: SqliteStorage,
        table: nanasqlite_core::storage::SqliteTable,
        log: Arc<Log>,
        _dir: tempfile::TempDir,
    }

    impl Bench {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let storage = SqliteStorage::open(dir.path().join("lanes.db"), &ConnectionOptions::default()).unwrap();
            let table = storage.open_table(&Identifier::new("data").unwrap()).unwrap();
            Self { storage, table, log: Arc::default(), _dir: dir }
        }

        /// A second connection to the file, in a write transaction on a thread of its own
        /// until [`Locker::release`]: another party holding the file's write lock.
        fn another_writer_holding_the_lock(&self) -> Locker {
            let path = self._dir.path().join("lanes.db");
            let (locked, is_locked) = flume::bounded(0);
            let (release, released) = flume::bounded::<()>(0);
            let thread = std::thread::spawn(move || {
                let mut other = SqliteStorage::open(path, &ConnectionOptions::default()).unwrap();
                // A write transaction begins immediately: the lock is held from here.
                let held = other.transaction(|_| {
                    locked.send(()).unwrap();
                    let _ = released.recv(); // an error: the test failed and dropped the locker
                    ((), End::Rollback)
                });
                held.unwrap();
            });
            is_locked.recv().unwrap();
            Locker { release, thread }
        }

        fn job(&self, key: &str, act: Act) -> Box<dyn Job<SqliteStorage>> {
            self.job_until(key, act, None)
        }

        fn job_until(&self, key: &str, act: Act, deadline: Option<Instant>) -> Box<dyn Job<SqliteStorage>> {
            Box::new(Fake { deadline, ..self.fake(key, act) })
        }

        /// A job of `key` doing `act`, a read or a write as `act` says.
        fn fake(&self, key: &str, act: Act) -> Fake {
            let kind = if matches!(act, Act::Count | Act::BrokenOnce | Act::Refuse) { Kind::Read } else { Kind::Write };
            Fake {
                key: key.to_owned(),
                act,
                kind,
                deadline: None,
                table: self.table.clone(),
                outcome: None,
                log: Arc::clone(&self.log),
                queues: None,
            }
        }

        /// A write of `key` that queues `jobs` on `queue` when it runs.
        fn queuing(&self, key: &str, queue: &Queue<SqliteStorage>, jobs: Vec<FakeJob>) -> FakeJob {
            Box::new(Fake { queues: Some((queue.clone(), jobs)), ..self.fake(key, Act::Put) })
        }

        fn answers(&self) -> Vec<(String, Result<usize, String>)> {
            let mut answers = self.log.answers.lock().unwrap().clone();
            answers.sort_by(|a, b| a.0.cmp(&b.0));
            answers
        }

        fn keys(&self) -> Vec<String> {
            self.storage.keys(&self.table).unwrap()
        }
    }

    /// Runs `jobs` on a writer lane over `bench`'s connection, as queued together; the bench
    /// again (on a new connection) and the lane's counters.
    fn writer_runs(bench: Bench, jobs: Vec<Box<dyn Job<SqliteStorage>>>) -> (Bench, crate::Stats) {
        let (queue, receiver) = flume::unbounded();
        for job in jobs {
            queue.send(job).unwrap();
        }
        drop(queue);
        writer_drains(bench, receiver)
    }

    /// Runs a writer lane on `receiver` until every sender is gone.
    fn writer_drains(bench: Bench, receiver: Jobs<SqliteStorage>) -> (Bench, crate::Stats) {
        let Bench { storage, table, log, _dir } = bench;
        let path = storage.file().unwrap();
        let role =
            Role::Writer { shared: Arc::new(Shared::new(None, None)), busy: Arc::default(), waiting: Arc::default() };
        let counters = Arc::new(Counters::default());
        Lane::new(receiver, Arc::new(parking_lot::Mutex::new(Some(storage))), Arc::clone(&counters), role)
            .run()
            .unwrap();
        let storage = SqliteStorage::open(path, &ConnectionOptions::default()).unwrap();
        (Bench { storage, table, log, _dir }, counters.snapshot(0, 0, 1))
    }

    #[test]
    fn writes_queued_together_commit_as_one_group() {
        let bench = Bench::new();
        let jobs = (0..10).map(|i| bench.job(&format!("k{i}"), Act::Put)).collect();
        let (bench, stats) = writer_runs(bench, jobs);
        assert_eq!((stats.write_groups, stats.writes), (1, 10), "one transaction for ten writes");
        assert_eq!(bench.answers().len(), 10);
        assert!(bench.answers().iter().all(|(_, answer)| answer == &Ok(1)));
        assert_eq!(bench.keys().len(), 10);
    }

    /// Runs a write of "a" on a writer lane that queues `later` while it runs.
    fn a_then(later: impl FnOnce(&Bench) -> Vec<FakeJob>) -> (Bench, crate::Stats) {
        let bench = Bench::new();
        let (queue, receiver) = flume::unbounded();
        let later = later(&bench);
        queue.send(bench.queuing("a", &queue, later)).unwrap();
        drop(queue);
        writer_drains(bench, receiver)
    }

    #[test]
    fn writes_queued_while_a_group_runs_join_its_transaction() {
        let (bench, stats) = a_then(|bench| vec![bench.job("b", Act::Put), bench.job("c", Act::Put)]);
        assert_eq!((stats.write_groups, stats.writes), (1, 3), "b and c came during a's group and joined it");
        assert!(bench.answers().iter().all(|(_, answer)| answer == &Ok(1)), "{:?}", bench.answers());
        assert_eq!(bench.keys(), ["a", "b", "c"]);
    }

    #[test]
    fn a_write_queued_behind_another_kind_of_job_waits_for_it() {
        // The read comes between: "d" must not join a's group ahead of it.
        let (bench, stats) = a_then(|bench| vec![bench.job("r", Act::Count), bench.job("d", Act::Put)]);
        assert_eq!((stats.write_groups, stats.writes), (2, 2), "a, then the read, then d");
        let answers = bench.answers();
        assert_eq!(answers[2], ("r".into(), Ok(1)), "the read saw a but not d: {answers:?}");
        assert_eq!(bench.keys(), ["a", "d"]);
    }

    #[test]
    fn a_write_that_joined_a_group_and_failed_fails_alone() {
        let (bench, stats) = a_then(|bench| vec![bench.job("b", Act::Fail), bench.job("c", Act::Put)]);
        assert_eq!(stats.write_groups, 1);
        let answers = bench.answers();
        assert_eq!(answers[0], ("a".into(), Ok(1)));
        assert!(answers[1].1.as_ref().unwrap_err().contains("refused"), "{answers:?}");
        assert_eq!(answers[2], ("c".into(), Ok(1)));
        assert_eq!(bench.keys(), ["a", "c"]);
    }

    #[test]
    fn a_failing_write_fails_alone_and_the_others_run_again() {
        let bench = Bench::new();
        let jobs = vec![bench.job("a", Act::Put), bench.job("b", Act::Fail), bench.job("c", Act::Put)];
        let (bench, stats) = writer_runs(bench, jobs);
        assert_eq!(stats.write_groups, 1, "the three shared one group");
        let answers = bench.answers();
        assert_eq!(answers[0], ("a".into(), Ok(1)));
        assert!(answers[1].1.as_ref().unwrap_err().contains("refused"), "{answers:?}");
        assert_eq!(answers[2], ("c".into(), Ok(1)));
        assert_eq!(bench.keys(), ["a", "c"], "the failed write was undone, the others committed");
        assert_eq!(bench.log.runs.load(Ordering::SeqCst), 4, "a ran twice (rerun), b once, c once");
    }

    #[test]
    fn a_job_whose_deadline_passes_during_a_rerun_times_out_alone() {
        let bench = Bench::new();
        // "late" is in time for the first run of the group; "b" fails, and by the rerun the
        // slow "a" has taken "late" past its deadline.
        let late = bench.job_until("late", Act::Put, Some(Instant::now() + Duration::from_millis(50)));
        let jobs = vec![bench.job("a", Act::Slow(Duration::from_millis(80))), bench.job("b", Act::Fail), late];
        let (bench, _) = writer_runs(bench, jobs);
        let answers = bench.answers();
        assert_eq!(answers[0], ("a".into(), Ok(1)));
        assert!(answers[1].1.as_ref().unwrap_err().contains("refused"));
        assert!(answers[2].1.as_ref().unwrap_err().contains("lock"), "{answers:?}");
        assert_eq!(bench.keys(), ["a"]);
    }

    /// Runs `jobs` on a reader lane over a read-only connection to `bench`'s file.
    fn reader_runs(bench: &Bench, jobs: Vec<Box<dyn Job<SqliteStorage>>>) -> crate::Stats {
        let reopen = bench.storage.readers().unwrap();
        let (queue, receiver) = flume::unbounded();
        for job in jobs {
            queue.send(job).unwrap();
        }
        drop(queue);
        let counters = Arc::new(Counters::default());
        let role = Role::Reader { reopen: Arc::clone(&reopen), idle: Arc::default() };
        Lane::new(receiver, Arc::new(parking_lot::Mutex::new(Some(reopen().unwrap()))), Arc::clone(&counters), role)
            .run()
            .unwrap();
        counters.snapshot(0, 0, 1)
    }

    #[test]
    fn a_read_group_runs_in_one_snapshot() {
        let bench = Bench::new();
        bench.storage.put(&bench.table, "x", StoredRef::Text(b"1")).unwrap();
        let stats = reader_runs(&bench, (0..5).map(|i| bench.job(&format!("r{i}"), Act::Count)).collect());
        assert_eq!((stats.read_groups, stats.reads, stats.reconnects), (1, 5, 0), "five reads, one snapshot");
        assert!(bench.answers().iter().all(|(_, answer)| answer == &Ok(1)));
    }

    #[test]
    fn a_read_group_whose_connection_broke_runs_again_on_a_new_one() {
        let bench = Bench::new();
        bench.storage.put(&bench.table, "x", StoredRef::Text(b"1")).unwrap();
        let jobs = vec![bench.job("a", Act::Count), bench.job("b", Act::BrokenOnce), bench.job("c", Act::Count)];
        let stats = reader_runs(&bench, jobs);
        assert_eq!(stats.reconnects, 1, "the reader opened a new connection");
        assert_eq!(bench.log.runs.load(Ordering::SeqCst), 6, "the whole group ran again");
        assert!(bench.answers().iter().all(|(_, answer)| answer == &Ok(1)), "{:?}", bench.answers());
    }

    #[test]
    fn a_read_that_is_not_a_broken_connection_fails_alone_without_a_reconnect() {
        let bench = Bench::new();
        let jobs = vec![bench.job("a", Act::Count), bench.job("b", Act::Refuse), bench.job("c", Act::Count)];
        let stats = reader_runs(&bench, jobs);
        assert_eq!((stats.read_groups, stats.reconnects), (1, 0));
        let answers = bench.answers();
        assert_eq!(answers[0], ("a".into(), Ok(0)));
        assert!(answers[1].1.as_ref().unwrap_err().contains("bad request"));
        assert_eq!(answers[2], ("c".into(), Ok(0)));
    }

    #[test]
    fn only_broken_connections_count_as_broken() {
        let none: [Box<dyn Job<SqliteStorage>>; 0] = [];
        assert!(connection_failed(Some(&Error::Io(std::io::Error::other("broken"))), &none));
        assert!(!connection_failed(Some(&Error::Validation { message: "bad request".into() }), &none));
        assert!(!connection_failed(Some(&Error::Closed), &none));
    }

    #[test]
    fn writes_that_find_the_file_locked_are_handed_over_unless_one_committed() {
        let mut bench = Bench::new();
        let (shared, counters) = (Shared::new(None, None), Counters::default());
        let other = bench.another_writer_holding_the_lock();
        let jobs = vec![bench.job("a", Act::Put), bench.job("b", Act::Put)];
        let settled = bench.storage.without_waiting(|storage| run_waiting_here(storage, &shared, &counters, jobs));
        let (handed, answered) = hand_over_busy(settled);
        assert_eq!((handed.len(), answered.len()), (2, 0), "nothing committed: both go to the writer");
        other.release();
        let settled = bench.storage.without_waiting(|storage| run_waiting_here(storage, &shared, &counters, handed));
        let (handed, answered) = hand_over_busy(settled);
        assert_eq!((handed.len(), answered.len()), (0, 2));
        answered.into_iter().for_each(|(job, failure)| job.finish(failure.as_ref()));
        assert_eq!(bench.answers(), [("a".into(), Ok(1)), ("b".into(), Ok(1))]);

        // A busy job beside one that failed for itself: the busy one goes, the other is answered.
        let busy = Error::LockTimeout { waited: Duration::ZERO };
        let refused = Error::Validation { message: "bad request".into() };
        let mixed = vec![(bench.job("c", Act::Put), Some(busy.clone())), (bench.job("d", Act::Put), Some(refused))];
        let (handed, answered) = hand_over_busy(mixed);
        assert_eq!((handed.len(), answered.len()), (1, 1));
        // Once one committed, every job keeps its answer (a rerun could overtake it).
        let run = |storage: &mut SqliteStorage, job| run_waiting_here(storage, &shared, &counters, vec![job]);
        let job = bench.job("e", Act::Put);
        let mut committed = run(&mut bench.storage, job);
        committed.push((bench.job("f", Act::Put), Some(busy.clone())));
        let (handed, answered) = hand_over_busy(committed);
        assert_eq!((handed.len(), answered.len()), (0, 2));
        // A job that failed alone did not commit: the busy one beside it still goes.
        let job = bench.job("g", Act::Fail);
        let mut failed = run(&mut bench.storage, job);
        failed.push((bench.job("h", Act::Put), Some(busy)));
        let (handed, answered) = hand_over_busy(failed);
        assert_eq!((handed.len(), answered.len()), (1, 1));
    }
}
