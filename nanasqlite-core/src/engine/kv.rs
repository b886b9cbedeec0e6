//! The key/value operations. A key is any `K: AsRef<str>`: borrowed by the sync store, owned
//! by the async one (whose operations travel to another thread).

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::hooks::{self, Events};
use super::{Applied, Kind, Operation, ReadStart, Table};
use crate::cache::{CachedValue, Change, Epoch, Loaded};
use crate::codec;
use crate::error::Result;
use crate::storage::Storage;

/// `value` encoded as a cache entry for `key`: JSON text, made on the caller's thread so that a
/// value that cannot be encoded stops the call before anything is queued or written.
///
/// # Errors
///
/// [`Error::Encode`](crate::Error::Encode) naming `key`.
pub fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Arc<CachedValue>> {
    Ok(CachedValue::new(codec::encode(key, value)?))
}

/// A `(key, value)` pair, owned or borrowed: what [`crate::NanaSQLite::batch_update`] takes, so that
/// it accepts `[("a", 1)]`, `Vec<(String, V)>`, `&Vec<(String, V)>`, `&HashMap<String, V>`
/// and the like.
pub trait KeyValue<K, V> {
    /// The pair's parts.
    fn parts(&self) -> (&K, &V);
}

impl<K, V> KeyValue<K, V> for (K, V) {
    fn parts(&self) -> (&K, &V) {
        (&self.0, &self.1)
    }
}

impl<K, V> KeyValue<K, V> for &(K, V) {
    fn parts(&self) -> (&K, &V) {
        (&self.0, &self.1)
    }
}

/// Encodes every `(key, value)` first, so an unencodable value stops a batch before anything
/// is written.
///
/// # Errors
///
/// [`Error::Encode`](crate::Error::Encode) naming the first key whose value fails.
pub(crate) fn encode_rows<K: AsRef<str>, V: Serialize>(
    rows: impl IntoIterator<Item = impl KeyValue<K, V>>,
) -> Result<Vec<(Box<str>, Arc<CachedValue>)>> {
    rows.into_iter().map(encode_row).collect()
}

/// One `(key, value)` row encoded as a cache entry.
///
/// # Errors
///
/// [`Error::Encode`](crate::Error::Encode) naming the key.
pub(crate) fn encode_row<K: AsRef<str>, V: Serialize>(
    row: impl KeyValue<K, V>,
) -> Result<(Box<str>, Arc<CachedValue>)> {
    let (key, value) = row.parts();
    let key = key.as_ref();
    Ok((Box::from(key), encode(key, value)?))
}

/// What [`batch_update_partial`](crate::NanaSQLite::batch_update_partial) did: how many rows it
/// wrote, and each row it could not write with why.
#[derive(Debug)]
#[non_exhaustive]
pub struct BatchReport {
    /// Rows written (in one transaction).
    pub written: usize,
    /// The keys left out, each with its error: first the values that could not be encoded,
    /// then those the table's hooks refused, each group in input order.
    pub failed: Vec<(String, crate::Error)>,
}

impl BatchReport {
    /// A report of `written` rows and the `failed` ones (for stores built on the engine).
    #[must_use]
    pub fn new(written: usize, failed: Vec<(String, crate::Error)>) -> Self {
        Self { written, failed }
    }

    /// The report of a partial batch of `attempted` encoded rows, of which the hooks `refused`
    /// some, after the rows that could not be encoded (`unencodable`).
    #[must_use]
    pub fn of(
        attempted: usize,
        mut unencodable: Vec<(String, crate::Error)>,
        refused: Vec<(String, crate::Error)>,
    ) -> Self {
        let written = attempted - refused.len();
        unencodable.extend(refused);
        Self { written, failed: unencodable }
    }
}

/// Rows encoded for a batch: each key with its value as the cache holds it.
pub(crate) type EncodedRows = Vec<(Box<str>, Arc<CachedValue>)>;

/// As [`encode_rows`], best effort: the rows that encode, and each key that does not with its
/// error.
pub(crate) fn encode_rows_partial<K: AsRef<str>, V: Serialize>(
    rows: impl IntoIterator<Item = impl KeyValue<K, V>>,
) -> (EncodedRows, Vec<(String, crate::Error)>) {
    let (mut encoded, mut failed) = (Vec::new(), Vec::new());
    for row in rows {
        let (key, value) = row.parts();
        let key = key.as_ref();
        match encode(key, value) {
            Ok(value) => encoded.push((Box::from(key), value)),
            Err(error) => failed.push((key.to_owned(), error)),
        }
    }
    (encoded, failed)
}

