//! Hooks: code that runs around a table's writes, reads and deletes, and the ready-made
//! constraints built on them.
//!
//! A [`Hook`] is registered on a table (the builder's [`hook`](crate::Builder::hook), or
//! `add_hook` on an open store) and runs for every handle on that table. Hooks run in the order
//! they were registered:
//!
//! - [`before_write`](Hook::before_write) and [`before_delete`](Hook::before_delete) run on the
//!   thread that runs the write (the caller's, under the sync store's lock; the writer thread of
//!   the async store), inside the write's transaction, so a check sees the rows as the write will
//!   leave them and two writers cannot both pass it. Returning an error (or panicking) refuses
//!   the write: the call fails, nothing is written, nothing is cached. One refused row refuses
//!   its whole batch; [`batch_update_partial`](crate::NanaSQLite::batch_update_partial) reports it
//!   with the row instead.
//! - [`on_write_success`](Hook::on_write_success) and
//!   [`on_delete_success`](Hook::on_delete_success) run once the write has committed, on the
//!   same thread; a panic there is logged and leaves the committed write and the call's answer
//!   alone.
//! - [`after_read`](Hook::after_read) runs on every value a read hands to the caller (`get`,
//!   `batch_get`, `pop`, `setdefault`, `items`, scans), on the caller's thread, whether the value
//!   came from the cache or the file.
//!
//! Writes that bypass the key/value methods bypass hooks too: the SQL helpers, `call`,
//! `import_rows`, `restore`, expired rows deleted by a TTL cache, and other programs writing the
//! file. A hook must not call the store it is registered on (the sync store answers such a call
//! with [`Error::Transaction`] instead of waiting for itself).
//!
//! # Examples
//!
//! ```
//! use nanasqlite_core::hook::{self, Hook, KeyFilter};
//! use nanasqlite_core::{NanaSQLite, Result};
//! use serde_json::{json, Value};
//!
//! /// Stores e-mail addresses in lower case.
//! struct LowerCaseEmail;
//!
//! impl Hook for LowerCaseEmail {
//!     fn before_write(&self, _key: &str, mut value: Value) -> Result<Value> {
//!         if let Some(email) = value["email"].as_str() {
//!             value["email"] = json!(email.to_lowercase());
//!         }
//!         Ok(value)
//!     }
//! }
//!
//! let db = NanaSQLite::builder(":memory:")
//!     .hook(LowerCaseEmail)
//!     .hook(hook::check(|_key, v: &Value| v["age"].as_i64().is_some_and(|age| age >= 0)).named("age >= 0"))
//!     .hook(hook::unique("email").only(KeyFilter::prefix("user:")))
//!     .open()?;
//!
//! db.set("user:1", &json!({"email": "Ann@Example.com", "age": 30}))?;
//! assert_eq!(db.get::<Value>("user:1")?.unwrap()["email"], "ann@example.com");
//!
//! let refused = db.set("user:2", &json!({"email": "ann@example.com", "age": 40})).unwrap_err();
//! assert!(refused.is_refused());
//! assert!(db.set("user:3", &json!({"email": "bob@example.com", "age": -1})).unwrap_err().is_refused());
//! assert_eq!(db.len()?, 1);
//! # Ok::<(), nanasqlite_core::Error>(())
//! ```

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Result};

/// Code that runs around a table's writes, reads and deletes; every method defaults to doing
/// nothing, so an implementation names only what it needs. See the [module](self) for where
/// and when each runs.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use nanasqlite_core::{hook::Hook, NanaSQLite};
/// use serde_json::Value;
///
/// #[derive(Default)]
/// struct Audit {
///     writes: AtomicUsize,
/// }
///
/// impl Hook for Audit {
///     fn on_write_success(&self, _key: &str, _value: &Value) {
///         self.writes.fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// let audit = Arc::new(Audit::default());
/// let db = NanaSQLite::open(":memory:")?;
/// db.add_hook(Arc::clone(&audit))?;
/// db.set("a", &1)?;
/// db.batch_update([("b", 2), ("c", 3)])?;
/// assert_eq!(audit.writes.load(Ordering::Relaxed), 3);
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
pub trait Hook: Send + Sync + 'static {
    /// Checks, and may rewrite, `value` before it is stored under `key`: the value returned is
    /// the one stored, cached and handed to the next hook. An error refuses the write (return
    /// [`Error::refused`] to say which rule refused it).
    ///
    /// # Errors
    ///
    /// Whatever refuses the write.
    fn before_write(&self, key: &str, value: Value) -> Result<Value> {
        let _ = key;
        Ok(value)
    }

    /// May rewrite `value`, read from `key`, before the caller gets it. An error fails the read.
    ///
    /// # Errors
    ///
    /// Whatever fails the read.
    fn after_read(&self, key: &str, value: Value) -> Result<Value> {
        let _ = key;
        Ok(value)
    }

    /// Checks that `key` may be deleted (it exists). An error refuses the delete.
    ///
    /// # Errors
    ///
    /// Whatever refuses the delete.
    fn before_delete(&self, key: &str) -> Result<()> {
        let _ = key;
        Ok(())
    }

    /// Learns that `value` was stored under `key` and committed.
    fn on_write_success(&self, key: &str, value: &Value) {
        let _ = (key, value);
    }

    /// Learns that `key` was deleted and the delete committed.
    fn on_delete_success(&self, key: &str) {
        let _ = key;
    }
}

