//! [`AsyncTransaction`]: a write transaction that holds the writer across awaits.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_channel::oneshot;
use nanasqlite_core::Transaction;
use nanasqlite_core::engine::{self, Front, SqlFront};
use nanasqlite_core::sql::{Query, Row, SqlValue};
use nanasqlite_core::storage::{End, SqliteStorage, Storage};
use nanasqlite_core::{Error, Result};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::budget::Pending;
use crate::pool::TransactionSlot;
use crate::store::AsyncNanaSQLite;

/// A step of a `begin()` transaction, run on the writer.
type TransactionStep<S> = Box<dyn for<'a> FnOnce(&Transaction<'a, S>) + Send>;

enum Command<S: Storage> {
    Run(TransactionStep<S>),
    Commit,
    Rollback,
}

/// Serves a `begin()` transaction's steps on the writer, inside the transaction, until the
/// guard commits or rolls back (a dropped guard rolls back); says how the transaction ends.
/// The transaction's key/value writes are applied to the cache after the commit, before the
/// guard's `commit` returns.
fn serve<S: Storage>(
    tx: &Transaction<'_, S>,
    started: oneshot::Sender<()>,
    commands: &flume::Receiver<Command<S>>,
) -> End {
    if started.send(()).is_err() {
        return End::Rollback; // the caller is gone already
    }
    loop {
        match commands.recv() {
            Ok(Command::Run(step)) => step(tx),
            Ok(Command::Commit) => return End::Commit,
            Ok(Command::Rollback) | Err(_) => return End::Rollback,
        }
    }
}

/// Which of `begun` and `finished` came first.
enum Either<B, F> {
    Begun(B),
    Ended(F),
}

/// Waits for `begun` or `finished`, whichever is first: a `begin()` that times out in the queue
/// is answered by the deadline thread through `finished` while `begun` waits on.
async fn first_of<B, F: Future + Unpin>(
    mut begun: oneshot::Receiver<B>,
    finished: &mut F,
) -> Either<Result<B, oneshot::Canceled>, F::Output> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(begun) = Pin::new(&mut begun).poll(cx) {
            return Poll::Ready(Either::Begun(begun));
        }
        Pin::new(&mut *finished).poll(cx).map(Either::Ended)
    })
    .await
}

/// A write transaction holding the writer, from [`AsyncNanaSQLite::begin`]. Its methods run on
/// the writer inside the transaction; [`commit`](Self::commit) or [`rollback`](Self::rollback)
/// end it, and dropping it rolls back. Key/value writes reach the cache only once committed.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let db = nanasqlite_pool::AsyncNanaSQLite::open(":memory:").await?;
/// let tx = db.begin().await?;
/// tx.set("a", &1).await?;
/// assert_eq!(tx.get::<i32>("a").await?, Some(1));
/// tx.commit().await?;
/// assert_eq!(db.get::<i32>("a").await?, Some(1));
///
/// let tx = db.begin().await?;
/// tx.set("a", &2).await?;
/// drop(tx); // rolled back
/// assert_eq!(db.get_fresh::<i32>("a").await?, Some(1));
/// # Ok::<(), nanasqlite_core::Error>(())
/// # }).unwrap();
/// ```
#[must_use = "dropping a transaction rolls it back"]
pub struct AsyncTransaction<S: Storage = SqliteStorage> {
    commands: flume::Sender<Command<S>>,
    /// The holding job's answer: how the transaction ended. In a mutex only so that the guard
    /// is `Sync` (a boxed future is not); it is taken once, by value, when the guard ends.
    finished: Mutex<Pending<()>>,
    /// Lifts the database's "transaction open" mark when the guard goes.
    _slot: TransactionSlot<S>,
}

impl<S: Storage> fmt::Debug for AsyncTransaction<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncTransaction").finish_non_exhaustive()
    }
}