/// Declares the name and kind of an operation.
macro_rules! describe {
    ($name:literal, $kind:ident) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn kind(&self) -> Kind {
            Kind::$kind
        }
    };
}

/// Reads one key (a cache miss) and caches what it found.
#[derive(Debug)]
pub(crate) struct Get<K> {
    key: K,
    since: ReadStart,
}

impl<K: AsRef<str>> Get<K> {
    /// A read of `key` for `table`, taking its start now (before the read is queued).
    pub(crate) fn new<S: Storage>(table: &Table<S>, key: K) -> Self {
        Self { since: table.read_start(), key }
    }
}

impl<S: Storage, K: AsRef<str>> Operation<S> for Get<K> {
    type Output = Option<Arc<CachedValue>>;
    describe!("get", Read);

    fn inline(&self) -> bool {
        true
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<Self::Output>> {
        let key = self.key.as_ref();
        if table.cache().expired(key) {
            return Ok(Applied::plain(None)); // still in the file until deleted, absent to readers
        }
        let value = storage.get(table.handle(), key)?.map(|stored| table.codec().read_owned(stored));
        let fill = table.fill_after(self.since, |since| Change::Fill(key.into(), value.clone(), since));
        Ok(Applied { output: value, change: fill })
    }
}

/// Reads one element of a key's stored JSON value through the backend (SQLite's `->`), from
/// storage, not the cache; the path is normalised as Python NanaSQLite does (`a.b` and `.a.b`
/// become `$.a.b`). An absent key, an absent path and a JSON `null` all read as `None`.
#[derive(Debug)]
pub(crate) struct GetByPath<T> {
    key: String,
    path: String,
    decoded: PhantomData<fn() -> T>,
}

impl<T> GetByPath<T> {
    /// The element at `path` of `key`'s value.
    pub(crate) fn new(key: &str, path: &str) -> Self {
        let path = if path.starts_with('$') { path.to_owned() } else { format!("$.{}", path.trim_start_matches('.')) };
        Self { key: key.to_owned(), path, decoded: PhantomData }
    }
}

impl<S: Storage, T: DeserializeOwned> Operation<S> for GetByPath<T> {
    type Output = Option<T>;
    describe!("get_by_path", Read);

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<Option<T>>> {
        if table.codec().is_encrypted() {
            return Err(crate::Error::Validation {
                message: "get_by_path reads stored JSON inside the database, which cannot see into encrypted values; \
                          read the value with get instead"
                    .to_owned(),
            });
        }
        let Some(stored) = storage.get_path(table.handle(), &self.key, &self.path)? else {
            return Ok(Applied::plain(None));
        };
        let element = table.codec().read_owned(stored);
        let key = format!("{} at {}", self.key, self.path);
        if element.text(&key)? == "null" {
            return Ok(Applied::plain(None));
        }
        Ok(Applied::plain(Some(element.decode(&key)?)))
    }
}

/// One page of an ordered read ([`Scan`](crate::Scan)): up to `limit` rows after the cursor,
/// read from storage in one snapshot (the cache is neither read nor filled, so a scan of a
/// large table never holds more than a page).
#[derive(Clone, Debug)]
pub struct ScanPage {
    scan: Arc<crate::Scan>,
    cursor: Option<Vec<u8>>,
    limit: usize,
}

/// The rows of a `ScanPage`, and the cursor of the next page when there may be one.
#[derive(Debug)]
pub struct RowsPage {
    /// The rows, in the scan's order (keys that are not valid UTF-8 are left out).
    pub rows: Vec<(String, Arc<CachedValue>)>,
    /// The next page, if this one was full.
    pub next: Option<ScanPage>,
}

impl ScanPage {
    /// The first page of `scan`, of at most `limit` rows.
    pub fn first(scan: Arc<crate::Scan>, limit: usize) -> Self {
        let cursor = scan.after.as_ref().map(|key| key.clone().into_bytes());
        Self { scan, cursor, limit }
    }

