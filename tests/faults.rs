//! Faults: another process holding the file's write lock, a full disk, a panicking job. Each
//! fails only the calls it touches; earlier data stays, and the store works again afterwards.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use futures::executor::block_on;
use nanasqlite::{AsyncNanaSQLite, Error, NanaSQLite, SqlValue};

mod common;

/// In the child started by [`hold_write_lock`]: takes the file's write lock, says so, keeps
/// it until its stdin closes (the parent's [`release`]), then commits. Returns whether this
/// process is that child.
fn hold_if_child() -> bool {
    if common::child_role().as_deref() != Some("hold") {
        return false;
    }
    let path = std::env::var_os("NANASQLITE_HOLD_DB").expect("the parent names the file");
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE; INSERT OR REPLACE INTO data VALUES ('holder', '1')").unwrap();
    std::io::stderr().write_all(b"LOCKED\n").unwrap();
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).unwrap();
    conn.execute_batch("COMMIT").unwrap();
    true
}

/// Starts a copy of `test` that holds the write lock of `path` until [`release`]d; returns
/// once it holds it.
fn hold_write_lock(test: &str, path: &Path) -> Child {
    let mut child = common::child(test, "hold")
        .env("NANASQLITE_HOLD_DB", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = common::read_line_within(child.stderr.take().unwrap(), Duration::from_secs(60));
    assert_eq!(line, "LOCKED\n", "the holder took the lock");
    child
}

/// Whether the holder still holds the lock (it has not been released, so it has not exited).
fn still_holding(holder: &mut Child) -> bool {
    holder.try_wait().unwrap().is_none()
}

/// Tells the holder to commit, and waits for it to exit successfully.
fn release(mut holder: Child) {
    drop(holder.stdin.take());
    assert!(common::wait_for_exit(&mut holder, Duration::from_secs(60)).success(), "the holder committed");
}

/// Releases the holder from another thread in `after` (a write waiting on the lock is blocked
/// meanwhile); join the handle to see it released.
fn release_later(holder: Child, after: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        release(holder);
    })
}

fn new_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let db = NanaSQLite::open(&path).unwrap();
    db.set("before", &"kept").unwrap();
    db.close().unwrap();
    path
}

#[test]
fn sync_store_times_out_on_a_lock_held_past_lock_timeout() {
    let _watchdog = common::Watchdog::new("sync_store_times_out_on_a_lock_held_past_lock_timeout", common::TEST_LIMIT);
    if hold_if_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path(), "held.db");
    let db = NanaSQLite::builder(&path).lock_timeout(Duration::from_millis(200)).open().unwrap();
    let mut holder = hold_write_lock("sync_store_times_out_on_a_lock_held_past_lock_timeout", &path);

    let error = db.set("k", &1).unwrap_err();
    assert!(matches!(error, Error::LockTimeout { .. }), "{error:?}");
    assert!(still_holding(&mut holder), "gave up while the lock was held, not after the holder");
    assert_eq!(db.get::<i32>("k").unwrap(), None, "the failed write is not cached");
    assert_eq!(db.get::<String>("before").unwrap().as_deref(), Some("kept"), "reads go on meanwhile");

    release(holder);
    db.set("k", &1).unwrap();
    assert_eq!(db.get_fresh::<i32>("k").unwrap(), Some(1), "the store works once the lock is free");
}

#[test]
fn sync_store_waits_out_a_lock_held_shorter_than_busy_timeout() {
    let _watchdog =
        common::Watchdog::new("sync_store_waits_out_a_lock_held_shorter_than_busy_timeout", common::TEST_LIMIT);
    if hold_if_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path(), "briefly.db");
    let db = NanaSQLite::open(&path).unwrap(); // busy_timeout 5 s, no lock_timeout
    let holder = hold_write_lock("sync_store_waits_out_a_lock_held_shorter_than_busy_timeout", &path);
    let released = release_later(holder, Duration::from_millis(300));
    db.set("k", &1).unwrap();
    released.join().unwrap();
    assert_eq!(db.get_fresh::<i32>("holder").unwrap(), Some(1), "the holder committed first");
    assert_eq!(db.get_fresh::<i32>("k").unwrap(), Some(1));
}

