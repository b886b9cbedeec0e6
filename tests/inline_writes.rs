//! Inline point writes: a lone `set` or `delete` of the async store commits on the caller's
//! thread when the writer has nothing to do, and goes to the writer otherwise. One test body
//! per behaviour, run on every runtime.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::join_all;
use nanasqlite::hook;
use nanasqlite::{NanaSQLite, SqlValue, WriteBack};
use serde_json::Value;

mod common;

use common::{Setup, Watchdog, in_file, wait_until};

on_every_runtime!(
    a_lone_write_commits_on_the_callers_thread,
    writes_polled_together_commit_together,
    a_write_that_finds_the_file_locked_goes_to_the_writer_and_commits,
    a_write_never_overtakes_an_earlier_one,
    a_write_future_dropped_unpolled_writes_nothing,
    hooks_write_back_and_the_switch_send_writes_to_the_writer,
    checkpoints_run_on_the_writer_and_keep_the_log_bounded,
    a_write_whose_caller_stops_polling_still_commits,
    pragmas_that_make_commits_costly_keep_writes_on_the_writer,
);

/// A store with inline writes on (off by default).
async fn inline(setup: &Setup) -> nanasqlite::AsyncNanaSQLite {
    setup.builder.clone().inline_writes(true).open().await.unwrap()
}

async fn a_lone_write_commits_on_the_callers_thread(setup: Setup) {
    let db = inline(&setup).await;
    for i in 0..50 {
        db.set(&format!("k{i}"), &i).await.unwrap();
    }
    assert!(db.delete("k0").await.unwrap());
    assert!(!db.delete("k0").await.unwrap(), "deleted already");
    let stats = db.stats();
    assert_eq!((stats.inline_writes, stats.writes), (52, 52), "every lone write ran inline: {stats:?}");
    assert_eq!(in_file::<i32>(&setup.path, "k49"), Some(49), "committed, as another connection sees");
    assert_eq!(in_file::<i32>(&setup.path, "k0"), None);
    assert_eq!(db.get::<i32>("k49").await.unwrap(), Some(49), "and cached");
    assert!(db.is_cached("k49"));
    db.close().await.unwrap();
}

async fn writes_polled_together_commit_together(setup: Setup) {
    let db = inline(&setup).await;
    join_all((0..100).map(|i| db.set(&format!("k{i}"), &i))).await.into_iter().for_each(|r| r.unwrap());
    // Wrapped in futures of the caller's own, made as they are polled: the same.
    let wrapped = (100..200).map(|i| {
        let db = db.clone();
        async move { db.set(&format!("k{i}"), &i).await }
    });
    join_all(wrapped).await.into_iter().for_each(|r| r.unwrap());
    let stats = db.stats();
    assert_eq!((stats.writes, stats.inline_writes), (200, 200), "{stats:?}");
    assert_eq!((stats.write_groups, stats.largest_write_group), (2, 100), "one commit each time: {stats:?}");
    assert_eq!(NanaSQLite::open(&setup.path).unwrap().len().unwrap(), 200);
    // A caller runs at most one writer's group at a time (256 writes); the next caller whose
    // write still waits runs the next ones (or the writer, if the sweep outlasts the grace a
    // write gives its caller).
    join_all((0..600).map(|i| db.set(&format!("m{i}"), &i))).await.into_iter().for_each(|r| r.unwrap());
    let stats = db.stats();
    assert_eq!(stats.writes, 800, "{stats:?}");
    assert!(stats.largest_write_group <= 256, "no group beyond the bound: {stats:?}");
    // A large value is the writer's to write: it would hold the caller's thread.
    let inline = stats.inline_writes;
    db.set("large", &"x".repeat(100_000)).await.unwrap();
    assert_eq!(db.stats().inline_writes, inline, "the large value went to the writer");
    db.close().await.unwrap();
    assert_eq!(NanaSQLite::open(&setup.path).unwrap().len().unwrap(), 801);
}

