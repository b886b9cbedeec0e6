//! The transforms behind `increment` and `patch`: pure functions from the stored JSON text to
//! the new JSON text, run by the engine's [`Transform`] inside one write transaction (atomic
//! across threads and processes).
//!
//! They work on the text, not on a parsed [`serde_json::Value`], so that nothing they do not
//! touch changes: a field holding Python's `2**70` is written back digit for digit, and integer
//! arithmetic is exact (up to 128 bits; beyond, an error, never a float).

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

use crate::codec;
use crate::engine::Transform;
use crate::error::{Error, Result};

/// A change of one stored value's JSON text (`None`: absent) into the new JSON text, for
/// [`Transform`].
pub(crate) trait Rewrite: Fn(&str, Option<&str>) -> Result<String> + Send + 'static {}

impl<F: Fn(&str, Option<&str>) -> Result<String> + Send + 'static> Rewrite for F {}

/// The `increment` operation: `amount` added to `key`'s number (or its `field`), a missing
/// one counting as `start`.
///
/// # Errors
///
/// [`Error::Validation`] for a non-finite amount or start.
pub(crate) fn increment<K: AsRef<str>>(
    key: K,
    amount: Amount,
    field: Option<&str>,
    start: Amount,
) -> Result<Transform<K, impl Rewrite + use<K>>> {
    amount.check()?;
    start.check()?;
    let (field, start) = (field.map(str::to_owned), Number::from(start));
    Ok(Transform::new("increment", key, move |_: &str, current: Option<&str>| match &field {
        None => add_to_number(current, amount, start),
        Some(field) => add_to_field(current, field, amount, start),
    }))
}

/// The `patch` operation: `changes` (an object) merged into the object under `key`, one level
/// deep (a nested object in `changes` replaces the stored one, as Python's `dict.update`).
///
/// # Errors
///
/// [`Error::Encode`] when `changes` cannot be JSON; [`Error::Validation`] when it is not an object.
pub(crate) fn patch<K: AsRef<str>, T: Serialize + ?Sized>(
    key: K,
    changes: &T,
    create: bool,
) -> Result<Transform<K, impl Rewrite + use<K, T>>> {
    let text = codec::encode(key.as_ref(), changes)?;
    let changes = RawObject::parse(&text).map_err(|_| not_an_object("patch changes", &text))?;
    Ok(Transform::new("patch", key, move |key: &str, current: Option<&str>| {
        let mut object = match current {
            Some(current) => {
                RawObject::parse(current).map_err(|_| not_an_object("the stored value to patch", current))?
            }
            None if create => RawObject::default(),
            None => return Err(Error::NotFound { key: key.to_owned() }),
        };
        for (field, value) in &changes.0 {
            object.set(field, value.clone());
        }
        object.to_text()
    }))
}

/// How much `increment` adds: an integer stays an integer (Python reads `2 + 3` back as `5`,
/// not `5.0`), a float makes the result a float. Every integer type converts into it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    /// A whole number.
    Int(i128),
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

amount_from!(Int: i8, i16, i32, i64, i128, u8, u16, u32, u64);
amount_from!(Float: f32, f64);

impl From<usize> for Amount {
    fn from(value: usize) -> Self {
        Self::Int(i128::try_from(value).unwrap_or(i128::MAX))
    }
}

impl From<isize> for Amount {
    fn from(value: isize) -> Self {
        Self::Int(i128::try_from(value).unwrap_or(i128::MAX))
    }
}

impl Amount {
    fn check(self) -> Result<()> {
        match self {
            Self::Float(f) if !f.is_finite() => Err(Error::validation("amount must be finite")),
            _ => Ok(()),
        }
    }
}

/// A stored number: an exact integer, or a float.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Number {
    Int(i128),
    Float(f64),
}

impl From<Amount> for Number {
    fn from(amount: Amount) -> Self {
        match amount {
            Amount::Int(i) => Self::Int(i),
            Amount::Float(f) => Self::Float(f),
        }
    }
}

impl Number {
    /// The number in JSON `text` (a whole integer literal is kept exact).
    fn parse(text: &str, what: &str) -> Result<Self> {
        let text = text.trim();
        let digits = text.strip_prefix('-').unwrap_or(text);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().map(Self::Int).map_err(|_| {
                Error::validation(format!("{what} {text} is too large for exact arithmetic (more than 128 bits)"))
            });
        }
        let text = codec::without_non_finite(text);
        match serde_json::from_str::<f64>(&text) {
            Ok(f) => Ok(Self::Float(f)),
            Err(_) => Err(Error::validation(format!("{what} must be a number, not {}", kind(&text)))),
        }
    }

    fn plus(self, amount: Amount) -> Result<Self> {
        let sum = match (self, amount) {
            (Self::Int(a), Amount::Int(b)) => {
                return a
                    .checked_add(b)
                    .map(Self::Int)
                    .ok_or_else(|| Error::validation(format!("{a} + {b} overflows 128 bits; nothing was written")));
            }
            (Self::Int(a), Amount::Float(b)) => a as f64 + b,
            (Self::Float(a), Amount::Int(b)) => a + b as f64,
            (Self::Float(a), Amount::Float(b)) => a + b,
        };
        if sum.is_finite() { Ok(Self::Float(sum)) } else { Err(Error::validation("increment result must be finite")) }
    }

    fn to_text(self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Float(f) => serde_json::Number::from_f64(f).map_or_else(|| "null".to_owned(), |n| n.to_string()),
        }
    }
}

fn add_to_number(current: Option<&str>, amount: Amount, start: Number) -> Result<String> {
    let base = current.map_or(Ok(start), |text| Number::parse(text, "the stored value"))?;
    Ok(base.plus(amount)?.to_text())
}

