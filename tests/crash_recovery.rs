//! Kill test: a child process writes with several threads (single-key sets and batches, on the
//! async store or the sync store) and reports every write whose call returned; the parent kills it
//! with SIGKILL at a random moment. After each kill the file must pass `integrity_check`, hold
//! every reported write with its value, and hold every batch whole or not at all.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use nanasqlite::{AsyncNanaSQLite, NanaSQLite};
use serde_json::{Value, json};

mod common;

const ROUNDS: u64 = 24;
const SETTERS: usize = 3;
const BATCH: usize = 10;
/// Writes each async setter keeps in flight.
const IN_FLIGHT: usize = 16;

/// One line on the child's stderr, written once per acknowledged write (a pipe write of less
/// than `PIPE_BUF` bytes is atomic, so a kill never leaves half a line that parses).
fn report(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(format!("{line}\n").as_bytes());
}

fn set_value(round: u64, setter: usize, i: u64) -> Value {
    json!({ "round": round, "setter": setter, "i": i, "pad": "x".repeat((i % 64) as usize) })
}

fn batch_rows(round: u64, batch: u64) -> Vec<(String, Value)> {
    (0..BATCH).map(|j| (format!("r{round}:b{batch}:{j}"), json!({ "batch": batch, "j": j }))).collect()
}

/// The child of [`acknowledged_writes_survive_sigkill`]: writes until killed.
fn write_until_killed() {
    let path = std::env::var_os("NANASQLITE_KILL_DB").expect("the parent names the file");
    let round: u64 = std::env::var("NANASQLITE_KILL_ROUND").expect("the parent names the round").parse().unwrap();
    if round.is_multiple_of(2) {
        write_async(Path::new(&path), round);
    } else {
        write_sync(Path::new(&path), round);
    }
}

/// Half of the async rounds with inline writes, which commit on the setters' own threads.
fn write_async(path: &Path, round: u64) {
    let builder = AsyncNanaSQLite::builder(path).read_pool_size(1).inline_writes(round % 4 == 2);
    let db = futures::executor::block_on(builder.open()).unwrap();
    report("READY");
    std::thread::scope(|scope| {
        for setter in 0..SETTERS {
            let db = db.clone();
            scope.spawn(move || futures::executor::block_on(async_setter(&db, round, setter)));
        }
        futures::executor::block_on(async {
            for batch in 0.. {
                db.batch_update(batch_rows(round, batch)).await.unwrap();
                report(&format!("B {round} {batch}"));
            }
        });
    });
}

async fn async_setter(db: &AsyncNanaSQLite, round: u64, setter: usize) {
    let mut in_flight = FuturesUnordered::new();
    for i in 0.. {
        let key = format!("r{round}:s{setter}:{i}");
        let write = db.set(&key, &set_value(round, setter, i));
        in_flight.push(async move { write.await.map(|()| (key, i)) });
        if in_flight.len() >= IN_FLIGHT {
            let (key, i) = in_flight.next().await.unwrap().unwrap();
            report(&format!("S {key} {setter} {i}"));
        }
    }
}

fn write_sync(path: &Path, round: u64) {
    let db = NanaSQLite::open(path).unwrap();
    report("READY");
    std::thread::scope(|scope| {
        for setter in 0..SETTERS {
            let db = db.clone();
            scope.spawn(move || {
                for i in 0.. {
                    let key = format!("r{round}:s{setter}:{i}");
                    db.set(&key, &set_value(round, setter, i)).unwrap();
                    report(&format!("S {key} {setter} {i}"));
                }
            });
        }
        for batch in 0.. {
            db.batch_update(batch_rows(round, batch)).unwrap();
            report(&format!("B {round} {batch}"));
        }
    });
}

/// What the child reported before it died.
#[derive(Default)]
struct Acknowledged {
    sets: Vec<(String, usize, u64)>,
    batches: Vec<(u64, u64)>,
}

impl Acknowledged {
    /// Records the write a line of round `round` reports, if it reports one.
    fn record(&mut self, line: &str, round: u64) {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["S", key, setter, i] => self.sets.push(((*key).to_owned(), setter.parse().unwrap(), i.parse().unwrap())),
            ["B", r, batch] if r.parse::<u64>().unwrap() == round => self.batches.push((round, batch.parse().unwrap())),
            _ => {}
        }
    }
}

