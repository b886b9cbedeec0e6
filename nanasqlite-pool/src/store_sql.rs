//! The SQL helpers and transactions of [`AsyncNanaSQLite`]: each runs [`SqlOps`] on a lane.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use futures_channel::oneshot;
use nanasqlite_core::cache::{Cache, CachedValue};
use nanasqlite_core::sql::{ColumnInfo, IndexInfo, Query, Row, SqlOps, SqlPolicy, SqlValue};
use nanasqlite_core::storage::{SqliteStorage, SqliteTable, Storage};
use nanasqlite_core::{Error, Result, Transaction, backup};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::job::{Kind, Outcome, panic_error};
use crate::pool::Pool;
use crate::store::{AsyncNanaSQLite, Shared};

/// Encodes a record on the caller's side, naming the table on failure.
fn record<T: Serialize + ?Sized>(table: &str, data: &T) -> Result<Value> {
    serde_json::to_value(data).map_err(|source| Error::Encode { key: table.to_owned(), source })
}

impl AsyncNanaSQLite {
    /// Runs `work` with the SQL helpers on a lane (`kind` says which).
    fn sql<R, F>(&self, op: &'static str, kind: Kind, work: F) -> impl Future<Output = Result<R>> + Send + use<R, F>
    where
        F: Fn(SqlOps<'_>) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let policy = Arc::clone(&self.shared.policy);
        self.shared
            .job(op, kind, move |storage, _, _| work(SqlOps::new(storage.connection(), &policy)).map(Outcome::plain))
    }

    /// As [`NanaSQLite::create_table`](nanasqlite_core::NanaSQLite::create_table).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad name or type (nothing is created); SQLite's error.
    pub fn create_table(
        &self,
        name: &str,
        columns: &[(&str, &str)],
    ) -> impl Future<Output = Result<()>> + Send + use<> {
        let name = name.to_owned();
        let columns: Vec<(String, String)> = columns.iter().map(|(c, t)| ((*c).to_owned(), (*t).to_owned())).collect();
        self.sql("create_table", Kind::Write, move |sql| {
            let columns: Vec<(&str, &str)> = columns.iter().map(|(c, t)| (c.as_str(), t.as_str())).collect();
            sql.create_table(&name, &columns)
        })
    }

    /// As [`NanaSQLite::create_index`](nanasqlite_core::NanaSQLite::create_index).
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn create_index(
        &self,
        name: &str,
        table: &str,
        columns: &[&str],
        unique: bool,
    ) -> impl Future<Output = Result<()>> + Send + use<> {
        let (name, table) = (name.to_owned(), table.to_owned());
        let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
        self.sql("create_index", Kind::Write, move |sql| {
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            sql.create_index(&name, &table, &columns, unique)
        })
    }

    /// Drops table `name` if it exists.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn drop_table(&self, name: &str) -> impl Future<Output = Result<()>> + Send + use<> {
        let name = name.to_owned();
        self.sql("drop_table", Kind::Write, move |sql| sql.drop_table(&name))
    }

