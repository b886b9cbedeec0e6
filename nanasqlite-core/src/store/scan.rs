//! [`Iter`]: the sync store's way through a [`Scan`], a page at a time.

use serde::de::DeserializeOwned;

use crate::engine::{Front, Paging};
use crate::error::Result;
use crate::scan::Scan;
use crate::storage::{SqliteStorage, Storage};
use crate::store::NanaSQLite;

/// The rows of a [`Scan`], a page at a time: made by [`NanaSQLite::iter`].
#[derive(Debug)]
pub struct Iter<T, S: Storage = SqliteStorage> {
    store: NanaSQLite<S>,
    paging: Paging<T>,
}

impl<T: DeserializeOwned, S: Storage> Iter<T, S> {
    pub(crate) fn new(store: NanaSQLite<S>, scan: Scan) -> Self {
        let reader = store.engine_table().reader();
        Self { store, paging: Paging::new(scan, reader) }
    }
}

impl<T: DeserializeOwned, S: Storage> Iterator for Iter<T, S> {
    type Item = Result<(String, T)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.paging.next_row() {
                return Some(row);
            }
            let page = self.paging.next_page()?;
            match self.store.run(Ok(page)) {
                Ok(page) => self.paging.take_page(page),
                Err(error) => {
                    self.paging.end();
                    return Some(Err(error));
                }
            }
        }
    }
}
