//! A fragment the validator accepts, run by the SQL helpers (with the database's own fence),
//! never reads another table and never needs that fence: it is run on two databases alike but
//! for the content of a table no query asks about (`secret`), and must do the same on both;
//! and the database never refuses what the validator let through.
//!
//! Input: a byte choosing the clause (WHERE, ORDER BY, GROUP BY, a column), then the fragment.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nanasqlite::sql::Clause;
use nanasqlite::{Error, NanaSQLite, Query, SqlPolicy, SqlValue, params};

const CLAUSES: [Clause; 4] = [Clause::Where, Clause::OrderBy, Clause::GroupBy, Clause::Column];

thread_local! {
    /// The database with the secret, and the one without.
    static STORES: (NanaSQLite, NanaSQLite) = (store("('a'), ('TOPSECRET')"), store("('nothing')"));
}

fn store(secrets: &str) -> NanaSQLite {
    let db = NanaSQLite::builder(":memory:").max_length(1 << 20).open().unwrap();
    db.create_table("users", &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT"), ("age", "INTEGER")]).unwrap();
    db.create_table("secret", &[("s", "TEXT")]).unwrap();
    db.execute("INSERT INTO users (name, age) VALUES ('a', 1), ('b', 2)", params![]).unwrap();
    db.execute(&format!("INSERT INTO secret (s) VALUES {secrets}"), params![]).unwrap();
    db
}

/// What the helpers made of a fragment.
#[derive(Debug, PartialEq)]
enum Outcome {
    Rows(Vec<Vec<SqlValue>>),
    /// The database's fence refused the statement.
    Fenced(String),
    /// SQLite failed it (a syntax error, a missing column, …).
    Failed(String),
}

/// What the helpers make of `fragment` in `clause`.
fn run(db: &NanaSQLite, fragment: &str, clause: Clause) -> Outcome {
    let parameters = vec![SqlValue::Integer(1); fragment.matches('?').count().min(64)];
    let query = Query::table("users");
    let query = match clause {
        Clause::Where => query.filter(fragment, parameters),
        Clause::OrderBy => query.order_by(fragment),
        Clause::GroupBy => query.columns(["count(*)"]).group_by(fragment),
        _ => query.columns([fragment]),
    };
    match db.query(query) {
        Ok(rows) => Outcome::Rows(rows.iter().map(|row| row.values().to_vec()).collect()),
        Err(Error::Validation { message }) => Outcome::Fenced(message),
        Err(error) => Outcome::Failed(error.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(fragment) = std::str::from_utf8(rest) else { return };
    let clause = CLAUSES[usize::from(selector) % CLAUSES.len()];
    if SqlPolicy::default().check(fragment, clause).is_err() {
        return;
    }
    let (told, other) = STORES.with(|(told, other)| (run(told, fragment, clause), run(other, fragment, clause)));
    assert_eq!(told, other, "an accepted fragment read another table: {fragment:?} in {clause:?}");
    assert!(!matches!(told, Outcome::Fenced(_)), "the validator accepted what the database refused: {fragment:?} in {clause:?}: {told:?}");
});
