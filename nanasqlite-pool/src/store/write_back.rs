//! Write-back mode on the async store (`nanasqlite_core::writeback`): staging on the caller's
//! thread, flushes on the writer, the flusher thread, the dead-letter queue. The staging and
//! the flush themselves are the engine's, as on the sync store.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use nanasqlite_core::engine::{Front, OpenHandles};
use nanasqlite_core::storage::Storage;
use nanasqlite_core::writeback::{DeadLetter, WriteBackStats};
use nanasqlite_core::{Error, Result};

use crate::AsyncNanaSQLite;
use crate::budget::Pending;
use crate::pool::Pool;

impl<S: Storage> AsyncNanaSQLite<S> {
    /// In write-back mode, commits every row staged before the call, as
    /// [`NanaSQLite::flush`](nanasqlite_core::NanaSQLite::flush); does nothing otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Unflushed`](nanasqlite_core::Error::Unflushed) when some rows failed to commit
    /// (they are dead letters); [`Error::Closed`](nanasqlite_core::Error::Closed).
    pub fn flush(&self) -> Pending<()> {
        self.flush_reported()
    }

    /// The staged rows that could not be committed, oldest first (write-back mode).
    #[must_use]
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead_letter_list()
    }

    /// Stages the dead letters again, for the next flush; how many were staged, as
    /// [`NanaSQLite::retry_dead_letters`](nanasqlite_core::NanaSQLite::retry_dead_letters): a
    /// letter the hooks refuse now stays in the queue with the refusal as its error.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](nanasqlite_core::Error::Closed).
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

    /// What every handle of a store on `pool` holds: in write-back mode, dropping the last
    /// wakes the flusher, which commits what is staged on its own thread (the drop never
    /// blocks the caller's runtime), then ends.
    pub(crate) fn open_handles(pool: &Pool<S>) -> Arc<OpenHandles> {
        match pool.shared().write_back() {
            Some(state) => {
                let state = Arc::clone(state);
                OpenHandles::at_last_drop(move || state.wake_flusher())
            }
            None => OpenHandles::new(),
        }
    }
}

/// Runs `store`'s close to its end on a thread of its own, `nanasqlite-close`, even if the
/// caller stops waiting. In write-back mode a close stops staging before its last flush: one
/// dropped halfway would leave an open store that refuses writes and a flusher that has ended,
/// with the rows staged before it committed by no one.
pub(super) async fn close_to_the_end<S: Storage>(store: AsyncNanaSQLite<S>) -> Result<()> {
    let (done, answer) = futures_channel::oneshot::channel();
    std::thread::Builder::new()
        .name("nanasqlite-close".to_owned())
        .spawn(move || {
            let _ = done.send(block_on(store.close_database())); // the caller may be gone
        })
        .map_err(Error::Io)?;
    answer.await.map_err(|_| Error::Closed)?
}

/// Wakes the thread that waits in [`block_on`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to its end on this thread (the flusher's own, never a runtime's).
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}
