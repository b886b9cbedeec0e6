//! Where lane threads come from.

use std::io;

/// Starts the long-running loop of one lane. The default, [`Threads`], gives each lane a
/// dedicated named thread; the runtime adapters implement it on their runtime's blocking pool
/// (tokio's `spawn_blocking`, smol's `blocking`, async-std's `spawn_blocking`). The choice changes
/// where threads come from, never behaviour.
///
/// A lane runs until the store is closed or dropped, so it occupies its thread for that long.
pub trait Spawn: Send + Sync + 'static {
    /// Runs `lane` on another thread. `name` says which lane it is (`nanasqlite-writer`,
    /// `nanasqlite-reader-0`, …).
    ///
    /// # Errors
    ///
    /// When no thread could be had; the store then fails to open.
    fn spawn(&self, name: String, lane: Box<dyn FnOnce() + Send + 'static>) -> io::Result<()>;
}

/// Dedicated, named OS threads: works under every runtime and with none.
#[derive(Clone, Copy, Debug, Default)]
pub struct Threads;

impl Spawn for Threads {
    fn spawn(&self, name: String, lane: Box<dyn FnOnce() + Send + 'static>) -> io::Result<()> {
        std::thread::Builder::new().name(name).spawn(lane).map(drop)
    }
}
