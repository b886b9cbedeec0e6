//! `watch_external_writes`: caches notice writes by other connections and processes.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nanasqlite::{AsyncNanaSQLite, NanaSQLite};

mod common;

const INTERVAL: Duration = Duration::from_millis(50);

fn other_connection_sets(path: &Path, key: &str, json: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute("INSERT OR REPLACE INTO data (key, value) VALUES (?, ?)", [key, json]).unwrap();
}

/// Polls `read` until it gives `want`, for at most 30 seconds (a bound for a loaded machine;
/// it returns as soon as `read` does); returns whether it did.
fn eventually(want: i64, mut read: impl FnMut() -> Option<i64>) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if read() == Some(want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn the_sync_store_notices_another_connection_within_the_interval() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let db = NanaSQLite::builder(&path).watch_external_writes(INTERVAL).open()?;
    db.set("k", &1)?;
    other_connection_sets(&path, "k", "2");
    db.set("own", &1)?; // our own writes do not empty the cache
    std::thread::sleep(INTERVAL * 2);
    assert_eq!(db.get::<i64>("k")?, Some(2), "the first read after the interval sees the other write");
    assert!(db.is_cached("k"));
    let unwatched = NanaSQLite::open(&path)?;
    unwatched.get::<i64>("k")?;
    other_connection_sets(&path, "k", "3");
    std::thread::sleep(INTERVAL * 2);
    assert_eq!(unwatched.get::<i64>("k")?, Some(2), "without watching, the cache keeps its value");
    Ok(())
}

#[test]
fn the_async_store_notices_another_connection() {
    use futures::executor::block_on;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let db = block_on(AsyncNanaSQLite::builder(&path).watch_external_writes(INTERVAL).open()).unwrap();
    block_on(db.set("k", &1)).unwrap();
    other_connection_sets(&path, "k", "2");
    let seen = eventually(2, || block_on(db.get::<i64>("k")).unwrap());
    assert!(seen, "the async store noticed the other connection's write");
    block_on(db.close()).unwrap();
}

#[test]
#[ignore = "needs Python NanaSQLite 1.6.2: bash .ci/python-venv; bash .ci/test runs it"]
fn a_python_process_writing_the_file_is_noticed() -> nanasqlite::Result<()> {
    let python = common::python();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("py.db");
    let db = NanaSQLite::builder(&path).watch_external_writes(INTERVAL).open()?;
    db.set("counter", &1)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/python_side.py");
    let status = Command::new(python).arg(script).args(["set", path.to_str().unwrap(), "counter", "41"]).status()?;
    assert!(status.success());
    assert!(eventually(41, || db.get::<i64>("counter").unwrap()), "the Python process's write was noticed");
    Ok(())
}
