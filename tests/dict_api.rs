//! The key/value API of `NanaSQLite`, on real SQLite files.

use std::collections::{BTreeMap, HashMap};

use nanasqlite::{Error, NanaSQLite};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

fn temp_db() -> (tempfile::TempDir, NanaSQLite) {
    let dir = tempfile::tempdir().unwrap();
    let db = NanaSQLite::open(dir.path().join("test.db")).unwrap();
    (dir, db)
}

#[test]
fn crud_round_trip() -> nanasqlite::Result<()> {
    let (_dir, db) = temp_db();
    db.set("user_1", &json!({"name": "Alice", "age": 25}))?;
    let mut user: Value = db.get("user_1")?.unwrap();
    assert_eq!(user["name"], "Alice");
    user["age"] = json!(26);
    db.set("user_1", &user)?;
    assert_eq!(db.get::<Value>("user_1")?.unwrap()["age"], 26);
    assert!(db.delete("user_1")?);
    assert!(!db.delete("user_1")?);
    assert_eq!(db.get::<Value>("user_1")?, None);
    Ok(())
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    age: u32,
    tags: Vec<String>,
}

#[test]
fn typed_values() -> nanasqlite::Result<()> {
    let (_dir, db) = temp_db();
    let alice = User { name: "Alice".into(), age: 30, tags: vec!["admin".into()] };
    db.set("alice", &alice)?;
    assert_eq!(db.get::<User>("alice")?, Some(alice));
    assert!(matches!(db.get::<u32>("alice"), Err(Error::Decode { key, .. }) if key == "alice"));
    Ok(())
}

#[test]
fn stored_null_is_present_not_absent() -> nanasqlite::Result<()> {
    let (dir, db) = temp_db();
    db.set("nothing", &Value::Null)?;
    db.set("none", &None::<i32>)?;
    assert_eq!(db.get::<Option<Value>>("nothing")?, Some(None));
    assert_eq!(db.get::<Value>("nothing")?, Some(Value::Null));
    assert!(db.contains("none")?);
    db.close()?;
    let db = NanaSQLite::open(dir.path().join("test.db"))?;
    assert_eq!(db.get::<Value>("none")?, Some(Value::Null), "null survives reopen");
    assert_eq!(db.get::<Value>("never")?, None);
    Ok(())
}

