//! Point writes waiting for their caller's next poll to run on its thread (inline writes), and
//! the fallback that hands them to the writer when that poll does not come in time.
//!
//! A write's future joins the list at its first poll and yields once; its next poll runs the
//! whole list on the writer's connection. The writer runs the list too, before every group it
//! takes. A caller that polls a write once and then neither polls nor drops it (a future kept
//! aside in a `select!` loop) would hold the write, and the writes behind it, until the store's
//! next job: after [`CALLER_GRACE`] the deadline thread wakes the writer instead.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use nanasqlite_core::engine::Table;
use nanasqlite_core::storage::Storage;

use crate::deadline::{self, Expire};
use crate::job::Job;
use crate::pool::Pool;

/// How long a write may wait for its caller's next poll before the writer is woken to run it.
/// A caller polls again at once (the write wakes its task as it yields), so this is reached
/// only by a caller that does not, or one its runtime left waiting this long (then the writer
/// runs its write, which is as correct); at most one deadline is armed at a time, so
/// sequential inline writes arm one per this period, not one each.
pub(crate) const CALLER_GRACE: Duration = Duration::from_millis(50);

/// The writes waiting for a caller, in the order they were polled.
pub(crate) struct Waiting<S: Storage> {
    jobs: Vec<Box<dyn Job<S>>>,
    /// When the oldest of `jobs` joined.
    since: Option<Instant>,
    /// The armed fallback (the deadline thread holds it weakly): `None` when none is armed.
    fallback: Option<Arc<dyn Expire>>,
}

impl<S: Storage> Default for Waiting<S> {
    fn default() -> Self {
        Self { jobs: Vec::new(), since: None, fallback: None }
    }
}

impl<S: Storage> Waiting<S> {
    /// Adds `job` at the end; arms the fallback of `pool` for `table` unless one is armed.
    pub(crate) fn push(&mut self, job: Box<dyn Job<S>>, pool: &Arc<Pool<S>>, table: &Arc<Table<S>>) {
        let now = Instant::now();
        self.since.get_or_insert(now);
        self.jobs.push(job);
        if self.fallback.is_none() {
            self.arm(now + CALLER_GRACE, pool, table);
        }
    }

    /// The first `most` waiting jobs, to run now (the callers of the others poll them next).
    pub(crate) fn take(&mut self, most: usize) -> Vec<Box<dyn Job<S>>> {
        if self.jobs.len() <= most {
            self.since = None;
            return std::mem::take(&mut self.jobs);
        }
        let rest = self.jobs.split_off(most);
        std::mem::replace(&mut self.jobs, rest)
    }

    /// Whether no write waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Puts `jobs`, taken earlier, back before those that joined since (the writer was sent
    /// for, to run them).
    pub(crate) fn put_back(&mut self, jobs: Vec<Box<dyn Job<S>>>) {
        self.since.get_or_insert_with(Instant::now);
        let later = std::mem::replace(&mut self.jobs, jobs);
        self.jobs.extend(later);
    }

    /// Called when the fallback fires: whether the writer must be woken (a write has waited
    /// [`CALLER_GRACE`]); re-arms it if younger writes wait.
    pub(crate) fn fallback_due(&mut self, pool: &Arc<Pool<S>>, table: &Arc<Table<S>>) -> bool {
        self.fallback = None;
        match self.since {
            Some(since) if since.elapsed() >= CALLER_GRACE => true,
            Some(since) => {
                self.arm(since + CALLER_GRACE, pool, table);
                false
            }
            None => false,
        }
    }

    fn arm(&mut self, at: Instant, pool: &Arc<Pool<S>>, table: &Arc<Table<S>>) {
        let fallback: Arc<dyn Expire> = Arc::new(Stragglers { pool: Arc::downgrade(pool), table: Arc::clone(table) });
        // Without a deadline thread nothing is armed: such a write waits for the store's next
        // job, or its close.
        if deadline::at(at, Arc::downgrade(&fallback)) {
            self.fallback = Some(fallback);
        }
    }
}

/// The fallback: wakes the writer of `pool` if writes still wait for their callers.
struct Stragglers<S: Storage> {
    pool: Weak<Pool<S>>,
    /// The table of the write that armed it (a job needs one; the writer's wake-up reads none).
    table: Arc<Table<S>>,
}

impl<S: Storage> Expire for Stragglers<S> {
    fn expire(&self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.wake_for_stragglers(&self.table);
        }
    }
}
