//! The shapes a newcomer writes, from the README and the rustdoc alone: each compiles (and
//! runs), or a shape broke. Both stores take the same argument types; every name comes from the
//! facade; every async future is `Send + 'static`; numbers come back as the type asked for.

// `&params![…]` is one of the shapes under test.
#![allow(clippy::needless_borrows_for_generic_args)]

use std::future::Future;

use futures::executor::block_on;
use nanasqlite::{
    Amount, AsyncBuilder, AsyncNanaSQLite, AsyncTransaction, Builder, CacheStrategy, Clause, ColumnInfo, Error,
    IndexInfo, KeyValue, NanaSQLite, Query, Result, Row, SqlPolicy, SqlValue, Stats, Transaction, params,
};
use serde::{Deserialize, Serialize};

fn spawnable<F: Future + Send + 'static>(future: F) -> F {
    future
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct User {
    id: i64,
    name: String,
    tags: Vec<String>,
    active: bool,
}

fn users(db: &NanaSQLite) -> Result<()> {
    db.create_table(
        "users",
        &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT"), ("tags", "TEXT"), ("active", "INTEGER")],
    )
}

#[test]
fn parameters_take_the_same_shapes_on_both_stores() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let sync = NanaSQLite::open(dir.path().join("shapes.db"))?;
    users(&sync)?;
    let owned = params!["a", 1];
    let array = [SqlValue::from("b"), SqlValue::from(2)];
    sync.execute("INSERT INTO users (name, id) VALUES (?, ?)", &owned)?;
    sync.execute("INSERT INTO users (name, id) VALUES (?, ?)", array.clone())?;
    sync.execute_many("INSERT INTO users (name, id) VALUES (?, ?)", [params!["c", 3], params!["d", 4]])?;
    assert!(sync.fetch_one("SELECT * FROM users WHERE id = ?", &params![1])?.is_some());
    assert_eq!(sync.fetch_all("SELECT * FROM users WHERE id > ?", [SqlValue::from(1)])?.len(), 3);
    sync.sql_update("users", &serde_json::json!({"name": "A"}), "id = ?", &params![1])?;
    sync.sql_delete("users", "id = ?", params![4])?;
    let page = Query::table("users").filter("id > ?", &params![0]).limit(10_usize).offset(0_i32);
    assert_eq!(sync.count(page.clone())?, 3);

    block_on(async {
        let db = AsyncNanaSQLite::open(dir.path().join("shapes.db")).await?;
        db.execute("INSERT INTO users (name, id) VALUES (?, ?)", &params!["e", 5]).await?;
        db.execute("INSERT INTO users (name, id) VALUES (?, ?)", [SqlValue::from("f"), SqlValue::from(6)]).await?;
        db.execute_many("INSERT INTO users (name, id) VALUES (?, ?)", [params!["g", 7]]).await?;
        let local = params![1];
        let one = spawnable(db.fetch_one("SELECT * FROM users WHERE id = ?", &local));
        drop(local); // the future owns what it needs
        assert!(one.await?.is_some());
        assert_eq!(spawnable(db.fetch_all("SELECT * FROM users WHERE id > ?", &params![5])).await?.len(), 2);
        spawnable(db.sql_update("users", &serde_json::json!({"name": "E"}), "id = ?", &params![5])).await?;
        spawnable(db.sql_delete("users", "id = ?", params![7])).await?;
        assert_eq!(spawnable(db.count(page)).await?, 5);
        db.close().await
    })
}

#[test]
fn numbers_come_back_as_asked() -> Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    let visits: i64 = db.increment("visits", 1, None)?;
    let more: u64 = db.increment("visits", 2_usize, None)?;
    let amount: Amount = 3_u64.into();
    let total: f64 = db.increment("visits", amount, None)?;
    assert_eq!((visits, more, total), (1, 3, 6.0));
    block_on(async {
        let adb = AsyncNanaSQLite::open(":memory:").await?;
        let n: i64 = adb.increment("n", 5_usize, None).await?;
        assert_eq!(n, 5);
        // The same turbofish on both stores, and the async future can be spawned.
        assert_eq!(db.increment::<i64>("same", 1, None)?, 1);
        assert_eq!(spawnable(adb.increment::<i64>("same", 1, None)).await?, 1);
        adb.close().await
    })
}

