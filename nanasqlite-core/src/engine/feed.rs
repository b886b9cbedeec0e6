//! Rows of a batch handed to the writer while the caller still encodes them.
//!
//! A large batch costs its caller the encoding (serde, about 40% of the whole) and the writer
//! SQLite's inserts. One after the other they add up; handed over in chunks, the writer
//! stores the first rows while the caller encodes the next, on two cores. The batch stays one
//! operation: the writer keeps every row it received, and the cache learns them after the
//! commit, as for any batch.
//!
//! A future does nothing until it is polled, but these rows reach the writer when the call
//! is made. So the batch takes its place among the store's writes when its future is first
//! polled, as every write does. The caller keeps a copy of the rows (a key and a shared value
//! per row: cheap beside the encoding), and at the first poll [`Handoff::want`] decides, under
//! one lock with the writer, which side writes them: the writer commits them if it has not
//! given up yet and no other write was queued after the batch; otherwise the writer gives up,
//! writing nothing, and the future writes its copy as an ordinary batch, queued then. The
//! writer gives up on its own when the last row arrives before the future was polled (a future
//! made and kept, or dropped, without being awaited), and once it has waited for the caller's
//! chunks longer than [`PATIENCE`] in all: it holds the write lock meanwhile, and the caller
//! may even be waiting for it (an iterator that reads the store).
//!
//! Such a batch runs in a write group of its own ([`Operation::groups`]): no other write waits
//! on its caller, or is run again because it gave up.
//!
//! [`Operation::groups`]: super::Operation::groups

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use serde::Serialize;

use super::kv::{EncodedRows, KeyValue, encode_row};
use crate::cache::CachedValue;
use crate::error::{Error, Result};

/// Rows per chunk: the writer starts once the first chunk is encoded (tens of microseconds),
/// and each chunk costs one channel message.
const CHUNK: usize = 128;

/// How long the writer polls for the next chunk before it sleeps: encoding a chunk takes tens
/// of microseconds, and waking a sleeping thread costs about as much, once per chunk.
const SPIN: Duration = Duration::from_micros(50);

/// The longest the writer waits for the caller's chunks, in all, holding the write lock, before
/// it gives up on them.
pub const PATIENCE: Duration = Duration::from_millis(50);

/// Rows the writer reserves room for at most, whatever the caller announced.
const MOST_RESERVED: usize = 1 << 16;

/// What the caller sends: a chunk of rows, the end of them, or why they stopped.
enum Message {
    Rows(EncodedRows),
    End,
    Failed(Error),
}

/// What the writer finds next on a fed batch's channel.
pub(crate) enum Chunk {
    /// More rows.
    Rows(EncodedRows),
    /// The caller sent every row.
    End,
    /// The writer has waited [`PATIENCE`] in all and nothing came.
    Late,
}

/// A channel for the rows of one batch: the caller's end ([`RowSink`]) and the writer's
/// ([`RowFeed`]). `expected` is how many rows the caller announced (a capacity hint).
#[must_use]
pub fn row_feed(expected: usize) -> (RowSink, RowFeed) {
    let (sender, receiver) = mpsc::channel();
    let handoff = Arc::new(Handoff::default());
    let kept = Vec::with_capacity(expected.min(MOST_RESERVED));
    let sink = RowSink { sender, chunk: Vec::with_capacity(CHUNK), kept, handoff: Arc::clone(&handoff) };
    (sink, RowFeed { receiver, handoff, expected, waited: Duration::ZERO })
}

/// What the caller's future and the writer share of a fed batch: which of them writes it.
#[derive(Debug, Default)]
pub struct Handoff {
    state: Mutex<Holder>,
}

/// Which side writes a fed batch.
#[derive(Debug, Default)]
enum Holder {
    /// The writer, if the future is polled before the last row arrives.
    #[default]
    Writer,
    /// The writer: the future was polled while the batch was still the store's last write.
    WriterToCommit,
    /// The future, from its copy of the rows: the writer gave up (or was told to).
    Future,
}

impl Handoff {
    /// Called at the future's first poll: whether the writer commits the batch. It does when
    /// it has not given up yet and `still_last` (no other write of the store was queued since
    /// the batch was), so that the batch is applied in its first poll's place among the writes.
    /// Otherwise the writer gives up, writing nothing, and the future writes its copy of the
    /// rows as an ordinary batch, queued now.
    pub fn want(&self, still_last: bool) -> bool {
        let mut state = self.state.lock();
        if matches!(*state, Holder::Writer) && still_last {
            *state = Holder::WriterToCommit;
            return true;
        }
        *state = Holder::Future;
        false
    }
}

