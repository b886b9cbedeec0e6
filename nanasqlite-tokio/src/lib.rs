//! nanasqlite's async store on tokio.
//!
//! [`AsyncNanaSQLite`] is the runtime-neutral store: its SQLite work runs on the store's own
//! threads, so it never blocks tokio's workers, on the current-thread or the multi-thread
//! runtime. This crate adds [`TokioBlockingPool`], for running those threads on tokio's blocking
//! pool instead of dedicated ones.
//!
//! ```
//! use nanasqlite_tokio::{AsyncNanaSQLite, TokioBlockingPool};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> nanasqlite_core::Result<()> {
//!     let db = AsyncNanaSQLite::builder(":memory:").spawner(TokioBlockingPool).open().await?;
//!     db.aset("user_1", &serde_json::json!({"name": "Alice"})).await?;
//!     let user: Option<serde_json::Value> = db.aget("user_1").await?;
//!     assert_eq!(user.unwrap()["name"], "Alice");
//!     db.close().await
//! }
//! ```
//!
//! With [`TokioBlockingPool`] the store's threads are tokio blocking tasks, which the runtime
//! waits for when it shuts down: close or drop the store before the runtime ends. The default
//! dedicated threads never hold a runtime (or the process) up.

use std::io;

#[doc(no_inline)]
pub use nanasqlite_pool::{AsyncBuilder, AsyncNanaSQLite, Pending, Spawn, Stats, Threads};

/// Runs the store's threads on tokio's blocking pool (`spawn_blocking`) of the runtime that
/// opens the store.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioBlockingPool;

impl Spawn for TokioBlockingPool {
    fn spawn(&self, _name: String, lane: Box<dyn FnOnce() + Send + 'static>) -> io::Result<()> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        drop(runtime.spawn_blocking(lane));
        Ok(())
    }
}