#[test]
fn rows_read_into_structs_and_serialise_as_objects() -> Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    users(&db)?;
    let alice = User { id: 1, name: "Alice".into(), tags: vec!["admin".into()], active: true };
    db.sql_insert("users", &alice)?;
    let read: Vec<User> = db.query_as(Query::table("users"))?;
    assert_eq!(read, [alice]);
    let rows: Vec<Row> = db.query(Query::table("users").columns(["id", "name"]))?;
    assert_eq!(rows[0].get::<i64>("id")?, 1);
    assert_eq!(serde_json::to_string(&rows)?, r#"[{"id":1,"name":"Alice"}]"#);
    Ok(())
}

#[test]
fn errors_say_what_happened_and_can_be_told_apart() -> Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    db.create_table("users", &[("id", "INTEGER PRIMARY KEY"), ("email", "TEXT UNIQUE")])?;
    db.sql_insert("users", &serde_json::json!({"email": "a@b.c"}))?;
    let error = db.sql_insert("users", &serde_json::json!({"email": "a@b.c"})).unwrap_err();
    assert!(error.is_unique_violation() && error.is_constraint() && !error.is_busy());
    assert_eq!(error.to_string(), "sqlite error: UNIQUE constraint failed: users.email");
    assert_eq!(error.status_code(), 409);
    assert_eq!(error.sqlite_code(), Some(nanasqlite::rusqlite::ErrorCode::ConstraintViolation));
    let refused = db.query(Query::table("users").filter("email LIKE 'a%' ; DROP TABLE users", params![])).unwrap_err();
    assert!(refused.to_string().contains("`;`") && refused.to_string().contains("position"), "{refused}");
    db.query(Query::table("users").filter("email LIKE 'User1%'", params![]))?; // `%` in a literal is fine
    let parsed: serde_json::Value = serde_json::from_str("{\"a\": 1}")?; // `?` on serde_json in our Result
    assert_eq!(parsed["a"], 1);
    Ok(())
}

/// Names a program uses, all from the facade (this fails to compile if one goes missing).
#[allow(dead_code)]
type EveryNameFromTheFacade<'a> = (
    Builder,
    AsyncBuilder,
    CacheStrategy,
    Clause,
    ColumnInfo,
    IndexInfo,
    SqlPolicy,
    Stats,
    Option<AsyncTransaction>,
    Option<&'a Transaction<'a, nanasqlite::storage::SqliteStorage>>,
    &'a dyn KeyValue<String, i32>,
    Error,
);

/// A cache hit's future is moved by every caller that awaits it: it stays a few words, the miss
/// path being boxed (1.2 KB unboxed halved the hit rate).
#[test]
fn a_hit_future_stays_small() {
    block_on(async {
        let db = AsyncNanaSQLite::open(":memory:").await.unwrap();
        db.set("k", &1).await.unwrap();
        let shared = db.get_shared("k");
        let owned = db.get::<i64>("k");
        let cloned = db.get_cloned::<i64>("k");
        let contains = db.contains("k");
        let sizes = [
            std::mem::size_of_val(&shared),
            std::mem::size_of_val(&owned),
            std::mem::size_of_val(&cloned),
            std::mem::size_of_val(&contains),
        ];
        assert!(sizes.iter().all(|&size| size <= 128), "{sizes:?}");
        assert_eq!((owned.await.unwrap(), cloned.await.unwrap(), contains.await.unwrap()), (Some(1), Some(1), true));
        assert_eq!(*shared.await.unwrap().unwrap(), 1);
    });
}
