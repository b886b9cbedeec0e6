//! The thread pool of nanasqlite, on flume channels, and [`AsyncNanaSQLite`], the async store
//! built on it. No async runtime is needed: the futures work on tokio, smol, async-std and
//! `futures::executor::block_on` alike.
//!
//! ```
//! use nanasqlite_pool::AsyncNanaSQLite;
//!
//! # futures::executor::block_on(async {
//! let db = AsyncNanaSQLite::builder(":memory:").open().await?;
//! db.set("greeting", &"hello").await?;
//! assert_eq!(db.get::<String>("greeting").await?.as_deref(), Some("hello"));
//! db.close().await?;
//! # Ok::<(), nanasqlite_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! Every call of the store returns a [`Pending`]: a future of the call's `Result` that borrows
//! nothing, is `Send` and `Unpin`, and can be named (kept in a struct, raced without pinning).
//!
//! # Design
//!
//! Every store operation is an operation of the core's
//! [`engine`](nanasqlite_core::engine), the same one the sync store runs; this crate only
//! decides where and when it runs. A pool has one writer lane and reader lanes started when
//! reads need them ([`AsyncBuilder`] says what runs where). A lane is a thread owning one
//! connection and draining one bounded flume queue of jobs. A caller sends its job with flume's
//! `send_async` (so a full queue makes it wait, not grow) and awaits the answer on a oneshot
//! channel; both are runtime-neutral. The writer runs the writes waiting in its queue as one
//! group in one transaction and applies each one's cache change after the commit; if one fails,
//! the transaction is rolled back and the others run again without it. Readers run the reads
//! waiting in their queue in one read snapshot. A panic inside a job becomes
//! [`Error::Panic`](nanasqlite_core::Error::Panic) for its caller; the lane survives. The cache
//! of each table lives beside the pool and is read on the caller's thread. A reader whose
//! connection fails under a group opens a new one and runs the group again.
//!
//! # Features
//!
//! - `failpoints`: compiles in the `nanasqlite-reader-connection` fail point of the
//!   [`fail`](https://docs.rs/fail) crate, which makes a reader's next read group fail as if
//!   its connection broke. For fault-injection tests only.

mod budget;
pub mod conformance;
mod deadline;
mod job;
mod lanes;
mod pool;
mod spawn;
mod stats;
mod store;
mod waiting;

pub use budget::Pending;
pub use spawn::{Spawn, Threads};
pub use stats::Stats;
pub use store::AsyncNanaSQLite;
pub use store::builder::{AsyncBuilder, DEFAULT_MAX_WORKERS, DEFAULT_QUEUE_CAPACITY};
#[cfg(feature = "postgres")]
pub use store::postgres::AsyncPostgresBuilder;
pub use store::scan::ScanStream;
pub use store::transaction::AsyncTransaction;
pub use store::typed::AsyncTypedTable;