    /// This page with at most `limit` rows.
    #[must_use]
    pub fn limited(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

impl<S: Storage> Operation<S> for ScanPage {
    type Output = RowsPage;
    describe!("scan", Read);

    fn lists(&self) -> bool {
        true
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<RowsPage>> {
        let scan = &self.scan;
        let range = crate::storage::KeyRange {
            lower: scan.lower.as_ref().map(String::as_str),
            upper: scan.upper.as_ref().map(String::as_str),
            after: self.cursor.as_deref(),
            descending: scan.descending,
            limit: self.limit,
        };
        let (codec, mut rows, mut last, mut seen) = (table.codec(), Vec::new(), None, 0);
        storage.scan_page(table.handle(), &range, &mut |row| {
            seen += 1;
            last = Some(row.raw_key.to_vec());
            if let Some(key) = row.key {
                rows.push((key.to_owned(), codec.read(row.value)));
            }
        })?;
        let next = last.filter(|_| seen == self.limit).map(|cursor| Self {
            scan: Arc::clone(&self.scan),
            cursor: Some(cursor),
            limit: self.limit,
        });
        Ok(Applied::plain(RowsPage { rows, next }))
    }
}

/// Reads several keys in one snapshot and caches what it found (the rest as absent).
#[derive(Debug)]
pub(crate) struct GetMany {
    keys: Vec<Box<str>>,
    since: ReadStart,
}

impl GetMany {
    /// A read of `keys` for `table`.
    pub(crate) fn new<S: Storage>(table: &Table<S>, keys: Vec<Box<str>>) -> Self {
        Self { since: table.read_start(), keys }
    }
}

impl<S: Storage> Operation<S> for GetMany {
    type Output = Vec<(String, Arc<CachedValue>)>;
    describe!("batch_get", Read);

    fn lists(&self) -> bool {
        true
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<Self::Output>> {
        let keys: Vec<&str> = self.keys.iter().map(|key| &**key).collect();
        let (mut rows, codec) = (Vec::with_capacity(keys.len()), table.codec());
        storage.get_many(table.handle(), &keys, &mut |key, stored| rows.push((key.to_owned(), codec.read(stored))))?;
        let change = table.fill_after(self.since, |since| Change::FillMany(self.keys.clone(), rows.clone(), since));
        Ok(Applied { output: rows, change })
    }
}

/// Whether a key exists (a cache miss); an absent key is cached as absent.
#[derive(Debug)]
pub(crate) struct Contains<K> {
    key: K,
    since: Epoch,
}

impl<K: AsRef<str>> Contains<K> {
    /// Whether `key` exists in `table`.
    pub(crate) fn new<S: Storage>(table: &Table<S>, key: K) -> Self {
        Self { since: table.cache().epoch(), key }
    }
}

impl<S: Storage, K: AsRef<str>> Operation<S> for Contains<K> {
    type Output = bool;
    describe!("contains", Read);

    fn inline(&self) -> bool {
        true
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<bool>> {
        let key = self.key.as_ref();
        if table.cache().expired(key) {
            return Ok(Applied::plain(false));
        }
        if storage.contains(table.handle(), key)? {
            Ok(Applied::plain(true))
        } else {
            Ok(Applied::with(false, Change::Fill(key.into(), None, self.since)))
        }
    }
}

/// The number of rows.
#[derive(Debug, Default)]
pub(crate) struct Count;

impl<S: Storage> Operation<S> for Count {
    type Output = u64;
    describe!("len", Read);

    fn lists(&self) -> bool {
        true
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<u64>> {
        storage.count(table.handle()).map(Applied::plain)
    }
}

/// Every key, sorted.
#[derive(Debug, Default)]
pub(crate) struct Keys;

impl<S: Storage> Operation<S> for Keys {
    type Output = Vec<String>;
    describe!("keys", Read);

    fn lists(&self) -> bool {
        true
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<Vec<String>>> {
        storage.keys(table.handle()).map(Applied::plain)
    }
}

/// How many keys cannot be named (not text, or not UTF-8), left out of listings.
#[derive(Debug, Default)]
pub(crate) struct UnreadableKeys;

impl<S: Storage> Operation<S> for UnreadableKeys {
    type Output = u64;
    describe!("unreadable_keys", Read);

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<u64>> {
        storage.unreadable_keys(table.handle()).map(Applied::plain)
    }
}

/// Every row of the table, as the cache loads it.
fn load<S: Storage>(storage: &S, table: &Table<S>) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    let codec = table.codec();
    storage.scan(table.handle(), &mut |key, stored| codec.load(&mut loaded, key, stored))?;
    Ok(loaded)
}

/// Every row, sorted by key; fills the cache with the whole table.
#[derive(Debug)]
pub(crate) struct AllRows {
    since: ReadStart,
}

impl AllRows {
    /// Every row of `table`.
    pub(crate) fn new<S: Storage>(table: &Table<S>) -> Self {
        Self { since: table.read_start() }
    }
}

impl<S: Storage> Operation<S> for AllRows {
    type Output = Vec<(String, Arc<CachedValue>)>;
    describe!("items", Read);

    fn lists(&self) -> bool {
        true
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<Self::Output>> {
        let loaded = load(storage, table)?;
        let rows = loaded.sorted();
        Ok(Applied { output: rows, change: table.fill_after(self.since, |since| Change::Load(loaded, since)) })
    }
}

/// Loads every row into the cache.
#[derive(Debug)]
pub(crate) struct LoadAll {
    since: ReadStart,
}

impl LoadAll {
    /// Loads `table`.
    pub(crate) fn new<S: Storage>(table: &Table<S>) -> Self {
        Self { since: table.read_start() }
    }
}

impl<S: Storage> Operation<S> for LoadAll {
    type Output = ();
    describe!("load_all", Read);

    fn lists(&self) -> bool {
        true
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<()>> {
        let loaded = load(storage, table)?;
        Ok(Applied { output: (), change: table.fill_after(self.since, |since| Change::Load(loaded, since)) })
    }
}

/// Stores one value (already encoded).
#[derive(Debug)]
pub(crate) struct Set<K> {
    key: K,
    value: Arc<CachedValue>,
}

impl<K: AsRef<str>> Set<K> {
    /// Stores `value` (from [`CachedValue::new`] of its JSON text) under `key`.
    pub(crate) fn new(key: K, value: Arc<CachedValue>) -> Self {
        Self { key, value }
    }
}

/// Writes `value` under `key`, sealed by the table's codec.
fn put<S: Storage>(storage: &S, table: &Table<S>, key: &str, value: &CachedValue) -> Result<()> {
    let json = value.text(key)?;
    storage.put(table.handle(), key, table.codec().seal(json)?.stored())
}

/// Writes `value` under `key` once the table's hooks admit it, noting the write for them;
/// returns the value as stored (a hook may have rewritten it).
///
/// # Errors
///
/// A hook's refusal; the backend's error.
pub(crate) fn write<S: Storage>(
    storage: &S,
    table: &Table<S>,
    key: &str,
    value: &Arc<CachedValue>,
    events: &mut Events,
) -> Result<Arc<CachedValue>> {
    let value = hooks::admit(Some(storage), table, key, value)?;
    put(storage, table, key, &value)?;
    events.written(key, &value);
    Ok(value)
}

/// The largest value a `set` may write on a caller's thread: a larger one (up to the store's
/// `max_length`, 256 MiB by default) would hold a runtime's thread for milliseconds.
const INLINE_WRITE_LIMIT: usize = 64 << 10;

impl<S: Storage, K: AsRef<str>> Operation<S> for Set<K> {
    type Output = ();
    describe!("set", Write);

    fn inline(&self) -> bool {
        self.value.text_len() <= INLINE_WRITE_LIMIT
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<()>> {
        let key = self.key.as_ref();
        let mut events = Events::of(table);
        let value = write(storage, table, key, &self.value, &mut events)?;
        Ok(Applied::with((), Change::Put(key.into(), value)).notifying(events))
    }
}

/// Deletes one key; whether it existed.
#[derive(Debug)]
pub(crate) struct Delete<K> {
    key: K,
}

impl<K: AsRef<str>> Delete<K> {
    /// Deletes `key`.
    pub(crate) fn new(key: K) -> Self {
        Self { key }
    }
}

impl<S: Storage, K: AsRef<str>> Operation<S> for Delete<K> {
    type Output = bool;
    describe!("delete", Write);

    fn inline(&self) -> bool {
        true
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<bool>> {
        let key = self.key.as_ref();
        let mut events = Events::of(table);
        let existed = hooks::remove(storage, table, key, &mut events)?;
        Ok(Applied::with(existed, Change::Remove(key.into())).notifying(events))
    }
}

/// Stores many values (already encoded); atomic as the transaction it runs in. Its answer is
/// the rows the table's hooks refused, which only a [`partial`](Self::partial) batch leaves
/// out (any refusal fails a whole batch otherwise).
#[derive(Debug)]
pub struct BatchUpdate {
    rows: Arc<[(Box<str>, Arc<CachedValue>)]>,
    partial: bool,
}

impl BatchUpdate {
    /// Stores `rows`, all or none.
    pub fn new(rows: Vec<(Box<str>, Arc<CachedValue>)>) -> Self {
        Self { rows: rows.into(), partial: false }
    }

    /// Stores the `rows` the table's hooks admit, and answers with the others.
    pub fn partial(rows: Vec<(Box<str>, Arc<CachedValue>)>) -> Self {
        Self { rows: rows.into(), partial: true }
    }

    /// How many rows the batch holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there is nothing to store.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl<S: Storage> Operation<S> for BatchUpdate {
    type Output = Vec<(String, crate::Error)>;
    describe!("batch_update", Write);

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<Self::Output>> {
        if !table.hooks().is_empty() {
            return self.run_hooked(storage, table);
        }
        store(storage, table, &self.rows)?;
        Ok(Applied::with(Vec::new(), Change::PutMany(Arc::clone(&self.rows))))
    }
}

/// Stores `rows` (sealed by the table's codec) in one `put_many`.
fn store<S: Storage>(storage: &S, table: &Table<S>, rows: &[(Box<str>, Arc<CachedValue>)]) -> Result<()> {
    let codec = table.codec();
    let mut sealed = Vec::with_capacity(rows.len());
    for (key, value) in rows {
        sealed.push((&**key, codec.seal(value.text(key)?)?));
    }
    storage.put_many(table.handle(), &mut sealed.iter().map(|(key, value)| (*key, value.stored())))
}

impl BatchUpdate {
    /// The batch row by row, each admitted by the hooks and written before the next is
    /// checked (so a unique field is checked against the batch's earlier rows too).
    fn run_hooked<S: Storage>(&self, storage: &S, table: &Table<S>) -> Result<Applied<Vec<(String, crate::Error)>>> {
        let (mut events, mut written, mut refused) =
            (Events::of(table), Vec::with_capacity(self.rows.len()), Vec::new());
        for (key, value) in self.rows.iter() {
            match hooks::admit(Some(storage), table, key, value) {
                Ok(value) => {
                    put(storage, table, key, &value)?;
                    events.written(key, &value);
                    written.push((key.clone(), value));
                }
                Err(error) if self.partial && about_the_row(&error) => refused.push((key.to_string(), error)),
                Err(error) => return Err(error),
            }
        }
        Ok(Applied::with(refused, Change::PutMany(written.into())).notifying(events))
    }
}

/// Whether `error`, from admitting a row, concerns that row alone (a refusal, a hook's own
/// error, a value that does not fit), so that a partial batch goes on without it; the others
/// (the backend failing) stop the batch.
fn about_the_row(error: &crate::Error) -> bool {
    use crate::Error;
    matches!(
        error,
        Error::Refused { .. }
            | Error::Validation { .. }
            | Error::Encode { .. }
            | Error::Decode { .. }
            | Error::Panic { .. }
            | Error::NotFound { .. }
    )
}

/// Deletes many keys; how many existed.
#[derive(Debug)]
pub(crate) struct BatchDelete {
    keys: Arc<[Box<str>]>,
}

impl BatchDelete {
    /// Deletes `keys`.
    pub(crate) fn new(keys: Vec<Box<str>>) -> Self {
        Self { keys: keys.into() }
    }
}

impl<S: Storage> Operation<S> for BatchDelete {
    type Output = usize;
    describe!("batch_delete", Write);

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<usize>> {
        let mut events = Events::of(table);
        let removed = if events.observed() {
            let mut removed = 0;
            for key in self.keys.iter() {
                removed += usize::from(hooks::remove(storage, table, key, &mut events)?);
            }
            removed
        } else {
            let keys: Vec<&str> = self.keys.iter().map(|key| &**key).collect();
            storage.delete_many(table.handle(), &keys)?
        };
        Ok(Applied::with(removed, Change::RemoveMany(Arc::clone(&self.keys))).notifying(events))
    }
}

/// Removes a key and returns its value decoded as `T`; a value that does not fit `T` is left
/// in place (the error comes before the delete).
#[derive(Debug)]
pub(crate) struct Pop<K, T> {
    key: K,
    decoded: PhantomData<fn() -> T>,
}

impl<K: AsRef<str>, T> Pop<K, T> {
    /// Pops `key`.
    pub(crate) fn new(key: K) -> Self {
        Self { key, decoded: PhantomData }
    }
}

impl<S: Storage, K: AsRef<str>, T: DeserializeOwned> Operation<S> for Pop<K, T> {
    type Output = Option<T>;
    describe!("pop", Write);

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<Option<T>>> {
        let key = self.key.as_ref();
        let Some(stored) = storage.get(table.handle(), key)? else { return Ok(Applied::plain(None)) };
        let value = table.decode(key, &table.codec().read_owned(stored))?;
        let mut events = Events::of(table);
        hooks::remove(storage, table, key, &mut events)?;
        Ok(Applied::with(Some(value), Change::Remove(key.into())).notifying(events))
    }
}

/// Takes the first key (in key order) and its value out of the table.
#[derive(Debug)]
pub(crate) struct PopItem<T> {
    decoded: PhantomData<fn() -> T>,
}

impl<T> PopItem<T> {
    /// Pops the first key.
    #[must_use]
    pub(crate) fn new() -> Self {
        Self { decoded: PhantomData }
    }
}

impl<T> Default for PopItem<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Storage, T: DeserializeOwned> Operation<S> for PopItem<T> {
    type Output = Option<(String, T)>;
    describe!("popitem", Write);

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<Self::Output>> {
        let Some(key) = storage.first_key(table.handle())? else { return Ok(Applied::plain(None)) };
        let popped = Pop::<&str, T>::new(&key).run(storage, table)?;
        Ok(Applied { output: popped.output.map(|value| (key.clone(), value)), change: popped.change })
    }
}

/// The stored value of a key, or, when absent, `default` stored and returned.
#[derive(Debug)]
pub(crate) struct SetDefault<K> {
    key: K,
    default: Arc<CachedValue>,
}

impl<K: AsRef<str>> SetDefault<K> {
    /// `key`'s value, or `default` (encoded) stored under it.
    pub(crate) fn new(key: K, default: Arc<CachedValue>) -> Self {
        Self { key, default }
    }
}

impl<S: Storage, K: AsRef<str>> Operation<S> for SetDefault<K> {
    type Output = Arc<CachedValue>;
    describe!("setdefault", Write);

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<Arc<CachedValue>>> {
        let key = self.key.as_ref();
        let mut events = Events::of(table);
        let value = match storage.get(table.handle(), key)? {
            Some(stored) => table.codec().read_owned(stored),
            None => write(storage, table, key, &self.default, &mut events)?,
        };
        Ok(Applied::with(Arc::clone(&value), Change::Put(key.into(), value)).notifying(events))
    }
}

/// Deletes every row of the table.
#[derive(Debug, Default)]
pub(crate) struct Clear;

impl<S: Storage> Operation<S> for Clear {
    type Output = ();
    describe!("clear", Write);

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<()>> {
        let mut events = Events::of(table);
        if events.observed() {
            for key in storage.keys(table.handle())? {
                hooks::may_delete(table, &key)?;
                events.deleted(&key);
            }
        }
        storage.clear(table.handle())?;
        Ok(Applied::with((), Change::Clear).notifying(events))
    }
}

/// Reads a key's value from the database (not the cache), changes its JSON text with `step`,
/// and writes it back: atomic as the write transaction it runs in (`increment`, `patch`).
pub(crate) struct Transform<K, F> {
    name: &'static str,
    key: K,
    step: F,
}

impl<K: std::fmt::Debug, F> std::fmt::Debug for Transform<K, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transform").field("name", &self.name).field("key", &self.key).finish_non_exhaustive()
    }
}

impl<K: AsRef<str>, F: Fn(&str, Option<&str>) -> Result<String>> Transform<K, F> {
    /// `step` applied to the JSON text of `key` (`None`: absent), as operation `name`.
    pub(crate) fn new(name: &'static str, key: K, step: F) -> Self {
        Self { name, key, step }
    }
}

impl<S: Storage, K: AsRef<str>, F: Fn(&str, Option<&str>) -> Result<String>> Operation<S> for Transform<K, F> {
    type Output = Arc<CachedValue>;

    fn name(&self) -> &'static str {
        self.name
    }

    fn kind(&self) -> Kind {
        Kind::Write
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<Arc<CachedValue>>> {
        let key = self.key.as_ref();
        let current = storage.get_for_update(table.handle(), key)?.map(|stored| table.codec().read_owned(stored));
        let current = current.as_ref().map(|value| value.text(key)).transpose()?;
        let json = (self.step)(key, current)?;
        codec::check_depth(key, &json)?;
        let mut events = Events::of(table);
        let cached = write(storage, table, key, &CachedValue::new(json), &mut events)?;
        Ok(Applied::with(Arc::clone(&cached), Change::Put(key.into(), cached)).notifying(events))
    }
}
