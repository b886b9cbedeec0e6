//! Large batches handed to the writer while the caller encodes them (see
//! [`row_feed`](nanasqlite_core::engine::row_feed)): SQLite stores the first rows on the
//! writer's thread while the caller's thread encodes the rest, so a batch costs about the
//! larger of the two instead of their sum.

use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::Arc;

use nanasqlite_core::engine::{self, BatchUpdate, Front, KeyValue};
use nanasqlite_core::storage::Storage;
use nanasqlite_core::{Error, Result};
use serde::Serialize;
use tracing::Instrument;

use crate::store::AsyncNanaSQLite;

/// Fewest rows a batch is fed with: below this, encoding takes too little time for the
/// overlap to pay for the chunks' messages and the writer's wait for the first one.
const FEED_FROM: usize = 1024;

/// The boxed future of a fed batch (a large batch dwarfs one allocation).
pub(crate) type BatchFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

impl<S: Storage> AsyncNanaSQLite<S> {
    /// Whether a batch announcing `rows` rows is fed to the writer while it is encoded: a large
    /// one, on a backend that stores in chunks, outside write-back mode (which stages rows
    /// instead of writing them).
    pub(crate) fn feeds(&self, rows: usize) -> bool {
        rows >= FEED_FROM && S::STORES_IN_CHUNKS && !self.table.writes_back()
    }

    /// Stores `rows` atomically as [`batch_update`](Self::batch_update) does, handing the job
    /// to the writer first and then encoding the rows into it on the caller's thread. The batch
    /// takes its place among the store's writes at its first poll, as any write: the writer
    /// commits the rows only if the future is polled before the last row reached it and no
    /// other write was queued after the batch; otherwise the writer gives up (writing nothing)
    /// and the future writes its copy of the rows as an ordinary batch, queued at that poll.
    pub(crate) fn feed_batch<K, V>(&self, rows: impl Iterator<Item = impl KeyValue<K, V>>) -> BatchFuture
    where
        K: AsRef<str>,
        V: Serialize,
    {
        let (sink, feed) = engine::row_feed(rows.size_hint().0);
        let span = self.span("batch_update");
        let (answer, unsent) = match self.pool.hand_over(Arc::clone(&self.table), BatchUpdate::fed(feed), span.clone())
        {
            Ok(handed) => handed,
            Err(error) => return Box::pin(ready(Err(error))),
        };
        let handed_over = self.pool.writes_handed_over();
        // On a value that cannot be encoded the writer fails the batch too (the sink tells it),
        // and dropping the answer skips the job if it has not started.
        let (handoff, kept) = match sink.encode(rows) {
            Ok(encoded) => encoded,
            Err(error) => return Box::pin(ready(Err(error))),
        };
        let this = self.clone();
        Box::pin(
            async move {
                if let Some(job) = unsent {
                    // Not queued when it was called (the queue was full): it is queued now, in
                    // this first poll's place, and the writer, which had no chance to give up,
                    // commits it.
                    handoff.want(true);
                    this.pool.send(job).await?;
                } else if !handoff.want(this.pool.writes_handed_over() == handed_over) {
                    return this.write_batch(Ok(BatchUpdate::new(kept))).await.map(drop);
                }
                answer.await.map_err(|_| Error::Closed)?.map(drop)
            }
            .instrument(span),
        )
    }
}
