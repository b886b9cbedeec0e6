//! The connection every table of one file shares, behind the store's lock.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::storage::Storage;

/// One open database: its connection (gone once closed) and how long callers wait for it.
#[derive(Debug)]
pub(crate) struct Database<S> {
    storage: Mutex<Option<S>>,
    closed: AtomicBool,
    lock_timeout: Option<Duration>,
    path: PathBuf,
}

impl<S: Storage> Database<S> {
    pub(crate) fn new(storage: S, path: PathBuf, lock_timeout: Option<Duration>) -> Self {
        Self { storage: Mutex::new(Some(storage)), closed: AtomicBool::new(false), lock_timeout, path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// `Err(Closed)` once `close` has begun; a cheap check for paths that skip the lock.
    pub(crate) fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) { Err(Error::Closed) } else { Ok(()) }
    }

    /// Takes the store's lock, waiting at most `lock_timeout`.
    pub(crate) fn lock(&self) -> Result<MappedMutexGuard<'_, S>> {
        let guard = match self.lock_timeout {
            None => self.storage.lock(),
            Some(waited) => self.storage.try_lock_for(waited).ok_or(Error::LockTimeout { waited })?,
        };
        MutexGuard::try_map(guard, Option::as_mut).map_err(|_| Error::Closed)
    }

    /// Closes the connection once; later calls do nothing. Waits for the operation in progress
    /// (never for `lock_timeout`: closing must not fail because the store is busy).
    pub(crate) fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        let storage = self.storage.lock().take();
        storage.map_or(Ok(()), Storage::close)
    }

    /// The raw lock, for tests that need to hold it.
    #[cfg(test)]
    pub(crate) fn hold(&self) -> MutexGuard<'_, Option<S>> {
        self.storage.lock()
    }
}
