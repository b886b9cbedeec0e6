//! A conformance suite for [`Storage`] backends: what the engine relies on, checked on the
//! backend itself and through the sync store built on it. (The async store's half is
//! `nanasqlite_pool::conformance`.)
//!
//! A backend crate calls [`check`] from a test with a way to open fresh connections to one
//! empty database; it panics with the failed expectation.
//!
//! ```
//! use nanasqlite_core::storage::{conformance, ConnectionOptions, SqliteStorage};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("conformance.db");
//! conformance::check(|| SqliteStorage::open(&path, &ConnectionOptions::default()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde_json::json;

use super::{End, Storage, Stored, StoredRef, atomically};
use crate::error::{Error, Result};
use crate::identifier::Identifier;
use crate::{Builder, NanaSQLite};

/// Runs every check against connections from `open`, which must reach a database holding no
/// table named `conformance_a`, `conformance_b` or `conformance_store` yet.
///
/// # Panics
///
/// When the backend does not behave as the stores need; the message says what differed.
pub fn check<S: Storage>(open: impl Fn() -> Result<S>) {
    let mut storage = open().expect("the backend opens");
    let a = table(&storage, "conformance_a");
    let b = table(&storage, "conformance_b");
    single_rows(&storage, &a);
    tables_are_separate(&storage, &a, &b);
    many_rows(&mut storage, &a);
    transactions_end_as_told(&mut storage, &a);
    read_snapshots_read(&mut storage, &a);
    readers_read_and_refuse_writes(&storage, &a);
    odd_keys_round_trip(&storage, &b);
    storage.close().expect("the backend closes");
    sync_store(open().expect("the backend opens again"));
}

fn table<S: Storage>(storage: &S, name: &str) -> S::Table {
    let name = Identifier::new(name).expect("valid name");
    let table = storage.open_table(&name).expect("open_table creates a table");
    storage.open_table(&name).expect("open_table is idempotent");
    table
}

fn text(value: &str) -> Option<Stored> {
    Some(Stored::Text(value.as_bytes().to_vec()))
}

fn put<S: Storage>(storage: &S, t: &S::Table, key: &str, value: &str) -> Result<()> {
    storage.put(t, key, StoredRef::Text(value.as_bytes()))
}

fn single_rows<S: Storage>(storage: &S, t: &S::Table) {
    assert_eq!(storage.get(t, "k").unwrap(), None, "a missing key reads as None");
    assert!(!storage.contains(t, "k").unwrap(), "a missing key is not contained");
    put(storage, t, "k", "1").unwrap();
    put(storage, t, "k", "[2]").unwrap();
    assert_eq!(storage.get(t, "k").unwrap(), text("[2]"), "put replaces");
    assert!(storage.contains(t, "k").unwrap());
    assert_eq!(storage.count(t).unwrap(), 1);
    storage.put(t, "bytes", StoredRef::Blob(&[0, 159, 146, 150, 255])).unwrap();
    assert_eq!(storage.get(t, "bytes").unwrap(), Some(Stored::Blob(vec![0, 159, 146, 150, 255])), "blobs stay bytes");
    assert!(storage.delete(t, "k").unwrap(), "delete reports an existing key");
    assert!(!storage.delete(t, "k").unwrap(), "delete reports a missing key");
    storage.delete(t, "bytes").unwrap();
    assert_eq!(storage.count(t).unwrap(), 0);
}

fn tables_are_separate<S: Storage>(storage: &S, a: &S::Table, b: &S::Table) {
    put(storage, a, "shared", "\"a\"").unwrap();
    assert_eq!(storage.get(b, "shared").unwrap(), None, "tables do not share rows");
    storage.clear(a).unwrap();
}

