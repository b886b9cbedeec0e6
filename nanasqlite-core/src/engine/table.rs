//! [`Table`]: one key/value table of an open database, with its cache; [`Shared`]: what every
//! table of that database shares.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::hooks::Hooks;
use super::staging::{TableStaging, WriteBackState};
use crate::Clock;
use crate::cache::{Cache, CacheChange, CacheStrategy, CachedValue, Change, Epoch, Lookup};
use crate::codec::ValueCodec;
use crate::identifier::Identifier;
use crate::sql::SqlPolicy;
use crate::storage::{Changed, OnChange, Storage, Watch};
use crate::watch::ExternalWrites;

/// A point in a table's history taken before a read ([`Table::read_start`]): the cache's epoch
/// (a fill from before a newer write or clear is dropped) and the count of key rotations (a
/// read that overlapped one caches nothing).
#[derive(Clone, Copy, Debug)]
pub struct ReadStart {
    epoch: Epoch,
    rotations: u64,
}

/// What a table is opened with; a table opened from another (`table(name)`) inherits it.
#[derive(Clone, Debug)]
pub struct TableSettings {
    pub(crate) strategy: CacheStrategy,
    /// Where the cache's entries expire by (TTL).
    clock: Clock,
    pub(crate) policy: Arc<SqlPolicy>,
    /// Shared by every table opened from the same store, so that a `rekey` switches them all.
    pub(crate) codec: Arc<RwLock<ValueCodec>>,
    /// Whether `codec` encrypts, readable without its lock (on every read's error path).
    encrypted: Arc<AtomicBool>,
    /// Counts the halves of key rotations: odd while a `rekey` runs, even otherwise.
    rotations: Arc<AtomicU64>,
}

impl TableSettings {
    /// Settings from the builder's options (checked).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a bad cache size or TTL.
    pub fn new(options: &super::Options) -> crate::Result<Self> {
        let codec = ValueCodec::new(options.encryption.clone(), options.allow_legacy_plaintext);
        Ok(Self {
            strategy: options.cache.validate()?,
            clock: options.clock.clone(),
            policy: Arc::new(options.sql_policy.clone()),
            encrypted: Arc::new(AtomicBool::new(codec.is_encrypted())),
            rotations: Arc::default(),
            codec: Arc::new(RwLock::new(codec)),
        })
    }
}

impl TableSettings {
    /// These settings with the cache strategy `cache` (checked).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) for a bad cache size or TTL.
    pub(crate) fn with_cache(mut self, cache: CacheStrategy) -> crate::Result<Self> {
        self.strategy = cache.validate()?;
        Ok(self)
    }
}

/// One key/value table: its name, the backend's handle on it, its cache and how its values are
/// encoded. Both stores hold one per handle.
pub struct Table<S: Storage> {
    name: Identifier,
    handle: S::Table,
    cache: Arc<Cache>,
    settings: TableSettings,
    hooks: Arc<Hooks<S>>,
    /// Write-back mode's state and this table's staged rows, in write-back mode.
    write_back: Option<WriteBackParts<S>>,
}

/// Write-back mode's state for the database, and one table's staged rows.
type WriteBackParts<S> = (Arc<WriteBackState<S>>, Arc<TableStaging<S>>);

impl<S: Storage> fmt::Debug for Table<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table").field("name", &self.name).field("strategy", &self.settings.strategy).finish()
    }
}

impl<S: Storage> Table<S> {
    /// The table `name`, whose backend handle is `handle`, with an empty cache and the hooks
    /// registered on it (shared by every handle on the table: [`Shared::hooks`]).
    pub fn new(name: Identifier, handle: S::Table, settings: TableSettings, hooks: Arc<Hooks<S>>) -> Self {
        let cache = Arc::new(Cache::with_clock(settings.strategy, settings.clock.clone()));
        Self { name, handle, cache, settings, hooks, write_back: None }
    }

    /// Write-back mode's state and this table's staged rows, in write-back mode.
    #[must_use]
    pub fn write_back(&self) -> Option<(&WriteBackState<S>, &TableStaging<S>)> {
        self.write_back.as_ref().map(|(state, staging)| (&**state, &**staging))
    }

    /// Write-back mode's state (shared by every table of the store), in write-back mode.
    #[must_use]
    pub fn write_back_state(&self) -> Option<&WriteBackState<S>> {
        self.write_back.as_ref().map(|(state, _)| &**state)
    }

    /// Whether this table stages its writes (write-back mode).
    #[must_use]
    pub fn writes_back(&self) -> bool {
        self.write_back.is_some()
    }

    /// The hooks registered on the table.
    #[must_use]
    pub fn hooks(&self) -> &Hooks<S> {
        &self.hooks
    }

    /// The table's name.
    #[must_use]
    pub fn name(&self) -> &Identifier {
        &self.name
    }

    /// The backend's handle on the table.
    #[must_use]
    pub fn handle(&self) -> &S::Table {
        &self.handle
    }