async fn a_write_that_finds_the_file_locked_goes_to_the_writer_and_commits(setup: Setup) {
    let db = setup.builder.clone().inline_writes(true).busy_timeout(Duration::from_secs(60)).open().await.unwrap();
    db.set("before", &1).await.unwrap();
    let other = rusqlite::Connection::open(&setup.path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap(); // another connection holds the write lock
    let mut write = Box::pin(db.set("k", &"queued"));
    assert!(write.as_mut().now_or_never().is_none(), "the first poll yields, for writes beside it");
    let start = Instant::now();
    assert!(write.as_mut().now_or_never().is_none(), "the second finds the lock taken and hands over");
    // Waiting in the busy handler would take the whole timeout: this thread holds the lock.
    assert!(start.elapsed() < Duration::from_secs(30), "the caller never waits for the lock");
    other.execute_batch("COMMIT").unwrap();
    write.await.unwrap();
    let stats = db.stats();
    assert_eq!((stats.inline_writes, stats.writes), (1, 2), "the second went to the writer: {stats:?}");
    assert_eq!(in_file::<String>(&setup.path, "k").as_deref(), Some("queued"));
    // The writer may still be settling the job that woke it: a later lone write runs inline.
    for attempt in 0..1_000 {
        db.set("after", &attempt).await.unwrap();
        if db.stats().inline_writes > 1 {
            break;
        }
    }
    assert!(db.stats().inline_writes > 1, "lone writes run inline again: {:?}", db.stats());
    db.close().await.unwrap();
}

async fn a_write_never_overtakes_an_earlier_one(setup: Setup) {
    let db = inline(&setup).await;
    // A job holds the writer, a batch queues behind it, then a lone set of the same key: the
    // set must wait for both, though the connection is free when they are done.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let mut held = Box::pin(db.call(move |_| {
        let _ = released.recv_timeout(Duration::from_secs(60));
        Ok(())
    }));
    assert!(held.as_mut().now_or_never().is_none(), "the writer is held");
    let mut batch = Box::pin(db.batch_update([("k", "batch")]));
    assert!(batch.as_mut().now_or_never().is_none(), "queued behind the held job");
    let mut set = Box::pin(db.set("k", &"set"));
    assert!(set.as_mut().now_or_never().is_none());
    assert!(set.as_mut().now_or_never().is_none(), "the writer has work: the set waits behind it");
    release.send(()).unwrap();
    held.await.unwrap();
    batch.await.unwrap();
    set.await.unwrap();
    assert_eq!(in_file::<String>(&setup.path, "k").as_deref(), Some("set"), "the later write last");
    assert_eq!(db.get::<String>("k").await.unwrap().as_deref(), Some("set"), "the cache agrees");
    // The same as it happens: a batch handed to the writer (unless it is done at once), then a
    // lone set of the same key.
    for round in 0..20 {
        let rows: Vec<(String, String)> = (0..2_000).map(|i| (format!("b{i}"), format!("batch {round}"))).collect();
        let mut batch = Box::pin(db.batch_update(rows.into_iter().chain([("k".to_owned(), "batch".to_owned())])));
        let done_at_once = batch.as_mut().now_or_never();
        db.set("k", &format!("set {round}")).await.unwrap();
        match done_at_once {
            Some(done) => done.unwrap(),
            None => batch.await.unwrap(),
        }
        let expected = format!("set {round}");
        assert_eq!(in_file::<String>(&setup.path, "k"), Some(expected.clone()), "round {round}: the later write last");
        assert_eq!(db.get::<String>("k").await.unwrap(), Some(expected), "round {round}: the cache agrees");
    }
    // A set polled before a transaction began is answered without waiting for its end (a
    // task awaiting it inside the transaction would otherwise wait for itself).
    let mut early = Box::pin(db.set("early", &1));
    assert!(early.as_mut().now_or_never().is_none(), "the first poll yields");
    let transaction = db.begin().await.unwrap();
    let watchdog = Watchdog::new("a write polled before begin(), awaited inside it", Duration::from_secs(60));
    early.await.unwrap();
    drop(watchdog);
    transaction.commit().await.unwrap();
    assert_eq!(in_file::<i32>(&setup.path, "early"), Some(1));
    // A transaction holds the writer: a set made meanwhile commits after it, not inside it.
    let transaction = db.begin().await.unwrap();
    let mut set = Box::pin(db.set("t", &"after"));
    assert!(set.as_mut().now_or_never().is_none(), "it waits for the transaction");
    transaction.set("t", &"inside").await.unwrap();
    transaction.commit().await.unwrap();
    set.await.unwrap();
    assert_eq!(in_file::<String>(&setup.path, "t").as_deref(), Some("after"));
    db.close().await.unwrap();
}

