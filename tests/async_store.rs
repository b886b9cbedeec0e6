//! The async store, one test body run on every runtime: tokio (current-thread and
//! multi-thread), smol, async-std, `futures::executor::block_on` and `async-executor`; on tokio,
//! smol and async-std also with the store's threads on that runtime's blocking pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use nanasqlite::{Error, NanaSQLite, Query, params};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

mod common;

use common::{Setup, YieldNow, in_file};

on_every_runtime!(
    crud,
    batches,
    large_batches,
    batches_keep_first_poll_order,
    concurrent_sets,
    same_key_writes,
    big_batch_does_not_block,
    cancelled_futures_leave_no_torn_batch,
    drop_without_close_keeps_acknowledged_writes,
    panicking_job,
    use_after_close,
    read_pool,
    readers_see_whole_batches_only,
    failing_write_fails_alone,
    lock_timeout,
    back_pressure,
    tables_and_cache,
    bulk_loaded_rows,
    spawned_futures,
    sql_helpers,
    transaction_closure,
    begin_guard,
    close_decides_at_its_first_poll,
    atomic_updates,
    backup_and_restore,
);

async fn crud(setup: Setup) {
    let db = setup.open().await;
    db.aset("user_1", &json!({"name": "Alice", "age": 25})).await.unwrap();
    let mut user: Value = db.aget("user_1").await.unwrap().unwrap();
    assert_eq!(user["name"], "Alice");
    user["age"] = json!(26);
    db.aset("user_1", &user).await.unwrap();
    db.clear_cache();
    assert_eq!(db.aget::<Value>("user_1").await.unwrap().unwrap()["age"], 26);
    assert!(db.acontains("user_1").await.unwrap());
    assert_eq!(db.alen().await.unwrap(), 1);
    assert_eq!(db.akeys().await.unwrap(), ["user_1"]);
    assert!(db.adelete("user_1").await.unwrap());
    assert!(!db.adelete("user_1").await.unwrap());
    assert_eq!(db.aget::<Value>("user_1").await.unwrap(), None);
    db.set("none", &Value::Null).await.unwrap();
    assert_eq!(db.get::<Value>("none").await.unwrap(), Some(Value::Null));
    assert_eq!(db.pop::<Value>("none").await.unwrap(), Some(Value::Null));
    assert_eq!(db.setdefault("n", &1).await.unwrap(), 1);
    assert_eq!(db.setdefault("n", &2).await.unwrap(), 1);
    db.close().await.unwrap();
    assert_eq!(in_file::<i32>(&setup.path, "n"), Some(1));
}

async fn batches(setup: Setup) {
    let db = setup.open().await;
    let data: Vec<(String, Value)> =
        (0..1000).map(|i| (format!("user_{i}"), json!({"name": format!("User{i}")}))).collect();
    db.batch_update(&data).await.unwrap();
    let keys: Vec<String> = (0..500).map(|i| format!("user_{i}")).collect();
    assert_eq!(db.batch_delete(&keys).await.unwrap(), 500);
    assert_eq!(db.alen().await.unwrap(), 500);
    let found = db.batch_get::<Value>(["user_499", "user_500", "user_999"]).await.unwrap();
    assert_eq!(found.len(), 2);
    db.clear_cache();
    let found = db.batch_get::<Value>(["user_499", "user_500", "user_999"]).await.unwrap();
    assert_eq!(found["user_999"]["name"], "User999");
    assert_eq!(db.items::<Value>().await.unwrap().len(), 500);
    assert_eq!(db.to_dict::<Value>().await.unwrap().len(), 500);
    assert!(db.is_cached("user_0"), "after items() every key is known");
    db.clear().await.unwrap();
    assert!(db.is_empty().await.unwrap());
    db.close().await.unwrap();
}

/// A value that cannot be JSON when `bad`.
struct MaybeBad {
    n: usize,
    bad: bool,
}

impl Serialize for MaybeBad {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.bad { Err(serde::ser::Error::custom("not JSON")) } else { serializer.serialize_u64(self.n as u64) }
    }
}

/// Rows whose iterator announces far more than it yields (`size_hint` is only a hint).
struct Boastful(std::ops::Range<usize>);

