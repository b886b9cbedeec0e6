//! The sync core of nanasqlite: a dict-like key/value store on SQLite with an in-memory cache,
//! file-compatible with Python NanaSQLite.
//!
//! ```
//! use nanasqlite_core::NanaSQLite;
//! use serde_json::{json, Value};
//!
//! let db = NanaSQLite::open(":memory:")?;
//! db.set("config", &json!({"theme": "dark", "retries": 3}))?;
//! let config: Value = db.get("config")?.expect("just stored");
//! assert_eq!(config["retries"], 3);
//!
//! db.batch_update((0..100).map(|i| (format!("user_{i}"), json!({"id": i}))))?;
//! assert_eq!(db.len()?, 101);
//! # Ok::<(), nanasqlite_core::Error>(())
//! ```
//!
//! # Design
//!
//! Every operation of the stores is written once, in the `engine` module (internal to the
//! workspace: hidden, with no stability promise), as a function over a
//! [`storage::Storage`] backend that runs inside the transaction it is handed and returns its
//! result with the cache change it implies. [`NanaSQLite`] runs those operations under one lock
//! per file (a write in a transaction of its own, its cache change applied after the commit);
//! the async store of `nanasqlite-pool` runs the same operations on threads, in groups. Reads
//! look in the table's cache first (a read lock held for one hash lookup) and only reach the
//! database on a miss. [`storage::SqliteStorage`] is the SQLite backend and holds every SQL
//! string of the key/value store. Nothing here starts threads or knows about async runtimes.
//!
//! # File format
//!
//! Each table is `"<name>"(key TEXT PRIMARY KEY, value TEXT)` holding JSON text, the layout of
//! Python NanaSQLite. Values are written as compact JSON; any valid JSON is read, including
//! Python's spaced form, and the `NaN`/`Infinity`/`-Infinity` tokens Python's `json` writes are
//! read as `null` (what orjson writes for them).

mod atomic;
mod cache;
mod clock;
mod codec;
mod database;
#[cfg(feature = "encryption")]
mod encryption;
#[cfg(not(feature = "encryption"))]
#[path = "encryption/disabled.rs"]
mod encryption;
#[doc(hidden)]
pub mod engine;
mod error;
pub mod hook;
mod identifier;
mod scan;
pub mod sql;
pub mod storage;
mod store;
mod watch;
#[cfg(feature = "axum")]
mod web;
pub mod writeback;

pub use atomic::Amount;
pub use cache::CacheStrategy;
pub use clock::{Clock, ManualClock};
pub use encryption::Encryption;
pub use engine::kv::{BatchReport, KeyValue};
pub use engine::sql::Transaction;
pub use error::{Error, Refusal, Result};
pub use identifier::Identifier;
pub use scan::{Page, SCAN_PAGE, Scan};
pub use store::NanaSQLite;
pub use store::builder::{Builder, DEFAULT_TABLE};
pub use store::scan::Iter;
pub use store::typed::{Record, TypedTable, Validator};
pub use writeback::{DeadLetter, WriteBack, WriteBackStats};
