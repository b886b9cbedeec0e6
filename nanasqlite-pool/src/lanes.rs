//! Lanes: threads that each own one connection and run the jobs of one queue.
//!
//! The writer lane owns the read-write connection. Writes waiting in its queue are run as one
//! group in one `BEGIN IMMEDIATE … COMMIT`; when one fails, the group is rolled back and the
//! others run again without it, so one failing write fails alone. Every caller is answered
//! after the commit that holds its write. Reader lanes own
//! read-only connections and run the reads waiting in their shared queue in one read snapshot;
//! a reader whose connection fails under a group (an I/O error, a file it can no longer read)
//! opens a new one and runs the group again there.
//! A lane stops when its queue is empty and every sender is gone, then closes its connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nanasqlite_core::Error;
use nanasqlite_core::storage::{SqliteStorage, Storage};

use crate::job::{Job, Kind};
use crate::stats::Counters;

/// How long the idle writer polls its queue before it parks (readers park at once: there
/// are several, and polling would take the cores the callers need).
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Most writes run in one group: bounds how long the first of them waits for its answer.
const MAX_WRITE_GROUP: usize = 256;

/// Most reads one reader takes at once, so that concurrent reads spread over the readers.
const MAX_READ_GROUP: usize = 16;

/// One lane: its queue, its connection, and the job it took but could not group.
pub(crate) struct Lane {
    queue: flume::Receiver<Box<dyn Job>>,
    storage: SqliteStorage,
    counters: Arc<Counters>,
    held: Option<Box<dyn Job>>,
    /// Whether this lane polls before parking (the writer does).
    spins: bool,
    /// Readers reopen their connection when the file was replaced (a restore).
    reopen: Option<Reopen>,
}

/// How a reader notices a replaced file and opens it again.
pub(crate) struct Reopen {
    pub(crate) generation: Arc<AtomicU64>,
    pub(crate) seen: u64,
    pub(crate) open: Box<dyn Fn() -> nanasqlite_core::Result<SqliteStorage> + Send>,
}

impl Lane {
    /// A lane on `queue`; `spins` for the writer.
    pub(crate) fn new(
        queue: flume::Receiver<Box<dyn Job>>,
        storage: SqliteStorage,
        counters: Arc<Counters>,
        spins: bool,
        reopen: Option<Reopen>,
    ) -> Self {
        Self { queue, storage, counters, held: None, spins, reopen }
    }

    /// Opens the file again if it was replaced since this lane last looked.
    fn follow_restore(&mut self) {
        let Some(reopen) = &self.reopen else { return };
        let generation = reopen.generation.load(Ordering::Acquire);
        if generation != reopen.seen
            && self.reconnect()
            && let Some(reopen) = &mut self.reopen
        {
            reopen.seen = generation;
        }
    }

    /// Replaces this reader's connection with a new one; whether that worked (the writer,
    /// which has no way to reopen, never does).
    fn reconnect(&mut self) -> bool {
        let Some(reopen) = &self.reopen else { return false };
        match (reopen.open)() {
            Ok(storage) => {
                let _ = std::mem::replace(&mut self.storage, storage).close();
                true
            }
            Err(error) => {
                tracing::warn!(%error, "a reader could not open a new connection");
                false
            }
        }
    }

    /// Runs a read group; if the connection failed under it, runs it once more on a new one.
    fn read_recovering(&mut self, mut jobs: Vec<Box<dyn Job>>) {
        let mut failure = self.read_once(&mut jobs);
        if connection_failed(failure.as_ref(), &jobs) && self.reconnect() {
            self.counters.record_reconnect();
            tracing::warn!(error = ?failure, "a reader's connection failed; reads run again on a new one");
            failure = self.read_once(&mut jobs);
        }
        for job in jobs {
            job.finish(failure.as_ref());
        }
    }

    fn read_once(&mut self, jobs: &mut [Box<dyn Job>]) -> Option<Error> {
        #[cfg(feature = "failpoints")]
        fail::fail_point!("nanasqlite-reader-connection", self.reopen.is_some(), |_| Some(injected_io_error()));
        run_reads(&mut self.storage, jobs)
    }

    /// Runs jobs until the queue is empty and closed; returns how closing the connection went.
    pub(crate) fn run(mut self) -> nanasqlite_core::Result<()> {
        while let Some(first) = self.held.take().or_else(|| self.next()) {
            self.follow_restore();
            let group = self.gather(first);
            self.run_group(group);
        }
        self.storage.close()
    }

    /// The next job: waits a moment actively (a job often follows the last one within
    /// microseconds, and waking a parked thread costs tens of them), then blocks.
    fn next(&self) -> Option<Box<dyn Job>> {
        let start = Instant::now();
        while self.spins && start.elapsed() < SPIN {
            match self.queue.try_recv() {
                Ok(job) => return Some(job),
                Err(flume::TryRecvError::Disconnected) => return None,
                Err(flume::TryRecvError::Empty) => std::thread::yield_now(),
            }
        }
        self.queue.recv().ok()
    }

