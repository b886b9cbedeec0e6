//! Validated SQL identifiers (table, column and index names).

use std::fmt;

use crate::error::{Error, Result};

/// A name that is safe to put in SQL: ASCII `[A-Za-z_][A-Za-z0-9_]*`, not reserved by SQLite.
///
/// Stricter than Python NanaSQLite, which accepts Unicode letters and a trailing newline; every
/// name this type accepts is also accepted there, so files stay interchangeable. The name is
/// always written double-quoted, so SQL keywords such as `group` work.
///
/// # Examples
///
/// ```
/// use nanasqlite_core::Identifier;
///
/// assert_eq!(Identifier::new("users")?.quoted(), "\"users\"");
/// assert!(Identifier::new("data; DROP TABLE data--").is_err());
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identifier(Box<str>);

impl Identifier {
    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] when `name` is empty, has a character outside `[A-Za-z0-9_]`,
    /// starts with a digit, or starts with `sqlite_` (reserved by SQLite).
    pub fn new(name: &str) -> Result<Self> {
        if name.is_empty() {
            return Err(Error::validation("identifier cannot be empty"));
        }
        if !is_plain_identifier(name) {
            return Err(Error::validation(format!(
                "invalid identifier {name:?}: must start with an ASCII letter or underscore \
                 and contain only ASCII letters, digits and underscores"
            )));
        }
        if name.len() >= 7 && name[..7].eq_ignore_ascii_case("sqlite_") {
            return Err(Error::validation(format!(
                "invalid identifier {name:?}: names starting with \"sqlite_\" are reserved"
            )));
        }
        Ok(Self(name.into()))
    }

    /// The bare name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name in double quotes, ready for SQL.
    #[must_use]
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, checked byte by byte.
fn is_plain_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for name in ["data", "_x", "users_2", "group", "A", "sqlite"] {
            assert_eq!(Identifier::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn rejects_everything_else() {
        for name in [
            "",
            "1abc",
            "data; DROP TABLE data--",
            "name\n",
            "\"data\"",
            "da'ta",
            "データ",
            "naïve",
            "a b",
            "a-b",
            "sqlite_master",
            "SQLITE_x",
            "a\0",
        ] {
            assert!(matches!(Identifier::new(name), Err(Error::Validation { .. })), "{name:?} was accepted");
        }
    }
}
