//! W1–W8 of `BENCHMARKS.md` for the async store, beside raw rusqlite, tokio-rusqlite and
//! async-sqlite in the same run, on a tokio multi-thread runtime (2 workers).
//!
//! Run: `cargo bench --bench async_store --features tokio`. `BENCH_REPS` (default 5) and
//! `BENCH_N` (default 10,000) change the size. Prints ops/s as median [min–max] and ratios.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::{Results, env_usize, fresh, key, timed, value};

use futures::future::join_all;
use nanasqlite::AsyncNanaSQLite;
use nanasqlite::tokio::TokioBlockingPool;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

const W7_KEYS: usize = 100_000;
const PRAGMAS: &str = "PRAGMA busy_timeout=5000; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
    PRAGMA mmap_size=268435456; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;
    CREATE TABLE IF NOT EXISTS data (key TEXT PRIMARY KEY, value TEXT);";
const PUT: &str = "INSERT OR REPLACE INTO data (key, value) VALUES (?, ?)";
const GET: &str = "SELECT value FROM data WHERE key = ?";

fn main() {
    let reps = env_usize("BENCH_REPS", 5);
    let n = env_usize("BENCH_N", 10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("w7.db");
    write_rows(&big, W7_KEYS);
    let mut results = Results::default();
    for _ in 0..reps {
        run_raw(&mut results, dir.path(), n, &big);
        for system in SYSTEMS {
            runtime.block_on(run_async(&mut results, *system, dir.path(), n, &big));
        }
    }
    results.print(&format!("async store, N = {n}"), &["raw rusqlite", "tokio-rusqlite", "async-sqlite"]);
    if let (Some(w8), Some(w1)) =
        (results.median("W8 100 concurrent sets", "nanasqlite async"), results.median("W1 set", "raw rusqlite"))
    {
        println!("W8 nanasqlite async / W1 raw rusqlite = {:.2}×", w8 / w1);
    }
}

fn write_rows(path: &Path, n: usize) {
    let mut conn = Connection::open(path).unwrap();
    conn.execute_batch(PRAGMAS).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut put = tx.prepare_cached(PUT).unwrap();
        for i in 0..n {
            put.execute(params![key(i), value(i).to_string()]).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// A deterministic stream of key indexes and coin flips (no rand crate needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below
    }
}

// ===== raw rusqlite: one connection, the ceiling for one connection =====

fn run_raw(results: &mut Results, dir: &Path, n: usize, big: &Path) {
    const RAW: &str = "raw rusqlite";
    let path = fresh(dir, "raw.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(PRAGMAS).unwrap();
    let set = |conn: &Connection, i: usize| {
        conn.prepare_cached(PUT).unwrap().execute(params![key(i), value(i).to_string()]).unwrap();
    };
    let get = |conn: &Connection, k: &str| -> Option<Value> {
        let json: Option<String> = conn.prepare_cached(GET).unwrap().query_row([k], |r| r.get(0)).optional().unwrap();
        json.map(|json| serde_json::from_str(&json).unwrap())
    };
    results.add(RAW, "W1 set", n, timed(|| (0..n).for_each(|i| set(&conn, i))));
    drop(conn);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(PRAGMAS).unwrap();
    let keys: Vec<String> = (0..n).map(key).collect();
    results.add(RAW, "W2 cold get", n, timed(|| keys.iter().for_each(|k| drop(black_box(get(&conn, k))))));
    results.add(RAW, "W3 hot get", n, timed(|| keys.iter().for_each(|k| drop(black_box(get(&conn, k))))));
    let mut rng = Lcg(7);
    let mixed = timed(|| {
        for _ in 0..8000 {
            let i = rng.next(n);
            if rng.next(5) == 0 { set(&conn, i) } else { drop(black_box(get(&conn, &keys[i]))) }
        }
    });
    results.add(RAW, "W6 mixed 80/20", 8000, mixed);
    let mut conn = Connection::open(fresh(dir, "raw_batch.db")).unwrap();
    conn.execute_batch(PRAGMAS).unwrap();
    let values: Vec<Value> = (0..n).map(value).collect();
    let batch = timed(|| {
        let tx = conn.transaction().unwrap();
        {
            let mut put = tx.prepare_cached(PUT).unwrap();
            for (k, v) in keys.iter().zip(&values) {
                put.execute(params![k, v.to_string()]).unwrap();
            }
        }
        tx.commit().unwrap();
    });
    results.add(RAW, "W4 batch", n, batch);
    let mut opened = None;
    let open = timed(|| {
        let conn = Connection::open(big).unwrap();
        conn.execute_batch(PRAGMAS).unwrap();
        black_box(get(&conn, &key(7)));
        opened = Some(conn);
    });
    results.add(RAW, "W7 open+get", 1, open);
}

// ===== async systems =====

#[derive(Clone, Copy, Debug)]
enum System {
    Ours,
    OursTokio,
    TokioRusqlite,
    AsyncSqlite,
}

const SYSTEMS: &[System] = &[System::Ours, System::OursTokio, System::TokioRusqlite, System::AsyncSqlite];

impl System {
    fn name(self) -> &'static str {
        match self {
            Self::Ours => "nanasqlite async",
            Self::OursTokio => "nanasqlite tokio-pool",
            Self::TokioRusqlite => "tokio-rusqlite",
            Self::AsyncSqlite => "async-sqlite",
        }
    }
}

/// One open handle of a system.
#[derive(Clone)]
enum Handle {
    Ours(AsyncNanaSQLite),
    TokioRusqlite(tokio_rusqlite::Connection),
    AsyncSqlite(async_sqlite::Pool),
}

impl Handle {
    async fn open(system: System, path: &Path, readers: usize) -> Self {
        match system {
            System::Ours | System::OursTokio => {
                let mut builder = AsyncNanaSQLite::builder(path).read_pool_size(readers);
                if let System::OursTokio = system {
                    builder = builder.spawner(TokioBlockingPool);
                }
                Self::Ours(builder.open().await.unwrap())
            }
            System::TokioRusqlite => {
                let conn = tokio_rusqlite::Connection::open(path).await.unwrap();
                conn.call(|c| c.execute_batch(PRAGMAS)).await.unwrap();
                Self::TokioRusqlite(conn)
            }
            System::AsyncSqlite => {
                let pool = async_sqlite::PoolBuilder::new()
                    .path(path)
                    .journal_mode(async_sqlite::JournalMode::Wal)
                    .num_conns(readers.max(1))
                    .open()
                    .await
                    .unwrap();
                for result in pool.conn_for_each(|c| c.execute_batch(PRAGMAS)).await {
                    result.unwrap();
                }
                Self::AsyncSqlite(pool)
            }
        }
    }

    async fn set(&self, k: String, v: &Value) {
        match self {
            Self::Ours(db) => db.set(&k, v).await.unwrap(),
            Self::TokioRusqlite(conn) => {
                let json = v.to_string();
                conn.call(move |c| c.prepare_cached(PUT)?.execute(params![k, json])).await.unwrap();
            }
            Self::AsyncSqlite(pool) => {
                let json = v.to_string();
                pool.conn(move |c| c.prepare_cached(PUT)?.execute(params![k, json])).await.unwrap();
            }
        }
    }

    async fn get(&self, k: String) -> Option<Value> {
        let json = match self {
            Self::Ours(db) => return db.get(&k).await.unwrap(),
            Self::TokioRusqlite(conn) => conn
                .call(move |c| c.prepare_cached(GET)?.query_row([k], |r| r.get::<_, String>(0)).optional())
                .await
                .unwrap(),
            Self::AsyncSqlite(pool) => pool
                .conn(move |c| c.prepare_cached(GET)?.query_row([k], |r| r.get::<_, String>(0)).optional())
                .await
                .unwrap(),
        };
        json.map(|json| serde_json::from_str(&json).unwrap())
    }

    async fn batch(&self, rows: Vec<(String, Value)>) {
        if let Self::Ours(db) = self {
            return db.batch_update(&rows).await.unwrap();
        }
        let encoded: Vec<(String, String)> = rows.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        let write = move |c: &mut Connection| -> rusqlite::Result<()> {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut put = tx.prepare_cached(PUT)?;
                for (k, json) in &encoded {
                    put.execute(params![k, json])?;
                }
            }
            tx.commit()
        };
        match self {
            Self::Ours(_) => {}
            Self::TokioRusqlite(conn) => conn.call(write).await.unwrap(),
            Self::AsyncSqlite(pool) => pool.conn_mut(write).await.unwrap(),
        }
    }

    async fn close(self) {
        match self {
            Self::Ours(db) => db.close().await.unwrap(),
            Self::TokioRusqlite(conn) => conn.close().await.unwrap(),
            Self::AsyncSqlite(pool) => pool.close().await.unwrap(),
        }
    }
}

