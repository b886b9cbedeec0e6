//! The in-memory cache of one key/value table.
//!
//! It holds what the database holds for the keys it has seen: the stored JSON text (parsed
//! once, on first shared use) or the fact that a key is absent. It sits behind its own
//! short-lived lock, never held across a database call, so a cache hit never waits for a write
//! in progress.
//!
//! The cache changes in one place, [`CacheChange::apply`], with what an engine operation
//! returned:
//! - a **write** (put, remove, …) records what a committed write stored; it is applied only
//!   after the commit succeeded, so a failed write never shows;
//! - a **fill** records what a read found. Reads may run on other threads than writes, so a
//!   fill carries the [`Epoch`] taken before its read began, and is dropped if the key was
//!   written (or the cache cleared) since: a slow read never hides a newer write.
//!
//! After a load of the whole table (`bulk_load`, or a listing such as `items()`), an unbounded
//! cache keeps the rows packed (`packed.rs`: their keys and text in shared pages, a fraction
//! of the memory of one entry each). A read hands out a copy of a packed row's text; a read
//! that keeps its decoded form (`get_shared`, `get_cloned`) or a write makes the row an
//! ordinary entry.
//!
//! TTL caches that delete expired rows keep those keys as absent until a write transaction
//! has deleted them from the file and committed: an expired row is never served again, even
//! when the write that was to delete it fails or never runs.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use compact_str::CompactString;
use hashlink::LinkedHashMap;
use hashlink::linked_hash_map::RawEntryMut;
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::clock::Clock;
use crate::codec;
use crate::error::Result;

mod packed;
use packed::Packed;

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

/// One cached row: its JSON text, and its first decoded form once somebody asked for one (the
/// shared parsed [`Value`], or a copy of the caller's own type), so that later hits share or
/// clone it instead of parsing again. A row that cannot be read as JSON text (not UTF-8,
/// binary) is cached as what is wrong with it, so that it fails for its key alone.
///
/// The decoded form is kept for the first type asked for only: a key is almost always read as
/// one type, and one slot keeps the entry as small as a single parsed value would. Reads of
/// another type decode the text, as they would without the slot.
pub struct CachedValue {
    /// The JSON text, or for an unreadable row the reason.
    text: Box<str>,
    decoded: OnceLock<Decoded>,
}

/// Prints the size of the row, never its content: a value may be secret (an encrypted store's
/// plaintext), and `Debug` output reaches logs.
impl std::fmt::Debug for CachedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedValue")
            .field("bytes", &self.text.len())
            .field("readable", &!self.is_unreadable())
            .finish_non_exhaustive()
    }
}

/// What a cached row keeps beside its text: one word and a tag, so that the entry stays as
/// small as it was with the parsed value alone.
#[derive(Debug)]
enum Decoded {
    /// The parsed value, shared by every `get_shared`.
    Value(Arc<Value>),
    /// A decoded copy of the caller's type, cloned by `get_cloned` (boxed twice to stay one
    /// word: reaching it costs a hop, still far cheaper than a parse).
    #[allow(clippy::redundant_allocation)]
    Typed(Box<Box<dyn Any + Send + Sync>>),
    /// The row cannot be read; `text` says why.
    Unreadable,
    /// The row does not decrypt with the store's key; `text` says why.
    WrongKey,
}

impl CachedValue {
    /// A cached row holding `json` (decoded lazily).
    pub fn new(json: impl Into<Box<str>>) -> Arc<Self> {
        Arc::new(Self { text: json.into(), decoded: OnceLock::new() })
    }

    /// The length of its JSON text, in bytes.
    pub(crate) fn text_len(&self) -> usize {
        self.text.len()
    }

    /// A cached row holding `value`, already parsed (a value a hook rewrote).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`](crate::Error::Encode) naming `key` when the value cannot be stored.
    pub(crate) fn from_value(key: &str, value: Value) -> Result<Arc<Self>> {
        let json = codec::encode(key, &value)?;
        let decoded = OnceLock::from(Decoded::Value(Arc::new(value)));
        Ok(Arc::new(Self { text: json, decoded }))
    }

    /// A cached row that cannot be read, and why.
    pub fn unreadable(why: impl Into<Box<str>>) -> Arc<Self> {
        Arc::new(Self { text: why.into(), decoded: OnceLock::from(Decoded::Unreadable) })
    }

    /// A cached row that does not decrypt with the store's key, and why.
    pub(crate) fn undecryptable(why: impl Into<Box<str>>) -> Arc<Self> {
        Arc::new(Self { text: why.into(), decoded: OnceLock::from(Decoded::WrongKey) })
    }

    fn is_unreadable(&self) -> bool {
        matches!(self.decoded.get(), Some(Decoded::Unreadable | Decoded::WrongKey))
    }

    /// The parsed value kept by an earlier shared read, if any.
    fn kept_value(&self) -> Option<&Arc<Value>> {
        match self.decoded.get() {
            Some(Decoded::Value(value)) => Some(value),
            _ => None,
        }
    }

