//! The transforms behind `increment` and `patch`: pure functions of the stored value, run by
//! the engine's [`Transform`] inside one write transaction (atomic across threads and
//! processes).

use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::engine::Transform;
use crate::error::{Error, Result};

/// A change of one stored value (`None`: absent) into its new value, for [`Transform`].
pub trait Step: Fn(&str, Option<Value>) -> Result<Value> + Send + 'static {}

impl<F: Fn(&str, Option<Value>) -> Result<Value> + Send + 'static> Step for F {}

/// The `increment` operation: `amount` added to `key`'s number (or its `field`).
///
/// # Errors
///
/// [`Error::Validation`] for a non-finite amount.
pub fn increment<K: AsRef<str>>(
    key: K,
    amount: Amount,
    field: Option<&str>,
) -> Result<Transform<K, impl Step + use<K>>> {
    let step = Increment::new(amount, field)?;
    Ok(Transform::new("increment", key, move |_: &str, current| step.apply(current)))
}

/// The `patch` operation: `changes` (an object) merged into the object under `key`.
///
/// # Errors
///
/// [`Error::Encode`] when `changes` cannot be JSON; [`Error::Validation`] when it is not an object.
pub fn patch<K: AsRef<str>, T: Serialize + ?Sized>(
    key: K,
    changes: &T,
    create: bool,
) -> Result<Transform<K, impl Step + use<K, T>>> {
    let value =
        serde_json::to_value(changes).map_err(|source| Error::Encode { key: key.as_ref().to_owned(), source })?;
    let changes = object(value)?;
    Ok(Transform::new("patch", key, move |key: &str, current| merge(key, current, changes.clone(), create)))
}

/// How much `increment` adds: an integer stays an integer (Python reads `2 + 3` back as `5`,
/// not `5.0`), a float makes the result a float.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    /// A whole number.
    Int(i64),
    /// A float; must be finite.
    Float(f64),
}

macro_rules! amount_from {
    ($variant:ident: $($t:ty),*) => {$(
        impl From<$t> for Amount {
            fn from(value: $t) -> Self {
                Self::$variant(value.into())
            }
        }
    )*};
}

amount_from!(Int: i8, i16, i32, i64, u8, u16, u32);
amount_from!(Float: f32, f64);

impl Amount {
    /// The amount as a JSON number.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a non-finite float.
    pub fn number(self) -> Result<Number> {
        match self {
            Self::Int(i) => Ok(Number::from(i)),
            Self::Float(f) => number(f),
        }
    }
}

/// What `increment` adds, and where.
#[derive(Clone, Debug, PartialEq)]
struct Increment {
    amount: Number,
    field: Option<String>,
}

/// A finite JSON number from an `f64` or `i64` amount.
fn number(amount: f64) -> Result<Number> {
    Number::from_f64(amount).ok_or_else(|| Error::validation("amount must be finite"))
}

/// `current + amount`, as an integer when both are integers and it fits, else a float.
fn add(current: &Number, amount: &Number) -> Result<Number> {
    if let (Some(a), Some(b)) = (current.as_i64(), amount.as_i64())
        && let Some(sum) = a.checked_add(b)
    {
        return Ok(Number::from(sum));
    }
    let sum = current.as_f64().unwrap_or(f64::NAN) + amount.as_f64().unwrap_or(f64::NAN);
    Number::from_f64(sum).ok_or_else(|| Error::validation("increment result must be finite"))
}