impl Iterator for Boastful {
    type Item = (String, usize);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|i| (format!("h{i}"), i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

/// Large batches: written whole, failed whole, and never written before their future is polled.
async fn large_batches(setup: Setup) {
    let db = setup.open().await;
    let rows = |prefix: &str, n: usize| (0..n).map(|i| (format!("{prefix}{i}"), json!({"n": i}))).collect::<Vec<_>>();
    let in_file = |prefix: &str| {
        let (db, pattern) = (db.clone(), format!("{prefix}%"));
        async move { db.count(Query::table("data").filter("key LIKE ?", params![pattern])).await.unwrap() }
    };

    db.batch_update(rows("a", 3000)).await.unwrap();
    assert_eq!(in_file("a").await, 3000);
    assert!(db.is_cached("a2999"), "the cache learns the rows with the commit");
    assert_eq!(db.get::<Value>("a2999").await.unwrap(), Some(json!({"n": 2999})));

    let bad = (0..3000).map(|n| (format!("b{n}"), MaybeBad { n, bad: n == 2000 }));
    let error = db.batch_update(bad).await.unwrap_err();
    assert!(matches!(&error, Error::Encode { key, .. } if key == "b2000"), "{error}");
    assert_eq!(in_file("b").await, 0, "nothing of a batch that could not be encoded");
    assert!(!db.is_cached("b0"));

    let later = db.batch_update(rows("c", 3000));
    db.set("after c", &1).await.unwrap(); // queued behind the batch: the writer has seen it whole
    assert_eq!(in_file("c").await, 0, "not written before its future is polled");
    later.await.unwrap();
    assert_eq!(in_file("c").await, 3000);
    assert_eq!(db.get::<Value>("c0").await.unwrap(), Some(json!({"n": 0})));

    drop(db.batch_update(rows("d", 3000)));
    db.set("after d", &1).await.unwrap();
    assert_eq!(in_file("d").await, 0, "dropped unpolled: never written");
    assert!(!db.is_cached("d0"));

    let (e, f) = futures::join!(db.batch_update(rows("e", 2000)), db.batch_update(rows("f", 2000)));
    e.unwrap();
    f.unwrap();
    assert_eq!((in_file("e").await, in_file("f").await), (2000, 2000));

    db.clear_cache();
    assert_eq!(db.alen().await.unwrap(), 3000 + 1 + 3000 + 1 + 4000);

    // An iterator that announces more rows than it has is written as it is.
    db.batch_update(Boastful(0..0)).await.unwrap();
    db.batch_update(Boastful(0..3)).await.unwrap();
    assert_eq!(in_file("h").await, 3);
    assert_eq!(db.get::<usize>("h2").await.unwrap(), Some(2));

    // Hooks see a batch's rows one by one: a duplicate in its middle refuses all of it.
    db.add_hook(nanasqlite::hook::unique("email")).await.unwrap();
    let users = (0..2000).map(|i| (format!("u{i}"), json!({"email": format!("{}@example.com", i % 1500)})));
    let error = db.batch_update(users).await.unwrap_err();
    assert!(matches!(&error, Error::Refused { key, .. } if key == "u1500"), "{error}");
    assert_eq!(in_file("u").await, 0, "nothing of a refused batch");
    db.close().await.unwrap();
}

/// A batch takes its place among the store's writes at its first poll, small or large: a write
/// polled before it is applied before it, one polled after it after it.
async fn batches_keep_first_poll_order(setup: Setup) {
    let db = setup.open().await;
    for (size, fed) in [(10, "a small batch"), (3000, "a large batch")] {
        let batch = |value: &'static str| db.batch_update((0..size).map(move |i| (format!("k{i}"), value)));
        let last = |expected: &'static str, case: &str| {
            let db = db.clone();
            let case = format!("{fed}, {case}");
            async move {
                db.clear_cache();
                assert_eq!(db.get::<String>("k0").await.unwrap().as_deref(), Some(expected), "{case}");
            }
        };

        let (set, rows) = (db.set("k0", &"set"), batch("batch"));
        futures::join!(set, rows).0.unwrap();
        last("batch", "the set polled first").await;

        let (rows, set) = (batch("batch"), db.set("k0", &"set"));
        let (rows, set) = futures::join!(rows, set);
        rows.unwrap();
        set.unwrap();
        last("set", "the batch polled first").await;

        let rows = batch("batch");
        db.set("k0", &"set").await.unwrap();
        rows.await.unwrap();
        last("batch", "the batch made first, the set awaited before it").await;

        let set = db.set("k0", &"set");
        batch("batch").await.unwrap();
        set.await.unwrap();
        last("set", "the set made first, the batch awaited before it").await;
    }
    db.close().await.unwrap();
}

async fn concurrent_sets(setup: Setup) {
    let db = setup.open().await;
    let sets = (0..100).map(|i| db.set(&format!("key_{i}"), &i));
    assert!(join_all(sets).await.into_iter().all(|r| r.is_ok()));
    assert_eq!(db.alen().await.unwrap(), 100);
    let stats = db.stats();
    assert_eq!(stats.writes, 100);
    assert!(stats.jobs_started >= 100 && stats.queue_wait > std::time::Duration::ZERO, "{stats:?}");
    assert!(stats.write_groups < stats.writes, "concurrent sets share commits: {stats:?}");
    let gets = join_all((0..100).map(|i| db.aget::<i32>(&format!("key_{i}")))).await;
    assert!(gets.into_iter().enumerate().all(|(i, v)| v.unwrap() == Some(i as i32)));
    db.close().await.unwrap();
}

async fn same_key_writes(setup: Setup) {
    let db = setup.open().await;
    join_all((0..50).map(|i| db.set("shared", &i))).await.into_iter().for_each(|r| r.unwrap());
    let cached: i32 = db.get("shared").await.unwrap().unwrap();
    assert_eq!(Some(cached), in_file(&setup.path, "shared"), "cache equals file");
    assert_eq!(db.get_fresh::<i32>("shared").await.unwrap(), Some(cached));
    db.close().await.unwrap();
}

async fn big_batch_does_not_block(setup: Setup) {
    let db = setup.open().await;
    let rows: Vec<(String, i64)> = (0..100_000).map(|i| (format!("k{i}"), i)).collect();
    let batch = db.batch_update(&rows);
    let done = AtomicBool::new(false);
    let ticks = AtomicUsize::new(0);
    futures::join!(
        async {
            batch.await.unwrap();
            done.store(true, Ordering::SeqCst);
        },
        async {
            while !done.load(Ordering::SeqCst) {
                ticks.fetch_add(1, Ordering::SeqCst);
                YieldNow(false).await;
            }
        }
    );
    assert!(ticks.load(Ordering::SeqCst) > 10, "the other task kept running during the batch");
    assert_eq!(db.alen().await.unwrap(), 100_000);
    db.close().await.unwrap();
}

/// Polls each future once; all must still be pending.
async fn poll_once_each<F: Future + Unpin>(futures: &mut [F]) {
    for future in futures {
        assert!(futures::poll!(future).is_pending(), "the writer is held: nothing can finish");
    }
}

async fn cancelled_futures_leave_no_torn_batch(setup: Setup) {
    let db = setup.open().await;
    let rows = |batch: usize, n: usize| (0..n).map(move |i| (format!("b{batch}-{i}"), i)).collect::<Vec<_>>();
    let count = |batch: usize| {
        let db = db.clone();
        async move { db.count(Query::table("data").filter("key LIKE ?", params![format!("b{batch}-%")])).await.unwrap() }
    };

    // Dropped before their jobs start (the writer is held): absent, and counted as abandoned.
    let abandoned_before = db.stats().abandoned;
    let held = db.begin().await.unwrap();
    let mut queued: Vec<_> = (0..5).map(|batch| Box::pin(db.batch_update(rows(batch, 200)))).collect();
    let mut single = vec![Box::pin(db.set("dropped single", &1))];
    poll_once_each(&mut queued).await;
    poll_once_each(&mut single).await;
    drop((queued, single));
    held.rollback().await.unwrap();
    db.set("barrier", &true).await.unwrap(); // the writer is FIFO: everything before is done
    assert_eq!(db.stats().abandoned - abandoned_before, 6, "each dropped job was skipped");
    db.clear_cache();
    for batch in 0..5 {
        assert_eq!(count(batch).await, 0, "batch {batch} was dropped before it started");
    }
    assert_eq!(db.get_fresh::<i32>("dropped single").await.unwrap(), None);

    // Dropped once its job has started: it runs to the end, all of it.
    let started_before = db.stats().jobs_started;
    let mut running = Box::pin(db.batch_update(rows(9, 100_000)));
    assert!(futures::poll!(running.as_mut()).is_pending());
    let started = || db.stats().jobs_started > started_before;
    common::wait_until_async("the batch's job starting", Duration::from_secs(60), started).await;
    drop(running);
    db.set("barrier", &true).await.unwrap();
    assert_eq!(db.stats().abandoned - abandoned_before, 6, "a started job is never abandoned");
    assert_eq!(count(9).await, 100_000, "a batch dropped mid-flight commits whole");
    db.close().await.unwrap();
}

async fn drop_without_close_keeps_acknowledged_writes(setup: Setup) {
    let db = setup.open().await;
    let clone = db.clone();
    join_all((0..100).map(|i| db.set(&format!("k{i}"), &i))).await.into_iter().for_each(|r| r.unwrap());
    drop((db, clone));
    let reopened = NanaSQLite::open(&setup.path).unwrap();
    assert_eq!(reopened.len().unwrap(), 100);
}

/// A value whose decoding panics (`pop` decodes on the writer thread).
#[derive(Debug)]
struct Boom;

impl<'de> Deserialize<'de> for Boom {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("boom")
    }
}

