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