/// The caller's end of a fed batch: rows go in as they are encoded, in chunks.
#[derive(Debug)]
pub struct RowSink {
    sender: mpsc::Sender<Message>,
    chunk: EncodedRows,
    /// Every row sent, for the future to write itself if the writer gives up.
    kept: EncodedRows,
    handoff: Arc<Handoff>,
}

impl RowSink {
    /// Adds one encoded row; a full chunk goes to the writer.
    pub(crate) fn push(&mut self, key: Box<str>, value: Arc<CachedValue>) {
        self.kept.push((key.clone(), Arc::clone(&value)));
        self.chunk.push((key, value));
        if self.chunk.len() == CHUNK {
            let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
            self.send(Message::Rows(chunk));
        }
    }

    /// Encodes `rows` into the batch, then ends it; what the future shares with the writer, and
    /// its copy of the rows.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] naming the first key whose value cannot be encoded; the writer gets a
    /// copy of it, and the batch writes nothing.
    pub fn encode<K: AsRef<str>, V: Serialize>(
        mut self,
        rows: impl IntoIterator<Item = impl KeyValue<K, V>>,
    ) -> Result<(Arc<Handoff>, EncodedRows)> {
        for row in rows {
            match encode_row(row) {
                Ok((key, value)) => self.push(key, value),
                Err(error) => {
                    self.fail(error.clone());
                    return Err(error);
                }
            }
        }
        Ok(self.finish())
    }

    /// Ends the rows; what the future shares with the writer, and its copy of the rows.
    pub(crate) fn finish(mut self) -> (Arc<Handoff>, EncodedRows) {
        let rest = std::mem::take(&mut self.chunk);
        if !rest.is_empty() {
            self.send(Message::Rows(rest));
        }
        self.send(Message::End);
        (self.handoff, self.kept)
    }

    /// Stops the rows with `error` (a value that cannot be encoded): the batch fails with it and
    /// writes nothing.
    pub(crate) fn fail(self, error: Error) {
        self.send(Message::Failed(error));
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
    /// How long the writer has waited for the caller's chunks so far.
    waited: Duration,
}

impl RowFeed {
    /// Room for the rows the caller announced (bounded: the announcement is the caller's).
    pub(crate) fn reserve(&self) -> EncodedRows {
        Vec::with_capacity(self.expected.min(MOST_RESERVED))
    }

    /// The next chunk, waiting for the caller to encode it: polling a moment first, and in all
    /// (over every call) at most [`PATIENCE`].
    ///
    /// # Errors
    ///
    /// The error the caller stopped with, or [`Error::Panic`] if its end went away without
    /// ending the rows (its thread panicked while encoding).
    pub(crate) fn next(&mut self) -> Result<Chunk> {
        let start = Instant::now();
        let message = loop {
            match self.receiver.try_recv() {
                Ok(message) => break Ok(message),
                Err(mpsc::TryRecvError::Empty) if start.elapsed() < SPIN => std::thread::yield_now(),
                Err(mpsc::TryRecvError::Empty) => {
                    let left = PATIENCE.saturating_sub(self.waited + start.elapsed());
                    break self.receiver.recv_timeout(left);
                }
                Err(mpsc::TryRecvError::Disconnected) => break Err(mpsc::RecvTimeoutError::Disconnected),
            }
        };
        self.waited += start.elapsed();
        match message {
            Ok(Message::Rows(rows)) => Ok(Chunk::Rows(rows)),
            Ok(Message::End) => Ok(Chunk::End),
            Ok(Message::Failed(error)) => Err(error),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(Chunk::Late),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(stopped()),
        }
    }

    /// Every row, with the last one in: the rows to commit if the caller's future asked the
    /// writer to ([`Handoff::want`]); otherwise the writer gives up, and the error fails the
    /// operation (so that nothing of it is written; the future does not report it).
    pub(crate) fn commit_or_give_up(&self, rows: EncodedRows) -> Result<EncodedRows> {
        let mut state = self.handoff.state.lock();
        if matches!(*state, Holder::WriterToCommit) {
            return Ok(rows);
        }
        *state = Holder::Future;
        Err(given_up())
    }