#[test]
fn writes_persist_across_reopen() -> nanasqlite::Result<()> {
    let (dir, db) = temp_db();
    db.set("a", &1)?;
    db.batch_update([("b", 2), ("c", 3)])?;
    drop(db);
    let db = NanaSQLite::open(dir.path().join("test.db"))?;
    assert_eq!(db.to_dict::<i32>()?, BTreeMap::from([("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]));
    Ok(())
}

#[test]
fn keys_are_sorted_and_collections_follow_key_order() -> nanasqlite::Result<()> {
    let (_dir, db) = temp_db();
    for key in ["b", "a", "c", "B"] {
        db.set(key, &key.to_uppercase())?;
    }
    assert_eq!(db.keys()?, ["B", "a", "b", "c"]);
    assert_eq!(db.values::<String>()?, ["B", "A", "B", "C"]);
    assert_eq!(db.items::<String>()?[1], ("a".to_owned(), "A".to_owned()));
    assert_eq!(db.len()?, 4);
    assert!(!db.is_empty()?);
    Ok(())
}

#[test]
fn odd_keys_round_trip() -> nanasqlite::Result<()> {
    let (_dir, db) = temp_db();
    let keys = ["", " ", "日本語キー", "tab\tkey", "line\nkey", "quote'\"key", "back\\slash", "🦀", "nul\0key"];
    for (i, key) in keys.iter().enumerate() {
        db.set(key, &i)?;
    }
    db.clear_cache();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(db.get::<usize>(key)?, Some(i), "key {key:?}");
    }
    assert_eq!(db.len()?, keys.len());
    Ok(())
}

#[test]
fn batch_get_returns_only_existing_keys_from_cache_and_file() -> nanasqlite::Result<()> {
    let (_dir, db) = temp_db();
    let rows: Vec<(String, u32)> = (0..2500).map(|i| (format!("k{i}"), i)).collect();
    db.batch_update(&rows)?;
    db.clear_cache();
    assert_eq!(db.get::<u32>("k7")?, Some(7));
    let wanted: Vec<String> = (0..3000).map(|i| format!("k{i}")).collect();
    let found: HashMap<String, u32> = db.batch_get(&wanted)?;
    assert_eq!(found.len(), 2500);
    assert_eq!(found["k2499"], 2499);
    assert!(db.is_cached("k2999"), "a missing key is remembered as absent");
    assert!(db.batch_get::<u32>(Vec::<String>::new())?.is_empty());
    Ok(())
}

#[test]
fn batch_update_accepts_maps_and_writes_everything() -> nanasqlite::Result<()> {
    let (_dir, db) = temp_db();
    let data: HashMap<String, Value> =
        (0..1000).map(|i| (format!("user_{i}"), json!({"name": format!("User{i}")}))).collect();
    db.batch_update(&data)?;
    assert_eq!(db.len()?, 1000);
    let keys: Vec<String> = (0..500).map(|i| format!("user_{i}")).collect();
    assert_eq!(db.batch_delete(&keys)?, 500);
    assert_eq!(db.batch_delete(&keys)?, 0);
    assert_eq!(db.len()?, 500);
    assert_eq!(db.get::<Value>("user_499")?, None);
    db.update([("x", 1)])?;
    assert_eq!(db.get::<i32>("x")?, Some(1));
    Ok(())
}

#[test]
fn pop_and_setdefault() -> nanasqlite::Result<()> {
    let (_dir, db) = temp_db();
    db.set("k", &"v")?;
    assert_eq!(db.pop::<String>("k")?, Some("v".into()));
    assert_eq!(db.pop::<String>("k")?, None);
    assert!(!db.contains("k")?);
    db.set("text", &"not a number")?;
    assert!(matches!(db.pop::<u32>("text"), Err(Error::Decode { .. })));
    assert!(db.contains("text")?, "a pop that cannot decode removes nothing");
    assert_eq!(db.setdefault("count", &1)?, 1);
    assert_eq!(db.setdefault("count", &9)?, 1);
    assert_eq!(db.get_fresh::<i32>("count")?, Some(1));
    Ok(())
}

#[test]
fn clear_removes_this_table_only() -> nanasqlite::Result<()> {
    let (_dir, db) = temp_db();
    let other = db.table("other")?;
    db.batch_update([("a", 1), ("b", 2)])?;
    other.set("a", &10)?;
    db.clear()?;
    assert!(db.is_empty()?);
    assert_eq!(db.get::<i32>("a")?, None);
    assert_eq!(other.get::<i32>("a")?, Some(10));
    Ok(())
}

#[test]
fn cache_control() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let db = NanaSQLite::open(&path)?;
    db.set("k", &1)?;
    assert!(db.is_cached("k"));
    db.clear_cache();
    assert!(!db.is_cached("k"));
    assert_eq!(db.get::<i32>("k")?, Some(1));

    // A second connection changes the row behind the cache's back.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute("UPDATE data SET value = '2' WHERE key = 'k'", []).unwrap();
    assert_eq!(db.get::<i32>("k")?, Some(1), "the cache does not see other connections");
    assert_eq!(db.get_fresh::<i32>("k")?, Some(2));
    other.execute("UPDATE data SET value = '3' WHERE key = 'k'", []).unwrap();
    db.refresh("k")?;
    assert_eq!(db.get::<i32>("k")?, Some(3));

    other.execute("INSERT INTO data VALUES ('new', '4')", []).unwrap();
    db.load_all()?;
    assert!(db.is_cached("new") && db.is_cached("absent"), "after load_all every key is known");
    assert_eq!(db.get::<i32>("new")?, Some(4));
    Ok(())
}

#[test]
fn bulk_load_fills_the_cache_at_open() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulk.db");
    NanaSQLite::open(&path)?.batch_update((0..100).map(|i| (i.to_string(), i)))?;
    let db = NanaSQLite::builder(&path).bulk_load(true).open()?;
    assert!((0..100).all(|i| db.is_cached(&i.to_string())));
    assert_eq!(db.get::<i32>("42")?, Some(42));
    Ok(())
}

#[test]
fn a_bulk_loaded_store_reads_writes_and_lists_every_row_as_the_file_has_it() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulk.db");
    NanaSQLite::open(&path)?.batch_update((0..1000).map(|i| (format!("k{i:04}"), json!({"n": i}))))?;
    let db = NanaSQLite::builder(&path).bulk_load(true).open()?;
    // Threads reading the same rows for the first time all see them.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for i in (0..1000).step_by(7) {
                    assert_eq!(db.get_shared(&format!("k{i:04}")).unwrap().unwrap()["n"], i);
                }
            });
        }
    });
    db.set("k0001", &json!({"n": -1}))?;
    assert!(db.delete("k0002")?);
    db.set("new", &json!({"n": 1000}))?;
    assert_eq!(db.get::<Value>("k0001")?, Some(json!({"n": -1})));
    assert_eq!(db.get::<Value>("k0002")?, None);
    assert_eq!(db.get::<Value>("absent")?, None);
    let wanted = ["k0003", "k0002", "new", "absent"];
    let found = db.batch_get::<Value>(wanted)?;
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!((found["k0003"]["n"].clone(), found["new"]["n"].clone()), (json!(3), json!(1000)));
    let items = db.items::<Value>()?;
    assert_eq!(db.len()?, 1000);
    assert_eq!(items.len(), 1000);
    assert!(items.windows(2).all(|pair| pair[0].0 < pair[1].0), "sorted, each key once");
    drop(db);
    let reopened = NanaSQLite::open(&path)?;
    let expected: Vec<(String, Value)> = items;
    assert_eq!(reopened.items::<Value>()?, expected, "what the cache lists is what the file holds");
    Ok(())
}

