//! Noticing writes by other connections and processes (opt-in bounded staleness).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Clock;

/// When a store last asked SQLite whether another connection wrote, and what it answered.
#[derive(Debug)]
pub(crate) struct ExternalWrites {
    interval: Duration,
    clock: Clock,
    start: Instant,
    /// Nanoseconds after `start` of the last check.
    checked: AtomicU64,
    /// The last `PRAGMA data_version` seen; `i64::MIN` before the first.
    version: AtomicI64,
}

impl ExternalWrites {
    /// Checks at most once per `interval`, by `clock`.
    #[must_use]
    pub(crate) fn new(interval: Duration, clock: Clock) -> Self {
        let start = clock.now();
        Self { interval, clock, start, checked: AtomicU64::new(0), version: AtomicI64::new(i64::MIN) }
    }

    /// Whether a check is due; claims it (one caller gets `true` per interval).
    pub(crate) fn due(&self) -> bool {
        let now = u64::try_from((self.clock.now() - self.start).as_nanos()).unwrap_or(u64::MAX);
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
        let clock = crate::ManualClock::new();
        let watch = ExternalWrites::new(Duration::from_secs(1), clock.clone().into());
        assert!(!watch.due(), "not before the first interval has passed");
        clock.advance(Duration::from_millis(999));
        assert!(!watch.due(), "nor just before");
        clock.advance(Duration::from_millis(1));
        assert!(watch.due());
        assert!(!watch.due(), "claimed");
        clock.advance(Duration::from_millis(500));
        assert!(!watch.due(), "the next interval starts at the claim");
        clock.advance(Duration::from_millis(500));
        assert!(watch.due());
        assert!(!watch.changed(5), "the first answer is the baseline");
        assert!(!watch.changed(5));
        assert!(watch.changed(6));
    }
}
