//! The value codec: the only place values meet serde, and where stored rows become cache
//! entries.
//!
//! Values are written as compact JSON (the same bytes Python NanaSQLite writes with orjson).
//! Reading accepts any valid JSON, including Python's spaced form (`{"a": 1}`), and the bare
//! `NaN`, `Infinity` and `-Infinity` tokens that Python's stdlib `json` writes for non-finite
//! floats. JSON has no such numbers, so **they are read as `null`**: the value orjson writes for
//! them, so a file reads the same whichever Python backend wrote it.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cache::{CachedValue, Loaded};
use crate::encryption::Encryption;
use crate::error::{Error, Result};
use crate::storage::{Stored, StoredRef};

/// How one table's values are kept in storage: JSON text as it is, or encrypted.
#[derive(Clone, Debug, Default)]
pub(crate) struct ValueCodec {
    encryption: Option<Encryption>,
    allow_legacy_plaintext: bool,
}

/// A value ready for storage: borrowed from its JSON text, or made for storage.
#[derive(Debug)]
pub(crate) enum Sealed<'a> {
    /// Stored as the JSON text itself.
    Text(&'a str),
    /// Stored as these bytes (a BLOB): the encrypted text.
    Blob(Vec<u8>),
}

impl Sealed<'_> {
    /// The stored form, owned.
    pub(crate) fn into_stored(self) -> Stored {
        match self {
            Self::Text(json) => Stored::Text(json.as_bytes().to_vec()),
            Self::Blob(bytes) => Stored::Blob(bytes),
        }
    }

    pub(crate) fn stored(&self) -> StoredRef<'_> {
        match self {
            Self::Text(json) => StoredRef::Text(json.as_bytes()),
            Self::Blob(bytes) => StoredRef::Blob(bytes),
        }
    }
}

impl ValueCodec {
    /// Values encrypted with `encryption` (or not); with `allow_legacy_plaintext`, plaintext
    /// rows of an AEAD-encrypted table are read as they are instead of failing.
    pub(crate) fn new(encryption: Option<Encryption>, allow_legacy_plaintext: bool) -> Self {
        Self { encryption, allow_legacy_plaintext }
    }

    /// Whether values are encrypted.
    pub(crate) fn is_encrypted(&self) -> bool {
        self.encryption.is_some()
    }

    /// `json` as it is to be stored.
    ///
    /// # Errors
    ///
    /// Only when encryption fails (the OS gave no randomness).
    pub(crate) fn seal<'a>(&self, json: &'a str) -> Result<Sealed<'a>> {
        match &self.encryption {
            None => Ok(Sealed::Text(json)),
            Some(encryption) => encryption.encrypt(json.as_bytes()).map(Sealed::Blob),
        }
    }

    /// The cache entry for a stored value: its JSON text, or, for a row that cannot be read
    /// as JSON text, why (so that it fails for its key alone).
    pub(crate) fn read(&self, stored: StoredRef<'_>) -> Arc<CachedValue> {
        match (stored, &self.encryption) {
            (StoredRef::Text(bytes), None) => text(bytes),
            (StoredRef::Blob(bytes), None) => CachedValue::unreadable(format!(
                "the stored value is binary ({} bytes), not JSON text: it was probably encrypted \
                 (Python NanaSQLite's encryption_key); open the store with its key",
                bytes.len()
            )),
            (StoredRef::Blob(bytes), Some(encryption)) => self.decrypted(encryption, bytes),
            (StoredRef::Text(bytes), Some(encryption)) => {
                if encryption.is_aead() {
                    self.legacy_plaintext(bytes)
                } else {
                    // Fernet tokens are text too; Python reads a TEXT row as a token.
                    match encryption.decrypt(bytes) {
                        Ok(plaintext) => owned_text(plaintext),
                        Err(_) if self.allow_legacy_plaintext => text(bytes),
                        Err(why) => CachedValue::undecryptable(why),
                    }
                }
            }
        }
    }

    /// Adds a stored row to a bulk load: plaintext JSON is copied straight in, without an
    /// entry of its own; any other row is read as [`read`](Self::read) reads it.
    pub(crate) fn load(&self, loaded: &mut Loaded, key: &str, stored: StoredRef<'_>) {
        if let (StoredRef::Text(bytes), None) = (stored, &self.encryption)
            && let Ok(json) = std::str::from_utf8(bytes)
        {
            return loaded.push(key, json);
        }
        let value = self.read(stored);
        match value.json() {
            Some(json) => loaded.push(key, json),
            None => loaded.keep(key, value),
        }
    }

    fn decrypted(&self, encryption: &Encryption, bytes: &[u8]) -> Arc<CachedValue> {
        match encryption.decrypt(bytes) {
            Ok(plaintext) => owned_text(plaintext),
            Err(why) => CachedValue::undecryptable(why),
        }
    }

    fn legacy_plaintext(&self, bytes: &[u8]) -> Arc<CachedValue> {
        if self.allow_legacy_plaintext {
            text(bytes)
        } else {
            CachedValue::unreadable(
                "the stored value is plaintext in an encrypted table; open with allow_legacy_plaintext(true) to \
                 read such rows (Python NanaSQLite 1.6.2's allow_legacy_plaintext)"
                    .to_owned(),
            )
        }
    }

    /// As [`read`](Self::read), taking the stored value: JSON text is kept without a copy.
    pub(crate) fn read_owned(&self, stored: Stored) -> Arc<CachedValue> {
        match (stored, &self.encryption) {
            (Stored::Text(bytes), None) => match String::from_utf8(bytes) {
                Ok(json) => CachedValue::new(json),
                Err(error) => self.read(StoredRef::Text(error.as_bytes())),
            },
            (stored, _) => self.read(stored.as_ref()),
        }
    }
}

