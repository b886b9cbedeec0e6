//! The connection every table of one file shares, behind the sync store's lock, and how the
//! sync store runs engine operations on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};

use crate::engine::{self, CheckExternalWrites, Kind, Operation, Shared, Table};
use crate::error::{Error, Result};
use crate::storage::{OpenReader, Storage};

/// One open database: its connection (gone once closed) and how long callers wait for it.
pub(crate) struct Database<S: Storage> {
    storage: Mutex<Option<S>>,
    closed: AtomicBool,
    shared: Arc<Shared<S>>,
    /// How to open a separate read-only connection (for an online backup), if the backend can.
    readers: Option<OpenReader<S>>,
    /// The thread running a transaction on this database (0: none); see [`thread_token`].
    transaction_owner: AtomicU64,
    /// The thread running an operation under the lock (0: none), so that a hook or a `call`
    /// closure calling the store fails instead of waiting for the lock its own thread holds.
    operation_runner: AtomicU64,
    lock_timeout: Option<Duration>,
    busy_timeout: Duration,
    path: PathBuf,
}

impl<S: Storage> std::fmt::Debug for Database<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("path", &self.path).finish_non_exhaustive()
    }
}

/// A number unique to the calling thread (never 0).
fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TOKEN: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    TOKEN.with(|token| *token)
}

/// Marks this thread as running something (a transaction, hooks) on the database while it
/// lives.
struct ThreadMark<'a> {
    owner: &'a AtomicU64,
}

impl<'a> ThreadMark<'a> {
    fn set(owner: &'a AtomicU64) -> Self {
        owner.store(thread_token(), Ordering::Release);
        Self { owner }
    }
}

impl Drop for ThreadMark<'_> {
    fn drop(&mut self) {
        self.owner.store(0, Ordering::Release);
    }
}

/// How long callers wait: for the store's lock, and for another process's lock on the file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Waits {
    pub(crate) lock_timeout: Option<Duration>,
    pub(crate) busy_timeout: Duration,
}

impl<S: Storage> Database<S> {
    pub(crate) fn new(storage: S, path: PathBuf, shared: Arc<Shared<S>>, waits: Waits) -> Self {
        Self {
            readers: storage.readers(),
            storage: Mutex::new(Some(storage)),
            closed: AtomicBool::new(false),
            shared,
            transaction_owner: AtomicU64::new(0),
            operation_runner: AtomicU64::new(0),
            lock_timeout: waits.lock_timeout,
            busy_timeout: waits.busy_timeout,
            path,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<S>> {
        &self.shared
    }

    /// `Err(Closed)` once `close` has begun; a cheap check for paths that skip the lock.
    pub(crate) fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) { Err(Error::Closed) } else { Ok(()) }
    }

