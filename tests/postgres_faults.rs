//! The PostgreSQL server restarted under load (feature `postgres`): nothing acknowledged is
//! lost, writes during the restart fail with a clear error, the stores reconnect by
//! themselves, and every cache is emptied, since notices sent meanwhile were lost.
//!
//! A binary of its own, so that restarting the server disturbs no other test (cargo runs test
//! binaries one after another). Needs the server `bash .ci/postgres start` starts (and
//! restarts through the same script); `bash .ci/test` runs it.
#![cfg(feature = "postgres")]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nanasqlite::storage::STALENESS;
use nanasqlite::{AsyncNanaSQLite, Error, NanaSQLite};

mod common;

use common::{Watchdog, wait_until};

fn server() -> String {
    std::env::var("NANASQLITE_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("this test needs a PostgreSQL server: run `bash .ci/postgres start` and export NANASQLITE_POSTGRES_URL")
    })
}

fn restart_the_server() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/postgres");
    let status = std::process::Command::new("bash").arg(script).arg("restart").status().expect("bash runs");
    assert!(status.success(), "the server restarts");
}

/// Writes keys `prefix0`, `prefix1`, … with `write` until told to stop, recording which were
/// acknowledged and checking that every failure is a clear backend error.
fn keep_writing(
    prefix: &'static str,
    stop: Arc<AtomicBool>,
    write: impl Fn(&str, i64) -> nanasqlite::Result<()> + Send + 'static,
) -> std::thread::JoinHandle<(Vec<i64>, usize)> {
    std::thread::spawn(move || {
        let (mut acknowledged, mut failed) = (Vec::new(), 0);
        let mut i = 0;
        while !stop.load(Ordering::Acquire) {
            match write(&format!("{prefix}{i}"), i) {
                Ok(()) => acknowledged.push(i),
                Err(error) => {
                    assert!(
                        matches!(error, Error::Backend { backend: "postgres", .. }),
                        "a write during the restart fails with the server's error, not {error:?}"
                    );
                    failed += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            i += 1;
        }
        (acknowledged, failed)
    })
}

#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_server_restarted_mid_load_loses_nothing_acknowledged() {
    let _watchdog = Watchdog::new("the restart test", Duration::from_secs(240));
    let url = server();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin.batch_execute("DROP SCHEMA IF EXISTS restart CASCADE; CREATE SCHEMA restart").unwrap();
    drop(admin);
    let url = format!("{url}?options=-csearch_path%3Drestart");

    let sync_store = NanaSQLite::postgres(&url).open().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let async_store = runtime.block_on(AsyncNanaSQLite::postgres(&url).open()).unwrap();
    let watcher = NanaSQLite::postgres(&url).open().unwrap();
    sync_store.set("watched", &0).unwrap();
    wait_until("the watcher to cache a key", STALENESS * 5, || {
        watcher.get::<i64>("watched").is_ok() && watcher.is_cached("watched")
    });

    let stop = Arc::new(AtomicBool::new(false));
    let sync_writes = {
        let db = sync_store.clone();
        keep_writing("s", Arc::clone(&stop), move |key, value| db.set(key, &value))
    };
    let handle = runtime.handle().clone();
    let async_writes = {
        let db = async_store.clone();
        keep_writing("a", Arc::clone(&stop), move |key, value| handle.block_on(db.set(key, &value)))
    };
    std::thread::sleep(Duration::from_millis(500));
    restart_the_server();
    wait_until("the watcher's cache to be emptied", Duration::from_secs(10), || !watcher.is_cached("watched"));
    let after = Mutex::new(sync_store.len().ok());
    wait_until("writes to succeed again", Duration::from_secs(30), || {
        let len = sync_store.len().ok();
        let mut last = after.lock().unwrap();
        let grew = matches!((*last, len), (Some(before), Some(now)) if now > before + 20);
        if last.is_none() {
            *last = len;
        }
        grew
    });
    stop.store(true, Ordering::Release);
    let (sync_acknowledged, sync_failed) = sync_writes.join().unwrap();
    let (async_acknowledged, async_failed) = async_writes.join().unwrap();
    eprintln!(
        "acknowledged {} sync and {} async writes; {} and {} failed during the restart",
        sync_acknowledged.len(),
        async_acknowledged.len(),
        sync_failed,
        async_failed
    );

    let check = NanaSQLite::postgres(&url).open().unwrap();
    for (prefix, acknowledged) in [("s", &sync_acknowledged), ("a", &async_acknowledged)] {
        assert!(acknowledged.len() > 20, "{prefix}: writes went on after the restart");
        for i in acknowledged {
            assert_eq!(
                check.get::<i64>(&format!("{prefix}{i}")).unwrap(),
                Some(*i),
                "acknowledged {prefix}{i} is kept"
            );
        }
    }
    sync_store.set("watched", &1).unwrap();
    wait_until("the reconnected listener to hear writes again", Duration::from_secs(30), || {
        watcher.get::<i64>("watched").unwrap() == Some(1)
    });
    runtime.block_on(async_store.close()).unwrap();
}