    /// The stored JSON text; `None` for a row that cannot be read.
    #[must_use]
    pub fn json(&self) -> Option<&str> {
        (!self.is_unreadable()).then_some(&*self.text)
    }

    /// The JSON text, or a decode error naming `key` for a row that cannot be read.
    pub(crate) fn text(&self, key: &str) -> Result<&str> {
        match self.decoded.get() {
            Some(Decoded::WrongKey) => {
                Err(crate::Error::WrongKey { key: key.to_owned(), reason: self.text.to_string() })
            }
            Some(Decoded::Unreadable) => Err(crate::Error::decode(key, &self.text)),
            _ => Ok(&self.text),
        }
    }

    /// The decoded `T` kept in the slot, if the slot keeps a `T`.
    fn kept<T: Any>(&self) -> Option<&T> {
        match self.decoded.get() {
            Some(Decoded::Typed(typed)) => typed.downcast_ref::<T>(),
            _ => None,
        }
    }

    /// The parsed value, shared: parsed on the first call and kept (unless the slot already
    /// keeps another type, when each call parses).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) naming `key` when the row is not JSON.
    pub fn value(&self, key: &str) -> Result<Arc<Value>> {
        if let Some(Decoded::Value(value)) = self.decoded.get() {
            return Ok(Arc::clone(value));
        }
        let value = Arc::new(codec::parse(key, self.text(key)?)?);
        match self.decoded.get_or_init(|| Decoded::Value(Arc::clone(&value))) {
            Decoded::Value(kept) => Ok(Arc::clone(kept)),
            _ => Ok(value),
        }
    }

    /// The value converted to the caller's type, straight from the text: cheaper than going
    /// through the shared parsed value, which would be copied into `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) naming `key`.
    pub fn decode<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        codec::decode(key, self.text(key)?)
    }

    /// The value as the caller's type, cloned from the decoded copy kept beside the text:
    /// decoded on the first call, a clone afterwards (for a small record a clone costs a
    /// fraction of parsing). A [`Value`] is decoded from the text each time: cloning a parsed
    /// tree was measured slower than parsing its text again once the cache outgrows the CPU's.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) naming `key`.
    pub fn decode_cloned<T: DeserializeOwned + Clone + Send + Sync + 'static>(&self, key: &str) -> Result<T> {
        if TypeId::of::<T>() == TypeId::of::<Value>() {
            return self.decode(key);
        }
        if let Some(kept) = self.kept::<T>() {
            return Ok(kept.clone());
        }
        let decoded: T = self.decode(key)?;
        if self.decoded.get().is_none() {
            let _ = self.decoded.set(Decoded::Typed(Box::new(Box::new(decoded.clone()))));
        }
        Ok(decoded)
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

/// Keys of up to 24 bytes live inside their entry: a hit then reads one allocation fewer, and
/// a cached key costs no allocation of its own.
type Map = LinkedHashMap<CompactString, Slot, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct State {
    slots: Map,
    /// Every row of the table is in `slots` or `packed`, so a key in neither is absent
    /// (unbounded only).
    all_loaded: bool,
    /// Bumped by every write, clear and forget.
    epoch: u64,
    /// The last clear, forget or load of the whole table: fills from reads that began before
    /// it are dropped (a load found no row for a deleted key, so nothing else would stop the
    /// fill of a read from before that delete).
    cleared: u64,
    /// TTL caches: `(expiry, key, epoch)` in the order entries were set, for sweeping.
    expiring: VecDeque<(Instant, Box<str>, Epoch)>,
    /// Expired keys still to delete from the file (`delete_expired`): absent to readers until
    /// a committed write transaction has deleted them, or a write has replaced them.
    to_delete: HashSet<Box<str>, foldhash::fast::RandomState>,
    /// Rows of a bulk load not read or written since (unbounded only), none of them in
    /// `slots`: present, as of `packed_epoch`.
    packed: Packed,
    packed_epoch: u64,
}

impl State {
    fn next_epoch(&mut self) -> Epoch {
        self.epoch += 1;
        Epoch(self.epoch)
    }

    fn may_fill(&self, key: &str, since: Epoch) -> bool {
        since.0 >= self.cleared
            && self.slots.get(key).is_none_or(|slot| slot.epoch <= since)
            && !self.to_delete.contains(key)
    }

    /// Moves packed `key` into the ordinary entries, where its decoded form is kept for the
    /// next hits; `None` if it is not packed.
    fn unpack(&mut self, key: &str) -> Option<Arc<CachedValue>> {
        let value = CachedValue::new(self.packed.take(key)?);
        let slot = Slot { value: Some(Arc::clone(&value)), epoch: Epoch(self.packed_epoch), expires: None };
        self.slots.insert(key.into(), slot);
        Some(value)
    }
}

/// The cache of one table.
#[derive(Debug, Default)]
pub struct Cache {
    strategy: CacheStrategy,
    clock: Clock,
    state: RwLock<State>,
}

