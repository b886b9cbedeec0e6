//! W1–W8 of `BENCHMARKS.md` for the async store, beside raw rusqlite, tokio-rusqlite and
//! async-sqlite in the same run, on a tokio multi-thread runtime (2 workers), and W1–W3 of
//! Python NanaSQLite 1.6.2's `AsyncNanaSQLite` (`benches/python_async.py`, when its venv is
//! there: `bash .ci/python-venv`).
//!
//! Each repetition of each system runs in a process of its own, as Python's does.
//!
//! Run: `cargo bench --bench async_store --features tokio`. `BENCH_REPS` (default 5) and
//! `BENCH_N` (default 10,000) change the size. Prints ops/s as median [min–max] and ratios.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{Results, User, env_usize, fresh, key, timed, value};

use futures::future::join_all;
use nanasqlite::AsyncNanaSQLite;
use nanasqlite::tokio::TokioBlockingPool;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

const W7_KEYS: usize = 100_000;
/// Opens timed per repetition in W7: one open lasts well under a millisecond, so a single one
/// is at the mercy of whatever else the machine does at that instant.
const W7_OPENS: usize = 20;
const PRAGMAS: &str = "PRAGMA busy_timeout=5000; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
    PRAGMA mmap_size=268435456; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;
    CREATE TABLE IF NOT EXISTS data (key TEXT PRIMARY KEY, value TEXT);";
const PUT: &str = "INSERT OR REPLACE INTO data (key, value) VALUES (?, ?)";
const GET: &str = "SELECT value FROM data WHERE key = ?";

fn main() {
    let reps = env_usize("BENCH_REPS", 5);
    let n = env_usize("BENCH_N", 10_000);
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == CHILD) {
        let (system, dir) = (&args[at + 1], Path::new(&args[at + 2]));
        return run_one(system, dir, n);
    }
    let dir = tempfile::tempdir().unwrap();
    write_rows(&dir.path().join("w7.db"), W7_KEYS);
    let mut results = Results::default();
    for _ in 0..reps {
        for system in std::iter::once(RAW).chain(SYSTEMS.iter().map(|system| system.name())) {
            results.absorb(&run_child(system, dir.path()));
        }
    }
    let python = [n.to_string(), reps.to_string()];
    for sample in common::run_python("python_async.py", &python).unwrap_or_default() {
        let system = if sample.system == "sync" { "python sync" } else { "python async" };
        results.add(system, &sample.workload, sample.ops, sample.elapsed());
    }
    results
        .print(&format!("async store, N = {n}"), &["raw rusqlite", "tokio-rusqlite", "async-sqlite", "python async"]);
    if let Some(floor) = results.median("floor: round trip", "nanasqlite async") {
        println!("one round trip to the writer and back: {:.1} µs", 1e6 / floor);
        for workload in ["W1 set", "W2 cold get"] {
            if let (Some(ours), Some(raw)) =
                (results.median(workload, "nanasqlite async"), results.median(workload, "raw rusqlite"))
            {
                println!(
                    "{workload}: ours {:.1} µs, raw {:.1} µs: {:.1} round trips apart",
                    1e6 / ours,
                    1e6 / raw,
                    (1e6 / ours - 1e6 / raw) / (1e6 / floor)
                );
            }
        }
    }
    if let (Some(ours), Some(python)) =
        (results.median("W3 hot get (shared)", "nanasqlite async"), results.median("W3 hot get (dict)", "python sync"))
    {
        println!(
            "W3s: async get_shared {:.2}M/s, Python's sync dict hit {:.2}M/s: {:.2}×",
            ours / 1e6,
            python / 1e6,
            ours / python
        );
    }
    for ours in ["nanasqlite async", "nanasqlite inline writes"] {
        if let (Some(w8), Some(w1)) =
            (results.median("W8 100 concurrent sets", ours), results.median("W1 set", "raw rusqlite"))
        {
            println!("W8 {ours} / W1 raw rusqlite = {:.2}×", w8 / w1);
        }
        if let (Some(w5), Some(w2)) =
            (results.median("W5 100 concurrent gets", ours), results.median("W2 cold get", "raw rusqlite"))
        {
            println!("W5 {ours} / W2 raw rusqlite = {:.2}×", w5 / w2);
        }
    }
}

/// The argument that makes this benchmark a child measuring one system.
const CHILD: &str = "--one-system";

