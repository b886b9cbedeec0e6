//! Properties of the fragment validator: it never panics, and nothing it accepts can change
//! the schema or the data when used as a query fragment.

use nanasqlite::{NanaSQLite, Query, SqlPolicy, SqlValue, params, sql::Clause};
use proptest::prelude::*;

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