impl Cache {
    /// An empty cache with `strategy`, on the system clock.
    #[must_use]
    pub fn new(strategy: CacheStrategy) -> Self {
        Self::with_clock(strategy, Clock::system())
    }

    /// An empty cache with `strategy`, whose entries expire (TTL) by `clock`.
    #[must_use]
    pub fn with_clock(strategy: CacheStrategy, clock: Clock) -> Self {
        Self { strategy, clock, state: RwLock::default() }
    }

    /// The time, for TTL caches only (others never read it).
    fn now(&self) -> Option<Instant> {
        self.strategy.ttl().map(|_| self.clock.now())
    }

    // ----- reads -----

    /// What the cache knows about `key`. A packed row (see [`lookup_keeping`](Self::lookup_keeping))
    /// is handed out as a copy of its text and stays packed: reading it again decodes the text
    /// again, as a hit of an ordinary entry does for [`CachedValue::decode`].
    pub fn lookup(&self, key: &str) -> Lookup {
        self.find(key, false)
    }

    /// As [`lookup`](Self::lookup), for a read that keeps its decoded form in the entry
    /// (`get_shared`, `get_cloned`): a packed row is first made an ordinary entry, so that
    /// what it keeps serves the next hits.
    pub fn lookup_keeping(&self, key: &str) -> Lookup {
        self.find(key, true)
    }

    /// What the cache knows about `key`; `keeping`: unpack a packed row into an ordinary entry.
    fn find(&self, key: &str, keeping: bool) -> Lookup {
        if matches!(self.strategy, CacheStrategy::Lru { .. }) {
            let mut state = self.state.write();
            return state.slots.to_back(key).map_or(Lookup::Miss, |slot| Self::answer(slot));
        }
        let now = self.now();
        let state = self.state.read();
        match state.slots.get(key) {
            Some(slot) if slot.live(now) => Self::answer(slot),
            Some(slot) if self.deletes_expired() && slot.value.is_some() => Lookup::Absent,
            None if keeping && state.packed.contains(key) => {
                drop(state);
                self.lookup_packed(key)
            }
            None if let Some(text) = state.packed.get(key) => Lookup::Hit(CachedValue::new(text)),
            _ if state.all_loaded || state.to_delete.contains(key) => Lookup::Absent,
            _ => Lookup::Miss,
        }
    }

    /// The first read of a packed row: unpacked under the write lock (unless a write or
    /// another read got there first, or the cache was cleared meanwhile).
    fn lookup_packed(&self, key: &str) -> Lookup {
        let mut state = self.state.write();
        if let Some(slot) = state.slots.get(key) {
            return Self::answer(slot);
        }
        match state.unpack(key) {
            Some(value) => Lookup::Hit(value),
            None if state.all_loaded => Lookup::Absent,
            None => Lookup::Miss,
        }
    }

    /// The parsed value of `key` when an earlier shared read left it in the cache: the
    /// fastest hit, which touches the entry without taking a count on it. `None` when the
    /// cache holds no parsed value for `key` (then [`lookup_keeping`](Self::lookup_keeping)).
    pub fn shared_hit(&self, key: &str) -> Option<Arc<Value>> {
        if matches!(self.strategy, CacheStrategy::Lru { .. }) {
            return None; // a hit moves the key, under the write lock
        }
        let now = self.now();
        let state = self.state.read();
        let slot = state.slots.get(key).filter(|slot| slot.live(now))?;
        slot.value.as_ref()?.kept_value().map(Arc::clone)
    }

    /// Whether expired entries are to be deleted from the file (they are then absent).
    fn deletes_expired(&self) -> bool {
        matches!(self.strategy, CacheStrategy::Ttl { delete_expired: true, .. })
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
                Some(slot) if !slot.live(now) && self.deletes_expired() && slot.value.is_some() => {}
                Some(slot) if !slot.live(now) => return None,
                Some(Slot { value: Some(value), .. }) => rows.push((key.to_owned(), Arc::clone(value))),
                Some(Slot { value: None, .. }) => {}
                // Read, not unpacked: a batch read decodes each value once anyway.
                None if let Some(text) = state.packed.get(key) => rows.push((key.to_owned(), CachedValue::new(text))),
                None if state.all_loaded || state.to_delete.contains(key) => {}
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
        let unseen = || state.all_loaded || state.to_delete.contains(key) || state.packed.contains(key);
        state
            .slots
            .get(key)
            .map_or_else(unseen, |slot| slot.live(now) || (self.deletes_expired() && slot.value.is_some()))
    }

    /// Whether every row of the table is cached.
    pub fn is_all_loaded(&self) -> bool {
        self.state.read().all_loaded
    }

    /// The present entries, sorted by key.
    pub fn present_sorted(&self) -> Vec<(String, Arc<CachedValue>)> {
        let now = self.now();
        let state = self.state.read();
        let rows: Vec<_> = state
            .slots
            .iter()
            .filter(|(_, slot)| slot.live(now))
            .filter_map(|(key, slot)| slot.value.as_ref().map(|value| (String::from(&**key), Arc::clone(value))))
            .chain(state.packed.copies())
            .collect();
        drop(state);
        sorted_by_key(rows)
    }

