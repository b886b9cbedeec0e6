//! Where lane threads come from.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Starts the long-running loop of one lane. The default, [`Threads`], gives each lane a
/// dedicated named thread; the runtime adapters implement it on their runtime's blocking pool
/// (tokio's `spawn_blocking`, smol's `blocking`, async-std's `spawn_blocking`). The choice changes
/// where threads come from, never behaviour.
///
/// A lane runs until the store is closed or dropped, so it occupies its thread for that long.
pub trait Spawn: Send + Sync + 'static {
    /// Runs `lane` on another thread. `name` says which lane it is (`nanasqlite-writer`,
    /// `nanasqlite-reader-0`, …).
    ///
    /// # Errors
    ///
    /// When no thread could be had; the store then fails to open.
    fn spawn(&self, name: String, lane: Box<dyn FnOnce() + Send + 'static>) -> io::Result<()>;
}

/// Dedicated, named OS threads: works under every runtime and with none.
///
/// A thread whose lane ended (its store was closed) waits 5 seconds for another lane of the
/// same name before it ends: a program that opens and closes stores reuses warm threads instead
/// of starting new ones (which costs a thread start and, with glibc, a new allocator arena to
/// fault in). Waiting threads never keep the process alive.
#[derive(Clone, Copy, Debug, Default)]
pub struct Threads;

/// How long a thread whose lane ended waits for another.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

type Lane = Box<dyn FnOnce() + Send + 'static>;

/// A thread waiting for a lane: a number it knows itself by, and the channel it waits on.
type Waiting = (u64, flume::Sender<Lane>);

/// Threads waiting for a lane, by name.
static IDLE: Mutex<Option<HashMap<String, Vec<Waiting>>>> = Mutex::new(None);

fn with_idle<R>(work: impl FnOnce(&mut HashMap<String, Vec<Waiting>>) -> R) -> R {
    let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
    work(idle.get_or_insert_with(HashMap::new))
}

impl Spawn for Threads {
    fn spawn(&self, name: String, mut lane: Lane) -> io::Result<()> {
        while let Some((_, waiting)) = with_idle(|idle| idle.get_mut(&name).and_then(Vec::pop)) {
            match waiting.send(lane) {
                Ok(()) => return Ok(()),
                // That thread stopped waiting just now: try another, or start one.
                Err(flume::SendError(returned)) => lane = returned,
            }
        }
        let thread_name = name.clone();
        std::thread::Builder::new().name(thread_name).spawn(move || run_lanes(&name, lane)).map(drop)
    }
}

/// Runs `lane`, then the lanes of the same name handed to this thread while it waits.
fn run_lanes(name: &str, mut lane: Lane) {
    static NEXT_WAIT: AtomicU64 = AtomicU64::new(0);
    loop {
        lane();
        let (handover, next) = flume::bounded(1);
        let wait = NEXT_WAIT.fetch_add(1, Ordering::Relaxed);
        with_idle(|idle| idle.entry(name.to_owned()).or_default().push((wait, handover)));
        lane = match next.recv_timeout(KEEP_ALIVE) {
            Ok(lane) => lane,
            Err(_) => {
                // Stop being offered lanes; one may have been handed over meanwhile.
                with_idle(|idle| idle.get_mut(name).map(|waiting| waiting.retain(|(id, _)| *id != wait)));
                match next.try_recv() {
                    Ok(lane) => lane,
                    Err(_) => return,
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use std::thread::ThreadId;

    use super::*;

    fn run_on(name: &str) -> (ThreadId, String) {
        let (sender, answer) = flume::bounded(1);
        let lane = Box::new(move || {
            let current = std::thread::current();
            let _ = sender.send((current.id(), current.name().unwrap_or_default().to_owned()));
        });
        Threads.spawn(name.to_owned(), lane).unwrap();
        answer.recv_timeout(Duration::from_secs(5)).unwrap()
    }

    #[test]
    fn a_lane_runs_on_a_thread_of_its_name_and_the_next_of_that_name_reuses_it() {
        let (first, name) = run_on("nanasqlite-test-lane");
        assert_eq!(name, "nanasqlite-test-lane");
        // The first thread is waiting for another lane of its name by now (or soon).
        let reused = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(5));
            run_on("nanasqlite-test-lane").0 == first
        });
        assert!(reused, "a waiting thread takes the next lane of its name");
        let (other, other_name) = run_on("nanasqlite-test-other");
        assert_ne!(other, first, "never a thread of another name");
        assert_eq!(other_name, "nanasqlite-test-other");
    }
}
