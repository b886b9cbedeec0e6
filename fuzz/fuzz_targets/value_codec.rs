//! The value codec on arbitrary input: any JSON text, and any text as a string value, under any
//! key, is stored and read back as it was written (from the cache and from the file), or
//! refused with an error; nothing panics.
//!
//! Input: a byte giving the key's length, the key, then the value's text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nanasqlite::NanaSQLite;
use serde::Deserialize;
use serde_json::Value;

thread_local! {
    static STORE: NanaSQLite = NanaSQLite::open(":memory:").unwrap();
}

/// `text` as JSON, however deeply it nests (the stack grows on the heap, as the store's does).
fn parsed(text: &str) -> Option<Value> {
    let mut json = serde_json::Deserializer::from_str(text);
    json.disable_recursion_limit();
    let value = Value::deserialize(serde_stacker::Deserializer::new(&mut json)).ok()?;
    json.end().ok()?;
    Some(value)
}

/// Writes `value` under `key` and checks it reads back equal, cached and from the file.
fn round_trip<T>(db: &NanaSQLite, key: &str, value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if db.set(key, value).is_err() {
        return; // refused (a key or value SQLite cannot hold): an error, not a panic
    }
    assert_eq!(db.get::<T>(key).unwrap().as_ref(), Some(value), "cached, under {key:?}");
    db.clear_cache();
    assert_eq!(db.get::<T>(key).unwrap().as_ref(), Some(value), "from the file, under {key:?}");
    assert!(db.delete(key).unwrap());
}

fuzz_target!(|data: &[u8]| {
    let Some((&length, rest)) = data.split_first() else { return };
    let split = usize::from(length).min(rest.len());
    let key = String::from_utf8_lossy(&rest[..split]);
    let Ok(text) = std::str::from_utf8(&rest[split..]) else { return };
    STORE.with(|db| {
        round_trip(db, &key, &text.to_owned());
        if let Some(value) = parsed(text) {
            round_trip(db, &key, &value);
        }
    });
});
