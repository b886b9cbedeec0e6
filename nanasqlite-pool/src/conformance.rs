//! The async store's half of the backend conformance suite (the backend's own half, and the
//! sync store's, are in `nanasqlite_core::storage::conformance`): the async store on a
//! backend, with its writer and, where the backend has them, readers.
//!
//! ```
//! use nanasqlite_core::storage::{ConnectionOptions, SqliteStorage};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("conformance.db");
//! futures::executor::block_on(nanasqlite_pool::conformance::check(move || {
//!     SqliteStorage::open(&path, &ConnectionOptions::default())
//! }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use nanasqlite_core::storage::Storage;
use nanasqlite_core::{Error, Result};
use serde_json::{Value, json};

use crate::AsyncNanaSQLite;

/// Runs the async store's checks on connections from `connect`, which must reach a database
/// without a table named `conformance_async` yet.
///
/// # Panics
///
/// When the store does not behave as documented on the backend; the message says what differed.
pub async fn check<S: Storage>(connect: impl Fn() -> Result<S> + Send + Sync + 'static) {
    let db: AsyncNanaSQLite<S> = AsyncNanaSQLite::builder("conformance")
        .table("conformance_async")
        .max_workers(3)
        .open_on(connect)
        .await
        .expect("the async store opens on the backend");
    db.set("k", &json!({"a": 1})).await.unwrap();
    db.clear_cache();
    assert_eq!(db.get::<Value>("k").await.unwrap(), Some(json!({"a": 1})), "a value round-trips");
    let writes = (0..50).map(|i| db.set(&format!("w{i:02}"), &i));
    assert!(futures_join(writes).await.into_iter().all(|r| r.is_ok()), "concurrent writes all commit");
    db.clear_cache();
    let reads = (0..50).map(|i| db.get::<i32>(&format!("w{i:02}")));
    let reads = futures_join(reads).await;
    assert!(reads.into_iter().enumerate().all(|(i, read)| read.unwrap() == Some(i as i32)), "concurrent reads");
    assert_eq!(db.len().await.unwrap(), 51);
    db.batch_update((0..10).map(|i| (format!("b{i}"), i))).await.unwrap();
    assert_eq!(db.batch_delete((0..10).map(|i| format!("b{i}"))).await.unwrap(), 10);
    let increments = futures_join((0..20).map(|_| db.increment::<i64>("n", 1, None))).await;
    assert!(increments.into_iter().all(|r| r.is_ok()));
    assert_eq!(db.get_fresh::<i64>("n").await.unwrap(), Some(20), "concurrent increments all count");
    let failed = db
        .transaction(|tx| -> Result<()> {
            tx.set("in_tx", &1)?;
            Err(Error::Validation { message: "stop".into() })
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(db.get::<i32>("in_tx").await.unwrap(), None, "a failed transaction leaves nothing");
    let tx = db.begin().await.unwrap();
    tx.set("in_tx", &2).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.get::<i32>("in_tx").await.unwrap(), Some(2));
    let other = db.table("conformance_async_other").await.unwrap();
    assert_eq!(other.get::<i32>("in_tx").await.unwrap(), None, "tables are separate");
    db.clear().await.unwrap();
    assert!(db.is_empty().await.unwrap());
    db.close().await.unwrap();
    assert!(db.get::<i32>("k").await.unwrap_err().is_closed());
}

/// Awaits every future of `futures`, concurrently, in order.
async fn futures_join<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(|future| Some(Box::pin(future))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use nanasqlite_core::storage::{ConnectionOptions, SqliteStorage};

    #[test]
    fn the_async_store_conforms_on_a_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("async.db");
        futures::executor::block_on(super::check(move || SqliteStorage::open(&path, &ConnectionOptions::default())));
    }

    #[test]
    fn the_async_store_conforms_in_memory() {
        futures::executor::block_on(super::check(|| SqliteStorage::open(":memory:", &ConnectionOptions::default())));
    }
}
