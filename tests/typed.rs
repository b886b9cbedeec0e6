//! Typed tables: values of one Rust type, a validator before every write, foreign values
//! failing for their key alone, on both stores.

use nanasqlite::{NanaSQLite, Scan};
use serde::{Deserialize, Serialize};

mod common;

use common::Setup;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct User {
    name: String,
    age: u32,
}

fn user(name: &str, age: u32) -> User {
    User { name: name.to_owned(), age }
}

fn adult(user: &User) -> Result<(), String> {
    if user.age >= 18 { Ok(()) } else { Err(format!("{} is {}: users are adults", user.name, user.age)) }
}

#[test]
fn the_sync_typed_table_reads_and_writes_one_type() -> nanasqlite::Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    let users = db.typed::<User>("users")?.validator(adult);
    users.set("alice", &user("Alice", 30))?;
    assert_eq!(users.get("alice")?, Some(user("Alice", 30)));

    let refused = users.set("kid", &user("Kid", 9)).unwrap_err();
    assert!(matches!(&refused, nanasqlite::Error::Refused { key, by } if key == "kid" && by.contains("adults")));
    assert_eq!(refused.status_code(), 422);
    assert!(!users.contains("kid")?, "nothing written");

    let batch = [("bob", user("Bob", 40)), ("tiny", user("Tiny", 2)), ("carol", user("Carol", 50))];
    assert!(users.batch_update(&batch).is_err());
    assert!(!users.contains("bob")?, "a refused row refuses the whole batch");
    users.batch_update(&[("bob", user("Bob", 40)), ("carol", user("Carol", 50))])?;
    let names: Vec<String> =
        users.iter(Scan::all())?.map(|row| row.map(|(_, u)| u.name)).collect::<nanasqlite::Result<_>>()?;
    assert_eq!(names, ["Alice", "Bob", "Carol"]);

    users.store().set("broken", &"not a user")?;
    assert!(matches!(users.get("broken"), Err(nanasqlite::Error::Decode { key, .. }) if key == "broken"));
    assert_eq!(users.get("alice")?.map(|u| u.age), Some(30), "other keys read normally");
    assert!(users.delete("broken")?);
    assert_eq!(db.get::<User>("alice")?, None, "a typed table is its own table");
    for hostile in ["users; DROP TABLE users", "", "a\"b", "sqlite_master"] {
        assert!(matches!(db.typed::<User>(hostile), Err(nanasqlite::Error::Validation { .. })), "{hostile:?}");
    }
    assert_eq!(users.get("alice")?.map(|u| u.age), Some(30), "nothing changed");
    Ok(())
}

on_every_runtime!(the_async_typed_table);

async fn the_async_typed_table(setup: Setup) {
    use futures::StreamExt;
    let db = setup.open().await;
    let users = db.typed::<User>("users").await.unwrap().validator(adult);
    users.set("alice", &user("Alice", 30)).await.unwrap();
    assert!(matches!(users.set("kid", &user("Kid", 9)).await, Err(nanasqlite::Error::Refused { .. })));
    assert!(users.batch_update(&[("b", user("B", 20)), ("c", user("C", 1))]).await.is_err());
    users.batch_update(&[("b", user("B", 20))]).await.unwrap();
    assert_eq!(users.get("b").await.unwrap(), Some(user("B", 20)));
    assert!(!users.contains("kid").await.unwrap() && !users.contains("c").await.unwrap());
    let ages: Vec<u32> = users.stream(Scan::all()).map(|row| row.unwrap().1.age).collect().await;
    assert_eq!(ages, [30, 20]);
    assert!(users.delete("b").await.unwrap());
    db.close().await.unwrap();
}

/// An `after_read` hook that counts its calls and ages every user by one year on the way out.
#[derive(Default)]
struct Birthday(std::sync::atomic::AtomicUsize);

impl nanasqlite::hook::Hook for Birthday {
    fn after_read(&self, _key: &str, mut value: serde_json::Value) -> nanasqlite::Result<serde_json::Value> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        value["age"] = (value["age"].as_u64().unwrap_or(0) + 1).into();
        Ok(value)
    }
}

#[test]
fn a_kept_decoded_copy_follows_writes_other_types_and_hooks() -> nanasqlite::Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    let users = db.typed::<User>("users")?;
    users.set("alice", &user("Alice", 30))?;
    let mut first = users.get("alice")?.unwrap();
    first.age = 99;
    assert_eq!(users.get("alice")?, Some(user("Alice", 30)), "a hit is a copy: changing it changes nothing");
    users.set("alice", &user("Alice", 31))?;
    assert_eq!(users.get("alice")?, Some(user("Alice", 31)), "a write replaces the kept copy");
    let as_value: serde_json::Value = users.store().get("alice")?.unwrap();
    assert_eq!(as_value["age"], 31, "another type decodes the text");
    assert_eq!(users.store().get_cloned::<serde_json::Value>("alice")?, Some(as_value));
    assert_eq!(users.get("alice")?, Some(user("Alice", 31)), "and the kept copy still serves its own type");

    // A Value read first is kept as the shared parse, which shared reads share.
    db.set("v", &serde_json::json!({"a": [1, 2]}))?;
    let shared = db.get_shared("v")?.unwrap();
    assert_eq!(db.get::<serde_json::Value>("v")?.as_ref(), Some(&*shared));
    assert!(std::sync::Arc::ptr_eq(&shared, &db.get_shared("v")?.unwrap()));
    assert_eq!(db.get_cloned::<Vec<u8>>("v").ok(), None, "a type the value does not fit is a decode error");

    let birthday = std::sync::Arc::new(Birthday::default());
    let hooked = NanaSQLite::builder(":memory:").hook(std::sync::Arc::clone(&birthday)).open()?;
    let users = hooked.typed::<User>("data")?;
    users.set("bob", &user("Bob", 40))?;
    assert_eq!(users.get("bob")?.map(|u| u.age), Some(41));
    assert_eq!(users.get("bob")?.map(|u| u.age), Some(41), "the hook's view, not a kept copy of the text");
    assert_eq!(birthday.0.load(std::sync::atomic::Ordering::SeqCst), 2, "after_read runs on every read");
    Ok(())
}

