//! Write-back mode: staged writes coalesce and are read back at once, commit in chunks (a
//! prefix of them after SIGKILL), go to the dead-letter queue when they cannot commit, wait or
//! fail at the bound, flush on close, on drop and before calls that must see them, on both
//! stores (the async one on every runtime).

use std::time::Duration;

use nanasqlite::writeback::{Flush, OnFull};
use nanasqlite::{Error, NanaSQLite, Scan, WriteBack};
use serde_json::{Value, json};

mod common;

use common::{Setup, child_role, wait_for_exit, wait_until};

/// The rows of `data` as the file holds them, read by a connection of its own.
fn in_file(path: &std::path::Path) -> Vec<(String, String)> {
    let conn = nanasqlite::rusqlite::Connection::open(path).unwrap();
    let mut statement = conn.prepare("SELECT key, value FROM data ORDER BY key").unwrap();
    statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

fn manual(path: &std::path::Path) -> NanaSQLite {
    NanaSQLite::builder(path).write_back(WriteBack::manual()).open().unwrap()
}

#[test]
fn staged_writes_coalesce_and_are_read_back_at_once() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wb.db");
    let db = manual(&path);
    db.set("a", &1)?;
    db.set("a", &2)?;
    db.set("b", &json!({"x": 1}))?;
    db.set("gone", &1)?;
    assert!(db.delete("gone")?);
    assert!(!db.delete("never")?);
    db.batch_update([("c", 3), ("d", 4)])?;
    assert_eq!(db.batch_delete(["d", "nope"])?, 1);
    assert_eq!(in_file(&path), [], "nothing committed yet");
    assert_eq!((db.get::<i64>("a")?, db.contains("gone")?, db.get::<i64>("d")?), (Some(2), false, None));
    db.clear_cache();
    assert_eq!(db.get::<i64>("a")?, Some(2), "staged rows are read even after the cache let them go");
    assert_eq!(db.get::<Value>("gone")?, None, "a staged delete hides the key");
    let stats = db.write_back_stats().unwrap();
    assert_eq!(stats.staged, 5, "a, b, gone (deleted), c, d (deleted): one row per key");
    db.flush()?;
    assert_eq!(in_file(&path), [("a".into(), "2".into()), ("b".into(), r#"{"x":1}"#.into()), ("c".into(), "3".into())]);
    let stats = db.write_back_stats().unwrap();
    assert_eq!((stats.staged, stats.rows_committed, stats.chunks), (0, 5, 1));
    Ok(())
}

#[test]
fn calls_that_must_see_staged_rows_commit_them_first_in_order() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wb.db");
    let db = manual(&path);
    db.batch_update((0..10).map(|i| (format!("k{i}"), i)))?;
    assert_eq!(db.len()?, 10, "len commits first");
    db.set("k0", &100)?;
    assert_eq!(db.keys()?.len(), 10);
    db.set("t", &1)?;
    db.transaction(|tx| tx.set("t", &2))?;
    db.flush()?;
    assert_eq!(db.get_fresh::<i64>("t")?, Some(2), "the staged write went first; the transaction's stands");
    db.set("s", &1)?;
    assert_eq!(
        db.fetch_one("SELECT value FROM data WHERE key = ?", nanasqlite::params!["s"])?
            .unwrap()
            .get::<String>("value")?,
        "1"
    );
    db.set("n", &1)?;
    assert_eq!(db.increment::<i64>("n", 1, None)?, 2);
    db.set("p", &"x")?;
    assert_eq!(db.pop::<String>("p")?.as_deref(), Some("x"));
    db.set("z", &1)?;
    assert_eq!(db.scan::<i64>(Scan::prefix("z"))?, [("z".to_owned(), 1)]);
    assert_eq!(db.write_back_stats().unwrap().staged, 0);
    Ok(())
}

#[test]
fn the_bound_waits_flushes_or_refuses() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let refusing = NanaSQLite::builder(dir.path().join("e.db"))
        .write_back(WriteBack::manual().max_staged(3).on_full(OnFull::Error))
        .open()?;
    refusing.batch_update([("a", 1), ("b", 2), ("c", 3)])?;
    refusing.set("a", &10)?; // a staged key counts once
    assert!(matches!(refusing.set("d", &4), Err(Error::Validation { .. })));
    assert!(!refusing.contains("d")?, "nothing staged");
    refusing.flush()?;
    refusing.set("d", &4)?;

    let flushing = NanaSQLite::builder(dir.path().join("f.db"))
        .write_back(WriteBack::manual().max_staged(3).on_full(OnFull::Flush))
        .open()?;
    flushing.batch_update((0..10).map(|i| (format!("k{i}"), i)))?;
    assert!(flushing.write_back_stats().unwrap().flushes >= 3, "each time the bound was met");
    assert!(in_file(&dir.path().join("f.db")).len() >= 9);

    let waiting = NanaSQLite::builder(dir.path().join("w.db"))
        .write_back(WriteBack::interval(Duration::from_millis(20)).max_staged(5).on_full(OnFull::Wait))
        .open()?;
    waiting.batch_update((0..50).map(|i| (format!("k{i}"), i)))?;
    assert!(waiting.write_back_stats().unwrap().staged <= 5, "the bound held while the flusher made room");
    waiting.flush()?;
    assert_eq!(in_file(&dir.path().join("w.db")).len(), 50);
    let bytes = NanaSQLite::builder(dir.path().join("b.db"))
        .write_back(WriteBack::manual().max_staged_bytes(100).on_full(OnFull::Error))
        .open()?;
    assert!(bytes.set("big", &"x".repeat(200)).is_err(), "one value past the byte bound");
    Ok(())
}

#[test]
fn policies_commit_in_the_background() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    for (name, policy) in [
        ("immediate", WriteBack::immediate()),
        ("every", WriteBack::every(10)),
        ("interval", WriteBack::interval(Duration::from_millis(50))),
    ] {
        let path = dir.path().join(format!("{name}.db"));
        let db = NanaSQLite::builder(&path).write_back(policy).open()?;
        db.batch_update((0..10).map(|i| (format!("k{i}"), i)))?;
        wait_until(&format!("{name}: the background commit"), Duration::from_secs(10), || in_file(&path).len() == 10);
    }
    let path = dir.path().join("manual.db");
    let db = manual(&path);
    db.set("k", &1)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(in_file(&path), [], "manual never commits on its own");
    Ok(())
}

