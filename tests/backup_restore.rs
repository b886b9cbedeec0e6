//! Backup and restore: atomic, verified, and nothing lost on bad input.

use nanasqlite::{Error, NanaSQLite};
use serde_json::json;

fn db(dir: &std::path::Path, name: &str) -> NanaSQLite {
    NanaSQLite::open(dir.join(name)).unwrap()
}

#[test]
fn backup_copies_a_live_store_and_replaces_the_destination_atomically() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let live = db(dir.path(), "live.db");
    live.batch_update((0..500).map(|i| (format!("k{i}"), json!({"n": i}))))?;
    live.table("users")?.set("alice", &1)?;
    let dest = dir.path().join("backup.db");
    std::fs::write(&dest, b"an older backup")?;
    live.backup(&dest)?;
    live.set("after", &true)?; // the store stays usable
    let copy = NanaSQLite::open(&dest)?;
    assert_eq!(copy.len()?, 500);
    assert_eq!(copy.table("users")?.get::<i32>("alice")?, Some(1));
    assert_eq!(copy.get::<bool>("after")?, None, "a snapshot of the moment of the backup");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temp files left");
    Ok(())
}

#[test]
fn backup_refuses_memory_and_itself() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let live = db(dir.path(), "live.db");
    live.set("k", &1)?;
    for dest in [":memory:", "file::memory:?cache=shared"] {
        assert!(matches!(live.backup(dest), Err(Error::Validation { .. })), "{dest}");
    }
    assert!(matches!(live.backup(dir.path().join("live.db")), Err(Error::Validation { .. })));
    assert_eq!(live.get_fresh::<i32>("k")?, Some(1));
    let memory = NanaSQLite::open(":memory:")?;
    memory.set("m", &2)?;
    memory.backup(dir.path().join("from_memory.db"))?;
    assert_eq!(db(dir.path(), "from_memory.db").get::<i32>("m")?, Some(2));
    Ok(())
}

#[test]
fn restore_swaps_the_file_and_resets_every_cache() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let source = db(dir.path(), "source.db");
    source.set("k", &"from source")?;
    source.table("users")?.set("bob", &2)?;
    drop(source);
    let live = db(dir.path(), "live.db");
    let users = live.table("users")?;
    let sessions = live.table("sessions")?;
    live.set("k", &"live")?;
    live.set("only_live", &1)?;
    users.set("alice", &1)?;
    live.restore(dir.path().join("source.db"))?;
    assert_eq!(live.get::<String>("k")?.as_deref(), Some("from source"), "the cache was emptied");
    assert_eq!(live.get::<i32>("only_live")?, None);
    assert_eq!(users.get::<i32>("alice")?, None);
    assert_eq!(users.get::<i32>("bob")?, Some(2));
    sessions.set("s", &1)?; // a table the source did not have was recreated
    live.set("new", &1)?;
    drop((live, users, sessions));
    let reopened = db(dir.path(), "live.db");
    assert_eq!(reopened.get::<String>("k")?.as_deref(), Some("from source"));
    assert_eq!(reopened.get::<i32>("new")?, Some(1));
    Ok(())
}

#[test]
fn bad_restores_change_nothing() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let live = db(dir.path(), "live.db");
    live.set("k", &1)?;
    let not_sqlite = dir.path().join("not.db");
    std::fs::write(&not_sqlite, b"not sqlite")?;
    for source in [not_sqlite.clone(), dir.path().join("missing.db")] {
        assert!(matches!(live.restore(&source), Err(Error::Validation { .. })), "{source:?}");
        assert_eq!(live.get_fresh::<i32>("k")?, Some(1), "still usable, still the same data");
    }
    let during = live.transaction(|_| Ok(live.restore(&not_sqlite).unwrap_err()))?;
    assert!(matches!(during, Error::Transaction { .. }));
    assert!(matches!(NanaSQLite::open(":memory:")?.restore(dir.path().join("live.db")), Err(Error::Validation { .. })));
    assert_eq!(live.get_fresh::<i32>("k")?, Some(1));
    Ok(())
}
