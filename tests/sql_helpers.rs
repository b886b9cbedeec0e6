//! The SQL helpers of the sync store on real files, the attack corpus against a live database,
//! and transactions.

use nanasqlite::{Error, NanaSQLite, Query, SqlPolicy, SqlValue, params};
use serde::Deserialize;
use serde_json::json;

fn users_db() -> (tempfile::TempDir, NanaSQLite) {
    let dir = tempfile::tempdir().unwrap();
    let db = NanaSQLite::open(dir.path().join("sql.db")).unwrap();
    db.create_table(
        "users",
        &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT"), ("email", "TEXT UNIQUE"), ("age", "INTEGER")],
    )
    .unwrap();
    for (name, age) in [("Alice", 30), ("Bob", 25), ("Carol", 35), ("Dan", 20)] {
        let email = format!("{}@example.com", name.to_lowercase());
        db.sql_insert("users", &json!({"name": name, "email": email, "age": age})).unwrap();
    }
    (dir, db)
}

#[derive(Debug, Deserialize, PartialEq)]
struct User {
    id: i64,
    name: String,
}

#[test]
fn insert_query_update_delete() -> nanasqlite::Result<()> {
    let (_dir, db) = users_db();
    let rows = db.query(Query::table("users").filter("name LIKE ?", params!["A%"]))?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].value("email"), Some(&SqlValue::Text("alice@example.com".into())));
    assert_eq!(rows[0].get::<String>("email")?, "alice@example.com");
    let page: Vec<User> =
        db.query_as(Query::table("users").columns(["id", "name"]).order_by("name ASC").limit(2).offset(1))?;
    assert_eq!(page, [User { id: 2, name: "Bob".into() }, User { id: 3, name: "Carol".into() }]);
    assert_eq!(db.count(Query::table("users").filter("age > ?", params![24]))?, 3);
    assert!(db.exists(Query::table("users").filter("email = ?", params!["bob@example.com"]))?);
    assert_eq!(db.sql_update("users", &json!({"name": "Robert"}), "id = ?", params![2])?, 1);
    assert_eq!(db.sql_delete("users", "age < ?", params![21])?, 1);
    assert_eq!(db.count(Query::table("users"))?, 3);
    let grouped = db.query(Query::table("users").columns(["age > 26 AS older", "COUNT(*) AS n"]).group_by("older"))?;
    assert_eq!(grouped.len(), 2);
    assert_eq!(db.query(Query::table("users").limit(0))?.len(), 0, "limit 0 gives no rows");
    Ok(())
}

#[test]
fn upsert_replaces_updates_or_does_nothing() -> nanasqlite::Result<()> {
    let (_dir, db) = users_db();
    let updated =
        db.upsert("users", &json!({"id": 1, "name": "Alicia", "email": "alice@example.com", "age": 31}), &["id"])?;
    assert_eq!(updated, 1, "the rowid of the updated row");
    let alice = db.fetch_one("SELECT name, age FROM users WHERE id = ?", params![1])?.unwrap();
    assert_eq!(alice.to_json(), json!({"name": "Alicia", "age": 31}));
    assert_eq!(
        db.upsert("users", &json!({"email": "bob@example.com"}), &["email"])?,
        0,
        "all conflict columns: do nothing"
    );
    let id = db.upsert("users", &json!({"id": 9, "name": "Eve"}), &[])?;
    assert_eq!(id, 9);
    assert_eq!(db.count(Query::table("users"))?, 5);
    Ok(())
}

#[test]
fn execute_fetch_and_execute_many_is_atomic() -> nanasqlite::Result<()> {
    let (_dir, db) = users_db();
    assert_eq!(db.execute("UPDATE users SET name = ? WHERE id = ?", params!["Dan2", 4])?, 1);
    let all = db.fetch_all("SELECT id, name FROM users ORDER BY id", params![])?;
    assert_eq!(all[3].to_json(), json!({"id": 4, "name": "Dan2"}));
    let n = db.fetch_one("SELECT COUNT(*) AS n FROM users", params![])?.unwrap();
    assert_eq!(n.value("n"), Some(&SqlValue::Integer(4)));
    db.execute_many("INSERT INTO users (name) VALUES (?)", vec![params!["a"], params!["b"]])?;
    assert_eq!(db.count(Query::table("users"))?, 6);
    let duplicate = vec![params!["x", "x@e"], params!["y", "alice@example.com"]];
    assert!(db.execute_many("INSERT INTO users (name, email) VALUES (?, ?)", duplicate).is_err());
    assert_eq!(db.count(Query::table("users"))?, 6, "nothing of a failed execute_many");
    Ok(())
}

