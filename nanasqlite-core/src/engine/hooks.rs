//! Hooks in the engine: the hooks registered on a table ([`Hooks`]), registering them
//! ([`AddHooks`], which prepares storage for them), and running them around the writes, deletes
//! and reads of every operation ([`admit`], [`remove`], [`Reader`], [`Events`]).

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Applied, Kind, Operation, Table};
use crate::cache::{CacheChange, CachedValue, Change};
use crate::error::{Error, Result};
use crate::hook::{self, Check, Field, Hook, KeyFilter, Registration, Rule};
use crate::identifier::Identifier;
use crate::storage::{Duplicate, Storage};

/// The hooks registered on one table, in registration order. Every handle on the table shares
/// them (see [`Shared::hooks`](super::Shared::hooks)).
pub struct Hooks<S: Storage> {
    installed: RwLock<Installed<S>>,
    /// Whether any hook is registered: the fast path of every write when none is.
    any: AtomicBool,
    /// Whether any [`Hook`] of the user's is registered (reads and notices need one).
    observed: AtomicBool,
}

impl<S: Storage> Default for Hooks<S> {
    fn default() -> Self {
        Self {
            installed: RwLock::new(Installed::default()),
            any: AtomicBool::new(false),
            observed: AtomicBool::new(false),
        }
    }
}

impl<S: Storage> fmt::Debug for Hooks<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks").field("count", &self.installed.read().all.len()).finish()
    }
}

impl<S: Storage> Hooks<S> {
    /// Whether no hook is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    /// Whether a user's hook may change what reads return (`after_read`).
    pub(crate) fn observes_reads(&self) -> bool {
        self.observed.load(Ordering::Acquire)
    }

    /// The hooks now (later registrations do not change it).
    fn snapshot(&self) -> Installed<S> {
        self.installed.read().clone()
    }

    /// What runs on values read: the user's hooks, if any.
    fn reader(&self) -> Reader {
        let hooks = self.observed.load(Ordering::Acquire).then(|| Arc::clone(&self.installed.read().users));
        Reader { hooks, sealed: false }
    }

    /// Adds `guards` after the hooks already registered.
    fn extend(&self, guards: Vec<Guard<S>>) {
        let mut installed = self.installed.write();
        let users: Vec<UserHook> = guards.iter().filter_map(Guard::user).collect();
        if !users.is_empty() {
            installed.users = installed.users.iter().cloned().chain(users).collect();
            self.observed.store(true, Ordering::Release);
        }
        installed.all = installed.all.iter().cloned().chain(guards.into_iter().map(Arc::new)).collect();
        self.any.store(!installed.all.is_empty(), Ordering::Release);
    }
}

/// A snapshot of a table's hooks: every guard, and the user's hooks alone.
struct Installed<S: Storage> {
    all: Arc<[Arc<Guard<S>>]>,
    users: Arc<[UserHook]>,
}

impl<S: Storage> Default for Installed<S> {
    fn default() -> Self {
        Self { all: Arc::new([]), users: Arc::new([]) }
    }
}

impl<S: Storage> Clone for Installed<S> {
    fn clone(&self) -> Self {
        Self { all: Arc::clone(&self.all), users: Arc::clone(&self.users) }
    }
}

/// A hook of the user's, and the keys it is for.
#[derive(Clone)]
struct UserHook {
    hook: Arc<dyn Hook>,
    filter: Option<KeyFilter>,
}

impl UserHook {
    fn applies(&self, key: &str) -> bool {
        self.filter.as_ref().is_none_or(|filter| filter.matches(key))
    }
}

/// One registered hook, ready to run: what it checks, and for which keys.
struct Guard<S: Storage> {
    filter: Option<KeyFilter>,
    rule: Ready<S>,
}

/// A registered rule with what storage prepared for it.
enum Ready<S: Storage> {
    User(Arc<dyn Hook>),
    Check(Check),
    Unique { field: Field, indexed: bool, by: String },
    ForeignKey { field: Field, target: S::Table, by: String },
}