fn many_rows<S: Storage>(storage: &mut S, t: &S::Table) {
    let rows: Vec<(String, String)> = (0..2000).rev().map(|i| (format!("key{i:04}"), i.to_string())).collect();
    atomically(storage, |s| s.put_many(t, &mut rows.iter().map(|(k, v)| (k.as_str(), StoredRef::Text(v.as_bytes())))))
        .unwrap();
    let keys = storage.keys(t).unwrap();
    assert_eq!(keys.len(), 2000);
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys come sorted");
    assert_eq!(storage.first_key(t).unwrap().as_deref(), Some("key0000"), "first_key is the first of keys");
    let page = |lower, after: Option<&[u8]>, descending| {
        let range = super::KeyRange { lower, upper: std::ops::Bound::Excluded("key1000"), after, descending, limit: 3 };
        let mut keys = Vec::new();
        storage.scan_page(t, &range, &mut |row| keys.push(row.key.unwrap().to_owned())).unwrap();
        keys
    };
    assert_eq!(page(std::ops::Bound::Included("key0005"), None, false), ["key0005", "key0006", "key0007"]);
    assert_eq!(page(std::ops::Bound::Unbounded, Some(b"key0005"), false), ["key0006", "key0007", "key0008"]);
    assert_eq!(
        page(std::ops::Bound::Unbounded, None, true),
        ["key0999", "key0998", "key0997"],
        "descending, upper bound"
    );
    let wanted: Vec<String> = (0..2100).step_by(2).map(|i| format!("key{i:04}")).collect();
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let mut found = Vec::new();
    storage.get_many(t, &wanted, &mut |k, v| found.push((k.to_owned(), v.to_owned()))).unwrap();
    assert_eq!(found.len(), 1000, "get_many finds exactly the existing keys, beyond one chunk");
    assert!(found.iter().all(|(k, v)| text(&k[3..].parse::<u32>().unwrap().to_string()).as_ref() == Some(v)));
    let mut scanned = 0;
    storage.scan(t, &mut |_, _| scanned += 1).unwrap();
    assert_eq!(scanned, 2000, "scan visits every row");
    let removed = atomically(storage, |s| s.delete_many(t, &wanted)).unwrap();
    assert_eq!(removed, 1000, "delete_many counts the keys that existed");
    assert_eq!(storage.clear(t).unwrap(), 1000, "clear counts the rows removed");
}

