//! The in-memory cache of one key/value table.
//!
//! It holds what SQLite holds for the keys it has seen: the stored JSON text (parsed once, on
//! first use) or the fact that a key is absent. It sits behind its own short-lived lock, never
//! held across a SQLite call, so a cache hit never waits for a write in progress: writers
//! update it only after their commit succeeded, which also keeps failed writes out of it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

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
}

/// One cached row: its JSON text, and the parsed value once somebody asked for it (in an
/// `Arc`, so a read can share it instead of copying).
#[derive(Debug)]
pub(crate) struct CachedValue {
    json: Box<str>,
    parsed: OnceLock<Arc<Value>>,
}

impl CachedValue {
    pub(crate) fn new(json: impl Into<Box<str>>) -> Arc<Self> {
        Arc::new(Self { json: json.into(), parsed: OnceLock::new() })
    }

    /// The parsed value; parsed on the first call, shared afterwards.
    pub(crate) fn value(&self, key: &str) -> Result<&Arc<Value>> {
        if let Some(value) = self.parsed.get() {
            return Ok(value);
        }
        let value = Arc::new(codec::parse(key, &self.json)?);
        Ok(self.parsed.get_or_init(|| value))
    }

    /// The value converted to the caller's type, straight from the text: cheaper than going
    /// through the shared parsed value, which would be copied into `T`.
    pub(crate) fn decode<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        codec::decode(key, &self.json)
    }
}

/// What the cache knows about a key.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The key is present with this value.
    Hit(Arc<CachedValue>),
    /// The key is known to be absent.
    Absent,
    /// The cache does not know; ask the database.
    Miss,
}

#[derive(Clone, Debug)]
enum Slot {
    Present(Arc<CachedValue>),
    Absent,
}

type Map = HashMap<Box<str>, Slot, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct State {
    slots: Map,
    /// Every row of the table is in `slots`, so a key not there is absent.
    all_loaded: bool,
}

/// The cache of one table.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    state: RwLock<State>,
}

impl Cache {
    pub(crate) fn new(_strategy: CacheStrategy) -> Self {
        Self::default()
    }

    pub(crate) fn lookup(&self, key: &str) -> Lookup {
        let state = self.state.read();
        match state.slots.get(key) {
            Some(Slot::Present(value)) => Lookup::Hit(Arc::clone(value)),
            Some(Slot::Absent) => Lookup::Absent,
            None if state.all_loaded => Lookup::Absent,
            None => Lookup::Miss,
        }
    }

    /// The present values among `keys`, all read under one lock (so a batch written meanwhile
    /// is seen whole or not at all); `None` if the cache does not know one of the keys.
    pub(crate) fn lookup_all(&self, keys: &[&str]) -> Option<Vec<(String, Arc<CachedValue>)>> {
        let state = self.state.read();
        let mut rows = Vec::with_capacity(keys.len());
        for &key in keys {
            match state.slots.get(key) {
                Some(Slot::Present(value)) => rows.push((key.to_owned(), Arc::clone(value))),
                Some(Slot::Absent) => {}
                None if state.all_loaded => {}
                None => return None,
            }
        }
        Some(rows)
    }

    /// Whether the cache can answer for `key` (present or known absent).
    pub(crate) fn knows(&self, key: &str) -> bool {
        !matches!(self.lookup(key), Lookup::Miss)
    }

    pub(crate) fn insert(&self, key: &str, value: Arc<CachedValue>) {
        set_slot(&mut self.state.write().slots, key, Slot::Present(value));
    }

    pub(crate) fn insert_many<'a>(&self, rows: impl IntoIterator<Item = (&'a str, Arc<CachedValue>)>) {
        let mut state = self.state.write();
        for (key, value) in rows {
            set_slot(&mut state.slots, key, Slot::Present(value));
        }
    }

    pub(crate) fn mark_absent(&self, key: &str) {
        set_slot(&mut self.state.write().slots, key, Slot::Absent);
    }

    pub(crate) fn mark_absent_many<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut state = self.state.write();
        for key in keys {
            set_slot(&mut state.slots, key, Slot::Absent);
        }
    }

    /// Forgets `key`, so the next read goes to the database.
    pub(crate) fn forget(&self, key: &str) {
        let mut state = self.state.write();
        state.slots.remove(key);
        state.all_loaded = false;
    }

    /// Replaces the whole content with every row of the table.
    pub(crate) fn replace_all(&self, rows: Vec<(Box<str>, Arc<CachedValue>)>) {
        let mut slots = Map::with_capacity_and_hasher(rows.len(), Default::default());
        slots.extend(rows.into_iter().map(|(key, value)| (key, Slot::Present(value))));
        *self.state.write() = State { slots, all_loaded: true };
    }

    pub(crate) fn is_all_loaded(&self) -> bool {
        self.state.read().all_loaded
    }

    pub(crate) fn clear(&self) {
        *self.state.write() = State::default();
    }

    /// The present entries, sorted by key.
    pub(crate) fn present_sorted(&self) -> Vec<(Box<str>, Arc<CachedValue>)> {
        let mut rows: Vec<_> = self
            .state
            .read()
            .slots
            .iter()
            .filter_map(|(key, slot)| match slot {
                Slot::Present(value) => Some((key.clone(), Arc::clone(value))),
                Slot::Absent => None,
            })
            .collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rows
    }
}

fn set_slot(slots: &mut Map, key: &str, slot: Slot) {
    match slots.get_mut(key) {
        Some(existing) => *existing = slot,
        None => {
            slots.insert(key.into(), slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_values_and_absence() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        assert!(matches!(cache.lookup("a"), Lookup::Miss));
        cache.insert("a", CachedValue::new("1"));
        cache.mark_absent("b");
        assert!(matches!(cache.lookup("a"), Lookup::Hit(v) if **v.value("a").unwrap() == 1));
        assert!(matches!(cache.lookup("b"), Lookup::Absent));
        assert!(cache.knows("b"));
        cache.forget("a");
        assert!(!cache.knows("a"));
    }

    #[test]
    fn all_loaded_makes_unknown_keys_absent_until_forgotten() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        cache.replace_all(vec![("k".into(), CachedValue::new("true"))]);
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
        cache.insert_many([("b", CachedValue::new("2")), ("a", CachedValue::new("1"))]);
        cache.mark_absent("c");
        let keys: Vec<_> = cache.present_sorted().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [Box::from("a"), Box::from("b")]);
    }
}
