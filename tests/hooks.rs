//! Hooks: checks and rewrites before writes, refusals of deletes, rewrites after reads, notices
//! after commits, and the ready-made check, unique field and foreign key, on both stores (the
//! async one on every runtime). Modelled on Python NanaSQLite's hook tests, plus what a Rust
//! store must add: every write and read path, batches, transactions, concurrency, panics,
//! hostile names, encrypted tables and rows other programs wrote.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use nanasqlite::hook::{self, Hook, HookExt, KeyFilter};
use nanasqlite::{Encryption, Error, NanaSQLite, Result, Scan};
use serde_json::{Value, json};

mod common;

use common::Setup;

/// Records what the success hooks hear, in order.
#[derive(Default)]
struct Audit {
    heard: Mutex<Vec<String>>,
}

impl Audit {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.heard.lock().unwrap())
    }
}

impl Hook for Audit {
    fn on_write_success(&self, key: &str, value: &Value) {
        self.heard.lock().unwrap().push(format!("wrote {key}={value}"));
    }

    fn on_delete_success(&self, key: &str) {
        self.heard.lock().unwrap().push(format!("deleted {key}"));
    }
}

/// Appends its letter to string values, so the order hooks ran in shows in the value.
struct Append(&'static str);

impl Hook for Append {
    fn before_write(&self, _key: &str, value: Value) -> Result<Value> {
        Ok(match value {
            Value::String(text) => Value::String(text + self.0),
            other => other,
        })
    }
}

/// Upper-cases string values on the way out.
struct UpperOnRead;

impl Hook for UpperOnRead {
    fn after_read(&self, _key: &str, value: Value) -> Result<Value> {
        Ok(match value {
            Value::String(text) => Value::String(text.to_uppercase()),
            other => other,
        })
    }
}

/// Refuses to delete the keys it is registered for.
struct Keep;

impl Hook for Keep {
    fn before_delete(&self, key: &str) -> Result<()> {
        Err(Error::refused(key, "keep"))
    }
}

fn refused_by(result: Result<impl std::fmt::Debug>, key: &str, by: &str) {
    match result {
        Err(Error::Refused { key: k, by: b }) => assert_eq!((k.as_str(), b.as_str()), (key, by)),
        other => panic!("expected a refusal of {key:?} by {by}, got {other:?}"),
    }
}

fn small_numbers() -> hook::Check {
    hook::check(|_key, v: &Value| v.as_i64().is_none_or(|n| n <= 2)).named("at most 2")
}

/// The rows of `table` as the file holds them, read by a connection of its own.
fn file_rows(path: &std::path::Path, table: &str) -> Vec<(String, String)> {
    let conn = nanasqlite::rusqlite::Connection::open(path).unwrap();
    let mut statement = conn.prepare(&format!("SELECT key, value FROM \"{table}\" ORDER BY key")).unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap()
}

#[test]
fn a_refused_write_writes_nothing_and_caches_nothing() -> Result<()> {
    let _watchdog = common::Watchdog::new("a_refused_write_writes_nothing_and_caches_nothing", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let db = NanaSQLite::builder(&path).hook(small_numbers()).open()?;
    db.set("n", &1)?;
    refused_by(db.set("n", &3), "n", "at most 2");
    refused_by(db.set("m", &9), "m", "at most 2");
    assert_eq!(db.get::<i64>("n")?, Some(1), "the old value stands, in the cache");
    assert_eq!((db.get::<i64>("m")?, db.contains("m")?, db.len()?), (None, false, 1));
    assert_eq!(file_rows(&path, "data"), [("n".to_owned(), "1".to_owned())], "and in the file");
    db.clear_cache();
    assert_eq!(db.get::<i64>("n")?, Some(1));
    let error = db.set("n", &5).unwrap_err();
    assert_eq!(error.to_string(), r#"the write of key "n" was refused by at most 2"#);
    assert!(error.is_constraint() && error.is_refused() && error.status_code() == 422);
    assert_eq!(error.refusal(), Some(nanasqlite::Refusal::Rule), "a check's refusal is a rule's");
    Ok(())
}

#[test]
fn hooks_rewrite_in_registration_order_and_reads_see_the_rewrite() -> Result<()> {
    let _watchdog =
        common::Watchdog::new("hooks_rewrite_in_registration_order_and_reads_see_the_rewrite", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let db = NanaSQLite::builder(&path).hook(Append("a")).hook(Append("b")).open()?;
    db.add_hook(UpperOnRead)?;
    db.set("k", &"x")?;
    assert_eq!(db.get::<String>("k")?.as_deref(), Some("XAB"), "after_read on a cache hit");
    assert_eq!(
        file_rows(&path, "data"),
        [("k".to_owned(), r#""xab""#.to_owned())],
        "stored rewritten, not upper-cased"
    );
    db.clear_cache();
    assert_eq!(db.get::<String>("k")?.as_deref(), Some("XAB"), "after_read on a miss");
    drop(db);
    let plain = NanaSQLite::open(&path)?;
    assert_eq!(plain.get::<String>("k")?.as_deref(), Some("xab"), "hooks belong to the store that registered them");
    Ok(())
}

#[test]
fn every_write_path_runs_before_write() -> Result<()> {
    let _watchdog = common::Watchdog::new("every_write_path_runs_before_write", common::TEST_LIMIT);
    let db = NanaSQLite::builder(":memory:").hook(small_numbers()).open()?;
    refused_by(db.batch_update([("a", 1), ("b", 7), ("c", 2)]), "b", "at most 2");
    assert_eq!(db.len()?, 0, "one refused row refuses the whole batch");
    refused_by(db.update([("a", 1), ("b", 7)]), "b", "at most 2");
    refused_by(db.setdefault("d", &5), "d", "at most 2");
    assert!(!db.contains("d")?);
    db.setdefault("d", &1)?;
    assert_eq!(db.increment::<i64>("d", 1, None)?, 2);
    refused_by(db.increment::<i64>("d", 1, None), "d", "at most 2");
    assert_eq!(db.get::<i64>("d")?, Some(2), "a refused increment leaves the value");
    let checked = NanaSQLite::builder(":memory:")
        .hook(hook::check(|_, v: &Value| v.get("x").is_none_or(|x| x.as_i64().is_some_and(|x| x < 10))))
        .open()?;
    checked.patch("p", &json!({"x": 1}), true)?;
    refused_by(checked.patch("p", &json!({"x": 11}), true).map(drop), "p", "check");
    assert_eq!(checked.get::<Value>("p")?, Some(json!({"x": 1})));
    refused_by(
        db.transaction(|tx| {
            tx.set("t1", &1)?;
            tx.set("t2", &3)
        }),
        "t2",
        "at most 2",
    );
    assert!(!db.contains("t1")?, "the transaction rolled back");
    let report = db.batch_update_partial([("p1", 1), ("p2", 9), ("p3", 2)])?;
    assert_eq!(report.written, 2);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, "p2");
    assert!(report.failed[0].1.is_refused());
    assert_eq!(db.batch_get::<i64>(&["p1", "p2", "p3"])?.len(), 2);
    Ok(())
}

#[test]
fn every_delete_path_runs_before_delete() -> Result<()> {
    let _watchdog = common::Watchdog::new("every_delete_path_runs_before_delete", common::TEST_LIMIT);
    let db = NanaSQLite::builder(":memory:").hook(Keep.only(KeyFilter::prefix("keep:"))).open()?;
    db.batch_update([("keep:1", 1), ("keep:2", 2), ("tmp", 3), ("a", 0)])?;
    refused_by(db.delete("keep:1"), "keep:1", "keep");
    refused_by(db.pop::<i64>("keep:1"), "keep:1", "keep");
    refused_by(db.batch_delete(["tmp", "keep:2"]), "keep:2", "keep");
    assert!(db.contains("tmp")?, "a refused key refuses the whole batch delete");
    refused_by(db.clear(), "keep:1", "keep");
    refused_by(db.transaction(|tx| tx.delete("keep:2")), "keep:2", "keep");
    assert_eq!(db.len()?, 4, "nothing was deleted");
    assert_eq!(db.popitem::<i64>()?, Some(("a".to_owned(), 0)), "other keys go");
    assert!(!db.delete("keep:absent")?, "an absent key is not asked about");
    assert!(db.delete("tmp")?);
    assert_eq!(db.keys()?, ["keep:1", "keep:2"]);
    Ok(())
}

#[test]
fn after_read_runs_on_every_read() -> Result<()> {
    let _watchdog = common::Watchdog::new("after_read_runs_on_every_read", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let db = NanaSQLite::builder(dir.path().join("r.db")).hook(UpperOnRead.only(KeyFilter::prefix("u"))).open()?;
    db.batch_update([("u1", "a"), ("u2", "b"), ("x", "c")])?;
    let upper = |s: &str| json!(s.to_uppercase());
    assert_eq!(db.get::<Value>("u1")?, Some(upper("a")));
    assert_eq!(db.get::<Value>("x")?, Some(json!("c")), "the filter leaves other keys alone");
    assert_eq!(*db.get_shared("u1")?.unwrap(), upper("a"));
    assert_eq!(db.get_fresh::<Value>("u2")?, Some(upper("b")));
    assert_eq!(db.batch_get::<Value>(&["u1", "x"])?["u1"], upper("a"));
    assert_eq!(db.items::<Value>()?, [("u1".into(), upper("a")), ("u2".into(), upper("b")), ("x".into(), json!("c"))]);
    assert_eq!(db.values::<Value>()?[1], upper("b"));
    assert_eq!(db.scan::<Value>(Scan::prefix("u").descending())?[0], ("u2".into(), upper("b")));
    assert_eq!(db.setdefault("u1", &"zzz".to_owned())?, "A");
    assert_eq!(db.transaction(|tx| tx.get::<String>("u2"))?.as_deref(), Some("B"));
    assert_eq!(db.pop::<String>("u1")?.as_deref(), Some("A"));
    Ok(())
}

#[test]
fn success_hooks_hear_committed_writes_only_in_order() -> Result<()> {
    let _watchdog = common::Watchdog::new("success_hooks_hear_committed_writes_only_in_order", common::TEST_LIMIT);
    let audit = Arc::new(Audit::default());
    let db = NanaSQLite::builder(":memory:").hook(small_numbers()).hook(Arc::clone(&audit)).open()?;
    db.set("a", &1)?;
    db.batch_update([("b", 2), ("c", 0)])?;
    let _ = db.set("a", &3);
    let _ = db.transaction(|tx| {
        tx.set("t", &1)?;
        Err::<(), _>(Error::refused("t", "the test"))
    });
    db.delete("b")?;
    db.pop::<i64>("c")?;
    db.increment::<i64>("a", 1, None)?;
    assert_eq!(audit.take(), ["wrote a=1", "wrote b=2", "wrote c=0", "deleted b", "deleted c", "wrote a=2"]);
    db.clear()?;
    assert_eq!(audit.take(), ["deleted a"]);
    Ok(())
}

#[test]
fn a_panicking_hook_fails_its_call_only() -> Result<()> {
    let _watchdog = common::Watchdog::new("a_panicking_hook_fails_its_call_only", common::TEST_LIMIT);
    struct Panics;
    impl Hook for Panics {
        fn before_write(&self, key: &str, value: Value) -> Result<Value> {
            assert!(key != "boom", "before_write bug");
            Ok(value)
        }
        fn after_read(&self, key: &str, value: Value) -> Result<Value> {
            assert!(key != "read-boom", "after_read bug");
            Ok(value)
        }
        fn on_write_success(&self, key: &str, _value: &Value) {
            assert!(key != "late-boom", "on_write_success bug");
        }
    }
    let db = NanaSQLite::builder(":memory:").hook(Panics).open()?;
    let error = db.set("boom", &1).unwrap_err();
    assert!(matches!(&error, Error::Panic { message } if message == "before_write bug"), "{error}");
    assert!(!db.contains("boom")?);
    db.set("read-boom", &1)?;
    assert!(matches!(db.get::<i64>("read-boom"), Err(Error::Panic { .. })));
    db.set("late-boom", &1)?;
    assert_eq!(db.get::<i64>("late-boom")?, Some(1), "the write had committed; it stands");
    db.set("fine", &1)?;
    assert_eq!(db.len()?, 3);
    Ok(())
}

#[test]
fn hooks_belong_to_their_table_and_every_handle_on_it() -> Result<()> {
    let _watchdog = common::Watchdog::new("hooks_belong_to_their_table_and_every_handle_on_it", common::TEST_LIMIT);
    let db = NanaSQLite::builder(":memory:").hook(small_numbers()).open()?;
    let users = db.table("users")?;
    users.set("n", &9)?;
    refused_by(db.table("data")?.set("n", &9), "n", "at most 2");
    users.add_hook(hook::unique("email"))?;
    users.set("ann", &json!({"email": "a@x"}))?;
    refused_by(db.table("users")?.set("bob", &json!({"email": "a@x"})), "bob", "unique(email)");
    db.set("bob", &json!({"email": "a@x"}))?;
    Ok(())
}

#[test]
fn a_hook_calling_its_own_store_gets_an_error_not_a_deadlock() -> Result<()> {
    let _watchdog =
        common::Watchdog::new("a_hook_calling_its_own_store_gets_an_error_not_a_deadlock", common::TEST_LIMIT);
    /// A hook that makes `call` on the store it is registered on.
    struct Reentrant(OnceLock<NanaSQLite>, fn(&NanaSQLite) -> Result<()>);
    impl Hook for Reentrant {
        fn before_write(&self, _key: &str, value: Value) -> Result<Value> {
            (self.1)(self.0.get().expect("set"))?;
            Ok(value)
        }
    }
    let calls: [fn(&NanaSQLite) -> Result<()>; 2] = [|db| db.len().map(drop), NanaSQLite::close];
    for call in calls {
        let hook = Arc::new(Reentrant(OnceLock::new(), call));
        let db = NanaSQLite::open(":memory:")?;
        db.add_hook(Arc::clone(&hook))?;
        hook.0.set(db.clone()).ok();
        assert!(matches!(db.set("k", &1), Err(Error::Transaction { .. })));
        assert!(!db.contains("k")?, "the store is still open, without the refused write");
    }
    Ok(())
}

#[test]
fn a_unique_field_refuses_duplicates_and_allows_the_rest() -> Result<()> {
    let _watchdog = common::Watchdog::new("a_unique_field_refuses_duplicates_and_allows_the_rest", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.db");
    let db = NanaSQLite::builder(&path).hook(hook::unique("email")).hook(hook::unique("address.city")).open()?;
    db.set("ann", &json!({"email": "a@x", "address": {"city": "Oslo"}}))?;
    db.set("ann", &json!({"email": "a@x", "name": "Ann"}))?;
    refused_by(db.set("bob", &json!({"email": "a@x"})), "bob", "unique(email)");
    db.set("bob", &json!({"email": "A@x"}))?;
    db.set("cat", &json!({"email": null}))?;
    db.set("dog", &json!({"email": null}))?;
    db.set("eel", &json!({"name": "no email"}))?;
    db.set("str", &json!("plain value"))?;
    db.set("fox", &json!({"email": 1}))?;
    refused_by(db.set("gnu", &json!({"email": 1.0})), "gnu", "unique(email)");
    db.set("gnu", &json!({"email": true}))?;
    db.set("hen", &json!({"email": "1"}))?;
    // An object or array cannot be compared the same way by SQLite's index (its text, where
    // key order counts) and by a check on the values: a unique field holds one scalar.
    for (key, value) in [
        ("ivy", json!({"email": {"a": 1, "b": 2}})),
        ("jay", json!({"email": {"b": 2, "a": 1}})),
        ("joy", json!({"email": ["a@x"]})),
    ] {
        let error = db.set(key, &value).unwrap_err();
        assert!(matches!(error, Error::Validation { .. }), "{key}: {error}");
        assert!(error.to_string().contains("unique(email)") && !error.to_string().contains("a@x"), "{error}");
        assert!(!db.contains(key)?, "{key}: nothing written");
    }
    db.set("kit", &json!({"email": "{\"at\":\"x\"}"}))?;
    db.set("oslo", &json!({"address": {"city": "Oslo"}})).expect("ann no longer lives in Oslo");
    refused_by(db.set("osl2", &json!({"address": {"city": "Oslo"}})), "osl2", "unique(address.city)");

    refused_by(
        db.batch_update([("n1", json!({"email": "n@x"})), ("n2", json!({"email": "n@x"}))]),
        "n2",
        "unique(email)",
    );
    assert!(!db.contains("n1")?, "a duplicate inside the batch refuses it all");
    let report = db.batch_update_partial([("n1", json!({"email": "n@x"})), ("n2", json!({"email": "n@x"}))])?;
    assert_eq!((report.written, report.failed[0].0.as_str()), (1, "n2"));
    db.delete("n1")?;
    db.set("n2", &json!({"email": "n@x"})).expect("deleting the holder frees the value");

    let conn = nanasqlite::rusqlite::Connection::open(&path).unwrap();
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'data' AND sql IS NOT NULL ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    assert_eq!(indexes, ["data_by_address_city", "data_by_email"]);
    Ok(())
}

#[test]
fn a_unique_field_copes_with_rows_already_in_the_file() -> Result<()> {
    let _watchdog = common::Watchdog::new("a_unique_field_copes_with_rows_already_in_the_file", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.db");
    let db = NanaSQLite::open(&path)?;
    db.batch_update([("a", json!({"email": "dup"})), ("b", json!({"email": "dup"}))])?;
    let conn = nanasqlite::rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO data VALUES ('not-json', 'plain text'), ('blob', x'00ff'), ('number', 7), ('null', NULL);",
    )
    .unwrap();
    db.add_hook(hook::unique("email"))?;
    refused_by(db.set("c", &json!({"email": "dup"})), "c", "unique(email)");
    refused_by(db.set("a", &json!({"email": "dup"})), "a", "unique(email)");
    db.set("c", &json!({"email": "new"}))?;
    assert_eq!(db.len()?, 7);
    Ok(())
}

#[test]
fn a_unique_field_on_an_encrypted_table_is_checked_by_reading_the_rows() -> Result<()> {
    let _watchdog = common::Watchdog::new(
        "a_unique_field_on_an_encrypted_table_is_checked_by_reading_the_rows",
        common::TEST_LIMIT,
    );
    let key = [7u8; 32];
    let db = NanaSQLite::builder(":memory:")
        .encryption(Encryption::aes_gcm(key)?)
        .hook(hook::unique("email").only(KeyFilter::pattern(r"^user:\d+$")?))
        .open()?;
    db.set("user:1", &json!({"email": "a@x"}))?;
    refused_by(db.set("user:2", &json!({"email": "a@x"})), "user:2", "unique(email)");
    db.set("user:x", &json!({"email": "a@x"}))?;
    db.set("user:1", &json!({"email": "a@x", "v": 2}))?;
    db.set("user:3", &json!({"email": {"a": 1, "b": 2}})).expect_err("an object is refused here too");
    Ok(())
}

/// The paths the Hooks section says run no hooks: the SQL helpers (even on the key/value table
/// itself), `call`, `import_rows`, `restore` and TTL expiry. A hook that refuses every write
/// and delete of `held:` keys, and one that records every notice, see none of them.
mod paths_without_hooks {
    use super::*;

    /// Refuses every write and delete of a `held:` key.
    struct Holds;

    impl Hook for Holds {
        fn before_write(&self, key: &str, value: Value) -> Result<Value> {
            if key.starts_with("held:") { Err(Error::refused(key, "held")) } else { Ok(value) }
        }

        fn before_delete(&self, key: &str) -> Result<()> {
            if key.starts_with("held:") { Err(Error::refused(key, "held")) } else { Ok(()) }
        }
    }

    fn guarded(builder: nanasqlite::Builder) -> Result<(NanaSQLite, Arc<Audit>)> {
        let audit = Arc::new(Audit::default());
        let db = builder.hook(Holds).hook(Arc::clone(&audit)).open()?;
        Ok((db, audit))
    }

    #[test]
    fn sql_helpers() -> Result<()> {
        let (db, audit) = guarded(NanaSQLite::builder(":memory:"))?;
        db.sql_insert("data", &json!({"key": "held:1", "value": "1"}))?;
        db.execute("INSERT INTO data (key, value) VALUES (?, ?)", nanasqlite::params!["held:2", "2"])?;
        db.execute_many("INSERT INTO data (key, value) VALUES (?, ?)", vec![nanasqlite::params!["held:3", "3"]])?;
        db.upsert("data", &json!({"key": "held:1", "value": "10"}), &["key"])?;
        db.sql_update("data", &json!({"value": "20"}), "key = ?", nanasqlite::params!["held:2"])?;
        db.sql_delete("data", "key = ?", nanasqlite::params!["held:3"])?;
        assert_eq!((db.get_fresh::<i64>("held:1")?, db.get_fresh::<i64>("held:2")?), (Some(10), Some(20)));
        assert_eq!(audit.take(), Vec::<String>::new());
        Ok(())
    }

    #[test]
    fn call() -> Result<()> {
        let (db, audit) = guarded(NanaSQLite::builder(":memory:"))?;
        db.call(|conn| conn.execute("INSERT INTO data (key, value) VALUES ('held:1', '1')", []))?;
        db.call(|conn| conn.execute("DELETE FROM data WHERE key = 'held:1'", []))?;
        db.call(|conn| conn.execute("INSERT INTO data (key, value) VALUES ('held:2', '2')", []))?;
        assert_eq!(db.get_fresh::<i64>("held:2")?, Some(2));
        assert_eq!(audit.take(), Vec::<String>::new());
        Ok(())
    }

    #[test]
    fn import_rows() -> Result<()> {
        let (db, audit) = guarded(NanaSQLite::builder(":memory:"))?;
        assert_eq!(db.import_rows("data", &[json!({"key": "held:1", "value": "1"})])?, 1);
        assert_eq!(db.get_fresh::<i64>("held:1")?, Some(1));
        assert_eq!(audit.take(), Vec::<String>::new());
        Ok(())
    }

    #[test]
    fn restore() -> Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.db");
        NanaSQLite::open(&source)?.set("held:1", &1)?;
        let (db, audit) = guarded(NanaSQLite::builder(dir.path().join("live.db")))?;
        db.set("free", &1)?;
        assert_eq!(audit.take(), ["wrote free=1"]);
        db.restore(&source)?;
        assert_eq!((db.get::<i64>("held:1")?, db.get::<i64>("free")?), (Some(1), None));
        assert_eq!(audit.take(), Vec::<String>::new(), "neither the restored row nor the vanished one");
        Ok(())
    }

    #[test]
    fn ttl_expiry() -> Result<()> {
        let ttl = Duration::from_millis(50);
        let cache = nanasqlite::CacheStrategy::Ttl { ttl, size: None, delete_expired: true };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ttl.db");
        NanaSQLite::open(&path)?.set("held:session", &1)?;
        let (db, audit) = guarded(NanaSQLite::builder(&path).cache(cache))?;
        assert_eq!(db.get::<i64>("held:session")?, Some(1), "cached now, to expire");
        std::thread::sleep(ttl * 3);
        assert_eq!(db.get::<i64>("held:session")?, None, "expired");
        db.set("other", &1)?; // the write transaction that deletes the expired row
        assert_eq!(file_rows(&path, "data").len(), 1, "the expired row is gone although before_delete refuses it");
        assert_eq!(audit.take(), ["wrote other=1"], "and no hook heard of its deletion");
        Ok(())
    }
}

#[test]
fn a_unique_field_holds_under_concurrent_writers() -> Result<()> {
    let _watchdog = common::Watchdog::new("a_unique_field_holds_under_concurrent_writers", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let first = NanaSQLite::builder(&path).hook(hook::unique("email")).open()?;
    let second = NanaSQLite::builder(&path).hook(hook::unique("email")).open()?;
    let stores = [first.clone(), second, first.clone(), first.clone()];
    let outcomes: Vec<Result<()>> = std::thread::scope(|scope| {
        let writers: Vec<_> = stores
            .iter()
            .enumerate()
            .flat_map(|(store_index, store)| (0..10).map(move |i| (store_index, i, store.clone())))
            .map(|(store_index, i, store)| {
                scope.spawn(move || store.set(&format!("k{store_index}_{i}"), &json!({"email": "same@x"})))
            })
            .collect();
        writers.into_iter().map(|writer| writer.join().unwrap()).collect()
    });
    let written = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(written, 1, "{outcomes:?}");
    let mut errors = outcomes.iter().filter_map(|outcome| outcome.as_ref().err());
    assert!(errors.all(|error| error.is_refused() || error.is_busy()), "{outcomes:?}");
    assert_eq!(file_rows(&path, "data").len(), 1);
    Ok(())
}

#[test]
fn a_foreign_key_must_name_a_key_of_the_other_table() -> Result<()> {
    let _watchdog = common::Watchdog::new("a_foreign_key_must_name_a_key_of_the_other_table", common::TEST_LIMIT);
    let db = NanaSQLite::builder(":memory:")
        .hook(hook::foreign_key("owner", "users").only(KeyFilter::prefix("order:")))
        .open()?;
    let users = db.table("users")?;
    users.set("ann", &json!({}))?;
    db.set("order:1", &json!({"owner": "ann"}))?;
    refused_by(db.set("order:2", &json!({"owner": "bob"})), "order:2", "foreign_key(owner -> users)");
    refused_by(db.set("order:3", &json!({"owner": 7})), "order:3", "foreign_key(owner -> users)");
    let missing = db.set("order:2", &json!({"owner": "bob"})).unwrap_err();
    assert_eq!(missing.refusal(), Some(nanasqlite::Refusal::ForeignKey));
    assert!(!missing.is_unique_violation() && missing.status_code() == 409, "a conflict with the other table");
    db.set("order:4", &json!({"owner": null}))?;
    db.set("order:5", &json!({"item": "no owner"}))?;
    db.set("note", &json!({"owner": "bob"}))?;
    users.set("bob", &json!({}))?;
    db.set("order:2", &json!({"owner": "bob"}))?;
    Ok(())
}

#[test]
fn hostile_fields_tables_and_patterns_register_nothing() -> Result<()> {
    let _watchdog = common::Watchdog::new("hostile_fields_tables_and_patterns_register_nothing", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    for field in ["", "e-mail", "a'); DROP TABLE data; --", "$.email", "a..b", "a[0]", "ä"] {
        let error = NanaSQLite::builder(&path).hook(hook::unique(field)).open().unwrap_err();
        assert!(matches!(error, Error::Validation { .. }), "{field:?}: {error}");
    }
    for table in ["users; DROP TABLE data", "", "sqlite_master", "a\"b"] {
        let error = NanaSQLite::builder(&path).hook(hook::foreign_key("owner", table)).open().unwrap_err();
        assert!(matches!(error, Error::Validation { .. }), "{table:?}: {error}");
    }
    let db = NanaSQLite::open(&path)?;
    assert!(db.add_hook(hook::unique("bad field")).is_err());
    db.set("a", &json!({"bad field": 1}))?;
    db.set("b", &json!({"bad field": 1}))?;
    assert!(KeyFilter::pattern("(unclosed").is_err());
    let tables: Vec<String> = nanasqlite::rusqlite::Connection::open(&path)
        .unwrap()
        .prepare("SELECT name FROM sqlite_master ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["data", "sqlite_autoindex_data_1"], "nothing was created");
    Ok(())
}

on_every_runtime!(hooks_on_the_async_store);

async fn hooks_on_the_async_store(setup: Setup) {
    use futures::StreamExt;
    let audit = Arc::new(Audit::default());
    let db = setup
        .builder
        .hook(hook::unique("email"))
        .hook(hook::foreign_key("team", "teams").only(KeyFilter::prefix("user:")))
        .hook(Arc::clone(&audit))
        .open()
        .await
        .unwrap();
    db.add_hook(UpperOnRead.only(KeyFilter::prefix("shout:"))).await.unwrap();
    db.add_hook(Keep.only(KeyFilter::prefix("keep:"))).await.unwrap();
    let teams = db.table("teams").await.unwrap();
    teams.set("red", &json!({})).await.unwrap();

    db.set("user:1", &json!({"email": "a@x", "team": "red"})).await.unwrap();
    refused_by(db.set("user:2", &json!({"email": "a@x", "team": "red"})).await, "user:2", "unique(email)");
    refused_by(db.set("user:3", &json!({"team": "blue"})).await, "user:3", "foreign_key(team -> teams)");
    refused_by(
        db.batch_update([("x1", json!({"email": "b@x"})), ("x2", json!({"email": "a@x"}))]).await,
        "x2",
        "unique(email)",
    );
    assert!(!db.contains("x1").await.unwrap());
    let report =
        db.batch_update_partial([("x1", json!({"email": "b@x"})), ("x2", json!({"email": "a@x"}))]).await.unwrap();
    assert_eq!((report.written, report.failed.len()), (1, 1));

    db.set("shout:1", &"hey").await.unwrap();
    assert_eq!(db.get::<String>("shout:1").await.unwrap().as_deref(), Some("HEY"));
    db.clear_cache();
    assert_eq!(db.get::<String>("shout:1").await.unwrap().as_deref(), Some("HEY"), "on a miss too");
    let streamed: Vec<_> = db.stream::<Value>(Scan::prefix("shout:")).map(|row| row.unwrap().1).collect().await;
    assert_eq!(streamed, [json!("HEY")]);

    db.set("keep:1", &1).await.unwrap();
    refused_by(db.delete("keep:1").await, "keep:1", "keep");
    refused_by(db.batch_delete(["x1", "keep:1"]).await, "keep:1", "keep");
    assert!(db.contains("x1").await.unwrap());
    assert!(db.delete("x1").await.unwrap());

    // Concurrent writers of one email, queued together on the writer: one wins.
    let writes: Vec<_> = (0..20).map(|i| db.set(&format!("race:{i}"), &json!({"email": "race@x"}))).collect();
    let outcomes = futures::future::join_all(writes).await;
    assert_eq!(outcomes.iter().filter(|outcome| outcome.is_ok()).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().filter_map(|outcome| outcome.as_ref().err()).all(Error::is_refused));

    let heard = audit.take();
    assert_eq!(heard.first().map(String::as_str), Some(r#"wrote user:1={"email":"a@x","team":"red"}"#));
    assert!(heard.contains(&"deleted x1".to_owned()));
    assert_eq!(heard.iter().filter(|event| event.starts_with("wrote race:")).count(), 1);
    db.close().await.unwrap();
}
