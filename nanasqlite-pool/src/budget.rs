//! A cooperative budget for the store's futures that are ready at once (a cache hit, a read run
//! on the caller's thread), so that a task looping over them gives its thread back to the
//! runtime now and then, on every runtime.
//!
//! A future that completes at its first poll never returns `Pending`: a task awaiting such
//! futures in a loop would keep its worker to itself, and on a current-thread runtime no other
//! task and no timer would run until the loop ends. Tokio's own resources avoid this with a
//! budget of its own, which futures outside tokio do not take part in. Here each thread counts
//! the store's futures that completed at their first poll since one of them last returned
//! `Pending`; past [`BUDGET`], the budget is spent: each of the store's futures polled for the
//! first time wakes its task and returns `Pending` once (keeping its answer for the next
//! poll), as `yield_now` does, until one that yielded is polled again and hands over its
//! answer. The budget stays spent until then because a combinator that polls many futures
//! (`join_all`, `FuturesUnordered`) would otherwise poll the one that yielded again at once,
//! and itself never yield: `FuturesUnordered` yields when two of its futures have.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use nanasqlite_core::Result;

/// How many of the store's futures may complete at their first poll, in a row on one thread,
/// before the budget is spent. Tokio's budget per task poll is 128 too.
pub(crate) const BUDGET: u32 = 128;

thread_local! {
    /// The store's futures that completed at their first poll on this thread since one
    /// returned `Pending` or handed over an answer it had kept; past [`BUDGET`], spent.
    static READY_IN_A_ROW: Cell<u32> = const { Cell::new(0) };
}

/// Counts a completion at the first poll; whether the budget is spent (it stays spent until
/// [`yielded`]).
fn spend() -> bool {
    READY_IN_A_ROW.with(|count| {
        let spent = count.get().saturating_add(1).min(BUDGET + 1);
        count.set(spent);
        spent > BUDGET
    })
}

/// One of the store's futures returned `Pending` (its task yields anyway), or one that yielded
/// for the budget was polled again (its task was given back to the runtime and resumed): the
/// count starts over.
fn yielded() {
    READY_IN_A_ROW.with(|count| count.set(0));
}

/// Returns `Pending` once (waking its task at once), then `Ready`: gives the runtime its turn,
/// and lets the other futures a combinator polls in the same sweep be polled before this one
/// goes on.
pub(crate) async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// The future of a call that is answered at once (a cache hit, a read run on the caller's
/// thread) or later (by a lane, or by a write run on the caller's thread after one yield): a
/// few words when answered at once, as a hit's future is moved by every caller that awaits it,
/// and a boxed future otherwise. Takes part in the budget either way: a later answer had at
/// its first poll counts as one had at once (it is never held back before it starts, as a
/// call takes its place among the store's writes at its first poll).
pub(crate) enum Answer<T> {
    /// Answered already: ready at the first poll, unless the budget says to yield once first.
    Now { answer: Option<T>, polled: bool },
    /// Answered by `queued`, which has not started before the first poll.
    Later { queued: Pin<Box<dyn Future<Output = T> + Send>>, polled: bool },
}

impl<T> Answer<T> {
    /// `answer`, had already.
    pub(crate) fn now(answer: T) -> Self {
        Self::Now { answer: Some(answer), polled: false }
    }

    /// The answer, if it is had already (and not yet polled); otherwise this future.
    pub(crate) fn settled(self) -> std::result::Result<T, Self> {
        match self {
            Self::Now { answer: Some(answer), polled: false } => Ok(answer),
            answer => Err(answer),
        }
    }

    /// The answer `queued` will give.
    pub(crate) fn later(queued: impl Future<Output = T> + Send + 'static) -> Self {
        Self::Later { queued: Box::pin(queued), polled: false }
    }
}

impl<T> std::fmt::Debug for Answer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Now { .. } => "Answer::Now",
            Self::Later { .. } => "Answer::Later",
        })
    }
}

/// The answer is never pinned: it is only moved out, whole.
impl<T> Unpin for Answer<T> {}

impl<T> Future for Answer<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            Self::Now { answer, polled } => {
                if std::mem::replace(polled, true) {
                    yielded();
                } else if spend() {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(answer.take().expect("an answer is polled once after it is given"))
            }
            Self::Later { queued, polled } => {
                // Never held back before it starts: a call takes its place among the store's
                // writes at its first poll.
                let first = !std::mem::replace(polled, true);
                let answer = queued.as_mut().poll(cx);
                match answer {
                    Poll::Pending => yielded(),
                    Poll::Ready(_) if first => {
                        spend();
                    }
                    Poll::Ready(_) => {}
                }
                answer
            }
        }
    }
}

