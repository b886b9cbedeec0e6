//! Lifecycle promises: cache hits never wait; `close` runs what was queued before it and ends
//! the store's lanes on every spawner; a runtime shut down, or a process ending, with writes in
//! flight neither hangs nor loses an acknowledged write.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use nanasqlite::{AsyncBuilder, AsyncNanaSQLite, Error, Spawn, Threads};

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
        assert_eq!(db.batch_get::<i32>(["k", "absent"]).now_or_never().unwrap().unwrap().len(), 1);
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

/// A spawner that counts the lanes it runs that have not returned yet.
struct Counting<S> {
    inner: S,
    running: Arc<AtomicUsize>,
}

impl<S: Spawn> Spawn for Counting<S> {
    fn spawn(&self, name: String, lane: Box<dyn FnOnce() + Send + 'static>) -> std::io::Result<()> {
        let running = Arc::clone(&self.running);
        running.fetch_add(1, Ordering::SeqCst);
        let counted = Box::new(move || {
            lane();
            running.fetch_sub(1, Ordering::SeqCst);
        });
        self.inner.spawn(name, counted)
    }
}

/// A store on `path` whose lanes run on `inner`, counted in `running`.
fn counting(path: &std::path::Path, inner: impl Spawn, running: &Arc<AtomicUsize>) -> AsyncBuilder {
    AsyncNanaSQLite::builder(path).spawner(Counting { inner, running: Arc::clone(running) })
}

/// How many writes are queued before `close`.
const QUEUED: usize = 200;

/// Queues `QUEUED` writes and a failing statement (each future polled once, which hands its
/// job to the writer), closes the store, and checks that every queued job ran: each write is
/// acknowledged and in the file, the failing one reports its own error (not `Closed`), and a
/// call made after `close` is refused.
async fn close_runs_what_was_queued(name: &str, builder: AsyncBuilder) {
    let db = builder.read_pool_size(2).inline_reads(false).inline_writes(false).open().await.unwrap();
    let path = db.path().to_owned();
    db.set("warm", &0).await.unwrap();
    db.clear_cache();
    assert_eq!(db.get::<i32>("warm").await.unwrap(), Some(0), "a read starts a reader lane");
    let writes: Vec<_> = (0..QUEUED).map(|i| Box::pin(db.set(&format!("q{i}"), &i))).collect();
    let mut failing = Box::pin(db.execute("INSERT INTO no_such_table VALUES (1)", []));
    // A write the writer finished before its first poll returned is done: only the others
    // are awaited after the close (a finished future must not be polled again).
    let mut queued = Vec::new();
    for mut write in writes {
        match write.as_mut().now_or_never() {
            Some(written) => written.expect("a write done at once is acknowledged"),
            None => queued.push(write),
        }
    }
    assert!(failing.as_mut().now_or_never().is_none(), "the failing statement is queued behind the writes");
    db.close().await.unwrap();
    for write in queued {
        write.await.expect("a write queued before close is acknowledged");
    }
    let error = failing.await.expect_err("the failing statement fails");
    assert!(!matches!(error, Error::Closed), "{name}: its own error, not Closed: {error}");
    assert!(error.to_string().contains("no_such_table"), "{name}: {error}");
    assert!(matches!(db.set("late", &1).await, Err(Error::Closed)));
    let reopened = nanasqlite::NanaSQLite::open(&path).unwrap();
    assert_eq!(reopened.len().unwrap(), QUEUED + 1, "{name}: every queued write is in the file");
}

/// On each spawner: `close` runs every job queued before it, reports a failing job's error to
/// its caller, and ends every lane the store started (counted by a wrapper around the spawner).
#[test]
fn close_runs_every_queued_job_and_ends_every_lane_on_each_spawner() {
    let _watchdog = common::Watchdog::new("the close test", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let running = &running;
    type Spawner<'a> = Box<dyn Fn(&std::path::Path) -> AsyncBuilder + 'a>;
    #[cfg_attr(not(any(feature = "tokio", feature = "smol", feature = "async-std")), allow(unused_mut))]
    let mut spawners: Vec<(&str, Spawner<'_>)> = vec![("threads", Box::new(|path| counting(path, Threads, running)))];
    #[cfg(feature = "tokio")]
    spawners.push(("tokio", Box::new(|path| counting(path, nanasqlite::tokio::TokioBlockingPool, running))));
    #[cfg(feature = "smol")]
    spawners.push(("smol", Box::new(|path| counting(path, nanasqlite::smol::SmolBlockingPool, running))));
    #[cfg(feature = "async-std")]
    spawners.push(("async-std", Box::new(|path| counting(path, nanasqlite::async_std::AsyncStdBlockingPool, running))));
    for (name, builder) in spawners {
        let path = dir.path().join(format!("{name}.db"));
        runtime.block_on(close_runs_what_was_queued(name, builder(&path)));
        // A lane reports its connection closed just before it returns.
        common::wait_until(&format!("the {name} lanes to end after close"), Duration::from_secs(30), || {
            running.load(Ordering::SeqCst) == 0
        });
    }
}

/// With the default spawner, a closed store's threads end once they have waited
/// `Threads`' documented few seconds for another store's lane (counted by their names).
#[test]
fn a_closed_stores_threads_end() {
    let prefix = "lifecycle-end";
    let dir = tempfile::tempdir().unwrap();
    futures::executor::block_on(async {
        let builder = AsyncNanaSQLite::builder(dir.path().join("named.db")).thread_name_prefix(prefix);
        close_runs_what_was_queued("named", builder).await;
    });
    common::wait_until("the closed store's threads to end", Duration::from_secs(60), || {
        common::threads_named(prefix) == 0
    });
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

/// A process that returns from `main` with writes in flight keeps every write it was told was
/// acknowledged. (That it exits at all is Rust's doing, not the store's: returning from `main`
/// ends the process whatever its threads do; the deadline only keeps the test bounded.)
#[test]
fn a_process_exiting_mid_write_keeps_what_it_acknowledged() {
    if common::child_role().is_some() {
        return exit_mid_write(&std::env::var_os("NANASQLITE_EXIT_DB").unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exit.db");
    let mut child = common::child("a_process_exiting_mid_write_keeps_what_it_acknowledged", "exit")
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
    assert!(common::wait_for_exit(&mut child, Duration::from_secs(60)).success(), "the child failed");
    let acked = reader.join().unwrap();
    assert!(!acked.is_empty(), "the child wrote nothing");
    assert_all_present(&path, &acked);
}