#[test]
fn async_store_times_out_on_a_lock_held_past_lock_timeout() {
    let _watchdog = common::Watchdog::new("async_store_times_out_on_a_lock_held_past_lock_timeout", common::TEST_LIMIT);
    if hold_if_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path(), "held-async.db");
    block_on(async {
        let db = AsyncNanaSQLite::builder(&path).lock_timeout(Duration::from_millis(200)).open().await.unwrap();
        let mut holder = hold_write_lock("async_store_times_out_on_a_lock_held_past_lock_timeout", &path);

        let (first, second) = futures::join!(db.set("k", &1), db.batch_update([("a", 1), ("b", 2)]));
        for error in [first.unwrap_err(), second.unwrap_err()] {
            assert!(matches!(error, Error::LockTimeout { .. }), "{error:?}");
        }
        assert!(still_holding(&mut holder), "gave up while the lock was held, not after the holder");
        assert_eq!(db.get::<i32>("k").await.unwrap(), None, "the failed write is not cached");
        assert_eq!(db.get::<String>("before").await.unwrap().as_deref(), Some("kept"), "reads go on meanwhile");

        release(holder);
        db.set("k", &1).await.unwrap();
        assert_eq!(db.get_fresh::<i32>("k").await.unwrap(), Some(1), "the store works once the lock is free");
        db.close().await.unwrap();
    });
}

#[test]
fn async_store_waits_out_a_lock_held_shorter_than_busy_timeout() {
    let _watchdog =
        common::Watchdog::new("async_store_waits_out_a_lock_held_shorter_than_busy_timeout", common::TEST_LIMIT);
    if hold_if_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path(), "briefly-async.db");
    block_on(async {
        let db = AsyncNanaSQLite::open(&path).await.unwrap();
        let holder = hold_write_lock("async_store_waits_out_a_lock_held_shorter_than_busy_timeout", &path);
        let released = release_later(holder, Duration::from_millis(300));
        db.set("k", &1).await.unwrap();
        released.join().unwrap();
        assert_eq!(db.get_fresh::<i32>("holder").await.unwrap(), Some(1), "the holder committed first");
        assert_eq!(db.get_fresh::<i32>("k").await.unwrap(), Some(1));
        db.close().await.unwrap();
    });
}

fn is_disk_full(error: &Error) -> bool {
    matches!(error, Error::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) if failure.code == rusqlite::ErrorCode::DiskFull)
}

/// A value of about 8 KiB: two pages of 4 KiB each.
fn big(i: usize) -> String {
    format!("{i:08}").repeat(1024)
}

/// A quota a few pages above the file's size: the next dozen big values do not fit.
fn quota_near_full(page_count: Option<SqlValue>) -> SqlValue {
    let Some(SqlValue::Integer(pages)) = page_count else { panic!("page_count is an integer") };
    SqlValue::Integer(pages + 6)
}

