//! A store's front end, written once for both stores: what each call checks, what the cache
//! answers, what write-back mode stages, and which operation runs otherwise.
//!
//! The engine decides, the stores execute: a store says only how an operation is run
//! ([`Front::execute`]: the sync store under its lock, the async store on its lanes or on the
//! caller's thread), how one answer is followed by the next ([`Front::then`]), and how a write
//! waits for room in the staging area ([`Front::wait_for_room`]); everything else is here. An
//! answer is the sync store's `Result<T>` and the async store's future of one
//! ([`Front::Answer`]), so the same steps give a blocking call on one side and a future on the
//! other.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    AddHooks, BatchDelete, BatchReport, BatchUpdate, CachedValue, Clear, Contains, Count, Delete, DeleteExpired,
    FlushAll, Flushed, Get, GetByPath, GetMany, KeyValue, Keys, LoadAll, Lookup, OpenHandles, OpenTable, Opening,
    Operation, Pop, PopItem, Remedy, RowsPage, Set, SetDefault, Shared, Staging, Table, UnreadableKeys, encode,
    encode_rows, encode_rows_partial, stage,
};
use crate::CacheStrategy;
use crate::atomic::{Amount, increment, patch};
use crate::error::{Error, Result};
use crate::hook::Registration;
use crate::identifier::Identifier;
use crate::scan::{Page, Scan};
use crate::storage::Storage;
use crate::store::typed::{Validator, validate, validated_batch};
use crate::writeback::{DeadLetter, WriteBackStats};

/// Rows read for a caller, each key with its value as the cache holds it.
pub(super) type Rows = Vec<(String, Arc<CachedValue>)>;

