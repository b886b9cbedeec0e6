//! [`Row`], one result row of a query, and how its values become the caller's types.

use std::cell::Cell;
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::SqlValue;
use crate::error::{Error, Result};

/// One row of a query result: its column names and values, in order.
///
/// Read a column as a Rust type with [`get`](Self::get), the whole row as a struct with
/// [`deserialize`](Self::deserialize) (what `query_as` does), or the raw value with
/// [`value`](Self::value). SQLite has five storage classes, so reading follows these rules:
///
/// - integers, floats and text read as numbers and strings; `NULL` as `None` (or `()`);
/// - an integer 0 or 1 reads as a `bool` (how `sql_insert` stores bools);
/// - text holding JSON reads as a structured type (a `Vec`, a map, a struct) when the field asks
///   for one: `sql_insert` stores arrays and objects as JSON text, and they read back as they
///   were written;
/// - a blob reads as bytes (`Vec<u8>`).
///
/// A row serialises (serde) as an object of column name to value, in column order: a web
/// handler can return rows as JSON as they are. Integers and floats become numbers, text
/// becomes strings, `NULL` becomes `null` and blobs become arrays of bytes.
///
/// ```
/// use nanasqlite_core::sql::{Row, SqlValue};
///
/// let row = Row::new(vec!["id".into(), "tags".into(), "admin".into()].into(), vec![
///     1.into(),
///     r#"["a", "b"]"#.into(),
///     1.into(),
/// ]);
/// assert_eq!(row.get::<i64>("id")?, 1);
/// assert_eq!(row.get::<Vec<String>>("tags")?, ["a", "b"]);
/// assert!(row.get::<bool>("admin")?);
/// assert_eq!(row.value("tags"), Some(&SqlValue::Text(r#"["a", "b"]"#.into())));
/// assert_eq!(row.to_json()["id"], 1);
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<SqlValue>,
}

impl Row {
    /// A row of `values` under `columns` (as many of each).
    #[must_use]
    pub fn new(columns: Arc<[String]>, values: Vec<SqlValue>) -> Self {
        Self { columns, values }
    }

    /// The raw value of `column`, if the row has it.
    #[must_use]
    pub fn value(&self, column: &str) -> Option<&SqlValue> {
        self.columns.iter().position(|c| c == column).and_then(|i| self.values.get(i))
    }

    /// The value of `column` as `T` (see the type's docs for the rules).
    ///
    /// # Errors
    ///
    /// [`Error::DecodeRow`] naming the column when the row has no such column or its value
    /// does not fit `T`.
    pub fn get<T: DeserializeOwned>(&self, column: &str) -> Result<T> {
        let decode_error = |source| Error::DecodeRow { column: Some(column.to_owned()), source };
        let value = self.value(column).ok_or_else(|| decode_error(de::Error::custom("the row has no such column")))?;
        T::deserialize(Column(value)).map_err(decode_error)
    }

    /// The column names.
    #[must_use]
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The values, in column order.
    #[must_use]
    pub fn values(&self) -> &[SqlValue] {
        &self.values
    }

    /// The row as a JSON object, column name to value.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let map: Map<String, Value> =
            self.columns.iter().cloned().zip(self.values.iter().map(SqlValue::to_json)).collect();
        Value::Object(map)
    }

    /// The row deserialised into `T` (a struct whose fields are the columns, say).
    ///
    /// # Errors
    ///
    /// [`Error::DecodeRow`] naming the column whose value does not fit (or, for a field the row
    /// lacks, saying which).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        let failed_at = Cell::new(None);
        let fields = Fields { row: self, next: 0, current: &failed_at };
        T::deserialize(RowDeserializer(fields)).map_err(|source| {
            let column = failed_at.get().and_then(|i| self.columns.get(i).cloned());
            Error::DecodeRow { column, source }
        })
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.columns.len()))?;
        for (column, value) in self.columns.iter().zip(&self.values) {
            map.serialize_entry(column, value)?;
        }
        map.end()
    }
}

type DeError = serde_json::Error;

/// A row as serde sees it: a map of column name to value.
struct RowDeserializer<'a>(Fields<'a>);