impl<S: Storage> Guard<S> {
    /// Prepares `registration` (its field checked as `field`) on `storage` for `table`: an
    /// index for a unique field, the referenced table for a foreign key.
    fn install(storage: &S, table: &Table<S>, registration: &Registration, field: Option<Field>) -> Result<Self> {
        let rule = match (&registration.rule, field) {
            (Rule::User(hook), _) => Ready::User(Arc::clone(hook)),
            (Rule::Check(check), _) => Ready::Check(check.clone()),
            (Rule::Unique(_), Some(field)) => Ready::Unique {
                indexed: storage.index_field(table.handle(), &field.flat(), &field.path())?,
                by: format!("{}{})", hook::UNIQUE_RULE, field.dotted()),
                field,
            },
            (Rule::ForeignKey(reference), Some(field)) => {
                let name = Identifier::new(&reference.table)?;
                Ready::ForeignKey {
                    target: storage.open_table(&name)?,
                    by: format!("{}{} -> {name})", hook::FOREIGN_KEY_RULE, field.dotted()),
                    field,
                }
            }
            (Rule::Unique(_) | Rule::ForeignKey(_), None) => unreachable!("fields are checked before installing"),
        };
        Ok(Self { filter: registration.filter.clone(), rule })
    }

    fn applies(&self, key: &str) -> bool {
        self.filter.as_ref().is_none_or(|filter| filter.matches(key))
    }

    fn user(&self) -> Option<UserHook> {
        match &self.rule {
            Ready::User(hook) => Some(UserHook { hook: Arc::clone(hook), filter: self.filter.clone() }),
            _ => None,
        }
    }
}

/// The field a registration names, checked (before anything is prepared in storage).
fn field_of(registration: &Registration) -> Result<Option<Field>> {
    match &registration.rule {
        Rule::Unique(unique) => Field::new(&unique.field).map(Some),
        Rule::ForeignKey(reference) => {
            Identifier::new(&reference.table)?;
            Field::new(&reference.field).map(Some)
        }
        Rule::User(_) | Rule::Check(_) => Ok(None),
    }
}

/// Registers hooks on a table, after the ones it has: checks them all first, then prepares
/// storage (an index per unique field, each referenced table), then adds them. Runs alone on
/// the writer, outside any transaction, once.
#[derive(Debug)]
pub(crate) struct AddHooks {
    registrations: Vec<Registration>,
}

impl AddHooks {
    /// Registers `registrations`, in order.
    #[must_use]
    pub(crate) fn new(registrations: Vec<Registration>) -> Self {
        Self { registrations }
    }
}

impl<S: Storage> Operation<S> for AddHooks {
    type Output = ();

    fn name(&self) -> &'static str {
        "add_hook"
    }

    fn kind(&self) -> Kind {
        Kind::Exclusive
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<()>> {
        let fields: Vec<Option<Field>> = self.registrations.iter().map(field_of).collect::<Result<_>>()?;
        if table.writes_back() && fields.iter().any(Option::is_some) {
            return Err(Error::validation(
                "unique and foreign-key hooks check inside each write's transaction; \
                 a write-back store stages writes without one",
            ));
        }
        let guards = self
            .registrations
            .iter()
            .zip(fields)
            .map(|(registration, field)| Guard::install(storage, table, registration, field))
            .collect::<Result<Vec<_>>>()?;
        table.hooks().extend(guards);
        Ok(Applied::plain(()))
    }
}

/// Runs `work` (a call into a hook, a job, a step of a transaction: code of the user's): a
/// panic becomes [`Error::Panic`] for this call alone. Every place that contains a panic uses it.
///
/// # Errors
///
/// `work`'s error, or [`Error::Panic`].
pub fn contained<R>(work: impl FnOnce() -> Result<R>) -> Result<R> {
    panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| Err(Error::from_panic(payload.as_ref())))
}

