//! What the integration tests share: one async test body run on every runtime.

#![allow(dead_code, unused_macros)] // each test file uses part of it

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use nanasqlite::{AsyncBuilder, AsyncNanaSQLite, NanaSQLite};

/// Runs `$body(builder)` on every runtime, `builder` opening a fresh file. The variants on a
/// runtime's blocking pool need that runtime's feature (all of them under `--all-features`);
/// the `inline_writes` variants turn inline writes on (off by default), so every body runs
/// with both.
#[macro_export]
macro_rules! on_every_runtime {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn tokio_current_thread() {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on($crate::common::run(super::$name, |b| b));
            }

            #[cfg(feature = "tokio")]
            #[test]
            fn tokio_current_thread_blocking_pool() {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on($crate::common::run(super::$name, |b| b.spawner(nanasqlite::tokio::TokioBlockingPool)));
            }

            #[cfg(feature = "tokio")]
            #[test]
            fn tokio_multi_thread() {
                let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
                runtime.block_on($crate::common::run(super::$name, |b| b.spawner(nanasqlite::tokio::TokioBlockingPool)));
            }

            #[test]
            fn tokio_multi_thread_own_threads() {
                let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
                runtime.block_on($crate::common::run(super::$name, |b| b));
            }

            #[cfg(feature = "smol")]
            #[test]
            fn smol() {
                ::smol::block_on($crate::common::run(super::$name, |b| b.spawner(nanasqlite::smol::SmolBlockingPool)));
            }

            #[cfg(feature = "async-std")]
            #[test]
            fn async_std() {
                let with = |b: nanasqlite::AsyncBuilder| b.spawner(nanasqlite::async_std::AsyncStdBlockingPool);
                ::async_std::task::block_on($crate::common::run(super::$name, with));
            }

            #[test]
            fn tokio_current_thread_inline_writes() {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on($crate::common::run(super::$name, |b| b.inline_writes(true)));
            }

            #[test]
            fn tokio_multi_thread_inline_writes() {
                let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
                runtime.block_on($crate::common::run(super::$name, |b| b.inline_writes(true)));
            }

            #[test]
            fn futures_block_on_inline_writes() {
                futures::executor::block_on($crate::common::run(super::$name, |b| b.inline_writes(true)));
            }

            #[test]
            fn futures_block_on() {
                futures::executor::block_on($crate::common::run(super::$name, |b| b));
            }

            #[test]
            fn async_executor() {
                let executor = async_executor::Executor::new();
                futures::executor::block_on(executor.run($crate::common::run(super::$name, |b| b)));
            }
        }
    )*};
}

/// How long one async test body may take before the watchdog fails it (a hang must fail, not
/// stall CI).
pub(crate) const TEST_LIMIT: Duration = Duration::from_secs(120);

/// A fresh file in a temp dir, a builder for it (adapted per runtime), and the body, under a
/// watchdog.
pub(crate) async fn run<F, Fut>(body: F, adapt: fn(AsyncBuilder) -> AsyncBuilder)
where
    F: FnOnce(Setup) -> Fut,
    Fut: Future<Output = ()>,
{
    let _watchdog = Watchdog::new("an async test body", TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("async.db");
    body(Setup { path: path.clone(), builder: adapt(AsyncNanaSQLite::builder(&path)), adapt }).await;
}

/// Ends the whole test process (so the run fails, visibly) if it is still alive after `limit`:
/// a deadlocked test cannot be unwound from another thread, but it must not hang CI. Dropping
/// the watchdog stands it down.
pub(crate) struct Watchdog {
    done: Arc<(Mutex<bool>, Condvar)>,
}

impl Watchdog {
    pub(crate) fn new(what: &'static str, limit: Duration) -> Self {
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let watched = Arc::clone(&done);
        std::thread::spawn(move || {
            let (finished, changed) = &*watched;
            let guard = finished.lock().unwrap_or_else(PoisonError::into_inner);
            let (finished, timeout) =
                changed.wait_timeout_while(guard, limit, |finished| !*finished).unwrap_or_else(PoisonError::into_inner);
            if !*finished && timeout.timed_out() {
                eprintln!("WATCHDOG: {what} did not finish within {limit:?}; aborting the test process");
                std::process::abort();
            }
        });
        Self { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (finished, changed) = &*self.done;
        *finished.lock().unwrap_or_else(PoisonError::into_inner) = true;
        changed.notify_all();
    }
}

/// Waits until `condition` holds, checking every millisecond; fails the test, naming `what`,
/// if it does not hold within `limit`.
pub(crate) fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "{what} did not happen within {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// As [`wait_until`], for async code: yields to the executor between checks (never sleeps the
/// thread, which would stall a single-threaded runtime).
pub(crate) async fn wait_until_async(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "{what} did not happen within {limit:?}");
        YieldNow(false).await;
    }
}

