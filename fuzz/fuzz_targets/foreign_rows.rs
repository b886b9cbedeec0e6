//! A file whose key/value table another tool filled with arbitrary rows (any type of key and
//! value: text that is not JSON, integers, reals, blobs, NULLs): every read of the store
//! answers or fails with an error, never panics, and the store goes on working.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nanasqlite::{NanaSQLite, Scan, SqlValue, params};
use serde_json::Value;

/// A column value as another tool may store it.
#[derive(Arbitrary, Debug)]
enum Stored {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<Stored> for SqlValue {
    fn from(stored: Stored) -> Self {
        match stored {
            Stored::Null => SqlValue::Null,
            Stored::Integer(n) => SqlValue::Integer(n),
            Stored::Real(x) => SqlValue::Real(x),
            Stored::Text(text) => SqlValue::Text(text),
            Stored::Blob(bytes) => SqlValue::Blob(bytes),
        }
    }
}

thread_local! {
    static STORE: NanaSQLite = NanaSQLite::open(":memory:").unwrap();
}

fuzz_target!(|rows: Vec<(Stored, Stored)>| {
    STORE.with(|db| {
        db.execute("DELETE FROM data", params![]).unwrap();
        let mut keys = Vec::new();
        for (key, value) in rows.into_iter().take(32) {
            if let Stored::Text(text) = &key {
                keys.push(text.clone());
            }
            // The table's own constraints may refuse a row (a NULL or repeated key): so be it.
            let _ = db.execute("INSERT INTO data (key, value) VALUES (?, ?)", [SqlValue::from(key), SqlValue::from(value)]);
        }
        db.clear_cache();
        for key in &keys {
            let _ = db.get::<Value>(key);
            let _ = db.contains(key);
        }
        let _ = db.keys();
        let _ = db.len();
        let _ = db.items::<Value>();
        let _ = db.to_dict::<Value>();
        let _ = db.scan::<Value>(Scan::all());
        for row in db.iter::<Value>(Scan::all()).into_iter().flatten() {
            let _ = row;
        }
        db.set("after", &1).unwrap();
        assert_eq!(db.get::<i64>("after").unwrap(), Some(1), "the store goes on working");
    });
});