#[test]
fn schema_helpers() -> nanasqlite::Result<()> {
    let (_dir, db) = users_db();
    assert_eq!(db.list_tables()?, ["data", "users"]);
    let schema = db.get_table_schema("users")?;
    assert_eq!(schema.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["id", "name", "email", "age"]);
    assert!(schema[0].pk);
    db.create_index("idx_users_age", "users", &["age"], false)?;
    assert_eq!(db.list_indexes(Some("users"))?.len(), 1);
    db.alter_table_add_column("users", "note", "TEXT", Some(SqlValue::from("it's okay")))?;
    let note = db.fetch_one("SELECT note FROM users WHERE id = 1", params![])?.unwrap();
    assert_eq!(note.value("note"), Some(&SqlValue::Text("it's okay".into())));
    db.drop_index("idx_users_age")?;
    assert!(db.list_indexes(Some("users"))?.is_empty());
    db.create_table("group", &[("order", "TEXT")])?;
    db.sql_insert("group", &json!({"order": "reserved words work"}))?;
    db.drop_table("group")?;
    assert!(!db.table_exists("group")?);
    db.vacuum()?;
    assert!(db.get_db_size()? > 0);
    assert_eq!(NanaSQLite::open(":memory:")?.get_db_size()?, 0);
    Ok(())
}

#[test]
fn pragmas() -> nanasqlite::Result<()> {
    let (_dir, db) = users_db();
    db.pragma("user_version", Some(123.into()))?;
    assert_eq!(db.pragma("user_version", None)?, Some(SqlValue::Integer(123)));
    db.pragma("synchronous", Some("NORMAL".into()))?;
    assert!(matches!(db.pragma("synchronous", None)?, Some(SqlValue::Integer(1 | 2))));
    db.pragma("cache_size", Some((-2000).into()))?;
    assert!(matches!(db.pragma("compile_options", None), Err(Error::Validation { .. })));
    assert!(matches!(db.pragma("schema_version", Some(1.into())), Err(Error::Validation { .. })));
    assert!(matches!(db.pragma("journal_mode", Some("WAL; DROP TABLE users--".into())), Err(Error::Validation { .. })));
    assert!(db.table_exists("users")?);
    Ok(())
}

/// Everything about the file that an attack could change.
fn fingerprint(db: &NanaSQLite) -> (Vec<String>, u64, Vec<SqlValue>) {
    let schema = db.fetch_all("SELECT sql FROM sqlite_master ORDER BY name", params![]).unwrap();
    let schema = schema.iter().map(|r| format!("{:?}", r.values())).collect();
    let names = db.fetch_all("SELECT name FROM users ORDER BY id", params![]).unwrap();
    (schema, db.count(Query::table("users")).unwrap(), names.iter().map(|r| r.values()[0].clone()).collect())
}

