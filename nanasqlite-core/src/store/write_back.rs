//! Write-back mode on the sync store ([`crate::writeback`]): staging writes, the flusher
//! thread, `flush`, the dead-letter queue and the counters. The staging and the flush
//! themselves are the engine's ([`engine::stage`], [`FlushAll`]).

use std::sync::Arc;
use std::time::Duration;

use crate::NanaSQLite;
use crate::database::Database;
use crate::engine::{FlushAll, Front, OpenHandles, Table};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::writeback::{DeadLetter, WriteBackStats};

/// How long a write waiting for room blocks before it looks again (whether the store closed,
/// or room it was not woken for).
pub(crate) const ROOM_CHECK: Duration = Duration::from_millis(100);

impl<S: Storage> NanaSQLite<S> {
    /// In write-back mode, commits every row staged before the call, in chunks; does nothing
    /// otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Unflushed`](crate::Error::Unflushed) when some rows failed to commit (they are
    /// in the dead-letter queue: [`dead_letters`](Self::dead_letters));
    /// [`Error::Closed`](crate::Error::Closed); [`Error::LockTimeout`](crate::Error::LockTimeout).
    pub fn flush(&self) -> Result<()> {
        self.flush_reported()
    }

    /// The staged rows that could not be committed, oldest first, with why (write-back mode).
    #[must_use]
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead_letter_list()
    }

    /// Stages the dead letters again, for the next flush; how many were staged. A letter the
    /// table's hooks refuse now stays in the queue with the refusal as its
    /// [`error`](DeadLetter::error), and the others are staged all the same; so do letters of
    /// tables no handle of this store has open, and those left when the staging area is full.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed).
    pub fn retry_dead_letters(&self) -> Result<usize> {
        self.restage_dead_letters()
    }

    /// Empties the dead-letter queue; how many rows it held.
    pub fn clear_dead_letters(&self) -> usize {
        self.drop_dead_letters()
    }

    /// What write-back mode has done (`None` in normal mode).
    #[must_use]
    pub fn write_back_stats(&self) -> Option<WriteBackStats> {
        self.write_back_counters()
    }

    /// What every handle of a store on `database` holds: in write-back mode, dropping the last
    /// commits what is staged before the drop returns (within the close timeout; what it could
    /// not commit is reported through `tracing`), then stops the flusher.
    pub(crate) fn open_handles(database: &Arc<Database<S>>, table: &Arc<Table<S>>) -> Arc<OpenHandles> {
        if database.shared().write_back().is_none() {
            return OpenHandles::new();
        }
        let (database, table) = (Arc::clone(database), Arc::clone(table));
        OpenHandles::at_last_drop(move || {
            let Some(state) = database.shared().write_back() else { return };
            let flush = FlushAll::new(Arc::clone(database.shared()), Some(state.close_deadline()));
            match database.run(&table, flush) {
                Err(Error::Closed) => state.stop(),
                // Dropped on the thread running an operation of this store (a hook on the
                // flusher, say), which holds the lock: the flusher, once it sees the handles
                // gone, commits what is staged. Nothing failed.
                Err(Error::Transaction { .. }) => state.wake_flusher(),
                Err(error) => {
                    tracing::error!(%error, "write-back: the last handle was dropped and could not commit what is staged; the flusher tries once more");
                    state.wake_flusher();
                }
                Ok(_) => {
                    let left = state.stats();
                    if left.staged > 0 || left.dead_letters > 0 {
                        tracing::error!(
                            staged = left.staged,
                            dead_letters = left.dead_letters,
                            "write-back: the last handle was dropped; these rows were not committed"
                        );
                    }
                    state.stop();
                }
            }
        })
    }
}