async fn timed_async<F: Future<Output = ()>>(work: F) -> Duration {
    let start = Instant::now();
    work.await;
    start.elapsed()
}

/// W6: 8 tasks × 1,000 operations, 80% gets and 20% sets of random keys.
async fn mixed(db: &Handle, values: &[Value]) -> Duration {
    timed_async(async {
        let tasks = (0..8u64).map(|t| {
            let (db, values) = (db.clone(), values.to_vec());
            tokio::spawn(async move {
                let mut rng = Lcg(t + 1);
                for _ in 0..1000 {
                    let i = rng.next(values.len());
                    if rng.next(5) == 0 {
                        db.set(key(i), &values[i]).await;
                    } else {
                        drop(black_box(db.get(key(i)).await));
                    }
                }
            })
        });
        join_all(tasks).await.into_iter().for_each(Result::unwrap);
    })
    .await
}

async fn run_async(results: &mut Results, system: System, dir: &Path, n: usize, big: &Path) {
    let name = system.name();
    let path = fresh(dir, "async.db");
    let keys: Vec<String> = (0..n).map(key).collect();
    let values: Vec<Value> = (0..n).map(value).collect();

    let db = Handle::open(system, &path, 0).await;
    let w1 = timed_async(async {
        for (k, v) in keys.iter().zip(&values) {
            db.set(k.clone(), v).await;
        }
    });
    results.add(name, "W1 set", n, w1.await);
    db.close().await;

    let db = Handle::open(system, &path, 0).await;
    let gets = || async {
        for k in &keys {
            black_box(db.get(k.clone()).await);
        }
    };
    results.add(name, "W2 cold get", n, timed_async(gets()).await);
    results.add(name, "W3 hot get", n, timed_async(gets()).await);
    if let Handle::Ours(ours) = &db {
        let shared = || async {
            for k in &keys {
                black_box(ours.get_shared(k).await.unwrap());
            }
        };
        shared().await;
        results.add(name, "W3 hot get (shared)", n, timed_async(shared()).await);
    }
    db.close().await;

    let db = Handle::open(system, &path, 4).await;
    let w5 = timed_async(async {
        for round in keys.chunks(100) {
            join_all(round.iter().map(|k| db.get(k.clone()))).await;
        }
    });
    results.add(name, "W5 100 concurrent gets", n, w5.await);
    db.close().await;

    // Our store runs W6 with 2 reader lanes; the peers with their single connection.
    let w6_readers = if let System::Ours | System::OursTokio = system { 2 } else { 0 };
    let db = Handle::open(system, &path, w6_readers).await;
    results.add(name, "W6 mixed 80/20", 8000, mixed(&db, &values).await);
    db.close().await;
    if let System::Ours | System::OursTokio = system {
        let warm = AsyncNanaSQLite::builder(&path).read_pool_size(2).bulk_load(true).open().await.unwrap();
        results.add(name, "W6 mixed 80/20 (bulk_load)", 8000, mixed(&Handle::Ours(warm.clone()), &values).await);
        warm.close().await.unwrap();
    }

    let db = Handle::open(system, &fresh(dir, "async_batch.db"), 0).await;
    let rows: Vec<(String, Value)> = keys.iter().cloned().zip(values.iter().cloned()).collect();
    results.add(name, "W4 batch", n, timed_async(db.batch(rows)).await);
    let w8 = timed_async(async {
        for round in keys.chunks(100).zip(values.chunks(100)) {
            join_all(round.0.iter().zip(round.1).map(|(k, v)| db.set(k.clone(), v))).await;
        }
    });
    results.add(name, "W8 100 concurrent sets", n, w8.await);
    db.close().await;

    let start = Instant::now();
    let db = Handle::open(system, big, 0).await;
    black_box(db.get(key(7)).await);
    results.add(name, "W7 open+get", 1, start.elapsed());
    db.close().await;
    if let System::Ours | System::OursTokio = system {
        let start = Instant::now();
        let db = AsyncNanaSQLite::builder(big).bulk_load(true).open().await.unwrap();
        results.add(name, "W7 bulk_load", 1, start.elapsed());
        db.close().await.unwrap();
    }
}