/// `value`, to be stored under `key`, as the table's hooks leave it: checked by each in turn
/// (a refusal is the error), and rewritten by the user's hooks. With `storage`, it runs inside
/// the write's transaction, so checks see the rows as the write will leave them. Without it (a
/// write staged in write-back mode, on the caller's thread), the user's hooks and checks run,
/// and constraints that need the transaction refuse (none can be registered on such a table).
/// Without hooks, `value` itself.
///
/// # Errors
///
/// The refusal ([`Error::Refused`], a hook's own error, [`Error::Panic`]); [`Error::Decode`]
/// for a value that is not JSON; [`Error::Encode`] for a rewritten value that cannot be
/// stored; the backend's error from a lookup.
pub(crate) fn admit<S: Storage>(
    storage: Option<&S>,
    table: &Table<S>,
    key: &str,
    value: &Arc<CachedValue>,
) -> Result<Arc<CachedValue>> {
    if table.hooks().is_empty() {
        return Ok(Arc::clone(value));
    }
    let (mut current, mut rewritten) = (None, false);
    for guard in table.hooks().snapshot().all.iter().filter(|guard| guard.applies(key)) {
        let parsed = match current.take() {
            Some(parsed) => parsed,
            None => Value::clone(&*value.value(key)?),
        };
        current = Some(match (&guard.rule, storage) {
            (Ready::User(hook), _) => {
                rewritten = true;
                contained(|| hook.before_write(key, parsed))?
            }
            (Ready::Check(check), _) => {
                if !contained(|| Ok((check.predicate)(key, &parsed)))? {
                    return Err(Error::refused(key, &*check.by));
                }
                parsed
            }
            (Ready::Unique { field, indexed, by }, Some(storage)) => {
                check_unique(storage, table, key, &parsed, field, *indexed, guard.filter.as_ref(), by)?;
                parsed
            }
            (Ready::ForeignKey { field, target, by }, Some(storage)) => {
                check_reference(storage, target, key, &parsed, field, by)?;
                parsed
            }
            (Ready::Unique { by, .. } | Ready::ForeignKey { by, .. }, None) => {
                return Err(Error::validation(format!("{by} cannot be checked on a write-back store")));
            }
        });
    }
    // Only the user's hooks rewrite: without one, the value stands as it came.
    match current {
        Some(admitted) if rewritten && admitted != *value.value(key)? => CachedValue::from_value(key, admitted),
        _ => Ok(Arc::clone(value)),
    }
}

/// Refuses `value` for `key` if another key (among those `filter` matches) has the same value
/// at `field`: found through the backend's index when there is one and the table is not
/// encrypted, else by reading every row.
#[allow(clippy::too_many_arguments)]
fn check_unique<S: Storage>(
    storage: &S,
    table: &Table<S>,
    key: &str,
    value: &Value,
    field: &Field,
    indexed: bool,
    filter: Option<&KeyFilter>,
    by: &str,
) -> Result<()> {
    let Some(wanted) = field.find(value) else { return Ok(()) };
    if wanted.is_object() || wanted.is_array() {
        // SQLite's index compares their text, where key order matters; a map compares without
        // it: the two checks would disagree. A unique field holds one scalar.
        return Err(Error::validation(format!(
            "{by} compares strings, numbers and booleans: the value of key {key:?} holds an {} there",
            if wanted.is_object() { "object" } else { "array" }
        )));
    }
    storage.lock_field_value(table.handle(), &field.path(), &canonical(wanted))?;
    let codec = table.codec();
    let candidate = |other: &str| other != key && filter.is_none_or(|filter| filter.matches(other));
    let clashes = |other: &str, cached: &CachedValue| {
        cached.value(other).is_ok_and(|v| field.find(&v).is_some_and(|v| hook::same(v, wanted)))
    };
    let mut clash = false;
    if indexed && !codec.is_encrypted() {
        let json = wanted.to_string();
        // A backend that checks in the write's own message at commit needs no lookup now (a
        // prefix is all it can filter by; a pattern is checked here).
        if let Some(prefix) = filter.map_or(Some(None), |filter| filter.as_prefix().map(Some)) {
            let path = field.path();
            let duplicate = Duplicate { key, path: &path, json: &json, prefix, by };
            if storage.refuse_duplicate_at_commit(table.handle(), &duplicate)? {
                return Ok(());
            }
        }
        for other in storage.keys_where(table.handle(), &field.path(), &json)? {
            if candidate(&other)
                && let Some(stored) = storage.get(table.handle(), &other)?
            {
                clash |= clashes(&other, &codec.read_owned(stored));
            }
        }
    } else {
        storage.scan(table.handle(), &mut |other, stored| {
            clash = clash || (candidate(other) && clashes(other, &codec.read(stored)));
        })?;
    }
    if clash { Err(Error::refused(key, by)) } else { Ok(()) }
}

/// A scalar field value as the text a unique check locks on: numbers by value (`1` and `1.0`
/// lock alike; two large integers that round to one `f64` share a lock, which only makes their
/// writers wait for each other), strings and booleans as they are, each kind apart.
fn canonical(value: &Value) -> String {
    match value {
        Value::Number(number) => format!("n:{}", number.as_f64().unwrap_or(f64::NAN)),
        Value::String(text) => format!("s:{text}"),
        other => format!("j:{other}"),
    }
}

