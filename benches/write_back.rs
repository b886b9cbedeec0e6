//! Write-back mode against normal mode and Python NanaSQLite's v2 mode, in one run: W1
//! (sequential sets) on the sync store, timed until the sets return ("staged") and until a
//! flush has committed them too; W8 (100 concurrent sets) on the async store.
//!
//! Run: `cargo bench --bench write_back --features tokio`. `BENCH_REPS` (default 5) and
//! `BENCH_N` (default 10,000) change the size. Python runs when `bash .ci/python-venv` has made
//! its venv. Prints ops/s as median [min–max] and the ratio the target is stated in.

use std::path::Path;
use std::time::Instant;

mod common;
use common::{Results, env_usize, fresh, key, value};

use futures::future::join_all;
use nanasqlite::{AsyncNanaSQLite, NanaSQLite, WriteBack};
use serde_json::Value;

const NORMAL: &str = "nanasqlite normal";
const BACK: &str = "nanasqlite write-back";

fn main() {
    let (reps, n) = (env_usize("BENCH_REPS", 5), env_usize("BENCH_N", 10_000));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<Value> = (0..n).map(value).collect();
    let keys: Vec<String> = (0..n).map(key).collect();
    let mut results = Results::default();
    for _ in 0..reps {
        sync_w1(&mut results, dir.path(), &keys, &values);
        runtime.block_on(async_w8(&mut results, dir.path(), &values));
    }
    python(&mut results, n, reps);
    results.print(&format!("write-back, N = {n}"), &[NORMAL]);
    if let (Some(back), Some(normal)) = (results.median("W1 set (staged)", BACK), results.median("W1 set", NORMAL)) {
        println!("W1 write-back (staged) / W1 normal = {:.1}×", back / normal);
    }
    if let (Some(back), Some(normal)) = (results.median("W1 set + flush", BACK), results.median("W1 set", NORMAL)) {
        println!("W1 write-back (with its flush) / W1 normal = {:.1}×", back / normal);
    }
    if let (Some(back), Some(python)) =
        (results.median("W1 set (staged)", BACK), results.median("W1 set (staged)", "python v2"))
    {
        println!("W1 write-back (staged) / python v2 = {:.1}×", back / python);
    }
    let w8 = "W8 100 concurrent sets (+ flush)";
    if let (Some(back), Some(normal)) = (results.median(w8, BACK), results.median(w8, NORMAL)) {
        println!("W8 write-back / W8 normal = {:.1}×", back / normal);
    }
}

fn sync_w1(results: &mut Results, dir: &Path, keys: &[String], values: &[Value]) {
    let n = keys.len();
    let db = NanaSQLite::open(fresh(dir, "normal.db")).unwrap();
    let start = Instant::now();
    for (key, value) in keys.iter().zip(values) {
        db.set(key, value).unwrap();
    }
    results.add(NORMAL, "W1 set", n, start.elapsed());
    assert_eq!(db.len().unwrap(), n);

    let db = NanaSQLite::builder(fresh(dir, "back.db")).write_back(WriteBack::immediate()).open().unwrap();
    let start = Instant::now();
    for (key, value) in keys.iter().zip(values) {
        db.set(key, value).unwrap();
    }
    results.add(BACK, "W1 set (staged)", n, start.elapsed());
    db.flush().unwrap();
    results.add(BACK, "W1 set + flush", n, start.elapsed());
    assert_eq!(db.len().unwrap(), n);
    db.close().unwrap();
}

async fn async_w8(results: &mut Results, dir: &Path, values: &[Value]) {
    let n = values.len();
    for (system, write_back) in [(NORMAL, None), (BACK, Some(WriteBack::immediate()))] {
        let mut builder = AsyncNanaSQLite::builder(fresh(dir, "w8.db"));
        if let Some(write_back) = write_back {
            builder = builder.write_back(write_back);
        }
        let db = builder.open().await.unwrap();
        let start = Instant::now();
        for (c, chunk) in values.chunks(100).enumerate() {
            let writes = chunk.iter().enumerate().map(|(i, value)| db.set(&format!("w8_{c}_{i}"), value));
            for outcome in join_all(writes).await {
                outcome.unwrap();
            }
        }
        db.flush().await.unwrap();
        results.add(system, "W8 100 concurrent sets (+ flush)", n, start.elapsed());
        assert_eq!(db.len().await.unwrap(), n);
        db.close().await.unwrap();
    }
}

fn python(results: &mut Results, n: usize, reps: usize) {
    for sample in common::run_python("python_write_back.py", &[n.to_string(), reps.to_string()]).unwrap_or_default() {
        results.add("python v2", &sample.workload, sample.ops, sample.elapsed());
    }
}
