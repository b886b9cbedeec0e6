//! The in-memory cache of one key/value table: building blocks for stores on this crate.
//!
//! It holds what SQLite holds for the keys it has seen: the stored JSON text (parsed once, on
//! first shared use) or the fact that a key is absent. It sits behind its own short-lived lock,
//! never held across a SQLite call, so a cache hit never waits for a write in progress.
//!
//! Two kinds of update keep it true to the file:
//! - a **write** ([`Cache::write`], …) records what a committed write stored; it is applied only
//!   after the commit succeeded, so a failed write never shows;
//! - a **fill** ([`Cache::fill`], …) records what a read found. Reads may run on other threads
//!   than writes, so a fill carries the [`Epoch`] taken before its read began, and is dropped if
//!   the key was written (or the cache cleared) since: a slow read never hides a newer write.
//!
//! Most users never need this module: [`NanaSQLite`](crate::NanaSQLite) uses it internally.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hashlink::LinkedHashMap;
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::codec;
use crate::error::Result;

/// How a store caches the rows it has read or written.
///
/// # Examples
///
/// ```
/// use nanasqlite_core::{CacheStrategy, NanaSQLite};
///
/// let db = NanaSQLite::builder(":memory:").cache(CacheStrategy::Unbounded).open()?;
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStrategy {
    /// Keep every value read or written, and every key found absent, until `clear_cache`
    /// (the default, as in Python NanaSQLite).
    #[default]
    Unbounded,
    /// As `Unbounded`, but at most `size` keys: the key cached first goes first (rewriting a
    /// key keeps its place). Python NanaSQLite's unbounded cache with `cache_size`.
    Fifo {
        /// Most keys held (present or known absent).
        size: usize,
    },
    /// At most `size` keys; the least recently read or written goes first.
    Lru {
        /// Most keys held (present or known absent).
        size: usize,
    },
    /// Entries expire `ttl` after they were cached or written (reads do not extend them) and
    /// are read again from the file. With `size`, at most that many keys (the oldest write
    /// goes first). With `delete_expired`, an expired key is also deleted from the file (data
    /// expiry, Python NanaSQLite's `cache_persistence_ttl`; only for keys cached in this
    /// process). Expiry needs no thread: it is checked on reads and swept on writes.
    Ttl {
        /// How long an entry lives.
        ttl: Duration,
        /// Most keys held, if bounded.
        size: Option<usize>,
        /// Delete expired keys from the file too.
        delete_expired: bool,
    },
}

impl CacheStrategy {
    /// Checks the sizes and durations.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a zero size or a zero TTL.
    pub fn validate(self) -> Result<Self> {
        let bad = match self {
            Self::Unbounded => None,
            Self::Fifo { size } | Self::Lru { size } | Self::Ttl { size: Some(size), .. } if size == 0 => {
                Some("cache size must be at least 1")
            }
            Self::Ttl { ttl, .. } if ttl.is_zero() => Some("cache ttl must be more than zero"),
            _ => None,
        };
        bad.map_or(Ok(self), |message| Err(crate::Error::validation(message)))
    }

    fn size(self) -> Option<usize> {
        match self {
            Self::Unbounded => None,
            Self::Fifo { size } | Self::Lru { size } => Some(size),
            Self::Ttl { size, .. } => size,
        }
    }

    fn ttl(self) -> Option<Duration> {
        if let Self::Ttl { ttl, .. } = self { Some(ttl) } else { None }
    }
}

/// One cached row: its JSON text, and the parsed value once somebody asked for it (in an
/// `Arc`, so a read can share it instead of copying).
#[derive(Debug)]
pub struct CachedValue {
    json: Box<str>,
    parsed: OnceLock<Arc<Value>>,
}

impl CachedValue {
    /// A cached row holding `json` (parsed lazily).
    pub fn new(json: impl Into<Box<str>>) -> Arc<Self> {
        Arc::new(Self { json: json.into(), parsed: OnceLock::new() })
    }

    /// The stored JSON text.
    #[must_use]
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The parsed value; parsed on the first call, shared afterwards.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) naming `key` when the text is not JSON.
    pub fn value(&self, key: &str) -> Result<&Arc<Value>> {
        if let Some(value) = self.parsed.get() {
            return Ok(value);
        }
        let value = Arc::new(codec::parse(key, &self.json)?);
        Ok(self.parsed.get_or_init(|| value))
    }

    /// The value converted to the caller's type, straight from the text: cheaper than going
    /// through the shared parsed value, which would be copied into `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) naming `key`.
    pub fn decode<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        codec::decode(key, &self.json)
    }
}

