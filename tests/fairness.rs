//! A task looping over the store's futures that are ready at once (cache hits, reads run on the
//! caller's thread, staged writes) gives its thread back to the runtime now and then: on a
//! current-thread runtime of each kind, another task and a timer keep running beside it.
//!
//! Each loop runs until the other task and the timer have run a few times, for at most a
//! bound of calls far past what that takes; without the store's budget the loop never yields,
//! runs to the bound, and the test fails. No clock is asserted on.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nanasqlite::{AsyncNanaSQLite, WriteBack};

mod common;

/// How many calls a loop may make before it is judged to have starved the others.
const BOUND: usize = 2_000_000;

/// How often the other task and the timer must have run.
const RUNS: usize = 3;

/// What the looping task awaits, one call at a time.
#[derive(Clone, Copy, Debug)]
enum Call {
    /// A cache hit.
    Hit,
    /// `get_shared`'s hit.
    SharedHit,
    /// A read of the file run on the caller's thread (inline).
    Fresh,
    /// `contains` of a key the cache knows absent.
    Absent,
    /// A write staged in write-back mode.
    Staged,
    /// `JOINED` cache hits awaited together with `join_all` (which polls them through
    /// `FuturesUnordered`: it polls a future that yielded again at once).
    JoinedHits,
    /// `JOINED` reads of the file, awaited together: the cache is emptied first, so each
    /// runs on the caller's thread when it is made.
    JoinedReads,
}

const CALLS: [Call; 7] =
    [Call::Hit, Call::SharedHit, Call::Fresh, Call::Absent, Call::Staged, Call::JoinedHits, Call::JoinedReads];

/// How many calls the joined kinds await at once (past the 30 where `join_all` switches to
/// `FuturesUnordered`).
const JOINED: usize = 100;

/// Counts how often the other task and the timer ran.
#[derive(Default)]
struct Others {
    task: AtomicUsize,
    timer: AtomicUsize,
}

impl Others {
    fn ran_enough(&self) -> bool {
        self.task.load(Ordering::Relaxed) >= RUNS && self.timer.load(Ordering::Relaxed) >= RUNS
    }
}

/// What a loop did: the calls it made, and how often it returned `Pending` (gave its thread
/// back to the runtime).
#[derive(Clone, Copy, Debug)]
struct Looped {
    made: usize,
    yields: usize,
}

/// Awaits `call` on `db` until the others have run enough, counting how often that returns
/// `Pending`.
async fn loop_on(db: &AsyncNanaSQLite, call: Call, others: &Others) -> Looped {
    let mut calls = std::pin::pin!(calls(db, call, others));
    let mut yields = 0;
    let made = std::future::poll_fn(|cx| {
        let polled = calls.as_mut().poll(cx);
        yields += usize::from(polled.is_pending());
        polled
    })
    .await;
    Looped { made, yields }
}

/// Awaits `call` on `db` until the others have run enough; how many calls that took (the
/// bound if they never did).
async fn calls(db: &AsyncNanaSQLite, call: Call, others: &Others) -> usize {
    let keys: Vec<String> = (0..JOINED).map(|i| format!("j{i}")).collect();
    let per_round = if let Call::JoinedHits | Call::JoinedReads = call { JOINED } else { 1 };
    for round in 0..BOUND / per_round {
        if others.ran_enough() {
            return round * per_round;
        }
        let made = round;
        match call {
            Call::JoinedHits | Call::JoinedReads => {
                if let Call::JoinedReads = call {
                    db.clear_cache();
                }
                let values = futures::future::join_all(keys.iter().map(|key| db.get::<usize>(key))).await;
                assert!(values.into_iter().enumerate().all(|(i, value)| value.unwrap() == Some(i)));
            }
            Call::Hit => assert_eq!(db.get::<i64>("k").await.unwrap(), Some(1)),
            Call::SharedHit => assert!(db.get_shared("k").await.unwrap().is_some()),
            Call::Fresh => assert_eq!(db.get_fresh::<i64>("k").await.unwrap(), Some(1)),
            Call::Absent => assert!(!db.contains("absent").await.unwrap()),
            Call::Staged => db.set("staged", &made).await.unwrap(),
        }
    }
    BOUND
}