/// A small deterministic generator, so that a failing run can be repeated.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Starts the child for `round`, waits until it has opened the store, lets it write for
/// `for_ms`, kills it, and returns what it acknowledged.
fn run_and_kill(path: &Path, round: u64, for_ms: u64) -> Acknowledged {
    let mut child = common::child("acknowledged_writes_survive_sigkill", "write")
        .env("NANASQLITE_KILL_DB", path)
        .env("NANASQLITE_KILL_ROUND", round.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ready, is_ready) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acknowledged = Acknowledged::default();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line == "READY" {
                let _ = ready.send(());
            }
            acknowledged.record(&line, round);
        }
        acknowledged
    });
    is_ready.recv_timeout(Duration::from_secs(60)).expect("the child opened the store");
    std::thread::sleep(Duration::from_millis(for_ms));
    let died_on_its_own = child.try_wait().unwrap();
    assert!(died_on_its_own.is_none(), "round {round}: the child stopped before the kill: {died_on_its_own:?}");
    child.kill().unwrap(); // SIGKILL on Unix
    let status = common::wait_for_exit(&mut child, Duration::from_secs(60));
    assert_eq!(status.signal(), Some(9), "round {round}: the child died of the kill, not of a failure: {status:?}");
    reader.join().unwrap()
}

fn integrity(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap()
}

/// The rows of the file whose keys start with `prefix`, read with a plain connection.
fn rows(path: &Path, prefix: &str) -> BTreeMap<String, Value> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut statement = conn.prepare("SELECT key, value FROM data WHERE substr(key, 1, length(?1)) = ?1").unwrap();
    let rows = statement.query_map([prefix], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))).unwrap();
    rows.map(|row| {
        let (key, text) = row.unwrap();
        (key, serde_json::from_str(&text).unwrap())
    })
    .collect()
}

/// Every acknowledged write of `acknowledged` is in `all` with its value.
fn assert_present(all: &BTreeMap<String, Value>, acknowledged: &Acknowledged) {
    for (key, setter, i) in &acknowledged.sets {
        let round: u64 = key[1..key.find(':').unwrap()].parse().unwrap();
        assert_eq!(all.get(key), Some(&set_value(round, *setter, *i)), "acknowledged set {key} lost");
    }
    for (round, batch) in &acknowledged.batches {
        for (key, value) in batch_rows(*round, *batch) {
            assert_eq!(all.get(&key), Some(&value), "acknowledged batch {round}/{batch} lost");
        }
    }
}

/// Every batch in the file is whole: its keys, grouped by batch, number 0 or `BATCH`.
fn assert_batches_whole(all: &BTreeMap<String, Value>) {
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for key in all.keys().filter(|key| key.contains(":b")) {
        let batch = &key[..key.rfind(':').unwrap()];
        *sizes.entry(batch).or_default() += 1;
    }
    for (batch, size) in sizes {
        assert_eq!(size, BATCH, "batch {batch} is torn");
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if common::child_role().is_some() {
        return write_until_killed();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.db");
    NanaSQLite::open(&path).unwrap().close().unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut every_round = Acknowledged::default();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let for_ms = 20 + next_random(&mut state) % 280;
        let acknowledged = run_and_kill(&path, round, for_ms);
        assert_eq!(integrity(&path), "ok", "round {round}: integrity after a kill at {for_ms} ms");
        let written = rows(&path, &format!("r{round}:"));
        assert_present(&written, &acknowledged);
        assert_batches_whole(&written);
        every_round.sets.extend(acknowledged.sets);
        every_round.batches.extend(acknowledged.batches);
    }
    // Later crashes and recoveries lost nothing of the earlier rounds, and the store opens.
    let db = NanaSQLite::open(&path).unwrap();
    let all: BTreeMap<String, Value> = db.to_dict().unwrap();
    assert_present(&all, &every_round);
    assert_batches_whole(&all);
    println!(
        "{ROUNDS} kills in {:.1?}: {} acknowledged sets and {} acknowledged batches of {BATCH}, all present",
        started.elapsed(),
        every_round.sets.len(),
        every_round.batches.len()
    );
    assert!(every_round.sets.len() > ROUNDS as usize, "the children wrote too little to prove anything");
}
