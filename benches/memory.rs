//! Item 7 of the performance issue: what the cache costs in memory, and how a cold get grows
//! with the table, beside raw rusqlite.
//!
//! For each size (`BENCH_SIZES`, default `100000,1000000`) a child process opens a table of
//! that many values with `bulk_load(true)` and reports how much anonymous memory (`RssAnon`
//! in `/proc/self/status`: the heap, not the file's mapped pages) the open added, against the
//! bytes of JSON it holds. Each size runs in its own process so one size's freed memory cannot
//! be reused by the next. Then a cold get (a fresh store for each pass) is timed at each size
//! beside raw rusqlite's, to show both grow alike.
//!
//! Run: `cargo bench --bench memory`.

use std::fmt::Write;
use std::path::Path;
use std::process::Command;

mod common;
use common::{Results, env_usize, key, timed, value};

use nanasqlite::NanaSQLite;
use rusqlite::{Connection, params};

const CHILD: &str = "--measure-open";
const PUT: &str = "INSERT INTO data (key, value) VALUES (?, ?)";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == CHILD) {
        return measure_open(Path::new(&args[at + 1]), args[at + 2].parse().expect("a size"));
    }
    let sizes = std::env::var("BENCH_SIZES").unwrap_or_else(|_| "100000,1000000".to_owned());
    let sizes: Vec<usize> = sizes.split(',').map(|size| size.trim().parse().expect("BENCH_SIZES: numbers")).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut results = Results::default();
    for &size in &sizes {
        let path = dir.path().join(format!("memory_{size}.db"));
        let json_bytes = write_rows(&path, size);
        let report = run_child(&path, size);
        let ratio = report.anon_bytes as f64 / json_bytes as f64;
        println!(
            "{size} keys: JSON {:.1} MiB, keys {:.1} MiB; bulk_load adds {:.1} MiB anonymous ({:.2}× the JSON, {:.0} B per key), {:.1} MiB RSS in all",
            mib(json_bytes),
            mib(report.key_bytes),
            mib(report.anon_bytes),
            ratio,
            report.anon_bytes as f64 / size as f64,
            mib(report.rss_bytes),
        );
        for (after, bytes) in [
            ("a get of every row (rows stay packed)", report.read_anon_bytes),
            ("a get_cloned of every row too (each an ordinary entry)", report.unpacked_anon_bytes),
        ] {
            println!(
                "{size} keys, after {after}: {:.1} MiB anonymous ({:.2}× the JSON, {:.0} B per key)",
                mib(bytes),
                bytes as f64 / json_bytes as f64,
                bytes as f64 / size as f64,
            );
        }
        cold_gets(&mut results, &path, size);
    }
    results.print("cold get by table size", &["raw rusqlite"]);
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Writes `n` rows as `BENCHMARKS.md` describes them; returns the bytes of JSON written.
fn write_rows(path: &Path, n: usize) -> usize {
    let mut conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE data (key TEXT PRIMARY KEY, value TEXT)").unwrap();
    let tx = conn.transaction().unwrap();
    let mut bytes = 0;
    {
        let mut put = tx.prepare(PUT).unwrap();
        for i in 0..n {
            let json = value(i).to_string();
            bytes += json.len();
            put.execute(params![key(i), json]).unwrap();
        }
    }
    tx.commit().unwrap();
    bytes
}

struct Report {
    anon_bytes: usize,
    rss_bytes: usize,
    key_bytes: usize,
    /// Anonymous memory added by the open and one `get` of every row since.
    read_anon_bytes: usize,
    /// The same after one `get_cloned` of every row as well (each row then an ordinary entry).
    unpacked_anon_bytes: usize,
}

fn run_child(path: &Path, size: usize) -> Report {
    let child = Command::new(std::env::current_exe().unwrap()).arg(CHILD).arg(path).arg(size.to_string()).output();
    let output = child.expect("child runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let numbers: Vec<usize> = text.split_whitespace().map(|n| n.parse().unwrap()).collect();
    Report {
        anon_bytes: numbers[0],
        rss_bytes: numbers[1],
        key_bytes: numbers[2],
        read_anon_bytes: numbers[3],
        unpacked_anon_bytes: numbers[4],
    }
}

/// In the child: opens `path` (`size` rows) with `bulk_load`, and prints the anonymous and
/// total RSS the open added, the bytes of the keys, and the anonymous RSS once every row was
/// read with `get` (rows stay packed), then with `get_cloned` (a read that keeps its decoded
/// form in the entry: every row becomes an ordinary entry; a `Value` is not kept, so what
/// remains is the entry itself). Keys are formatted into one buffer, so that the reads leave
/// nothing of their own behind.
fn measure_open(path: &Path, size: usize) {
    let (anon_before, rss_before) = memory();
    let db = NanaSQLite::builder(path).bulk_load(true).open().unwrap();
    let (anon_after, rss_after) = memory();
    let mut key_bytes = 0;
    let mut name = String::new();
    let mut each_key = |read: &mut dyn FnMut(&str)| {
        for i in 0..size {
            name.clear();
            write!(name, "key_{i}").unwrap();
            read(&name);
        }
    };
    each_key(&mut |key| {
        key_bytes += key.len();
        assert!(db.get::<serde_json::Value>(key).unwrap().is_some(), "{key} was loaded");
    });
    let (anon_read, _) = memory();
    each_key(&mut |key| {
        std::hint::black_box(db.get_cloned::<serde_json::Value>(key).unwrap());
    });
    let (anon_unpacked, _) = memory();
    println!(
        "{} {} {key_bytes} {} {}",
        anon_after.saturating_sub(anon_before),
        rss_after.saturating_sub(rss_before),
        anon_read.saturating_sub(anon_before),
        anon_unpacked.saturating_sub(anon_before)
    );
    drop(db);
}

/// `RssAnon` and `VmRSS` of this process, in bytes.
fn memory() -> (usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<usize>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("RssAnon:"), field("VmRSS:"))
}

/// Cold gets at this size: each pass opens a fresh store (raw: a fresh connection) and reads
/// 1,000 keys spread over the table once.
fn cold_gets(results: &mut Results, path: &Path, size: usize) {
    let reps = env_usize("BENCH_REPS", 5);
    let wanted: Vec<String> = (0..1000).map(|i| key(i * size / 1000)).collect();
    let workload = format!("cold get, {size} keys");
    for _ in 0..reps {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA mmap_size=268435456; PRAGMA cache_size=-65536").unwrap();
        let mut get = conn.prepare("SELECT value FROM data WHERE key = ?").unwrap();
        let raw = timed(|| {
            for k in &wanted {
                let json: String = get.query_row([k], |row| row.get(0)).unwrap();
                std::hint::black_box(serde_json::from_str::<serde_json::Value>(&json).unwrap());
            }
        });
        results.add("raw rusqlite", &workload, wanted.len(), raw);
        let db = NanaSQLite::open(path).unwrap();
        let ours = timed(|| {
            for k in &wanted {
                std::hint::black_box(db.get::<serde_json::Value>(k).unwrap().unwrap());
            }
        });
        results.add("nanasqlite sync", &workload, wanted.len(), ours);
    }
}
