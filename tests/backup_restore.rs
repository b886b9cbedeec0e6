//! Backup and restore: atomic, verified, and nothing lost on bad input.

use std::path::{Path, PathBuf};

use nanasqlite::{AsyncNanaSQLite, Error, NanaSQLite, SqlValue};
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

/// A store file of 2,000 rows whose fifth page is overwritten with junk: SQLite opens it, and
/// `integrity_check` fails.
fn damaged_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let store = NanaSQLite::open(&path).unwrap();
    store.batch_update((0..2_000).map(|i| (format!("key{i:05}"), format!("value {i}")))).unwrap();
    store.close().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 5 * 4096, "the file spans more than five pages");
    bytes[4 * 4096..5 * 4096].fill(0xFF);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Files beside `path` whose names start with a dot: the temp files of a backup.
fn temp_files(dir: &Path) -> Vec<String> {
    let names = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned());
    names.filter(|name| name.starts_with('.')).collect()
}

#[test]
fn restore_from_a_damaged_sqlite_file_changes_nothing() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let damaged = damaged_file(dir.path(), "damaged.db");
    let live = db(dir.path(), "live.db");
    live.set("k", &1)?;
    let error = live.restore(&damaged).unwrap_err();
    assert!(matches!(error, Error::Validation { .. }) && error.to_string().contains("not a usable"), "{error}");
    assert_eq!(live.get_fresh::<i32>("k")?, Some(1), "still the same data");
    assert_eq!(live.len()?, 1);
    Ok(())
}

#[test]
fn a_backup_whose_copy_fails_integrity_check_leaves_the_destination_alone() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let damaged = NanaSQLite::open(damaged_file(dir.path(), "damaged.db"))?;
    let dest = dir.path().join("backup.db");
    db(dir.path(), "backup.db").set("previous backup", &true)?;
    let error = damaged.backup(&dest).unwrap_err();
    assert!(matches!(error, Error::Validation { .. }), "{error}");
    assert_eq!(db(dir.path(), "backup.db").get::<bool>("previous backup")?, Some(true), "the old backup is intact");
    assert_eq!(temp_files(dir.path()), Vec::<String>::new(), "no temp file is left behind");
    Ok(())
}

#[test]
fn synchronous_full_is_set_and_kept_after_restore() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let source = db(dir.path(), "source.db");
    source.set("k", &"from source")?;
    source.close()?;
    let full = Some(SqlValue::Integer(2)); // PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL

    let live = db(dir.path(), "live.db");
    assert_eq!(live.pragma("synchronous", None)?, Some(SqlValue::Integer(1)), "NORMAL by default");
    live.pragma("synchronous", Some("FULL".into()))?;
    assert_eq!(live.pragma("synchronous", None)?, full);
    live.restore(dir.path().join("source.db"))?;
    assert_eq!(live.pragma("synchronous", None)?, full, "kept after restore");
    assert_eq!(live.get::<String>("k")?.as_deref(), Some("from source"));

    futures::executor::block_on(async {
        let live = AsyncNanaSQLite::open(dir.path().join("async.db")).await?;
        live.pragma("synchronous", Some("FULL".into())).await?;
        assert_eq!(live.pragma("synchronous", None).await?, full);
        live.restore(dir.path().join("source.db")).await?;
        assert_eq!(live.pragma("synchronous", None).await?, full, "kept after restore");
        assert_eq!(live.get::<String>("k").await?.as_deref(), Some("from source"));
        live.close().await
    })
}