#[test]
fn tables_share_the_file_and_keep_their_own_cache() -> nanasqlite::Result<()> {
    let (dir, db) = temp_db();
    let users = db.table("users")?;
    let nested = users.table("posts")?;
    users.set("alice", &json!({"age": 30}))?;
    nested.set("p1", &"hello")?;
    assert_eq!(db.get::<Value>("alice")?, None);
    assert_eq!(users.table_name(), "users");
    drop((db, users, nested));

    let users = NanaSQLite::builder(dir.path().join("test.db")).table("users").open()?;
    assert_eq!(users.get::<Value>("alice")?.unwrap()["age"], 30);
    assert_eq!(users.table("posts")?.get::<String>("p1")?.as_deref(), Some("hello"));
    Ok(())
}

#[test]
fn memory_databases_work_with_tables() -> nanasqlite::Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    let t = db.table("t")?;
    db.set("a", &1)?;
    t.set("a", &2)?;
    db.clear_cache();
    t.clear_cache();
    assert_eq!((db.get::<i32>("a")?, t.get::<i32>("a")?), (Some(1), Some(2)));
    Ok(())
}

#[test]
fn close_is_idempotent_and_closes_every_handle() -> nanasqlite::Result<()> {
    let (_dir, db) = temp_db();
    let clone = db.clone();
    let table = db.table("t")?;
    db.set("k", &1)?;
    table.set("k", &1)?;
    db.close()?;
    db.close()?;
    for handle in [&db, &clone, &table] {
        assert!(handle.get::<i32>("k").unwrap_err().is_closed(), "cached keys are closed too");
        assert!(handle.set("k", &2).unwrap_err().is_closed());
        assert!(handle.delete("k").unwrap_err().is_closed());
        assert!(handle.contains("k").unwrap_err().is_closed());
        assert!(handle.len().unwrap_err().is_closed());
        assert!(handle.keys().unwrap_err().is_closed());
        assert!(handle.values::<i32>().unwrap_err().is_closed());
        assert!(handle.batch_get::<i32>(["k"]).unwrap_err().is_closed());
        assert!(handle.batch_update([("k", 1)]).unwrap_err().is_closed());
        assert!(handle.batch_delete(["k"]).unwrap_err().is_closed());
        assert!(handle.pop::<i32>("k").unwrap_err().is_closed());
        assert!(handle.clear().unwrap_err().is_closed());
        assert!(handle.load_all().unwrap_err().is_closed());
        assert!(handle.table("x").unwrap_err().is_closed());
        assert!(!handle.is_cached("k"));
    }
    Ok(())
}

#[test]
fn handles_are_send_sync_clone_and_static() {
    fn assert_handle<T: Send + Sync + Clone + 'static>() {}
    fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}
    assert_handle::<NanaSQLite>();
    assert_error::<Error>();
}

#[test]
fn get_shared_shares_one_parsed_value() -> nanasqlite::Result<()> {
    let (_dir, db) = temp_db();
    db.set("user", &json!({"name": "Alice"}))?;
    db.set("nothing", &Value::Null)?;
    let first = db.get_shared("user")?.unwrap();
    let second = db.get_shared("user")?.unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &second), "a hit makes no copy");
    assert_eq!(first["name"], "Alice");
    assert_eq!(db.get_shared("nothing")?.as_deref(), Some(&Value::Null));
    assert_eq!(db.get_shared("missing")?, None);
    db.set("user", &json!({"name": "Bob"}))?;
    assert_eq!(db.get_shared("user")?.unwrap()["name"], "Bob", "a write replaces the shared value");
    assert_eq!(first["name"], "Alice", "values already handed out are unchanged");
    Ok(())
}
