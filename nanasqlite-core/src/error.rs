//! The one error type of the workspace.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::ErrorCode;

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in nanasqlite.
///
/// Messages are lowercase and say what happened, including the cause's own message (SQLite's
/// "UNIQUE constraint failed: users.email", serde's "invalid type: …"); the cause itself is
/// also reachable through [`source`](std::error::Error::source). For the common cases there
/// are questions that need no dependency on rusqlite: [`is_closed`](Self::is_closed),
/// [`is_constraint`](Self::is_constraint), [`is_unique_violation`](Self::is_unique_violation),
/// [`is_busy`](Self::is_busy).
///
/// # Examples
///
/// ```
/// use nanasqlite_core::NanaSQLite;
/// use serde_json::json;
///
/// let db = NanaSQLite::open(":memory:")?;
/// db.create_table("users", &[("id", "INTEGER PRIMARY KEY"), ("email", "TEXT UNIQUE")])?;
/// db.sql_insert("users", &json!({"email": "a@example.com"}))?;
/// let error = db.sql_insert("users", &json!({"email": "a@example.com"})).unwrap_err();
/// assert!(error.is_unique_violation());
/// assert!(error.to_string().contains("UNIQUE constraint failed: users.email"));
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The store was closed with `close()`, on this handle, a clone or another table of the file.
    Closed,
    /// The store's lock could not be had within the configured `lock_timeout`, or the file's
    /// write lock, held by another connection or process, within the busy timeout (which
    /// `lock_timeout` caps). Nothing was written; the call may be retried.
    LockTimeout {
        /// How long the caller waited.
        waited: Duration,
    },
    /// Input was rejected before anything ran (a bad identifier, option or SQL fragment);
    /// the database is unchanged.
    Validation {
        /// What was wrong, in a sentence.
        message: String,
    },
    /// A key/value value could not be serialised to JSON, or its JSON could not be read back
    /// (by us or Python NanaSQLite); nothing was written.
    Encode {
        /// The key whose value failed.
        key: String,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// A stored key/value value is not readable JSON (not UTF-8 text, binary, nested too
    /// deeply), or does not fit the requested type. Other keys are unaffected.
    Decode {
        /// The key whose value failed.
        key: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A stored value does not decrypt with the store's key: the store was opened with another
    /// key than the one that wrote it (or the value was altered). Opening an encrypted store
    /// checks one row for this ([`Builder::check_key`](crate::Builder::check_key)).
    WrongKey {
        /// The key whose value failed.
        key: String,
        /// What the cipher reported (never the value).
        reason: String,
    },
    /// A row for a SQL table (`sql_insert`, `upsert`, …) could not be serialised as columns.
    EncodeRow {
        /// The table the row was for.
        table: String,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// A SQL result row does not fit the requested type (`query_as`, [`Row::deserialize`]).
    ///
    /// [`Row::deserialize`]: crate::sql::Row::deserialize
    DecodeRow {
        /// The column that did not fit, when one can be named.
        column: Option<String>,
        /// The deserializer's error.
        source: serde_json::Error,
    },
    /// The database file could not be opened or set up (missing directory, not a SQLite file, …).
    Open {
        /// The path that was opened.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// An existing table has a layout the key/value store cannot use; nothing was changed.
    Schema {
        /// The table.
        table: String,
        /// What was found, and what is expected.
        message: String,
    },
    /// SQLite reported an error.
    Sqlite(rusqlite::Error),
    /// A database server (PostgreSQL) reported an error, or its connection failed.
    Backend {
        /// The backend (`"postgres"`).
        backend: &'static str,
        /// What the server said (or why the connection failed).
        message: String,
        /// The server's error code (PostgreSQL's SQLSTATE, such as `23505`), if it gave one.
        code: Option<String>,
        /// The client's error.
        source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The key (or `key.field`) an operation needs is absent.
    NotFound {
        /// The missing key.
        key: String,
    },
    /// A transaction was misused (nested, or left open where it may not be).
    Transaction {
        /// What was wrong.
        message: String,
    },
    /// The storage backend cannot do this operation (a SQLite file operation on a server).
    Unsupported {
        /// The operation.
        operation: &'static str,
        /// The backend.
        backend: &'static str,
    },
    /// An operating-system error outside SQLite (e.g. no thread could be started).
    Io(std::io::Error),
    /// A JSON error from your own code, converted by `?` (`From<serde_json::Error>`), so that
    /// a function returning [`Result`] can parse and print JSON too. The store's own JSON
    /// errors are [`Error::Encode`] and [`Error::Decode`], which name the key.
    Json(serde_json::Error),
    /// A hook or validator refused a write or delete (a check, a unique field, a foreign key,
    /// your own rule); nothing was written.
    Refused {
        /// The key whose write was refused.
        key: String,
        /// The rule that refused it (`"check"`, `"unique(email)"`, a validator's reason, …);
        /// never the value.
        by: String,
    },
    /// Write-back mode could not commit every staged row: some are still staged (a flush ran
    /// out of time) or were moved to the dead-letter queue (their commit failed).
    Unflushed {
        /// Rows still staged.
        staged: usize,
        /// Rows in the dead-letter queue.
        dead_letters: usize,
    },
    /// A job panicked (or a hook did, failing its call); the worker that ran it survives.
    Panic {
        /// The panic's message, when it was a string.
        message: String,
    },
}

/// serde's messages that quote the value they could not take in.
const QUOTING_A_VALUE: [&str; 4] = ["invalid type", "invalid value", "unknown variant", "unknown field"];

/// `source`'s message without the value it quotes, if it quotes one.
fn withheld(source: &serde_json::Error) -> Option<String> {
    let message = source.to_string();
    let kind = QUOTING_A_VALUE.iter().find(|kind| message.starts_with(*kind))?;
    let expected = message
        .split_once(", expected ")
        .map(|(_, rest)| rest.rsplit_once(" at line ").map_or(rest, |(expected, _)| expected));
    let at = if source.line() > 0 {
        format!(" at line {} column {}", source.line(), source.column())
    } else {
        String::new()
    };
    let expected = expected.map(|expected| format!(", expected {expected}")).unwrap_or_default();
    Some(format!("{kind} (the stored value is withheld: the store is encrypted){expected}{at}"))
}

/// The kind of rule that refused a write ([`Error::refusal`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// Another key already holds the value of a unique field ([`hook::unique`](crate::hook::unique)).
    Unique,
    /// The key a field refers to is missing ([`hook::foreign_key`](crate::hook::foreign_key)).
    ForeignKey,
    /// A check, a typed table's validator or another hook refused it.
    Rule,
}

impl Error {
    /// A [`Error::Validation`] with the given message.
    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::Validation { message: message.into() }
    }

    /// An [`Error::Refused`]: the write of `key` was refused by rule `by`, as a [`Hook`] says
    /// it (name the rule, not the value: the message reaches logs and responses).
    ///
    /// [`Hook`]: crate::hook::Hook
    pub fn refused(key: impl Into<String>, by: impl Into<String>) -> Self {
        Self::Refused { key: key.into(), by: by.into() }
    }

    /// A caught panic as an [`Error::Panic`], with its message when it was a string.
    #[must_use]
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic payload".to_owned());
        Self::Panic { message }
    }

    /// A [`Error::Decode`] for `key` with a message of ours (not a parser's).
    pub(crate) fn decode(key: &str, message: impl fmt::Display) -> Self {
        Self::Decode { key: key.to_owned(), source: serde::de::Error::custom(message) }
    }

    /// This error without a stored value's plaintext: serde's messages for a value that does
    /// not fit its type quote the value (`invalid type: string "4111 …", expected u32`). On an
    /// encrypted store a [`Error::Decode`] keeps only the kind of mismatch, what was expected
    /// and where; every other error is returned as it is.
    pub(crate) fn without_value(self) -> Self {
        match self {
            Self::Decode { key, source } => match withheld(&source) {
                Some(message) => Self::Decode { key, source: serde::de::Error::custom(message) },
                None => Self::Decode { key, source },
            },
            other => other,
        }
    }

    /// The key involved, for [`Error::Encode`], [`Error::Decode`], [`Error::NotFound`] and
    /// [`Error::Refused`].
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Encode { key, .. }
            | Self::Decode { key, .. }
            | Self::WrongKey { key, .. }
            | Self::NotFound { key }
            | Self::Refused { key, .. } => Some(key),
            _ => None,
        }
    }

    /// SQLite's error code, when SQLite reported this error.
    #[must_use]
    pub fn sqlite_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Sqlite(error) | Self::Open { source: error, .. } => error.sqlite_error_code(),
            _ => None,
        }
    }

    /// Whether a constraint refused the write: SQLite's (`UNIQUE`, `NOT NULL`, `CHECK`, a
    /// foreign key, a trigger's `RAISE`) or a hook's ([`Error::Refused`]); nothing was written.
    #[must_use]
    pub fn is_constraint(&self) -> bool {
        self.is_refused()
            || self.sqlite_code() == Some(ErrorCode::ConstraintViolation)
            || self.server_code().is_some_and(|code| code.starts_with("23"))
    }

    /// The server's own error code, for [`Error::Backend`] (PostgreSQL's SQLSTATE).
    #[must_use]
    pub fn server_code(&self) -> Option<&str> {
        match self {
            Self::Backend { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// Whether a hook or validator refused the write ([`Error::Refused`]).
    #[must_use]
    pub fn is_refused(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }

    /// Whether a `UNIQUE` or `PRIMARY KEY` constraint, or a unique field
    /// ([`hook::unique`](crate::hook::unique)), refused the write (a duplicate).
    #[must_use]
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Self::Refused { by, .. } => by.starts_with(crate::hook::UNIQUE_RULE),
            Self::Backend { code, .. } => code.as_deref() == Some("23505"),
            Self::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => matches!(
                failure.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }

    /// Whether the database was busy: [`Error::LockTimeout`], or SQLite's "database is busy"
    /// or "locked". Retrying later may succeed.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::LockTimeout { .. })
            || matches!(self.sqlite_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
            || matches!(self.server_code(), Some("40001" | "40P01" | "55P03" | "57P01" | "57P03"))
    }

    /// Whether the connection itself failed rather than the request: an I/O error, a file
    /// that cannot be opened, or one read as corrupt or not a database (as after the file was
    /// swapped under the connection). A new connection may succeed where this one failed.
    #[must_use]
    pub fn is_broken_connection(&self) -> bool {
        use ErrorCode::{CannotOpen, DatabaseCorrupt, NotADatabase, SystemIoFailure};
        matches!(self, Self::Io(_))
            || matches!(self.sqlite_code(), Some(SystemIoFailure | CannotOpen | DatabaseCorrupt | NotADatabase))
    }

    /// Whether a value did not decrypt with the store's key ([`Error::WrongKey`]).
    #[must_use]
    pub fn is_wrong_key(&self) -> bool {
        matches!(self, Self::WrongKey { .. })
    }

    /// Whether this is [`Error::Closed`].
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }

    /// Which kind of rule refused the write, for an [`Error::Refused`] (its `by` names the
    /// rule itself, for the program's logs).
    ///
    /// ```
    /// use nanasqlite_core::{hook, Error, NanaSQLite, Refusal};
    /// use serde_json::json;
    ///
    /// let db = NanaSQLite::open(":memory:")?;
    /// db.add_hook(hook::unique("email"))?;
    /// db.set("ann", &json!({"email": "a@example.com"}))?;
    /// let error = db.set("bob", &json!({"email": "a@example.com"})).unwrap_err();
    /// assert_eq!(error.refusal(), Some(Refusal::Unique));
    /// assert_eq!(error.status_code(), 409);
    /// assert_eq!(Error::refused("k", "read-only").refusal(), Some(Refusal::Rule));
    /// # Ok::<(), nanasqlite_core::Error>(())
    /// ```
    #[must_use]
    pub fn refusal(&self) -> Option<Refusal> {
        let Self::Refused { by, .. } = self else { return None };
        Some(if by.starts_with(crate::hook::UNIQUE_RULE) {
            Refusal::Unique
        } else if by.starts_with(crate::hook::FOREIGN_KEY_RULE) {
            Refusal::ForeignKey
        } else {
            Refusal::Rule
        })
    }

    /// The HTTP status a web service would answer with: 400 for [`Error::Validation`], 404
    /// for [`Error::NotFound`], 409 for a conflict with other rows (a duplicate, whether a
    /// unique field's refusal or a `UNIQUE` constraint, a missing referenced key, any other
    /// constraint violation), 422 for a write a check, a validator or another hook refused
    /// ([`Refusal::Rule`]), 503 for [`Error::LockTimeout`], [`Error::Closed`] and a busy
    /// database (retry later), 500 for the rest. The `axum` feature answers with it.
    #[must_use]
    pub fn status_code(&self) -> u16 {
        if matches!(self, Self::Validation { .. }) {
            400
        } else if matches!(self, Self::NotFound { .. }) {
            404
        } else if self.is_unique_violation() {
            409
        } else if let Some(refusal) = self.refusal() {
            if refusal == Refusal::Rule { 422 } else { 409 }
        } else if self.is_constraint() {
            409
        } else if self.is_busy() || self.is_closed() {
            503
        } else {
            500
        }
    }

    /// SQLite's "database is busy" (another connection or process held the file's write lock
    /// for the whole busy timeout) as [`Error::LockTimeout`]; any other error as it is.
    #[must_use]
    pub fn busy_as_lock_timeout(self, waited: Duration) -> Self {
        if matches!(self, Self::Sqlite(_)) && self.sqlite_code() == Some(ErrorCode::DatabaseBusy) {
            Self::LockTimeout { waited }
        } else {
            self
        }
    }
}

/// The same error again (the stores tell each caller of a group whose commit failed with a
/// clone). Every variant and message is kept; a cause that cannot be copied is rebuilt from its
/// message: a SQLite failure keeps its codes, an I/O error its kind, a JSON error its text.
impl Clone for Error {
    fn clone(&self) -> Self {
        match self {
            Self::Closed => Self::Closed,
            Self::LockTimeout { waited } => Self::LockTimeout { waited: *waited },
            Self::Validation { message } => Self::Validation { message: message.clone() },
            Self::Encode { key, source } => Self::Encode { key: key.clone(), source: json(source) },
            Self::Decode { key, source } => Self::Decode { key: key.clone(), source: json(source) },
            Self::WrongKey { key, reason } => Self::WrongKey { key: key.clone(), reason: reason.clone() },
            Self::EncodeRow { table, source } => Self::EncodeRow { table: table.clone(), source: json(source) },
            Self::DecodeRow { column, source } => Self::DecodeRow { column: column.clone(), source: json(source) },
            Self::Open { path, source } => Self::Open { path: path.clone(), source: duplicate_sqlite(source) },
            Self::Schema { table, message } => Self::Schema { table: table.clone(), message: message.clone() },
            Self::Sqlite(error) => Self::Sqlite(duplicate_sqlite(error)),
            Self::Backend { backend, message, code, source } => {
                Self::Backend { backend, message: message.clone(), code: code.clone(), source: source.clone() }
            }
            Self::NotFound { key } => Self::NotFound { key: key.clone() },
            Self::Transaction { message } => Self::Transaction { message: message.clone() },
            Self::Unsupported { operation, backend } => Self::Unsupported { operation, backend },
            Self::Io(error) => Self::Io(std::io::Error::new(error.kind(), error.to_string())),
            Self::Json(error) => Self::Json(json(error)),
            Self::Refused { key, by } => Self::Refused { key: key.clone(), by: by.clone() },
            Self::Unflushed { staged, dead_letters } => {
                Self::Unflushed { staged: *staged, dead_letters: *dead_letters }
            }
            Self::Panic { message } => Self::Panic { message: message.clone() },
        }
    }
}

/// A JSON error again, as its message.
fn json(error: &serde_json::Error) -> serde_json::Error {
    serde::de::Error::custom(error.to_string())
}

/// A SQLite error again: a failure keeps its code and message; another error (which rusqlite
/// cannot copy) becomes a generic failure carrying its message.
fn duplicate_sqlite(error: &rusqlite::Error) -> rusqlite::Error {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => rusqlite::Error::SqliteFailure(*code, message.clone()),
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("the database is closed"),
            Self::LockTimeout { waited } => {
                write!(
                    f,
                    "could not acquire the database lock within {waited:?} (the store or another process held it)"
                )
            }
            Self::Validation { message } => write!(f, "invalid input: {message}"),
            Self::Encode { key, source } => write!(f, "cannot encode the value of key {key:?} as JSON: {source}"),
            Self::Decode { key, source } => write!(f, "cannot decode the value of key {key:?}: {source}"),
            Self::WrongKey { key, reason } => write!(
                f,
                "the value of key {key:?} does not decrypt with the store's key ({reason}): the store was opened \
                 with another key than the one that wrote it, or the value was changed"
            ),
            Self::EncodeRow { table, source } => write!(f, "cannot encode a row for table {table:?}: {source}"),
            Self::DecodeRow { column: Some(column), source } => {
                write!(f, "cannot decode column {column:?} of a row: {source}")
            }
            Self::DecodeRow { column: None, source } => write!(f, "cannot decode a row: {source}"),
            Self::Open { path, source } => write!(f, "cannot open database {}: {source}", path.display()),
            Self::Schema { table, message } => write!(f, "table {table:?} cannot hold key/value rows: {message}"),
            Self::Sqlite(source) => write!(f, "sqlite error: {source}"),
            Self::Backend { backend, message, code: Some(code), .. } => {
                write!(f, "{backend} error: {message} ({code})")
            }
            Self::Backend { backend, message, code: None, .. } => write!(f, "{backend} error: {message}"),
            Self::NotFound { key } => write!(f, "key {key:?} not found"),
            Self::Transaction { message } => write!(f, "transaction error: {message}"),
            Self::Unsupported { operation, backend } => {
                write!(f, "{operation} is not supported by the {backend} backend")
            }
            Self::Io(source) => write!(f, "i/o error: {source}"),
            Self::Json(source) => write!(f, "json error: {source}"),
            Self::Refused { key, by } => write!(f, "the write of key {key:?} was refused by {by}"),
            Self::Unflushed { staged, dead_letters } => write!(
                f,
                "write-back could not commit everything: {staged} rows still staged, {dead_letters} in the dead-letter queue"
            ),
            Self::Panic { message } => write!(f, "a database job panicked: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Encode { source, .. }
            | Self::Decode { source, .. }
            | Self::EncodeRow { source, .. }
            | Self::DecodeRow { source, .. }
            | Self::Json(source) => Some(source),
            Self::Open { source, .. } | Self::Sqlite(source) => Some(source),
            Self::Io(source) => Some(source),
            Self::Backend { source: Some(source), .. } => Some(&**source),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Self::Json(error)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sqlite(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn failure(code: i32, message: Option<&str>) -> Error {
        Error::Sqlite(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), message.map(str::to_owned)))
    }

    #[test]
    fn messages_are_lowercase_say_the_cause_and_chain_it() {
        let source = serde_json::from_str::<u8>("x").unwrap_err();
        let error = Error::Decode { key: "k".into(), source };
        assert_eq!(error.to_string(), "cannot decode the value of key \"k\": expected value at line 1 column 1");
        assert!(error.source().is_some());
        assert_eq!(error.key(), Some("k"));
        let unique = failure(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE, Some("UNIQUE constraint failed: users.email"));
        assert_eq!(unique.to_string(), "sqlite error: UNIQUE constraint failed: users.email");
        assert!(unique.source().is_some());
        assert!(Error::Closed.is_closed());
    }

    #[test]
    fn common_cases_can_be_told_apart() {
        let unique = failure(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE, None);
        assert!(unique.is_constraint() && unique.is_unique_violation() && !unique.is_busy());
        let not_null = failure(rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL, None);
        assert!(not_null.is_constraint() && !not_null.is_unique_violation());
        assert!(failure(rusqlite::ffi::SQLITE_BUSY, None).is_busy());
        assert!(Error::LockTimeout { waited: Duration::ZERO }.is_busy());
        assert!(!Error::Closed.is_constraint());
    }

    #[test]
    fn clones_keep_variant_and_message() {
        let busy = failure(5, Some("busy"));
        assert!(matches!(busy.clone(), Error::Sqlite(rusqlite::Error::SqliteFailure(e, Some(m)))
            if e.code == rusqlite::ErrorCode::DatabaseBusy && m == "busy"));
        let io = Error::Io(std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full"));
        assert!(matches!(io.clone(), Error::Io(e) if e.kind() == std::io::ErrorKind::StorageFull));
        let decode = Error::decode("k", "not UTF-8");
        assert_eq!(decode.clone().to_string(), decode.to_string());
        assert!(matches!(decode.clone(), Error::Decode { .. }));
        let other = Error::Sqlite(rusqlite::Error::QueryReturnedNoRows);
        assert_eq!(other.clone().to_string(), other.to_string());
    }

    #[test]
    fn each_kind_has_its_http_status() {
        assert_eq!(Error::validation("x").status_code(), 400);
        assert_eq!(failure(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE, None).status_code(), 409);
        let refused = Error::refused("k", "unique(email)");
        assert_eq!((refused.status_code(), refused.key(), refused.is_constraint()), (409, Some("k"), true));
        assert!(refused.is_unique_violation(), "a unique field's refusal is a duplicate");
        let checked = Error::refused("k", "check");
        assert_eq!((checked.status_code(), checked.is_unique_violation()), (422, false));
        assert_eq!(Error::NotFound { key: "k".into() }.status_code(), 404);
        assert_eq!(refused.clone().to_string(), r#"the write of key "k" was refused by unique(email)"#);
        assert_eq!(Error::LockTimeout { waited: Duration::ZERO }.status_code(), 503);
        assert_eq!(Error::Closed.status_code(), 503);
        assert_eq!(failure(rusqlite::ffi::SQLITE_BUSY, None).status_code(), 503);
        assert_eq!(failure(rusqlite::ffi::SQLITE_FULL, None).status_code(), 500);
        let json: Error = serde_json::from_str::<u8>("x").unwrap_err().into();
        assert!(json.to_string().starts_with("json error: "));
        assert_eq!(json.status_code(), 500);
    }

    #[test]
    fn only_a_broken_connection_is_called_broken() {
        let code = |code| Error::Sqlite(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None));
        assert!(code(rusqlite::ffi::SQLITE_IOERR_READ).is_broken_connection());
        assert!(code(rusqlite::ffi::SQLITE_NOTADB).is_broken_connection());
        assert!(code(rusqlite::ffi::SQLITE_CORRUPT).is_broken_connection());
        assert!(Error::Io(std::io::Error::other("gone")).is_broken_connection());
        assert!(!code(rusqlite::ffi::SQLITE_CONSTRAINT).is_broken_connection());
        assert!(!Error::Closed.is_broken_connection());
    }

    #[test]
    fn only_busy_becomes_a_lock_timeout() {
        let waited = Duration::from_millis(200);
        let busy = failure(rusqlite::ffi::SQLITE_BUSY, None).busy_as_lock_timeout(waited);
        assert!(matches!(busy, Error::LockTimeout { waited: w } if w == waited));
        let full = failure(rusqlite::ffi::SQLITE_FULL, None).busy_as_lock_timeout(waited);
        assert!(matches!(full, Error::Sqlite(_)));
        assert!(Error::Closed.busy_as_lock_timeout(waited).is_closed());
    }
}
