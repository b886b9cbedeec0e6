//! nanasqlite's async store on smol.
//!
//! [`AsyncNanaSQLite`] is the runtime-neutral store: its SQLite work runs on the store's own
//! threads and its futures are awaited with runtime-neutral channels, so it works under
//! `smol::block_on`, an `async-executor` and smol's global executor alike. This crate adds
//! [`SmolBlockingPool`], for running those threads on the `blocking` crate's pool (the one
//! behind `smol::unblock`) instead of dedicated ones.
//!
//! ```
//! use nanasqlite_smol::{AsyncNanaSQLite, SmolBlockingPool};
//!
//! smol::block_on(async {
//!     let db = AsyncNanaSQLite::builder(":memory:").spawner(SmolBlockingPool).open().await?;
//!     db.aset("counter", &1).await?;
//!     assert_eq!(db.aget::<i32>("counter").await?, Some(1));
//!     db.close().await
//! })?;
//! # Ok::<(), nanasqlite_core::Error>(())
//! ```

use std::io;

#[doc(no_inline)]
pub use nanasqlite_pool::{AsyncBuilder, AsyncNanaSQLite, Pending, Spawn, Stats, Threads};

/// Runs the store's threads on the `blocking` crate's thread pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolBlockingPool;

impl Spawn for SmolBlockingPool {
    fn spawn(&self, _name: String, lane: Box<dyn FnOnce() + Send + 'static>) -> io::Result<()> {
        blocking::unblock(lane).detach();
        Ok(())
    }
}