fn transactions_end_as_told<S: Storage>(storage: &mut S, t: &S::Table) {
    let failed: Result<()> = atomically(storage, |s| {
        put(s, t, "a", "1")?;
        Err(Error::validation("stop"))
    });
    assert!(failed.is_err());
    assert_eq!(storage.get(t, "a").unwrap(), None, "an erring transaction rolls back");
    storage.transaction(|s| (put(s, t, "a", "1"), End::Rollback)).unwrap().unwrap();
    assert_eq!(storage.get(t, "a").unwrap(), None, "End::Rollback rolls back");
    storage.transaction(|s| (put(s, t, "a", "1"), End::Commit)).unwrap().unwrap();
    assert_eq!(storage.get(t, "a").unwrap(), text("1"), "End::Commit commits");
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        storage.transaction(|s| -> ((), End) {
            put(s, t, "p", "1").unwrap();
            panic!("inside a transaction")
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(storage.get(t, "p").unwrap(), None, "a panicking transaction rolls back");
    put(storage, t, "after", "1").expect("and the connection stays usable");
    storage.clear(t).unwrap();
}

fn read_snapshots_read<S: Storage>(storage: &mut S, t: &S::Table) {
    put(storage, t, "r", "1").unwrap();
    let (value, count) = storage.read_snapshot(|s| (s.get(t, "r"), s.count(t))).unwrap();
    assert_eq!(value.unwrap(), text("1"));
    assert_eq!(count.unwrap(), 1);
    put(storage, t, "r", "2").unwrap();
    assert_eq!(storage.get(t, "r").unwrap(), text("2"), "the snapshot ended");
    storage.clear(t).unwrap();
}

fn readers_read_and_refuse_writes<S: Storage>(storage: &S, t: &S::Table) {
    let Some(open_reader) = storage.readers() else { return };
    put(storage, t, "seen", "1").unwrap();
    let reader = open_reader().expect("a reader opens");
    assert_eq!(reader.get(t, "seen").unwrap(), text("1"), "a reader sees committed rows");
    assert!(put(&reader, t, "written", "1").is_err(), "a reader refuses writes");
    reader.close().unwrap();
    storage.clear(t).unwrap();
}

fn odd_keys_round_trip<S: Storage>(storage: &S, t: &S::Table) {
    let keys = ["", " ", "日本語キー", "tab\there", "new\nline", "quote'\"", "back\\slash", "🦀", "nul\0byte"];
    let mut stored = Vec::new();
    for key in keys {
        match put(storage, t, key, "true") {
            Ok(()) => stored.push(key.to_owned()),
            // A backend whose text cannot hold NUL (PostgreSQL) may refuse such a key, clearly.
            Err(Error::Validation { .. }) if key.contains('\0') => {
                assert_eq!(storage.get(t, key).unwrap(), None, "a refused key is not stored");
                continue;
            }
            Err(error) => panic!("key {key:?} could not be stored: {error}"),
        }
        assert_eq!(storage.get(t, key).unwrap(), text("true"), "key {key:?} round-trips");
    }
    assert!(stored.len() >= keys.len() - 1, "only a NUL may be refused");
    assert_eq!(storage.count(t).unwrap(), stored.len() as u64, "odd keys are distinct");
    let mut listed = storage.keys(t).unwrap();
    listed.sort();
    stored.sort();
    assert_eq!(listed, stored, "odd keys are listed as written");
}

/// The sync store on the backend: the dict API, batches, atomic updates and a transaction.
fn sync_store<S: Storage>(storage: S) {
    let db: NanaSQLite<S> = Builder::new("conformance").table("conformance_store").open_on(storage).unwrap();
    db.set("k", &json!({"a": 1})).unwrap();
    db.clear_cache();
    assert_eq!(db.get::<serde_json::Value>("k").unwrap(), Some(json!({"a": 1})), "a value round-trips");
    db.batch_update((0..100).map(|i| (format!("b{i:03}"), i))).unwrap();
    assert_eq!(db.len().unwrap(), 101);
    assert_eq!(db.keys().unwrap()[..2], ["b000", "b001"]);
    assert_eq!(db.batch_delete(["b000", "b001", "missing"]).unwrap(), 2);
    assert_eq!(db.increment::<i64>("n", 2, None).unwrap(), 2);
    assert_eq!(db.increment::<i64>("n", 3, None).unwrap(), 5);
    assert_eq!(db.pop::<i64>("n").unwrap(), Some(5));
    let failed = db.transaction(|tx| -> Result<()> {
        tx.set("in_tx", &1)?;
        Err(Error::validation("stop"))
    });
    assert!(failed.is_err());
    assert_eq!(db.get::<i32>("in_tx").unwrap(), None, "a failed transaction leaves nothing");
    db.transaction(|tx| tx.set("in_tx", &2)).unwrap();
    db.clear_cache();
    assert_eq!(db.get::<i32>("in_tx").unwrap(), Some(2));
    let other = db.table("conformance_b").unwrap();
    assert_eq!(other.get::<i32>("in_tx").unwrap(), None, "tables are separate");
    db.clear().unwrap();
    assert!(db.is_empty().unwrap());
    db.close().unwrap();
    assert!(db.get::<i32>("k").unwrap_err().is_closed());
}

#[cfg(test)]
mod tests {
    use crate::storage::{ConnectionOptions, SqliteStorage};

    #[test]
    fn sqlite_in_memory_conforms() {
        // Every connection to ":memory:" is its own database: the suite's second connection
        // (for the store) starts empty, which is what it needs.
        super::check(|| SqliteStorage::open(":memory:", &ConnectionOptions::default()));
    }

    #[test]
    fn sqlite_file_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        super::check(|| SqliteStorage::open(&path, &ConnectionOptions::default()));
    }
}
