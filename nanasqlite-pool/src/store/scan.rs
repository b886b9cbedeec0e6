//! [`ScanStream`]: the rows of a [`Scan`] as a `Stream`, a page at a time.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use nanasqlite_core::engine::{Front, Paging, RowsPage};
use nanasqlite_core::storage::{SqliteStorage, Storage};
use nanasqlite_core::{Result, Scan};
use serde::de::DeserializeOwned;

use crate::store::AsyncNanaSQLite;

type PageRead = Pin<Box<dyn Future<Output = Result<RowsPage>> + Send>>;

/// The rows of a [`Scan`] as a [`Stream`] of `Result<(String, T)>`, read a page at a time on
/// the pool's lanes: made by [`AsyncNanaSQLite::stream`]. Dropping it mid-way drops the page
/// being read, if any.
#[must_use = "a stream does nothing unless polled"]
pub struct ScanStream<T, S: Storage = SqliteStorage> {
    store: AsyncNanaSQLite<S>,
    paging: Paging<T>,
    reading: Option<PageRead>,
}

impl<T, S: Storage> std::fmt::Debug for ScanStream<T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanStream").field("reading", &self.reading.is_some()).finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned, S: Storage> ScanStream<T, S> {
    pub(crate) fn new(store: AsyncNanaSQLite<S>, scan: Scan) -> Self {
        let reader = store.table.reader();
        Self { store, paging: Paging::new(scan, reader), reading: None }
    }
}

// Nothing in the stream is pinned in place: the page being read is boxed.
impl<T, S: Storage> Unpin for ScanStream<T, S> {}

impl<T: DeserializeOwned, S: Storage> Stream for ScanStream<T, S> {
    type Item = Result<(String, T)>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(row) = this.paging.next_row() {
                return Poll::Ready(Some(row));
            }
            if let Some(reading) = &mut this.reading {
                let read = std::task::ready!(reading.as_mut().poll(context));
                this.reading = None;
                match read {
                    Ok(page) => this.paging.take_page(page),
                    Err(error) => {
                        this.paging.end();
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                continue;
            }
            let Some(page) = this.paging.next_page() else { return Poll::Ready(None) };
            this.reading = Some(Box::pin(this.store.run(Ok(page))));
        }
    }
}