/// A shared hook is a hook, so the caller can keep a handle on it (to read what it recorded).
impl<H: Hook + ?Sized> Hook for Arc<H> {
    fn before_write(&self, key: &str, value: Value) -> Result<Value> {
        (**self).before_write(key, value)
    }

    fn after_read(&self, key: &str, value: Value) -> Result<Value> {
        (**self).after_read(key, value)
    }

    fn before_delete(&self, key: &str) -> Result<()> {
        (**self).before_delete(key)
    }

    fn on_write_success(&self, key: &str, value: &Value) {
        (**self).on_write_success(key, value);
    }

    fn on_delete_success(&self, key: &str) {
        (**self).on_delete_success(key);
    }
}

/// Which keys a hook applies to: those starting with a prefix, or those a regular expression
/// finds a match in (anywhere in the key, as Python's `re.search`).
///
/// Patterns use the [`regex`] crate, which matches in time linear in the key whatever the
/// pattern, so a pattern such as `(a+)+b` cannot stall a write (Python NanaSQLite refuses such
/// patterns instead).
///
/// # Examples
///
/// ```
/// use nanasqlite_core::hook::KeyFilter;
///
/// assert!(KeyFilter::prefix("order:").matches("order:17"));
/// let numbered = KeyFilter::pattern(r"^user_\d+$")?;
/// assert!(numbered.matches("user_42"));
/// assert!(!numbered.matches("user_x"));
/// assert!(KeyFilter::pattern("(unclosed").is_err());
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
#[derive(Clone)]
pub struct KeyFilter(Filter);

#[derive(Clone)]
enum Filter {
    Prefix(Box<str>),
    #[cfg(feature = "key-patterns")]
    Pattern(regex::Regex),
}

/// The largest compiled pattern accepted, so that a hostile pattern cannot take the memory.
#[cfg(feature = "key-patterns")]
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

impl KeyFilter {
    /// The keys starting with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self(Filter::Prefix(prefix.into().into_boxed_str()))
    }

    /// The keys in which `pattern` finds a match (anchor it with `^…$` to match whole keys).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a pattern that does not compile, or compiles too large.
    #[cfg(feature = "key-patterns")]
    #[cfg_attr(docsrs, doc(cfg(feature = "key-patterns")))]
    pub fn pattern(pattern: &str) -> Result<Self> {
        regex::RegexBuilder::new(pattern)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map(|regex| Self(Filter::Pattern(regex)))
            .map_err(|error| Error::validation(format!("invalid key pattern: {error}")))
    }

    /// The prefix, for a filter of the keys starting with one.
    pub(crate) fn as_prefix(&self) -> Option<&str> {
        match &self.0 {
            Filter::Prefix(prefix) => Some(prefix),
            #[cfg(feature = "key-patterns")]
            Filter::Pattern(_) => None,
        }
    }

    /// Whether `key` is one of the filter's keys.
    #[must_use]
    pub fn matches(&self, key: &str) -> bool {
        match &self.0 {
            Filter::Prefix(prefix) => key.starts_with(&**prefix),
            #[cfg(feature = "key-patterns")]
            Filter::Pattern(regex) => regex.is_match(key),
        }
    }
}

