//! W1–W4 and W7 of `BENCHMARKS.md` for the sync store, with raw rusqlite (and Python
//! NanaSQLite 1.6.2, when `bash .ci/python-venv` has made its venv) in the same run.
//!
//! Run: `cargo bench --bench sync_store`. `BENCH_REPS` (default 7) and `BENCH_N` (default
//! 10,000) change the size. Prints ops/s as median [min–max] and the ratios to raw rusqlite.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

mod common;
use common::{Results, User, env_usize, fresh, key, timed, value};

use nanasqlite::{CacheStrategy, Encryption, NanaSQLite};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

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
        run_encrypted(&mut results, dir.path(), n);
    }
    run_python(&mut results, n, reps, &big);
    results.print(&format!("sync store, N = {n}"), &["raw rusqlite", "python nanasqlite", "nanasqlite sync"]);
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
    let get = |k: &&String| black_box(raw.get(k)).is_some();
    for workload in ["W2 cold get", "W3 hot get"] {
        let mut found = 0;
        results.add(RAW, workload, n, timed(|| found = keys.iter().filter(get).count()));
        check(RAW, workload, found, n);
    }
    let mut raw = Raw::open(&fresh(dir, "raw_batch.db"));
    let rows: Vec<_> = (0..n).map(|i| (key(i), value(i))).collect();
    results.add(RAW, "W4 batch", n, timed(|| raw.batch(&rows)));
    check(RAW, "W4 batch", usize::from(raw.get(&key(n - 1)) == Some(value(n - 1))), 1);
    let mut opened = None;
    results.add(
        RAW,
        "W7 open+get",
        1,
        timed(|| {
            let raw = Raw::open(big);
            let got = black_box(raw.get(&key(7)));
            opened = Some((got, raw));
        }),
    );
    check(RAW, "W7 open+get", usize::from(opened.unwrap().0 == Some(value(7))), 1);
}

/// A system whose answers are wrong posts no figure: the run stops.
fn check(system: &str, workload: &str, got: usize, expected: usize) {
    assert_eq!(got, expected, "{system} {workload}: {got} right answers of {expected}");
}

// ===== nanasqlite sync store =====

fn run_ours(results: &mut Results, dir: &Path, n: usize, big: &Path) {
    const OURS: &str = "nanasqlite sync";
    let path = fresh(dir, "ours.db");
    let db = NanaSQLite::open(&path).unwrap();
    let values: Vec<_> = (0..n).map(value).collect();
    results.add(OURS, "W1 set", n, timed(|| (0..n).for_each(|i| db.set(&key(i), &values[i]).unwrap())));
    check(OURS, "W1 set", db.len().unwrap(), n);
    db.close().unwrap();
    let db = NanaSQLite::open(&path).unwrap();
    let keys: Vec<_> = (0..n).map(key).collect();
    let get = |k: &&String| black_box(db.get::<Value>(k).unwrap()).is_some();
    for workload in ["W2 cold get", "W3 hot get"] {
        let mut found = 0;
        results.add(OURS, workload, n, timed(|| found = keys.iter().filter(get).count()));
        check(OURS, workload, found, n);
    }
    let typed = |k: &String| drop(black_box(db.get::<User>(k).unwrap()));
    results.add(OURS, "W3 hot get (struct)", n, timed(|| keys.iter().for_each(typed)));
    let shared = |k: &String| drop(black_box(db.get_shared(k).unwrap()));
    keys.iter().for_each(shared); // read once: the shared value is parsed on its first read
    results.add(OURS, "W3 hot get (shared)", n, timed(|| keys.iter().for_each(shared)));
    // Cleared first: a key keeps a decoded copy of the first type it is read as (`Value` for
    // get_shared above, `User` here).
    db.clear_cache();
    let cloned = |k: &String| drop(black_box(db.get_cloned::<User>(k).unwrap()));
    keys.iter().for_each(cloned);
    results.add(OURS, "W3 hot get (struct, cloned)", n, timed(|| keys.iter().for_each(cloned)));
    for (name, strategy) in [
        ("W3 hot get (lru)", CacheStrategy::Lru { size: n }),
        ("W3 hot get (ttl)", CacheStrategy::Ttl { ttl: Duration::from_secs(3600), size: None, delete_expired: false }),
    ] {
        let cached = NanaSQLite::builder(&path).cache(strategy).open().unwrap();
        let get = |k: &String| drop(black_box(cached.get_shared(k).unwrap()));
        keys.iter().for_each(get);
        results.add(OURS, name, n, timed(|| keys.iter().for_each(get)));
    }
    let contains = |k: &String| assert!(db.contains(k).unwrap());
    results.add(OURS, "W3 hot contains", n, timed(|| keys.iter().for_each(contains)));
    let db = NanaSQLite::open(fresh(dir, "ours_batch.db")).unwrap();
    let rows: Vec<_> = (0..n).map(|i| (key(i), value(i))).collect();
    results.add(OURS, "W4 batch", n, timed(|| db.batch_update(&rows).unwrap()));
    check(OURS, "W4 batch", db.len().unwrap(), n);
    let mut opened = None;
    let mut got = None;
    let open_get = || {
        let db = NanaSQLite::open(big).unwrap();
        got = black_box(db.get::<Value>(&key(7)).unwrap());
        opened = Some(db);
    };
    results.add(OURS, "W7 open+get", 1, timed(open_get));
    check(OURS, "W7 open+get", usize::from(got == Some(value(7))), 1);
    let bulk = || opened = Some(NanaSQLite::builder(big).bulk_load(true).open().unwrap());
    results.add(OURS, "W7 bulk_load", 1, timed(bulk));
    drop(opened); // closing is not part of opening
}