    /// Drops index `name` if it exists.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn drop_index(&self, name: &str) -> impl Future<Output = Result<()>> + Send + use<> {
        let name = name.to_owned();
        self.sql("drop_index", Kind::Write, move |sql| sql.drop_index(&name))
    }

    /// Whether table `name` exists.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], SQLite's error.
    pub fn table_exists(&self, name: &str) -> impl Future<Output = Result<bool>> + Send + use<> {
        let name = name.to_owned();
        self.sql("table_exists", Kind::Read, move |sql| sql.table_exists(&name))
    }

    /// The tables of the file, by name.
    ///
    /// # Errors
    ///
    /// As [`table_exists`](Self::table_exists).
    pub fn list_tables(&self) -> impl Future<Output = Result<Vec<String>>> + Send + use<> {
        self.sql("list_tables", Kind::Read, |sql| sql.list_tables())
    }

    /// The columns of `table`.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn get_table_schema(&self, table: &str) -> impl Future<Output = Result<Vec<ColumnInfo>>> + Send + use<> {
        let table = table.to_owned();
        self.sql("get_table_schema", Kind::Read, move |sql| sql.get_table_schema(&table))
    }

    /// The indexes of `table` (every table's with `None`).
    ///
    /// # Errors
    ///
    /// As [`table_exists`](Self::table_exists).
    pub fn list_indexes(&self, table: Option<&str>) -> impl Future<Output = Result<Vec<IndexInfo>>> + Send + use<> {
        let table = table.map(str::to_owned);
        self.sql("list_indexes", Kind::Read, move |sql| sql.list_indexes(table.as_deref()))
    }

    /// Adds a column to `table`, with an optional default.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn alter_table_add_column(
        &self,
        table: &str,
        column: &str,
        column_type: &str,
        default: Option<SqlValue>,
    ) -> impl Future<Output = Result<()>> + Send + use<> {
        let (table, column, column_type) = (table.to_owned(), column.to_owned(), column_type.to_owned());
        self.sql("alter_table_add_column", Kind::Write, move |sql| {
            sql.alter_table_add_column(&table, &column, &column_type, default.as_ref())
        })
    }

    /// Inserts `data` (a struct or map of columns, encoded on the caller's side) into `table`;
    /// returns the new rowid.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn sql_insert<T: Serialize + ?Sized>(
        &self,
        table: &str,
        data: &T,
    ) -> impl Future<Output = Result<i64>> + Send + use<T> {
        let (encoded, table) = (record(table, data), table.to_owned());
        let this = self.clone();
        async move {
            let data = encoded?;
            this.sql("sql_insert", Kind::Write, move |sql| sql.sql_insert(&table, &data)).await
        }
    }

    /// Sets `data`'s columns on the rows matching `condition`; returns how many changed.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad name or condition; SQLite's error.
    pub fn sql_update<T: Serialize + ?Sized>(
        &self,
        table: &str,
        data: &T,
        condition: &str,
        params: Vec<SqlValue>,
    ) -> impl Future<Output = Result<usize>> + Send + use<T> {
        let (encoded, table, condition) = (record(table, data), table.to_owned(), condition.to_owned());
        let this = self.clone();
        async move {
            let data = encoded?;
            this.sql("sql_update", Kind::Write, move |sql| sql.sql_update(&table, &data, &condition, &params)).await
        }
    }

    /// Deletes the rows of `table` matching `condition`; returns how many.
    ///
    /// # Errors
    ///
    /// As [`sql_update`](Self::sql_update).
    pub fn sql_delete(
        &self,
        table: &str,
        condition: &str,
        params: Vec<SqlValue>,
    ) -> impl Future<Output = Result<usize>> + Send + use<> {
        let (table, condition) = (table.to_owned(), condition.to_owned());
        self.sql("sql_delete", Kind::Write, move |sql| sql.sql_delete(&table, &condition, &params))
    }

    /// Inserts `data` or updates the row it conflicts with on `conflict` columns; returns the rowid.
    ///
    /// # Errors
    ///
    /// As [`create_table`](Self::create_table).
    pub fn upsert<T: Serialize + ?Sized>(
        &self,
        table: &str,
        data: &T,
        conflict: &[&str],
    ) -> impl Future<Output = Result<i64>> + Send + use<T> {
        let (encoded, table) = (record(table, data), table.to_owned());
        let conflict: Vec<String> = conflict.iter().map(|c| (*c).to_owned()).collect();
        let this = self.clone();
        async move {
            let data = encoded?;
            this.sql("upsert", Kind::Write, move |sql| {
                let conflict: Vec<&str> = conflict.iter().map(String::as_str).collect();
                sql.upsert(&table, &data, &conflict)
            })
            .await
        }
    }

    /// The rows `query` selects (on a reader when there is one).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad part (nothing runs); SQLite's error.
    pub fn query(&self, query: Query) -> impl Future<Output = Result<Vec<Row>>> + Send + use<> {
        self.sql("query", Kind::Read, move |sql| sql.query(&query))
    }

    /// The rows `query` selects, deserialised into `T` on the caller's side.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query), and [`Error::Decode`] for a row that does not fit `T`.
    pub fn query_as<T: DeserializeOwned + Send + 'static>(
        &self,
        query: Query,
    ) -> impl Future<Output = Result<Vec<T>>> + Send + use<T> {
        let rows = self.query(query);
        async move { rows.await?.iter().map(Row::deserialize).collect() }
    }

    /// The number of rows `query` selects.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn count(&self, query: Query) -> impl Future<Output = Result<u64>> + Send + use<> {
        self.sql("count", Kind::Read, move |sql| sql.count(&query))
    }

    /// Whether `query` selects any row.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn exists(&self, query: Query) -> impl Future<Output = Result<bool>> + Send + use<> {
        self.sql("exists", Kind::Read, move |sql| sql.exists(&query))
    }

    /// Runs one SQL statement of yours on the writer; returns the rows changed.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn execute(&self, sql: &str, params: Vec<SqlValue>) -> impl Future<Output = Result<usize>> + Send + use<> {
        let sql = sql.to_owned();
        self.sql("execute", Kind::Write, move |ops| ops.execute(&sql, &params))
    }

    /// Runs `sql` once per parameter list, atomically; returns the rows changed.
    ///
    /// # Errors
    ///
    /// SQLite's error; then nothing is changed.
    pub fn execute_many(
        &self,
        sql: &str,
        params: Vec<Vec<SqlValue>>,
    ) -> impl Future<Output = Result<usize>> + Send + use<> {
        let sql = sql.to_owned();
        self.sql("execute_many", Kind::Write, move |ops| ops.execute_many(&sql, &params))
    }

    /// The first row of your query (on a reader when there is one).
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn fetch_one(
        &self,
        sql: &str,
        params: Vec<SqlValue>,
    ) -> impl Future<Output = Result<Option<Row>>> + Send + use<> {
        let sql = sql.to_owned();
        self.sql("fetch_one", Kind::Read, move |ops| ops.fetch_one(&sql, &params))
    }

    /// Every row of your query (on a reader when there is one).
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn fetch_all(&self, sql: &str, params: Vec<SqlValue>) -> impl Future<Output = Result<Vec<Row>>> + Send + use<> {
        let sql = sql.to_owned();
        self.sql("fetch_all", Kind::Read, move |ops| ops.fetch_all(&sql, &params))
    }

    /// Rebuilds the file to reclaim free space (alone on the writer).
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn vacuum(&self) -> impl Future<Output = Result<()>> + Send + use<> {
        self.sql("vacuum", Kind::Exclusive, |sql| sql.vacuum())
    }

    /// Reads or sets one of the whitelisted pragmas, on the writer's connection.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a pragma or value not allowed; SQLite's error.
    pub fn pragma(
        &self,
        name: &str,
        value: Option<SqlValue>,
    ) -> impl Future<Output = Result<Option<SqlValue>>> + Send + use<> {
        let name = name.to_owned();
        self.sql("pragma", Kind::Exclusive, move |sql| sql.pragma(&name, value.as_ref()))
    }

    /// The size of the database file in bytes (0 in memory).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], or the file system's error.
    pub fn get_db_size(&self) -> Result<u64> {
        self.ensure_open()?;
        nanasqlite_core::db_size(self.shared.pool.path())
    }

    /// As [`NanaSQLite::backup`](nanasqlite_core::NanaSQLite::backup): copies the database
    /// online into `dest`, atomically and verified. Runs on a reader when there is one, so
    /// writes go on meanwhile.
    ///
    /// # Errors
    ///
    /// As the sync store's.
    pub fn backup<P: AsRef<Path>>(&self, dest: P) -> impl Future<Output = Result<()>> + Send + use<P> {
        let (dest, path) = (dest.as_ref().to_path_buf(), self.shared.pool.path().to_path_buf());
        self.shared.job("backup", Kind::Read, move |storage, _, _| {
            backup::check_destination(&path, &dest)?;
            backup::copy_to(storage.connection(), &dest).map(Outcome::plain)
        })
    }

    /// As [`NanaSQLite::restore`](nanasqlite_core::NanaSQLite::restore): replaces the whole
    /// database with `source` (checked and copied first), alone on the writer; the tables of
    /// every handle are recreated, every cache emptied, and the readers reopen the file before
    /// their next read.
    ///
    /// # Errors
    ///
    /// As the sync store's; [`Error::Transaction`] while a `begin()` transaction is open.
    pub fn restore<P: AsRef<Path>>(&self, source: P) -> impl Future<Output = Result<()>> + Send + use<P> {
        let (source, shared) = (source.as_ref().to_path_buf(), Arc::clone(&self.shared));
        async move {
            if shared.pool.in_transaction() {
                return Err(Error::Transaction { message: "cannot restore during a transaction".to_owned() });
            }
            let pool = Arc::clone(&shared.pool);
            shared
                .job("restore", Kind::Exclusive, move |storage, _, _| {
                    swap_file(&pool, storage, &source)?;
                    let tables = pool.tables();
                    for (name, _) in &tables {
                        storage.open_table(name)?;
                    }
                    pool.file_replaced();
                    Ok(Outcome::then((), move || tables.iter().for_each(|(_, cache)| cache.clear())))
                })
                .await
        }
    }

    /// Runs `work` in one write transaction on the writer: committed if it returns `Ok`,
    /// rolled back if it returns `Err` or panics. Key/value writes reach the cache only once
    /// committed.
    ///
    /// # Errors
    ///
    /// `work`'s error, or SQLite's when the transaction cannot begin or commit.
    pub fn transaction<R, F>(&self, work: F) -> impl Future<Output = Result<R>> + Send + use<R, F>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let policy = Arc::clone(&self.shared.policy);
        let work = Mutex::new(Some(work));
        self.shared.job("transaction", Kind::Exclusive, move |storage, table, cache| {
            let work = work.lock().take().ok_or(Error::Closed)?;
            let (value, writes) = storage.transaction(|storage| {
                let tx = Transaction::new(storage, table, &policy);
                let value = work(&tx)?;
                Ok((value, tx.into_cache_writes()))
            })?;
            let cache = Arc::clone(cache);
            Ok(Outcome::then(value, move || apply(&cache, writes)))
        })
    }

    /// Opens a write transaction that holds the writer across awaits, until
    /// [`commit`](AsyncTransaction::commit), [`rollback`](AsyncTransaction::rollback), or the
    /// guard being dropped (which rolls back). Other writes wait meanwhile; inside it, use the
    /// guard's methods: a write through the store itself would wait for the guard.
    ///
    /// # Errors
    ///
    /// [`Error::Transaction`] when a `begin()` transaction is already open on this database;
    /// [`Error::Closed`]; SQLite's error when the transaction cannot begin.
    pub fn begin(&self) -> impl Future<Output = Result<AsyncTransaction>> + Send + use<> {
        let (checked, shared) = (self.ensure_open(), Arc::clone(&self.shared));
        async move {
            checked?;
            if !shared.pool.open_transaction() {
                return Err(Error::Transaction {
                    message: "a transaction is already open on this database".to_owned(),
                });
            }
            let opened = start_transaction(&shared).await;
            if opened.is_err() {
                shared.pool.end_transaction();
            }
            opened
        }
    }
}