/// The cache entry for stored text: the JSON text, or why it cannot be read.
fn text(bytes: &[u8]) -> Arc<CachedValue> {
    match std::str::from_utf8(bytes) {
        Ok(json) => CachedValue::new(json),
        Err(error) => CachedValue::unreadable(format!(
            "the stored text is not valid UTF-8 ({error}); another tool wrote it, so it is left as it is"
        )),
    }
}

/// The cache entry for decrypted bytes.
fn owned_text(plaintext: Vec<u8>) -> Arc<CachedValue> {
    match String::from_utf8(plaintext) {
        Ok(json) => CachedValue::new(json),
        Err(_) => CachedValue::unreadable("the decrypted value is not UTF-8 JSON text".to_owned()),
    }
}

/// Serialises `value` as compact JSON text, naming `key` on failure.
///
/// # Errors
///
/// [`Error::Encode`] when `value` cannot be represented as JSON (e.g. a map with non-string keys).
pub(crate) fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Box<str>> {
    ENCODE_BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => encode_into(&mut buffer, key, value),
        // A `Serialize` impl that writes to a store while it is being encoded.
        Err(_) => encode_into(&mut Vec::new(), key, value),
    })
}

thread_local! {
    /// Where this thread serialises values: the text is then copied into one allocation of its
    /// exact size. Serialising straight into a growing `String` reallocates it several times
    /// and leaves the unused tail of each value's buffer behind as a small free block, which
    /// fragments the heap of a process that writes many values.
    static ENCODE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Bytes of buffer a thread keeps between values; a larger value's buffer is let go.
const KEPT_BUFFER: usize = 64 * 1024;

fn encode_into<T: Serialize + ?Sized>(buffer: &mut Vec<u8>, key: &str, value: &T) -> Result<Box<str>> {
    buffer.clear();
    let encode_error = |source| Error::Encode { key: key.to_owned(), source };
    serde_json::to_writer(&mut *buffer, value).map_err(encode_error)?;
    // serde_json writes UTF-8; the check costs little beside the serialising.
    let json = std::str::from_utf8(buffer).map_err(|error| encode_error(serde::ser::Error::custom(error)))?;
    check_depth(key, json)?;
    let text = Box::from(json);
    if buffer.capacity() > KEPT_BUFFER {
        *buffer = Vec::new();
    }
    Ok(text)
}

/// Refuses JSON text nested deeper than [`MAX_WRITE_DEPTH`], naming `key`.
///
/// # Errors
///
/// [`Error::Encode`].
pub(crate) fn check_depth(key: &str, json: &str) -> Result<()> {
    // Nesting deeper than MAX_WRITE_DEPTH takes at least two bytes a level.
    if json.len() > 2 * MAX_WRITE_DEPTH {
        let depth = nesting(json);
        if depth > MAX_WRITE_DEPTH {
            let why = format!(
                "the value is nested {depth} levels deep; at most {MAX_WRITE_DEPTH} are written, so that Python \
                 NanaSQLite (and this crate) can read it back"
            );
            return Err(Error::Encode { key: key.to_owned(), source: serde::ser::Error::custom(why) });
        }
    }
    Ok(())
}

/// The deepest nesting of arrays and objects written. Python NanaSQLite reads about 1,000
/// levels with its `json` backend (fewer, the deeper its own call stack) and 1,024 with orjson;
/// 512 leaves a margin.
pub(crate) const MAX_WRITE_DEPTH: usize = 512;

/// The deepest nesting read: beyond what Python can write (about 1,000 levels with `json`, 254
/// with orjson), so that every file it writes reads here; deeper text is a decode error.
pub(crate) const MAX_READ_DEPTH: usize = 2048;

/// Parses stored JSON text into a [`Value`], naming `key` on failure.
///
/// # Errors
///
/// [`Error::Decode`] when the text is not JSON.
pub(crate) fn parse(key: &str, json: &str) -> Result<Value> {
    decode(key, json)
}

/// Parses stored JSON text into the caller's type, naming `key` on failure. The fast path is
/// one serde_json parse; Python's non-finite tokens and nesting past serde_json's own limit of
/// 128 are handled only when that fails.
///
/// # Errors
///
/// [`Error::Decode`] when the text is not JSON, is nested more than [`MAX_READ_DEPTH`] levels,
/// or does not fit `T`.
pub(crate) fn decode<T: DeserializeOwned>(key: &str, json: &str) -> Result<T> {
    let decoded = match parse_text(json) {
        Ok(value) => return Ok(value),
        Err(source) => match replace_non_finite(json) {
            Some(rewritten) => parse_text(&rewritten),
            None => Err(source),
        },
    };
    decoded.map_err(|source| Error::Decode { key: key.to_owned(), source })
}

/// One parse; past serde_json's recursion limit, another that grows the stack on the heap as it
/// goes deeper (so no depth up to [`MAX_READ_DEPTH`] can overflow a thread's stack).
fn parse_text<T: DeserializeOwned>(json: &str) -> std::result::Result<T, serde_json::Error> {
    match serde_json::from_str(json) {
        Err(error) if error.to_string().starts_with("recursion limit exceeded") => parse_deep(json),
        parsed => parsed,
    }
}

fn parse_deep<T: DeserializeOwned>(json: &str) -> std::result::Result<T, serde_json::Error> {
    let depth = nesting(json);
    if depth > MAX_READ_DEPTH {
        let why = format!("the value is nested {depth} levels deep; at most {MAX_READ_DEPTH} are read");
        return Err(serde::de::Error::custom(why));
    }
    let mut deserializer = serde_json::Deserializer::from_str(json);
    deserializer.disable_recursion_limit();
    let value = T::deserialize(serde_stacker::Deserializer::new(&mut deserializer))?;
    deserializer.end()?;
    Ok(value)
}

/// The deepest nesting of arrays and objects in `json`, outside string literals: one pass.
pub(crate) fn nesting(json: &str) -> usize {
    let bytes = json.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i += string_literal_len(&json[i..]) - 1,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// `json` with Python's non-finite tokens as `null` (borrowed when it has none).
pub(crate) fn without_non_finite(json: &str) -> std::borrow::Cow<'_, str> {
    replace_non_finite(json).map_or(std::borrow::Cow::Borrowed(json), std::borrow::Cow::Owned)
}

/// Rewrites Python's `NaN`/`Infinity`/`-Infinity` tokens outside string literals to `null`.
///
/// Returns `None` when there is no such token, so callers keep the original parse error.
/// One linear pass; string literals (with their escapes) are copied untouched.
fn replace_non_finite(json: &str) -> Option<String> {
    const TOKENS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    let mut replaced = false;
    while let Some(c) = rest.chars().next() {
        if c == '"' {
            let end = string_literal_len(rest);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        } else if let Some(token) = TOKENS.iter().find(|t| rest.starts_with(**t)) {
            out.push_str("null");
            rest = &rest[token.len()..];
            replaced = true;
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    replaced.then_some(out)
}

/// Byte length of the string literal at the start of `text` (which starts with `"`),
/// including both quotes; the rest of the text if the literal is unterminated.
fn string_literal_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_value_gets_its_exact_text_whatever_came_before_or_encodes_inside_it() {
        struct EncodesWhileEncoded;
        impl Serialize for EncodesWhileEncoded {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                let inner = encode("inner", &[1, 2]).map_err(serde::ser::Error::custom)?;
                serializer.serialize_str(&inner)
            }
        }
        let big = "x".repeat(KEPT_BUFFER * 2);
        assert_eq!(&*encode("k", &big).unwrap(), format!("\"{big}\""));
        assert_eq!(&*encode("k", &json!({"a": 1})).unwrap(), r#"{"a":1}"#, "no tail of the longer value");
        assert_eq!(&*encode("k", &EncodesWhileEncoded).unwrap(), r#""[1,2]""#);
        ENCODE_BUFFER.with(|buffer| assert!(buffer.borrow().capacity() <= KEPT_BUFFER, "a large buffer is let go"));
    }

    #[test]
    fn writes_compact_json() {
        let text = encode("k", &json!({"a": 1, "b": [1, 2], "s": "日本"})).unwrap();
        assert_eq!(&*text, r#"{"a":1,"b":[1,2],"s":"日本"}"#);
    }

    #[test]
    fn reads_python_spaced_json() {
        assert_eq!(parse("k", r#"{"a": 1, "b": [1, 2]}"#).unwrap(), json!({"a": 1, "b": [1, 2]}));
    }

    #[test]
    fn reads_non_finite_tokens_as_null() {
        let value = parse("k", r#"{"n": NaN, "i": Infinity, "m": -Infinity, "l": [NaN]}"#).unwrap();
        assert_eq!(value, json!({"n": null, "i": null, "m": null, "l": [null]}));
        assert_eq!(parse("k", "NaN").unwrap(), Value::Null);
    }

    #[test]
    fn keeps_tokens_inside_strings() {
        let value = parse("k", r#"{"NaN": "Infinity \" NaN", "x": NaN}"#).unwrap();
        assert_eq!(value, json!({"NaN": "Infinity \" NaN", "x": null}));
    }

    #[test]
    fn invalid_json_is_a_decode_error_naming_the_key() {
        for bad in ["{", "not json", "", "Nan", "\"unterminated"] {
            let error = parse("bad key", bad).unwrap_err();
            assert!(matches!(&error, Error::Decode { key, .. } if key == "bad key"), "{bad}");
        }
    }

    #[test]
    fn deep_values_read_as_deep_as_python_writes_and_write_as_deep_as_python_reads() {
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        for depth in [127, 128, 255, 997, MAX_READ_DEPTH] {
            let value: Value = decode("k", &nested(depth)).unwrap();
            assert!(value.is_array(), "{depth}");
            assert_eq!(nesting(&nested(depth)), depth);
            std::mem::forget(value); // dropping a deep value recurses too; not what is tested here
        }
        let error = decode::<Value>("k", &nested(MAX_READ_DEPTH + 1)).unwrap_err();
        assert!(error.to_string().contains("levels deep"), "{error}");
        let deep: Value = decode("k", &nested(MAX_WRITE_DEPTH)).unwrap();
        assert_eq!(&*encode("k", &deep).unwrap(), nested(MAX_WRITE_DEPTH));
        let deeper: Value = decode("k", &nested(MAX_WRITE_DEPTH + 1)).unwrap();
        let error = encode("k", &deeper).unwrap_err();
        assert!(matches!(&error, Error::Encode { key, .. } if key == "k"), "{error}");
        assert!(error.to_string().contains("513 levels"), "{error}");
        assert_eq!(nesting(r#"{"a": "[[[", "b": [{}]}"#), 3, "brackets in strings do not count");
        std::mem::forget((deep, deeper));
    }

    #[test]
    fn unserialisable_values_are_encode_errors() {
        let mut map = std::collections::HashMap::new();
        map.insert((1, 2), 3);
        assert!(matches!(encode("k", &map), Err(Error::Encode { key, .. }) if key == "k"));
    }

    #[test]
    fn wrong_type_is_a_decode_error() {
        let error = decode::<u32>("k", "\"text\"").unwrap_err();
        assert!(matches!(error, Error::Decode { .. }));
    }
}