    /// What a table opened from this one inherits.
    #[must_use]
    pub fn settings(&self) -> &TableSettings {
        &self.settings
    }

    /// The rules SQL fragments run through this table's store are checked against.
    #[must_use]
    pub fn policy(&self) -> &SqlPolicy {
        &self.settings.policy
    }

    /// How this table's values are stored now (a cheap clone: the key is shared).
    pub(crate) fn codec(&self) -> ValueCodec {
        self.settings.codec.read().clone()
    }

    /// Stores values with `codec` from now on, in this table and every table sharing its
    /// settings (after a committed `rekey`).
    pub(crate) fn switch_codec(&self, codec: ValueCodec) {
        let mut current = self.settings.codec.write();
        self.settings.encrypted.store(codec.is_encrypted(), Ordering::Release);
        *current = codec;
    }

    /// Marks a key rotation as begun (before its transaction) or ended (after its commit and
    /// the codec's switch, or its failure): see [`ReadStart`].
    pub(crate) fn mark_rotation(&self) {
        self.settings.rotations.fetch_add(1, Ordering::AcqRel);
    }

    /// Where a read begins: take it before the read runs (before its snapshot opens), and
    /// let its fill through `fill_after`.
    #[must_use]
    pub fn read_start(&self) -> ReadStart {
        ReadStart { epoch: self.cache.epoch(), rotations: self.settings.rotations.load(Ordering::Acquire) }
    }

    /// The cache fill `fill` of a read that began at `start`, unless a key rotation ran or
    /// began meanwhile: that read may have decrypted one side of the rotation's commit with
    /// the other side's key, and its rows must not be cached (they are read again next time).
    pub(crate) fn fill_after(&self, start: ReadStart, fill: impl FnOnce(Epoch) -> Change) -> CacheChange {
        let now = self.settings.rotations.load(Ordering::Acquire);
        if now == start.rotations && now.is_multiple_of(2) {
            CacheChange::new(fill(start.epoch))
        } else {
            CacheChange::none()
        }
    }

    /// Whether this table's values are encrypted.
    #[must_use]
    pub fn is_encrypted(&self) -> bool {
        self.settings.encrypted.load(Ordering::Acquire)
    }

    pub(crate) fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// What the cache knows of `key` (in write-back mode, a staged row first: it is newer
    /// than the file, and the cache may have let it go).
    #[must_use]
    pub fn lookup(&self, key: &str) -> Lookup {
        self.lookup_for(key, false)
    }

    /// As [`lookup`](Self::lookup); `keeping` for a read that keeps its decoded form in the
    /// cache entry (`get_shared`, `get_cloned`): a row a bulk load kept packed then becomes an
    /// ordinary entry first, so that what the read keeps serves the next hits.
    #[must_use]
    pub fn lookup_for(&self, key: &str, keeping: bool) -> Lookup {
        if let Some((_, staging)) = &self.write_back
            && let Some(staged) = staging.get(key)
        {
            return staged.map_or(Lookup::Absent, Lookup::Hit);
        }
        if keeping { self.cache.lookup_keeping(key) } else { self.cache.lookup(key) }
    }

    /// The cache's parsed value of `key` when nothing stands between it and the caller (no
    /// staged write-back rows, no hook that rewrites reads): the fast path of `get_shared`.
    #[must_use]
    pub fn shared_hit(&self, key: &str) -> Option<Arc<serde_json::Value>> {
        if self.write_back.is_some() || self.hooks.observes_reads() {
            return None;
        }
        self.cache.shared_hit(key)
    }

    /// The present values among `keys` when the cache knows every one of them.
    #[must_use]
    pub fn lookup_all(&self, keys: &[&str]) -> Option<Vec<(String, Arc<CachedValue>)>> {
        self.cache.lookup_all(keys)
    }

    /// Every row, sorted by key, when the whole table is cached.
    #[must_use]
    pub fn all_cached(&self) -> Option<Vec<(String, Arc<CachedValue>)>> {
        self.cache.is_all_loaded().then(|| self.cache.present_sorted())
    }

    /// Whether the cache can answer for `key` without the database.
    #[must_use]
    pub fn is_cached(&self, key: &str) -> bool {
        self.cache.knows(key)
    }

    /// Empties the cache.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Forgets `key`, so that the next read of it goes to the database.
    pub fn forget(&self, key: &str) {
        self.cache.forget(key);
    }

    /// Applies what an operation on this table changed (after its commit, for a write).
    pub fn apply(&self, change: CacheChange) {
        change.apply(&self.cache);
    }
}

/// What every table of one open database shares, whichever store runs them: the tables opened
/// on it (for a restore, a purge of expired rows, or another writer's commit to reach every
/// cache) and the watch for other writers.
pub struct Shared<S: Storage> {
    tables: Mutex<Vec<Weak<Table<S>>>>,
    hooks: Mutex<HashMap<Identifier, Arc<Hooks<S>>>>,
    write_back: Option<Arc<WriteBackState<S>>>,
    external: Option<ExternalWrites>,
    /// The backend's watch for other clients' writes, while it runs.
    watch: Mutex<Option<Watch>>,
}