/// Runs one repetition of `system` in a process of its own, as Python's runs, so that no system
/// is measured in the heap, threads and caches another one left behind. Passes on what the child
/// says besides its samples.
fn run_child(system: &str, dir: &Path) -> String {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe).args([CHILD, system]).arg(dir).output().expect("the child runs");
    assert!(output.status.success(), "{system}: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).expect("the child prints UTF-8");
    stdout.lines().filter(|line| !line.starts_with('{')).for_each(|line| println!("{line}"));
    stdout
}

/// In the child: one repetition of `system`, its samples printed as JSON lines.
fn run_one(system: &str, dir: &Path, n: usize) {
    let mut results = Results::default();
    let big = dir.join("w7.db");
    if system == RAW {
        run_raw(&mut results, dir, n, &big);
    } else {
        let system = *SYSTEMS.iter().find(|known| known.name() == system).expect("a known system");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run_async(&mut results, system, dir, n, &big));
    }
    results.emit();
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

const RAW: &str = "raw rusqlite";

fn run_raw(results: &mut Results, dir: &Path, n: usize, big: &Path) {
    let path = fresh(dir, "raw.db");
    let keys: Vec<String> = (0..n).map(key).collect();
    let values: Vec<Value> = (0..n).map(value).collect();
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(PRAGMAS).unwrap();
    // Each system gets the same prebuilt keys and values, and encodes each value when it writes.
    let set = |conn: &Connection, i: usize| {
        conn.prepare_cached(PUT).unwrap().execute(params![keys[i], values[i].to_string()]).unwrap();
    };
    let get = |conn: &Connection, k: &str| -> Option<Value> {
        let json: Option<String> = conn.prepare_cached(GET).unwrap().query_row([k], |r| r.get(0)).optional().unwrap();
        json.map(|json| serde_json::from_str(&json).unwrap())
    };
    results.add(RAW, "W1 set", n, timed(|| (0..n).for_each(|i| set(&conn, i))));
    check_count(RAW, "W1 set", raw_count(&conn), n);
    drop(conn);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(PRAGMAS).unwrap();
    for workload in ["W2 cold get", "W3 hot get"] {
        let mut got = Vec::with_capacity(n);
        results.add(RAW, workload, n, timed(|| got.extend(keys.iter().map(|k| get(&conn, k)))));
        check_values(RAW, workload, &got, &values);
    }
    let mut rng = Lcg(7);
    let mut found = 0;
    let mixed = timed(|| {
        for _ in 0..8000 {
            let i = rng.next(n);
            if rng.next(5) == 0 {
                set(&conn, i);
            } else {
                found += usize::from(black_box(get(&conn, &keys[i])).is_some());
            }
        }
    });
    results.add(RAW, "W6 mixed 80/20", 8000, mixed);
    assert!(found > 6000, "{RAW} W6: {found} of about 6,400 gets found their key");
    let mut conn = Connection::open(fresh(dir, "raw_batch.db")).unwrap();
    conn.execute_batch(PRAGMAS).unwrap();
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
    check_count(RAW, "W4 batch", raw_count(&conn), n);
    let mut open = Duration::ZERO;
    for _ in 0..W7_OPENS {
        let mut opened = None;
        open += timed(|| {
            let conn = Connection::open(big).unwrap();
            conn.execute_batch(PRAGMAS).unwrap();
            opened = Some((get(&conn, &key(7)), conn));
        });
        check_values(RAW, "W7 open+get", &[opened.unwrap().0], &[value(7)]);
    }
    results.add(RAW, "W7 open+get", W7_OPENS, open);
}

fn raw_count(conn: &Connection) -> usize {
    conn.query_row("SELECT count(*) FROM data", [], |row| row.get::<_, i64>(0)).unwrap() as usize
}

/// A system whose answers are wrong posts no figure: the run stops.
fn check_values(system: &str, workload: &str, got: &[Option<Value>], expected: &[Value]) {
    assert_eq!(got.len(), expected.len(), "{system} {workload}: answers missing");
    for (i, (got, expected)) in got.iter().zip(expected).enumerate() {
        assert_eq!(got.as_ref(), Some(expected), "{system} {workload}: wrong value for key {i}");
    }
}

fn check_count(system: &str, workload: &str, rows: usize, expected: usize) {
    assert_eq!(rows, expected, "{system} {workload}: {rows} rows in the file, {expected} written");
}

// ===== async systems =====

#[derive(Clone, Copy, Debug)]
enum System {
    Ours,
    OursInline,
    OursTokio,
    TokioRusqlite,
    AsyncSqlite,
}

