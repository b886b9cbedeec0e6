//! The one error type of the workspace.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in nanasqlite.
///
/// Messages are lowercase and [`source`](std::error::Error::source) leads to the cause
/// (the SQLite or JSON error) where there is one.
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
    /// A value could not be serialised to JSON; nothing was written.
    Encode {
        /// The key whose value failed.
        key: String,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// A stored value is not valid JSON, or does not fit the requested type.
    Decode {
        /// The key whose value failed.
        key: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The database file could not be opened or set up (missing directory, not a SQLite file, …).
    Open {
        /// The path that was opened.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// SQLite reported an error.
    Sqlite(rusqlite::Error),
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
    /// An operating-system error outside SQLite (e.g. no thread could be started).
    Io(std::io::Error),
    /// A job panicked; the worker that ran it survives.
    Panic {
        /// The panic's message, when it was a string.
        message: String,
    },
}

impl Error {
    /// A [`Error::Validation`] with the given message.
    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::Validation { message: message.into() }
    }

    /// The key involved, for [`Error::Encode`], [`Error::Decode`] and [`Error::NotFound`].
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Encode { key, .. } | Self::Decode { key, .. } | Self::NotFound { key } => Some(key),
            _ => None,
        }
    }

    /// The same error again, for telling several callers of one failed operation (a group
    /// commit). SQLite failures keep their codes; causes that cannot be copied keep their message.
    #[must_use]
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Closed => Self::Closed,
            Self::LockTimeout { waited } => Self::LockTimeout { waited: *waited },
            Self::Validation { message } => Self::Validation { message: message.clone() },
            Self::NotFound { key } => Self::NotFound { key: key.clone() },
            Self::Transaction { message } => Self::Transaction { message: message.clone() },
            Self::Panic { message } => Self::Panic { message: message.clone() },
            Self::Sqlite(rusqlite::Error::SqliteFailure(code, message)) => {
                Self::Sqlite(rusqlite::Error::SqliteFailure(*code, message.clone()))
            }
            other => Self::Transaction { message: other.to_string() },
        }
    }

    /// SQLite's "database is busy" (another connection or process held the file's write lock
    /// for the whole busy timeout) as [`Error::LockTimeout`]; any other error as it is.
    #[must_use]
    pub fn busy_as_lock_timeout(self, waited: Duration) -> Self {
        match &self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                Self::LockTimeout { waited }
            }
            _ => self,
        }
    }

    /// Whether this is [`Error::Closed`].
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
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
            Self::Encode { key, .. } => write!(f, "cannot encode the value of key {key:?} as JSON"),
            Self::Decode { key, .. } => write!(f, "cannot decode the value of key {key:?}"),
            Self::Open { path, .. } => write!(f, "cannot open database {}", path.display()),
            Self::Sqlite(_) => f.write_str("sqlite error"),
            Self::NotFound { key } => write!(f, "key {key:?} not found"),
            Self::Transaction { message } => write!(f, "transaction error: {message}"),
            Self::Io(_) => f.write_str("i/o error"),
            Self::Panic { message } => write!(f, "a database job panicked: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Encode { source, .. } | Self::Decode { source, .. } => Some(source),
            Self::Open { source, .. } | Self::Sqlite(source) => Some(source),
            Self::Io(source) => Some(source),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
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

    #[test]
    fn messages_are_lowercase_and_chain_their_cause() {
        let source = serde_json::from_str::<u8>("x").unwrap_err();
        let error = Error::Decode { key: "k".into(), source };
        assert_eq!(error.to_string(), "cannot decode the value of key \"k\"");
        assert!(error.source().is_some());
        assert_eq!(error.key(), Some("k"));
        let sqlite = Error::from(rusqlite::Error::QueryReturnedNoRows);
        assert!(sqlite.source().is_some());
        assert!(Error::Closed.is_closed());
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), Some("busy".into()));
        assert!(matches!(Error::from(busy).duplicate(), Error::Sqlite(rusqlite::Error::SqliteFailure(e, Some(m)))
            if e.code == rusqlite::ErrorCode::DatabaseBusy && m == "busy"));
    }

    #[test]
    fn only_busy_becomes_a_lock_timeout() {
        let failure = |code| Error::Sqlite(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None));
        let waited = Duration::from_millis(200);
        let busy = failure(rusqlite::ffi::SQLITE_BUSY).busy_as_lock_timeout(waited);
        assert!(matches!(busy, Error::LockTimeout { waited: w } if w == waited));
        let full = failure(rusqlite::ffi::SQLITE_FULL).busy_as_lock_timeout(waited);
        assert!(matches!(full, Error::Sqlite(_)));
        assert!(Error::Closed.busy_as_lock_timeout(waited).is_closed());
    }
}
