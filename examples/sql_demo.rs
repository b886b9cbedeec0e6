//! SQL beside the key/value store: tables, inserts, validated queries with pagination,
//! updates, upserts and a transaction.
//!
//! Run: `cargo run --example sql_demo`

use nanasqlite::{NanaSQLite, Query, SqlPolicy, params};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
struct User {
    id: i64,
    name: String,
    age: i64,
}

fn main() -> nanasqlite::Result<()> {
    let path = std::env::temp_dir().join(format!("nanasqlite-sql-demo-{}.db", std::process::id()));
    let db = NanaSQLite::open(&path)?;

    // Tables: names are validated identifiers, column types are checked.
    db.create_table(
        "users",
        &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT"), ("email", "TEXT UNIQUE"), ("age", "INTEGER")],
    )?;
    db.create_index("idx_users_age", "users", &["age"], false)?;
    for i in 0..25 {
        db.sql_insert(
            "users",
            &json!({"name": format!("User{i:02}"), "email": format!("u{i}@example.com"), "age": 20 + i}),
        )?;
    }
    println!("tables: {:?}", db.list_tables()?);

    // Queries: fragments are validated; values are always bound parameters.
    let adults = db.count(Query::table("users").filter("age >= ?", params![30]))?;
    println!("{adults} users aged 30 or more");
    for page in 0..3 {
        let users: Vec<User> = db.query_as(
            Query::table("users").columns(["id", "name", "age"]).order_by("age DESC").limit(5).offset(page * 5),
        )?;
        let names: Vec<_> = users.iter().map(|u| format!("{} ({}, #{})", u.name, u.age, u.id)).collect();
        println!("page {page}: {}", names.join(", "));
    }
    let stats = db.query(
        Query::table("users").columns(["age >= 30 AS older", "COUNT(*) AS n", "AVG(age) AS mean"]).group_by("older"),
    )?;
    for row in &stats {
        println!("group {}", row.to_json());
    }

    // Writes on arbitrary tables.
    db.sql_update("users", &json!({"name": "Renamed"}), "id = ?", params![1])?;
    db.upsert("users", &json!({"id": 2, "name": "Upserted", "email": "u1@example.com", "age": 99}), &["id"])?;
    let removed = db.sql_delete("users", "age < ?", params![22])?;
    println!(
        "removed {removed}; first: {:?}",
        db.fetch_one("SELECT id, name, age FROM users ORDER BY id", params![])?.map(|r| r.to_json())
    );

    // Bad input is rejected before anything runs.
    let attack = db.query(Query::table("users").order_by("id; DROP TABLE users--"));
    println!("attack: {}", attack.unwrap_err());
    let not_allowed = db.query(Query::table("users").filter("HEX(name) = ?", params!["00"]));
    println!("unknown function: {}", not_allowed.unwrap_err());
    let allowed =
        Query::table("users").filter("HEX(name) = ?", params!["55"]).policy(SqlPolicy::default().allow(["HEX"]));
    println!("allowed per query: {} rows", db.query(allowed)?.len());

    // A transaction: key/value and SQL writes commit together, or not at all.
    db.create_table("audit", &[("event", "TEXT")])?;
    db.transaction(|tx| {
        tx.set("last_import", &json!({"rows": 25}))?;
        tx.sql_insert("audit", &json!({"event": "import"}))?;
        Ok(())
    })?;
    let failed: nanasqlite::Result<()> = db.transaction(|tx| {
        tx.sql_insert("audit", &json!({"event": "half-done"}))?;
        tx.execute("INSERT INTO users (email) VALUES (?)", params!["u3@example.com"])?; // duplicate email
        Ok(())
    });
    let error = failed.unwrap_err();
    let cause = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
    println!("failed transaction: {error}: {cause}; audit rows still {}", db.count(Query::table("audit"))?);
    println!("last_import = {:?}", db.get::<serde_json::Value>("last_import")?);

    db.close()?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}