const SYSTEMS: &[System] =
    &[System::Ours, System::OursInline, System::OursTokio, System::TokioRusqlite, System::AsyncSqlite];

impl System {
    fn name(self) -> &'static str {
        match self {
            Self::Ours => "nanasqlite async",
            Self::OursInline => "nanasqlite inline writes",
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
    /// Opens `path` with `connections` SQLite connections where the system can have several
    /// (ours: the writer and `connections - 1` readers; async-sqlite: a pool of that size);
    /// tokio-rusqlite always has one.
    async fn open(system: System, path: &Path, connections: usize) -> Self {
        match system {
            System::Ours | System::OursInline | System::OursTokio => {
                let mut builder = AsyncNanaSQLite::builder(path).read_pool_size(connections - 1);
                if let System::OursTokio = system {
                    builder = builder.spawner(TokioBlockingPool);
                }
                if let System::OursInline = system {
                    builder = builder.inline_writes(true);
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
                    .num_conns(connections)
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

    /// Writes `rows` in one transaction. They are borrowed: dropping 10,000 parsed values takes
    /// milliseconds, which raw rusqlite's loop does not pay inside its time either.
    async fn batch(&self, rows: &[(String, Value)]) {
        if let Self::Ours(db) = self {
            return db.batch_update(rows).await.unwrap();
        }
        self.batch_of_peer(rows).await;
    }

    async fn batch_of_peer(&self, rows: &[(String, Value)]) {
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

    /// The rows in the file, counted by the system itself.
    async fn count(&self) -> usize {
        let count = |c: &Connection| c.query_row("SELECT count(*) FROM data", [], |row| row.get::<_, i64>(0));
        let rows = match self {
            Self::Ours(db) => return db.len().await.unwrap(),
            Self::TokioRusqlite(conn) => conn.call(move |c| count(c)).await.unwrap(),
            Self::AsyncSqlite(pool) => pool.conn(move |c| count(c)).await.unwrap(),
        };
        rows as usize
    }

    async fn close(self) {
        match self {
            Self::Ours(db) => db.close().await.unwrap(),
            Self::TokioRusqlite(conn) => conn.close().await.unwrap(),
            Self::AsyncSqlite(pool) => pool.close().await.unwrap(),
        }
    }
}

/// What inline reads and writes do to the runtime: a task that sleeps 1 ms at a time and
/// records how late it wakes, beside W5 (cold gets, 100 at a time; five passes) with inline
/// reads on and off, beside 50,000 sequential sets with inline writes on and off, and with no
/// load at all (the timer's own lateness), on the multi-thread runtime the benchmark runs on
/// and on a current-thread runtime (where the ticker shares the one thread with the load, and
/// wakes only when it yields). Prints the p50 and p99, and the sets' rate.
async fn timer_lateness(dir: &Path, path: &Path, keys: &[String]) {
    timer_lateness_on("multi-thread", dir, path, keys).await;
    let (dir, path, keys) = (dir.to_owned(), path.to_owned(), keys.to_vec());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(timer_lateness_on("current-thread", &dir, &path, &keys));
    })
    .join()
    .unwrap();
}

/// Sequential sets in the write-lateness runs.
const LATENESS_SETS: usize = 50_000;

async fn timer_lateness_on(runtime: &str, dir: &Path, path: &Path, keys: &[String]) {
    let builder = |path: &Path| AsyncNanaSQLite::builder(path).read_pool_size(3);
    let idle = builder(path).open().await.unwrap();
    print_lateness(runtime, "no load", beside_ticker(tokio::time::sleep(Duration::from_millis(200))).await);
    idle.close().await.unwrap();
    for (label, inline) in [("W5 x5, inline reads on", true), ("W5 x5, inline reads off", false)] {
        let db = builder(path).inline_reads(inline).open().await.unwrap();
        let reads = async {
            for _ in 0..5 {
                for round in keys.chunks(100) {
                    db.clear_cache();
                    for got in join_all(round.iter().map(|k| db.get::<Value>(k))).await {
                        black_box(got.unwrap());
                    }
                }
            }
        };
        print_lateness(runtime, label, beside_ticker(reads).await);
        db.close().await.unwrap();
    }
    let runs = [
        ("50k sets, inline writes on", true, false),
        ("50k sets, inline writes off", false, false),
        ("50k sets in a spawned task, inline writes on", true, true),
        ("50k sets in a spawned task, inline writes off", false, true),
    ];
    for (label, inline, spawned) in runs {
        let db = builder(&fresh(dir, "lateness.db")).inline_writes(inline).open().await.unwrap();
        let start = Instant::now();
        let writer = db.clone();
        let sets = async move {
            for i in 0..LATENESS_SETS {
                writer.set(&key(i), &value(i)).await.unwrap();
            }
        };
        let late = if spawned {
            beside_ticker(async { tokio::spawn(sets).await.unwrap() }).await
        } else {
            beside_ticker(sets).await
        };
        let rate = LATENESS_SETS as f64 / start.elapsed().as_secs_f64();
        print_lateness(runtime, &format!("{label} ({:.1}k sets/s)", rate / 1e3), late);
        db.close().await.unwrap();
    }
}

/// How late a task sleeping 1 ms at a time woke, each time, while `load` ran.
async fn beside_ticker(load: impl Future<Output = ()>) -> Vec<Duration> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut late = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let start = Instant::now();
                tokio::time::sleep(Duration::from_millis(1)).await;
                late.push(start.elapsed().saturating_sub(Duration::from_millis(1)));
            }
            late
        })
    };
    load.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    ticker.await.unwrap()
}