/// What the cache knows about a key.
#[derive(Debug)]
pub enum Lookup {
    /// The key is present with this value.
    Hit(Arc<CachedValue>),
    /// The key is known to be absent.
    Absent,
    /// The cache does not know; ask the database.
    Miss,
}

/// A point in the cache's history of writes, taken before a read so its fill can be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epoch(u64);

#[derive(Clone, Debug)]
struct Slot {
    value: Option<Arc<CachedValue>>,
    /// When this slot was last written (or the epoch of the read that filled it).
    epoch: Epoch,
    /// When it expires (TTL caches).
    expires: Option<Instant>,
}

impl Slot {
    fn live(&self, now: Option<Instant>) -> bool {
        self.expires.zip(now).is_none_or(|(expires, now)| now < expires)
    }
}

type Map = LinkedHashMap<Box<str>, Slot, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct State {
    slots: Map,
    /// Every row of the table is in `slots`, so a key not there is absent (unbounded only).
    all_loaded: bool,
    /// Bumped by every write, clear and forget.
    epoch: u64,
    /// The last clear or forget: fills from reads that began before it are dropped.
    cleared: u64,
    /// TTL caches: `(expiry, key, epoch)` in the order entries were set, for sweeping.
    expiring: VecDeque<(Instant, Box<str>, Epoch)>,
    /// Expired keys to delete from the file (`delete_expired`).
    to_delete: Vec<String>,
}

impl State {
    fn next_epoch(&mut self) -> Epoch {
        self.epoch += 1;
        Epoch(self.epoch)
    }

    fn may_fill(&self, key: &str, since: Epoch) -> bool {
        since.0 >= self.cleared && self.slots.get(key).is_none_or(|slot| slot.epoch <= since)
    }
}

/// The cache of one table.
#[derive(Debug, Default)]
pub struct Cache {
    strategy: CacheStrategy,
    state: RwLock<State>,
}

impl Cache {
    /// An empty cache with `strategy`.
    #[must_use]
    pub fn new(strategy: CacheStrategy) -> Self {
        Self { strategy, state: RwLock::default() }
    }

    /// The clock, for TTL caches only (others never read it).
    fn now(&self) -> Option<Instant> {
        self.strategy.ttl().map(|_| Instant::now())
    }

    // ----- reads -----

    /// What the cache knows about `key`.
    pub fn lookup(&self, key: &str) -> Lookup {
        if matches!(self.strategy, CacheStrategy::Lru { .. }) {
            let mut state = self.state.write();
            return state.slots.to_back(key).map_or(Lookup::Miss, |slot| Self::answer(slot));
        }
        let now = self.now();
        let state = self.state.read();
        match state.slots.get(key) {
            Some(slot) if slot.live(now) => Self::answer(slot),
            Some(_) => Lookup::Miss,
            None if state.all_loaded => Lookup::Absent,
            None => Lookup::Miss,
        }
    }

    fn answer(slot: &Slot) -> Lookup {
        slot.value.as_ref().map_or(Lookup::Absent, |value| Lookup::Hit(Arc::clone(value)))
    }

    /// The present values among `keys`, all read under one lock (so a batch written meanwhile
    /// is seen whole or not at all); `None` if the cache does not know one of the keys.
    pub fn lookup_all(&self, keys: &[&str]) -> Option<Vec<(String, Arc<CachedValue>)>> {
        let now = self.now();
        let state = self.state.read();
        let mut rows = Vec::with_capacity(keys.len());
        for &key in keys {
            match state.slots.get(key) {
                Some(slot) if !slot.live(now) => return None,
                Some(Slot { value: Some(value), .. }) => rows.push((key.to_owned(), Arc::clone(value))),
                Some(Slot { value: None, .. }) => {}
                None if state.all_loaded => {}
                None => return None,
            }
        }
        Some(rows)
    }

    /// Whether the cache can answer for `key` (present or known absent, and not expired).
    /// Does not count as a use for LRU.
    pub fn knows(&self, key: &str) -> bool {
        let now = self.now();
        let state = self.state.read();
        state.slots.get(key).map_or(state.all_loaded, |slot| slot.live(now))
    }

    /// Whether every row of the table is cached.
    pub fn is_all_loaded(&self) -> bool {
        self.state.read().all_loaded
    }