async fn panicking_job(setup: Setup) {
    let db = setup.open().await;
    db.set("k", &1).await.unwrap();
    let error = db.pop::<Boom>("k").await.unwrap_err();
    assert!(matches!(&error, Error::Panic { message } if message == "boom"), "{error:?}");
    assert_eq!(db.get_fresh::<i32>("k").await.unwrap(), Some(1), "the panicking job was rolled back");
    db.set("after", &2).await.unwrap();
    assert_eq!(db.pop::<i32>("k").await.unwrap(), Some(1), "the writer survived");
    db.close().await.unwrap();
}

async fn use_after_close(setup: Setup) {
    let db = setup.open().await;
    let clone = db.clone();
    let table = db.table("other").await.unwrap();
    db.set("k", &1).await.unwrap();
    table.set("k", &1).await.unwrap();
    db.close().await.unwrap();
    db.close().await.unwrap();
    for handle in [&db, &clone, &table] {
        assert!(handle.get::<i32>("k").await.unwrap_err().is_closed());
        assert!(handle.set("k", &2).await.unwrap_err().is_closed());
        assert!(handle.delete("k").await.unwrap_err().is_closed());
        assert!(handle.contains("k").await.unwrap_err().is_closed());
        assert!(handle.len().await.unwrap_err().is_closed());
        assert!(handle.batch_update([("k", 1)]).await.unwrap_err().is_closed());
        assert!(handle.batch_get::<i32>(["k"]).await.unwrap_err().is_closed());
        assert!(handle.items::<i32>().await.unwrap_err().is_closed());
        assert!(handle.table("x").await.unwrap_err().is_closed());
        assert!(!handle.is_cached("k"));
    }
}

