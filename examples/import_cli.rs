//! A sync command-line import: JSON lines (`{"id": …, "name": …, "email": …}`) into a SQL table
//! and a key/value index, in batches of one transaction each, then a paginated listing.
//!
//! Run: `cargo run --example import_cli [INPUT.jsonl [DATABASE]]`; without an input it imports
//! 1,000 generated lines. Every error (a line that is not JSON, a duplicate email, the file)
//! reaches `main` through `?` and says what happened.

use std::io::BufRead;
use std::path::PathBuf;

use nanasqlite::{NanaSQLite, Query, params};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize)]
struct Person {
    id: i64,
    name: String,
    email: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// Rows in each transaction.
const BATCH: usize = 250;

fn main() -> nanasqlite::Result<()> {
    let mut args = std::env::args().skip(1);
    let input = args.next().map(PathBuf::from);
    let database = args.next().map_or_else(|| std::env::temp_dir().join("nanasqlite-import.db"), PathBuf::from);
    let db = NanaSQLite::open(&database)?;
    db.create_table(
        "people",
        &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT"), ("email", "TEXT UNIQUE"), ("tags", "TEXT")],
    )?;
    db.execute("DELETE FROM people", params![])?; // a fresh import each run
    let by_email = db.table("people_by_email")?;
    by_email.clear()?;

    let lines: Vec<String> = match &input {
        Some(path) => std::io::BufReader::new(std::fs::File::open(path)?).lines().collect::<Result<_, _>>()?,
        None => (1..=1000)
            .map(|i| {
                format!(r#"{{"id": {i}, "name": "Person {i}", "email": "p{i}@example.com", "tags": ["t{}"]}}"#, i % 3)
            })
            .collect(),
    };
    let mut imported = 0;
    for chunk in lines.chunks(BATCH) {
        let people: Vec<Person> = chunk.iter().map(|line| serde_json::from_str(line)).collect::<Result<_, _>>()?;
        db.transaction(|tx| {
            for person in &people {
                tx.sql_insert("people", person)?;
            }
            Ok(())
        })?;
        by_email.batch_update(people.iter().map(|p| (p.email.as_str(), p.id)))?;
        imported += people.len();
    }
    println!("imported {imported} people into {}", database.display());

    let page_size = 5_usize;
    let page: Vec<Person> = db.query_as(Query::table("people").order_by("id").limit(page_size).offset(page_size))?;
    println!("page 2: {:?}", page.iter().map(|p| (&p.name, &p.tags)).collect::<Vec<_>>());
    let id: Option<i64> = by_email.get("p42@example.com")?;
    println!("p42@example.com -> id {id:?}");
    let t0 = db.count(Query::table("people").filter("tags LIKE ?", params!["%\"t0\"%"]))?;
    println!("{t0} people tagged t0");

    // A duplicate is refused by the UNIQUE constraint, and the error says so.
    let duplicate =
        db.sql_insert("people", &Person { id: 0, name: "Dup".into(), email: "p1@example.com".into(), tags: vec![] });
    match duplicate {
        Err(error) if error.is_unique_violation() => println!("refused: {error}"),
        other => panic!("expected a unique violation, got {other:?}"),
    }
    db.close()
}