on_every_runtime!(the_async_store_keeps_decoded_copies);

async fn the_async_store_keeps_decoded_copies(setup: Setup) {
    let db = setup.open().await;
    let users = db.typed::<User>("users").await.unwrap();
    users.set("alice", &user("Alice", 30)).await.unwrap();
    let mut first = users.get("alice").await.unwrap().unwrap();
    first.name.push('!');
    assert_eq!(users.get("alice").await.unwrap(), Some(user("Alice", 30)));
    users.set("alice", &user("Alice", 31)).await.unwrap();
    assert_eq!(users.get("alice").await.unwrap(), Some(user("Alice", 31)));
    let store = users.store();
    assert_eq!(store.get::<serde_json::Value>("alice").await.unwrap().unwrap()["age"], 31);
    assert_eq!(store.get_cloned::<User>("alice").await.unwrap(), Some(user("Alice", 31)));
    store.clear_cache();
    assert_eq!(store.get_cloned::<User>("alice").await.unwrap(), Some(user("Alice", 31)), "a miss reads the file");
    db.set("v", &serde_json::json!([1, 2])).await.unwrap();
    let shared = db.get_shared("v").await.unwrap().unwrap();
    assert_eq!(db.get::<serde_json::Value>("v").await.unwrap().as_ref(), Some(&*shared));
    db.close().await.unwrap();
}

/// A typed table has the untyped store's reads, scans, counts and hooks, and a table can take
/// a cache of its own (`table_with`).
#[test]
fn a_sync_typed_table_lists_counts_scans_and_takes_hooks() -> nanasqlite::Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    let users = db.typed::<User>("users")?.hook(nanasqlite::hook::unique("name"))?;
    users.batch_update(&[("u1", user("Ann", 30)), ("u2", user("Bob", 40)), ("u3", user("Cy", 50))])?;
    assert_eq!((users.len()?, users.is_empty()?), (3, false));
    assert_eq!(users.keys()?, ["u1", "u2", "u3"]);
    assert_eq!(users.items()?[1], ("u2".to_owned(), user("Bob", 40)));
    assert_eq!(users.scan(Scan::all().descending().limit(1))?, [("u3".to_owned(), user("Cy", 50))]);
    let found = users.batch_get(["u1", "missing"])?;
    assert_eq!((found.len(), &found["u1"]), (1, &user("Ann", 30)));
    let duplicate = users.set("u4", &user("Ann", 20)).unwrap_err();
    assert!(duplicate.is_unique_violation(), "the hook chained on the typed table: {duplicate}");
    users.add_hook(nanasqlite::hook::check(|_, value| value["age"].as_u64().is_some_and(|age| age < 100)))?;
    assert!(users.set("u5", &user("Old", 120)).unwrap_err().is_refused());
    assert_eq!(users.batch_delete(["u1", "u2", "nope"])?, 2);
    assert_eq!(users.len()?, 1);

    let small = db.table_with("small", nanasqlite::CacheStrategy::Lru { size: 2 })?;
    small.batch_update([("a", 1), ("b", 2), ("c", 3)])?;
    assert!(!small.is_cached("a") && small.is_cached("c"), "its own LRU of two");
    assert!(db.set("x", &1).is_ok() && db.is_cached("x"), "the store's own cache is untouched");
    let bad = db.table_with("bad", nanasqlite::CacheStrategy::Lru { size: 0 }).unwrap_err();
    assert!(matches!(bad, nanasqlite::Error::Validation { .. }), "{bad}");
    Ok(())
}

on_every_runtime!(an_async_typed_table_lists_counts_scans_and_takes_hooks);

async fn an_async_typed_table_lists_counts_scans_and_takes_hooks(setup: Setup) {
    let db = setup.open().await;
    let users = db.typed::<User>("users").await.unwrap().hook(nanasqlite::hook::unique("name")).await.unwrap();
    users.batch_update(&[("u1", user("Ann", 30)), ("u2", user("Bob", 40))]).await.unwrap();
    assert_eq!((users.len().await.unwrap(), users.is_empty().await.unwrap()), (2, false));
    assert_eq!(users.keys().await.unwrap(), ["u1", "u2"]);
    assert_eq!(users.items().await.unwrap()[0], ("u1".to_owned(), user("Ann", 30)));
    assert_eq!(users.scan(Scan::all().limit(1)).await.unwrap(), [("u1".to_owned(), user("Ann", 30))]);
    assert_eq!(users.batch_get(["u2"]).await.unwrap()["u2"], user("Bob", 40));
    assert!(users.set("u3", &user("Ann", 1)).await.unwrap_err().is_unique_violation());
    users.add_hook(nanasqlite::hook::check(|key, _| key != "blocked")).await.unwrap();
    assert!(users.set("blocked", &user("Zed", 1)).await.unwrap_err().is_refused());
    assert_eq!(users.batch_delete(["u1"]).await.unwrap(), 1);

    let small = db.table_with("small", nanasqlite::CacheStrategy::Lru { size: 2 }).await.unwrap();
    small.batch_update([("a", 1), ("b", 2), ("c", 3)]).await.unwrap();
    assert!(!small.is_cached("a") && small.is_cached("c"), "its own LRU of two");
    db.close().await.unwrap();
}
