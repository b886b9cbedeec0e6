//! Properties of the fragment validator and the database's fence on random fragments: the
//! validator never panics; nothing a fragment holds can change the schema or the data; and no
//! mix of fragments, checked or not, reads a table the query was not asked about, or runs
//! without bound (a watchdog ends the run if one does).
//!
//! Random mixes of pieces rarely form a working escape; the fragments generated from SQLite's
//! grammar along each known route out of a query's table, run with each fence alone and with
//! none (where they are shown to leak), are in `nanasqlite-core/src/sql/escape_routes.rs`.

use nanasqlite::{NanaSQLite, Query, SqlPolicy, SqlValue, params, sql::Clause};
use proptest::prelude::*;

mod common;

/// Pieces that attacks are made of, so random fragments get near the interesting cases.
const PIECES: &[&str] = &[
    "id",
    "name",
    "age",
    " ",
    "=",
    "?",
    "'",
    "\"",
    "(",
    ")",
    ",",
    ";",
    "--",
    "/*",
    "*/",
    "SELECT",
    "DROP",
    "TABLE",
    "users",
    "UNION",
    "OR",
    "AND",
    "1",
    "COUNT",
    "UPPER",
    "EVIL",
    "load_extension",
    "[",
    "]",
    "`",
    "||",
    "+",
    "-",
    "DELETE",
    "FROM",
    "WHERE",
    "IN",
    "NOT",
    "ATTACH",
    "replace",
    "sqlite_master",
    "\n",
    "é",
    "%",
    "$a(",
    "$b::c",
    ":x",
    "@y",
    "?1",
    "x'00'",
    "secret",
    "s",
    "main.",
    "json_each(",
    "randomblob(",
    "999999999",
    "->>",
    "EXISTS",
    "WITH",
    "VALUES",
    "CASE",
    "WHEN",
    "THEN",
    "END",
    "AS",
];

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![proptest::collection::vec(proptest::sample::select(PIECES), 0..12).prop_map(|p| p.concat()), ".{0,40}",]
}

fn clause() -> impl Strategy<Value = Clause> {
    prop_oneof![Just(Clause::Where), Just(Clause::OrderBy), Just(Clause::GroupBy), Just(Clause::Column)]
}

/// The schema, and the rows.
fn snapshot(db: &NanaSQLite) -> (Vec<Vec<SqlValue>>, Vec<Vec<SqlValue>>) {
    let values = |sql| db.fetch_all(sql, params![]).unwrap().iter().map(|row| row.values().to_vec()).collect();
    (values("SELECT type, name, sql FROM sqlite_master ORDER BY name"), values("SELECT * FROM users ORDER BY id"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_validator_never_panics(text in fragment(), clause in clause()) {
        let _ = SqlPolicy::default().check(&text, clause);
        let _ = nanasqlite::sql::check_column_type(&text);
        let _ = nanasqlite::sql::check_added_column_type(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn accepted_fragments_change_nothing(text in fragment(), clause in clause()) {
        let db = NanaSQLite::open(":memory:").unwrap();
        db.create_table("users", &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT"), ("age", "INTEGER")]).unwrap();
        db.execute_many("INSERT INTO users (name, age) VALUES (?, ?)", vec![params!["a", 1], params!["b", 2]]).unwrap();
        let before = snapshot(&db);
        let placeholders = text.matches('?').count();
        let params: Vec<SqlValue> = vec![SqlValue::Null; placeholders];
        let query = match clause {
            Clause::Where => Query::table("users").filter(text.clone(), params.clone()),
            Clause::OrderBy => Query::table("users").order_by(text.clone()),
            Clause::GroupBy => Query::table("users").group_by(text.clone()),
            _ => Query::table("users").columns([text.clone()]),
        };
        // Accepted or not, and whether SQLite then likes the query or not, nothing changes.
        let _ = db.query(query.clone());
        let _ = db.count(query);
        if clause == Clause::Where {
            let _ = db.sql_update("users", &serde_json::json!({"age": 9}), &text, params.clone());
        }
        let after = snapshot(&db);
        if clause == Clause::Where && SqlPolicy::default().check(&text, clause).is_ok() {
            // An accepted WHERE may select rows to update; the schema stays.
            prop_assert_eq!(before.0, after.0);
        } else {
            prop_assert_eq!(before, after);
        }
    }
}

const SECRET: &str = "TOPSECRET";

/// A store with `users` and a `secret` table no query asks about, its strings capped at 1 MiB.
fn guarded_store() -> NanaSQLite {
    let db = NanaSQLite::builder(":memory:").max_length(1 << 20).open().unwrap();
    db.create_table("users", &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT"), ("age", "INTEGER")]).unwrap();
    db.create_table("secret", &[("s", "TEXT")]).unwrap();
    db.execute_many("INSERT INTO users (name, age) VALUES (?, ?)", [params!["a", 1], params!["b", 2]]).unwrap();
    db.execute("INSERT INTO secret (s) VALUES (?)", params![SECRET]).unwrap();
    db
}

fn secret_in(rows: &[nanasqlite::Row]) -> bool {
    rows.iter().any(|row| row.values().iter().any(|v| matches!(v, SqlValue::Text(t) if t.contains(SECRET))))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn no_mix_of_fragments_reads_another_table(
        columns in fragment(),
        filter in fragment(),
        order in fragment(),
        group in fragment(),
        checked in any::<bool>(),
    ) {
        let db = guarded_store();
        let before = (
            db.fetch_all("SELECT type, name, sql FROM sqlite_master ORDER BY name", params![]).unwrap(),
            db.fetch_all("SELECT * FROM users ORDER BY id", params![]).unwrap(),
        );
        let params = vec![SqlValue::from("a"); filter.matches('?').count() + columns.matches('?').count()];
        let mut query = Query::table("users").columns([columns.clone()]).filter(filter.clone(), &params);
        if !order.trim().is_empty() {
            query = query.order_by(order.clone());
        }
        if !group.trim().is_empty() {
            query = query.group_by(group.clone());
        }
        if !checked {
            // The validator off: only the database's fence stands.
            query = query.policy(SqlPolicy::default().strict(false));
        }
        let _watchdog = common::Watchdog::new("a query of random fragments", common::TEST_LIMIT);
        if let Ok(rows) = db.query(query.clone()) {
            prop_assert!(!secret_in(&rows), "read secret: {query:?}");
        }
        let count = db.count(query.clone());
        let exists = db.exists(query.clone());
        if checked {
            // With the validator on, a count or exists that ran used a filter it accepted.
            if count.is_ok() || exists.is_ok() {
                prop_assert!(SqlPolicy::default().check(&filter, Clause::Where).is_ok());
            }
        }
        let after = (
            db.fetch_all("SELECT type, name, sql FROM sqlite_master ORDER BY name", params![]).unwrap(),
            db.fetch_all("SELECT * FROM users ORDER BY id", params![]).unwrap(),
        );
        prop_assert_eq!(before, after);
    }
}