// ===== nanasqlite sync store, encrypted =====

/// W1, W2 and W4 with each encryption mode (compare with the plaintext "nanasqlite sync").
fn run_encrypted(results: &mut Results, dir: &Path, n: usize) {
    let modes = [
        ("nanasqlite sync aes-gcm", Encryption::aes_gcm([7; 32]).unwrap()),
        ("nanasqlite sync chacha20", Encryption::chacha20([7; 32]).unwrap()),
        ("nanasqlite sync fernet", Encryption::fernet("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").unwrap()),
    ];
    let values: Vec<_> = (0..n).map(value).collect();
    let keys: Vec<_> = (0..n).map(key).collect();
    for (system, encryption) in modes {
        let path = fresh(dir, "encrypted.db");
        let open = || NanaSQLite::builder(&path).encryption(encryption.clone()).open().unwrap();
        let db = open();
        results.add(system, "W1 set", n, timed(|| (0..n).for_each(|i| db.set(&keys[i], &values[i]).unwrap())));
        check(system, "W1 set", db.len().unwrap(), n);
        db.close().unwrap();
        let db = open();
        let get = |k: &&String| black_box(db.get::<Value>(k).unwrap()).is_some();
        let mut found = 0;
        results.add(system, "W2 cold get", n, timed(|| found = keys.iter().filter(get).count()));
        check(system, "W2 cold get", found, n);
        let db = NanaSQLite::builder(fresh(dir, "encrypted_batch.db")).encryption(encryption.clone()).open().unwrap();
        let rows: Vec<_> = keys.iter().cloned().zip(values.iter().cloned()).collect();
        results.add(system, "W4 batch", n, timed(|| db.batch_update(&rows).unwrap()));
        check(system, "W4 batch", db.len().unwrap(), n);
    }
}

// ===== Python NanaSQLite 1.6.2 =====

fn run_python(results: &mut Results, n: usize, reps: usize, big: &Path) {
    let args = [n.to_string(), reps.to_string(), big.display().to_string()];
    for sample in common::run_python("python_nanasqlite.py", &args).unwrap_or_default() {
        let system = if sample.system == "sync" { "python nanasqlite" } else { "python async" };
        results.add(system, &sample.workload, sample.ops, sample.elapsed());
    }
}
