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
//! A [`NanaSQLite`] handle is a table of a connection shared by every table of the file, plus that
//! table's cache. Writes encode the value on the caller's thread, take the store's lock, commit,
//! then update the cache, so the cache never shows a write that failed. Reads look in the cache
//! first (a read lock held for one hash lookup) and only take the store's lock on a miss.
//! Storage is behind the [`storage::Storage`] trait; [`storage::SqliteStorage`] is the backend
//! and holds every SQL string. Nothing here starts threads or knows about async runtimes.
//!
//! # File format
//!
//! Each table is `"<name>"(key TEXT PRIMARY KEY, value TEXT)` holding JSON text, the layout of
//! Python NanaSQLite. Values are written as compact JSON; any valid JSON is read, including
//! Python's spaced form, and the `NaN`/`Infinity`/`-Infinity` tokens Python's `json` writes are
//! read as `null` (what orjson writes for them).

pub mod atomic;
pub mod backup;
mod builder;
pub mod cache;
pub mod codec;
mod database;
mod error;
mod identifier;
pub mod sql;
pub mod storage;
mod store;
mod store_sql;
pub mod watch;

pub use atomic::Amount;
pub use builder::{Builder, DEFAULT_TABLE, Options};
pub use cache::CacheStrategy;
pub use error::{Error, Result};
pub use identifier::Identifier;
pub use store::{KeyValue, NanaSQLite, encode_rows, scan_rows};
pub use store_sql::{Transaction, db_size};