    /// The current epoch: take it before a read, and pass it to the fill of that read.
    pub fn epoch(&self) -> Epoch {
        Epoch(self.state.read().epoch)
    }

    // ----- changes -----

    fn write(&self, key: Box<str>, value: Option<Arc<CachedValue>>) {
        let mut state = self.state.write();
        let epoch = state.next_epoch();
        self.set(&mut state, &key, value, epoch);
    }

    fn write_many<'a>(&self, writes: impl IntoIterator<Item = (&'a Box<str>, Option<&'a Arc<CachedValue>>)>) {
        let writes = writes.into_iter();
        let mut state = self.state.write();
        if self.strategy.size().is_none() {
            // A large batch grows the map once, not by doubling.
            state.slots.reserve(writes.size_hint().0);
        }
        let epoch = state.next_epoch();
        for (key, value) in writes {
            self.set(&mut state, key, value.cloned(), epoch);
        }
    }

    /// Empties the cache (the table was cleared, or the caller asked). Expired keys still to
    /// be deleted from the file stay absent.
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
        state.packed.remove(key);
        state.all_loaded = false;
    }

    /// The state, locked for a fill: expired entries swept first, so that a read of a row
    /// that just expired cannot bring it back.
    fn state_for_fill(&self) -> parking_lot::RwLockWriteGuard<'_, State> {
        let mut state = self.state.write();
        if let Some(now) = self.now() {
            self.sweep(&mut state, now);
        }
        state
    }

    fn fill(&self, key: Box<str>, value: Option<Arc<CachedValue>>, since: Epoch) {
        let mut state = self.state_for_fill();
        if state.may_fill(&key, since) {
            self.set(&mut state, &key, value, since);
        }
    }

    fn fill_many(&self, wanted: &[Box<str>], rows: &[(String, Arc<CachedValue>)], since: Epoch) {
        let found: HashMap<&str, &Arc<CachedValue>, foldhash::fast::RandomState> =
            rows.iter().map(|(key, value)| (key.as_str(), value)).collect();
        let mut state = self.state_for_fill();
        for key in wanted {
            if state.may_fill(key, since) {
                let value = found.get(&**key).map(|value| Arc::clone(value));
                self.set(&mut state, key, value, since);
            }
        }
    }

    /// Takes in every row of the table, as a scan that began at `since` found them, unless
    /// anything was written or cleared since: an unbounded cache replaces its content with
    /// them (kept packed) and knows every other key absent; a bounded or expiring cache, which
    /// cannot vouch for every key, takes them key by key.
    fn load(&self, loaded: Loaded, since: Epoch) {
        if self.strategy != CacheStrategy::Unbounded {
            return self.fill_each(loaded, since);
        }
        let mut slots = Map::with_capacity_and_hasher(loaded.others.len(), Default::default());
        slots.extend(
            loaded.others.into_iter().map(|(key, value)| {
                (CompactString::from(key), Slot { value: Some(value), epoch: since, expires: None })
            }),
        );
        let mut state = self.state.write();
        if state.epoch == since.0 {
            state.slots = slots;
            state.packed = loaded.packed;
            state.packed_epoch = since.0;
            state.cleared = since.0;
            state.all_loaded = true;
        }
    }

    fn fill_each(&self, loaded: Loaded, since: Epoch) {
        let mut state = self.state_for_fill();
        if state.epoch != since.0 {
            return;
        }
        let packed = loaded.packed.iter().map(|(key, text)| (Box::from(key), CachedValue::new(text)));
        for (key, value) in loaded.others.into_iter().chain(packed) {
            if !state.to_delete.contains(&key) {
                self.set(&mut state, &key, Some(value), since);
            }
        }
    }

    /// Expired keys that must still be deleted from the file (TTL with `delete_expired`). They
    /// stay absent to readers until their deletion is confirmed (`confirm_deleted`).
    pub(crate) fn pending_deletes(&self) -> Vec<Box<str>> {
        if !self.deletes_expired() {
            return Vec::new();
        }
        let mut state = self.state.write();
        self.sweep(&mut state, self.clock.now());
        state.to_delete.iter().cloned().collect()
    }

    /// Whether `key` expired and is to be deleted from the file (TTL with `delete_expired`):
    /// absent to every read until it is.
    pub(crate) fn expired(&self, key: &str) -> bool {
        if !self.deletes_expired() {
            return false;
        }
        let now = self.clock.now();
        let state = self.state.read();
        state.to_delete.contains(key)
            || state.slots.get(key).is_some_and(|slot| slot.value.is_some() && !slot.live(Some(now)))
    }

    /// Whether expired keys wait to be deleted from the file (TTL with `delete_expired`).
    pub(crate) fn has_expired(&self) -> bool {
        if !self.deletes_expired() {
            return false;
        }
        let mut state = self.state.write();
        self.sweep(&mut state, self.clock.now());
        !state.to_delete.is_empty()
    }

    /// Expired keys whose deletion from the file has committed: no longer pending.
    pub(crate) fn confirm_deleted(&self, keys: Vec<Box<str>>) {
        let mut state = self.state.write();
        for key in keys {
            state.to_delete.remove(&key);
        }
    }

    /// Records `key` as `value`, as the strategy says: where it goes in the order, when it
    /// expires, and what is evicted to make room. A write supersedes a pending deletion.
    fn set(&self, state: &mut State, key: &str, value: Option<Arc<CachedValue>>, epoch: Epoch) {
        let now = self.now();
        let expires = self.strategy.ttl().zip(now).map(|(ttl, now)| now + ttl);
        if !state.to_delete.is_empty() {
            state.to_delete.remove(key);
        }
        state.packed.remove(key);
        if expires.is_some() {
            state.expiring.push_back((expires.unwrap_or_else(|| self.clock.now()), key.into(), epoch));
        }
        let slot = Slot { value, epoch, expires };
        match self.strategy {
            // First insertion decides the place: rewriting a key keeps it. One lookup either way.
            CacheStrategy::Unbounded | CacheStrategy::Fifo { .. } => match state.slots.raw_entry_mut().from_key(key) {
                RawEntryMut::Occupied(mut existing) => *existing.get_mut() = slot,
                RawEntryMut::Vacant(place) => {
                    place.insert(key.into(), slot);
                }
            },
            // Every write moves the key to the back.
            CacheStrategy::Lru { .. } | CacheStrategy::Ttl { .. } => {
                state.slots.insert(key.into(), slot);
            }
        }
        if let Some(now) = now {
            self.sweep(state, now);
        }
        if let Some(size) = self.strategy.size() {
            while state.slots.len() > size {
                state.slots.pop_front();
                state.all_loaded = false;
            }
        }
    }

    /// Drops expired entries (TTL caches); with `delete_expired`, their keys become absent
    /// until deleted from the file.
    fn sweep(&self, state: &mut State, now: Instant) {
        let delete = self.deletes_expired();
        while let Some((expires, _, _)) = state.expiring.front() {
            if *expires > now {
                break;
            }
            let Some((_, key, epoch)) = state.expiring.pop_front() else { break };
            // Only if the slot is still the one this entry was queued for.
            if state.slots.get(&*key).is_some_and(|slot| slot.epoch == epoch && !slot.live(Some(now))) {
                let slot = state.slots.remove(&*key);
                state.all_loaded = false;
                if delete && slot.is_some_and(|slot| slot.value.is_some()) {
                    state.to_delete.insert(key);
                }
            }
        }
    }
}