fn print_lateness(runtime: &str, label: &str, mut late: Vec<Duration>) {
    late.sort_unstable();
    let at = |q: usize| late.get(late.len() * q / 100).copied().unwrap_or_default().as_secs_f64() * 1e6;
    println!(
        "timer lateness, {runtime}, {label}: p50 {:.0} µs, p99 {:.0} µs over {} ticks",
        at(50),
        at(99),
        late.len()
    );
}

async fn timed_async<F: Future<Output = ()>>(work: F) -> Duration {
    timed_async_with(work).await.0
}

/// The time `work` took, and its output (checked after the clock stops).
async fn timed_async_with<T, F: Future<Output = T>>(work: F) -> (Duration, T) {
    let start = Instant::now();
    let output = work.await;
    (start.elapsed(), output)
}

/// W6: 8 tasks × 1,000 operations, 80% gets and 20% sets of random keys. The tasks' handles
/// and values are made before the clock starts.
async fn mixed(db: &Handle, values: &Arc<Vec<Value>>) -> Duration {
    let tasks: Vec<_> = (0..8u64).map(|t| (t, db.clone(), Arc::clone(values))).collect();
    let (elapsed, found) = timed_async_with(async {
        let tasks = tasks.into_iter().map(|(t, db, values)| {
            tokio::spawn(async move {
                let (mut rng, mut found) = (Lcg(t + 1), 0);
                for _ in 0..1000 {
                    let i = rng.next(values.len());
                    if rng.next(5) == 0 {
                        db.set(key(i), &values[i]).await;
                    } else {
                        found += usize::from(black_box(db.get(key(i)).await).is_some());
                    }
                }
                found
            })
        });
        join_all(tasks).await.into_iter().map(Result::unwrap).sum::<usize>()
    })
    .await;
    assert!(found > 6000, "W6: {found} of about 6,400 gets found their key");
    elapsed
}