#[test]
fn the_attack_corpus_changes_nothing() {
    let (_dir, db) = users_db();
    let before = fingerprint(&db);
    fn validation<T>(result: nanasqlite::Result<T>) -> bool {
        matches!(result, Err(Error::Validation { .. }))
    }
    for attack in ["data; DROP TABLE data--", "test; DROP TABLE users--", "id; DROP TABLE", "", "users\""] {
        assert!(validation(db.create_table(attack, &[("id", "INTEGER")])), "{attack}");
        assert!(validation(db.create_table("t", &[(attack, "INTEGER")])), "{attack}");
        assert!(validation(db.create_index(attack, "users", &["age"], false)), "{attack}");
        assert!(validation(db.query(Query::table(attack))), "{attack}");
        assert!(validation(db.sql_insert(attack, &json!({"a": 1}))), "{attack}");
    }
    for bad_type in ["INTEGER); DELETE FROM \"users\" WHERE 1=1; --", "TEXT, injected INTEGER", "DECIMAL(10,2", "TEXT)"]
    {
        assert!(validation(db.create_table("victim", &[("id", bad_type)])), "{bad_type}");
    }
    for bad_type in ["TEXT CHECK(1=1)", "TEXT; DROP TABLE users", "TEXT'--"] {
        assert!(validation(db.alter_table_add_column("users", "x", bad_type, None)), "{bad_type}");
    }
    for order in ["id; DROP TABLE users--", "(SELECT CASE WHEN 1=1 THEN name ELSE age END)", "name UNION SELECT email"]
    {
        assert!(validation(db.query(Query::table("users").order_by(order))), "{order}");
    }
    for group in ["age; DROP TABLE users--", "(SELECT name FROM data)", "HEX(age)"] {
        assert!(validation(db.query(Query::table("users").group_by(group))), "{group}");
    }
    for column in
        ["id); DROP TABLE users--", "id, DELETE FROM users", "(SELECT sql FROM sqlite_master) AS leaked", "HEX(name)"]
    {
        assert!(validation(db.query(Query::table("users").columns([column]))), "{column}");
    }
    for condition in ["1=1; DROP TABLE users", "EVIL(1)", "\"EVIL\"(1)", "1=1 OR id IN (SELECT id FROM data)"] {
        assert!(validation(db.query(Query::table("users").filter(condition, params![]))), "{condition}");
        assert!(validation(db.count(Query::table("users").filter(condition, params![]))), "{condition}");
        assert!(validation(db.exists(Query::table("users").filter(condition, params![]))), "{condition}");
        assert!(validation(db.sql_update("users", &json!({"name": "x"}), condition, params![])), "{condition}");
        assert!(validation(db.sql_delete("users", condition, params![])), "{condition}");
    }
    let forbid_upper =
        Query::table("users").filter("UPPER(name) = ?", params!["BOB"]).policy(SqlPolicy::default().forbid(["UPPER"]));
    assert!(validation(db.query(forbid_upper)));
    assert_eq!(fingerprint(&db), before, "nothing changed");
    assert!(db.table_exists("users").unwrap(), "the users table survives");
}

#[test]
fn store_policy_applies_to_sql_helpers_and_tables() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let policy = SqlPolicy::default().forbid(["UPPER"]);
    let db = NanaSQLite::builder(dir.path().join("p.db")).sql_policy(policy).open()?;
    db.create_table("t", &[("name", "TEXT")])?;
    let upper = || Query::table("t").filter("UPPER(name) = ?", params!["X"]);
    assert!(matches!(db.query(upper()), Err(Error::Validation { .. })));
    assert!(matches!(db.table("other")?.query(upper()), Err(Error::Validation { .. })), "tables inherit the policy");
    assert!(matches!(db.sql_delete("t", "UPPER(name) = ?", params!["X"]), Err(Error::Validation { .. })));
    Ok(())
}