async fn read_pool(setup: Setup) {
    let db = setup.builder.clone().read_pool_size(3).max_workers(4).inline_reads(false).open().await.unwrap();
    assert_eq!(db.stats().lanes, 1, "readers start when reads need them");
    db.batch_update((0..500).map(|i| (format!("k{i}"), i))).await.unwrap();
    db.clear_cache();
    let reads = join_all((0..500).map(|i| db.get::<i32>(&format!("k{i}")))).await;
    assert!(reads.into_iter().enumerate().all(|(i, v)| v.unwrap() == Some(i as i32)));
    let stats = db.stats();
    assert!(stats.reads >= 500 && stats.read_groups < stats.reads, "reads share snapshots: {stats:?}");
    assert!((2..=4).contains(&stats.lanes), "concurrent reads started readers, at most 3: {stats:?}");
    // Reads racing writes of the same keys never leave the cache behind the file.
    for round in 0..20 {
        db.clear_cache();
        let reads = join_all((0..50).map(|i| db.get::<i32>(&format!("k{i}"))));
        let writes = join_all((0..50).map(|i| db.set(&format!("k{i}"), &(round * 1000 + i))));
        let (_, written) = futures::join!(reads, writes);
        written.into_iter().for_each(|r| r.unwrap());
    }
    let file = NanaSQLite::open(&setup.path).unwrap();
    for i in 0..50 {
        let key = format!("k{i}");
        assert_eq!(db.get::<i32>(&key).await.unwrap(), file.get::<i32>(&key).unwrap(), "{key}");
    }
    assert!(setup.builder.clone().read_pool_size(5).open().await.is_err(), "5 readers need 6 workers");
    db.close().await.unwrap();
}

async fn readers_see_whole_batches_only(setup: Setup) {
    let db = setup.builder.clone().read_pool_size(2).open().await.unwrap();
    let batch = |round: i64| (0..1_000).map(move |i| (format!("k{i}"), round));
    db.batch_update(batch(0)).await.unwrap();
    let done = AtomicBool::new(false);
    let writer = async {
        // At least 30 rounds, and until a read has found the writer busy and started a reader
        // (how soon depends on the machine; 1,000 rounds make it certain, not slow to wait for).
        let mut round = 1;
        while round <= 30 || (db.stats().lanes < 2 && round <= 1_000) {
            db.batch_update(batch(round)).await.unwrap();
            round += 1;
        }
        done.store(true, Ordering::SeqCst);
    };
    let reader = async {
        let mut reads = 0;
        while !done.load(Ordering::SeqCst) {
            let row = db.fetch_one("SELECT COUNT(DISTINCT value) AS n, COUNT(*) AS rows FROM data", params![]);
            let row = row.await.unwrap().unwrap();
            assert_eq!((row.get::<i64>("n").unwrap(), row.get::<i64>("rows").unwrap()), (1, 1_000), "half a batch");
            reads += 1;
        }
        reads
    };
    let ((), reads) = futures::join!(writer, reader);
    let stats = db.stats();
    assert!(reads > 0 && stats.lanes > 1, "{reads} reads, some on a reader lane: {stats:?}");
    db.close().await.unwrap();
}

