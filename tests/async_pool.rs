//! The async store's pool on every runtime: readers that start when reads need them, a
//! dropped `begin()` future, and TTL deletions that no abandoned write can lose.

use std::time::Duration;

use futures::future::join_all;
use nanasqlite::{CacheStrategy, Error, params};

mod common;

use common::{Setup, in_file};

on_every_runtime!(
    point_reads_run_on_the_callers_thread_when_a_connection_is_free,
    readers_start_when_reads_need_them,
    max_workers_caps_the_readers,
    a_private_database_has_no_readers,
    a_dropped_begin_frees_the_writer,
    the_store_called_inside_its_own_begin_guard,
    expired_rows_stay_gone_when_the_deleting_write_never_runs,
);

async fn fill(db: &nanasqlite::AsyncNanaSQLite, n: usize) {
    db.batch_update((0..n).map(|i| (format!("k{i}"), i))).await.unwrap();
    db.clear_cache();
}

async fn concurrent_reads_find_everything(db: &nanasqlite::AsyncNanaSQLite, n: usize) {
    let reads = join_all((0..n).map(|i| db.get::<usize>(&format!("k{i}")))).await;
    for (i, read) in reads.into_iter().enumerate() {
        assert_eq!(read.unwrap(), Some(i), "k{i}");
    }
}

async fn point_reads_run_on_the_callers_thread_when_a_connection_is_free(setup: Setup) {
    let db = setup.open().await;
    fill(&db, 50).await;
    for i in 0..50 {
        assert_eq!(db.get::<usize>(&format!("k{i}")).await.unwrap(), Some(i));
    }
    assert!(db.contains("k1").await.unwrap() && !db.contains("absent").await.unwrap());
    let stats = db.stats();
    assert!(stats.inline_reads >= 50, "the free writer's connection served them: {stats:?}");
    assert!(db.is_cached("k7") && db.is_cached("absent"), "inline reads fill the cache too");
    db.close().await.unwrap();
    let queued = setup.builder.clone().inline_reads(false).open().await.unwrap();
    for i in 0..10 {
        assert_eq!(queued.get::<usize>(&format!("k{i}")).await.unwrap(), Some(i));
    }
    let stats = queued.stats();
    assert_eq!(stats.inline_reads, 0, "{stats:?}");
    assert!(stats.reads >= 10, "{stats:?}");
    queued.close().await.unwrap();
}

async fn readers_start_when_reads_need_them(setup: Setup) {
    let db = setup.builder.clone().inline_reads(false).open().await.unwrap();
    assert_eq!(db.stats().lanes, 1, "opening starts the writer alone");
    fill(&db, 400).await;
    for i in 0..20 {
        assert_eq!(db.get::<usize>(&format!("k{i}")).await.unwrap(), Some(i));
    }
    assert_eq!(db.stats().lanes, 1, "reads one after another are served by the free writer");
    concurrent_reads_find_everything(&db, 400).await;
    let stats = db.stats();
    assert!((2..=5).contains(&stats.lanes), "concurrent reads started readers, at most max_workers - 1: {stats:?}");
    assert!(stats.read_groups > 0);
    db.close().await.unwrap();
}

async fn max_workers_caps_the_readers(setup: Setup) {
    let db = setup.builder.clone().max_workers(2).inline_reads(false).open().await.unwrap();
    fill(&db, 300).await;
    for _ in 0..3 {
        db.clear_cache();
        concurrent_reads_find_everything(&db, 300).await;
    }
    assert!(db.stats().lanes <= 2, "{:?}", db.stats());
    db.close().await.unwrap();
    let alone = setup.builder.clone().max_workers(1).open().await.unwrap();
    fill(&alone, 100).await;
    concurrent_reads_find_everything(&alone, 100).await;
    assert_eq!(alone.stats().lanes, 1, "max_workers(1): the writer alone");
    alone.close().await.unwrap();
    assert!(setup.builder.clone().max_workers(0).open().await.is_err());
    assert!(setup.builder.clone().max_workers(3).read_pool_size(3).open().await.is_err(), "no room for the writer");
}