async fn a_write_future_dropped_unpolled_writes_nothing(setup: Setup) {
    let db = inline(&setup).await;
    drop(db.set("never", &1));
    drop(db.delete("kept"));
    db.set("kept", &2).await.unwrap();
    drop(db.delete("kept"));
    assert_eq!(db.get_fresh::<i32>("never").await.unwrap(), None);
    assert_eq!(db.get_fresh::<i32>("kept").await.unwrap(), Some(2));
    // Dropped futures are forgotten: the next lone write still runs inline.
    let inline = db.stats().inline_writes;
    db.set("next", &3).await.unwrap();
    assert_eq!(db.stats().inline_writes, inline + 1);
    // Dropped after its first poll (it waits for its caller): abandoned, as a queued write
    // whose caller left before it started; the write polled next runs without it.
    let mut left = Box::pin(db.set("left", &4));
    assert!(left.as_mut().now_or_never().is_none(), "the first poll yields");
    drop(left);
    db.set("after", &5).await.unwrap();
    assert_eq!(db.stats().abandoned, 1, "{:?}", db.stats());
    assert_eq!(db.get_fresh::<i32>("left").await.unwrap(), None, "the abandoned write did not run");
    assert_eq!(db.get::<i32>("left").await.unwrap(), None, "nor reached the cache");
    assert_eq!(in_file::<i32>(&setup.path, "after"), Some(5));
    db.close().await.unwrap();
}

async fn hooks_write_back_and_the_switch_send_writes_to_the_writer(setup: Setup) {
    let queued = |db: &nanasqlite::AsyncNanaSQLite| {
        let stats = db.stats();
        assert_eq!(stats.inline_writes, 0, "{stats:?}");
    };
    let hooked =
        setup.builder.clone().inline_writes(true).hook(hook::check(|_, v: &Value| v.is_i64())).open().await.unwrap();
    hooked.set("k", &1).await.unwrap();
    assert!(hooked.set("k", &"text").await.is_err(), "the hook ran on the writer and refused");
    queued(&hooked);
    hooked.close().await.unwrap();

    let off = setup.builder.clone().inline_writes(false).open().await.unwrap();
    off.set("k", &2).await.unwrap();
    queued(&off);
    assert_eq!(off.stats().writes, 1);
    off.close().await.unwrap();

    let staged = setup.builder.clone().inline_writes(true).write_back(WriteBack::manual()).open().await.unwrap();
    staged.set("k", &3).await.unwrap();
    staged.flush().await.unwrap();
    queued(&staged);
    staged.close().await.unwrap();
    assert_eq!(in_file::<i32>(&setup.path, "k"), Some(3));
}

/// Size of the database's write-ahead log.
fn log_size(path: &Path) -> u64 {
    let mut log = path.as_os_str().to_owned();
    log.push("-wal");
    std::fs::metadata(log).map_or(0, |meta| meta.len())
}