async fn failing_write_fails_alone(setup: Setup) {
    NanaSQLite::open(&setup.path).unwrap();
    let conn = rusqlite::Connection::open(&setup.path).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER no_bad BEFORE INSERT ON data WHEN NEW.value = '\"bad\"' BEGIN SELECT RAISE(ABORT, 'no'); END;",
    )
    .unwrap();
    drop(conn);
    let db = setup.open().await;
    let held = db.begin().await.unwrap(); // the 30 writes queue up behind it, then share groups
    let value = |i| if i == 15 { "bad" } else { "good" };
    let mut writes: Vec<_> = (0..30).map(|i| Box::pin(db.set(&format!("k{i}"), &value(i)))).collect();
    poll_once_each(&mut writes).await;
    held.commit().await.unwrap();
    let results = join_all(writes).await;
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.is_err(), i == 15, "write {i}: {result:?}");
    }
    assert!(db.stats().largest_write_group >= 2, "the failing write shared its group: {:?}", db.stats());
    assert_eq!(db.alen().await.unwrap(), 29);
    assert!(!db.is_cached("k15"), "the failed write is not cached");
    db.close().await.unwrap();
}

async fn lock_timeout(setup: Setup) {
    let db = setup.builder.clone().lock_timeout(Duration::from_millis(100)).open().await.unwrap();
    // The writer runs a job that holds it until the late write has given up.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let mut busy = Box::pin(db.call(move |_| {
        let _ = released.recv_timeout(Duration::from_secs(60));
        Ok(())
    }));
    assert!(futures::poll!(busy.as_mut()).is_pending(), "the job is queued");
    common::wait_until_async("the writer taking the job", Duration::from_secs(60), || db.stats().write_queue == 0)
        .await;
    let late = db.set("late", &1).await;
    let late_begin = db.begin().await;
    release.send(()).unwrap();
    busy.await.unwrap();
    assert!(matches!(late, Err(Error::LockTimeout { .. })), "{late:?}");
    assert_eq!(db.get::<i32>("late").await.unwrap(), None);
    assert!(matches!(late_begin, Err(Error::LockTimeout { .. })), "{late_begin:?}");
    assert!(!db.in_transaction(), "a begin() that timed out leaves no transaction open");
    db.begin().await.unwrap().commit().await.unwrap();
    db.close().await.unwrap();
}

async fn back_pressure(setup: Setup) {
    let db = setup.builder.clone().queue_capacity(4).open().await.unwrap();
    let held = db.begin().await.unwrap(); // a slow writer: nothing leaves the queue
    let mut writes: Vec<_> = (0..200).map(|i| Box::pin(db.set(&format!("k{i}"), &i))).collect();
    poll_once_each(&mut writes).await;
    let stats = db.stats();
    assert_eq!((stats.write_queue, stats.waiting_for_room), (4, 196), "4 queued, the rest wait: {stats:?}");
    held.commit().await.unwrap();
    let results = join_all(writes).await;
    assert!(results.into_iter().all(|r| r.is_ok()), "callers wait for room, none fails");
    assert_eq!(db.stats().waiting_for_room, 0);
    assert_eq!(db.alen().await.unwrap(), 200);
    db.close().await.unwrap();
}

async fn tables_and_cache(setup: Setup) {
    let db = setup.builder.clone().bulk_load(true).open().await.unwrap();
    let users = db.table("users").await.unwrap();
    users.set("alice", &30).await.unwrap();
    assert_eq!(db.get::<i32>("alice").await.unwrap(), None);
    assert!(db.table("bad name").await.is_err());
    assert!(db.is_cached("anything"), "bulk_load: every key is known");
    let shared = users.get_shared("alice").await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&shared, &users.get_shared("alice").await.unwrap().unwrap()));
    let conn = rusqlite::Connection::open(&setup.path).unwrap();
    conn.execute("UPDATE users SET value = '31' WHERE key = 'alice'", []).unwrap();
    assert_eq!(users.get::<i32>("alice").await.unwrap(), Some(30), "the cache does not see other connections");
    users.refresh("alice").await.unwrap();
    assert_eq!(users.get::<i32>("alice").await.unwrap(), Some(31));
    assert_eq!(users.get::<i32>("nobody").await.unwrap(), None);
    let stats = db.stats();
    assert!(stats.cache_hits > 0 && stats.cache_misses > 0, "{stats:?}");
    db.close().await.unwrap();
}