async fn run_async(results: &mut Results, system: System, dir: &Path, n: usize, big: &Path) {
    let name = system.name();
    let path = fresh(dir, "async.db");
    let keys: Vec<String> = (0..n).map(key).collect();
    let values: Vec<Value> = (0..n).map(value).collect();

    let db = Handle::open(system, &path, 1).await;
    let w1 = timed_async(async {
        for (k, v) in keys.iter().zip(&values) {
            db.set(k.clone(), v).await;
        }
    });
    results.add(name, "W1 set", n, w1.await);
    check_count(name, "W1 set", db.count().await, n);
    db.close().await;

    let db = Handle::open(system, &path, 1).await;
    let gets = || async {
        let mut got = Vec::with_capacity(n);
        for k in &keys {
            got.push(black_box(db.get(k.clone()).await));
        }
        got
    };
    for workload in ["W2 cold get", "W3 hot get"] {
        let (elapsed, got) = timed_async_with(gets()).await;
        results.add(name, workload, n, elapsed);
        check_values(name, workload, &got, &values);
    }
    if let Handle::Ours(ours) = &db {
        let shared = || async {
            let mut found = 0;
            for k in &keys {
                found += usize::from(black_box(ours.get_shared(k).await.unwrap()).is_some());
            }
            found
        };
        shared().await;
        let (elapsed, found) = timed_async_with(shared()).await;
        results.add(name, "W3 hot get (shared)", n, elapsed);
        check_count(name, "W3 hot get (shared)", found, n);
        // Owned typed hits: decoded from the text each time, and cloned from the kept copy
        // (`get_cloned`; the cache is cleared before and after, since a key keeps a decoded copy
        // of the first type it is read as: `Value` for get_shared above, `User` here).
        let (elapsed, found) = timed_async_with(async {
            let mut found = 0;
            for k in &keys {
                found += usize::from(black_box(ours.get::<User>(k).await.unwrap()).is_some());
            }
            found
        })
        .await;
        results.add(name, "W3 hot get (struct)", n, elapsed);
        check_count(name, "W3 hot get (struct)", found, n);
        let cloned = || async {
            let mut found = 0;
            for k in &keys {
                found += usize::from(black_box(ours.get_cloned::<User>(k).await.unwrap()).is_some());
            }
            found
        };
        ours.clear_cache();
        cloned().await;
        let (elapsed, found) = timed_async_with(cloned()).await;
        results.add(name, "W3 hot get (struct, cloned)", n, elapsed);
        check_count(name, "W3 hot get (struct, cloned)", found, n);
        ours.clear_cache();
        // The floor of every call that crosses threads: caller task -> writer -> caller, with
        // nothing to do there (`call` with an empty closure).
        let floor = timed_async(async {
            for _ in 0..n {
                ours.call(|_| Ok(())).await.unwrap();
            }
        });
        results.add(name, "floor: round trip", n, floor.await);
    }
    db.close().await;

    // W5 and W6: four connections where the system can have several (tokio-rusqlite has one).
    let db = Handle::open(system, &path, 4).await;
    let (w5, got) = timed_async_with(async {
        let mut got = Vec::with_capacity(n);
        for round in keys.chunks(100) {
            got.extend(join_all(round.iter().map(|k| db.get(k.clone()))).await);
        }
        got
    })
    .await;
    results.add(name, "W5 100 concurrent gets", n, w5);
    check_values(name, "W5 100 concurrent gets", &got, &values);
    db.close().await;
    if let System::Ours = system {
        timer_lateness(dir, &path, &keys).await;
    }

    let values = Arc::new(values);
    let db = Handle::open(system, &path, 4).await;
    results.add(name, "W6 mixed 80/20", 8000, mixed(&db, &values).await);
    db.close().await;
    if let System::Ours | System::OursTokio = system {
        let warm = AsyncNanaSQLite::builder(&path).read_pool_size(3).bulk_load(true).open().await.unwrap();
        results.add(name, "W6 mixed 80/20 (bulk_load)", 8000, mixed(&Handle::Ours(warm.clone()), &values).await);
        warm.close().await.unwrap();
    }

    let db = Handle::open(system, &fresh(dir, "async_batch.db"), 1).await;
    let rows: Vec<(String, Value)> = keys.iter().cloned().zip(values.iter().cloned()).collect();
    results.add(name, "W4 batch", n, timed_async(db.batch(&rows)).await);
    check_count(name, "W4 batch", db.count().await, n);
    let fresh_keys: Vec<String> = (n..2 * n).map(key).collect();
    let w8 = timed_async(async {
        for round in fresh_keys.chunks(100).zip(values.chunks(100)) {
            join_all(round.0.iter().zip(round.1).map(|(k, v)| db.set(k.clone(), v))).await;
        }
    });
    results.add(name, "W8 100 concurrent sets", n, w8.await);
    check_count(name, "W8 100 concurrent sets", db.count().await, 2 * n);
    db.close().await;

    // Ours as the issue measured it, with `read_pool_size(4)` (readers start on first need);
    // each peer with one connection, its cheapest open.
    let connections = if let System::Ours | System::OursInline | System::OursTokio = system { 5 } else { 1 };
    let mut open = Duration::ZERO;
    for _ in 0..W7_OPENS {
        let start = Instant::now();
        let db = Handle::open(system, big, connections).await;
        let got = db.get(key(7)).await;
        open += start.elapsed();
        check_values(name, "W7 open+get", &[got], &[value(7)]);
        db.close().await;
    }
    results.add(name, "W7 open+get", W7_OPENS, open);
    if let System::Ours | System::OursTokio = system {
        let start = Instant::now();
        let db = AsyncNanaSQLite::builder(big).bulk_load(true).open().await.unwrap();
        results.add(name, "W7 bulk_load", 1, start.elapsed());
        check_count(name, "W7 bulk_load", db.len().await.unwrap(), W7_KEYS);
        db.close().await.unwrap();
    }
}
