//! Hostile SQL fragments and statements on both stores: no fragment reaches a table it was not
//! asked about, even with the validator switched off (SQLite's authorizer fences every helper's
//! statement), and no statement of the caller's can end the store's own transaction.

use nanasqlite::{AsyncNanaSQLite, Error, NanaSQLite, Query, Row, SqlPolicy, SqlValue, params};
use serde_json::json;

const SECRET: &str = "TOPSECRET";

/// A store with `users` (two rows) and `secret` (one row holding [`SECRET`]).
fn store() -> (tempfile::TempDir, NanaSQLite) {
    let dir = tempfile::tempdir().unwrap();
    let db = NanaSQLite::open(dir.path().join("hostile.db")).unwrap();
    db.create_table("users", &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT")]).unwrap();
    db.create_table("secret", &[("s", "TEXT")]).unwrap();
    db.execute_many("INSERT INTO users (name) VALUES (?)", [params!["alice"], params!["bob"]]).unwrap();
    db.execute("INSERT INTO secret (s) VALUES (?)", params![SECRET]).unwrap();
    (dir, db)
}

fn leaks(rows: &[Row]) -> bool {
    rows.iter().any(|row| row.values().iter().any(|v| matches!(v, SqlValue::Text(t) if t.contains(SECRET))))
}

/// Queries whose fragments, as SQLite would read them, reach `secret`: every class of the issue
/// and variants of it.
fn reaching_queries() -> Vec<Query> {
    let users = || Query::table("users");
    vec![
        // 1. A parameter SQLite reads as one token, hiding a quote from a naive scan.
        users().filter("id = $count(') UNION SELECT 99, s FROM secret", params![0]),
        users().filter("id = $a(') OR 1 IN (SELECT 1 FROM secret) OR ('", params![0]),
        users().filter("id = $x::y(') UNION SELECT 1, s FROM secret --", params![0]),
        users().columns(["$c(')", "s FROM secret --"]),
        users().order_by("$o(') , (SELECT s FROM secret)"),
        // 2. A quote opened in one fragment and closed in the next.
        users().columns(["'"]).filter("' AS j, s FROM secret", params![]),
        users().columns(["\""]).filter("\" AS j, s FROM secret", params![]),
        users().columns(["`"]).filter("` AS j, s FROM secret", params![]),
        users().columns(["["]).filter("] AS j, s FROM secret", params![]),
        users().columns(["name /*"]).filter("*/, s FROM secret", params![]),
        users().group_by("'").order_by("' , (SELECT s FROM secret)"),
        // 3. `IN` a table or a table-valued function.
        users().filter("? IN secret", params![SECRET]),
        users().filter("? NOT IN secret", params![SECRET]),
        users().filter("? IN \"secret\"", params![SECRET]),
        users().filter("? IN main.secret", params![SECRET]),
        users().filter("? IN json_each('[1]')", params![1]),
        // Subqueries in every place.
        users().filter("id IN (SELECT rowid FROM secret)", params![]),
        users().filter("EXISTS (SELECT 1 FROM secret)", params![]),
        users().columns(["(SELECT s FROM secret) AS leaked"]),
        users().order_by("(SELECT s FROM secret)"),
        users().filter("id = 1 UNION SELECT 1, s FROM secret", params![]),
        users().filter("id IN (WITH x AS (SELECT s FROM secret) SELECT 1 FROM x)", params![]),
        // 4. Unbounded allocation.
        users().filter("length(randomblob(999999999)) > 0", params![]),
        users().columns(["zeroblob(999999999) AS z"]),
    ]
}

#[test]
fn no_fragment_reaches_another_table() {
    let (_dir, db) = store();
    for query in reaching_queries() {
        let described = format!("{query:?}");
        match db.query(query.clone()) {
            Ok(rows) => assert!(!leaks(&rows), "leaked through {described}"),
            Err(error) => assert!(matches!(error, Error::Validation { .. }), "{described}: {error}"),
        }
        // Count and exists use the filter alone: where it reaches, even a yes or no would leak.
        if described.contains("filter: Some") {
            assert!(db.count(query.clone()).is_err(), "{described}");
            assert!(db.exists(query).is_err(), "{described}");
        } else {
            assert_eq!(db.count(query.clone()).unwrap(), 2, "{described}");
        }
    }
}

#[test]
fn the_database_fences_helpers_even_with_the_validator_off() {
    let (_dir, db) = store();
    // Non-strict: a fragment that fails validation is logged and used anyway.
    let unchecked = SqlPolicy::default().strict(false);
    for query in reaching_queries() {
        let query = query.policy(unchecked.clone());
        let described = format!("{query:?}");
        match db.query(query) {
            Ok(rows) => assert!(!leaks(&rows), "leaked through {described}"),
            Err(Error::Validation { message }) => assert!(message.contains("refused"), "{described}: {message}"),
            Err(other) => assert!(matches!(other, Error::Sqlite(_)), "{described}: {other}"),
        }
    }
    let loose = NanaSQLite::builder(db.path()).sql_policy(unchecked).open().unwrap();
    let changed = loose.sql_update("users", &json!({"name": "x"}), "id = (SELECT 1 FROM secret)", params![]);
    let refused = changed.unwrap_err().to_string();
    assert!(refused.contains("\"secret\""), "{refused}");
    let deleted = loose.sql_delete("users", "id IN (SELECT 1 FROM secret WHERE s = ?)", params![SECRET]);
    assert!(matches!(deleted, Err(Error::Validation { .. })));
    // SQLite names a common table expression as the accessor of what it reads, as it names a
    // trigger: only the triggers a helper's write fires are let through.
    let cte = loose.query(Query::table("users").columns(["(WITH x AS (SELECT s FROM secret) SELECT s FROM x)"]));
    assert!(cte.unwrap_err().to_string().contains("\"secret\""), "a CTE reads through the fence");
    assert_eq!(db.fetch_all("SELECT name FROM users ORDER BY id", params![]).unwrap().len(), 2, "nothing changed");
    assert_eq!(db.count(Query::table("users").filter("name = ?", params!["alice"])).unwrap(), 1);
}

#[test]
fn the_fence_lets_a_helper_do_its_own_work() {
    let (_dir, db) = store();
    db.execute(
        "CREATE TRIGGER audit AFTER UPDATE ON users BEGIN INSERT INTO secret (s) VALUES ('audited'); END",
        params![],
    )
    .unwrap();
    assert_eq!(db.sql_update("users", &json!({"name": "carol"}), "name LIKE ?", params!["a%"]).unwrap(), 1);
    assert_eq!(db.count(Query::table("secret")).unwrap(), 2, "the schema's own trigger ran");
    let rows = db.query(Query::table("users").columns(["UPPER(name) AS n", "COUNT(*) AS c"]).group_by("name")).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(db.exists(Query::table("users").filter("name GLOB ?", params!["b*"])).unwrap());
    assert_eq!(db.sql_delete("users", "id = ?", params![1]).unwrap(), 1);
}

#[test]
fn transaction_control_in_a_statement_is_refused_on_the_sync_store() {
    let (_dir, db) = store();
    for statement in ["BEGIN", "BEGIN IMMEDIATE", "COMMIT", "END", "ROLLBACK", "SAVEPOINT s", "RELEASE s", "commit"] {
        let error = db.execute(statement, params![]).unwrap_err();
        assert!(error.to_string().contains("use `transaction` or `begin`"), "{statement}: {error}");
        assert!(db.fetch_all(statement, params![]).is_err());
        assert!(db.execute_many(statement, [params![]]).is_err());
    }
    db.set("k", &1).unwrap();
    assert_eq!(db.get_fresh::<i32>("k").unwrap(), Some(1), "the store works on");
    let error = db.transaction(|tx| tx.execute("COMMIT", params![])).unwrap_err();
    assert!(matches!(error, Error::Validation { .. }), "{error}");
}

#[test]
fn transaction_control_in_a_statement_is_refused_on_the_async_store() {
    let dir = tempfile::tempdir().unwrap();
    futures::executor::block_on(async {
        let db = AsyncNanaSQLite::open(dir.path().join("a.db")).await.unwrap();
        let writes = (0..20).map(|i| db.set(&format!("k{i}"), &i));
        let commit = db.execute("COMMIT", params![]);
        let (written, commit) = futures::join!(futures::future::join_all(writes), commit);
        assert!(matches!(commit, Err(Error::Validation { .. })), "{commit:?}");
        assert!(written.into_iter().all(|w| w.is_ok()), "the other writers of its group are answered truly");
        for i in 0..20 {
            assert_eq!(db.get_fresh::<i32>(&format!("k{i}")).await.unwrap(), Some(i));
        }
        assert!(db.fetch_one("ROLLBACK", params![]).await.is_err());
        db.close().await.unwrap();
    });
}

#[test]
fn no_query_allocates_without_bound() {
    let (_dir, db) = store();
    // The caller's own SQL may call anything, but not make a string or blob past the limit.
    let error = db.fetch_one("SELECT length(randomblob(999999999))", params![]).unwrap_err();
    assert!(error.to_string().contains("too big"), "{error}");
    let small = NanaSQLite::builder(db.path()).max_length(1000).open().unwrap();
    assert!(small.set("big", &"x".repeat(2000)).unwrap_err().to_string().contains("too big"));
    small.set("fits", &"x".repeat(100)).unwrap();
}

#[test]
fn counts_out_of_range_are_validation_errors() {
    let (_dir, db) = store();
    let error = db.query(Query::table("users").limit(u64::MAX)).unwrap_err();
    assert!(matches!(&error, Error::Validation { message } if message.contains("limit")), "{error}");
    assert_eq!(db.query(Query::table("users").limit(1_usize).offset(1_i32)).unwrap().len(), 1);
}