/// Rows of a bulk load (kept packed until first kept) read, rewritten, deleted and listed.
async fn bulk_loaded_rows(setup: Setup) {
    let db = setup.open().await;
    db.batch_update((0..300).map(|i| (format!("k{i:03}"), json!({"n": i})))).await.unwrap();
    db.close().await.unwrap();
    let db = setup.builder.clone().bulk_load(true).open().await.unwrap();
    let reads = (0..300).step_by(3).map(|i| {
        let db = db.clone();
        async move {
            (i, db.get::<Value>(&format!("k{i:03}")).await.unwrap(), db.get_shared(&format!("k{i:03}")).await.unwrap())
        }
    });
    for (i, owned, shared) in futures::future::join_all(reads).await {
        assert_eq!((owned.unwrap()["n"].clone(), shared.unwrap()["n"].clone()), (json!(i), json!(i)));
    }
    let shared = db.get_shared("k000").await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&shared, &db.get_shared("k000").await.unwrap().unwrap()), "a kept read is kept");
    db.set("k001", &json!({"n": -1})).await.unwrap();
    assert!(db.delete("k002").await.unwrap());
    assert_eq!(db.get::<Value>("k001").await.unwrap(), Some(json!({"n": -1})));
    assert_eq!(db.get::<Value>("k002").await.unwrap(), None);
    assert!(db.contains("k299").await.unwrap() && !db.contains("k300").await.unwrap());
    let found = db.batch_get::<Value>(["k003", "k002", "k004"]).await.unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    let items = db.items::<Value>().await.unwrap();
    assert_eq!(items.len(), 299);
    assert!(items.windows(2).all(|pair| pair[0].0 < pair[1].0), "sorted, each key once");
    assert_eq!(items[1], ("k001".to_owned(), json!({"n": -1})));
    db.close().await.unwrap();
    let reopened = setup.open().await;
    assert_eq!(reopened.items::<Value>().await.unwrap(), items, "what the cache lists is what the file holds");
    reopened.close().await.unwrap();
}

async fn spawned_futures(setup: Setup) {
    let db = setup.open().await;
    let futures: Vec<Pin<Box<dyn Future<Output = nanasqlite::Result<()>> + Send + 'static>>> =
        (0..10).map(|i| Box::pin(db.set(&format!("k{i}"), &i)) as _).collect();
    drop(db.clone()); // the futures own what they need
    for future in futures {
        future.await.unwrap();
    }
    assert_eq!(db.len().await.unwrap(), 10);
    db.close().await.unwrap();
}

