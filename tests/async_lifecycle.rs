//! Lifecycle promises that need no runtime: cache hits never wait, and a store that is never
//! closed does not keep the process alive.

use std::process::Command;
use std::time::{Duration, Instant};

use futures::FutureExt;
use nanasqlite::AsyncNanaSQLite;

#[test]
fn a_cache_hit_is_ready_at_the_first_poll() {
    futures::executor::block_on(async {
        let db = AsyncNanaSQLite::open(":memory:").await.unwrap();
        db.set("k", &1).await.unwrap();
        // `now_or_never` polls once with a no-op waker: only work done on this thread counts.
        assert_eq!(db.get::<i32>("k").now_or_never().unwrap().unwrap(), Some(1));
        assert!(db.get::<i32>("absent").now_or_never().is_none(), "a miss needs the pool");
        db.get::<i32>("absent").await.unwrap();
        assert_eq!(db.get::<i32>("absent").now_or_never().unwrap().unwrap(), None, "absence is cached too");
        assert!(db.contains("k").now_or_never().unwrap().unwrap());
        assert_eq!(db.batch_get::<i32, _>(["k", "absent"]).now_or_never().unwrap().unwrap().len(), 1);
        assert!(db.get_shared("k").now_or_never().unwrap().unwrap().is_some());
        db.close().await.unwrap();
    });
}

/// Run as a child process (see below): writes, forgets the handle, returns from the test.
#[test]
fn child_leaves_a_store_open() {
    let Some(path) = std::env::var_os("NANASQLITE_CHILD_DB") else { return };
    futures::executor::block_on(async {
        let db = AsyncNanaSQLite::builder(&path).read_pool_size(2).max_workers(3).open().await.unwrap();
        db.set("written", &true).await.unwrap();
        std::mem::forget(db); // never closed, never dropped
    });
}

#[test]
fn a_process_that_never_closes_its_store_still_exits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("child.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_leaves_a_store_open", "--test-threads=1"])
        .env("NANASQLITE_CHILD_DB", &path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the process hung at exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let db = nanasqlite::NanaSQLite::open(&path).unwrap();
    assert_eq!(db.get::<bool>("written").unwrap(), Some(true), "the acknowledged write is in the file");
}
