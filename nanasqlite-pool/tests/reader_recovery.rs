//! A reader whose connection fails keeps serving reads: it opens a new connection and runs the
//! failed reads again. The failure is injected with the `nanasqlite-reader-connection` fail
//! point (feature `failpoints`), as a real broken read-only connection cannot be made on demand.
//! Fail points are global to the process, so these tests run one after another.

use std::sync::Mutex;

use futures::executor::block_on;
use futures::future::join_all;
use nanasqlite_pool::AsyncNanaSQLite;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const FAIL_POINT: &str = "nanasqlite-reader-connection";

async fn store_of_100(dir: &std::path::Path, readers: usize) -> AsyncNanaSQLite {
    let db = AsyncNanaSQLite::builder(dir.join("readers.db"))
        .read_pool_size(readers)
        .inline_reads(false)
        .open()
        .await
        .unwrap();
    db.batch_update((0..100).map(|i| (format!("k{i}"), i))).await.unwrap();
    db.clear_cache(); // every read below needs a reader
    db
}

#[test]
fn reads_are_served_after_a_reader_connection_fails() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let db = store_of_100(dir.path(), 2).await;
        fail::cfg(FAIL_POINT, "1*return").unwrap();
        let reads = join_all((0..100).map(|i| db.get::<i32>(&format!("k{i}")))).await;
        for (i, read) in reads.into_iter().enumerate() {
            assert_eq!(read.unwrap(), Some(i32::try_from(i).unwrap()), "read {i}");
        }
        assert_eq!(db.stats().reconnects, 1, "the failed reader opened a new connection");

        db.clear_cache();
        let again = join_all((0..100).map(|i| db.get::<i32>(&format!("k{i}")))).await;
        assert!(again.into_iter().all(|read| read.unwrap().is_some()), "the new connection serves reads");
        db.close().await.unwrap();
    });
    scenario.teardown();
}

#[test]
fn a_connection_that_fails_again_is_reported_and_the_reader_lives_on() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let db = store_of_100(dir.path(), 1).await;
        fail::cfg(FAIL_POINT, "2*return").unwrap();
        // Concurrent reads, so that the writer is busy and the reader takes a group.
        let reads = join_all((0..50).map(|i| db.get::<i32>(&format!("k{i}")))).await;
        let failed: Vec<_> = reads.iter().filter_map(|read| read.as_ref().err()).collect();
        assert!(!failed.is_empty(), "the reader's group failed twice and was reported");
        assert!(failed.iter().all(|error| error.to_string().contains("injected")), "{failed:?}");
        assert_eq!(db.stats().reconnects, 1);
        db.clear_cache();
        let again = join_all((0..50).map(|i| db.get::<i32>(&format!("k{i}")))).await;
        assert!(again.into_iter().all(|read| read.is_ok()), "the reader lives on and serves the next reads");
        db.close().await.unwrap();
    });
    scenario.teardown();
}