/// On the writer: replaces the file under `storage` with a checked copy of `source`.
fn swap_file(pool: &Pool, storage: &mut SqliteStorage, source: &Path) -> Result<()> {
    let path = pool.path();
    if backup::is_memory(path) {
        return Err(Error::Validation { message: "cannot restore into an in-memory database".to_owned() });
    }
    let options = pool.connection_options();
    let live = std::mem::replace(storage, SqliteStorage::open(":memory:", options)?);
    let (reopened, replaced) = backup::replace_database(live, path, source, options);
    match reopened {
        Some(reopened) => *storage = reopened,
        None => pool.fail(),
    }
    replaced
}

fn apply(cache: &Cache, writes: Vec<(String, Option<Arc<CachedValue>>)>) {
    for (key, value) in writes {
        cache.write(&key, value);
    }
}

/// A step of a `begin()` transaction, run on the writer.
type Step = Box<dyn FnOnce(&Transaction<'_>) + Send>;

enum Command {
    Run(Step),
    Commit(oneshot::Sender<Result<()>>),
    Rollback(oneshot::Sender<Result<()>>),
}

/// Queues the job that holds the writer, and waits until its `BEGIN` has run.
async fn start_transaction(shared: &Arc<Shared>) -> Result<AsyncTransaction> {
    let (commands, queue) = flume::unbounded::<Command>();
    let (started, begun) = oneshot::channel::<Result<()>>();
    let handover = Mutex::new(Some((queue, started)));
    let (table, cache, policy) = (shared.table.clone(), Arc::clone(&shared.cache), Arc::clone(&shared.policy));
    let span = tracing::debug_span!("nanasqlite", op = "begin");
    let mut finished = shared
        .pool
        .submit(Kind::Exclusive, span, move |storage| {
            if let Some((queue, started)) = handover.lock().take() {
                hold_writer(storage, &table, &cache, &policy, &queue, started);
            }
            Ok(Outcome::plain(()))
        })
        .await?;
    match begun.await {
        Ok(begun) => begun?,
        // The job ended without starting (timed out, or the store closed): its answer says why.
        Err(_) => return Err((&mut finished).await.map_err(|_| Error::Closed)?.err().unwrap_or(Error::Closed)),
    }
    Ok(AsyncTransaction { commands, _finished: finished, shared: Arc::clone(shared), done: false })
}

/// On the writer: begins, serves the guard's steps, then commits or rolls back. A guard that
/// is dropped (its channel closed) rolls back.
fn hold_writer(
    storage: &mut SqliteStorage,
    table: &SqliteTable,
    cache: &Cache,
    policy: &SqlPolicy,
    queue: &flume::Receiver<Command>,
    started: oneshot::Sender<Result<()>>,
) {
    if let Err(error) = storage.begin_write() {
        let _ = started.send(Err(error));
        return;
    }
    if started.send(Ok(())).is_err() {
        let _ = storage.rollback(); // the caller is gone already
        return;
    }
    let tx = Transaction::new(storage, table, policy);
    let end = loop {
        match queue.recv() {
            Ok(Command::Run(step)) => step(&tx),
            Ok(Command::Commit(reply)) => break Some((true, reply)),
            Ok(Command::Rollback(reply)) => break Some((false, reply)),
            Err(_) => break None,
        }
    };
    let writes = tx.into_cache_writes();
    match end {
        Some((true, reply)) => {
            let committed = storage.commit();
            if committed.is_ok() {
                apply(cache, writes);
            }
            let _ = reply.send(committed);
        }
        Some((false, reply)) => {
            let _ = reply.send(storage.rollback());
        }
        None => {
            let _ = storage.rollback();
        }
    }
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
pub struct AsyncTransaction {
    commands: flume::Sender<Command>,
    /// Kept so the holding job is not taken for abandoned; its answer is not needed.
    _finished: oneshot::Receiver<Result<()>>,
    shared: Arc<Shared>,
    done: bool,
}

impl std::fmt::Debug for AsyncTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncTransaction").field("done", &self.done).finish_non_exhaustive()
    }
}