/// Refuses `value` for `key` unless its value at `field` is a key of `target` (or absent).
fn check_reference<S: Storage>(
    storage: &S,
    target: &S::Table,
    key: &str,
    value: &Value,
    field: &Field,
    by: &str,
) -> Result<()> {
    match field.find(value) {
        None => Ok(()),
        Some(Value::String(reference)) if storage.contains(target, reference)? => Ok(()),
        Some(_) => Err(Error::refused(key, by)),
    }
}

/// Asks the table's hooks whether `key`, which exists, may be deleted.
///
/// # Errors
///
/// The refusal of the first hook that refuses.
pub(crate) fn may_delete<S: Storage>(table: &Table<S>, key: &str) -> Result<()> {
    for user in table.hooks().snapshot().users.iter().filter(|user| user.applies(key)) {
        contained(|| user.hook.before_delete(key))?;
    }
    Ok(())
}

/// Deletes `key` once the table's hooks allow it, noting the delete for them; `false` if the
/// key was absent (the hooks are then not asked).
///
/// # Errors
///
/// A hook's refusal; the backend's error.
pub(crate) fn remove<S: Storage>(storage: &S, table: &Table<S>, key: &str, events: &mut Events) -> Result<bool> {
    if !events.observed() {
        return storage.delete(table.handle(), key);
    }
    if !storage.contains(table.handle(), key)? {
        return Ok(false);
    }
    may_delete(table, key)?;
    storage.delete(table.handle(), key)?;
    events.deleted(key);
    Ok(true)
}

/// What runs on the values a read hands to its caller: the `after_read` of the table's hooks,
/// taken when the read began, and whether the table is encrypted (then a value that does not
/// fit the caller's type fails without its plaintext in the error). Cheap to clone; does
/// nothing when the table has no hooks of the user's.
#[derive(Clone, Default)]
pub struct Reader {
    hooks: Option<Arc<[UserHook]>>,
    sealed: bool,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("hooks", &self.hooks.as_ref().map_or(0, |hooks| hooks.len()))
            .field("sealed", &self.sealed)
            .finish()
    }
}

impl Reader {
    /// This reader for a table whose values are encrypted (`sealed`) or not.
    pub(crate) fn sealed(self, sealed: bool) -> Self {
        Self { sealed, ..self }
    }

    /// `error`, without the plaintext serde may quote in it when the table is encrypted.
    pub(crate) fn guard(&self, error: Error) -> Error {
        if self.sealed { error.without_value() } else { error }
    }

    /// `value`, read from `key`, through the hooks and into the caller's type.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] naming `key` when the value does not fit `T`; a hook's error.
    pub fn decode<T: DeserializeOwned>(&self, key: &str, value: &CachedValue) -> Result<T> {
        let Some(hooks) = self.hooks.as_ref().filter(|hooks| hooks.iter().any(|user| user.applies(key))) else {
            return value.decode(key).map_err(|error| self.guard(error));
        };
        let mut current = Value::clone(&*value.value(key)?);
        for user in hooks.iter().filter(|user| user.applies(key)) {
            current = contained(|| user.hook.after_read(key, current))?;
        }
        serde_json::from_value(current).map_err(|source| self.guard(Error::Decode { key: key.to_owned(), source }))
    }

    /// As [`decode`](Self::decode), for a point read of a type that can be cloned: when no
    /// hook applies, the first decoded `T` is kept beside the text and later reads clone it.
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode).
    pub fn decode_cloned<T>(&self, key: &str, value: &CachedValue) -> Result<T>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if self.applies(key) {
            self.decode(key, value)
        } else {
            value.decode_cloned(key).map_err(|error| self.guard(error))
        }
    }

    /// Whether a hook's `after_read` may change what a read of `key` returns.
    fn applies(&self, key: &str) -> bool {
        self.hooks.as_ref().is_some_and(|hooks| hooks.iter().any(|user| user.applies(key)))
    }

    /// `value`, read from `key`, through the hooks, shared: the cache's own parsed value when
    /// no hook applies to `key`.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] naming `key` when the value is not JSON; a hook's error.
    pub fn shared(&self, key: &str, value: &CachedValue) -> Result<Arc<Value>> {
        if self.applies(key) { self.decode(key, value).map(Arc::new) } else { value.value(key) }
    }

    /// Rows read, through the hooks and into the caller's type, in order.
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode), for the first row that fails.
    pub fn decode_rows<T: DeserializeOwned>(&self, rows: Vec<(String, Arc<CachedValue>)>) -> Result<Vec<(String, T)>> {
        rows.into_iter()
            .map(|(key, value)| {
                let decoded = self.decode(&key, &value)?;
                Ok((key, decoded))
            })
            .collect()
    }
}