impl<'de> de::Deserializer<'de> for RowDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, DeError> {
        visitor.visit_map(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// The columns, one after another, remembering which one is being read (for errors).
struct Fields<'a> {
    row: &'a Row,
    next: usize,
    current: &'a Cell<Option<usize>>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> std::result::Result<Option<K::Value>, DeError> {
        let Some(name) = self.row.columns.get(self.next) else {
            self.current.set(None);
            return Ok(None);
        };
        seed.deserialize(name.as_str().into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> std::result::Result<V::Value, DeError> {
        let i = self.next;
        self.next += 1;
        self.current.set(Some(i));
        let value = seed.deserialize(Column(&self.row.values[i]))?;
        self.current.set(None);
        Ok(value)
    }
}

/// One column's value as serde sees it (the rules of [`Row`]).
#[derive(Clone, Copy)]
struct Column<'a>(&'a SqlValue);

impl Column<'_> {
    /// Text holding JSON, parsed, for a target that asked for structure.
    fn json(text: &str) -> std::result::Result<Value, DeError> {
        serde_json::from_str(text).map_err(|error| de::Error::custom(format!("the text is not JSON ({error})")))
    }
}

impl<'de> de::Deserializer<'de> for Column<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Null => visitor.visit_unit(),
            SqlValue::Integer(i) => visitor.visit_i64(*i),
            SqlValue::Real(f) => visitor.visit_f64(*f),
            SqlValue::Text(text) => visitor.visit_str(text),
            SqlValue::Blob(bytes) => visitor.visit_seq(bytes.to_vec().into_deserializer()),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Integer(0) => visitor.visit_bool(false),
            SqlValue::Integer(1) => visitor.visit_bool(true),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Blob(bytes) => visitor.visit_bytes(bytes),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Text(text) => de::Deserializer::deserialize_seq(Self::json(text)?, visitor),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Text(text) => de::Deserializer::deserialize_tuple(Self::json(text)?, len, visitor),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Text(text) => de::Deserializer::deserialize_tuple_struct(Self::json(text)?, name, len, visitor),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Text(text) => de::Deserializer::deserialize_map(Self::json(text)?, visitor),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Text(text) => de::Deserializer::deserialize_struct(Self::json(text)?, name, fields, visitor),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        let value = match self.0 {
            SqlValue::Text(text) if text.trim_start().starts_with('{') => Self::json(text)?,
            other => other.to_json(),
        };
        de::Deserializer::deserialize_enum(value, name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string unit unit_struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    fn row(pairs: &[(&str, SqlValue)]) -> Row {
        let columns: Arc<[String]> = pairs.iter().map(|(c, _)| (*c).to_owned()).collect();
        Row::new(columns, pairs.iter().map(|(_, v)| v.clone()).collect())
    }

    #[test]
    fn a_row_serialises_as_an_object_in_column_order() {
        let values = row(&[
            ("z", SqlValue::Integer(1)),
            ("a", "x".into()),
            ("n", SqlValue::Null),
            ("b", SqlValue::Blob(vec![0, 255])),
            ("f", 1.5.into()),
        ]);
        assert_eq!(serde_json::to_string(&values).unwrap(), r#"{"z":1,"a":"x","n":null,"b":[0,255],"f":1.5}"#);
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct User {
        id: i64,
        name: String,
        tags: Vec<String>,
        admin: bool,
        profile: Option<Profile>,
        note: Option<String>,
        avatar: Vec<u8>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Profile {
        city: String,
    }

    #[test]
    fn structured_fields_read_back_from_json_text() {
        let stored = row(&[
            ("id", 7.into()),
            ("name", "Ann".into()),
            ("tags", r#"["a","b"]"#.into()),
            ("admin", 1.into()),
            ("profile", r#"{"city":"Oslo"}"#.into()),
            ("note", SqlValue::Null),
            ("avatar", SqlValue::Blob(vec![1, 2])),
        ]);
        let user: User = stored.deserialize().unwrap();
        assert_eq!(
            user,
            User {
                id: 7,
                name: "Ann".into(),
                tags: vec!["a".into(), "b".into()],
                admin: true,
                profile: Some(Profile { city: "Oslo".into() }),
                note: None,
                avatar: vec![1, 2],
            }
        );
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_column() {
        let stored = row(&[("id", "seven".into()), ("name", "Ann".into())]);
        let error = stored.deserialize::<User>().unwrap_err();
        assert!(matches!(&error, Error::DecodeRow { column: Some(c), .. } if c == "id"), "{error}");
        assert!(error.to_string().contains("column \"id\""), "{error}");
        let error = row(&[("id", 1.into())]).deserialize::<User>().unwrap_err();
        assert!(error.to_string().contains("missing field"), "{error}");
        assert!(stored.get::<i64>("id").unwrap_err().to_string().contains("\"id\""));
        assert!(stored.get::<i64>("absent").unwrap_err().to_string().contains("no such column"));
        assert!(row(&[("tags", "not json".into())]).get::<Vec<String>>("tags").is_err());
    }
}