/// The role this process plays when a test started it as its own child ([`child`]); `None` in
/// the test itself.
pub(crate) fn child_role() -> Option<String> {
    std::env::var("NANASQLITE_CHILD_ROLE").ok()
}

/// This test binary again, running only `test` (the caller's own name) with the child role
/// `role`: at its start, that test sees [`child_role`] and plays the child instead. No separate
/// entry point exists, so nothing passes as a test without testing.
pub(crate) fn child(test: &str, role: &str) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().expect("the test binary"));
    command.args(["--exact", test, "--include-ignored", "--test-threads=1", "--nocapture"]);
    command.env("NANASQLITE_CHILD_ROLE", role);
    command
}

/// A Python with NanaSQLite 1.6.2 and orjson (`NANASQLITE_PYTHON`, or the venv `bash
/// .ci/python-venv` makes). Tests that need it are `#[ignore]`d with the reason, so that plain
/// `cargo test` lists them as ignored; `bash .ci/test` runs them, and then a missing Python
/// fails them with the command that fixes it.
pub(crate) fn python() -> PathBuf {
    let found = std::env::var_os("NANASQLITE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/interop-venv/bin/python"));
    let usable = std::process::Command::new(&found)
        .args(["-c", "import nanasqlite, orjson; assert nanasqlite.__version__ == '1.6.2'"])
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        usable,
        "this test needs Python NanaSQLite 1.6.2 with orjson at {}: run `bash .ci/python-venv` \
         (or set NANASQLITE_PYTHON), or skip it with plain `cargo test`, which leaves it ignored",
        found.display()
    );
    found
}

pub(crate) struct Setup {
    pub(crate) path: PathBuf,
    pub(crate) builder: AsyncBuilder,
    /// What the runtime under test changes in a builder (where the store's threads come from).
    pub(crate) adapt: fn(AsyncBuilder) -> AsyncBuilder,
}

impl Setup {
    pub(crate) async fn open(&self) -> AsyncNanaSQLite {
        self.builder.clone().open().await.unwrap()
    }

    /// A builder for another database (`path`), adapted to the runtime under test.
    pub(crate) fn builder_for(&self, path: impl AsRef<Path>) -> AsyncBuilder {
        (self.adapt)(AsyncNanaSQLite::builder(path))
    }
}

/// What the file holds, read by a separate sync connection.
pub(crate) fn in_file<T: serde::de::DeserializeOwned>(path: &Path, key: &str) -> Option<T> {
    NanaSQLite::open(path).unwrap().get(key).unwrap()
}

/// Yields to the executor once: lets another task (or join branch) run.
pub(crate) struct YieldNow(pub(crate) bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// How `child` exited; kills it and fails the test if it has not exited within `limit`.
pub(crate) fn wait_for_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a child process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads one line from a child's pipe, failing the test if none comes within `limit`.
pub(crate) fn read_line_within(pipe: impl std::io::Read + Send + 'static, limit: Duration) -> String {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(pipe), &mut line);
        let _ = sender.send(line);
    });
    receiver.recv_timeout(limit).unwrap_or_else(|_| panic!("the child said nothing within {limit:?}"))
}

/// Each line `pipe` carries, sent on the returned channel as it comes (the channel closes at
/// the pipe's end): for reading a child's reports with a deadline (`recv_timeout`).
pub(crate) fn lines_of(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)) {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

/// How many threads of this process have a name starting with `prefix` (Linux keeps the first
/// 15 bytes of a thread's name, in `/proc/self/task/<id>/comm`).
pub(crate) fn threads_named(prefix: &str) -> usize {
    let prefix = &prefix[..prefix.len().min(15)];
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task lists this process's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end().starts_with(prefix))
        .count()
}