/// The front end of a store on backend `S`: the required items say how this store runs and
/// waits; the provided ones are every call's logic, the same for both stores.
pub trait Front<S: Storage>: Clone + Send + Sync + 'static {
    /// What a call answers with: `Result<T>` on the sync store, a future of one on the async
    /// store.
    type Answer<T: Send + 'static>;

    /// The table this handle is on.
    fn table(&self) -> &Arc<Table<S>>;

    /// What every table of the store's file shares.
    fn shared(&self) -> &Arc<Shared<S>>;

    /// [`Error::Closed`] once the store is closed.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`].
    fn ensure_open(&self) -> Result<()>;

    /// Whether a transaction is open on the store (one that other calls must not run inside).
    fn transaction_open(&self) -> bool;

    /// Notices other connections' commits (when the store watches for them) before the cache
    /// answers.
    fn notice_external_writes(&self);

    /// Counts a cache lookup that hit (or missed), for the store's statistics.
    fn record_cache(&self, _hit: bool) {}

    /// An answer had already.
    fn now<T: Send + 'static>(answer: Result<T>) -> Self::Answer<T>;

    /// `answer`'s result, if it is had already (always, on the sync store); otherwise the
    /// answer, to be followed with [`then`](Self::then).
    fn settled<T: Send + 'static>(answer: Self::Answer<T>) -> std::result::Result<Result<T>, Self::Answer<T>>;

    /// `answer`, then `next` with its result.
    fn after<T: Send + 'static, U: Send + 'static>(
        answer: Self::Answer<T>,
        next: impl FnOnce(Result<T>) -> Self::Answer<U> + Send + 'static,
    ) -> Self::Answer<U>;

    /// Runs `operation` on this handle's table as it is, with none of [`run`](Self::run)'s
    /// steps first.
    fn execute<O>(&self, operation: O) -> Self::Answer<O::Output>
    where
        O: Operation<S> + Send + 'static,
        O::Output: Send + 'static;

    /// Waits until the staging area has made room since it counted `seen` (the sync store
    /// blocks its caller, the async store awaits).
    fn wait_for_room(&self, seen: u64) -> Self::Answer<()>;

    /// Closes the connection (and the lanes, on the async store), so that every handle on the
    /// file answers [`Error::Closed`] from then on; the caches are emptied.
    fn shut_down(&self) -> Self::Answer<()>;

    /// How a thread of the engine's own (write-back mode's flusher) commits what is staged,
    /// blocking until done, stopping past the deadline it is given. It keeps the database, not
    /// the store, open.
    fn flush_from_thread(&self) -> impl Fn(Option<std::time::Instant>) -> Result<()> + Send + 'static;

    // ===== running =====

    /// `answer`, then `next` with its value; an error skips `next`.
    fn then<T: Send + 'static, U: Send + 'static>(
        answer: Self::Answer<T>,
        next: impl FnOnce(T) -> Self::Answer<U> + Send + 'static,
    ) -> Self::Answer<U> {
        Self::after(answer, |result| match result {
            Ok(value) => next(value),
            Err(error) => Self::now(Err(error)),
        })
    }

    /// Runs `operation`, or answers with the error its input failed with (checked and encoded
    /// on the caller's thread), after what [`before`](Self::before) says.
    fn run<O>(&self, operation: Result<O>) -> Self::Answer<O::Output>
    where
        O: Operation<S> + Send + 'static,
        O::Output: Send + 'static,
    {
        let operation = match operation {
            Ok(operation) => operation,
            Err(error) => return Self::now(Err(error)),
        };
        match self.before(&operation) {
            None => self.execute(operation),
            Some(before) => {
                let this = self.clone();
                Self::then(before, move |()| this.execute(operation))
            }
        }
    }

    /// What must run before `operation`, if anything: in write-back mode what is staged is
    /// committed first, unless the operation is a point read (which sees staged rows through
    /// the cache); an operation that lists rows runs after the rows that expired in a TTL
    /// cache are deleted.
    fn before<O: Operation<S>>(&self, operation: &O) -> Option<Self::Answer<()>> {
        let flush = if operation.inline() { None } else { self.flush_first() };
        let expired = operation.lists() && self.shared().expired_pending();
        if !expired {
            return flush;
        }
        let this = self.clone();
        let flushed = flush.unwrap_or_else(|| Self::now(Ok(())));
        Some(Self::then(flushed, move |()| this.execute(DeleteExpired)))
    }

    /// A commit of what write-back mode has staged, before a call that must see it; `None`
    /// when nothing is staged. Rows that fail go to the dead-letter queue (reported by a
    /// flush, not by every later call).
    fn flush_first(&self) -> Option<Self::Answer<()>> {
        let staged = self.table().write_back_state().is_some_and(|state| !state.is_empty());
        staged.then(|| Self::then(self.flush_staged(None), |_| Self::now(Ok(()))))
    }

    /// Whether the store is open, noticing other writers first when it watches for them.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`].
    #[inline]
    fn ready(&self) -> Result<()> {
        self.ensure_open()?;
        self.notice_external_writes();
        Ok(())
    }

    // ===== reads =====

    /// What the cache knows of `key`, counted; `keeping` for a read that keeps its decoded
    /// form in the entry ([`Table::lookup_for`]).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`].
    #[inline]
    fn lookup(&self, key: &str, keeping: bool) -> Result<Lookup> {
        self.ready()?;
        let lookup = self.table().lookup_for(key, keeping);
        self.record_cache(!matches!(lookup, Lookup::Miss));
        Ok(lookup)
    }

    /// The cached value of `key`, read from the file (and cached) on a miss.
    #[inline]
    fn cached(&self, key: &str, keeping: bool) -> Self::Answer<Option<Arc<CachedValue>>> {
        match self.lookup(key, keeping) {
            Ok(Lookup::Hit(value)) => Self::now(Ok(Some(value))),
            Ok(Lookup::Absent) => Self::now(Ok(None)),
            Ok(Lookup::Miss) => self.run(Ok(Get::new(self.table(), key.to_owned()))),
            Err(error) => Self::now(Err(error)),
        }
    }

    /// The value of `key` as a shared, parsed JSON value: a hit on one already parsed makes no
    /// copy.
    #[inline]
    fn shared_value(&self, key: &str) -> Self::Answer<Option<Arc<Value>>> {
        if self.ready().is_ok()
            && let Some(value) = self.table().shared_hit(key)
        {
            self.record_cache(true);
            return Self::now(Ok(Some(value)));
        }
        // Had at once (a hit the fast path above could not serve, as an LRU's, or a read on
        // the caller's thread): parsed here, with nothing copied for later.
        let found = match Self::settled(self.cached(key, true)) {
            Ok(found) => return Self::now(found.and_then(|found| self.shared_of(key, found))),
            Err(queued) => queued,
        };
        let (this, owned) = (self.clone(), key.to_owned());
        Self::then(found, move |found| Self::now(this.shared_of(&owned, found)))
    }

    /// `found` as a shared, parsed JSON value (through the table's read hooks).
    fn shared_of(&self, key: &str, found: Option<Arc<CachedValue>>) -> Result<Option<Arc<Value>>> {
        found.map(|value| self.table().reader().shared(key, &value)).transpose()
    }

    /// Whether `key` exists, answered by the cache when it knows.
    #[inline]
    fn contains_key(&self, key: &str) -> Self::Answer<bool> {
        match self.lookup(key, false) {
            Ok(Lookup::Hit(_)) => Self::now(Ok(true)),
            Ok(Lookup::Absent) => Self::now(Ok(false)),
            Ok(Lookup::Miss) => self.run(Ok(Contains::new(self.table(), key.to_owned()))),
            Err(error) => Self::now(Err(error)),
        }
    }

    /// `key` read from the file, bypassing (then refreshing) the cache.
    fn fresh(&self, key: &str) -> Self::Answer<Option<Arc<CachedValue>>> {
        self.run(self.ensure_open().map(|()| Get::new(self.table(), key.to_owned())))
    }

    /// Forgets what the cache knows of `key` and reads it again.
    fn refresh_key(&self, key: &str) -> Self::Answer<()> {
        let read = self.ensure_open().map(|()| {
            self.table().forget(key);
            Get::new(self.table(), key.to_owned())
        });
        Self::then(self.run(read), |_| Self::now(Ok(())))
    }

    /// Loads every row of the table into the cache.
    fn load_table(&self) -> Self::Answer<()> {
        self.run(self.ensure_open().map(|()| LoadAll::new(self.table())))
    }

    /// The number of keys, counted in the file.
    fn key_count(&self) -> Self::Answer<usize> {
        Self::then(self.run(Ok(Count)), |count| Self::now(Ok(usize::try_from(count).unwrap_or(usize::MAX))))
    }

    /// Every row, sorted by key, loading the table into the cache first if it is not whole.
    fn all_rows(&self) -> Self::Answer<Rows> {
        match self.ready().map(|()| self.table().all_cached()) {
            Ok(Some(rows)) => Self::now(Ok(rows)),
            Ok(None) => self.run(Ok(super::AllRows::new(self.table()))),
            Err(error) => Self::now(Err(error)),
        }
    }

    /// The rows of the keys among `keys` that exist: from the cache when it knows every one,
    /// otherwise read in one snapshot and cached.
    fn rows_of(&self, keys: Vec<Box<str>>) -> Self::Answer<Rows> {
        if let Err(error) = self.ready() {
            return Self::now(Err(error));
        }
        let names: Vec<&str> = keys.iter().map(|key| &**key).collect();
        let cached = self.table().lookup_all(&names);
        self.record_cache(cached.is_some());
        match cached {
            Some(rows) => Self::now(Ok(rows)),
            None => self.run(Ok(GetMany::new(self.table(), keys))),
        }
    }

    /// Every key, sorted by byte order.
    fn sorted_keys(&self) -> Self::Answer<Vec<String>> {
        self.run(Ok(Keys))
    }

    /// How many keys cannot be named.
    fn unreadable_key_count(&self) -> Self::Answer<u64> {
        self.run(Ok(UnreadableKeys))
    }

    /// One page of `scan` and the cursor of the next ([`Page`]).
    fn page<T: DeserializeOwned + Send + 'static>(&self, scan: Scan) -> Self::Answer<Page<T>> {
        let reader = self.table().reader();
        Self::then(self.page_rows(&scan), move |rows| Self::now(scan.page_of(&reader, rows)))
    }

    /// The rows of one page of `scan` as stored, one more than the page holds when there is
    /// one (`Scan::page_of` decodes them and makes the cursor).
    fn page_rows(&self, scan: &Scan) -> Self::Answer<RowsPage> {
        self.run(self.ensure_open().map(|()| scan.clone().one_page()))
    }

    /// On an encrypted store, [`Error::WrongKey`] if none of the table's first rows (up to
    /// eight) decrypts with the store's key, though some were sealed: one damaged row does not
    /// stop the right key. An empty table, or a store without encryption, passes.
    fn check_key(&self) -> Self::Answer<()> {
        if !self.table().is_encrypted() {
            return Self::now(Ok(()));
        }
        let first = Scan::all().limit(8);
        Self::then(self.run(Ok(first.one_page())), |page| {
            let mut wrong = None;
            for (key, value) in &page.rows {
                match value.text(key) {
                    Ok(_) => return Self::now(Ok(())),
                    Err(error) if error.is_wrong_key() => wrong = wrong.or(Some(error)),
                    Err(_) => {}
                }
            }
            Self::now(wrong.map_or(Ok(()), Err))
        })
    }

    /// Whether the cache can answer for `key` without the file; `false` once the store is
    /// closed.
    fn knows(&self, key: &str) -> bool {
        self.ensure_open().is_ok() && self.table().is_cached(key)
    }

    /// One element of `key`'s stored value, read by the database.
    fn value_at_path<T: DeserializeOwned + Send + 'static>(&self, key: &str, path: &str) -> Self::Answer<Option<T>> {
        self.run(Ok(GetByPath::new(key, path)))
    }

    // ===== writes =====

    /// Stores `value`, encoded now on the caller's thread, under `key`: staged in write-back
    /// mode, committed otherwise.
    fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Self::Answer<()> {
        match encode(key, value) {
            Ok(value) if self.table().writes_back() => self.stage(key, Some(value)),
            value => self.run(value.map(|value| Set::new(key.to_owned(), value))),
        }
    }

    /// Deletes `key`; whether it existed. In write-back mode the delete of a present key is
    /// staged.
    fn remove(&self, key: &str) -> Self::Answer<bool> {
        if !self.table().writes_back() {
            return self.run(Ok(Delete::new(key.to_owned())));
        }
        let (this, key) = (self.clone(), key.to_owned());
        Self::then(self.contains_key(&key), move |existed| match existed {
            true => Self::then(this.stage(&key, None), |()| Self::now(Ok(true))),
            false => Self::now(Ok(false)),
        })
    }

    /// Stores every row (encoded now, on the caller's thread) in one transaction, or stages
    /// each in write-back mode, in order, stopping at the first that fails.
    fn put_rows<K: AsRef<str>, V: Serialize>(
        &self,
        rows: impl IntoIterator<Item = impl KeyValue<K, V>>,
    ) -> Self::Answer<()> {
        match encode_rows(rows) {
            Ok(rows) if self.table().writes_back() => {
                let staged = self.each(rows.into_iter(), 0, |front, (key, value)| {
                    Self::then(front.stage(&key, Some(value)), |()| Self::now(Ok(0)))
                });
                Self::then(staged, |_| Self::now(Ok(())))
            }
            rows => Self::then(self.write_batch(rows.map(BatchUpdate::new)), |_| Self::now(Ok(()))),
        }
    }

    /// Runs `batch` in one transaction, answering with the rows the hooks refused (a partial
    /// batch's); an empty one only checks that the store is open.
    fn write_batch(&self, batch: Result<BatchUpdate>) -> Self::Answer<Vec<(String, Error)>> {
        match batch {
            Ok(batch) if batch.is_empty() => Self::now(self.ensure_open().map(|()| Vec::new())),
            batch => self.run(batch),
        }
    }

    /// Stores, best effort, every row that can be encoded in one transaction, and reports
    /// those that cannot and those the hooks refused.
    fn put_partial<K: AsRef<str>, V: Serialize>(
        &self,
        rows: impl IntoIterator<Item = impl KeyValue<K, V>>,
    ) -> Self::Answer<BatchReport> {
        let (encoded, unencodable) = encode_rows_partial(rows);
        let batch = BatchUpdate::partial(encoded);
        let attempted = batch.len();
        Self::then(self.write_batch(Ok(batch)), move |refused| {
            Self::now(Ok(BatchReport::of(attempted, unencodable, refused)))
        })
    }

    /// Deletes every key of `keys` in one transaction (one by one, staged, in write-back mode);
    /// how many existed.
    fn remove_keys(&self, keys: Vec<Box<str>>) -> Self::Answer<usize> {
        if !self.table().writes_back() {
            return self.run(Ok(BatchDelete::new(keys)));
        }
        self.each(keys.into_iter(), 0, |front, key| {
            Self::then(front.remove(&key), |existed| Self::now(Ok(usize::from(existed))))
        })
    }

    /// Stores `value` under `key` if the typed table's `validator` accepts it.
    fn put_valid<T: Serialize>(&self, validator: Option<&Validator<T>>, key: &str, value: &T) -> Self::Answer<()> {
        match validate(validator, self.table().name().as_str(), key, value) {
            Ok(()) => self.put(key, value),
            Err(error) => Self::now(Err(error)),
        }
    }

    /// Stores every row in one transaction if the typed table's `validator` accepts each.
    fn put_valid_rows<K: AsRef<str>, T: Serialize>(
        &self,
        validator: Option<&Validator<T>>,
        rows: &[(K, T)],
    ) -> Self::Answer<()> {
        let batch = validated_batch(validator, self.table().name().as_str(), rows);
        Self::then(self.write_batch(batch), |_| Self::now(Ok(())))
    }

    /// The stored value of `key` if present; otherwise stores `default` and answers with it.
    fn set_default<T: Serialize + ?Sized>(&self, key: &str, default: &T) -> Self::Answer<Arc<CachedValue>> {
        self.run(encode(key, default).map(|default| SetDefault::new(key.to_owned(), default)))
    }

    /// Adds `amount` to the number under `key` (or its `field`), a missing one counting as
    /// `start`; the stored result.
    fn increment_by(
        &self,
        key: &str,
        amount: Amount,
        field: Option<&str>,
        start: Amount,
    ) -> Self::Answer<Arc<CachedValue>> {
        self.run(increment(key.to_owned(), amount, field, start))
    }

    /// Merges `changes` into the object under `key`; the stored result.
    fn patch_with<T: Serialize + ?Sized>(
        &self,
        key: &str,
        changes: &T,
        create: bool,
    ) -> Self::Answer<Arc<CachedValue>> {
        self.run(patch(key.to_owned(), changes, create))
    }

    /// Removes `key` and answers with its value, decoded before the delete.
    fn pop_value<T: DeserializeOwned + Send + 'static>(&self, key: &str) -> Self::Answer<Option<T>> {
        self.run(Ok(Pop::new(key.to_owned())))
    }

    /// Removes the first key and answers with it and its value.
    fn pop_first<T: DeserializeOwned + Send + 'static>(&self) -> Self::Answer<Option<(String, T)>> {
        self.run(Ok(PopItem::new()))
    }

    /// Deletes every row of this table.
    fn clear_table(&self) -> Self::Answer<()> {
        self.run(Ok(Clear))
    }

    /// The last steps of opening, once the store exists: the builder's hooks registered, the
    /// key checked, every row loaded, in that order, as the options asked.
    fn finish_opening(&self, opening: Opening) -> Self::Answer<()> {
        let Opening { hooks, check_key, bulk_load, .. } = opening;
        let this = self.clone();
        let hooks = if hooks.is_empty() { Self::now(Ok(())) } else { self.register_hooks(hooks) };
        Self::then(hooks, move |()| {
            let checked = if check_key { this.check_key() } else { Self::now(Ok(())) };
            Self::then(checked, move |()| if bulk_load { this.load_table() } else { Self::now(Ok(())) })
        })
    }

    /// Registers `hooks` on this table, in order.
    fn register_hooks(&self, hooks: Vec<Registration>) -> Self::Answer<()> {
        self.run(Ok(AddHooks::new(hooks)))
    }

    /// Creates (or checks) the key/value table `name`; its handle.
    fn open_table(&self, name: Identifier) -> Self::Answer<S::Table> {
        self.run(Ok(OpenTable::new(name)))
    }

    /// Another key/value table of the same file, created if missing, with this one's settings
    /// (its cache strategy replaced by `cache` if given) and a cache of its own, registered with
    /// the file's shared state.
    fn other_table(&self, name: &str, cache: Option<CacheStrategy>) -> Self::Answer<Arc<Table<S>>> {
        let checked = self.ensure_open().and_then(|()| {
            let settings = self.table().settings().clone();
            let settings = match cache {
                Some(cache) => settings.with_cache(cache)?,
                None => settings,
            };
            Ok((Identifier::new(name)?, settings))
        });
        let (name, settings) = match checked {
            Ok(checked) => checked,
            Err(error) => return Self::now(Err(error)),
        };
        let shared = Arc::clone(self.shared());
        Self::then(self.open_table(name.clone()), move |handle| {
            let table = Arc::new(shared.table(name, handle, settings));
            shared.register(&table);
            Self::now(Ok(table))
        })
    }

    /// Runs `step` for each item in order, adding up what they answer, and stops at the first
    /// error. A step answered at once is followed in a loop, not by nesting answers, so a
    /// batch of any size takes no more stack on the sync store.
    fn each<I>(
        &self,
        mut items: I,
        mut total: usize,
        step: fn(&Self, I::Item) -> Self::Answer<usize>,
    ) -> Self::Answer<usize>
    where
        I: Iterator + Send + 'static,
    {
        while let Some(item) = items.next() {
            match Self::settled(step(self, item)) {
                Ok(Ok(counted)) => total += counted,
                Ok(Err(error)) => return Self::now(Err(error)),
                Err(pending) => {
                    let this = self.clone();
                    return Self::then(pending, move |counted| this.each(items, total + counted, step));
                }
            }
        }
        Self::now(Ok(total))
    }

    // ===== write-back =====

    /// Stages a write of `key` (`None`: a delete); when the bound leaves no room, makes room
    /// as the engine says and stages again.
    fn stage(&self, key: &str, value: Option<Arc<CachedValue>>) -> Self::Answer<()> {
        let room = match self.ensure_open().and_then(|()| stage(self.table(), key, value.clone())) {
            Ok(Staging::Done) => return Self::now(Ok(())),
            Ok(Staging::Full(Remedy::Refuse(error))) | Err(error) => return Self::now(Err(error)),
            Ok(Staging::Full(Remedy::WaitForRoom(seen))) => self.wait_for_room(seen),
            Ok(Staging::Full(Remedy::Flush)) => Self::then(self.flush_staged(None), |_| Self::now(Ok(()))),
        };
        let (this, key) = (self.clone(), key.to_owned());
        Self::then(room, move |()| this.stage(&key, value))
    }

    /// Commits what is staged, in chunks, stopping past `deadline`; failed rows become dead
    /// letters.
    fn flush_staged(&self, deadline: Option<std::time::Instant>) -> Self::Answer<Flushed> {
        self.execute(FlushAll::new(Arc::clone(self.shared()), deadline))
    }

    /// Commits every row staged before the call; an error names what is left.
    fn flush_reported(&self) -> Self::Answer<()> {
        let state = self.shared().write_back().cloned();
        Self::then(self.flush_staged(None), move |flushed| {
            Self::now(state.map_or(Ok(()), |state| state.report_flush(flushed)))
        })
    }

    /// Closes the database: refused while a transaction is open, else what write-back mode
    /// staged is committed, then the connection is closed, even when the commit failed. The
    /// error of closing is reported first, then the commit's.
    fn close_database(&self) -> Self::Answer<()> {
        if self.transaction_open() {
            let message = "cannot close the database during a transaction".to_owned();
            return Self::now(Err(Error::Transaction { message }));
        }
        let this = self.clone();
        Self::after(self.flush_for_close(), move |unflushed| {
            Self::after(this.shut_down(), move |closed| Self::now(closed.and(unflushed)))
        })
    }

    /// In write-back mode, starts the flusher: a thread that commits what is staged as the
    /// settings say, and a last time once every handle of `handles` is dropped.
    fn start_flusher(&self, handles: &Arc<OpenHandles>) -> Result<()> {
        let Some(state) = self.shared().write_back() else { return Ok(()) };
        state.spawn_flusher(Arc::downgrade(handles), self.flush_from_thread())
    }

    /// At close: stops staging and the flusher, commits what is staged within the close
    /// timeout, and reports what could not be written. Stopping first makes every write
    /// either staged in time for this flush or refused with [`Error::Closed`].
    fn flush_for_close(&self) -> Self::Answer<()> {
        let Some(state) = self.shared().write_back().cloned() else { return Self::now(Ok(())) };
        state.stop();
        let flush = self.flush_staged(Some(state.close_deadline()));
        Self::after(flush, move |flushed| Self::now(state.report_close(flushed)))
    }

    /// The staged rows that could not be committed, oldest first.
    fn dead_letter_list(&self) -> Vec<DeadLetter> {
        self.table().write_back_state().map(|state| state.dead_letters()).unwrap_or_default()
    }

    /// Stages the dead letters again; how many were staged.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`].
    fn restage_dead_letters(&self) -> Result<usize> {
        self.ensure_open()?;
        Ok(super::retry_dead_letters(self.shared()))
    }

    /// Empties the dead-letter queue; how many rows it held.
    fn drop_dead_letters(&self) -> usize {
        self.table().write_back_state().map_or(0, |state| state.clear_dead_letters())
    }

    /// What write-back mode has done (`None` in normal mode).
    fn write_back_counters(&self) -> Option<WriteBackStats> {
        self.table().write_back_state().map(|state| state.stats())
    }
}