#[test]
fn transactions_commit_or_roll_back_whole() -> nanasqlite::Result<()> {
    let (_dir, db) = users_db();
    db.set("k", &0)?;
    db.transaction(|tx| {
        tx.set("k", &1)?;
        assert_eq!(tx.get::<i32>("k")?, Some(1), "the transaction sees its own write");
        tx.sql_insert("users", &json!({"name": "Tx"}))?;
        Ok(())
    })?;
    assert_eq!(db.get::<i32>("k")?, Some(1));
    assert_eq!(db.count(Query::table("users"))?, 5);

    let failed: nanasqlite::Result<()> = db.transaction(|tx| {
        tx.set("k", &2)?;
        tx.delete("gone")?;
        tx.sql_delete("users", "1 = 1", params![])?;
        Err(Error::Validation { message: "changed my mind".into() })
    });
    assert!(failed.is_err());
    assert_eq!(db.get::<i32>("k")?, Some(1), "the cache shows nothing of a rolled-back transaction");
    assert_eq!(db.get_fresh::<i32>("k")?, Some(1));
    assert_eq!(db.count(Query::table("users"))?, 5);

    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = db.transaction(|tx| -> nanasqlite::Result<()> {
            tx.set("k", &3)?;
            panic!("boom")
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(db.get::<i32>("k")?, Some(1), "the cache shows nothing of a panicked transaction");
    assert_eq!(db.get_fresh::<i32>("k")?, Some(1), "a panic rolls back");
    db.set("after", &true)?;
    Ok(())
}

#[test]
fn misusing_a_transaction_is_an_error_not_a_deadlock() -> nanasqlite::Result<()> {
    let (_dir, db) = users_db();
    let inner = db.transaction(|_| {
        Ok((db.transaction(|_| Ok(())).unwrap_err(), db.set("x", &1).unwrap_err(), db.close().unwrap_err()))
    })?;
    assert!(matches!(inner.0, Error::Transaction { .. }), "nested transaction");
    assert!(matches!(inner.1, Error::Transaction { .. }), "the store inside its own transaction");
    assert!(matches!(inner.2, Error::Transaction { .. }), "close during a transaction");
    let table = db.table("other")?;
    let from_table = db.transaction(|_| Ok(table.get::<i32>("k").unwrap_err()))?;
    assert!(matches!(from_table, Error::Transaction { .. }), "another table of the file, same thread");
    db.set("x", &1)?;
    db.close()?;
    Ok(())
}

#[test]
fn a_row_that_cannot_be_columns_names_its_table_and_writes_nothing() {
    let (_dir, db) = users_db();
    let bad: std::collections::HashMap<(i32, i32), i32> = [((1, 2), 3)].into();
    let error = db.sql_insert("users", &bad).unwrap_err();
    assert!(matches!(&error, Error::EncodeRow { table, .. } if table == "users"), "{error:?}");
    assert_eq!(error.key(), None, "a table is not a key");
    assert!(matches!(db.sql_insert("users", &json!([1, 2])), Err(Error::Validation { .. })), "not a map of columns");
    assert_eq!(db.count(Query::table("users")).unwrap(), 4);
}

/// `fetch_one` and `fetch_all` run only statements SQLite calls read-only, whichever
/// connection runs them: a write is refused before it runs, naming `execute`, on the sync
/// store and on the async store with its writer idle (where a write would succeed) and busy
/// (where a reader would fail it with its own read-only error).
#[test]
fn fetch_runs_only_statements_that_read_on_either_store() -> nanasqlite::Result<()> {
    let refused = |result: nanasqlite::Result<Vec<nanasqlite::Row>>| {
        let error = result.expect_err("a write through fetch_all is refused");
        assert!(matches!(error, Error::Validation { .. }) && error.to_string().contains("execute"), "{error}");
    };
    let writes = [
        "DELETE FROM data WHERE key = 'k'",
        "INSERT INTO data (key, value) VALUES ('new', '1') RETURNING key",
        "UPDATE data SET value = '2' WHERE key = 'k' RETURNING value",
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fetch.db");
    let db = NanaSQLite::open(&path)?;
    db.set("k", &1)?;
    for sql in writes {
        refused(db.fetch_all(sql, params![]));
        assert!(db.fetch_one(sql, params![]).is_err());
    }
    assert_eq!((db.get_fresh::<i64>("k")?, db.len()?), (Some(1), 1), "nothing was written");
    assert_eq!(db.fetch_all("SELECT key FROM data", params![])?.len(), 1);

    futures::executor::block_on(async {
        let db = nanasqlite::AsyncNanaSQLite::builder(&path).read_pool_size(2).open().await?;
        for sql in writes {
            refused(db.fetch_all(sql, params![]).await); // the writer is idle: it would take the query
        }
        let holding = db.begin().await?; // the writer is busy: a reader takes the query
        for sql in writes {
            refused(db.fetch_all(sql, params![]).await);
        }
        assert_eq!(db.fetch_all("SELECT key FROM data", params![]).await?.len(), 1);
        holding.rollback().await?;
        assert_eq!((db.get_fresh::<i64>("k").await?, db.len().await?), (Some(1), 1));
        db.close().await
    })
}
