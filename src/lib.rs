//! A dict-like key/value store on SQLite: every write is committed at once, reads come from an
//! in-memory cache, and the files are the ones Python NanaSQLite reads and writes.
//!
//! ```
//! use nanasqlite::NanaSQLite;
//! use serde_json::json;
//!
//! let db = NanaSQLite::open(":memory:")?;
//! db.set("user_1", &json!({"name": "Alice", "age": 25}))?;
//! let mut user: serde_json::Value = db.get("user_1")?.expect("just stored");
//! user["age"] = json!(26);
//! db.set("user_1", &user)?;
//! assert_eq!(db.get::<serde_json::Value>("user_1")?.unwrap()["age"], 26);
//! # Ok::<(), nanasqlite::Error>(())
//! ```
//!
//! This crate is the facade: every type a program names is here, re-exported from the
//! workspace's crates (`nanasqlite-core` for the sync store and the shared types,
//! `nanasqlite-pool` for the async store, and one adapter crate per runtime behind its
//! feature), so that no program needs to depend on those crates itself. [`rusqlite`] is
//! re-exported too, for matching on SQLite's own errors.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use nanasqlite_core::sql::{Clause, ColumnInfo, IndexInfo, Query, Row, SqlPolicy, SqlValue};
/// The backend of a store opened from a URL ([`NanaSQLite::open_url`]).
pub use nanasqlite_core::storage::AnyStorage;
/// The builders of a store on a PostgreSQL server (feature `postgres`): see
/// [`NanaSQLite::postgres`] and [`AsyncNanaSQLite::postgres`].
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use nanasqlite_core::storage::{PostgresBuilder, PostgresStorage};
pub use nanasqlite_core::{
    Amount, BatchReport, Builder, CacheStrategy, Clock, DEFAULT_TABLE, DeadLetter, Encryption, Error, Identifier, Iter,
    KeyValue, ManualClock, NanaSQLite, Page, Record, Refusal, Result, SCAN_PAGE, Scan, Transaction, TypedTable,
    WriteBack, WriteBackStats, hook, params, sql, storage, writeback,
};
#[cfg(all(feature = "async", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "async", feature = "postgres"))))]
pub use nanasqlite_pool::AsyncPostgresBuilder;
/// The async store (feature `async`, on by default).
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use nanasqlite_pool::{
    AsyncBuilder, AsyncNanaSQLite, AsyncTransaction, AsyncTypedTable, DEFAULT_MAX_WORKERS, DEFAULT_QUEUE_CAPACITY,
    Pending, ScanStream, Spawn, Stats, Threads,
};

/// The SQLite bindings underneath, for matching on SQLite's own errors
/// ([`Error::sqlite_code`] covers the common cases without it).
pub use rusqlite;

/// The async store on tokio, with tokio's blocking pool as an option (feature `tokio`).
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use nanasqlite_tokio as tokio;

/// The async store on smol, with the `blocking` pool as an option (feature `smol`).
#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
pub use nanasqlite_smol as smol;

/// The async store on async-std, which is discontinued (feature `async-std`).
#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
pub use nanasqlite_async_std as async_std;

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