#[test]
fn chunks_commit_in_order_each_atomic() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let db = NanaSQLite::builder(&path).write_back(WriteBack::manual().chunk_size(100)).open()?;
    db.batch_update((0..1050).map(|i| (format!("k{i:05}"), i)))?;
    db.flush()?;
    let stats = db.write_back_stats().unwrap();
    assert_eq!((stats.chunks, stats.largest_chunk, stats.rows_committed), (11, 100, 1050));
    Ok(())
}

#[test]
fn rows_that_cannot_commit_become_dead_letters_and_can_be_retried() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    let db =
        NanaSQLite::builder(&path).write_back(WriteBack::manual().chunk_size(50).dead_letter_capacity(120)).open()?;
    db.set("before", &1)?;
    db.flush()?;
    let pages: i64 = db
        .pragma("page_count", None)?
        .and_then(|v| if let nanasqlite::SqlValue::Integer(n) = v { Some(n) } else { None })
        .unwrap();
    db.pragma("max_page_count", Some(nanasqlite::SqlValue::Integer(pages)))?;
    db.batch_update((0..200).map(|i| (format!("big{i:03}"), "x".repeat(5000))))?;
    assert!(db.get::<String>("big000")?.is_some(), "readable while staged");
    let flushed = db.flush();
    assert!(matches!(flushed, Err(Error::Unflushed { staged: 0, dead_letters: 120 })), "{flushed:?}");
    let dead = db.dead_letters();
    assert_eq!(dead.len(), 120, "the queue keeps its capacity");
    assert!(dead[0].error.contains("full"), "{}", dead[0].error);
    assert_eq!(db.write_back_stats().unwrap().dead_letters_dropped, 80, "the oldest 80 of the 200 were dropped");
    assert_eq!(db.get::<String>("big199")?, None, "a dead letter reads as the file has it");
    db.pragma("max_page_count", Some(nanasqlite::SqlValue::Integer(1_000_000)))?;
    assert_eq!(db.retry_dead_letters()?, 120);
    db.flush()?;
    assert!(db.dead_letters().is_empty());
    assert_eq!(db.get::<String>("big199")?.map(|v| v.len()), Some(5000));
    db.set("x", &1)?;
    assert_eq!(db.clear_dead_letters(), 0);
    Ok(())
}

