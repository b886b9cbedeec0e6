//! [`Row`], one result row of a query.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::SqlValue;
use crate::error::{Error, Result};

/// One row of a query result: its column names and values, in order.
///
/// A row serialises (serde) as an object of column name to value, in column order: a web
/// handler can return rows as JSON as they are. Integers and floats become numbers, text
/// becomes strings, `NULL` becomes `null` and blobs become arrays of bytes.
///
/// ```
/// use nanasqlite_core::sql::{Row, SqlValue};
///
/// let row = Row::new(vec!["id".into(), "name".into()].into(), vec![1.into(), "Alice".into()]);
/// assert_eq!(row.get("name"), Some(&SqlValue::Text("Alice".into())));
/// assert_eq!(row.to_json()["id"], 1);
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

    /// The value of `column`, if the row has it.
    #[must_use]
    pub fn get(&self, column: &str) -> Option<&SqlValue> {
        self.columns.iter().position(|c| c == column).and_then(|i| self.values.get(i))
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

    /// The row deserialised into `T` (a struct whose fields are the columns, say). Text
    /// columns holding JSON stay text: parse them in `T` if needed.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] (with key `"row"`) when the row does not fit `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(self.to_json()).map_err(|source| Error::Decode { key: "row".to_owned(), source })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_serialises_as_an_object_in_column_order() {
        let columns: Arc<[String]> = vec!["z".into(), "a".into(), "n".into(), "b".into(), "f".into()].into();
        let values = vec![SqlValue::Integer(1), "x".into(), SqlValue::Null, SqlValue::Blob(vec![0, 255]), 1.5.into()];
        let text = serde_json::to_string(&Row::new(columns, values)).unwrap();
        assert_eq!(text, r#"{"z":1,"a":"x","n":null,"b":[0,255],"f":1.5}"#);
    }
}
