//! The token readers of encrypted stores (AES-GCM, ChaCha20-Poly1305, Fernet) on arbitrary
//! stored bytes: a row holding what no key sealed is refused (a wrong-key or a decode error),
//! whether it is read alone, listed or scanned; nothing panics, and the store goes on working.
//!
//! Input: a byte choosing the mode and whether the row is a BLOB or TEXT, then the row.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nanasqlite::{Encryption, Error, NanaSQLite, Scan, SqlValue, params};
use serde_json::Value;

thread_local! {
    static STORES: Vec<NanaSQLite> = [
        Encryption::aes_gcm([7u8; 16]),
        Encryption::aes_gcm([7u8; 32]),
        Encryption::chacha20([7u8; 32]),
        Encryption::fernet("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="),
    ]
    .into_iter()
    .map(|encryption| NanaSQLite::builder(":memory:").encryption(encryption.unwrap()).open().unwrap())
    .collect();
}

/// Whether `result` is the refusal of a row no key sealed.
fn refused<T>(result: &nanasqlite::Result<T>) -> bool {
    matches!(result, Err(Error::WrongKey { .. } | Error::Decode { .. } | Error::DecodeRow { .. }))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, row)) = data.split_first() else { return };
    STORES.with(|stores| {
        let db = &stores[usize::from(selector) % stores.len()];
        let stored = if selector & 0x80 == 0 {
            SqlValue::Blob(row.to_vec())
        } else {
            SqlValue::Text(String::from_utf8_lossy(row).into_owned())
        };
        db.execute("INSERT OR REPLACE INTO data (key, value) VALUES ('forged', ?)", [stored]).unwrap();
        db.clear_cache();
        let read = db.get::<Value>("forged");
        assert!(read.is_ok() || refused(&read), "get: {read:?}");
        let items = db.items::<Value>();
        assert!(items.is_ok() || refused(&items), "items: {items:?}");
        let scanned = db.scan::<Value>(Scan::all());
        assert!(scanned.is_ok() || refused(&scanned), "scan: {scanned:?}");
        db.execute("DELETE FROM data", params![]).unwrap();
        db.clear_cache();
        db.set("after", &1).unwrap();
        assert_eq!(db.get::<i64>("after").unwrap(), Some(1), "the store goes on working");
    });
});