impl<S: Storage> AsyncTransaction<S> {
    /// Queues the job that holds the writer (after committing what write-back mode staged),
    /// and waits until its `BEGIN` has run. If this future is dropped first, the mark is lifted
    /// and the job rolls back.
    pub(crate) fn begin(store: &AsyncNanaSQLite<S>) -> Pending<Self> {
        let (checked, store) = (store.ensure_open(), store.clone());
        Pending::later(async move {
            checked?;
            let slot = store.pool.open_transaction().ok_or_else(|| Error::Transaction {
                message: "a transaction is already open on this database".to_owned(),
            })?;
            let (commands, queue) = flume::unbounded();
            let (started, begun) = oneshot::channel();
            let mut finished = store.transaction_ending(move |tx| (Ok(()), serve(tx, started, &queue)));
            match first_of(begun, &mut finished).await {
                Either::Begun(Ok(())) => Ok(Self { commands, finished: Mutex::new(finished), _slot: slot }),
                // The job ended without beginning (it timed out, or the store closed): its answer says why.
                Either::Begun(Err(_)) => Err(finished.await.err().unwrap_or(Error::Closed)),
                Either::Ended(answer) => Err(answer.err().unwrap_or(Error::Closed)),
            }
        })
    }

    /// Runs `work` on the writer inside the transaction: any [`Transaction`] method.
    ///
    /// # Errors
    ///
    /// `work`'s error; [`Error::Panic`] if it panicked (the transaction stays open);
    /// [`Error::Closed`] if the transaction has ended.
    pub fn run<R, F>(&self, work: F) -> Pending<R>
    where
        F: FnOnce(&Transaction<'_, S>) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let step: TransactionStep<S> = Box::new(move |tx| {
            let _ = reply.send(engine::contained(|| work(tx)));
        });
        let sent = self.commands.send(Command::Run(step));
        Pending::later(async move {
            sent.map_err(|_| Error::Closed)?;
            answer.await.map_err(|_| Error::Closed)?
        })
    }

    /// Stores `value` under `key` (encoded on the caller's side).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`], or as [`run`](Self::run).
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Pending<()> {
        let (key, value) = (key.to_owned(), engine::encode(key, value));
        let run = value.map(|value| self.run(move |tx| tx.set_encoded(&key, &value)));
        Pending::later(async move { run?.await })
    }

    /// The value of `key` as the transaction sees it.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`], or as [`run`](Self::run).
    pub fn get<T: DeserializeOwned + Send + 'static>(&self, key: &str) -> Pending<Option<T>> {
        let key = key.to_owned();
        self.run(move |tx| tx.get(&key))
    }

    /// Deletes `key`; `false` if it was absent.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub fn delete(&self, key: &str) -> Pending<bool> {
        let key = key.to_owned();
        self.run(move |tx| tx.delete(&key))
    }

    /// Runs one SQL statement of yours inside the transaction.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub fn execute(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Pending<usize> {
        let (sql, params) = (sql.to_owned(), params.as_ref().to_vec());
        self.run(move |tx| tx.execute(&sql, &params))
    }

    /// Inserts a row into `table` inside the transaction; returns its rowid.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::sql_insert`].
    pub fn sql_insert<T: Serialize + ?Sized>(&self, table: &str, data: &T) -> Pending<i64> {
        let (encoded, table) = (nanasqlite_core::engine::encode_record(table, data), table.to_owned());
        let run = encoded.map(|data| self.run(move |tx| tx.sql_insert(&table, &data)));
        Pending::later(async move { run?.await })
    }

    /// The rows `query` selects, as the transaction sees them.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::query`].
    pub fn query(&self, query: Query) -> Pending<Vec<Row>> {
        self.run(move |tx| tx.query(&query))
    }

    /// Commits: resolves once the transaction's writes are durable and cached.
    ///
    /// # Errors
    ///
    /// SQLite's error (the transaction is then rolled back); [`Error::Closed`].
    pub fn commit(self) -> Pending<()> {
        self.end(Command::Commit)
    }

    /// Rolls back everything the transaction did.
    ///
    /// # Errors
    ///
    /// SQLite's error; [`Error::Closed`].
    pub fn rollback(self) -> Pending<()> {
        self.end(Command::Rollback)
    }

    fn end(self, command: Command<S>) -> Pending<()> {
        let sent = self.commands.send(command);
        Pending::later(async move {
            sent.map_err(|_| Error::Closed)?;
            let Self { finished, _slot, .. } = self;
            finished.into_inner().await
        })
    }
}