/// The future of a call of an [`AsyncNanaSQLite`](crate::AsyncNanaSQLite) (and of its typed
/// tables and transactions): it resolves to the call's `Result`.
///
/// It borrows nothing from the store or the call's arguments, is `Send`, and is `Unpin`, so it
/// can be kept in a struct, sent to another task, or raced in `select!` without pinning. A
/// call answered from the cache is ready at its first poll; the others are answered by the
/// store's lanes or on the caller's thread. A write through the writer is queued at its first
/// poll, so such a write whose future is dropped unpolled writes nothing; a write staged in
/// write-back mode and a transaction's steps are taken when called. Like every future of the
/// store, it takes part in a budget that makes a task looping over ready answers yield to its
/// runtime now and then.
#[must_use = "a store call's outcome is known only by awaiting its future"]
pub struct Pending<T>(Answer<Result<T>>);

impl<T> Pending<T> {
    /// `answer`, had already.
    pub(crate) fn now(answer: Result<T>) -> Self {
        Self(Answer::now(answer))
    }

    /// The answer `queued` will give.
    pub(crate) fn later(queued: impl Future<Output = Result<T>> + Send + 'static) -> Self {
        Self(Answer::later(queued))
    }

    /// The answer, if it is had already (and not yet polled); otherwise this future.
    pub(crate) fn settled(self) -> std::result::Result<Result<T>, Self> {
        self.0.settled().map_err(Self)
    }
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pending").field(&self.0).finish()
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        Pin::new(&mut self.0).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Polls `future` once; its answer if it was ready.
    fn poll_once<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Option<F::Output> {
        match Pin::new(future).poll(&mut Context::from_waker(waker)) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        }
    }

    #[test]
    fn the_future_past_the_budget_yields_once_and_keeps_its_answer() {
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&wakes));
        yielded();
        for i in 0..BUDGET {
            assert_eq!(poll_once(&mut Answer::now(i), &waker), Some(i), "within the budget");
        }
        let mut past = Answer::now("answer");
        assert_eq!(poll_once(&mut past, &waker), None, "the next one yields");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "and wakes its task to be polled again");
        let mut beside = Answer::now("beside");
        assert_eq!(poll_once(&mut beside, &waker), None, "the budget stays spent until one that yielded answers");
        assert_eq!(poll_once(&mut past, &waker), Some("answer"), "then answers");
        assert_eq!(poll_once(&mut beside, &waker), Some("beside"));
        assert_eq!(poll_once(&mut Answer::now(0), &waker), Some(0), "the count started over");
    }

    #[test]
    fn a_combinator_polling_many_ready_futures_yields_too() {
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        yielded();
        let count = 3 * BUDGET;
        // Past 30 futures, `join_all` polls them through `FuturesUnordered`, which polls a
        // future that yielded again at once and yields itself only when two of them have.
        let mut joined = Box::pin(futures::future::join_all((0..count).map(Answer::now)));
        let mut pending = 0;
        let answers = loop {
            match poll_once(&mut joined, &waker) {
                Some(answers) => break answers,
                None => pending += 1,
            }
        };
        assert!(pending >= 2, "{count} ready futures joined yielded {pending} times");
        assert_eq!(answers, (0..count).collect::<Vec<_>>());
    }

    #[test]
    fn an_answer_had_at_once_takes_part_in_the_budget_and_a_queued_one_starts_it_over() {
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&wakes));
        yielded();
        for i in 0..BUDGET {
            assert_eq!(poll_once(&mut Answer::now(i), &waker), Some(i));
        }
        let mut past = Answer::now("answer");
        assert_eq!(poll_once(&mut past, &waker), None, "past the budget: yields once");
        assert_eq!((wakes.0.load(Ordering::SeqCst), poll_once(&mut past, &waker)), (1, Some("answer")));
        for _ in 0..BUDGET - 1 {
            assert!(poll_once(&mut Answer::now(()), &waker).is_some());
        }
        assert!(poll_once(&mut Answer::later(std::future::pending::<()>()), &waker).is_none());
        assert!(poll_once(&mut Answer::now(()), &waker).is_some(), "a queued answer started the count over");
    }

    #[test]
    fn a_later_answer_had_at_its_first_poll_counts_and_is_never_held_back() {
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&wakes));
        yielded();
        for i in 0..BUDGET {
            assert_eq!(poll_once(&mut Answer::later(std::future::ready(i)), &waker), Some(i));
        }
        let mut past = Answer::later(std::future::ready("later"));
        assert_eq!(poll_once(&mut past, &waker), Some("later"), "a later answer starts at its first poll");
        let mut now = Answer::now("now");
        assert_eq!(poll_once(&mut now, &waker), None, "the later answers spent the budget");
        assert_eq!(poll_once(&mut now, &waker), Some("now"));
    }

    #[test]
    fn a_future_that_waits_starts_the_count_over() {
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        yielded();
        for _ in 0..BUDGET {
            assert!(poll_once(&mut Answer::now(()), &waker).is_some());
        }
        assert!(poll_once(&mut Answer::later(std::future::pending::<()>()), &waker).is_none());
        for _ in 0..BUDGET {
            assert!(poll_once(&mut Answer::now(()), &waker).is_some(), "a fresh budget");
        }
    }
}