async fn a_private_database_has_no_readers(setup: Setup) {
    for private in ["", ":memory:", "file::memory:"] {
        let db = setup.builder_for(private).read_pool_size(2).max_workers(3).open().await.unwrap();
        fill(&db, 200).await;
        concurrent_reads_find_everything(&db, 200).await;
        assert_eq!(db.stats().lanes, 1, "{private:?}: another connection would see another database");
        assert_eq!(db.get_db_size().await.unwrap(), 0, "{private:?}");
        db.close().await.unwrap();
    }
    let uri = format!("file:{}?mode=rwc", setup.path.display());
    let db = setup.builder_for(&uri).open().await.unwrap();
    db.set("k", &1).await.unwrap();
    assert!(db.get_db_size().await.unwrap() > 0, "a file: URI names a file");
    db.close().await.unwrap();
}

async fn a_dropped_begin_frees_the_writer(setup: Setup) {
    let db = setup.open().await;
    let rows: Vec<(String, i64)> = (0..100_000).map(|i| (format!("k{i}"), i)).collect();
    let mut batch = Box::pin(db.batch_update(&rows));
    assert!(futures::poll!(batch.as_mut()).is_pending(), "the batch holds the writer");
    let mut begin = Box::pin(db.begin());
    assert!(futures::poll!(begin.as_mut()).is_pending(), "begin() waits behind the batch");
    drop(begin); // as a timeout or a select! would
    batch.await.unwrap();
    let tx = db.begin().await.expect("a dropped begin() leaves no transaction open");
    tx.set("in", &1).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.get::<i32>("in").await.unwrap(), Some(1));
    db.close().await.expect("and the store closes");
}

async fn expired_rows_stay_gone_when_the_deleting_write_never_runs(setup: Setup) {
    let ttl = Duration::from_millis(60);
    let cache = CacheStrategy::Ttl { ttl, size: None, delete_expired: true };
    let db = setup.builder.clone().cache(cache).open().await.unwrap();
    db.execute(
        "CREATE TRIGGER no_bad BEFORE INSERT ON data WHEN NEW.key = 'bad' BEGIN SELECT RAISE(ABORT, 'no'); END",
        params![],
    )
    .await
    .unwrap();
    db.set("session", &"s").await.unwrap();
    std::thread::sleep(ttl * 2);
    drop(db.set("never polled", &1));
    assert_eq!(db.get::<String>("session").await.unwrap(), None, "expired: never served again");
    let abandoned = db.set("abandoned", &1);
    drop(abandoned);
    assert!(matches!(db.set("bad", &1).await, Err(Error::Sqlite(_))), "a failing write");
    db.clear_cache();
    assert_eq!(db.get::<String>("session").await.unwrap(), None, "still gone, whatever the writes did");
    db.set("next", &1).await.unwrap();
    assert_eq!(in_file::<String>(&setup.path, "session"), None, "a committed write deleted the row");
    assert_eq!(db.get::<i32>("next").await.unwrap(), Some(1));
    db.close().await.unwrap();
}

async fn the_store_called_inside_its_own_begin_guard(setup: Setup) {
    let wait = Duration::from_millis(200);
    let db = setup.builder.clone().lock_timeout(wait).open().await.unwrap();
    fill(&db, 20).await;
    let tx = db.begin().await.unwrap();
    // A write through the store itself (not the guard) waits for the guard, which this task
    // holds: with a lock_timeout it ends in LockTimeout instead of waiting forever.
    let write = db.set("k0", &100).await;
    assert!(matches!(write, Err(Error::LockTimeout { waited }) if waited == wait), "{write:?}");
    assert!(matches!(db.begin().await, Err(Error::Transaction { .. })));
    // Reads do not wait on the guard: the cache, or a reader, answers them.
    assert_eq!(db.get::<usize>("k1").await.unwrap(), Some(1), "an uncached read goes to a reader");
    assert_eq!(db.get::<usize>("k1").await.unwrap(), Some(1), "then the cache answers");
    tx.set("k0", &7).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.get::<usize>("k0").await.unwrap(), Some(7), "the timed-out write was never made");
    db.close().await.unwrap();
}
