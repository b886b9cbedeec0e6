//! Lanes: threads that each own one connection and run the jobs of one queue.
//!
//! The writer lane owns the read-write connection. Writes waiting in its queue are run as one
//! group in one `BEGIN IMMEDIATE … COMMIT`, each inside its own savepoint, so one failing write
//! fails alone; every caller is answered after the commit that holds its write. Reader lanes own
//! read-only connections and run the reads waiting in their shared queue in one read snapshot.
//! A lane stops when its queue is empty and every sender is gone, then closes its connection.

use std::sync::Arc;
use std::time::Instant;

use nanasqlite_core::Error;
use nanasqlite_core::storage::{SqliteStorage, Storage};

use crate::job::{Job, Kind};
use crate::stats::Counters;

/// Most jobs run in one group: bounds how long the first of them waits for its answer.
const MAX_GROUP: usize = 256;

/// One lane: its queue, its connection, and the job it took but could not group.
pub(crate) struct Lane {
    queue: flume::Receiver<Box<dyn Job>>,
    storage: SqliteStorage,
    counters: Arc<Counters>,
    held: Option<Box<dyn Job>>,
}

impl Lane {
    pub(crate) fn new(queue: flume::Receiver<Box<dyn Job>>, storage: SqliteStorage, counters: Arc<Counters>) -> Self {
        Self { queue, storage, counters, held: None }
    }

    /// Runs jobs until the queue is empty and closed; returns how closing the connection went.
    pub(crate) fn run(mut self) -> nanasqlite_core::Result<()> {
        while let Some(first) = self.held.take().or_else(|| self.queue.recv().ok()) {
            let group = self.gather(first);
            self.run_group(group);
        }
        self.storage.close()
    }

    /// `first` and the jobs of the same kind queued behind it.
    fn gather(&mut self, first: Box<dyn Job>) -> Vec<Box<dyn Job>> {
        let kind = first.kind();
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
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
                run_reads(&mut self.storage, jobs);
            }
        }
    }

    /// Drops jobs whose caller is gone, and answers overdue ones with `LockTimeout`.
    fn startable(&self, group: Vec<Box<dyn Job>>) -> Vec<Box<dyn Job>> {
        let now = Instant::now();
        group
            .into_iter()
            .filter_map(|job| {
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
/// A failing job rolls back its own savepoint only. Some failures (a full disk, an I/O error)
/// make SQLite abort the whole transaction: then the failed job is answered with its error and
/// the others run again in a new transaction, since their changes went with the old one.
fn run_writes(storage: &mut SqliteStorage, mut jobs: Vec<Box<dyn Job>>) {
    let mut live: Vec<usize> = (0..jobs.len()).collect();
    let failure = loop {
        if let Err(error) = storage.begin_write() {
            break Some(error);
        }
        match run_until_abort(storage, &mut jobs, &live) {
            None => break storage.commit().err(),
            Some(aborted) => {
                let (ran, rest) = live.split_at(aborted);
                let rerun = ran.iter().copied().filter(|&i| !jobs[i].failed());
                live = rerun.chain(rest[1..].iter().copied()).collect();
            }
        }
    };
    for (i, job) in jobs.into_iter().enumerate() {
        let group_failure = failure.as_ref().filter(|_| live.contains(&i));
        job.finish(group_failure);
    }
}

/// Runs the `live` jobs in order; the position of the one whose failure ended the transaction.
fn run_until_abort(storage: &mut SqliteStorage, jobs: &mut [Box<dyn Job>], live: &[usize]) -> Option<usize> {
    live.iter().position(|&i| {
        if jobs[i].time_out(Instant::now()) {
            return false;
        }
        jobs[i].run(storage);
        jobs[i].failed() && !storage.in_transaction()
    })
}

/// Runs `jobs` in one read snapshot and answers each.
fn run_reads(storage: &mut SqliteStorage, mut jobs: Vec<Box<dyn Job>>) {
    let run = |storage: &mut SqliteStorage| {
        for job in &mut jobs {
            if !job.time_out(Instant::now()) {
                job.run(storage);
            }
        }
    };
    let failure = storage.read_snapshot(run).err();
    for job in jobs {
        job.finish(failure.as_ref());
    }
}
