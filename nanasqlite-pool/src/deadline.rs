//! One thread for the whole process that answers jobs still queued when their `lock_timeout`
//! runs out: a caller waiting behind a long write, or behind a `begin()` guard held by its own
//! task, gets [`Error::LockTimeout`](nanasqlite_core::Error::LockTimeout) on time instead of
//! whenever the lane reaches its job. Runtime-neutral: no runtime timer is involved.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::time::Instant;

/// Something to settle at a deadline, unless it was settled before (a job a lane took).
pub(crate) trait Expire: Send + Sync {
    /// Settles it as timed out, if nobody has taken it yet.
    fn expire(&self);
}

struct Entry {
    at: Instant,
    order: u64,
    expiry: Weak<dyn Expire>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

#[derive(Default)]
struct Timer {
    pending: Mutex<(BinaryHeap<Reverse<Entry>>, u64)>,
    changed: Condvar,
    /// The thread that settles deadlines was started.
    running: bool,
}

static TIMER: OnceLock<Timer> = OnceLock::new();

/// Settles `expiry` at `at`, unless it is gone (or was settled) by then; `false` if no thread
/// will (it could not be started).
pub(crate) fn at(at: Instant, expiry: Weak<dyn Expire>) -> bool {
    let timer = TIMER.get_or_init(|| {
        let spawned = std::thread::Builder::new().name("nanasqlite-deadlines".to_owned()).spawn(run);
        if let Err(error) = &spawned {
            tracing::warn!(%error, "could not start the deadline thread; queued jobs time out when a lane reaches them");
        }
        Timer { running: spawned.is_ok(), ..Timer::default() }
    });
    if !timer.running {
        return false;
    }
    let mut pending = timer.pending.lock().unwrap_or_else(PoisonError::into_inner);
    let order = pending.1;
    pending.1 += 1;
    let earliest = pending.0.peek().is_none_or(|Reverse(first)| at < first.at);
    pending.0.push(Reverse(Entry { at, order, expiry }));
    drop(pending);
    if earliest {
        timer.changed.notify_one();
    }
    true
}

/// The timer thread: sleeps until the earliest deadline, settles what is due, repeats.
fn run() {
    let timer = TIMER.get_or_init(Timer::default);
    let mut pending = timer.pending.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let now = Instant::now();
        match pending.0.peek() {
            None => pending = timer.changed.wait(pending).unwrap_or_else(PoisonError::into_inner),
            Some(Reverse(first)) if first.at > now => {
                let wait = first.at - now;
                pending = timer.changed.wait_timeout(pending, wait).unwrap_or_else(PoisonError::into_inner).0;
            }
            Some(_) => {
                let due = pending.0.pop().map(|Reverse(entry)| entry.expiry);
                drop(pending);
                if let Some(expiry) = due.and_then(|expiry| expiry.upgrade()) {
                    expiry.expire();
                }
                pending = timer.pending.lock().unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Expire for Count {
        fn expire(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn settles_what_is_due_in_deadline_order_and_skips_what_is_gone() {
        let (early, late, gone) = (Arc::new(Count::default()), Arc::new(Count::default()), Arc::new(Count::default()));
        let now = Instant::now();
        at(now + Duration::from_millis(200), Arc::downgrade(&late) as Weak<dyn Expire>);
        at(now + Duration::from_millis(20), Arc::downgrade(&early) as Weak<dyn Expire>);
        at(now + Duration::from_millis(20), Arc::downgrade(&gone) as Weak<dyn Expire>);
        drop(gone);
        let deadline = Instant::now() + Duration::from_secs(10);
        while early.0.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(early.0.load(Ordering::SeqCst), 1, "the early deadline was met");
        assert_eq!(late.0.load(Ordering::SeqCst), 0, "the late one is not due yet");
        while late.0.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(late.0.load(Ordering::SeqCst), 1);
    }
}
