//! One store used from many threads at once.

use std::sync::Barrier;
use std::thread;

use nanasqlite::NanaSQLite;

mod common;

const THREADS: usize = 8;

#[test]
fn many_threads_write_and_read_their_own_keys() {
    let _watchdog = common::Watchdog::new("many_threads_write_and_read_their_own_keys", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let db = NanaSQLite::open(dir.path().join("t.db")).unwrap();
    thread::scope(|scope| {
        for t in 0..THREADS {
            let db = db.clone();
            scope.spawn(move || {
                for i in 0..200 {
                    let key = format!("t{t}-{i}");
                    db.set(&key, &(t * 1000 + i)).unwrap();
                    assert_eq!(db.get::<usize>(&key).unwrap(), Some(t * 1000 + i));
                }
                db.batch_update((0..100).map(|i| (format!("batch{t}-{i}"), i))).unwrap();
            });
        }
    });
    assert_eq!(db.len().unwrap(), THREADS * 300);
}

#[test]
fn racing_writes_to_one_key_leave_cache_equal_to_file() {
    let _watchdog = common::Watchdog::new("racing_writes_to_one_key_leave_cache_equal_to_file", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.db");
    let db = NanaSQLite::open(&path).unwrap();
    let start = Barrier::new(THREADS);
    thread::scope(|scope| {
        for t in 0..THREADS {
            let (db, start) = (db.clone(), &start);
            scope.spawn(move || {
                start.wait();
                for i in 0..50 {
                    db.set("shared", &(t * 100 + i)).unwrap();
                    let _ = db.get::<usize>("shared").unwrap();
                    if i % 10 == 0 {
                        db.clear_cache();
                    }
                }
            });
        }
    });
    let cached: usize = db.get("shared").unwrap().unwrap();
    let stored: usize = NanaSQLite::open(&path).unwrap().get("shared").unwrap().unwrap();
    assert_eq!(cached, stored);
}

#[test]
fn readers_see_whole_batches_only() {
    let _watchdog = common::Watchdog::new("readers_see_whole_batches_only", common::TEST_LIMIT);
    let db = NanaSQLite::open(":memory:").unwrap();
    let writer = db.clone();
    thread::scope(|scope| {
        scope.spawn(move || {
            for round in 0..50 {
                writer.batch_update((0..20).map(|i| (format!("k{i}"), round))).unwrap();
            }
        });
        for i in 0..400 {
            let values = db.batch_get::<i32>((0..20).map(|i| format!("k{i}"))).unwrap();
            let first = values.values().next().copied();
            assert!(values.values().all(|v| Some(*v) == first), "a batch was seen half-applied");
            if i % 2 == 0 {
                db.clear_cache(); // alternate between the cached and the file path
            }
        }
    });
}
