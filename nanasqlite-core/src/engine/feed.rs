//! Rows of a batch handed to the writer while the caller still encodes them.
//!
//! A large batch costs its caller the encoding (serde, about 40% of the whole) and the writer
//! SQLite's inserts. One after the other they add up; handed over in chunks, the writer
//! stores the first rows while the caller encodes the next, on two cores. The batch stays one
//! operation: the writer keeps every row it received, so a rerun of its group (after another
//! write of the group failed) stores them again, and the cache learns them after the commit,
//! as for any batch.
//!
//! A future does nothing until it is polled, but these rows reach the writer when the call
//! is made. So the writer commits them only if the caller's future has been polled by the time
//! the last row arrived ([`RowFeed::wanted`]). Otherwise (a future made and kept, or dropped,
//! without being awaited) the writer sets the rows aside and fails the operation, writing
//! nothing; the future, once polled, hands the rows over again as an ordinary batch
//! ([`Handoff::take_deferred`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use parking_lot::Mutex;

use super::kv::{EncodedRows, SharedRows};
use crate::cache::CachedValue;
use crate::error::{Error, Result};

/// Rows per chunk: the writer starts once the first chunk is encoded (tens of microseconds),
/// and each chunk costs one channel message.
const CHUNK: usize = 128;

/// What the caller sends: a chunk of rows, the end of them, or why they stopped.
enum Message {
    Rows(EncodedRows),
    End,
    Failed(Error),
}

/// A channel for the rows of one batch: the caller's end ([`RowSink`]) and the writer's
/// ([`RowFeed`]). `expected` is how many rows the caller announced (a capacity hint).
#[must_use]
pub fn row_feed(expected: usize) -> (RowSink, RowFeed) {
    let (sender, receiver) = mpsc::channel();
    let handoff = Arc::new(Handoff::default());
    let sink = RowSink { sender, chunk: Vec::with_capacity(CHUNK), handoff: Arc::clone(&handoff) };
    (sink, RowFeed { receiver, handoff, expected })
}

/// What the caller's future and the writer share of a fed batch.
#[derive(Debug, Default)]
pub struct Handoff {
    /// Set when the caller's future is first polled.
    wanted: AtomicBool,
    /// The rows the writer set aside because the future had not been polled yet.
    deferred: Mutex<Option<SharedRows>>,
}

impl Handoff {
    /// Marks the batch as wanted: its future is being polled, so the writer may commit it.
    pub fn want(&self) {
        self.wanted.store(true, Ordering::Release);
    }

    /// The rows the writer set aside (the future was not polled when it had them all); they are
    /// to be written as an ordinary batch.
    #[must_use]
    pub fn take_deferred(&self) -> Option<SharedRows> {
        self.deferred.lock().take()
    }
}

/// The caller's end of a fed batch: rows go in as they are encoded, in chunks.
#[derive(Debug)]
pub struct RowSink {
    sender: mpsc::Sender<Message>,
    chunk: EncodedRows,
    handoff: Arc<Handoff>,
}

impl RowSink {
    /// Adds one encoded row; a full chunk goes to the writer.
    pub fn push(&mut self, key: Box<str>, value: Arc<CachedValue>) {
        self.chunk.push((key, value));
        if self.chunk.len() == CHUNK {
            let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
            self.send(Message::Rows(chunk));
        }
    }

    /// Ends the rows; what the future shares with the writer.
    pub fn finish(mut self) -> Arc<Handoff> {
        let rest = std::mem::take(&mut self.chunk);
        if !rest.is_empty() {
            self.send(Message::Rows(rest));
        }
        self.send(Message::End);
        self.handoff
    }

    /// Stops the rows with `error` (a value that cannot be encoded): the batch fails with it and
    /// writes nothing.
    pub fn fail(self, error: Error) -> Arc<Handoff> {
        self.send(Message::Failed(error));
        self.handoff
    }

    fn send(&self, message: Message) {
        // The writer is gone or failed the batch already (its answer says why): nothing to do.
        let _ = self.sender.send(message);
    }
}