    /// The present entries, sorted by key.
    pub fn present_sorted(&self) -> Vec<(String, Arc<CachedValue>)> {
        let now = self.now();
        let state = self.state.read();
        let mut rows: Vec<_> = state
            .slots
            .iter()
            .filter(|(_, slot)| slot.live(now))
            .filter_map(|(key, slot)| slot.value.as_ref().map(|value| (String::from(&**key), Arc::clone(value))))
            .collect();
        drop(state);
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// The current epoch: take it before a read, and pass it to the fill of that read.
    pub fn epoch(&self) -> Epoch {
        Epoch(self.state.read().epoch)
    }

    // ----- writes (after a successful commit) -----

    /// Records that `key` now holds `value` (`None`: was deleted).
    pub fn write(&self, key: &str, value: Option<Arc<CachedValue>>) {
        let mut state = self.state.write();
        let epoch = state.next_epoch();
        self.set(&mut state, key, value, epoch);
    }

    /// Records a committed batch: `rows` now hold their values, `deleted` are gone.
    pub fn write_many<'a>(
        &self,
        rows: impl IntoIterator<Item = (&'a str, Arc<CachedValue>)>,
        deleted: impl IntoIterator<Item = &'a str>,
    ) {
        let mut state = self.state.write();
        let epoch = state.next_epoch();
        for (key, value) in rows {
            self.set(&mut state, key, Some(value), epoch);
        }
        for key in deleted {
            self.set(&mut state, key, None, epoch);
        }
    }

    /// Empties the cache (the table was cleared, or the caller asked).
    pub fn clear(&self) {
        let mut state = self.state.write();
        let epoch = state.next_epoch();
        let to_delete = std::mem::take(&mut state.to_delete);
        *state = State { epoch: epoch.0, cleared: epoch.0, to_delete, ..State::default() };
    }

    /// Forgets `key`, so the next read goes to the database.
    pub fn forget(&self, key: &str) {
        let mut state = self.state.write();
        state.cleared = state.next_epoch().0;
        state.slots.remove(key);
        state.all_loaded = false;
    }

    // ----- fills (results of reads that began at `since`) -----

    /// Records what a read of `key` found, unless the key was written since; returns whether
    /// it was recorded.
    pub fn fill(&self, key: &str, value: Option<Arc<CachedValue>>, since: Epoch) -> bool {
        let mut state = self.state.write();
        let fill = state.may_fill(key, since);
        if fill {
            self.set(&mut state, key, value, since);
        }
        fill
    }

    /// Records what a read of several keys found: `rows` exist, the other `wanted` keys do not.
    pub fn fill_many(&self, wanted: &[&str], rows: &[(String, Arc<CachedValue>)], since: Epoch) {
        let found: HashMap<&str, &Arc<CachedValue>, foldhash::fast::RandomState> =
            rows.iter().map(|(key, value)| (key.as_str(), value)).collect();
        let mut state = self.state.write();
        for &key in wanted {
            if state.may_fill(key, since) {
                let value = found.get(key).map(|value| Arc::clone(value));
                self.set(&mut state, key, value, since);
            }
        }
    }

    /// Replaces the content with every row of the table, unless anything was written or
    /// cleared since the scan began; returns whether it did.
    pub fn fill_all(&self, rows: Vec<(Box<str>, Arc<CachedValue>)>, since: Epoch) -> bool {
        if self.strategy != CacheStrategy::Unbounded {
            // A bounded or expiring cache cannot vouch for every key: fill it key by key.
            let mut state = self.state.write();
            let fill = state.epoch == since.0;
            for (key, value) in rows.into_iter().filter(|_| fill) {
                self.set(&mut state, &key, Some(value), since);
            }
            return fill;
        }
        let mut slots = Map::with_capacity_and_hasher(rows.len(), Default::default());
        slots.extend(
            rows.into_iter().map(|(key, value)| (key, Slot { value: Some(value), epoch: since, expires: None })),
        );
        let mut state = self.state.write();
        let fill = state.epoch == since.0;
        if fill {
            state.slots = slots;
            state.all_loaded = true;
        }
        fill
    }

    /// Keys that expired and must be deleted from the file (TTL with `delete_expired`); each
    /// is handed out once.
    pub fn take_expired(&self) -> Vec<String> {
        if !matches!(self.strategy, CacheStrategy::Ttl { delete_expired: true, .. }) {
            return Vec::new();
        }
        let mut state = self.state.write();
        self.sweep(&mut state, Instant::now());
        std::mem::take(&mut state.to_delete)
    }

    /// Records `key` as `value`, as the strategy says: where it goes in the order, when it
    /// expires, and what is evicted to make room.
    fn set(&self, state: &mut State, key: &str, value: Option<Arc<CachedValue>>, epoch: Epoch) {
        let now = self.now();
        let expires = self.strategy.ttl().zip(now).map(|(ttl, now)| now + ttl);
        let slot = Slot { value, epoch, expires };
        match self.strategy {
            // First insertion decides the place: rewriting a key keeps it.
            CacheStrategy::Unbounded | CacheStrategy::Fifo { .. } => {
                if let Some(existing) = state.slots.get_mut(key) {
                    *existing = slot;
                } else {
                    state.slots.insert(key.into(), slot);
                }
            }
            // Every write moves the key to the back.
            CacheStrategy::Lru { .. } | CacheStrategy::Ttl { .. } => {
                state.slots.insert(key.into(), slot);
            }
        }
        if let Some(expires) = expires {
            state.expiring.push_back((expires, key.into(), epoch));
            self.sweep(state, now.unwrap_or_else(Instant::now));
        }
        if let Some(size) = self.strategy.size() {
            while state.slots.len() > size {
                state.slots.pop_front();
                state.all_loaded = false;
            }
        }
    }

    /// Drops expired entries (TTL caches), noting the ones to delete from the file.
    fn sweep(&self, state: &mut State, now: Instant) {
        let delete = matches!(self.strategy, CacheStrategy::Ttl { delete_expired: true, .. });
        while let Some((expires, _, _)) = state.expiring.front() {
            if *expires > now {
                break;
            }
            let Some((_, key, epoch)) = state.expiring.pop_front() else { break };
            // Only if the slot is still the one this entry was queued for.
            if state.slots.get(&key).is_some_and(|slot| slot.epoch == epoch && !slot.live(Some(now))) {
                let slot = state.slots.remove(&key);
                if delete && slot.is_some_and(|slot| slot.value.is_some()) {
                    state.to_delete.push(key.into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(cache: &Cache, key: &str) -> Option<i64> {
        match cache.lookup(key) {
            Lookup::Hit(value) => value.decode(key).ok(),
            _ => None,
        }
    }

    #[test]
    fn remembers_values_and_absence() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        assert!(matches!(cache.lookup("a"), Lookup::Miss));
        cache.write("a", Some(CachedValue::new("1")));
        cache.write("b", None);
        assert_eq!(hit(&cache, "a"), Some(1));
        assert!(matches!(cache.lookup("b"), Lookup::Absent));
        assert!(cache.knows("b"));
        cache.forget("a");
        assert!(!cache.knows("a"));
    }

    #[test]
    fn a_fill_never_hides_a_newer_write() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        let before_read = cache.epoch();
        cache.write("k", Some(CachedValue::new("2"))); // committed while the read ran
        assert!(!cache.fill("k", Some(CachedValue::new("1")), before_read));
        assert_eq!(hit(&cache, "k"), Some(2));
        assert!(cache.fill("other", None, before_read), "other keys still fill");
        let after = cache.epoch();
        assert!(cache.fill("k", Some(CachedValue::new("3")), after));
        assert_eq!(hit(&cache, "k"), Some(3));
    }

    #[test]
    fn a_fill_from_before_a_clear_or_forget_is_dropped() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        let before = cache.epoch();
        cache.clear();
        assert!(!cache.fill("k", None, before));
        let before = cache.epoch();
        cache.forget("x");
        assert!(!cache.fill("k", None, before));
        assert!(!cache.knows("k"));
    }

    #[test]
    fn fill_many_marks_missing_keys_absent() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        let since = cache.epoch();
        cache.fill_many(&["a", "b"], &[("a".to_owned(), CachedValue::new("1"))], since);
        assert_eq!(hit(&cache, "a"), Some(1));
        assert!(matches!(cache.lookup("b"), Lookup::Absent));
    }

    #[test]
    fn fill_all_makes_unknown_keys_absent_until_forgotten() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        let stale = cache.epoch();
        cache.write("w", None);
        assert!(!cache.fill_all(vec![("k".into(), CachedValue::new("true"))], stale));
        assert!(cache.fill_all(vec![("k".into(), CachedValue::new("true"))], cache.epoch()));
        assert!(matches!(cache.lookup("other"), Lookup::Absent));
        cache.forget("k");
        assert!(!cache.is_all_loaded());
        assert!(matches!(cache.lookup("other"), Lookup::Miss));
    }

    #[test]
    fn parses_once_and_reports_bad_json() {
        let good = CachedValue::new(r#"{"a": [1, 2]}"#);
        let first = Arc::clone(good.value("k").unwrap());
        assert!(Arc::ptr_eq(&first, good.value("k").unwrap()));
        assert_eq!(good.decode::<serde_json::Value>("k").unwrap()["a"][1], 2);
        assert!(CachedValue::new("{oops").value("k").is_err());
    }

    #[test]
    fn present_sorted_skips_absent_keys() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        cache.write_many([("b", CachedValue::new("2")), ("a", CachedValue::new("1"))], ["c"]);
        let keys: Vec<_> = cache.present_sorted().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
    }
}