#[test]
fn sync_store_reports_a_full_disk_and_recovers() {
    let _watchdog = common::Watchdog::new("sync_store_reports_a_full_disk_and_recovers", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let db = NanaSQLite::open(dir.path().join("full.db")).unwrap();
    db.batch_update((0..20).map(|i| (format!("before{i}"), i))).unwrap();
    let quota = quota_near_full(db.pragma("page_count", None).unwrap());
    db.pragma("max_page_count", Some(quota)).unwrap();

    let mut written = Vec::new();
    let failed = loop {
        let key = format!("big{}", written.len());
        match db.set(&key, &big(written.len())) {
            Ok(()) => written.push(key),
            Err(error) => break (key, error),
        }
        assert!(written.len() < 100, "the quota was never reached");
    };
    assert!(is_disk_full(&failed.1), "{:?}", failed.1);
    let batch = db.batch_update((0..5).map(|i| (format!("batch{i}"), big(i)))).unwrap_err();
    assert!(is_disk_full(&batch), "{batch:?}");

    // Nothing acknowledged is lost; nothing that failed is visible, cached or in the file.
    assert_eq!(db.get::<String>(&failed.0).unwrap(), None);
    assert_eq!(db.get_fresh::<String>(&failed.0).unwrap(), None);
    assert!((0..5).all(|i| !db.contains(&format!("batch{i}")).unwrap()), "a failed batch leaves nothing");
    for (i, key) in written.iter().enumerate() {
        assert_eq!(db.get_fresh::<String>(key).unwrap(), Some(big(i)));
    }
    assert!((0..20).all(|i| db.get_fresh::<i32>(&format!("before{i}")).unwrap() == Some(i)));

    // Space is back: the same writes go through.
    db.pragma("max_page_count", Some(SqlValue::Integer(1 << 30))).unwrap();
    db.set(&failed.0, &"now it fits").unwrap();
    db.batch_update((0..5).map(|i| (format!("batch{i}"), big(i)))).unwrap();
    assert_eq!(db.len().unwrap(), 20 + written.len() + 1 + 5);
    let check = db.fetch_one("PRAGMA integrity_check", &[]).unwrap().unwrap();
    assert_eq!(check.get::<String>("integrity_check").unwrap(), "ok");
}

#[test]
fn async_store_fails_only_the_writes_that_do_not_fit() {
    let _watchdog = common::Watchdog::new("async_store_fails_only_the_writes_that_do_not_fit", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let db = AsyncNanaSQLite::open(dir.path().join("full-async.db")).await.unwrap();
        db.batch_update((0..20).map(|i| (format!("before{i}"), i))).await.unwrap();
        let quota = quota_near_full(db.pragma("page_count", None).await.unwrap());
        db.pragma("max_page_count", Some(quota)).await.unwrap();

        // Concurrent writes share group commits: those that fit must commit although others
        // of their group fail.
        let writes = (0..30).map(|i| {
            let key = format!("big{i}");
            let write = db.set(&key, &big(i));
            async move { (key, i, write.await) }
        });
        let outcomes = futures::future::join_all(writes).await;
        let (mut fitted, mut refused) = (0, 0);
        for (key, i, outcome) in outcomes {
            match outcome {
                Ok(()) => {
                    fitted += 1;
                    assert_eq!(db.get_fresh::<String>(&key).await.unwrap(), Some(big(i)), "{key} acknowledged");
                }
                Err(error) => {
                    refused += 1;
                    assert!(is_disk_full(&error), "{error:?}");
                    assert_eq!(db.get::<String>(&key).await.unwrap(), None, "{key} failed but is cached");
                    assert_eq!(db.get_fresh::<String>(&key).await.unwrap(), None, "{key} failed but is stored");
                }
            }
        }
        assert!(fitted > 0 && refused > 0, "{fitted} fitted, {refused} refused");
        let batch = db.batch_update((0..5).map(|i| (format!("batch{i}"), big(i)))).await.unwrap_err();
        assert!(is_disk_full(&batch), "{batch:?}");
        for i in 0..5 {
            assert!(!db.contains(&format!("batch{i}")).await.unwrap(), "a failed batch leaves nothing");
        }
        for i in 0..20 {
            assert_eq!(db.get_fresh::<i32>(&format!("before{i}")).await.unwrap(), Some(i));
        }

        db.pragma("max_page_count", Some(SqlValue::Integer(1 << 30))).await.unwrap();
        db.set("after", &big(99)).await.unwrap();
        assert_eq!(db.len().await.unwrap(), 20 + fitted + 1);
        db.close().await.unwrap();
    });
}