impl AsyncTransaction {
    /// Runs `work` on the writer inside the transaction: any [`Transaction`] method.
    ///
    /// # Errors
    ///
    /// `work`'s error; [`Error::Panic`] if it panicked (the transaction stays open);
    /// [`Error::Closed`] if the transaction has ended.
    pub fn run<R, F>(&self, work: F) -> impl Future<Output = Result<R>> + Send + use<R, F>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let step: Step = Box::new(move |tx| {
            let result = panic::catch_unwind(AssertUnwindSafe(|| work(tx)));
            let _ = reply.send(result.unwrap_or_else(|panic| Err(panic_error(panic.as_ref()))));
        });
        let sent = self.commands.send(Command::Run(step));
        async move {
            sent.map_err(|_| Error::Closed)?;
            answer.await.map_err(|_| Error::Closed)?
        }
    }

    /// Stores `value` under `key` (encoded on the caller's side).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`], or as [`run`](Self::run).
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> impl Future<Output = Result<()>> + Send + use<T> {
        let (encoded, key) = (record(key, value), key.to_owned());
        let run = encoded.map(|value| self.run(move |tx| tx.set(&key, &value)));
        async move { run?.await }
    }

    /// The value of `key` as the transaction sees it.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`], or as [`run`](Self::run).
    pub fn get<T: DeserializeOwned + Send + 'static>(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<T>>> + Send + use<T> {
        let key = key.to_owned();
        self.run(move |tx| tx.get(&key))
    }

    /// Deletes `key`; `false` if it was absent.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub fn delete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send + use<> {
        let key = key.to_owned();
        self.run(move |tx| tx.delete(&key))
    }

    /// Runs one SQL statement of yours inside the transaction.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub fn execute(&self, sql: &str, params: Vec<SqlValue>) -> impl Future<Output = Result<usize>> + Send + use<> {
        let sql = sql.to_owned();
        self.run(move |tx| tx.execute(&sql, &params))
    }

    /// Inserts a row into `table` inside the transaction; returns its rowid.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::sql_insert`].
    pub fn sql_insert<T: Serialize + ?Sized>(
        &self,
        table: &str,
        data: &T,
    ) -> impl Future<Output = Result<i64>> + Send + use<T> {
        let (encoded, table) = (record(table, data), table.to_owned());
        let run = encoded.map(|data| self.run(move |tx| tx.sql_insert(&table, &data)));
        async move { run?.await }
    }

    /// The rows `query` selects, as the transaction sees them.
    ///
    /// # Errors
    ///
    /// As [`AsyncNanaSQLite::query`].
    pub fn query(&self, query: Query) -> impl Future<Output = Result<Vec<Row>>> + Send + use<> {
        self.run(move |tx| tx.query(&query))
    }

    /// Commits: resolves once the transaction's writes are durable.
    ///
    /// # Errors
    ///
    /// SQLite's error (the transaction is then rolled back); [`Error::Closed`].
    pub fn commit(self) -> impl Future<Output = Result<()>> + Send + use<> {
        self.end(true)
    }

    /// Rolls back everything the transaction did.
    ///
    /// # Errors
    ///
    /// SQLite's error; [`Error::Closed`].
    pub fn rollback(self) -> impl Future<Output = Result<()>> + Send + use<> {
        self.end(false)
    }

    fn end(mut self, commit: bool) -> impl Future<Output = Result<()>> + Send + use<> {
        let (reply, answer) = oneshot::channel();
        let sent = self.commands.send(if commit { Command::Commit(reply) } else { Command::Rollback(reply) });
        async move {
            sent.map_err(|_| Error::Closed)?;
            let ended = answer.await.map_err(|_| Error::Closed)?;
            self.done = true;
            self.shared.pool.end_transaction();
            ended
        }
    }
}

impl Drop for AsyncTransaction {
    fn drop(&mut self) {
        if !self.done {
            // The channel closes with `commands`; the writer rolls back.
            self.shared.pool.end_transaction();
        }
    }
}