async fn checkpoints_run_on_the_writer_and_keep_the_log_bounded(setup: Setup) {
    let db = inline(&setup).await;
    let value = "x".repeat(2_000);
    for i in 0..6_000 {
        db.set(&format!("k{}", i % 500), &value).await.unwrap();
    }
    assert!(db.stats().inline_writes > 5_000, "{:?}", db.stats());
    // About 12 MB went through the log; SQLite's bound (1,000 pages) with the checkpoint run
    // on the writer keeps it near 4 MB.
    let size = log_size(&setup.path);
    assert!(size < 8 << 20, "the log grew to {size} bytes: checkpoints did not run");
    db.close().await.unwrap();
    assert_eq!(NanaSQLite::open(&setup.path).unwrap().len().unwrap(), 500);
}

/// The sync store commits on its own thread: its checkpoints run inside the commit, as
/// SQLite's automatic ones do, and keep the log as bounded.
#[test]
fn the_sync_stores_log_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.db");
    let db = NanaSQLite::open(&path).unwrap();
    let value = "x".repeat(2_000);
    for i in 0..6_000 {
        db.set(&format!("k{}", i % 500), &value).unwrap();
    }
    let size = log_size(&path);
    assert!(size < 8 << 20, "the log grew to {size} bytes");
    assert!(size > 0, "the store writes ahead");
}

async fn a_write_whose_caller_stops_polling_still_commits(setup: Setup) {
    let db = inline(&setup).await;
    // Polled once (it joins the writes waiting for a caller and yields), then kept aside, as a
    // future a `select!` loop did not pick: the writer runs it within about 50 ms.
    let mut write = Box::pin(db.set("aside", &1));
    assert!(write.as_mut().now_or_never().is_none(), "the first poll yields");
    // The deadline thread and the writer do this; nothing here needs the runtime.
    wait_until("the write kept aside commits", Duration::from_secs(30), || {
        in_file::<i32>(&setup.path, "aside").is_some()
    });
    write.await.unwrap();
    assert_eq!(db.get::<i32>("aside").await.unwrap(), Some(1), "and cached");
    assert_eq!(db.stats().inline_writes, 0, "it ran on the writer");
    // Lone writes run on their caller again once the writer is idle. The writer may still be
    // finishing its turn when the first of them is polled (a loaded machine), and then that one
    // is the writer's: so write until one runs inline, within a bound.
    let start = Instant::now();
    let mut written = 0;
    while db.stats().inline_writes == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "no write ran inline again: {:?}", db.stats());
        written += 1;
        db.set(&format!("next{written}"), &written).await.unwrap();
    }
    assert_eq!(db.stats().inline_writes, 1, "one write at a time");
    db.close().await.unwrap();
}