impl fmt::Debug for KeyFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Filter::Prefix(prefix) => f.debug_tuple("KeyFilter::prefix").field(prefix).finish(),
            #[cfg(feature = "key-patterns")]
            Filter::Pattern(regex) => f.debug_tuple("KeyFilter::pattern").field(&regex.as_str()).finish(),
        }
    }
}

/// A check on written values: the write is refused unless `predicate(key, value)` is true.
///
/// # Examples
///
/// ```
/// use nanasqlite_core::{hook, NanaSQLite};
/// use serde_json::{json, Value};
///
/// let db = NanaSQLite::builder(":memory:")
///     .hook(hook::check(|_key, v: &Value| v["qty"].as_u64().is_some()).named("qty is a count"))
///     .open()?;
/// let error = db.set("line", &json!({"qty": -2})).unwrap_err();
/// assert_eq!(error.to_string(), r#"the write of key "line" was refused by qty is a count"#);
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
pub fn check<F>(predicate: F) -> Check
where
    F: Fn(&str, &Value) -> bool + Send + Sync + 'static,
{
    Check { predicate: Arc::new(predicate), by: "check".into(), filter: None }
}

/// How the refusals of a unique field name their rule: `unique(email)`.
pub(crate) const UNIQUE_RULE: &str = "unique(";

/// How the refusals of a foreign key name their rule: `foreign_key(group_id -> groups)`.
pub(crate) const FOREIGN_KEY_RULE: &str = "foreign_key(";

/// A field that must be unique across the table: a write is refused when another key's value
/// has the same value at `field` (a name, or a dotted path such as `"address.city"`). Values
/// without the field, or with `null` there, are not checked; overwriting a key with its own
/// field value is allowed. Numbers compare by value (`1` and `1.0` are the same, as in Python).
/// The field holds a string, a number or a boolean: a value with an object or an array there
/// is refused with [`Error::Validation`] (which of two objects with
/// the same members in another order would be the same value?).
///
/// The check is one lookup in an index on that field, which registering the hook creates in the
/// file (`CREATE INDEX IF NOT EXISTS "<table>_by_<field>"`; programs writing that table then
/// need SQLite 3.38 or later, which has JSON built in). On an encrypted table, which the
/// database cannot see into, each write reads the whole table instead.
///
/// With [`only`](Unique::only), the field is unique among the filtered keys alone.
///
/// # Examples
///
/// ```
/// use nanasqlite_core::{hook, NanaSQLite};
/// use serde_json::json;
///
/// let db = NanaSQLite::builder(":memory:").hook(hook::unique("email")).open()?;
/// db.set("u1", &json!({"email": "a@example.com"}))?;
/// db.set("u1", &json!({"email": "a@example.com", "name": "Ann"}))?; // the same key
/// assert!(db.set("u2", &json!({"email": "a@example.com"})).unwrap_err().is_refused());
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
pub fn unique(field: &str) -> Unique {
    Unique { field: field.to_owned(), filter: None }
}

/// A reference to another table of the same file: a write is refused unless the value at
/// `field` is a key of `table` (read inside the write's transaction). Values without the field,
/// or with `null` there, are not checked; any other non-string is refused. As in Python
/// NanaSQLite, deleting the referenced key later is not prevented.
///
/// The referenced table is created if missing, as [`table`](crate::NanaSQLite::table) would.
///
/// # Examples
///
/// ```
/// use nanasqlite_core::hook::{self, KeyFilter};
/// use nanasqlite_core::NanaSQLite;
/// use serde_json::json;
///
/// let db = NanaSQLite::builder(":memory:")
///     .hook(hook::foreign_key("owner", "users").only(KeyFilter::prefix("order:")))
///     .open()?;
/// db.table("users")?.set("ann", &json!({"name": "Ann"}))?;
/// db.set("order:1", &json!({"owner": "ann"}))?;
/// assert!(db.set("order:2", &json!({"owner": "bob"})).unwrap_err().is_refused());
/// db.set("note", &json!({"owner": "bob"}))?; // not an order: not checked
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
pub fn foreign_key(field: &str, table: &str) -> ForeignKey {
    ForeignKey { field: field.to_owned(), table: table.to_owned(), filter: None }
}

/// The predicate of a [`Check`]: `(key, value) -> accepted`.
type Predicate = Arc<dyn Fn(&str, &Value) -> bool + Send + Sync>;

/// A value check made by [`check`].
#[derive(Clone)]
pub struct Check {
    pub(crate) predicate: Predicate,
    pub(crate) by: Arc<str>,
    filter: Option<KeyFilter>,
}