    /// Takes the store's lock, waiting at most `lock_timeout`.
    fn lock(&self) -> Result<MappedMutexGuard<'_, S>> {
        self.refuse_reentry()?;
        let guard = match self.lock_timeout {
            None => self.storage.lock(),
            Some(waited) => self.storage.try_lock_for(waited).ok_or(Error::LockTimeout { waited })?,
        };
        MutexGuard::try_map(guard, Option::as_mut).map_err(|_| Error::Closed)
    }

    /// Whether this thread runs an operation of this database: a hook (of any table, such as
    /// the success hooks a flush announces) or a `call` closure calling the store lands here,
    /// inside the operation's transaction.
    pub(crate) fn runs_an_operation_here(&self) -> bool {
        self.operation_runner.load(Ordering::Acquire) == thread_token()
    }

    /// Refuses a call that would take the lock on a thread that holds it already: the thread
    /// running a transaction of this database, or an operation (from a hook or a `call`
    /// closure). Waiting would never end.
    fn refuse_reentry(&self) -> Result<()> {
        let thread = thread_token();
        let message = if self.transaction_owner.load(Ordering::Acquire) == thread {
            "this thread is inside a transaction of this database: use the transaction's handle"
        } else if self.runs_an_operation_here() {
            "a hook or closure called the store that is running it, which would wait for itself"
        } else {
            return Ok(());
        };
        Err(Error::Transaction { message: message.to_owned() })
    }

    /// Runs `operation` for `table` under the lock: a write in a transaction of its own (expired
    /// rows purged first), a read or exclusive operation as it is. The cache change is applied
    /// before the lock is released, so the cache learns writes in the order they committed.
    pub(crate) fn run<O: Operation<S>>(&self, table: &Table<S>, mut operation: O) -> Result<O::Output> {
        let mut storage = self.lock()?;
        let _mark = ThreadMark::set(&self.operation_runner);
        let applied = match operation.kind() {
            Kind::Write => engine::run_write(&mut *storage, &self.shared, table, &mut operation),
            Kind::Read | Kind::Exclusive => operation.run(&mut storage, table),
        }
        .map_err(|error| error.busy_as_lock_timeout(self.busy_timeout))?;
        table.apply(applied.change);
        Ok(applied.output)
    }

    /// As [`run`](Self::run), marking the calling thread as inside a transaction meanwhile, so
    /// that a call to the store from inside the transaction's closure fails instead of waiting
    /// for itself.
    pub(crate) fn run_transaction<O: Operation<S>>(&self, table: &Table<S>, mut operation: O) -> Result<O::Output> {
        let mut storage = self.lock()?;
        let _mark = ThreadMark::set(&self.transaction_owner);
        let applied =
            operation.run(&mut storage, table).map_err(|error| error.busy_as_lock_timeout(self.busy_timeout))?;
        table.apply(applied.change);
        Ok(applied.output)
    }

    /// Runs read `operation` on a connection of its own when the backend can open one (so the
    /// store stays usable meanwhile), else under the lock.
    pub(crate) fn run_beside<O: Operation<S>>(&self, table: &Table<S>, mut operation: O) -> Result<O::Output> {
        self.ensure_open()?;
        let Some(open) = &self.readers else { return self.run(table, operation) };
        let mut reader = open()?;
        let applied = operation.run(&mut reader, table);
        let closed = reader.close();
        let applied = applied?;
        closed?;
        table.apply(applied.change);
        Ok(applied.output)
    }

    /// Whether a transaction runs on this database now (on any thread).
    pub(crate) fn in_transaction(&self) -> bool {
        self.transaction_owner.load(Ordering::Acquire) != 0
    }

    /// Closes the connection once; later calls do nothing. Waits for the operation in progress
    /// (never for `lock_timeout`: closing must not fail because the store is busy).
    ///
    /// Refused only on a thread that holds the lock already (inside a transaction, or running
    /// an operation: a hook or a `call` closure calling back), where waiting would never end.
    /// A transaction on another thread is waited for: it may have begun after the store
    /// checked that none was open, and refusing then would leave the store open with its
    /// flusher already stopped.
    pub(crate) fn close(&self) -> Result<()> {
        self.refuse_reentry()?;
        self.closed.store(true, Ordering::Release);
        self.shared.stop_watching();
        let storage = self.storage.lock().take();
        for table in self.shared.tables() {
            table.clear_cache();
        }
        storage.map_or(Ok(()), Storage::close)
    }

    /// If a check for other writers is due and the lock is free, asks whether another
    /// connection committed and, if so, empties every cache. Never waits: a busy store is
    /// checked next time.
    pub(crate) fn notice_external_writes(&self, table: &Table<S>) {
        if !self.shared.watch_due() {
            return;
        }
        let Some(mut guard) = self.storage.try_lock() else { return };
        let Some(storage) = guard.as_mut() else { return };
        match CheckExternalWrites::new(Arc::clone(&self.shared)).run(storage, table) {
            Ok(applied) => table.apply(applied.change),
            Err(error) => tracing::warn!(%error, "could not check for other writers"),
        }
    }

    /// The raw lock, for tests that need to hold it.
    #[cfg(test)]
    pub(crate) fn hold(&self) -> MutexGuard<'_, Option<S>> {
        self.storage.lock()
    }
}
