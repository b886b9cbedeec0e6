//! W1, W2, W3 and W8 of `BENCHMARKS.md` on a PostgreSQL server, for the stores beside the raw
//! `postgres` client in the same run: W1 sequential sets, W2 sequential cold gets, W3 hot gets
//! (a cached key), W8 100 concurrent sets (the async store's group commit); and W1 into a
//! table of 100,000 rows with a `hook::unique` field, beside W1 without it (the check is one
//! lock and one index lookup, not a read of the table).
//!
//! Run: `NANASQLITE_POSTGRES_URL=$(bash .ci/postgres start) cargo bench --bench postgres
//! --features postgres,tokio`. `BENCH_REPS` (default 5) and `BENCH_N` (default 2,000) change the
//! size. Prints ops/s as median [min–max] and the ratios the targets are stated in.

use std::hint::black_box;

mod common;
use common::{Results, env_usize, key, timed, value};

use futures::future::join_all;
use nanasqlite::{AsyncNanaSQLite, NanaSQLite};
use serde_json::Value;

const RAW: &str = "raw postgres";

fn main() {
    let Ok(base) = std::env::var("NANASQLITE_POSTGRES_URL") else {
        eprintln!("skipped: set NANASQLITE_POSTGRES_URL (bash .ci/postgres start prints it)");
        return;
    };
    let (reps, n) = (env_usize("BENCH_REPS", 5), env_usize("BENCH_N", 2_000));
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap();
    admin.batch_execute("DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench").unwrap();
    let url = format!("{base}?options=-csearch_path%3Dbench");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut results = Results::default();
    let unique = unique_table(&url);
    for rep in 0..reps {
        raw(&mut results, &url, n);
        sync_store(&mut results, &url, n);
        runtime.block_on(async_store(&mut results, &url, n));
        unique_writes(&mut results, &unique, n, rep);
    }
    results.print(&format!("PostgreSQL, N = {n}"), &[RAW]);
    let ratio = |workload: &str, system: &str, base_workload: &str| {
        if let (Some(ours), Some(raw)) = (results.median(workload, system), results.median(base_workload, RAW)) {
            println!("{workload} {system} / {base_workload} {RAW} = {:.1}×", ours / raw);
        }
    };
    ratio("W8 100 concurrent sets", "nanasqlite async", "W1 set");
    if let (Some(unique), Some(plain)) =
        (results.median(UNIQUE_W1, "nanasqlite sync"), results.median("W1 set", "nanasqlite sync"))
    {
        println!("{UNIQUE_W1} / W1 set, nanasqlite sync = {:.2}×", unique / plain);
    }
    ratio("W3 hot get", "nanasqlite sync", "W2 cold get");
    ratio("W3 hot get", "nanasqlite async", "W2 cold get");
    admin.batch_execute("DROP SCHEMA bench CASCADE").unwrap();
}

const UNIQUE_W1: &str = "W1 set, unique field, 100k rows";

/// A store on a table of 100,000 rows with a unique `email` field (made once, outside the
/// timings).
fn unique_table(url: &str) -> NanaSQLite<nanasqlite::storage::PostgresStorage> {
    let db = NanaSQLite::postgres(url).table("unique_store").open().unwrap();
    db.clear().unwrap();
    let rows = (0..100_000).map(|i| {
        (format!("old{i:06}"), serde_json::json!({"name": format!("User{i}"), "email": format!("old{i}@example.com")}))
    });
    db.batch_update(rows).unwrap();
    db.add_hook(nanasqlite::hook::unique("email")).unwrap();
    db
}

/// W1 into the table of [`unique_table`]: new keys, new emails, each checked.
fn unique_writes(results: &mut Results, db: &NanaSQLite<nanasqlite::storage::PostgresStorage>, n: usize, rep: usize) {
    let values: Vec<Value> = (0..n)
        .map(|i| serde_json::json!({"name": format!("User{i}"), "email": format!("new{rep}-{i}@example.com")}))
        .collect();
    let elapsed = timed(|| {
        for (i, value) in values.iter().enumerate() {
            db.set(&format!("new{rep}-{i:06}"), value).unwrap();
        }
    });
    results.add("nanasqlite sync", UNIQUE_W1, n, elapsed);
}

fn raw(results: &mut Results, url: &str, n: usize) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client.batch_execute("DROP TABLE IF EXISTS raw; CREATE TABLE raw (key TEXT PRIMARY KEY, value TEXT)").unwrap();
    let put = client
        .prepare("INSERT INTO raw (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
        .unwrap();
    let get = client.prepare("SELECT value FROM raw WHERE key = $1").unwrap();
    let rows: Vec<(String, String)> = (0..n).map(|i| (key(i), value(i).to_string())).collect();
    let elapsed = timed(|| {
        for (key, value) in &rows {
            client.execute(&put, &[key, value]).unwrap();
        }
    });
    results.add(RAW, "W1 set", n, elapsed);
    let elapsed = timed(|| {
        for (key, _) in &rows {
            let row = client.query_one(&get, &[key]).unwrap();
            black_box(serde_json::from_str::<Value>(row.get(0)).unwrap());
        }
    });
    results.add(RAW, "W2 cold get", n, elapsed);
}

fn sync_store(results: &mut Results, url: &str, n: usize) {
    const OURS: &str = "nanasqlite sync";
    let db = NanaSQLite::postgres(url).table("sync_store").open().unwrap();
    db.clear().unwrap();
    let values: Vec<Value> = (0..n).map(value).collect();
    let elapsed = timed(|| {
        for (i, value) in values.iter().enumerate() {
            db.set(&key(i), value).unwrap();
        }
    });
    results.add(OURS, "W1 set", n, elapsed);
    db.clear_cache();
    let elapsed = timed(|| {
        for i in 0..n {
            black_box(db.get::<Value>(&key(i)).unwrap());
        }
    });
    results.add(OURS, "W2 cold get", n, elapsed);
    let hot = key(0);
    let hits = n * 100;
    let elapsed = timed(|| {
        for _ in 0..hits {
            black_box(db.get::<Value>(&hot).unwrap());
        }
    });
    results.add(OURS, "W3 hot get", hits, elapsed);
    db.close().unwrap();
}

async fn async_store(results: &mut Results, url: &str, n: usize) {
    const OURS: &str = "nanasqlite async";
    let db = AsyncNanaSQLite::postgres(url).table("async_store").read_pool_size(2).open().await.unwrap();
    db.clear().await.unwrap();
    let values: Vec<Value> = (0..n).map(value).collect();
    let start = std::time::Instant::now();
    for (i, value) in values.iter().enumerate() {
        db.set(&key(i), value).await.unwrap();
    }
    results.add(OURS, "W1 set", n, start.elapsed());
    db.clear_cache();
    let start = std::time::Instant::now();
    for i in 0..n {
        black_box(db.get::<Value>(&key(i)).await.unwrap());
    }
    results.add(OURS, "W2 cold get", n, start.elapsed());
    let (hot, hits) = (key(0), n * 100);
    let start = std::time::Instant::now();
    for _ in 0..hits {
        black_box(db.get::<Value>(&hot).await.unwrap());
    }
    results.add(OURS, "W3 hot get", hits, start.elapsed());
    let start = std::time::Instant::now();
    for chunk in values.chunks(100).enumerate() {
        let (c, chunk) = chunk;
        let writes = chunk.iter().enumerate().map(|(i, value)| db.set(&format!("w8_{c}_{i}"), value));
        for outcome in join_all(writes).await {
            outcome.unwrap();
        }
    }
    results.add(OURS, "W8 100 concurrent sets", n, start.elapsed());
    db.close().await.unwrap();
}
