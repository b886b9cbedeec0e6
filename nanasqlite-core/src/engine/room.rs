//! [`Room`]: a signal that staged rows left the write-back staging area, awaited the same way by
//! a thread (the sync store) and by a future (the async store), so that a write at the bound
//! waits for room in one way on both.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// Counts the times room was made; a waiter remembers the count it saw when it found no room
/// and waits until the count moves on, so that room made between its check and its wait is
/// never missed.
#[derive(Debug, Default)]
pub(crate) struct Room {
    state: Mutex<Signals>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Signals {
    made: u64,
    wakers: Vec<Waker>,
}

impl Room {
    /// How many times room was made so far: take it before checking for room.
    pub(crate) fn seen(&self) -> u64 {
        self.state.lock().made
    }

    /// Room was made (rows left the staging area, or the store stopped): wakes every waiter.
    pub(crate) fn made(&self) {
        let wakers = {
            let mut state = self.state.lock();
            state.made += 1;
            std::mem::take(&mut state.wakers)
        };
        self.changed.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Blocks this thread until room is made after `seen`, or `limit` has passed; whether room
    /// was made.
    pub(crate) fn wait(&self, seen: u64, limit: Duration) -> bool {
        let mut state = self.state.lock();
        if state.made == seen {
            self.changed.wait_for(&mut state, limit);
        }
        state.made != seen
    }
}

/// A future that resolves once room is made after the count it was made with; it never blocks
/// its thread.
#[derive(Debug)]
pub struct WaitingForRoom {
    room: Arc<Room>,
    seen: u64,
}

impl WaitingForRoom {
    pub(crate) fn new(room: Arc<Room>, seen: u64) -> Self {
        Self { room, seen }
    }
}

impl Future for WaitingForRoom {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.room.state.lock();
        if state.made != self.seen {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|waker| waker.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Wake;

    use super::*;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiter_resolves_once_room_is_made_after_what_it_saw_and_never_misses_it() {
        let room = Arc::new(Room::default());
        let seen = room.seen();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        let mut waiting = WaitingForRoom::new(Arc::clone(&room), seen);
        assert!(Pin::new(&mut waiting).poll(&mut cx).is_pending());
        assert!(!flag.0.load(Ordering::SeqCst));
        room.made();
        assert!(flag.0.load(Ordering::SeqCst), "the waiter was woken");
        assert!(Pin::new(&mut waiting).poll(&mut cx).is_ready());
        // Room made between the check and the first poll: ready at once.
        let mut late = WaitingForRoom::new(room, seen);
        assert!(Pin::new(&mut late).poll(&mut cx).is_ready());
    }

    #[test]
    fn a_blocked_thread_returns_once_room_is_made() {
        let room = Arc::new(Room::default());
        let seen = room.seen();
        let waiter = {
            let room = Arc::clone(&room);
            std::thread::spawn(move || room.wait(seen, Duration::from_secs(600)))
        };
        // Whether the waiter waits already or not yet, it sees the count move on.
        room.made();
        assert!(waiter.join().unwrap(), "woken by the room made, not by the limit");
        assert!(!room.wait(room.seen(), Duration::ZERO), "no room made since: the limit ends the wait");
    }
}