    /// `first` and the jobs of the same kind queued behind it.
    fn gather(&mut self, first: Box<dyn Job>) -> Vec<Box<dyn Job>> {
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
                    self.held = Some(job);
                    break;
                }
                Err(_) => break,
            }
        }
        group
    }

    fn run_group(&mut self, group: Vec<Box<dyn Job>>) {
        let kind = group[0].kind();
        let jobs = self.startable(group);
        if jobs.is_empty() {
            return;
        }
        match kind {
            Kind::Write => {
                self.counters.record_write_group(jobs.len());
                run_writes(&mut self.storage, jobs);
            }
            Kind::Read => {
                self.counters.record_read_group(jobs.len());
                self.read_recovering(jobs);
            }
            Kind::Exclusive => run_alone(&mut self.storage, jobs),
        }
    }

    /// Drops jobs whose caller is gone, and answers overdue ones with `LockTimeout`.
    fn startable(&self, group: Vec<Box<dyn Job>>) -> Vec<Box<dyn Job>> {
        let now = Instant::now();
        group
            .into_iter()
            .filter_map(|job| {
                self.counters.record_wait(now.saturating_duration_since(job.queued_at()));
                if job.is_abandoned() {
                    self.counters.record_abandoned();
                    None
                } else if let Some(waited) = job.overdue(now) {
                    job.reject(Error::LockTimeout { waited });
                    None
                } else {
                    Some(job)
                }
            })
            .collect()
    }
}

/// Runs `jobs` in one write transaction and answers each after the commit.
///
/// Writes run without savepoints (they cost a statement journal per write). When one fails,
/// the transaction is rolled back, that write is answered with its error, and the others run
/// again in a new transaction: a failing write fails alone, and costs a rerun only then.
fn run_writes(storage: &mut SqliteStorage, mut jobs: Vec<Box<dyn Job>>) {
    let mut live: Vec<usize> = (0..jobs.len()).collect();
    let failure = loop {
        if let Err(error) = storage.begin_write() {
            break Some(error);
        }
        match run_until_failure(storage, &mut jobs, &mut live) {
            None => break storage.commit().err(),
            Some(failed) => {
                if let Err(error) = storage.rollback() {
                    break Some(error);
                }
                live.remove(failed);
            }
        }
    };
    for (i, job) in jobs.into_iter().enumerate() {
        let group_failure = failure.as_ref().filter(|_| live.contains(&i));
        job.finish(group_failure);
    }
}

/// Runs the `live` jobs in order (dropping those past their deadline from `live`); the
/// position in `live` of the first that failed.
fn run_until_failure(storage: &mut SqliteStorage, jobs: &mut [Box<dyn Job>], live: &mut Vec<usize>) -> Option<usize> {
    let mut position = 0;
    while let Some(&i) = live.get(position) {
        if jobs[i].time_out(Instant::now()) {
            live.remove(position);
            continue;
        }
        jobs[i].run(storage);
        if jobs[i].failed() {
            return Some(position);
        }
        position += 1;
    }
    None
}

/// Runs each of `jobs` by itself, outside any transaction the lane opens.
fn run_alone(storage: &mut SqliteStorage, jobs: Vec<Box<dyn Job>>) {
    for mut job in jobs {
        if !job.time_out(Instant::now()) {
            job.run(storage);
        }
        job.finish(None);
    }
}

/// Runs `jobs` in one read snapshot (a lone read needs none); the snapshot's own failure.
fn run_reads(storage: &mut SqliteStorage, jobs: &mut [Box<dyn Job>]) -> Option<Error> {
    let alone = jobs.len() == 1;
    let mut run = |storage: &mut SqliteStorage| {
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
fn connection_failed(failure: Option<&Error>, jobs: &[Box<dyn Job>]) -> bool {
    use rusqlite::ErrorCode::{CannotOpen, DatabaseCorrupt, NotADatabase, SystemIoFailure};
    let broken = |error: &Error| {
        matches!(error, Error::Sqlite(rusqlite::Error::SqliteFailure(failure, _))
            if matches!(failure.code, SystemIoFailure | CannotOpen | DatabaseCorrupt | NotADatabase))
    };
    failure.is_some_and(broken) || jobs.iter().filter_map(|job| job.error()).any(broken)
}

/// The error the `nanasqlite-reader-connection` fail point makes a read group fail with.
#[cfg(feature = "failpoints")]
fn injected_io_error() -> Error {
    let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_READ);
    Error::Sqlite(rusqlite::Error::SqliteFailure(code, Some("injected by a fail point".to_owned())))
}
