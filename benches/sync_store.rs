//! W1–W4 and W7 of `BENCHMARKS.md` for the sync store, with raw rusqlite (and Python
//! NanaSQLite 1.6.2, when `bash .ci/python-venv` has made its venv) in the same run.
//!
//! Run: `cargo bench --bench sync_store`. `BENCH_REPS` (default 7) and `BENCH_N` (default
//! 10,000) change the size. Prints ops/s as median [min–max] and the ratios to raw rusqlite.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nanasqlite::NanaSQLite;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use serde_json::{Value, json};

const W7_KEYS: usize = 100_000;

fn main() {
    let reps = env_usize("BENCH_REPS", 7);
    let n = env_usize("BENCH_N", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let mut results = Results::default();
    let big = dir.path().join("w7.db");
    write_rows(&big, W7_KEYS);
    for _ in 0..reps {
        run_raw(&mut results, dir.path(), n, &big);
        run_ours(&mut results, dir.path(), n, &big);
    }
    run_python(&mut results, n, reps, &big);
    results.print(n);
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn value(i: usize) -> Value {
    json!({"name": format!("User{i}"), "age": i, "tags": ["admin", "active"], "active": true})
}

/// The benchmark value as a struct, for the typed read.
#[derive(Deserialize)]
#[allow(dead_code)]
struct User {
    name: String,
    age: u64,
    tags: Vec<String>,
    active: bool,
}

fn key(i: usize) -> String {
    format!("key_{i}")
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

fn timed(work: impl FnOnce()) -> Duration {
    let start = Instant::now();
    work();
    start.elapsed()
}

// ===== raw rusqlite: one connection, cached statements, serde_json =====

struct Raw {
    conn: Connection,
}

impl Raw {
    fn open(path: &Path) -> Self {
        let conn = Connection::open(path).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA mmap_size=268435456;
             PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;
             CREATE TABLE IF NOT EXISTS data (key TEXT PRIMARY KEY, value TEXT);",
        )
        .unwrap();
        Self { conn }
    }

    fn set(&self, key: &str, value: &Value) {
        let json = serde_json::to_string(value).unwrap();
        let mut statement = self.conn.prepare_cached("INSERT OR REPLACE INTO data (key, value) VALUES (?, ?)").unwrap();
        statement.execute(params![key, json]).unwrap();
    }

    fn get(&self, key: &str) -> Option<Value> {
        let mut statement = self.conn.prepare_cached("SELECT value FROM data WHERE key = ?").unwrap();
        let json: Option<String> = statement.query_row([key], |row| row.get(0)).optional().unwrap();
        json.map(|json| serde_json::from_str(&json).unwrap())
    }

    fn batch(&mut self, rows: &[(String, Value)]) {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
        {
            let mut statement = tx.prepare_cached("INSERT OR REPLACE INTO data (key, value) VALUES (?, ?)").unwrap();
            for (key, value) in rows {
                statement.execute(params![key, serde_json::to_string(value).unwrap()]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
}

fn write_rows(path: &Path, n: usize) {
    let rows: Vec<_> = (0..n).map(|i| (key(i), value(i))).collect();
    Raw::open(path).batch(&rows);
}

fn run_raw(results: &mut Results, dir: &Path, n: usize, big: &Path) {
    const RAW: &str = "raw rusqlite";
    let path = fresh(dir, "raw.db");
    let raw = Raw::open(&path);
    let values: Vec<_> = (0..n).map(value).collect();
    results.add(RAW, "W1 set", n, timed(|| (0..n).for_each(|i| raw.set(&key(i), &values[i]))));
    drop(raw);
    let raw = Raw::open(&path);
    let keys: Vec<_> = (0..n).map(key).collect();
    let get = |k: &String| drop(black_box(raw.get(k)));
    results.add(RAW, "W2 cold get", n, timed(|| keys.iter().for_each(get)));
    results.add(RAW, "W3 hot get", n, timed(|| keys.iter().for_each(get)));
    let mut raw = Raw::open(&fresh(dir, "raw_batch.db"));
    let rows: Vec<_> = (0..n).map(|i| (key(i), value(i))).collect();
    results.add(RAW, "W4 batch", n, timed(|| raw.batch(&rows)));
    let mut opened = None;
    results.add(
        RAW,
        "W7 open+get",
        1,
        timed(|| {
            let raw = Raw::open(big);
            black_box(raw.get(&key(7)));
            opened = Some(raw);
        }),
    );
}

// ===== nanasqlite sync store =====

fn run_ours(results: &mut Results, dir: &Path, n: usize, big: &Path) {
    const OURS: &str = "nanasqlite sync";
    let path = fresh(dir, "ours.db");
    let db = NanaSQLite::open(&path).unwrap();
    let values: Vec<_> = (0..n).map(value).collect();
    results.add(OURS, "W1 set", n, timed(|| (0..n).for_each(|i| db.set(&key(i), &values[i]).unwrap())));
    db.close().unwrap();
    let db = NanaSQLite::open(&path).unwrap();
    let keys: Vec<_> = (0..n).map(key).collect();
    let get = |k: &String| drop(black_box(db.get::<Value>(k).unwrap()));
    results.add(OURS, "W2 cold get", n, timed(|| keys.iter().for_each(get)));
    results.add(OURS, "W3 hot get", n, timed(|| keys.iter().for_each(get)));
    let typed = |k: &String| drop(black_box(db.get::<User>(k).unwrap()));
    results.add(OURS, "W3 hot get (struct)", n, timed(|| keys.iter().for_each(typed)));
    let shared = |k: &String| drop(black_box(db.get_shared(k).unwrap()));
    keys.iter().for_each(shared); // read once: the shared value is parsed on its first read
    results.add(OURS, "W3 hot get (shared)", n, timed(|| keys.iter().for_each(shared)));
    let contains = |k: &String| assert!(db.contains(k).unwrap());
    results.add(OURS, "W3 hot contains", n, timed(|| keys.iter().for_each(contains)));
    let db = NanaSQLite::open(fresh(dir, "ours_batch.db")).unwrap();
    let rows: Vec<_> = (0..n).map(|i| (key(i), value(i))).collect();
    results.add(OURS, "W4 batch", n, timed(|| db.batch_update(&rows).unwrap()));
    let mut opened = None;
    let open_get = || {
        let db = NanaSQLite::open(big).unwrap();
        black_box(db.get::<Value>(&key(7)).unwrap());
        opened = Some(db);
    };
    results.add(OURS, "W7 open+get", 1, timed(open_get));
    let bulk = || opened = Some(NanaSQLite::builder(big).bulk_load(true).open().unwrap());
    results.add(OURS, "W7 bulk_load", 1, timed(bulk));
    drop(opened); // closing is not part of opening
}

// ===== Python NanaSQLite 1.6.2 =====

fn run_python(results: &mut Results, n: usize, reps: usize, big: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("NANASQLITE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/interop-venv/bin/python"));
    if !python.exists() {
        eprintln!("python nanasqlite: skipped (run `bash .ci/python-venv` first)");
        return;
    }
    let output = Command::new(&python)
        .arg(root.join("benches/python_nanasqlite.py"))
        .args([n.to_string(), reps.to_string(), big.display().to_string()])
        .output()
        .expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let sample: PythonSample = serde_json::from_str(line).unwrap();
        let system = if sample.system == "sync" { "python nanasqlite" } else { "python async" };
        results.add_owned(system, sample.workload, sample.ops, Duration::from_secs_f64(sample.seconds));
    }
}

#[derive(Deserialize)]
struct PythonSample {
    system: String,
    workload: String,
    ops: usize,
    seconds: f64,
}

// ===== report =====

#[derive(Default)]
struct Results {
    /// (workload, system) → ops/s of each repetition.
    rates: BTreeMap<(String, String), Vec<f64>>,
}

impl Results {
    fn add(&mut self, system: &str, workload: &str, ops: usize, elapsed: Duration) {
        self.add_owned(system, workload.to_owned(), ops, elapsed);
    }

    fn add_owned(&mut self, system: &str, workload: String, ops: usize, elapsed: Duration) {
        let rate = ops as f64 / elapsed.as_secs_f64();
        self.rates.entry((workload, system.to_owned())).or_default().push(rate);
    }

    fn median(&self, workload: &str, system: &str) -> Option<f64> {
        let mut rates = self.rates.get(&(workload.to_owned(), system.to_owned()))?.clone();
        rates.sort_by(f64::total_cmp);
        Some(rates[rates.len() / 2])
    }

    fn print(&self, n: usize) {
        println!("sync store, N = {n}; ops/s, median [min–max] of the repetitions");
        println!("{:<22} {:<18} {:>24} {:>8} {:>9}", "workload", "system", "ops/s", "vs raw", "vs python");
        for ((workload, system), rates) in &self.rates {
            let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
            let max = rates.iter().copied().fold(0.0, f64::max);
            let median = self.median(workload, system).unwrap_or_default();
            let spread = format!("{} [{}–{}]", human(median), human(min), human(max));
            let raw = self.ratio(median, workload, "raw rusqlite");
            let python = self.ratio(median, workload, "python nanasqlite");
            println!("{workload:<22} {system:<18} {spread:>24} {raw:>8} {python:>9}");
        }
    }

    /// `median` over `system`'s median for the same workload (a variant such as
    /// "W3 hot get (struct)" is compared with "W3 hot get").
    fn ratio(&self, median: f64, workload: &str, system: &str) -> String {
        let base = workload.split(" (").next().unwrap_or(workload);
        self.median(base, system).map_or_else(|| "—".to_owned(), |other| format!("{:.2}×", median / other))
    }
}

fn human(rate: f64) -> String {
    match rate {
        r if r >= 1e6 => format!("{:.2}M", r / 1e6),
        r if r >= 1e3 => format!("{:.1}k", r / 1e3),
        r => format!("{r:.1}"),
    }
}