/// A store holding `k`, cached, and `absent` known absent; staging its writes for `Staged`.
async fn store(dir: &std::path::Path, call: Call) -> AsyncNanaSQLite {
    let mut builder = AsyncNanaSQLite::builder(dir.join(format!("{call:?}.db")));
    if let Call::Staged = call {
        builder = builder.write_back(WriteBack::manual().max_staged(10));
    }
    let db = builder.open().await.unwrap();
    db.set("k", &1).await.unwrap();
    db.batch_update((0..JOINED).map(|i| (format!("j{i}"), i))).await.unwrap();
    assert!(!db.contains("absent").await.unwrap());
    db
}

/// The other task: counts each time it runs, yielding in between.
async fn other_task(others: Arc<Others>, yield_now: impl Fn() -> common::YieldNow) {
    loop {
        others.task.fetch_add(1, Ordering::Relaxed);
        yield_now().await;
    }
}

/// The timer: counts each time a 1 ms sleep ends.
async fn timer_task<F: Future<Output = ()>>(others: Arc<Others>, sleep: impl Fn() -> F) {
    loop {
        sleep().await;
        others.timer.fetch_add(1, Ordering::Relaxed);
    }
}

/// The loop yields at least once in this many calls: 128 calls a turn, and room for the calls
/// of a `join_all` that straddle one.
const CALLS_A_TURN: usize = 4 * 128;

fn check(call: Call, looped: &Looped, others: &Others) {
    let Looped { made, yields } = *looped;
    let (task, timer) = (others.task.load(Ordering::Relaxed), others.timer.load(Ordering::Relaxed));
    assert!(
        made < BOUND,
        "{call:?}: {BOUND} calls never gave the runtime back (the other task ran {task} times, the timer {timer})"
    );
    assert!(
        yields * CALLS_A_TURN >= made,
        "{call:?}: {made} calls yielded {yields} times (once in {CALLS_A_TURN} at least)"
    );
}

#[test]
fn a_looping_caller_lets_others_run_on_a_tokio_current_thread_runtime() {
    let _watchdog = common::Watchdog::new("the tokio fairness test", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        for call in CALLS {
            let db = store(dir.path(), call).await;
            let others = Arc::new(Others::default());
            let task = tokio::spawn(other_task(Arc::clone(&others), || common::YieldNow(false)));
            let timer = tokio::spawn(timer_task(Arc::clone(&others), || tokio::time::sleep(Duration::from_millis(1))));
            let looped = loop_on(&db, call, &others).await;
            task.abort();
            timer.abort();
            check(call, &looped, &others);
            db.close().await.unwrap();
        }
    });
}

#[test]
fn a_looping_caller_lets_others_run_on_a_smol_local_executor() {
    let _watchdog = common::Watchdog::new("the smol fairness test", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let executor = smol::LocalExecutor::new();
    smol::block_on(executor.run(async {
        for call in CALLS {
            let db = store(dir.path(), call).await;
            let others = Arc::new(Others::default());
            let task = executor.spawn(other_task(Arc::clone(&others), || common::YieldNow(false)));
            let timer = executor.spawn(timer_task(Arc::clone(&others), || async {
                smol::Timer::after(Duration::from_millis(1)).await;
            }));
            let looped = loop_on(&db, call, &others).await;
            drop((task, timer));
            check(call, &looped, &others);
            db.close().await.unwrap();
        }
    }));
}

#[test]
fn a_looping_caller_lets_others_run_on_a_futures_local_pool() {
    use futures::task::LocalSpawnExt;
    let _watchdog = common::Watchdog::new("the futures fairness test", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let mut pool = futures::executor::LocalPool::new();
    let spawner = pool.spawner();
    pool.run_until(async {
        for call in CALLS {
            let db = store(dir.path(), call).await;
            let others = Arc::new(Others::default());
            let task = spawner.spawn_local_with_handle(other_task(Arc::clone(&others), || common::YieldNow(false)));
            // The local pool has no timer of its own: smol's (async-io's) runs on any executor.
            let timer = spawner.spawn_local_with_handle(timer_task(Arc::clone(&others), || async {
                smol::Timer::after(Duration::from_millis(1)).await;
            }));
            let looped = loop_on(&db, call, &others).await;
            drop((task, timer));
            check(call, &looped, &others);
            db.close().await.unwrap();
        }
    });
}