fn add_to_field(current: Option<&str>, field: &str, amount: Amount, start: Number) -> Result<String> {
    let mut object = match current {
        Some(text) => RawObject::parse(text)
            .map_err(|_| not_an_object("the stored value must be an object when a field is given:", text))?,
        None => RawObject::default(),
    };
    let base = object.get(field).map_or(Ok(start), |raw| Number::parse(raw.get(), "the field"))?;
    object.set(field, raw(base.plus(amount)?.to_text())?);
    object.to_text()
}

fn raw(text: String) -> Result<Box<RawValue>> {
    RawValue::from_string(text).map_err(|source| Error::Encode { key: String::new(), source })
}

fn not_an_object(what: &str, text: &str) -> Error {
    Error::validation(format!("{what} must be an object, not {}", kind(text)))
}

/// What kind of JSON value `text` holds, from its first character.
fn kind(text: &str) -> &'static str {
    match text.trim_start().bytes().next() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a bool",
        Some(b'n') => "null",
        Some(b'-' | b'0'..=b'9') => "a number",
        _ => "JSON",
    }
}

/// A JSON object whose fields are kept as their text, in order: what is not changed is written
/// back exactly as it was read.
#[derive(Debug, Default)]
struct RawObject(Vec<(String, Box<RawValue>)>);

impl RawObject {
    fn parse(text: &str) -> std::result::Result<Self, serde_json::Error> {
        serde_json::from_str(&codec::without_non_finite(text))
    }

    fn get(&self, field: &str) -> Option<&RawValue> {
        self.0.iter().find(|(name, _)| name == field).map(|(_, value)| &**value)
    }

    fn set(&mut self, field: &str, value: Box<RawValue>) {
        match self.0.iter_mut().find(|(name, _)| name == field) {
            Some((_, existing)) => *existing = value,
            None => self.0.push((field.to_owned(), value)),
        }
    }

    fn to_text(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|source| Error::Encode { key: String::new(), source })
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Fields;

        impl<'de> Visitor<'de> for Fields {
            type Value = RawObject;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<RawObject, A::Error> {
                let mut object = RawObject::default();
                // A repeated name keeps its last value, as Python's json does.
                while let Some((name, value)) = map.next_entry::<Cow<'de, str>, Box<RawValue>>()? {
                    object.set(&name, value);
                }
                Ok(object)
            }
        }

        deserializer.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(current: Option<&str>, amount: impl Into<Amount>) -> Result<String> {
        add_to_number(current, amount.into(), Number::Int(0))
    }

    #[test]
    fn integers_stay_exact_and_floats_stay_floats() {
        assert_eq!(inc(None, 2).unwrap(), "2", "a missing key starts from 0");
        assert_eq!(inc(Some("2"), 3).unwrap(), "5");
        assert_eq!(inc(Some("2"), -3).unwrap(), "-1");
        assert_eq!(inc(Some("2"), 0.5).unwrap(), "2.5");
        assert_eq!(inc(Some("2.0"), 1).unwrap(), "3.0");
        assert_eq!(inc(Some("9223372036854775807"), 1).unwrap(), "9223372036854775808", "past i64, exact");
        assert_eq!(inc(Some("9223372036854775808"), 0).unwrap(), "9223372036854775808", "Python's 2**63");
        assert_eq!(inc(Some("1180591620717411303424"), 1).unwrap(), "1180591620717411303425", "2**70 + 1");
        assert_eq!(inc(Some(" 7 "), 1_usize).unwrap(), "8");
        assert_eq!(
            inc(Some("NaN"), 1).unwrap_err().to_string(),
            "invalid input: the stored value must be a number, not null"
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_float() {
        let error = inc(Some(&i128::MAX.to_string()), 1).unwrap_err();
        assert!(error.to_string().contains("overflows"), "{error}");
        let error = inc(Some(&format!("{}0", u128::MAX)), 0).unwrap_err();
        assert!(error.to_string().contains("too large"), "{error}");
        assert!(inc(Some(&f64::MAX.to_string()), f64::MAX).is_err(), "a non-finite result");
        assert!(Amount::from(f64::NAN).check().is_err());
    }

    #[test]
    fn bad_bases_are_rejected() {
        for (text, kind) in [("true", "a bool"), ("null", "null"), ("\"1\"", "a string"), ("[1]", "an array")] {
            let error = inc(Some(text), 1).unwrap_err();
            assert!(error.to_string().contains(kind), "{text}: {error}");
        }
    }

    #[test]
    fn fields_change_alone() {
        let field = |current, amount| add_to_field(current, "hits", Amount::Int(amount), Number::Int(0)).unwrap();
        assert_eq!(field(None, 1), r#"{"hits":1}"#);
        assert_eq!(
            field(Some(r#"{"hits": 2, "big": 1180591620717411303424, "f": 1.10}"#), 1),
            r#"{"hits":3,"big":1180591620717411303424,"f":1.10}"#
        );
        assert_eq!(field(Some(r#"{"x": 1}"#), 5), r#"{"x":1,"hits":5}"#, "a missing field starts from 0");
        assert!(add_to_field(Some("[1]"), "hits", Amount::Int(1), Number::Int(0)).is_err());
    }

    #[test]
    fn raw_objects_keep_untouched_fields_exactly() {
        let mut object = RawObject::parse(r#"{"a": 1, "big": 1180591620717411303424, "a": 2, "n": NaN}"#).unwrap();
        object.set("c", raw("[1, 2]".to_owned()).unwrap());
        assert_eq!(object.to_text().unwrap(), r#"{"a":2,"big":1180591620717411303424,"n":null,"c":[1, 2]}"#);
        assert!(RawObject::parse("[1]").is_err());
    }
}