impl<S: Storage> fmt::Debug for Shared<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").field("tables", &self.tables.lock().len()).finish_non_exhaustive()
    }
}

impl<S: Storage> Shared<S> {
    /// Shared state for a database, watching for other writers at most once per interval of
    /// `watch` (by its clock); `version` is the database's data version when it was opened.
    #[must_use]
    pub fn new(watch: Option<(Duration, Clock)>, version: Option<i64>) -> Self {
        let external = watch.map(|(interval, clock)| {
            let external = ExternalWrites::new(interval, clock);
            if let Some(version) = version {
                external.changed(version); // the baseline
            }
            external
        });
        Self {
            tables: Mutex::new(Vec::new()),
            hooks: Mutex::default(),
            write_back: None,
            external,
            watch: Mutex::new(None),
        }
    }

    /// This database in write-back mode (before it is shared).
    #[must_use]
    pub fn with_write_back(mut self, write_back: Option<crate::WriteBack>) -> Self {
        self.write_back = write_back.map(|config| Arc::new(WriteBackState::new(config)));
        self
    }

    /// Write-back mode's state, in write-back mode.
    #[must_use]
    pub fn write_back(&self) -> Option<&Arc<WriteBackState<S>>> {
        self.write_back.as_ref()
    }

    /// A handle on table `name` (backend handle `handle`), with the hooks and, in write-back
    /// mode, the staged rows every handle on that table shares.
    #[must_use]
    pub fn table(&self, name: Identifier, handle: S::Table, settings: TableSettings) -> Table<S> {
        let hooks = self.hooks(&name);
        let write_back =
            self.write_back.as_ref().map(|state| (Arc::clone(state), state.table(&name, &handle, &settings, &hooks)));
        Table { write_back, ..Table::new(name, handle, settings, hooks) }
    }

    /// Starts the backend's watch for other clients' writes, if it has one: what they change
    /// leaves the caches of the tables open here ([`Storage::watch`]).
    ///
    /// # Errors
    ///
    /// The backend's error when the watch cannot start.
    pub fn watch_others(self: &Arc<Self>, storage: &S) -> crate::Result<()> {
        let shared = Arc::downgrade(self);
        let changed: OnChange = Arc::new(move |changed| {
            if let Some(shared) = shared.upgrade() {
                shared.forget_changed(changed);
            }
        });
        if let Some(watch) = storage.watch(changed)? {
            *self.watch.lock() = Some(watch);
        }
        Ok(())
    }

    /// Stops the watch for other clients' writes (at close).
    pub fn stop_watching(&self) {
        drop(self.watch.lock().take());
    }

    /// Drops from the caches what another client changed.
    fn forget_changed(&self, changed: Changed<'_>) {
        for table in self.tables() {
            match changed {
                Changed::Keys { table: name, keys } if table.name().as_str() == name => {
                    keys.iter().for_each(|key| table.forget(key));
                }
                Changed::Table(name) if table.name().as_str() == name => table.clear_cache(),
                Changed::All => table.clear_cache(),
                _ => {}
            }
        }
    }

    /// The hooks of table `name`, the same for every handle opened on it.
    #[must_use]
    pub fn hooks(&self, name: &Identifier) -> Arc<Hooks<S>> {
        Arc::clone(self.hooks.lock().entry(name.clone()).or_default())
    }

    /// Remembers `table`.
    pub fn register(&self, table: &Arc<Table<S>>) {
        let mut tables = self.tables.lock();
        tables.retain(|table| table.strong_count() > 0);
        tables.push(Arc::downgrade(table));
    }

    /// The tables still open.
    #[must_use]
    pub fn tables(&self) -> Vec<Arc<Table<S>>> {
        self.tables.lock().iter().filter_map(Weak::upgrade).collect()
    }

    /// Whether rows that expired in a TTL cache with `delete_expired` wait to be deleted from
    /// the file: an operation that [lists](super::Operation::lists) rows runs
    /// [`DeleteExpired`](super::DeleteExpired) first then.
    #[must_use]
    pub fn expired_pending(&self) -> bool {
        self.tables.lock().iter().filter_map(Weak::upgrade).any(|table| table.cache().has_expired())
    }

    /// Whether a check for other writers is due now (claims it: one caller per interval).
    #[must_use]
    pub fn watch_due(&self) -> bool {
        self.external.as_ref().is_some_and(ExternalWrites::due)
    }

    pub(crate) fn external(&self) -> Option<&ExternalWrites> {
        self.external.as_ref()
    }

    /// A change emptying every open table's cache.
    pub(crate) fn clear_every_cache(&self) -> CacheChange {
        let caches = self.tables().iter().map(|table| Arc::clone(table.cache())).collect();
        CacheChange::new(crate::cache::Change::ClearTables(caches))
    }
}
