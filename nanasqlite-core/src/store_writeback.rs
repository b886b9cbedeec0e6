//! Write-back mode on the sync store ([`crate::writeback`]): staging writes, the flusher
//! thread, `flush`, the dead-letter queue and the counters. The staging and the flush
//! themselves are the engine's ([`engine::stage`], [`FlushAll`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::NanaSQLite;
use crate::engine::{self, CachedValue, FlushAll, Flushed, Staging};
use crate::error::Result;
use crate::storage::Storage;
use crate::writeback::{DeadLetter, OnFull, WriteBackStats};

impl<S: Storage> NanaSQLite<S> {
    /// Stages a write of `key` (`None`: a delete), making room as the bound's policy says.
    pub(crate) fn stage(&self, key: &str, value: Option<Arc<CachedValue>>) -> Result<()> {
        self.database().ensure_open()?;
        loop {
            match engine::stage(self.engine_table(), key, value.clone())? {
                Staging::Done => return Ok(()),
                Staging::Full(on_full) => {
                    let Some((state, _)) = self.engine_table().write_back() else { return Ok(()) };
                    match on_full {
                        OnFull::Error => return Err(state.full()),
                        OnFull::Wait if !state.manual() => {
                            state.wake_flusher();
                            state.wait_for_room(Duration::from_millis(100));
                        }
                        _ => {
                            self.run_flush(None)?;
                        }
                    }
                }
            }
        }
    }

    /// Commits what is staged before an operation that must see it; failures go to the
    /// dead-letter queue (reported by [`flush`](Self::flush), not by every later call).
    pub(crate) fn flush_staged(&self) -> Result<()> {
        if self.engine_table().write_back().is_some_and(|(state, _)| !state.is_empty()) {
            self.run_flush(None)?;
        }
        Ok(())
    }

    fn run_flush(&self, deadline: Option<Instant>) -> Result<Flushed> {
        let flush = FlushAll::new(Arc::clone(self.database().shared()), deadline);
        self.database().run(self.engine_table(), flush)
    }

    /// In write-back mode, commits every row staged before the call, in chunks; does nothing
    /// otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Unflushed`](crate::Error::Unflushed) when some rows failed to commit (they are
    /// in the dead-letter queue: [`dead_letters`](Self::dead_letters));
    /// [`Error::Closed`](crate::Error::Closed); [`Error::LockTimeout`](crate::Error::LockTimeout).
    pub fn flush(&self) -> Result<()> {
        let flushed = self.run_flush(None)?;
        self.engine_table().write_back().map_or(Ok(()), |(state, _)| state.report_flush(flushed))
    }

    /// The staged rows that could not be committed, oldest first, with why (write-back mode).
    #[must_use]
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.engine_table().write_back().map(|(state, _)| state.dead_letters()).unwrap_or_default()
    }

    /// Stages the dead letters again, for the next flush; how many.
    ///
    /// # Errors
    ///
    /// A hook's refusal of one of them; [`Error::Closed`](crate::Error::Closed).
    pub fn retry_dead_letters(&self) -> Result<usize> {
        self.database().ensure_open()?;
        engine::retry_dead_letters(self.database().shared())
    }

    /// Empties the dead-letter queue; how many rows it held.
    pub fn clear_dead_letters(&self) -> usize {
        self.engine_table().write_back().map_or(0, |(state, _)| state.clear_dead_letters())
    }

    /// What write-back mode has done (`None` in normal mode).
    #[must_use]
    pub fn write_back_stats(&self) -> Option<WriteBackStats> {
        self.engine_table().write_back().map(|(state, _)| state.stats())
    }

    /// At close: commits what is staged within the close timeout, stops the flusher, and
    /// reports what could not be written.
    pub(crate) fn flush_for_close(&self) -> Result<()> {
        let Some((state, _)) = self.engine_table().write_back() else { return Ok(()) };
        state.report_close(self.run_flush(Some(state.close_deadline())))
    }

    /// Starts the flusher thread of a write-back store: it commits as the policy says, and a
    /// last time once every handle is dropped.
    pub(crate) fn start_flusher(&self) -> Result<()> {
        let Some(state) = self.database().shared().write_back() else { return Ok(()) };
        let (database, table) = (Arc::clone(self.database_arc()), Arc::clone(self.engine_table_arc()));
        state.spawn_flusher(Arc::downgrade(self.handles()), move |deadline| {
            let flush = FlushAll::new(Arc::clone(database.shared()), deadline);
            database.run(&table, flush).map(drop)
        })
    }
}