impl Check {
    /// Names the rule, for the [`Error::Refused`] it returns (default `"check"`). Keep values
    /// out of it: the name ends up in logs and responses.
    pub fn named(mut self, by: impl Into<String>) -> Self {
        self.by = by.into().into();
        self
    }

    /// Checks only the keys `filter` matches.
    pub fn only(mut self, filter: KeyFilter) -> Self {
        self.filter = Some(filter);
        self
    }
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check").field("by", &self.by).field("filter", &self.filter).finish_non_exhaustive()
    }
}

/// A unique field, made by [`unique`].
#[derive(Clone, Debug)]
pub struct Unique {
    pub(crate) field: String,
    filter: Option<KeyFilter>,
}

impl Unique {
    /// Checks only the keys `filter` matches, against each other.
    pub fn only(mut self, filter: KeyFilter) -> Self {
        self.filter = Some(filter);
        self
    }
}

/// A reference to another table, made by [`foreign_key`].
#[derive(Clone, Debug)]
pub struct ForeignKey {
    pub(crate) field: String,
    pub(crate) table: String,
    filter: Option<KeyFilter>,
}

impl ForeignKey {
    /// Checks only the keys `filter` matches.
    pub fn only(mut self, filter: KeyFilter) -> Self {
        self.filter = Some(filter);
        self
    }
}

/// A hook ready to be registered: what the builder's `hook` and the stores' `add_hook` take.
/// Made from any [`Hook`], from [`check`], [`unique`] and [`foreign_key`], or by
/// [`HookExt::only`] for a hook limited to some keys.
#[derive(Clone)]
pub struct Registration {
    pub(crate) rule: Rule,
    pub(crate) filter: Option<KeyFilter>,
}

/// What a registered hook does.
#[derive(Clone)]
pub(crate) enum Rule {
    User(Arc<dyn Hook>),
    Check(Check),
    Unique(Unique),
    ForeignKey(ForeignKey),
}

impl Registration {
    /// This hook, for the keys `filter` matches only.
    #[must_use]
    pub fn only(mut self, filter: KeyFilter) -> Self {
        self.filter = Some(filter);
        self
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Registration");
        match &self.rule {
            Rule::User(_) => debug.field("rule", &"hook"),
            Rule::Check(check) => debug.field("rule", check),
            Rule::Unique(unique) => debug.field("rule", unique),
            Rule::ForeignKey(reference) => debug.field("rule", reference),
        };
        debug.field("filter", &self.filter).finish()
    }
}

impl<H: Hook> From<H> for Registration {
    fn from(hook: H) -> Self {
        Self { rule: Rule::User(Arc::new(hook)), filter: None }
    }
}

impl From<Check> for Registration {
    fn from(mut check: Check) -> Self {
        let filter = check.filter.take();
        Self { rule: Rule::Check(check), filter }
    }
}

impl From<Unique> for Registration {
    fn from(mut unique: Unique) -> Self {
        let filter = unique.filter.take();
        Self { rule: Rule::Unique(unique), filter }
    }
}

impl From<ForeignKey> for Registration {
    fn from(mut reference: ForeignKey) -> Self {
        let filter = reference.filter.take();
        Self { rule: Rule::ForeignKey(reference), filter }
    }
}

/// [`only`](HookExt::only) for every [`Hook`].
pub trait HookExt: Hook + Sized {
    /// This hook, for the keys `filter` matches only.
    ///
    /// # Examples
    ///
    /// ```
    /// use nanasqlite_core::hook::{Hook, HookExt, KeyFilter};
    /// use nanasqlite_core::{Error, NanaSQLite, Result};
    ///
    /// struct ReadOnly;
    /// impl Hook for ReadOnly {
    ///     fn before_delete(&self, key: &str) -> Result<()> {
    ///         Err(Error::refused(key, "read-only keys"))
    ///     }
    /// }
    ///
    /// let db = NanaSQLite::builder(":memory:").hook(ReadOnly.only(KeyFilter::prefix("sys:"))).open()?;
    /// db.set("sys:version", &1)?;
    /// db.set("tmp", &1)?;
    /// assert!(db.delete("sys:version").unwrap_err().is_refused());
    /// assert!(db.delete("tmp")?);
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    fn only(self, filter: KeyFilter) -> Registration {
        Registration::from(self).only(filter)
    }
}

