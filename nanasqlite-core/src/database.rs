//! The connection every table of one file shares, behind the store's lock.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};

use std::sync::{Arc, Weak};

use crate::backup;
use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::identifier::Identifier;
use crate::storage::{ConnectionOptions, SqliteStorage, Storage};
use crate::watch::ExternalWrites;

/// One open database: its connection (gone once closed) and how long callers wait for it.
#[derive(Debug)]
pub(crate) struct Database<S> {
    storage: Mutex<Option<S>>,
    closed: AtomicBool,
    /// How the connection was opened, to reopen it after a restore.
    options: ConnectionOptions,
    /// The tables opened on this database and their caches, for a restore to reset.
    tables: Mutex<Vec<(Identifier, Weak<Cache>)>>,
    /// Opt-in: notice writes by other connections.
    external: Option<ExternalWrites>,
    /// The thread running a transaction on this database (0: none); see [`thread_token`].
    transaction_owner: AtomicU64,
    lock_timeout: Option<Duration>,
    path: PathBuf,
}

/// A number unique to the calling thread (never 0).
fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TOKEN: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    TOKEN.with(|token| *token)
}

/// Marks a transaction as running on this thread while it lives.
pub(crate) struct TransactionMark<'a> {
    owner: &'a AtomicU64,
}

impl Drop for TransactionMark<'_> {
    fn drop(&mut self) {
        self.owner.store(0, Ordering::Release);
    }
}

impl<S: Storage> Database<S> {
    pub(crate) fn new(storage: S, path: PathBuf, lock_timeout: Option<Duration>, options: ConnectionOptions) -> Self {
        Self {
            storage: Mutex::new(Some(storage)),
            closed: AtomicBool::new(false),
            options,
            tables: Mutex::new(Vec::new()),
            external: None,
            transaction_owner: AtomicU64::new(0),
            lock_timeout,
            path,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// How long SQLite waits for another connection's lock before a call fails.
    pub(crate) fn busy_timeout(&self) -> Duration {
        self.options.busy_timeout
    }

    /// `Err(Closed)` once `close` has begun; a cheap check for paths that skip the lock.
    pub(crate) fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) { Err(Error::Closed) } else { Ok(()) }
    }

    /// Takes the store's lock, waiting at most `lock_timeout`. Refused on the thread that runs
    /// a transaction on this database: it holds the lock, so waiting would never end.
    pub(crate) fn lock(&self) -> Result<MappedMutexGuard<'_, S>> {
        if self.transaction_owner.load(Ordering::Acquire) == thread_token() {
            return Err(Error::Transaction {
                message: "this thread is inside a transaction of this database: use the transaction's handle"
                    .to_owned(),
            });
        }
        let guard = match self.lock_timeout {
            None => self.storage.lock(),
            Some(waited) => self.storage.try_lock_for(waited).ok_or(Error::LockTimeout { waited })?,
        };
        MutexGuard::try_map(guard, Option::as_mut).map_err(|_| Error::Closed)
    }

    /// Closes the connection once; later calls do nothing. Waits for the operation in progress
    /// (never for `lock_timeout`: closing must not fail because the store is busy).
    pub(crate) fn close(&self) -> Result<()> {
        if self.transaction_owner.load(Ordering::Acquire) != 0 {
            return Err(Error::Transaction { message: "cannot close the database during a transaction".to_owned() });
        }
        self.closed.store(true, Ordering::Release);
        let storage = self.storage.lock().take();
        storage.map_or(Ok(()), Storage::close)
    }

    /// Checks for writes by other connections at most once per `interval`.
    pub(crate) fn watch(&mut self, interval: Option<Duration>) {
        self.external = interval.map(ExternalWrites::new);
        // The baseline, so that a write in the first interval is noticed too.
        if let (Some(external), Some(storage)) = (&self.external, self.storage.get_mut().as_ref())
            && let Ok(Some(version)) = storage.data_version()
        {
            external.changed(version);
        }
    }

    /// If a check is due and the lock is free, asks whether another connection committed and,
    /// if so, empties every cache. Never waits: a busy store is checked next time.
    pub(crate) fn notice_external_writes(&self) {
        let Some(external) = self.external.as_ref().filter(|external| external.due()) else { return };
        let Some(storage) = self.storage.try_lock() else { return };
        if let Some(Ok(Some(version))) = storage.as_ref().map(Storage::data_version) {
            drop(storage);
            if external.changed(version) {
                self.clear_caches();
            }
        }
    }

    fn clear_caches(&self) {
        for (_, cache) in self.tables.lock().iter() {
            if let Some(cache) = cache.upgrade() {
                cache.clear();
            }
        }
    }

    /// Remembers a table and its cache, for [`replace_file`](Database::replace_file).
    pub(crate) fn register(&self, name: &Identifier, cache: &Arc<Cache>) {
        let mut tables = self.tables.lock();
        tables.retain(|(_, cache)| cache.strong_count() > 0);
        tables.push((name.clone(), Arc::downgrade(cache)));
    }

    /// Marks the calling thread as running a transaction (call while holding the lock).
    pub(crate) fn mark_transaction(&self) -> TransactionMark<'_> {
        self.transaction_owner.store(thread_token(), Ordering::Release);
        TransactionMark { owner: &self.transaction_owner }
    }

    fn lock_slot(&self) -> Result<MutexGuard<'_, Option<S>>> {
        if self.transaction_owner.load(Ordering::Acquire) != 0 {
            return Err(Error::Transaction { message: "cannot restore during a transaction".to_owned() });
        }
        match self.lock_timeout {
            None => Ok(self.storage.lock()),
            Some(waited) => self.storage.try_lock_for(waited).ok_or(Error::LockTimeout { waited }),
        }
    }

    /// The raw lock, for tests that need to hold it.
    #[cfg(test)]
    pub(crate) fn hold(&self) -> MutexGuard<'_, Option<S>> {
        self.storage.lock()
    }
}

impl Database<SqliteStorage> {
    /// Replaces the file with a checked copy of `source`, reopens the connection, recreates
    /// every table opened on it and empties their caches. If the file cannot be reopened the
    /// database is closed.
    pub(crate) fn replace_file(&self, source: &Path) -> Result<()> {
        if backup::is_memory(&self.path) {
            return Err(Error::validation("cannot restore into an in-memory database"));
        }
        let mut slot = self.lock_slot()?;
        let live = slot.take().ok_or(Error::Closed)?;
        let (storage, replaced) = backup::replace_database(live, &self.path, source, &self.options);
        let result = match &storage {
            Some(storage) => replaced.and_then(|()| self.recreate_tables(storage)),
            None => {
                self.closed.store(true, Ordering::Release);
                replaced
            }
        };
        *slot = storage;
        drop(slot);
        self.clear_caches();
        result
    }

    fn recreate_tables(&self, storage: &SqliteStorage) -> Result<()> {
        let tables = self.tables.lock();
        for (name, cache) in tables.iter() {
            if cache.strong_count() > 0 {
                storage.open_table(name)?;
            }
        }
        Ok(())
    }
}
