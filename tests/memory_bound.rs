//! The memory bound, in a test binary of its own so that its resident set size is its own:
//! with the writer held and 10,000 callers, the pool holds at most `queue_capacity` jobs, the
//! other callers wait (counted by `stats().waiting_for_room`), and the process grows by less
//! than [`RSS_BOUND`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::executor::block_on;
use nanasqlite::AsyncNanaSQLite;

mod common;

const CALLERS: usize = 10_000;
const CAPACITY: usize = 64;
/// What 10,000 waiting callers may add to the process: each holds its own future and its
/// encoded value (about 200 bytes), so a few MiB; a queue that took every job in would add the
/// same again plus the cache entries of writes it ran, which this bound still allows, so the
/// count of jobs held is checked exactly above it.
const RSS_BOUND: u64 = 64 << 20;

/// The resident set size of this process, from `/proc/self/statm` (Linux).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).expect("resident field").parse().unwrap();
    pages * 4096
}

#[test]
fn ten_thousand_callers_behind_a_slow_writer_hold_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bounded.db");
    let _watchdog = common::Watchdog::new("the memory-bound test", Duration::from_secs(120));
    {
        block_on(async {
            let db = AsyncNanaSQLite::builder(&path).queue_capacity(CAPACITY).open().await.unwrap();
            let value = "v".repeat(200);
            let before = resident_bytes();
            let held = db.begin().await.unwrap(); // the slow writer: nothing leaves the queue

            let mut callers: Vec<Pin<Box<dyn Future<Output = nanasqlite::Result<()>> + Send>>> =
                (0..CALLERS).map(|i| Box::pin(db.set(&format!("k{i}"), &value)) as _).collect();
            for caller in &mut callers {
                assert!(futures::poll!(caller.as_mut()).is_pending(), "nothing can finish while the writer is held");
            }
            let stats = db.stats();
            assert_eq!(stats.write_queue, CAPACITY, "the queue is full, not over: {stats:?}");
            assert_eq!(stats.waiting_for_room, CALLERS - CAPACITY, "every other caller waits: {stats:?}");
            let grown = resident_bytes().saturating_sub(before);
            println!("{CALLERS} callers waiting: the process grew by {} KiB", grown >> 10);
            assert!(grown < RSS_BOUND, "{CALLERS} waiting callers grew the process by {grown} bytes");

            // Callers that give up while waiting leave nothing behind.
            callers.truncate(CALLERS / 2);
            assert_eq!(db.stats().waiting_for_room, CALLERS / 2 - CAPACITY);

            held.commit().await.unwrap();
            for result in futures::future::join_all(callers).await {
                result.unwrap();
            }
            let stats = db.stats();
            assert_eq!((stats.write_queue, stats.waiting_for_room), (0, 0), "{stats:?}");
            assert_eq!(db.len().await.unwrap(), CALLERS / 2, "the callers that waited were all written");
            assert_eq!(db.get_fresh::<String>(&format!("k{}", CALLERS - 1)).await.unwrap(), None, "gave up: absent");
            db.close().await.unwrap();
        });
    }
}
