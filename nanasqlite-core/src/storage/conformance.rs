//! A conformance suite for [`Storage`] backends: what the store relies on, checked.
//!
//! A backend crate calls [`check`] from a test with a fresh, empty connection; it panics with
//! the failed expectation.
//!
//! ```
//! use nanasqlite_core::storage::{conformance, ConnectionOptions, SqliteStorage};
//!
//! let mut storage = SqliteStorage::open(":memory:", &ConnectionOptions::default())?;
//! conformance::check(&mut storage);
//! # Ok::<(), nanasqlite_core::Error>(())
//! ```

use super::Storage;
use crate::error::{Error, Result};
use crate::identifier::Identifier;

/// Runs every check against `storage`, which must hold no table named `conformance_a` or
/// `conformance_b` yet.
///
/// # Panics
///
/// When the backend does not behave as the store needs; the message says what differed.
pub fn check<S: Storage>(storage: &mut S) {
    let a = table(storage, "conformance_a");
    let b = table(storage, "conformance_b");
    single_rows(storage, &a);
    tables_are_separate(storage, &a, &b);
    many_rows(storage, &a);
    transactions_are_atomic(storage, &a);
    savepoints_fail_alone(storage, &a);
    read_snapshots_read(storage, &a);
    odd_keys_round_trip(storage, &b);
}

fn table<S: Storage>(storage: &S, name: &str) -> S::Table {
    let name = Identifier::new(name).expect("valid name");
    let table = storage.open_table(&name).expect("open_table creates a table");
    storage.open_table(&name).expect("open_table is idempotent");
    table
}

fn single_rows<S: Storage>(storage: &S, t: &S::Table) {
    assert_eq!(storage.get(t, "k").unwrap(), None, "a missing key reads as None");
    assert!(!storage.contains(t, "k").unwrap(), "a missing key is not contained");
    storage.put(t, "k", "1").unwrap();
    storage.put(t, "k", "[2]").unwrap();
    assert_eq!(storage.get(t, "k").unwrap().as_deref(), Some("[2]"), "put replaces");
    assert!(storage.contains(t, "k").unwrap());
    assert_eq!(storage.count(t).unwrap(), 1);
    assert!(storage.delete(t, "k").unwrap(), "delete reports an existing key");
    assert!(!storage.delete(t, "k").unwrap(), "delete reports a missing key");
    assert_eq!(storage.count(t).unwrap(), 0);
}

fn tables_are_separate<S: Storage>(storage: &S, a: &S::Table, b: &S::Table) {
    storage.put(a, "shared", "\"a\"").unwrap();
    assert_eq!(storage.get(b, "shared").unwrap(), None, "tables do not share rows");
    storage.clear(a).unwrap();
}

fn many_rows<S: Storage>(storage: &mut S, t: &S::Table) {
    let rows: Vec<(String, String)> = (0..2000).rev().map(|i| (format!("key{i:04}"), i.to_string())).collect();
    storage.transaction(|s| s.put_many(t, &rows)).unwrap();
    let keys = storage.keys(t).unwrap();
    assert_eq!(keys.len(), 2000);
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys come sorted");
    let wanted: Vec<String> = (0..2100).step_by(2).map(|i| format!("key{i:04}")).collect();
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let mut found = Vec::new();
    storage.get_many(t, &wanted, &mut |k, v| found.push((k.to_owned(), v.to_owned()))).unwrap();
    assert_eq!(found.len(), 1000, "get_many finds exactly the existing keys, beyond one chunk");
    assert!(found.iter().all(|(k, v)| k[3..].parse::<u32>().unwrap().to_string() == *v));
    let mut scanned = 0;
    storage.scan(t, &mut |_, _| scanned += 1).unwrap();
    assert_eq!(scanned, 2000, "scan visits every row");
    let removed = storage.transaction(|s| s.delete_many(t, &wanted)).unwrap();
    assert_eq!(removed, 1000, "delete_many counts the keys that existed");
    assert_eq!(storage.clear(t).unwrap(), 1000, "clear counts the rows removed");
}

fn transactions_are_atomic<S: Storage>(storage: &mut S, t: &S::Table) {
    let failed: Result<()> = storage.transaction(|s| {
        s.put(t, "a", "1")?;
        Err(Error::validation("stop"))
    });
    assert!(failed.is_err());
    assert_eq!(storage.get(t, "a").unwrap(), None, "an erring transaction rolls back");
    storage.transaction(|s| s.put(t, "a", "1")).unwrap();
    assert_eq!(storage.get(t, "a").unwrap().as_deref(), Some("1"), "a transaction commits");
    storage.clear(t).unwrap();
}

fn savepoints_fail_alone<S: Storage>(storage: &mut S, t: &S::Table) {
    storage
        .transaction(|s| {
            s.savepoint(|s| s.put(t, "kept", "1"))?;
            let failed: Result<()> = s.savepoint(|s| {
                s.put(t, "undone", "2")?;
                s.put(t, "kept", "2")?;
                Err(Error::validation("stop"))
            });
            assert!(failed.is_err());
            s.savepoint(|s| s.put(t, "after", "3"))
        })
        .unwrap();
    assert_eq!(storage.get(t, "kept").unwrap().as_deref(), Some("1"), "a failed unit undoes only itself");
    assert_eq!(storage.get(t, "undone").unwrap(), None);
    assert_eq!(storage.get(t, "after").unwrap().as_deref(), Some("3"), "units after a failed one commit");
    storage.clear(t).unwrap();
}

fn read_snapshots_read<S: Storage>(storage: &mut S, t: &S::Table) {
    storage.put(t, "r", "1").unwrap();
    let (value, count) = storage.read_snapshot(|s| (s.get(t, "r"), s.count(t))).unwrap();
    assert_eq!(value.unwrap().as_deref(), Some("1"));
    assert_eq!(count.unwrap(), 1);
    storage.put(t, "r", "2").unwrap();
    assert_eq!(storage.get(t, "r").unwrap().as_deref(), Some("2"), "the snapshot ended");
    storage.clear(t).unwrap();
}

fn odd_keys_round_trip<S: Storage>(storage: &S, t: &S::Table) {
    for key in ["", " ", "日本語キー", "tab\there", "new\nline", "quote'\"", "back\\slash", "🦀", "nul\0byte"] {
        storage.put(t, key, "true").unwrap();
        assert_eq!(storage.get(t, key).unwrap().as_deref(), Some("true"), "key {key:?} round-trips");
    }
    assert_eq!(storage.count(t).unwrap(), 9, "odd keys are distinct");
}

#[cfg(test)]
mod tests {
    use crate::storage::{ConnectionOptions, SqliteStorage};

    #[test]
    fn sqlite_in_memory_conforms() {
        super::check(&mut SqliteStorage::open(":memory:", &ConnectionOptions::default()).unwrap());
    }

    #[test]
    fn sqlite_file_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = SqliteStorage::open(dir.path().join("c.db"), &ConnectionOptions::default()).unwrap();
        super::check(&mut storage);
    }
}
