//! Lifecycle promises: cache hits never wait; a store that is never closed does not keep the
//! process alive; a runtime shut down, or a process ending, with writes in flight neither hangs
//! nor loses an acknowledged write.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use nanasqlite::AsyncNanaSQLite;

mod common;

#[test]
fn a_cache_hit_is_ready_at_the_first_poll() {
    futures::executor::block_on(async {
        let db = AsyncNanaSQLite::builder(":memory:").inline_reads(false).open().await.unwrap();
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
        let inline = AsyncNanaSQLite::open(":memory:").await.unwrap();
        inline.set("k", &1).await.unwrap();
        inline.clear_cache();
        let read = inline.get::<i32>("k").now_or_never();
        assert_eq!(read.unwrap().unwrap(), Some(1), "with inline reads, a miss on a free connection is ready too");
        inline.close().await.unwrap();
    });
}

/// The child of the test below: writes, forgets the handle, returns from the test.
fn leave_a_store_open(path: &std::ffi::OsStr) {
    futures::executor::block_on(async {
        let db = AsyncNanaSQLite::builder(path).read_pool_size(2).max_workers(3).open().await.unwrap();
        db.set("written", &true).await.unwrap();
        std::mem::forget(db); // never closed, never dropped
    });
}

#[test]
fn a_process_that_never_closes_its_store_still_exits() {
    if common::child_role().is_some() {
        return leave_a_store_open(&std::env::var_os("NANASQLITE_CHILD_DB").unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("child.db");
    let mut child = common::child("a_process_that_never_closes_its_store_still_exits", "leave open")
        .env("NANASQLITE_CHILD_DB", &path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(common::wait_for_exit(&mut child, Duration::from_secs(60)).success(), "the process hung at exit");
    let db = nanasqlite::NanaSQLite::open(&path).unwrap();
    assert_eq!(db.get::<bool>("written").unwrap(), Some(true), "the acknowledged write is in the file");
}

/// What the writer tasks saw: the keys acknowledged, and any error (a panic inside a tokio
/// task would go unnoticed, so errors are collected instead).
#[derive(Default)]
struct Log {
    acked: Vec<String>,
    errors: Vec<String>,
}

/// Tasks that write in a loop and log each write once acknowledged.
fn spawn_writers(runtime: &tokio::runtime::Runtime, db: &AsyncNanaSQLite, log: &Arc<Mutex<Log>>) {
    for task in 0..50 {
        let (db, log) = (db.clone(), Arc::clone(log));
        runtime.spawn(async move {
            for i in 0.. {
                let key = format!("t{task}:{i}");
                match db.set(&key, &i).await {
                    Ok(()) => log.lock().unwrap().acked.push(key),
                    Err(error) => return log.lock().unwrap().errors.push(format!("{key}: {error}")),
                }
            }
        });
    }
}

/// The acknowledged keys, after checking that no write failed and that there are some.
fn acknowledged(log: &Mutex<Log>) -> Vec<String> {
    let log = log.lock().unwrap();
    assert!(log.errors.is_empty(), "writes failed: {:?}", log.errors);
    assert!(!log.acked.is_empty(), "the writers wrote nothing");
    log.acked.clone()
}

fn assert_all_present(path: &std::path::Path, acked: &[String]) {
    let db = nanasqlite::NanaSQLite::open(path).unwrap();
    for key in acked {
        let i: u64 = key.rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(db.get::<u64>(key).unwrap(), Some(i), "acknowledged {key} lost");
    }
}

/// Shutting a runtime down drops its tasks mid-write: no panic, no hang, and every
/// acknowledged write is in the file. The store (on its own threads) outlives the runtime.
#[test]
fn shutting_down_the_runtime_mid_write_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shutdown.db");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let db = runtime.block_on(AsyncNanaSQLite::open(&path)).unwrap();
    let log = Arc::new(Mutex::new(Log::default()));
    spawn_writers(&runtime, &db, &log);
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    runtime.shutdown_timeout(Duration::from_secs(30));
    assert!(start.elapsed() < Duration::from_secs(10), "the runtime's shutdown waited for the store");

    let acked = acknowledged(&log);
    futures::executor::block_on(async {
        db.set("after", &true).await.unwrap(); // the store still works on another executor
        db.close().await.unwrap();
    });
    assert_all_present(&path, &acked);
}

/// With the store's threads on tokio's own blocking pool, the runtime waits for them at
/// shutdown: once the tasks holding the store are dropped, the store closes and the shutdown
/// ends, without hanging.
#[cfg(feature = "tokio")]
#[test]
fn a_store_on_tokios_blocking_pool_lets_the_runtime_shut_down() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocking-pool.db");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let log = Arc::new(Mutex::new(Log::default()));
    let open = AsyncNanaSQLite::builder(&path).spawner(nanasqlite::tokio::TokioBlockingPool).open();
    let db = runtime.block_on(open).unwrap();
    spawn_writers(&runtime, &db, &log);
    drop(db); // only the tasks hold the store now
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    runtime.shutdown_timeout(Duration::from_secs(30));
    assert!(start.elapsed() < Duration::from_secs(10), "the runtime's shutdown hung on the store's lanes");
    assert_all_present(&path, &acknowledged(&log));
}

/// The child of the test below: writes from many tasks and exits mid-write, without closing
/// the store or shutting the runtime down. Reports each acknowledged write on stderr.
fn exit_mid_write(path: &std::ffi::OsStr) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let db = runtime.block_on(AsyncNanaSQLite::open(path)).unwrap();
    for task in 0..20 {
        let db = db.clone();
        runtime.spawn(async move {
            for i in 0.. {
                let key = format!("t{task}:{i}");
                db.set(&key, &i).await.unwrap();
                let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{key}\n").as_bytes());
            }
        });
    }
    std::thread::sleep(Duration::from_millis(200));
    std::mem::forget(runtime); // the process ends with every task still writing
}

#[test]
fn a_process_exiting_mid_write_exits_and_keeps_what_it_acknowledged() {
    if common::child_role().is_some() {
        return exit_mid_write(&std::env::var_os("NANASQLITE_EXIT_DB").unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exit.db");
    let mut child = common::child("a_process_exiting_mid_write_exits_and_keeps_what_it_acknowledged", "exit")
        .env("NANASQLITE_EXIT_DB", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        lines.map_while(Result::ok).filter(|line| line.starts_with('t')).collect::<Vec<_>>()
    });
    assert!(common::wait_for_exit(&mut child, Duration::from_secs(60)).success(), "the process hung at exit");
    let acked = reader.join().unwrap();
    assert!(!acked.is_empty(), "the child wrote nothing");
    assert_all_present(&path, &acked);
}
