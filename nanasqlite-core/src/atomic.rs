//! The transforms behind `increment` and `patch`: pure functions of the stored value, run by
//! the stores inside one `BEGIN IMMEDIATE` transaction (atomic across threads and processes).
//! Public for stores built on this crate.

use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};

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
pub struct Increment {
    pub(crate) amount: Number,
    pub(crate) field: Option<String>,
    pub(crate) default: Option<Number>,
}

/// A finite JSON number from an `f64` or `i64` amount.
pub(crate) fn number(amount: f64) -> Result<Number> {
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
    pub fn new(amount: Amount, field: Option<&str>) -> Result<Self> {
        Ok(Self { amount: amount.number()?, field: field.map(str::to_owned), default: Some(Number::from(0)) })
    }

    /// The new stored value, from the current one (`None`: the key is absent).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a base that is not a number (or not an object with a field),
    /// or a result that is not finite; [`Error::NotFound`] without a default.
    pub fn apply(&self, key: &str, current: Option<Value>) -> Result<Value> {
        let missing = || Error::NotFound { key: key.to_owned() };
        match &self.field {
            None => {
                let base = match current {
                    Some(value) => as_number(&value, "the stored value")?,
                    None => self.default.clone().ok_or_else(missing)?,
                };
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
                    None if self.default.is_some() => Map::new(),
                    None => return Err(missing()),
                };
                let base = match object.get(field) {
                    Some(value) => as_number(value, "the field")?,
                    None => self.default.clone().ok_or_else(|| Error::NotFound { key: format!("{key}.{field}") })?,
                };
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
pub fn patch(key: &str, current: Option<Value>, changes: Map<String, Value>, create: bool) -> Result<Value> {
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
///
/// # Errors
///
/// [`Error::Validation`] when it is not one.
pub fn changes(value: Value) -> Result<Map<String, Value>> {
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

    fn inc(amount: f64, field: Option<&str>, default: Option<f64>) -> Increment {
        Increment {
            amount: number(amount).unwrap(),
            field: field.map(str::to_owned),
            default: default.map(|d| number(d).unwrap()),
        }
    }

    #[test]
    fn numbers_add_and_stay_integers() {
        assert_eq!(inc(3.0, None, None).apply("k", Some(json!(2))).unwrap(), json!(5.0));
        let whole = Increment { amount: Number::from(3), field: None, default: None };
        assert_eq!(whole.apply("k", Some(json!(2))).unwrap(), json!(5));
        assert_eq!(
            Increment { amount: Number::from(-1), field: None, default: None }.apply("k", Some(json!(2))).unwrap(),
            json!(1)
        );
        assert_eq!(inc(0.5, None, Some(1.0)).apply("k", None).unwrap(), json!(1.5));
    }

    #[test]
    fn bad_bases_are_rejected() {
        assert!(matches!(inc(1.0, None, None).apply("k", None), Err(Error::NotFound { .. })));
        assert!(matches!(inc(1.0, None, None).apply("k", Some(json!(true))), Err(Error::Validation { .. })));
        assert!(matches!(inc(1.0, None, None).apply("k", Some(Value::Null)), Err(Error::Validation { .. })));
        assert!(matches!(inc(f64::MAX, None, None).apply("k", Some(json!(f64::MAX))), Err(Error::Validation { .. })));
        assert!(number(f64::INFINITY).is_err());
    }

    #[test]
    fn fields_of_objects() {
        let hits = inc(1.0, Some("hits"), Some(0.0));
        assert_eq!(hits.apply("k", None).unwrap(), json!({"hits": 1.0}));
        assert_eq!(hits.apply("k", Some(json!({"hits": 2.0, "x": 1}))).unwrap(), json!({"hits": 3.0, "x": 1}));
        assert!(matches!(inc(1.0, Some("n"), None).apply("k", Some(json!({}))), Err(Error::NotFound { .. })));
        assert!(matches!(hits.apply("k", Some(json!([1]))), Err(Error::Validation { .. })));
    }

    #[test]
    fn patch_merges_one_level() {
        let merged = patch(
            "k",
            Some(json!({"nested": {"a": 1}, "keep": true})),
            changes(json!({"nested": {"b": 2}})).unwrap(),
            false,
        );
        assert_eq!(merged.unwrap(), json!({"nested": {"b": 2}, "keep": true}));
        assert!(matches!(patch("k", None, Map::new(), false), Err(Error::NotFound { .. })));
        assert_eq!(patch("k", None, changes(json!({"a": 1})).unwrap(), true).unwrap(), json!({"a": 1}));
        assert!(changes(json!([1])).is_err());
    }
}