impl<S: Storage> Table<S> {
    /// What runs on the values a read of this table hands to its caller.
    #[must_use]
    pub fn reader(&self) -> Reader {
        self.hooks().reader().sealed(self.is_encrypted())
    }

    /// `value`, a result an operation computed from the stored row (`increment`, `patch`),
    /// as the caller's type; on an encrypted table the error does not quote the plaintext.
    /// No hook runs on it.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] naming `key`.
    pub fn decode_result<T: DeserializeOwned>(&self, key: &str, value: &CachedValue) -> Result<T> {
        value.decode(key).map_err(|error| self.reader().guard(error))
    }

    /// `value`, read from `key`, through the table's hooks and into the caller's type.
    ///
    /// # Errors
    ///
    /// As [`Reader::decode`].
    pub fn decode<T: DeserializeOwned>(&self, key: &str, value: &CachedValue) -> Result<T> {
        self.reader().decode(key, value)
    }

    /// `value`, read from `key` by a point read of a type that can be cloned: as
    /// [`Reader::decode_cloned`].
    ///
    /// # Errors
    ///
    /// As [`Reader::decode`].
    pub fn decode_cloned<T>(&self, key: &str, value: &CachedValue) -> Result<T>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.reader().decode_cloned(key, value)
    }
}

/// The writes and deletes of one operation that the user's hooks must hear of once it has
/// committed ([`Hook::on_write_success`], [`Hook::on_delete_success`]).
pub(crate) struct Events {
    /// The user's hooks, if any (`None`: no allocation for the common write without hooks).
    hooks: Option<Arc<[UserHook]>>,
    happened: Vec<Event>,
}

enum Event {
    Written(Box<str>, Arc<CachedValue>),
    Deleted(Box<str>),
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events").field("hooks", &self.users().len()).field("events", &self.happened.len()).finish()
    }
}

impl Events {
    /// The events of an operation on `table`.
    pub(crate) fn of<S: Storage>(table: &Table<S>) -> Self {
        Self::of_hooks(table.hooks())
    }

    /// The events of an operation on the table whose hooks are `hooks`.
    pub(crate) fn of_hooks<S: Storage>(hooks: &Hooks<S>) -> Self {
        Self { hooks: hooks.reader().hooks, happened: Vec::new() }
    }

    fn users(&self) -> &[UserHook] {
        self.hooks.as_deref().unwrap_or_default()
    }

    /// Whether any hook listens (deletes must then be checked and noted one by one).
    pub(crate) fn observed(&self) -> bool {
        !self.users().is_empty()
    }

    /// Notes that `value` was stored under `key`.
    pub(crate) fn written(&mut self, key: &str, value: &Arc<CachedValue>) {
        if self.users().iter().any(|user| user.applies(key)) {
            self.happened.push(Event::Written(key.into(), Arc::clone(value)));
        }
    }

    /// Notes that `key` was deleted.
    pub(crate) fn deleted(&mut self, key: &str) {
        if self.users().iter().any(|user| user.applies(key)) {
            self.happened.push(Event::Deleted(key.into()));
        }
    }

    /// The notices as a change applied after the commit.
    pub(crate) fn into_change(self) -> CacheChange {
        if self.happened.is_empty() { CacheChange::none() } else { CacheChange::new(Change::Notify(self)) }
    }

    /// Tells each hook, in registration order, of each event, in order. The writes have
    /// committed, so a hook that panics is logged and the others still hear.
    pub(crate) fn notify(self) {
        for event in &self.happened {
            for user in self.users() {
                let outcome = match event {
                    Event::Written(key, value) if user.applies(key) => match value.value(key) {
                        Ok(value) => panic::catch_unwind(AssertUnwindSafe(|| user.hook.on_write_success(key, &value))),
                        Err(_) => Ok(()),
                    },
                    Event::Deleted(key) if user.applies(key) => {
                        panic::catch_unwind(AssertUnwindSafe(|| user.hook.on_delete_success(key)))
                    }
                    _ => Ok(()),
                };
                if let Err(payload) = outcome {
                    let error = Error::from_panic(payload.as_ref());
                    tracing::error!(%error, "a hook panicked after a committed write; the write stands");
                }
            }
        }
    }
}