#[test]
fn close_flushes_and_dropping_the_last_handle_flushes_in_the_background() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("close.db");
    let db = manual(&path);
    db.batch_update((0..100).map(|i| (format!("k{i}"), i)))?;
    db.close()?;
    assert_eq!(in_file(&path).len(), 100);

    let dropped = dir.path().join("drop.db");
    let db = manual(&dropped);
    let other = db.table("other")?;
    db.batch_update((0..100).map(|i| (format!("k{i}"), i)))?;
    drop(db);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(in_file(&dropped).len(), 0, "another handle is still open");
    drop(other);
    wait_until("the last drop to flush", Duration::from_secs(10), || in_file(&dropped).len() == 100);

    let late = dir.path().join("timeout.db");
    let db = NanaSQLite::builder(&late).write_back(WriteBack::manual().close_timeout(Duration::ZERO)).open()?;
    db.set("k", &1)?;
    assert!(matches!(db.close(), Err(Error::Unflushed { staged: 1, dead_letters: 0 })), "close reports what it left");
    Ok(())
}

#[test]
fn hooks_run_when_writes_are_staged_and_constraints_are_refused() -> nanasqlite::Result<()> {
    let db = NanaSQLite::builder(":memory:")
        .write_back(WriteBack::manual())
        .hook(nanasqlite::hook::check(|_, v: &Value| v.as_i64().is_some_and(|n| n >= 0)))
        .open()?;
    assert!(db.set("n", &-1).unwrap_err().is_refused());
    assert!(!db.contains("n")?);
    assert!(matches!(db.add_hook(nanasqlite::hook::unique("email")), Err(Error::Validation { .. })));
    let memory_first = NanaSQLite::builder(":memory:").write_back(WriteBack::memory_first()).open()?;
    assert_eq!(memory_first.write_back_stats().unwrap().staged, 0);
    let zero = NanaSQLite::builder(":memory:").write_back(WriteBack::interval(Duration::ZERO)).open();
    assert!(matches!(zero, Err(Error::Validation { .. })), "a zero interval is refused");
    assert_eq!(WriteBack::every(0).chunk_size(0).max_staged(0), WriteBack::every(1).chunk_size(1).max_staged(1));
    let _ = Flush::Manual;
    Ok(())
}