async fn pragmas_that_make_commits_costly_keep_writes_on_the_writer(setup: Setup) {
    // Without readers, the caller's own statements below run on the writer's connection (a
    // pragma run through `fetch_all` sets it on whichever connection runs the read).
    let db = setup.builder.clone().inline_writes(true).read_pool_size(0).open().await.unwrap();
    let inline_after = |db: &nanasqlite::AsyncNanaSQLite, before: u64| db.stats().inline_writes - before;
    let pragma = |name: &'static str, value: i64| db.pragma(name, Some(SqlValue::Integer(value)));
    let reads = |name: &'static str| db.pragma(name, None);
    assert_eq!(reads("wal_autocheckpoint").await.unwrap(), Some(SqlValue::Integer(1000)), "SQLite's default");
    let mut seen = db.stats().inline_writes;
    db.set("k", &1).await.unwrap();
    assert_eq!(inline_after(&db, seen), 1, "cheap commits run inline");
    // synchronous=FULL syncs in every commit: the writer's to do.
    pragma("synchronous", 2).await.unwrap();
    seen = db.stats().inline_writes;
    db.set("k", &2).await.unwrap();
    assert_eq!(inline_after(&db, seen), 0, "FULL commits run on the writer");
    pragma("synchronous", 1).await.unwrap();
    seen = db.stats().inline_writes;
    db.set("k", &3).await.unwrap();
    assert_eq!(inline_after(&db, seen), 1, "NORMAL again");
    // Another checkpoint bound is SQLite's own hook, which checkpoints inside the commit.
    pragma("wal_autocheckpoint", 500).await.unwrap();
    assert_eq!(reads("wal_autocheckpoint").await.unwrap(), Some(SqlValue::Integer(500)));
    seen = db.stats().inline_writes;
    db.set("k", &4).await.unwrap();
    assert_eq!(inline_after(&db, seen), 0, "checkpoints in the commit run on the writer");
    pragma("wal_autocheckpoint", 1000).await.unwrap();
    assert_eq!(reads("wal_autocheckpoint").await.unwrap(), Some(SqlValue::Integer(1000)));
    seen = db.stats().inline_writes;
    db.set("k", &5).await.unwrap();
    assert_eq!(inline_after(&db, seen), 1, "the default bound is kept off the caller again");
    // The same pragmas run as the caller's own statements count as well (`execute` runs in a
    // transaction, where SQLite refuses `synchronous`; `fetch_all` does not).
    db.fetch_all("PRAGMA synchronous = FULL", &[]).await.unwrap();
    seen = db.stats().inline_writes;
    db.set("k", &6).await.unwrap();
    assert_eq!(inline_after(&db, seen), 0, "FULL set by fetch_all");
    db.fetch_all("PRAGMA synchronous = NORMAL", &[]).await.unwrap();
    db.call(|conn| conn.execute_batch("PRAGMA synchronous = FULL")).await.unwrap();
    seen = db.stats().inline_writes;
    db.set("k", &6).await.unwrap();
    assert_eq!(inline_after(&db, seen), 0, "FULL set through call");
    pragma("synchronous", 1).await.unwrap();
    db.fetch_all("PRAGMA wal_autocheckpoint = 100", &[]).await.unwrap();
    assert_eq!(reads("wal_autocheckpoint").await.unwrap(), Some(SqlValue::Integer(100)));
    seen = db.stats().inline_writes;
    db.set("k", &7).await.unwrap();
    assert_eq!(inline_after(&db, seen), 0, "a bound set by fetch_all");
    pragma("wal_autocheckpoint", 1000).await.unwrap();
    // A busy timeout set by pragma stays in force after writes that ran without one.
    pragma("busy_timeout", 60_000).await.unwrap();
    seen = db.stats().inline_writes;
    db.set("k", &8).await.unwrap();
    assert_eq!(inline_after(&db, seen), 1);
    assert_eq!(reads("busy_timeout").await.unwrap(), Some(SqlValue::Integer(60_000)));
    db.close().await.unwrap();
    assert_eq!(in_file::<i32>(&setup.path, "k"), Some(8));
}

/// The checkpoint hook is invisible through `pragma`: the bound reads as SQLite's default,
/// and another bound set takes effect as in SQLite.
#[test]
fn the_sync_store_reports_and_sets_the_checkpoint_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.db");
    let db = NanaSQLite::open(&path).unwrap();
    assert_eq!(db.pragma("wal_autocheckpoint", None).unwrap(), Some(SqlValue::Integer(1000)));
    db.pragma("wal_autocheckpoint", Some(SqlValue::Integer(100))).unwrap();
    assert_eq!(db.pragma("wal_autocheckpoint", None).unwrap(), Some(SqlValue::Integer(100)));
    let value = "x".repeat(2_000);
    for i in 0..3_000 {
        db.set(&format!("k{}", i % 100), &value).unwrap();
    }
    // A 100-page bound keeps the log near 400 KB where the default's would reach 4 MB.
    let size = log_size(&path);
    assert!(size < 2 << 20, "the log grew to {size} bytes under a 100-page bound");
}
