//! Load: 1,000 concurrent tasks × 100 mixed operations, on tokio's multi-thread runtime and on
//! smol. Each task owns a few keys and keeps a model of them (every read it makes must agree
//! with it); all tasks also increment shared counters. At the end the store, and the file
//! reopened, must equal the merged models. A watchdog turns a deadlock into a failure, and a
//! sampler checks that the queues never hold more than their capacity (the memory bound).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nanasqlite::{AsyncNanaSQLite, NanaSQLite};
use serde_json::{Value, json};

const TASKS: usize = 1_000;
const OPS: usize = 100;
const KEYS_PER_TASK: u64 = 4;
const COUNTERS: usize = 10;
const QUEUE_CAPACITY: usize = 64;
/// Far above the seconds a run takes (even unoptimised), far below a hung CI job.
const DEADLOCK_AFTER: Duration = Duration::from_secs(300);

/// What one task left in the store: its keys' values, and how often it bumped each counter.
#[derive(Default)]
struct Model {
    values: BTreeMap<String, i64>,
    increments: [i64; COUNTERS],
}

/// A small deterministic generator per task, so that a failure can be repeated.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One task's 100 operations; every answer is checked against the task's model.
async fn mixed_operations(db: AsyncNanaSQLite, task: usize) -> Model {
    let mut model = Model::default();
    let mut random = Random(0x2545_F491_4F6C_DD1D ^ (task as u64 + 1).wrapping_mul(0x9E37_79B9));
    for op in 0..OPS {
        let key = format!("t{task}:{}", random.below(KEYS_PER_TASK));
        let value = (task * OPS + op) as i64;
        let expected = model.values.get(&key).copied();
        match random.below(8) {
            0 => {
                db.set(&key, &value).await.unwrap();
                model.values.insert(key, value);
            }
            1 => assert_eq!(db.get::<i64>(&key).await.unwrap(), expected, "get {key}"),
            2 => assert_eq!(db.delete(&key).await.unwrap(), model.values.remove(&key).is_some(), "delete {key}"),
            3 => {
                let rows: Vec<(String, i64)> = (0..2)
                    .map(|j| (format!("t{task}:{}", (random.below(KEYS_PER_TASK) + j) % KEYS_PER_TASK), value))
                    .collect();
                db.batch_update(rows.clone()).await.unwrap();
                model.values.extend(rows);
            }
            4 => {
                let counter = random.below(COUNTERS as u64) as usize;
                db.increment::<i64>(&format!("counter{counter}"), 1, None).await.unwrap();
                model.increments[counter] += 1;
            }
            5 => assert_eq!(db.contains(&key).await.unwrap(), expected.is_some(), "contains {key}"),
            6 => assert_eq!(db.pop::<i64>(&key).await.unwrap(), model.values.remove(&key), "pop {key}"),
            _ => assert_eq!(db.get_fresh::<i64>(&key).await.unwrap(), expected, "get_fresh {key}"),
        }
    }
    model
}

/// The whole table the merged models describe.
fn expected_table(models: Vec<Model>) -> BTreeMap<String, Value> {
    let mut counters = [0; COUNTERS];
    let mut table = BTreeMap::new();
    for model in models {
        table.extend(model.values.into_iter().map(|(key, value)| (key, json!(value))));
        counters.iter_mut().zip(model.increments).for_each(|(total, n)| *total += n);
    }
    let bumped = counters.iter().enumerate().filter(|(_, n)| **n > 0);
    table.extend(bumped.map(|(i, n)| (format!("counter{i}"), json!(n))));
    table
}

/// Samples the queue depths every millisecond until stopped; returns the deepest seen.
fn sample_queues(db: AsyncNanaSQLite, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut deepest = 0;
        while !stop.load(Ordering::Relaxed) {
            let stats = db.stats();
            deepest = deepest.max(stats.write_queue).max(stats.read_queue);
            std::thread::sleep(Duration::from_millis(1));
        }
        deepest
    })
}

/// Runs `load` (which drives the tasks on some runtime) under a watchdog and checks the result.
fn run_load(name: &str, load: impl FnOnce(std::path::PathBuf) -> Checked + Send + 'static) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("load.db");
    let (done, finished) = std::sync::mpsc::channel();
    let started = Instant::now();
    let run_path = path.clone();
    std::thread::spawn(move || {
        let _ = done.send(load(run_path));
    });
    let Checked { expected, stats, deepest_queue } =
        finished.recv_timeout(DEADLOCK_AFTER).unwrap_or_else(|_| panic!("{name}: deadlock"));
    let elapsed = started.elapsed();
    let reopened = NanaSQLite::open(&path).unwrap();
    assert_eq!(reopened.to_dict::<Value>().unwrap(), expected, "{name}: the file equals the model");
    println!(
        "{name}: {TASKS} tasks × {OPS} ops in {elapsed:.2?}; {} write groups (largest {}), {} reads, {} cache hits; \
         deepest queue {deepest_queue} of {QUEUE_CAPACITY}",
        stats.write_groups, stats.largest_write_group, stats.reads, stats.cache_hits
    );
}

/// What a run left: the table the models describe (the store already matched it) and the
/// store's counters.
struct Checked {
    expected: BTreeMap<String, Value>,
    stats: nanasqlite::Stats,
    deepest_queue: usize,
}

/// Opens the store, starts the sampler, runs `drive` (the tasks), checks the store's own view
/// and the queue bound, and closes it.
async fn open_and_drive<F, Fut>(path: std::path::PathBuf, drive: F) -> Checked
where
    F: FnOnce(AsyncNanaSQLite) -> Fut,
    Fut: std::future::Future<Output = Vec<Model>>,
{
    let db = AsyncNanaSQLite::builder(&path).queue_capacity(QUEUE_CAPACITY).open().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_queues(db.clone(), Arc::clone(&stop));
    let models = drive(db.clone()).await;
    stop.store(true, Ordering::Relaxed);
    let deepest = sampler.join().unwrap();
    assert!(deepest <= QUEUE_CAPACITY, "a queue held {deepest} jobs, over its capacity {QUEUE_CAPACITY}");
    let seen: BTreeMap<String, Value> = db.to_dict().await.unwrap();
    let expected = expected_table(models);
    assert_eq!(seen, expected, "the store equals the model");
    let stats = db.stats();
    db.close().await.unwrap();
    Checked { expected, stats, deepest_queue: deepest }
}

#[test]
fn tokio_multi_thread_under_load() {
    run_load("tokio multi-thread", |path| {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(open_and_drive(path, |db| async move {
            let tasks: Vec<_> = (0..TASKS).map(|task| tokio::spawn(mixed_operations(db.clone(), task))).collect();
            let mut models = Vec::with_capacity(TASKS);
            for task in tasks {
                models.push(task.await.unwrap());
            }
            models
        }))
    });
}

#[test]
fn smol_under_load() {
    run_load("smol", |path| {
        smol::block_on(open_and_drive(path, |db| async move {
            let tasks: Vec<_> = (0..TASKS).map(|task| smol::spawn(mixed_operations(db.clone(), task))).collect();
            futures::future::join_all(tasks).await
        }))
    });
}
