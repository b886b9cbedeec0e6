//! What the integration tests share: one async test body run on every runtime.

#![allow(dead_code, unused_macros)] // each test file uses part of it

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use nanasqlite::{AsyncBuilder, AsyncNanaSQLite, NanaSQLite};

/// Runs `$body(builder)` on every runtime, `builder` opening a fresh file.
#[macro_export]
macro_rules! on_every_runtime {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn tokio_current_thread() {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on($crate::common::run(super::$name, |b| b));
            }

            #[test]
            fn tokio_current_thread_blocking_pool() {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on($crate::common::run(super::$name, |b| b.spawner(nanasqlite::tokio::TokioBlockingPool)));
            }

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

            #[test]
            fn smol() {
                ::smol::block_on($crate::common::run(super::$name, |b| b.spawner(nanasqlite::smol::SmolBlockingPool)));
            }

            #[test]
            fn async_std() {
                let with = |b: nanasqlite::AsyncBuilder| b.spawner(nanasqlite::async_std::AsyncStdBlockingPool);
                ::async_std::task::block_on($crate::common::run(super::$name, with));
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

/// A fresh file in a temp dir, a builder for it (adapted per runtime), and the body.
pub(crate) async fn run<F, Fut>(body: F, adapt: fn(AsyncBuilder) -> AsyncBuilder)
where
    F: FnOnce(Setup) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("async.db");
    body(Setup { path: path.clone(), builder: adapt(AsyncNanaSQLite::builder(&path)), adapt }).await;
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
pub(crate) fn wait_for_exit(child: &mut std::process::Child, limit: std::time::Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("a child process did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