/// Every row of a table as a bulk load found it: packed where it can be (readable JSON
/// text), as ordinary entries otherwise (a row that cannot be read keeps why).
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    packed: Packed,
    others: Vec<(Box<str>, Arc<CachedValue>)>,
}

impl Loaded {
    /// Adds a row holding JSON `text`.
    pub(crate) fn push(&mut self, key: &str, text: &str) {
        if !self.packed.push(key, text) {
            self.others.push((key.into(), CachedValue::new(text)));
        }
    }

    /// Adds a row as an ordinary entry.
    pub(crate) fn keep(&mut self, key: &str, value: Arc<CachedValue>) {
        self.others.push((key.into(), value));
    }

    /// Every row, sorted by key (packed rows as copies of their text).
    pub(crate) fn sorted(&self) -> Vec<(String, Arc<CachedValue>)> {
        let others = self.others.iter().map(|(key, value)| (String::from(&**key), Arc::clone(value)));
        sorted_by_key(others.chain(self.packed.copies()).collect())
    }
}

fn sorted_by_key(mut rows: Vec<(String, Arc<CachedValue>)>) -> Vec<(String, Arc<CachedValue>)> {
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// Key/value writes in order (`None`: deleted).
pub(crate) type Writes = Vec<(Box<str>, Option<Arc<CachedValue>>)>;

/// What an operation did that the cache must learn, applied in one place
/// ([`CacheChange::apply`]): after the commit for writes, after the read for fills.
#[derive(Debug, Default)]
#[must_use = "a change does nothing until applied"]
pub struct CacheChange(Change);

#[derive(Debug, Default)]
pub(crate) enum Change {
    /// Nothing to learn.
    #[default]
    None,
    /// The key now holds the value.
    Put(Box<str>, Arc<CachedValue>),
    /// The key was deleted.
    Remove(Box<str>),
    /// Each key now holds its value.
    PutMany(Arc<[(Box<str>, Arc<CachedValue>)]>),
    /// The keys were deleted.
    RemoveMany(Arc<[Box<str>]>),
    /// A transaction's writes, in order (`None`: deleted).
    Writes(Writes),
    /// The table was emptied.
    Clear,
    /// A read of one key that began at the epoch found this.
    Fill(Box<str>, Option<Arc<CachedValue>>, Epoch),
    /// A read of several keys found these rows; the other wanted keys are absent.
    FillMany(Vec<Box<str>>, Vec<(String, Arc<CachedValue>)>, Epoch),
    /// A scan of the whole table (a bulk load, a listing) found every row.
    Load(Loaded, Epoch),
    /// The whole file changed (a restore, another writer): every one of these caches is stale.
    ClearTables(Vec<Arc<Cache>>),
    /// Hooks to tell of the operation's writes and deletes, once it has committed.
    Notify(crate::engine::Events),
    /// Several changes, in order.
    Each(Vec<Change>),
}

impl CacheChange {
    pub(crate) fn new(change: Change) -> Self {
        Self(change)
    }

    /// No change.
    pub fn none() -> Self {
        Self(Change::None)
    }

    /// This change, then `next`.
    pub fn then(self, next: Self) -> Self {
        match (self.0, next.0) {
            (Change::None, only) | (only, Change::None) => Self(only),
            (Change::Each(mut changes), next) => {
                changes.push(next);
                Self(Change::Each(changes))
            }
            (first, next) => Self(Change::Each(vec![first, next])),
        }
    }

    /// Applies the change to `cache` (the cache of the table the operation ran on; changes
    /// that concern other tables carry their caches).
    pub fn apply(self, cache: &Cache) {
        self.0.apply(cache);
    }
}

impl Change {
    fn apply(self, cache: &Cache) {
        match self {
            Self::None => {}
            Self::Put(key, value) => cache.write(key, Some(value)),
            Self::Remove(key) => cache.write(key, None),
            Self::PutMany(rows) => cache.write_many(rows.iter().map(|(key, value)| (key, Some(value)))),
            Self::RemoveMany(keys) => cache.write_many(keys.iter().map(|key| (key, None))),
            Self::Writes(writes) => cache.write_many(writes.iter().map(|(key, value)| (key, value.as_ref()))),
            Self::Clear => cache.clear(),
            Self::Fill(key, value, since) => cache.fill(key, value, since),
            Self::FillMany(wanted, rows, since) => cache.fill_many(&wanted, &rows, since),
            Self::Load(loaded, since) => cache.load(loaded, since),
            Self::ClearTables(caches) => caches.iter().for_each(|cache| cache.clear()),
            Self::Notify(events) => events.notify(),
            Self::Each(changes) => changes.into_iter().for_each(|change| change.apply(cache)),
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

    fn apply(cache: &Cache, change: Change) {
        CacheChange::new(change).apply(cache);
    }

    fn put(cache: &Cache, key: &str, json: &str) {
        apply(cache, Change::Put(key.into(), CachedValue::new(json)));
    }

    fn fill(cache: &Cache, key: &str, json: Option<&str>, since: Epoch) {
        apply(cache, Change::Fill(key.into(), json.map(CachedValue::new), since));
    }

    #[test]
    fn remembers_values_and_absence() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        assert!(matches!(cache.lookup("a"), Lookup::Miss));
        put(&cache, "a", "1");
        apply(&cache, Change::Remove("b".into()));
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
        put(&cache, "k", "2"); // committed while the read ran
        fill(&cache, "k", Some("1"), before_read);
        assert_eq!(hit(&cache, "k"), Some(2));
        fill(&cache, "other", None, before_read);
        assert!(cache.knows("other"), "other keys still fill");
        fill(&cache, "k", Some("3"), cache.epoch());
        assert_eq!(hit(&cache, "k"), Some(3));
    }

    #[test]
    fn a_fill_from_before_a_clear_or_forget_is_dropped() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        let before = cache.epoch();
        cache.clear();
        fill(&cache, "k", None, before);
        let before = cache.epoch();
        cache.forget("x");
        fill(&cache, "k", None, before);
        assert!(!cache.knows("k"));
    }

    #[test]
    fn fill_many_marks_missing_keys_absent() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        let since = cache.epoch();
        apply(
            &cache,
            Change::FillMany(vec!["a".into(), "b".into()], vec![("a".to_owned(), CachedValue::new("1"))], since),
        );
        assert_eq!(hit(&cache, "a"), Some(1));
        assert!(matches!(cache.lookup("b"), Lookup::Absent));
    }

    #[test]
    fn fill_all_makes_unknown_keys_absent_until_forgotten() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        let stale = cache.epoch();
        apply(&cache, Change::Remove("w".into()));
        apply(&cache, Change::Load(loaded(&[("k", "true")]), stale));
        assert!(!cache.is_all_loaded(), "a write came between");
        apply(&cache, Change::Load(loaded(&[("k", "true")]), cache.epoch()));
        assert!(matches!(cache.lookup("other"), Lookup::Absent));
        cache.forget("k");
        assert!(!cache.is_all_loaded());
        assert!(matches!(cache.lookup("other"), Lookup::Miss));
    }

    fn loaded(rows: &[(&str, &str)]) -> Loaded {
        let mut loaded = Loaded::default();
        for (key, json) in rows {
            loaded.push(key, json);
        }
        loaded.keep("unreadable", CachedValue::unreadable("binary"));
        loaded
    }

    #[test]
    fn a_bulk_load_stays_packed_until_each_row_is_read_or_written() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        apply(&cache, Change::Load(loaded(&[("a", "1"), ("b", "2"), ("c", "3")]), cache.epoch()));
        assert!(cache.is_all_loaded() && cache.knows("a") && cache.knows("nothing"));
        assert_eq!(cache.state.read().packed.len(), 3, "the unreadable row is an ordinary entry");
        let Lookup::Hit(copy) = cache.lookup("a") else { panic!("a is loaded") };
        assert_eq!(copy.json(), Some("1"));
        assert_eq!(cache.state.read().packed.len(), 3, "a read that keeps nothing leaves the row packed");
        let Lookup::Hit(first) = cache.lookup_keeping("a") else { panic!("a is loaded") };
        let Lookup::Hit(again) = cache.lookup("a") else { panic!("a is loaded") };
        assert!(Arc::ptr_eq(&first, &again), "a read that keeps its decoded form unpacks the row");
        assert_eq!(cache.state.read().packed.len(), 2);
        put(&cache, "b", "20");
        assert_eq!(hit(&cache, "b"), Some(20), "a write replaces the packed row");
        cache.forget("c");
        assert!(matches!(cache.lookup("c"), Lookup::Miss), "a forgotten row is read again");
        assert!(cache.state.read().packed.is_empty());
        let keys: Vec<_> = cache.present_sorted().into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["a", "b", "unreadable"]);
        assert!(matches!(cache.lookup("unreadable"), Lookup::Hit(value) if value.json().is_none()));
    }

    #[test]
    fn packed_rows_answer_batch_reads_listings_and_stale_fills() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        let before_load = cache.epoch();
        put(&cache, "w", "0"); // a write between that read's start and the load
        apply(&cache, Change::Load(loaded(&[("a", "1"), ("b", "2"), ("w", "0")]), cache.epoch()));
        let rows = cache.lookup_all(&["a", "b", "missing"]).expect("every key is known");
        let found: Vec<_> = rows.iter().map(|(key, value)| (key.as_str(), value.json())).collect();
        assert_eq!(found, [("a", Some("1")), ("b", Some("2"))]);
        assert_eq!(cache.state.read().packed.len(), 3, "a batch read leaves rows packed");
        let listed: Vec<_> =
            cache.present_sorted().into_iter().map(|(key, value)| (key, value.json().map(str::to_owned))).collect();
        assert_eq!(listed[..2], [("a".to_owned(), Some("1".to_owned())), ("b".to_owned(), Some("2".to_owned()))]);
        fill(&cache, "a", Some("0"), before_load);
        assert_eq!(hit(&cache, "a"), Some(1), "a read from before the load does not replace it");
        cache.clear();
        assert!(matches!(cache.lookup("b"), Lookup::Miss) && cache.state.read().packed.is_empty());
        let stale = cache.epoch();
        put(&cache, "w", "1");
        apply(&cache, Change::Load(loaded(&[("a", "1")]), stale));
        assert!(!cache.is_all_loaded(), "a write came between");
    }

    #[test]
    fn a_read_from_before_a_load_never_brings_back_a_key_deleted_since() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        let read_began = cache.epoch();
        apply(&cache, Change::Remove("x".into())); // deleted while the read ran
        apply(&cache, Change::Load(loaded(&[("a", "1")]), cache.epoch())); // a load without x
        fill(&cache, "x", Some("1"), read_began);
        assert!(matches!(cache.lookup("x"), Lookup::Absent));
    }

    #[test]
    fn a_shared_hit_needs_a_kept_parse_and_a_live_entry_outside_lru() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        put(&cache, "k", "[1]");
        assert!(cache.shared_hit("k").is_none(), "nothing parsed yet");
        let Lookup::Hit(entry) = cache.lookup("k") else { panic!("k is cached") };
        let parsed = entry.value("k").unwrap();
        assert!(Arc::ptr_eq(&parsed, &cache.shared_hit("k").unwrap()));
        assert!(cache.shared_hit("other").is_none());
        let lru = Cache::new(CacheStrategy::Lru { size: 2 });
        put(&lru, "k", "[1]");
        let Lookup::Hit(entry) = lru.lookup("k") else { panic!("k is cached") };
        entry.value("k").unwrap();
        assert!(lru.shared_hit("k").is_none(), "an LRU hit must move the key");
        let (ttl, clock) = (Duration::from_secs(60), crate::ManualClock::new());
        let strategy = CacheStrategy::Ttl { ttl, size: None, delete_expired: false };
        let expiring = Cache::with_clock(strategy, clock.clone().into());
        put(&expiring, "k", "[1]");
        let Lookup::Hit(entry) = expiring.lookup("k") else { panic!("k is cached") };
        entry.value("k").unwrap();
        clock.advance(ttl - Duration::from_nanos(1));
        assert!(expiring.shared_hit("k").is_some(), "served up to its expiry");
        clock.advance(Duration::from_nanos(1));
        assert!(expiring.shared_hit("k").is_none(), "an expired entry is not served");
    }

    #[test]
    fn a_bounded_cache_loads_row_by_row() {
        let cache = Cache::new(CacheStrategy::Lru { size: 2 });
        apply(&cache, Change::Load(loaded(&[("a", "1"), ("b", "2")]), cache.epoch()));
        let state = cache.state.read();
        assert!(state.packed.is_empty());
        assert_eq!(state.slots.len(), 2);
    }

    #[test]
    fn parses_once_and_reports_bad_json() {
        let good = CachedValue::new(r#"{"a": [1, 2]}"#);
        let first = good.value("k").unwrap();
        assert!(Arc::ptr_eq(&first, &good.value("k").unwrap()));
        let owned: serde_json::Value = good.decode_cloned("k").unwrap();
        assert_eq!(owned, *first, "an owned Value is decoded from the text");
        assert_eq!(good.decode::<serde_json::Value>("k").unwrap()["a"][1], 2);
        assert!(CachedValue::new("{oops").value("k").is_err());
        let unreadable = CachedValue::unreadable("not UTF-8");
        assert!(matches!(unreadable.decode::<i32>("k"), Err(crate::Error::Decode { key, .. }) if key == "k"));
        assert!(unreadable.json().is_none());
    }

    #[test]
    fn keeps_the_first_decoded_type_and_decodes_others() {
        // The text and one slot: a cached row is one 56-byte allocation beside its text, as it
        // was when the slot could hold the parsed value only (the memory benchmark counts it).
        assert_eq!(std::mem::size_of::<CachedValue>(), 40);
        let cached = CachedValue::new(r#"{"n": 1}"#);
        let first: HashMap<String, u8> = cached.decode_cloned("k").unwrap();
        assert!(cached.kept::<HashMap<String, u8>>().is_some(), "the first type is kept");
        assert_eq!(cached.decode_cloned::<HashMap<String, u8>>("k").unwrap(), first);
        let other: HashMap<String, u64> = cached.decode_cloned("k").unwrap();
        assert_eq!(other["n"], 1, "another type decodes the text");
        assert!(cached.kept::<HashMap<String, u64>>().is_none(), "and does not take the slot");
        assert_eq!(cached.value("k").unwrap()["n"], 1, "nor does the shared parse");
        assert!(cached.decode_cloned::<String>("k").is_err());
        let unreadable = CachedValue::unreadable("binary");
        assert!(matches!(unreadable.decode_cloned::<Value>("k"), Err(crate::Error::Decode { .. })));
        assert!(matches!(unreadable.decode_cloned::<u8>("k"), Err(crate::Error::Decode { .. })));
        assert!(unreadable.json().is_none(), "a failed decode leaves it unreadable");
    }

    #[test]
    fn present_sorted_skips_absent_keys() {
        let cache = Cache::new(CacheStrategy::Unbounded);
        let rows: Arc<[(Box<str>, Arc<CachedValue>)]> =
            vec![("b".into(), CachedValue::new("2")), ("a".into(), CachedValue::new("1"))].into();
        apply(&cache, Change::Each(vec![Change::PutMany(rows), Change::Remove("c".into())]));
        let keys: Vec<_> = cache.present_sorted().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
    }

    #[test]
    fn expired_keys_stay_absent_until_their_deletion_is_confirmed() {
        let (ttl, clock) = (Duration::from_secs(60), crate::ManualClock::new());
        let strategy = CacheStrategy::Ttl { ttl, size: None, delete_expired: true };
        let cache = Arc::new(Cache::with_clock(strategy, clock.clone().into()));
        put(&cache, "gone", "1");
        put(&cache, "rewritten", "1");
        assert!(cache.pending_deletes().is_empty(), "nothing expired yet");
        clock.advance(ttl);
        let mut pending = cache.pending_deletes();
        pending.sort();
        assert_eq!(pending, [Box::from("gone"), Box::from("rewritten")]);
        assert!(matches!(cache.lookup("gone"), Lookup::Absent), "never served again");
        fill(&cache, "gone", Some("1"), cache.epoch());
        assert!(matches!(cache.lookup("gone"), Lookup::Absent), "a read of the old row does not bring it back");
        cache.clear();
        assert!(matches!(cache.lookup("gone"), Lookup::Absent), "nor does clearing the cache");
        put(&cache, "rewritten", "2");
        assert_eq!(cache.pending_deletes(), [Box::from("gone")], "a write supersedes the deletion");
        assert_eq!(cache.pending_deletes(), [Box::from("gone")], "asking again hands it out again");
        cache.confirm_deleted(vec!["gone".into()]);
        assert!(cache.pending_deletes().is_empty());
        assert!(matches!(cache.lookup("gone"), Lookup::Miss));
    }
}