    /// Gives up on a caller too slow to send its rows; the error fails the operation.
    pub(crate) fn give_up_late(&self) -> Error {
        *self.handoff.state.lock() = Holder::Future;
        given_up()
    }
}

/// The error a fed batch's operation fails with when the writer gives up: it rolls back what
/// the writer stored; the future, which writes its copy of the rows, never reports it.
fn given_up() -> Error {
    Error::Transaction { message: "the writer gave the batch up to its future".into() }
}

/// The caller's end went away without ending the rows.
fn stopped() -> Error {
    Error::Panic { message: "the caller stopped while encoding a batch".into() }
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

    /// A fed batch of `n` rows whose future is polled (`wanted`) or not, and the future's copy
    /// of its rows.
    fn fed(n: usize, wanted: bool) -> (BatchUpdate, EncodedRows) {
        let (mut sink, feed) = row_feed(n);
        push(&mut sink, 0..n);
        let (handoff, kept) = sink.finish();
        if wanted {
            assert!(handoff.want(true), "the writer commits");
        }
        (BatchUpdate::fed(feed), kept)
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

    /// Pushes rows `range` into `sink`.
    fn push(sink: &mut RowSink, range: std::ops::Range<usize>) {
        for i in range {
            let (key, value) = row(i);
            sink.push(key, value);
        }
    }

    fn drain(feed: &mut RowFeed) -> Result<Vec<usize>> {
        let mut sizes = Vec::new();
        loop {
            match feed.next()? {
                Chunk::Rows(chunk) => sizes.push(chunk.len()),
                Chunk::End => return Ok(sizes),
                Chunk::Late => panic!("every chunk was sent before"),
            }
        }
    }

    #[test]
    fn rows_arrive_in_chunks_then_end() {
        let (mut sink, mut feed) = row_feed(300);
        push(&mut sink, 0..300);
        let _handoff = sink.finish();
        assert_eq!(drain(&mut feed).unwrap(), [CHUNK, CHUNK, 300 - 2 * CHUNK]);
        assert_eq!(feed.reserve().capacity(), 300);
        assert_eq!(row_feed(usize::MAX).1.reserve().capacity(), MOST_RESERVED, "an announcement is only a hint");
    }

    #[test]
    fn a_failure_reaches_the_writer_and_the_unsent_rows_are_dropped() {
        let (mut sink, mut feed) = row_feed(2);
        push(&mut sink, 0..1);
        sink.fail(Error::validation("no"));
        assert!(matches!(feed.next(), Err(Error::Validation { .. })));
    }

    #[test]
    fn a_sink_dropped_without_an_end_fails_the_batch() {
        let (mut sink, mut feed) = row_feed(CHUNK + 1);
        push(&mut sink, 0..CHUNK + 1);
        drop(sink);
        assert!(matches!(feed.next(), Ok(Chunk::Rows(chunk)) if chunk.len() == CHUNK));
        assert!(matches!(feed.next(), Err(Error::Panic { .. })), "never an end the caller did not send");
    }

    #[test]
    fn the_first_poll_and_the_writer_agree_on_who_writes_the_batch() {
        let rows = || vec![row(0), row(1)];
        let (_sink, feed) = row_feed(2);
        assert!(feed.handoff.want(true), "polled first, still the last write: the writer commits");
        assert_eq!(feed.commit_or_give_up(rows()).unwrap().len(), 2);

        let (_sink, feed) = row_feed(2);
        assert!(!feed.handoff.want(false), "a write was queued after it: the future writes it");
        assert!(matches!(feed.commit_or_give_up(rows()), Err(Error::Transaction { .. })), "the writer gives up");

        let (_sink, feed) = row_feed(2);
        assert!(feed.commit_or_give_up(rows()).is_err(), "not polled when the last row came: given up");
        assert!(!feed.handoff.want(true), "so the future writes it");
    }

    #[test]
    fn a_fed_batch_runs_again_whole_after_its_group_rolled_back() {
        let (mut storage, table) = storage_and_table();
        let (mut batch, _kept) = fed(300, true);
        assert!(!Operation::<SqliteStorage>::groups(&batch), "it waits on its caller: alone");
        assert_eq!(run(&mut storage, &table, &mut batch, End::Rollback).unwrap(), 0);
        assert_eq!(storage.count(table.handle()).unwrap(), 0);
        run(&mut storage, &table, &mut batch, End::Commit).expect("the rows it kept, stored again");
        assert_eq!(storage.count(table.handle()).unwrap(), 300);
        assert!(storage.get(table.handle(), "k299").unwrap().is_some());
    }

    #[test]
    fn an_unpolled_batch_is_given_up_and_its_future_writes_its_copy() {
        let (mut storage, table) = storage_and_table();
        let (mut batch, kept) = fed(300, false);
        let error = run(&mut storage, &table, &mut batch, End::Commit).unwrap_err();
        assert!(matches!(error, Error::Transaction { .. }), "{error}");
        assert_eq!(storage.count(table.handle()).unwrap(), 0, "the operation failed: its group rolls back");
        assert_eq!(kept.len(), 300);
        run(&mut storage, &table, &mut BatchUpdate::new(kept), End::Commit).unwrap();
        assert_eq!(storage.count(table.handle()).unwrap(), 300);
    }

    #[test]
    fn the_writer_gives_up_on_a_caller_too_slow() {
        let (mut storage, table) = storage_and_table();
        let (mut sink, feed) = row_feed(3 * CHUNK);
        push(&mut sink, 0..CHUNK);
        let mut batch = BatchUpdate::fed(feed);
        // The second chunk never comes while the writer waits (it is pushed after): the writer
        // gives up once its patience is spent, whatever the machine's speed.
        let error = run(&mut storage, &table, &mut batch, End::Commit).unwrap_err();
        assert!(matches!(error, Error::Transaction { .. }), "{error}");
        assert_eq!(storage.count(table.handle()).unwrap(), 0);
        push(&mut sink, CHUNK..3 * CHUNK);
        let (handoff, kept) = sink.finish();
        assert!(!handoff.want(true), "the future writes its copy");
        let keys: Vec<&str> = kept.iter().map(|(key, _)| &**key).collect();
        assert_eq!(keys.len(), 3 * CHUNK);
        assert_eq!((keys[0], keys[3 * CHUNK - 1]), ("k0", &*format!("k{}", 3 * CHUNK - 1)), "in order");
    }

    #[test]
    fn the_writer_waits_for_a_slow_caller_patience_in_all_not_per_chunk() {
        let (mut storage, table) = storage_and_table();
        let (mut sink, feed) = row_feed(3 * CHUNK);
        push(&mut sink, 0..CHUNK);
        assert!(sink.handoff.want(true)); // polled: only waiting too long makes the writer give up
        let pause = PATIENCE * 3 / 5; // each wait alone is within patience, two are not
        let caller = std::thread::spawn(move || {
            for chunk in 1..3 {
                std::thread::sleep(pause);
                push(&mut sink, chunk * CHUNK..(chunk + 1) * CHUNK);
            }
            sink.finish()
        });
        let error = run(&mut storage, &table, &mut BatchUpdate::fed(feed), End::Commit).unwrap_err();
        assert!(matches!(error, Error::Transaction { .. }), "{error}");
        let (handoff, kept) = caller.join().unwrap();
        assert!(!handoff.want(true), "given up: the future writes its copy");
        assert_eq!(kept.len(), 3 * CHUNK, "with the chunks that came late");
    }

    #[test]
    fn hooks_see_every_row_of_a_fed_batch() {
        let (mut storage, table) = storage_and_table();
        let small = hook::check(|_key: &str, value: &Value| value.as_u64().is_some_and(|n| n < 299));
        AddHooks::new(vec![small.into()]).run(&mut storage, &table).map(|applied| applied.output).unwrap();
        let (mut batch, _kept) = fed(300, true);
        let error = run(&mut storage, &table, &mut batch, End::Commit).unwrap_err();
        assert!(matches!(&error, Error::Refused { key, .. } if key == "k299"), "{error}");
        let (mut batch, _kept) = fed(299, true);
        run(&mut storage, &table, &mut batch, End::Commit).unwrap();
        assert_eq!(storage.count(table.handle()).unwrap(), 299);
    }

    #[test]
    fn a_failed_encoding_fails_the_batch_after_its_first_chunks() {
        let (mut storage, table) = storage_and_table();
        let (mut sink, feed) = row_feed(3 * CHUNK);
        push(&mut sink, 0..2 * CHUNK);
        sink.fail(Error::validation("the third chunk"));
        let error = run(&mut storage, &table, &mut BatchUpdate::fed(feed), End::Commit).unwrap_err();
        assert!(matches!(&error, Error::Validation { message } if message == "the third chunk"), "{error}");
        assert_eq!(storage.count(table.handle()).unwrap(), 0);
    }
}