/// The writer's end of a fed batch.
#[derive(Debug)]
pub struct RowFeed {
    receiver: mpsc::Receiver<Message>,
    handoff: Arc<Handoff>,
    expected: usize,
}

impl RowFeed {
    /// How many rows the caller announced.
    pub(crate) fn expected(&self) -> usize {
        self.expected
    }

    /// The next chunk, waiting for the caller to encode it; `None` after the last one.
    ///
    /// # Errors
    ///
    /// The error the caller stopped with, or [`Error::Panic`] if its end went away without
    /// ending the rows (its thread panicked while encoding).
    pub(crate) fn next(&self) -> Result<Option<EncodedRows>> {
        match self.receiver.recv() {
            Ok(Message::Rows(rows)) => Ok(Some(rows)),
            Ok(Message::End) => Ok(None),
            Ok(Message::Failed(error)) => Err(error),
            Err(mpsc::RecvError) => Err(Error::Panic { message: "the caller stopped while encoding a batch".into() }),
        }
    }

    /// Whether the caller's future has been polled, so that the batch may be committed.
    pub(crate) fn wanted(&self) -> bool {
        self.handoff.wanted.load(Ordering::Acquire)
    }

    /// Sets `rows` aside for the future to hand over again once polled; the error to fail the
    /// operation with (so that its group writes nothing of it).
    pub(crate) fn defer(&self, rows: SharedRows) -> Error {
        *self.handoff.deferred.lock() = Some(rows);
        Error::Transaction { message: "a batch is written once its future is polled".into() }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::Identifier;
    use crate::engine::{AddHooks, BatchUpdate, Operation, Table, TableSettings};
    use crate::hook;
    use crate::storage::{ConnectionOptions, End, SqliteStorage, Storage};

    fn storage_and_table() -> (SqliteStorage, Table<SqliteStorage>) {
        let storage = SqliteStorage::open(":memory:", &ConnectionOptions::default()).unwrap();
        let name = Identifier::new("data").unwrap();
        let handle = storage.open_table(&name).unwrap();
        let settings = TableSettings::new(crate::NanaSQLite::builder(":memory:").options()).unwrap();
        (storage, Table::new(name, handle, settings, Arc::default()))
    }

    /// A fed batch of `n` rows whose future is polled (`wanted`) or not.
    fn fed(n: usize, wanted: bool) -> (BatchUpdate, Arc<Handoff>) {
        let (mut sink, feed) = row_feed(n);
        for i in 0..n {
            let (key, value) = row(i);
            sink.push(key, value);
        }
        let handoff = sink.finish();
        if wanted {
            handoff.want();
        }
        (BatchUpdate::fed(feed), handoff)
    }

    /// Runs `batch` in a transaction that ends with `end`, or is rolled back if it failed (as
    /// the writer does).
    fn run(
        storage: &mut SqliteStorage,
        table: &Table<SqliteStorage>,
        batch: &mut BatchUpdate,
        end: End,
    ) -> Result<usize> {
        let ran = storage.transaction(|storage| {
            let ran = batch.run(storage, table).map(|applied| applied.output.len());
            let end = if ran.is_ok() { end } else { End::Rollback };
            (ran, end)
        });
        ran.and_then(|ran| ran)
    }

    fn row(i: usize) -> (Box<str>, Arc<CachedValue>) {
        (format!("k{i}").into(), super::super::encode("k", &i).unwrap())
    }

    fn drain(feed: &RowFeed) -> Result<Vec<usize>> {
        let mut sizes = Vec::new();
        while let Some(chunk) = feed.next()? {
            sizes.push(chunk.len());
        }
        Ok(sizes)
    }

    #[test]
    fn rows_arrive_in_chunks_then_end() {
        let (mut sink, feed) = row_feed(300);
        for i in 0..300 {
            let (key, value) = row(i);
            sink.push(key, value);
        }
        let _handoff = sink.finish();
        assert_eq!(drain(&feed).unwrap(), [CHUNK, CHUNK, 300 - 2 * CHUNK]);
        assert_eq!(feed.expected(), 300);
    }

    #[test]
    fn a_failure_reaches_the_writer_after_the_rows_before_it() {
        let (mut sink, feed) = row_feed(2);
        let (key, value) = row(1);
        sink.push(key, value);
        let _handoff = sink.fail(Error::validation("no"));
        assert!(matches!(feed.next(), Err(Error::Validation { .. })), "the unsent partial chunk is dropped");
    }

    #[test]
    fn a_sink_dropped_without_an_end_fails_the_batch() {
        let (mut sink, feed) = row_feed(CHUNK + 1);
        for i in 0..=CHUNK {
            let (key, value) = row(i);
            sink.push(key, value);
        }
        drop(sink);
        assert_eq!(feed.next().unwrap().map(|chunk| chunk.len()), Some(CHUNK));
        assert!(matches!(feed.next(), Err(Error::Panic { .. })), "never an end the caller did not send");
    }

    #[test]
    fn rows_are_deferred_until_wanted() {
        let (sink, feed) = row_feed(0);
        let handoff = sink.finish();
        assert!(!feed.wanted());
        let rows: Arc<[_]> = vec![row(1)].into();
        assert!(matches!(feed.defer(rows), Error::Transaction { .. }));
        assert_eq!(handoff.take_deferred().map(|rows| rows.len()), Some(1));
        assert!(handoff.take_deferred().is_none(), "taken once");
        handoff.want();
        assert!(feed.wanted());
    }

    #[test]
    fn a_fed_batch_runs_again_whole_after_its_group_rolled_back() {
        let (mut storage, table) = storage_and_table();
        let (mut batch, _handoff) = fed(300, true);
        assert_eq!(run(&mut storage, &table, &mut batch, End::Rollback).unwrap(), 0);
        assert_eq!(storage.count(table.handle()).unwrap(), 0);
        run(&mut storage, &table, &mut batch, End::Commit).expect("the rows it kept, stored again");
        assert_eq!(storage.count(table.handle()).unwrap(), 300);
        assert!(storage.get(table.handle(), "k299").unwrap().is_some());
    }

    #[test]
    fn an_unpolled_batch_is_set_aside_and_writes_nothing() {
        let (mut storage, table) = storage_and_table();
        let (mut batch, handoff) = fed(300, false);
        let error = run(&mut storage, &table, &mut batch, End::Commit).unwrap_err();
        assert!(matches!(error, Error::Transaction { .. }), "{error}");
        assert_eq!(storage.count(table.handle()).unwrap(), 0, "the operation failed: its group rolls back");
        let rows = handoff.take_deferred().expect("set aside for the future");
        assert_eq!(rows.len(), 300);
        run(&mut storage, &table, &mut BatchUpdate::of_rows(rows), End::Commit).unwrap();
        assert_eq!(storage.count(table.handle()).unwrap(), 300);
    }

    #[test]
    fn hooks_see_every_row_of_a_fed_batch() {
        let (mut storage, table) = storage_and_table();
        let small = hook::check(|_key: &str, value: &Value| value.as_u64().is_some_and(|n| n < 299));
        AddHooks::new(vec![small.into()]).run(&mut storage, &table).map(|applied| applied.output).unwrap();
        let (mut batch, _handoff) = fed(300, true);
        let error = run(&mut storage, &table, &mut batch, End::Commit).unwrap_err();
        assert!(matches!(&error, Error::Refused { key, .. } if key == "k299"), "{error}");
        let (mut batch, _handoff) = fed(299, true);
        run(&mut storage, &table, &mut batch, End::Commit).unwrap();
        assert_eq!(storage.count(table.handle()).unwrap(), 299);
    }

    #[test]
    fn a_failed_encoding_fails_the_batch_after_its_first_chunks() {
        let (mut storage, table) = storage_and_table();
        let (mut sink, feed) = row_feed(3 * CHUNK);
        for i in 0..2 * CHUNK {
            let (key, value) = row(i);
            sink.push(key, value);
        }
        let _handoff = sink.fail(Error::validation("the third chunk"));
        let error = run(&mut storage, &table, &mut BatchUpdate::fed(feed), End::Commit).unwrap_err();
        assert!(matches!(&error, Error::Validation { message } if message == "the third chunk"), "{error}");
    }
}
