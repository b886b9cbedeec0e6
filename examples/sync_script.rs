//! A plain sync program using the store like a persistent dict: CRUD, batches, a second
//! table, cache control, and reopening the file.
//!
//! Run: `cargo run --example sync_script [PATH]` (default: a fresh file in the temp directory).

use std::path::PathBuf;

use nanasqlite::NanaSQLite;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Serialize, Deserialize)]
struct User {
    name: String,
    age: u32,
}

fn main() -> nanasqlite::Result<()> {
    let path = std::env::args().nth(1).map_or_else(default_path, PathBuf::from);
    println!("database: {}", path.display());

    let db = NanaSQLite::open(&path)?;

    // Create, read, update, delete: each write is committed when the call returns.
    db.set("user_1", &User { name: "Alice".into(), age: 25 })?;
    let mut alice: User = db.get("user_1")?.expect("just stored");
    alice.age += 1;
    db.set("user_1", &alice)?;
    println!("user_1 = {:?}", db.get::<User>("user_1")?);

    // Untyped values work too; a stored null is present, not absent.
    db.set("settings", &json!({"theme": "dark", "beta": null}))?;
    println!("settings = {}", db.get::<Value>("settings")?.unwrap_or_default());

    // Batches run in one transaction: all or nothing.
    db.batch_update((0..1000).map(|i| (format!("item_{i}"), json!({"n": i}))))?;
    let removed = db.batch_delete((0..500).map(|i| format!("item_{i}")))?;
    println!("{} keys after removing {removed}", db.len()?);
    let some = db.batch_get::<Value>(["item_500", "item_1", "item_999"])?;
    println!("batch_get found {} of 3", some.len());

    // Another table in the same file, with its own cache.
    let sessions = db.table("sessions")?;
    sessions.set("abc123", &json!({"user": "user_1"}))?;
    println!("sessions: {:?}", sessions.keys()?);

    // Reopen with everything loaded into memory at once.
    db.close()?;
    let db = NanaSQLite::builder(&path).bulk_load(true).open()?;
    println!("reopened: {} keys, user_1 cached: {}", db.len()?, db.is_cached("user_1"));
    println!("first keys: {:?}", &db.keys()?[..3]);
    db.close()
}

fn default_path() -> PathBuf {
    let path = std::env::temp_dir().join(format!("nanasqlite-demo-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}