fn as_number(value: &Value, what: &str) -> Result<Number> {
    match value {
        Value::Number(n) => Ok(n.clone()),
        other => Err(Error::validation(format!("{what} must be a number, not {}", kind(other)))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Increment {
    /// Adds `amount` to the stored number, or to its `field` when given; a missing key or
    /// field starts from 0.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a non-finite amount.
    fn new(amount: Amount, field: Option<&str>) -> Result<Self> {
        Ok(Self { amount: amount.number()?, field: field.map(str::to_owned) })
    }

    /// The new stored value, from the current one (`None`: the key is absent).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a base that is not a number (or not an object with a field),
    /// or a result that is not finite.
    fn apply(&self, current: Option<Value>) -> Result<Value> {
        let zero = || Number::from(0);
        match &self.field {
            None => {
                let base = current.map_or_else(|| Ok(zero()), |value| as_number(&value, "the stored value"))?;
                add(&base, &self.amount).map(Value::Number)
            }
            Some(field) => {
                let mut object = match current {
                    Some(Value::Object(object)) => object,
                    Some(other) => {
                        return Err(Error::validation(format!(
                            "the stored value must be an object when a field is given, not {}",
                            kind(&other)
                        )));
                    }
                    None => Map::new(),
                };
                let base = object.get(field).map_or_else(|| Ok(zero()), |value| as_number(value, "the field"))?;
                object.insert(field.clone(), Value::Number(add(&base, &self.amount)?));
                Ok(Value::Object(object))
            }
        }
    }
}

/// The new stored value of `patch`: the stored object with `changes` merged in, one level deep
/// (a nested object in `changes` replaces the stored one, as Python's `dict.update`).
///
/// # Errors
///
/// [`Error::NotFound`] for a missing key without `create`; [`Error::Validation`] when the
/// stored value is not an object.
fn merge(key: &str, current: Option<Value>, changes: Map<String, Value>, create: bool) -> Result<Value> {
    let mut object = match current {
        Some(Value::Object(object)) => object,
        Some(other) => {
            return Err(Error::validation(format!(
                "the stored value must be an object to patch, not {}",
                kind(&other)
            )));
        }
        None if create => Map::new(),
        None => return Err(Error::NotFound { key: key.to_owned() }),
    };
    object.extend(changes);
    Ok(Value::Object(object))
}

/// `changes` as an object.
fn object(value: Value) -> Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(Error::validation(format!("patch changes must be an object, not {}", kind(&other)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_keep_their_kind() {
        assert_eq!(Amount::from(3).number().unwrap(), Number::from(3));
        assert!(Amount::from(f64::NAN).number().is_err());
    }

    fn inc(amount: f64, field: Option<&str>) -> Increment {
        Increment { amount: number(amount).unwrap(), field: field.map(str::to_owned) }
    }

    #[test]
    fn numbers_add_and_stay_integers() {
        assert_eq!(inc(3.0, None).apply(Some(json!(2))).unwrap(), json!(5.0));
        let whole = Increment { amount: Number::from(3), field: None };
        assert_eq!(whole.apply(Some(json!(2))).unwrap(), json!(5));
        assert_eq!(Increment { amount: Number::from(-1), field: None }.apply(Some(json!(2))).unwrap(), json!(1));
        assert_eq!(inc(0.5, None).apply(None).unwrap(), json!(0.5), "a missing key starts from 0");
    }

    #[test]
    fn bad_bases_are_rejected() {
        assert!(matches!(inc(1.0, None).apply(Some(json!(true))), Err(Error::Validation { .. })));
        assert!(matches!(inc(1.0, None).apply(Some(Value::Null)), Err(Error::Validation { .. })));
        assert!(matches!(inc(f64::MAX, None).apply(Some(json!(f64::MAX))), Err(Error::Validation { .. })));
        assert!(number(f64::INFINITY).is_err());
    }

    #[test]
    fn fields_of_objects() {
        let hits = inc(1.0, Some("hits"));
        assert_eq!(hits.apply(None).unwrap(), json!({"hits": 1.0}));
        assert_eq!(hits.apply(Some(json!({"hits": 2.0, "x": 1}))).unwrap(), json!({"hits": 3.0, "x": 1}));
        assert_eq!(
            inc(1.0, Some("n")).apply(Some(json!({}))).unwrap(),
            json!({"n": 1.0}),
            "a missing field starts from 0"
        );
        assert!(matches!(hits.apply(Some(json!([1]))), Err(Error::Validation { .. })));
    }

    #[test]
    fn patch_merges_one_level() {
        let merged = merge(
            "k",
            Some(json!({"nested": {"a": 1}, "keep": true})),
            object(json!({"nested": {"b": 2}})).unwrap(),
            false,
        );
        assert_eq!(merged.unwrap(), json!({"nested": {"b": 2}, "keep": true}));
        assert!(matches!(merge("k", None, Map::new(), false), Err(Error::NotFound { .. })));
        assert_eq!(merge("k", None, object(json!({"a": 1})).unwrap(), true).unwrap(), json!({"a": 1}));
        assert!(object(json!([1])).is_err());
    }
}