async fn sql_helpers(setup: Setup) {
    let db = setup.builder.clone().read_pool_size(2).max_workers(3).open().await.unwrap();
    db.create_table("users", &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT"), ("age", "INTEGER")]).await.unwrap();
    for (name, age) in [("Alice", 30), ("Bob", 25), ("Carol", 35)] {
        db.sql_insert("users", &json!({"name": name, "age": age})).await.unwrap();
    }
    let query = Query::table("users").columns(["name"]).filter("age > ?", params![26]).order_by("name");
    let rows = db.query(query).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.to_json()["name"].clone()).collect::<Vec<_>>(), [json!("Alice"), json!("Carol")]);
    #[derive(serde::Deserialize)]
    struct Name {
        name: String,
    }
    let names: Vec<Name> = db.query_as(Query::table("users").columns(["name"]).limit(1).offset(1)).await.unwrap();
    assert_eq!(names[0].name, "Bob");
    assert_eq!(db.count(Query::table("users")).await.unwrap(), 3);
    assert!(db.exists(Query::table("users").filter("name = ?", params!["Bob"])).await.unwrap());
    assert_eq!(db.sql_update("users", &json!({"age": 26}), "name = ?", params!["Bob"]).await.unwrap(), 1);
    assert_eq!(db.upsert("users", &json!({"id": 1, "name": "Alicia", "age": 31}), &["id"]).await.unwrap(), 1);
    assert_eq!(db.sql_delete("users", "age < ?", params![30]).await.unwrap(), 1);
    assert_eq!(db.execute("UPDATE users SET age = age + 1", params![]).await.unwrap(), 2);
    db.execute_many("INSERT INTO users (name) VALUES (?)", vec![params!["d"], params!["e"]]).await.unwrap();
    assert_eq!(db.fetch_one("SELECT COUNT(*) AS n FROM users", params![]).await.unwrap().unwrap().to_json()["n"], 4);
    assert_eq!(db.fetch_all("SELECT id FROM users", params![]).await.unwrap().len(), 4);
    assert_eq!(db.list_tables().await.unwrap(), ["data", "users"]);
    assert_eq!(db.get_table_schema("users").await.unwrap().len(), 3);
    db.create_index("idx_age", "users", &["age"], false).await.unwrap();
    assert_eq!(db.list_indexes(Some("users")).await.unwrap().len(), 1);
    db.alter_table_add_column("users", "note", "TEXT", Some("it's okay".into())).await.unwrap();
    db.pragma("user_version", Some(7.into())).await.unwrap();
    assert_eq!(db.pragma("user_version", None).await.unwrap(), Some(nanasqlite::SqlValue::Integer(7)));
    db.vacuum().await.unwrap();
    assert!(db.get_db_size().await.unwrap() > 0);
    let validation = |error: Error| matches!(error, Error::Validation { .. });
    assert!(validation(db.query(Query::table("users").order_by("id; DROP TABLE users--")).await.unwrap_err()));
    assert!(validation(db.sql_delete("users", "1=1; DROP TABLE users", params![]).await.unwrap_err()));
    assert!(validation(db.create_table("x; DROP TABLE users", &[("a", "TEXT")]).await.unwrap_err()));
    assert!(validation(db.pragma("compile_options", None).await.unwrap_err()));
    assert!(db.table_exists("users").await.unwrap());
    db.drop_index("idx_age").await.unwrap();
    db.drop_table("users").await.unwrap();
    assert!(!db.table_exists("users").await.unwrap());
    db.close().await.unwrap();
}

