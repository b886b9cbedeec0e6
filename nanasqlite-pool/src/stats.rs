//! Counters of what the pool and the caches did.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// A snapshot of the store's counters, from `AsyncNanaSQLite::stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Jobs waiting in the writer's queue now.
    pub write_queue: usize,
    /// Jobs waiting in the readers' queue now (0 without readers).
    pub read_queue: usize,
    /// Callers waiting now for room in a full queue. Each one's job stays in its own future
    /// (dropping the future drops the job); the pool holds at most `queue_capacity` jobs
    /// however many callers there are.
    pub waiting_for_room: usize,
    /// Threads the pool runs: one writer plus the readers.
    pub lanes: usize,
    /// Write groups committed (each one transaction).
    pub write_groups: u64,
    /// Writes run in those groups.
    pub writes: u64,
    /// The most writes one group held.
    pub largest_write_group: u64,
    /// Read snapshots taken (each serving one or more reads).
    pub read_groups: u64,
    /// Reads run in those snapshots.
    pub reads: u64,
    /// Jobs skipped because their caller was gone before they started.
    pub abandoned: u64,
    /// Jobs a lane took from a queue and started (not those abandoned or timed out first).
    pub jobs_started: u64,
    /// Their total time in the queue (from being handed over to being taken by a lane); over
    /// `jobs_started`, the mean wait.
    pub queue_wait: Duration,
    /// Point reads (cache misses) run on the caller's thread, on a connection that was free.
    pub inline_reads: u64,
    /// Of `writes`, the point writes (`set`, `delete`) committed on a caller's thread while the
    /// writer had nothing to do (`inline_writes`), in groups of those polled together.
    pub inline_writes: u64,
    /// Reads answered by a cache without a job.
    pub cache_hits: u64,
    /// Reads that needed a job.
    pub cache_misses: u64,
    /// Connections a reader replaced after they failed under it.
    pub reconnects: u64,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    write_groups: AtomicU64,
    writes: AtomicU64,
    largest_write_group: AtomicU64,
    read_groups: AtomicU64,
    reads: AtomicU64,
    abandoned: AtomicU64,
    jobs_started: AtomicU64,
    queue_wait_nanos: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    reconnects: AtomicU64,
    inline_reads: AtomicU64,
    inline_writes: AtomicU64,
    waiting_for_room: AtomicUsize,
}

/// Counts one caller waiting for room in a full queue, for as long as it lives (a dropped
/// future stops counting too).
pub(crate) struct WaitingForRoom<'a>(&'a AtomicUsize);

impl Drop for WaitingForRoom<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn record_write_group(&self, size: usize) {
        add(&self.write_groups, 1);
        add(&self.writes, size as u64);
        self.largest_write_group.fetch_max(size as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_read_group(&self, size: usize) {
        add(&self.read_groups, 1);
        add(&self.reads, size as u64);
    }

    pub(crate) fn record_wait(&self, waited: Duration) {
        add(&self.jobs_started, 1);
        add(&self.queue_wait_nanos, u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX));
    }

    pub(crate) fn record_abandoned(&self) {
        add(&self.abandoned, 1);
    }

    pub(crate) fn record_reconnect(&self) {
        add(&self.reconnects, 1);
    }

    pub(crate) fn record_inline_read(&self) {
        add(&self.inline_reads, 1);
    }

    pub(crate) fn record_inline_writes(&self, writes: usize) {
        add(&self.inline_writes, writes as u64);
    }

    /// Counts a caller waiting for room until the returned guard drops.
    pub(crate) fn wait_for_room(&self) -> WaitingForRoom<'_> {
        self.waiting_for_room.fetch_add(1, Ordering::Relaxed);
        WaitingForRoom(&self.waiting_for_room)
    }

    pub(crate) fn record_cache(&self, hit: bool) {
        add(if hit { &self.cache_hits } else { &self.cache_misses }, 1);
    }

    /// The counters, with the queue figures the caller measured.
    pub(crate) fn snapshot(&self, write_queue: usize, read_queue: usize, lanes: usize) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            write_queue,
            read_queue,
            waiting_for_room: self.waiting_for_room.load(Ordering::Relaxed),
            lanes,
            write_groups: load(&self.write_groups),
            writes: load(&self.writes),
            largest_write_group: load(&self.largest_write_group),
            read_groups: load(&self.read_groups),
            reads: load(&self.reads),
            abandoned: load(&self.abandoned),
            jobs_started: load(&self.jobs_started),
            queue_wait: Duration::from_nanos(load(&self.queue_wait_nanos)),
            inline_reads: load(&self.inline_reads),
            inline_writes: load(&self.inline_writes),
            cache_hits: load(&self.cache_hits),
            cache_misses: load(&self.cache_misses),
            reconnects: load(&self.reconnects),
        }
    }
}
