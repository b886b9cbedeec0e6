//! The async walkthrough: open with a pool, CRUD, batches, concurrent reads, and the
//! performance tips (read pool, batches over loops, concurrency, bulk_load, one shared handle).
//!
//! Run: `cargo run --example async_demo --features tokio`

use std::time::{Duration, Instant};

use futures::future::try_join_all;
use nanasqlite::AsyncNanaSQLite;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> nanasqlite::Result<()> {
    let dir = std::env::temp_dir().join(format!("nanasqlite-async-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("mydata.db");

    // 1. Open: max_workers caps the pool's threads; read_pool_size adds read-only connections
    //    for parallel uncached reads; lock_timeout bounds how long a job may wait to start.
    let db = AsyncNanaSQLite::builder(&path)
        .max_workers(5)
        .read_pool_size(4)
        .lock_timeout(Duration::from_secs(2))
        .open()
        .await?;
    db.aset("key", &"value").await?;
    println!("key = {:?}", db.aget::<String>("key").await?);

    // 2. CRUD
    db.aset("user_1", &json!({"name": "Alice", "age": 25})).await?;
    let mut user: Value = db.aget("user_1").await?.expect("just stored");
    user["age"] = json!(26);
    db.aset("user_1", &user).await?;
    println!("user_1 = {}", db.aget::<Value>("user_1").await?.unwrap_or_default());
    db.adelete("user_1").await?;

    // 3. Batches: one transaction each.
    let data: Vec<(String, Value)> =
        (0..1000).map(|i| (format!("user_{i}"), json!({"name": format!("User{i}")}))).collect();
    db.batch_update(&data).await?;
    let removed = db.batch_delete((0..500).map(|i| format!("user_{i}"))).await?;
    println!("batch: wrote 1000, removed {removed}, {} left", db.alen().await? - 1);

    // 4. Concurrent reads: all in flight at once, served by the read pool.
    db.clear_cache();
    let users: Vec<Option<Value>> = try_join_all(["user_500", "user_501", "user_502"].map(|k| db.aget(k))).await?;
    println!("concurrent reads: {}", users.iter().flatten().count());

    // Tip: a loop of single writes waits for one commit per write...
    let start = Instant::now();
    for i in 0..200 {
        db.aset(&format!("loop_{i}"), &i).await?;
    }
    let looped = start.elapsed();
    // ...while concurrent writes share commits (group commit), and a batch is one commit.
    let start = Instant::now();
    try_join_all((0..200).map(|i| db.aset(&format!("concurrent_{i}"), &i))).await?;
    let concurrent = start.elapsed();
    let start = Instant::now();
    db.batch_update((0..200).map(|i| (format!("batch_{i}"), i))).await?;
    let batched = start.elapsed();
    println!("200 writes: loop {looped:?}, concurrent {concurrent:?}, batch {batched:?}");

    // Tip: 100 concurrent reads; repeated reads are served from the cache on the caller's thread.
    let keys: Vec<String> = (500..600).map(|i| format!("user_{i}")).collect();
    let start = Instant::now();
    try_join_all(keys.iter().map(|k| db.get::<Value>(k))).await?;
    let cold = start.elapsed();
    let start = Instant::now();
    try_join_all(keys.iter().map(|k| db.get::<Value>(k))).await?;
    println!("100 concurrent gets: cold {cold:?}, cached {:?}", start.elapsed());
    println!("stats: {:?}", db.stats());
    db.close().await?;

    // Tip: bulk_load reads the whole table once at open, for read-heavy services.
    let db = AsyncNanaSQLite::builder(&path).bulk_load(true).open().await?;
    println!("bulk-loaded: user_999 cached = {}", db.is_cached("user_999"));

    // Tip: open once, clone the handle into every task (cheap), close at shutdown.
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let db = db.clone();
            tokio::spawn(async move { db.aget::<Value>(&format!("user_{}", 500 + t)).await })
        })
        .collect();
    for handle in handles {
        handle.await.expect("task ran")?;
    }
    db.close().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
