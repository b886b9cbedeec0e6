//! nanasqlite's async store on async-std.
//!
//! **async-std is discontinued** (its maintainers recommend smol; RUSTSEC-2025-0052). This
//! crate stays thin so existing async-std programs can use nanasqlite; new code should use
//! `nanasqlite-smol` or the runtime-neutral store directly.
//!
//! [`AsyncNanaSQLite`] is the runtime-neutral store: its SQLite work runs on the store's own
//! threads, so it never blocks async-std's executor. [`AsyncStdBlockingPool`] runs those threads
//! on async-std's blocking pool instead of dedicated ones.
//!
//! ```
//! use nanasqlite_async_std::{AsyncNanaSQLite, AsyncStdBlockingPool};
//!
//! async_std::task::block_on(async {
//!     let db = AsyncNanaSQLite::builder(":memory:").spawner(AsyncStdBlockingPool).open().await?;
//!     db.aset("k", &"v").await?;
//!     assert_eq!(db.aget::<String>("k").await?.as_deref(), Some("v"));
//!     db.close().await
//! })?;
//! # Ok::<(), nanasqlite_core::Error>(())
//! ```

use std::io;

#[doc(no_inline)]
pub use nanasqlite_pool::{AsyncBuilder, AsyncNanaSQLite, Pending, Spawn, Stats, Threads};

/// Runs the store's threads on async-std's blocking pool (`spawn_blocking`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStdBlockingPool;

impl Spawn for AsyncStdBlockingPool {
    fn spawn(&self, _name: String, lane: Box<dyn FnOnce() + Send + 'static>) -> io::Result<()> {
        drop(async_std::task::spawn_blocking(lane));
        Ok(())
    }
}
