//! [`SqlValue`], the values bound to and read from SQL statements.

use rusqlite::types::{ToSqlOutput, ValueRef};
use serde_json::Value;

/// A value of SQLite's five storage classes, bound as a parameter or read from a row.
///
/// Made from integers, floats, strings, bools, bytes and `Option`s with `From`; [`params!`]
/// builds a `Vec<SqlValue>` from a list of them.
///
/// [`params!`]: crate::params
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    /// `NULL`.
    Null,
    /// A 64-bit integer (bools are stored as 0 and 1).
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl SqlValue {
    /// A JSON value as a column value: objects and arrays become their JSON text.
    #[must_use]
    pub fn from_json(value: &Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Integer(i64::from(*b)),
            Value::Number(n) => {
                n.as_i64().map(Self::Integer).or_else(|| n.as_f64().map(Self::Real)).unwrap_or(Self::Null)
            }
            Value::String(s) => Self::Text(s.clone()),
            Value::Array(_) | Value::Object(_) => Self::Text(value.to_string()),
        }
    }

    /// This value as JSON: blobs become arrays of bytes, non-finite floats `null`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Integer(i) => Value::from(*i),
            Self::Real(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Self::Text(s) => Value::String(s.clone()),
            Self::Blob(bytes) => Value::from(bytes.clone()),
        }
    }

    /// The value as SQL literal text, for the rare places SQLite takes no parameter
    /// (a column's `DEFAULT`): text is quoted with `'` doubled, blobs are `X'…'`.
    pub(crate) fn to_literal(&self) -> String {
        match self {
            Self::Null => "NULL".to_owned(),
            Self::Integer(i) => i.to_string(),
            Self::Real(f) if f.is_finite() => format!("{f:?}"),
            Self::Real(_) => "NULL".to_owned(),
            Self::Text(s) => format!("'{}'", s.replace('\'', "''")),
            Self::Blob(bytes) => format!("X'{}'", bytes.iter().map(|b| format!("{b:02X}")).collect::<String>()),
        }
    }

    pub(crate) fn from_ref(value: ValueRef<'_>) -> Self {
        match value {
            ValueRef::Null => Self::Null,
            ValueRef::Integer(i) => Self::Integer(i),
            ValueRef::Real(f) => Self::Real(f),
            ValueRef::Text(bytes) => Self::Text(String::from_utf8_lossy(bytes).into_owned()),
            ValueRef::Blob(bytes) => Self::Blob(bytes.to_vec()),
        }
    }
}

/// As [`SqlValue::to_json`]: numbers, strings, `null`, and blobs as arrays of bytes.
impl serde::Serialize for SqlValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_none(),
            Self::Integer(i) => serializer.serialize_i64(*i),
            Self::Real(f) if f.is_finite() => serializer.serialize_f64(*f),
            Self::Real(_) => serializer.serialize_none(),
            Self::Text(text) => serializer.serialize_str(text),
            Self::Blob(bytes) => serializer.collect_seq(bytes),
        }
    }
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Self::Null => ValueRef::Null,
            Self::Integer(i) => ValueRef::Integer(*i),
            Self::Real(f) => ValueRef::Real(*f),
            Self::Text(s) => ValueRef::Text(s.as_bytes()),
            Self::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for SqlValue {
            fn from(value: $t) -> Self {
                Self::Integer(i64::from(value))
            }
        }
    )*};
}

from_integer!(i8, i16, i32, i64, u8, u16, u32, bool);

/// Integers beyond `i64::MAX` become the nearest float (SQLite has no wider integer).
impl From<u64> for SqlValue {
    fn from(value: u64) -> Self {
        i64::try_from(value).map_or(Self::Real(value as f64), Self::Integer)
    }
}

/// As `u64`.
impl From<usize> for SqlValue {
    fn from(value: usize) -> Self {
        Self::from(value as u64)
    }
}

impl From<f64> for SqlValue {
    fn from(value: f64) -> Self {
        Self::Real(value)
    }
}

impl From<f32> for SqlValue {
    fn from(value: f32) -> Self {
        Self::Real(f64::from(value))
    }
}

impl From<&str> for SqlValue {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<String> for SqlValue {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<&String> for SqlValue {
    fn from(value: &String) -> Self {
        Self::Text(value.clone())
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(value: Vec<u8>) -> Self {
        Self::Blob(value)
    }
}

impl From<&[u8]> for SqlValue {
    fn from(value: &[u8]) -> Self {
        Self::Blob(value.to_vec())
    }
}

impl<T: Into<Self>> From<Option<T>> for SqlValue {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

/// Builds a `Vec<SqlValue>` of statement parameters.
///
/// ```
/// use nanasqlite_core::{params, sql::SqlValue};
///
/// let params = params![1, "two", 3.5, None::<i32>, true, vec![0u8, 1]];
/// assert_eq!(params[1], SqlValue::Text("two".into()));
/// assert_eq!(params![], Vec::<SqlValue>::new());
/// ```
#[macro_export]
macro_rules! params {
    () => {
        ::std::vec::Vec::<$crate::sql::SqlValue>::new()
    };
    ($($value:expr),+ $(,)?) => {
        ::std::vec![$($crate::sql::SqlValue::from($value)),+]
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip() {
        let values = [json!(null), json!(true), json!(-3), json!(2.5), json!("t"), json!([1, {"a": 2}])];
        let sql: Vec<_> = values.iter().map(SqlValue::from_json).collect();
        assert_eq!(sql[1], SqlValue::Integer(1));
        assert_eq!(sql[5], SqlValue::Text(r#"[1,{"a":2}]"#.into()));
        assert_eq!(SqlValue::Blob(vec![1, 2]).to_json(), json!([1, 2]));
        assert_eq!(SqlValue::Real(f64::NAN).to_json(), Value::Null);
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(SqlValue::from("it's okay").to_literal(), "'it''s okay'");
        assert_eq!(SqlValue::Blob(vec![0, 255]).to_literal(), "X'00FF'");
        assert_eq!(SqlValue::from(u64::MAX), SqlValue::Real(u64::MAX as f64));
    }
}