impl<R> Applied<R> {
    /// This answer, with the hooks to tell once it has committed.
    pub(crate) fn notifying(self, events: Events) -> Self {
        Self { output: self.output, change: self.change.then(events.into_change()) }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::TableSettings;
    use crate::hook::HookExt;
    use crate::storage::SqliteStorage;

    struct Upper;

    impl Hook for Upper {
        fn after_read(&self, _key: &str, value: Value) -> Result<Value> {
            Ok(json!(value.as_str().map(str::to_uppercase)))
        }
    }

    fn table(storage: &SqliteStorage) -> Table<SqliteStorage> {
        let name = Identifier::new("data").unwrap();
        let handle = storage.open_table(&name).unwrap();
        let settings = TableSettings::new(crate::NanaSQLite::builder(":memory:").options()).unwrap();
        Table::new(name, handle, settings, Arc::default())
    }

    fn add(
        storage: &mut SqliteStorage,
        table: &Table<SqliteStorage>,
        registration: impl Into<Registration>,
    ) -> Result<()> {
        AddHooks::new(vec![registration.into()]).run(storage, table).map(|applied| applied.output)
    }

    #[test]
    fn without_hooks_values_pass_untouched() {
        let storage = SqliteStorage::open(":memory:", &crate::storage::ConnectionOptions::default()).unwrap();
        let table = table(&storage);
        let value = CachedValue::new("\"x\"");
        assert!(Arc::ptr_eq(&admit(Some(&storage), &table, "k", &value).unwrap(), &value));
        assert_eq!(table.decode::<String>("k", &value).unwrap(), "x");
        assert!(!Events::of(&table).observed());
    }

    #[test]
    fn a_reader_runs_only_the_hooks_for_its_key() {
        let mut storage = SqliteStorage::open(":memory:", &crate::storage::ConnectionOptions::default()).unwrap();
        let table = table(&storage);
        add(&mut storage, &table, Upper.only(KeyFilter::prefix("up:"))).unwrap();
        let value = CachedValue::new("\"x\"");
        assert_eq!(table.decode::<String>("up:1", &value).unwrap(), "X");
        assert_eq!(table.decode::<String>("down", &value).unwrap(), "x");
    }

    #[test]
    fn a_bad_registration_adds_nothing() {
        let mut storage = SqliteStorage::open(":memory:", &crate::storage::ConnectionOptions::default()).unwrap();
        let table = table(&storage);
        let batch = vec![Registration::from(Upper), hook::unique("e-mail").into()];
        assert!(matches!(AddHooks::new(batch).run(&mut storage, &table), Err(Error::Validation { .. })));
        assert!(table.hooks().is_empty());
        let bad_table = hook::foreign_key("owner", "sqlite_master");
        assert!(add(&mut storage, &table, bad_table).is_err());
        assert!(table.hooks().is_empty());
    }

    #[test]
    fn a_panicking_hook_is_an_error_for_its_call() {
        struct Panics;
        impl Hook for Panics {
            fn before_write(&self, _key: &str, _value: Value) -> Result<Value> {
                panic!("hook bug")
            }
        }
        let mut storage = SqliteStorage::open(":memory:", &crate::storage::ConnectionOptions::default()).unwrap();
        let table = table(&storage);
        add(&mut storage, &table, Panics).unwrap();
        let error = admit(Some(&storage), &table, "k", &CachedValue::new("1")).unwrap_err();
        assert!(matches!(&error, Error::Panic { message } if message == "hook bug"), "{error}");
    }

    #[test]
    fn a_unique_field_is_looked_up_through_its_index() {
        let mut storage = SqliteStorage::open(":memory:", &crate::storage::ConnectionOptions::default()).unwrap();
        let table = table(&storage);
        add(&mut storage, &table, hook::unique("email")).unwrap();
        let plan: Vec<String> = storage
            .with_connection(|conn| {
                let sql = "EXPLAIN QUERY PLAN SELECT key FROM \"data\" \
                           WHERE json_extract(CASE WHEN json_valid(value) THEN value END, '$.email') = json_extract(?1, '$')";
                let mut statement = conn.prepare(sql)?;
                statement.query_map(["\"a\""], |row| row.get::<_, String>(3))?.collect()
            })
            .unwrap();
        assert!(
            plan.iter().any(
                |step| step.contains("USING INDEX \"data_by_email\"") || step.contains("USING INDEX data_by_email")
            ),
            "{plan:?}"
        );
    }
}
