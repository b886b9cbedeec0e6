//! Where the store reads the time: a TTL cache's expiry and the watch for other writers'
//! interval. The system's monotonic clock by default; a [`ManualClock`] moves only when told
//! to, so that a test of expiry asserts what happens, not how fast a machine is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The time source of a store ([`Builder::clock`](crate::Builder::clock)).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use nanasqlite_core::{CacheStrategy, ManualClock, NanaSQLite};
///
/// let clock = ManualClock::new();
/// let ttl = CacheStrategy::Ttl { ttl: Duration::from_secs(60), size: None, delete_expired: false };
/// let db = NanaSQLite::builder(":memory:").cache(ttl).clock(clock.clone()).open()?;
/// db.set("session", &"token")?;
/// assert!(db.is_cached("session"));
/// clock.advance(Duration::from_secs(61));
/// assert!(!db.is_cached("session"), "expired, an hour before any real minute passed");
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<ManualClock>,
}

impl Clock {
    /// The system's monotonic clock ([`Instant::now`]): the default.
    #[must_use]
    pub fn system() -> Self {
        Self::default()
    }

    /// The time now, by this clock.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.manual.as_ref().map_or_else(Instant::now, ManualClock::now)
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        Self { manual: Some(manual) }
    }
}

/// A clock that stands still until [`advance`](Self::advance) moves it: for tests of TTL
/// expiry and of the watch for other writers. Clones share one time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    start: Instant,
    /// Nanoseconds the clock was moved past `start`.
    advanced: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at the moment it is made.
    #[must_use]
    pub fn new() -> Self {
        Self { start: Instant::now(), advanced: Arc::default() }
    }

    /// Moves the clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.advanced.fetch_add(nanos, Ordering::AcqRel);
    }

    /// The time now, by this clock.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.start + Duration::from_nanos(self.advanced.load(Ordering::Acquire))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_its_clones_with_it() {
        let manual = ManualClock::new();
        let clock = Clock::from(manual.clone());
        let before = clock.now();
        assert_eq!(clock.now(), before, "it stands still");
        manual.clone().advance(Duration::from_secs(3));
        assert_eq!(clock.now() - before, Duration::from_secs(3));
        assert!(Clock::system().now() >= before, "the system clock is the real one");
    }
}