impl<H: Hook> HookExt for H {}

/// A field named by a hook (`email`, `address.city`), checked: each dot-separated part is an
/// ASCII identifier, so the field can be written into a JSON path and an index name as it is.
#[derive(Clone, Debug)]
pub(crate) struct Field {
    parts: Vec<Box<str>>,
}

impl Field {
    pub(crate) fn new(field: &str) -> Result<Self> {
        let part_ok = |part: &str| {
            part.chars().next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if field.split('.').all(part_ok) {
            Ok(Self { parts: field.split('.').map(Box::from).collect() })
        } else {
            Err(Error::validation(format!(
                "invalid hook field {field:?}: use ASCII names ([A-Za-z_][A-Za-z0-9_]*) joined by dots"
            )))
        }
    }

    /// The SQLite JSON path of the field (`$.address.city`).
    pub(crate) fn path(&self) -> String {
        format!("$.{}", self.parts.join("."))
    }

    /// The field as one name (`address_city`), for an index name.
    pub(crate) fn flat(&self) -> String {
        self.parts.join("_")
    }

    /// The field as it was given.
    pub(crate) fn dotted(&self) -> String {
        self.parts.join(".")
    }

    /// The field's value in `value`; `None` when absent or `null`.
    pub(crate) fn find<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.parts.iter().try_fold(value, |value, part| value.get(&**part)).filter(|found| !found.is_null())
    }
}

/// Whether two JSON values are the same field value: numbers by value (`1 == 1.0`), the rest
/// exactly.
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), ..) => x == y,
            (.., Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prefix_and_pattern_filters_match_what_they_say() {
        let prefix = KeyFilter::prefix("order:");
        assert!(prefix.matches("order:") && prefix.matches("order:1"));
        assert!(!prefix.matches("orders") && !prefix.matches("x:order:1"));
        let pattern = KeyFilter::pattern(r"_\d+").unwrap();
        assert!(pattern.matches("user_42") && pattern.matches("a_1_b"), "searches anywhere in the key");
        assert!(!pattern.matches("user_x"));
    }

    #[test]
    fn patterns_python_refuses_as_redos_run_in_linear_time() {
        for dangerous in ["(a+)+", "(a*)*", "(a+)+b", "(a|a)*"] {
            let filter = KeyFilter::pattern(dangerous).unwrap();
            let key = format!("{}c", "a".repeat(100_000));
            assert_eq!(filter.matches(&key), dangerous != "(a+)+b", "{dangerous}");
        }
        for accepted in [r"user_\d+", "^[a-z]+$", r"data_\w*", "[a-zA-Z0-9_]+"] {
            assert!(KeyFilter::pattern(accepted).is_ok(), "{accepted}");
        }
    }

    #[test]
    fn bad_patterns_are_validation_errors() {
        for bad in ["(unclosed", "[z-a]", "a{99999}{99999}"] {
            let error = KeyFilter::pattern(bad).unwrap_err();
            assert!(matches!(error, Error::Validation { .. }), "{bad}: {error}");
        }
    }

    #[test]
    fn fields_are_plain_dotted_names() {
        let field = Field::new("address.city").unwrap();
        assert_eq!(
            (field.path(), field.flat(), field.dotted()),
            ("$.address.city".into(), "address_city".into(), "address.city".into())
        );
        assert_eq!(field.find(&json!({"address": {"city": "Oslo"}})), Some(&json!("Oslo")));
        assert_eq!(field.find(&json!({"address": {"city": null}})), None);
        assert_eq!(field.find(&json!({"address": "Oslo"})), None);
        for bad in ["", "a..b", "a.", "1a", "e-mail", "a'); DROP TABLE x; --", "$.a", "a[0]"] {
            assert!(Field::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(same(&json!(1), &json!(1.0)));
        assert!(same(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!same(&json!(1), &json!(true)));
        assert!(!same(&json!("1"), &json!(1)));
        assert!(same(&json!({"a": [1]}), &json!({"a": [1]})));
    }

    #[test]
    fn registrations_keep_their_filter() {
        let registration = Registration::from(unique("email").only(KeyFilter::prefix("u:")));
        assert!(registration.filter.is_some_and(|filter| filter.matches("u:1")));
        assert!(matches!(Registration::from(check(|_, _| true)).rule, Rule::Check(_)));
    }
}