/// A child writes sequential keys in write-back mode; the parent kills it at growing moments.
/// The file must pass `integrity_check` and hold exactly the first N keys written, with their
/// values: a prefix of the chunks. In even rounds the child flushes every 100 rows, so that
/// every flush is one chunk of 100: N must then be a multiple of 100 (a chunk is whole or
/// absent). In odd rounds the flusher commits in the background as it sees fit.
#[test]
fn after_sigkill_the_file_holds_a_prefix_of_chunks() {
    if let Some(role) = child_role() {
        let (path, by_hand) = role.split_once('|').map(|(path, mode)| (path.to_owned(), mode == "manual")).unwrap();
        let policy = if by_hand { WriteBack::manual() } else { WriteBack::immediate() };
        let db = NanaSQLite::builder(&path).write_back(policy.chunk_size(100)).open().unwrap();
        eprintln!("ready");
        for i in 0.. {
            db.set(&format!("k{i:08}"), &i).unwrap();
            if by_hand && i % 100 == 99 {
                db.flush().unwrap();
            }
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for round in 0..8 {
        let by_hand = round % 2 == 0;
        let path = dir.path().join(format!("kill{round}.db"));
        let role = format!("{}|{}", path.display(), if by_hand { "manual" } else { "immediate" });
        let mut child = common::child("after_sigkill_the_file_holds_a_prefix_of_chunks", &role)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let line = common::read_line_within(child.stderr.take().unwrap(), Duration::from_secs(30));
        assert_eq!(line.trim(), "ready", "the child started writing");
        std::thread::sleep(Duration::from_millis(50 + 40 * round));
        child.kill().unwrap();
        wait_for_exit(&mut child, Duration::from_secs(10));
        let conn = nanasqlite::rusqlite::Connection::open(&path).unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
        assert_eq!(check, "ok");
        let keys = in_file(&path);
        for (i, (key, value)) in keys.iter().enumerate() {
            assert_eq!(
                (key.as_str(), value.as_str()),
                (format!("k{i:08}").as_str(), i.to_string().as_str()),
                "round {round}: a gap"
            );
        }
        if by_hand {
            assert_eq!(keys.len() % 100, 0, "round {round}: {} rows: a chunk was torn", keys.len());
        }
        eprintln!("round {round}: {} rows survived", keys.len());
    }
}

on_every_runtime!(write_back_on_the_async_store);

async fn write_back_on_the_async_store(setup: Setup) {
    let db = setup.builder.clone().write_back(WriteBack::manual().chunk_size(10)).open().await.unwrap();
    db.set("a", &1).await.unwrap();
    db.set("a", &2).await.unwrap();
    db.batch_update((0..25).map(|i| (format!("k{i:02}"), i))).await.unwrap();
    assert!(db.delete("k00").await.unwrap());
    assert_eq!(in_file(&setup.path), [], "nothing committed yet");
    assert_eq!(db.get::<i64>("a").await.unwrap(), Some(2));
    db.clear_cache();
    assert_eq!(db.get::<i64>("a").await.unwrap(), Some(2), "read from the staged rows");
    assert_eq!(db.len().await.unwrap(), 25, "len commits first");
    assert_eq!(in_file(&setup.path).len(), 25);
    assert_eq!(db.write_back_stats().unwrap().chunks, 3);
    db.set("t", &1).await.unwrap();
    db.transaction(|tx| tx.set("t", &2)).await.unwrap();
    assert_eq!(db.get_fresh::<i64>("t").await.unwrap(), Some(2));
    db.set("last", &1).await.unwrap();
    db.flush().await.unwrap();
    db.set("closing", &1).await.unwrap();
    db.close().await.unwrap();
    assert!(in_file(&setup.path).iter().any(|(key, _)| key == "closing"), "close flushed");

    let full = setup
        .builder_for(setup.path.with_extension("full"))
        .write_back(WriteBack::manual().max_staged(2).on_full(OnFull::Wait))
        .open()
        .await
        .unwrap();
    full.batch_update((0..10).map(|i| (format!("k{i}"), i))).await.unwrap();
    assert!(full.write_back_stats().unwrap().flushes >= 4, "the bound flushed, not blocked the runtime");
    let dropped = setup.path.with_extension("drop");
    let db = setup.builder_for(&dropped).write_back(WriteBack::manual()).open().await.unwrap();
    db.set("k", &1).await.unwrap();
    drop(db);
    common::wait_until_async("the dropped store to flush", Duration::from_secs(10), || {
        dropped.exists() && in_file(&dropped).len() == 1
    })
    .await;
}
