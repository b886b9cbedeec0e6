//! Noticing writes by other connections and processes (opt-in bounded staleness).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When a store last asked SQLite whether another connection wrote, and what it answered.
#[derive(Debug)]
pub(crate) struct ExternalWrites {
    interval: Duration,
    start: Instant,
    /// Nanoseconds after `start` of the last check.
    checked: AtomicU64,
    /// The last `PRAGMA data_version` seen; `i64::MIN` before the first.
    version: AtomicI64,
}

impl ExternalWrites {
    /// Checks at most once per `interval`.
    #[must_use]
    pub(crate) fn new(interval: Duration) -> Self {
        Self { interval, start: Instant::now(), checked: AtomicU64::new(0), version: AtomicI64::new(i64::MIN) }
    }

    /// Whether a check is due; claims it (one caller gets `true` per interval).
    pub(crate) fn due(&self) -> bool {
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let last = self.checked.load(Ordering::Relaxed);
        let interval = u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX);
        now.saturating_sub(last) >= interval
            && self.checked.compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed).is_ok()
    }

    /// Records `version`; `true` if it differs from the one seen before (another connection
    /// committed since), so the caches must be emptied.
    pub(crate) fn changed(&self, version: i64) -> bool {
        let before = self.version.swap(version, Ordering::AcqRel);
        before != i64::MIN && before != version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_once_per_interval_and_changes_after_the_first() {
        let watch = ExternalWrites::new(Duration::from_millis(30));
        assert!(!watch.due(), "not before the first interval has passed");
        std::thread::sleep(Duration::from_millis(40));
        assert!(watch.due());
        assert!(!watch.due(), "claimed");
        assert!(!watch.changed(5), "the first answer is the baseline");
        assert!(!watch.changed(5));
        assert!(watch.changed(6));
    }
}