async fn transaction_closure(setup: Setup) {
    let db = setup.open().await;
    db.create_table("log", &[("m", "TEXT")]).await.unwrap();
    db.set("a", &0).await.unwrap();
    db.transaction(|tx| {
        tx.set("a", &1)?;
        tx.sql_insert("log", &json!({"m": "a"}))?;
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(db.get::<i32>("a").await.unwrap(), Some(1));
    let failed = db
        .transaction(|tx| -> nanasqlite::Result<()> {
            tx.set("a", &2)?;
            tx.sql_insert("log", &json!({"m": "b"}))?;
            Err(Error::Validation { message: "no".into() })
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(db.get::<i32>("a").await.unwrap(), Some(1), "nothing of a rolled-back transaction is cached");
    assert_eq!(db.count(Query::table("log")).await.unwrap(), 1);
    let panicked = db.transaction(|tx| -> nanasqlite::Result<()> {
        tx.set("a", &3)?;
        panic!("inside")
    });
    assert!(matches!(panicked.await, Err(Error::Panic { .. })));
    assert_eq!(db.get::<i32>("a").await.unwrap(), Some(1), "the cache shows nothing of a panicked transaction");
    assert_eq!(db.get_fresh::<i32>("a").await.unwrap(), Some(1));
    db.close().await.unwrap();
}

async fn begin_guard(setup: Setup) {
    let db = setup.open().await;
    db.set("a", &0).await.unwrap();
    let tx = db.begin().await.unwrap();
    assert!(matches!(db.begin().await, Err(Error::Transaction { .. })), "nested begin");
    assert!(matches!(db.close().await, Err(Error::Transaction { .. })), "close during a transaction");
    tx.set("a", &1).await.unwrap();
    assert_eq!(tx.get::<i32>("a").await.unwrap(), Some(1));
    assert_eq!(db.get::<i32>("a").await.unwrap(), Some(0), "the cache does not see uncommitted writes");
    let waiting = db.set("b", &1); // another writer waits for the transaction
    tx.commit().await.unwrap();
    waiting.await.unwrap();
    assert_eq!(db.get::<i32>("a").await.unwrap(), Some(1));

    let tx = db.begin().await.unwrap();
    tx.set("a", &2).await.unwrap();
    tx.execute("INSERT INTO data VALUES ('c', '3')", params![]).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(db.get_fresh::<i32>("a").await.unwrap(), Some(1));
    assert_eq!(db.get::<i32>("c").await.unwrap(), None);

    let tx = db.begin().await.unwrap();
    tx.set("a", &4).await.unwrap();
    drop(tx); // rolled back
    assert_eq!(db.get_fresh::<i32>("a").await.unwrap(), Some(1));
    let tx = db.begin().await.unwrap(); // the writer is free again
    tx.commit().await.unwrap();
    db.close().await.unwrap();
}

/// `close` does nothing until its first poll: dropped unpolled it closes nothing, and whether
/// a transaction is open is asked at that poll, not when `close` was called.
async fn close_decides_at_its_first_poll(setup: Setup) {
    let db = setup.open().await;
    drop(db.close());
    db.set("k", &1).await.expect("a close dropped unpolled closed nothing");
    let close = db.close();
    let tx = db.begin().await.unwrap();
    assert!(matches!(close.await, Err(Error::Transaction { .. })), "a transaction begun before the first poll");
    tx.set("k", &2).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.get::<i32>("k").await.unwrap(), Some(2), "the refused close left the store open");
    db.close().await.unwrap();
    assert!(db.get::<i32>("k").await.unwrap_err().is_closed());
}

async fn atomic_updates(setup: Setup) {
    let db = setup.open().await;
    let increments = join_all((0..100).map(|_| db.increment::<i64>("counter", 1, None))).await;
    assert!(increments.into_iter().all(|r| r.is_ok()));
    assert_eq!(db.get::<i64>("counter").await.unwrap(), Some(100), "concurrent increments all count");
    // A sync store on the same file, another connection, increments at the same time.
    let path = setup.path.clone();
    let other = std::thread::spawn(move || {
        let sync = NanaSQLite::open(path).unwrap();
        (0..100).for_each(|_| {
            sync.increment::<i64>("counter", 1, None).unwrap();
        });
    });
    join_all((0..100).map(|_| db.increment::<i64>("counter", 1, None))).await.into_iter().for_each(|r| {
        r.unwrap();
    });
    other.join().unwrap();
    assert_eq!(db.get_fresh::<i64>("counter").await.unwrap(), Some(300));
    assert_eq!(db.increment::<Value>("page", 2, Some("hits")).await.unwrap(), json!({"hits": 2}));
    assert_eq!(db.patch("page", &json!({"title": "t"}), false).await.unwrap(), json!({"hits": 2, "title": "t"}));
    assert!(matches!(db.patch("missing", &json!({}), false).await, Err(Error::NotFound { .. })));
    assert!(matches!(db.increment::<Value>("page", 1, None).await, Err(Error::Validation { .. })));
    assert_eq!(db.get::<Value>("page").await.unwrap(), Some(json!({"hits": 2, "title": "t"})));
    db.close().await.unwrap();
}

async fn backup_and_restore(setup: Setup) {
    let dir = setup.path.parent().unwrap().to_path_buf();
    let source = NanaSQLite::open(dir.join("source.db")).unwrap();
    source.set("k", &"from source").unwrap();
    drop(source);
    let db = setup.builder.clone().read_pool_size(2).max_workers(3).open().await.unwrap();
    let other = db.table("other").await.unwrap();
    db.batch_update((0..100).map(|i| (format!("k{i}"), i))).await.unwrap();
    db.set("k", &"live").await.unwrap();
    let dest = dir.join("backup.db");
    db.backup(&dest).await.unwrap();
    assert_eq!(NanaSQLite::open(&dest).unwrap().len().unwrap(), 101);
    assert!(matches!(db.backup(&setup.path).await, Err(Error::Validation { .. })));
    assert!(matches!(db.backup(":memory:").await, Err(Error::Validation { .. })));

    let not_sqlite = dir.join("not.db");
    std::fs::write(&not_sqlite, b"not sqlite").unwrap();
    assert!(matches!(db.restore(&not_sqlite).await, Err(Error::Validation { .. })));
    assert_eq!(db.get_fresh::<String>("k").await.unwrap().as_deref(), Some("live"), "nothing changed");

    let tx = db.begin().await.unwrap();
    assert!(matches!(db.restore(dir.join("source.db")).await, Err(Error::Transaction { .. })));
    tx.rollback().await.unwrap();

    db.restore(dir.join("source.db")).await.unwrap();
    assert_eq!(db.get::<String>("k").await.unwrap().as_deref(), Some("from source"), "caches emptied");
    assert_eq!(db.get::<i32>("k5").await.unwrap(), None, "readers read the new file");
    assert_eq!(db.len().await.unwrap(), 1);
    other.set("x", &1).await.unwrap(); // recreated
    db.set("after", &1).await.unwrap();
    db.close().await.unwrap();
    assert_eq!(NanaSQLite::open(&setup.path).unwrap().get::<i32>("after").unwrap(), Some(1));
    db.restore(dir.join("source.db")).await.unwrap_err();
}
