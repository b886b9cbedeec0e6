//! Jobs: an engine operation handed to a lane, and how its answer gets back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use nanasqlite_core::engine::{self, Applied, Kind, Operation, Table};
use nanasqlite_core::storage::Storage;
use nanasqlite_core::{Error, Result};

use crate::deadline::{self, Expire};

/// A job as the lanes see it, whatever its operation and answer.
pub(crate) trait Job<S>: Send {
    fn kind(&self) -> Kind;
    /// Takes over answering the caller from the deadline thread; `false` if that thread has
    /// answered already (the job waited past its `lock_timeout` in the queue): the lane must
    /// then not run it.
    fn claim(&mut self) -> bool;
    /// The caller is gone (its future was dropped), so running the job would serve nobody.
    fn is_abandoned(&self) -> bool;
    /// When the job was handed to the pool.
    fn queued_at(&self) -> Instant;
    /// How long the job waited, if that is past its `lock_timeout`.
    fn overdue(&self, now: Instant) -> Option<Duration>;
    /// Settles the job with [`Error::LockTimeout`] instead of running it, if it waited past
    /// its `lock_timeout` (also behind earlier jobs of its own group); returns whether it did.
    fn time_out(&mut self, now: Instant) -> bool;
    /// Runs the operation; a write may be run again (when another write of its group failed
    /// and the group's transaction was rolled back).
    fn run(&mut self, storage: &mut S);
    /// Whether the last run failed.
    fn failed(&self) -> bool;
    /// The error of the last run, if it failed with one.
    fn error(&self) -> Option<&Error>;
    /// Answers the caller: with `error` if the group failed as a whole, else with the outcome
    /// (applying its cache change first).
    fn finish(self: Box<Self>, error: Option<&Error>);
    /// Answers the caller with `error` without running.
    fn reject(self: Box<Self>, error: Error);
}

/// Where a job's answer goes.
enum Reply<R> {
    /// Straight to the caller.
    Direct(oneshot::Sender<Result<R>>),
    /// To the caller, unless the deadline thread, which shares the slot, answered first.
    Shared(Arc<Settle<R>>),
    /// Answered by the deadline thread.
    Settled,
}

/// A reply the deadline thread may settle with `LockTimeout`.
struct Settle<R> {
    sender: parking_lot::Mutex<Option<oneshot::Sender<Result<R>>>>,
    waited: Duration,
}

impl<R: Send> Expire for Settle<R> {
    fn expire(&self) {
        if let Some(sender) = self.sender.lock().take() {
            let _ = sender.send(Err(Error::LockTimeout { waited: self.waited }));
        }
    }
}

impl<R> Reply<R> {
    fn claim(&mut self) -> bool {
        if let Self::Shared(settle) = self {
            let sender = settle.sender.lock().take();
            *self = sender.map_or(Self::Settled, Self::Direct);
        }
        !matches!(self, Self::Settled)
    }

    fn is_canceled(&self) -> bool {
        match self {
            Self::Direct(sender) => sender.is_canceled(),
            Self::Shared(settle) => settle.sender.lock().as_ref().is_none_or(oneshot::Sender::is_canceled),
            Self::Settled => true,
        }
    }

    fn send(self, answer: Result<R>) {
        let sender = match self {
            Self::Direct(sender) => Some(sender),
            Self::Shared(settle) => settle.sender.lock().take(),
            Self::Settled => None,
        };
        // The caller may have gone meanwhile: then nobody needs the answer.
        let _ = sender.map(|sender| sender.send(answer));
    }
}

/// A job handed to the writer and not yet answered: counted in the pool's writer jobs from its
/// making until its cache change is applied (or it is dropped unrun), so that a write run on a
/// caller's thread ([`Pool::try_inline_write`](crate::pool::Pool)) never overtakes it.
#[derive(Debug)]
pub(crate) struct Ticket(Arc<AtomicUsize>);

impl Ticket {
    /// Counts one more job in `jobs`.
    pub(crate) fn new(jobs: &Arc<AtomicUsize>) -> Self {
        jobs.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(jobs))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An operation on a table, the caller's reply channel, and what the lanes track of it.
pub(crate) struct Task<S: Storage, O: Operation<S>> {
    operation: O,
    table: Arc<Table<S>>,
    outcome: Option<Result<Applied<O::Output>>>,
    reply: Reply<O::Output>,
    queued_at: Instant,
    deadline: Option<(Instant, Duration)>,
    span: tracing::Span,
    /// Runs although nobody waits for its answer (housekeeping).
    detached: bool,
    /// Held while the job is the writer's.
    ticket: Option<Ticket>,
}

/// The receiver of a job's answer.
pub(crate) type Answer<R> = oneshot::Receiver<Result<R>>;

impl<S, O> Task<S, O>
where
    S: Storage,
    O: Operation<S> + Send + 'static,
    O::Output: Send + 'static,
{
    /// A job running `operation` on `table`, and the receiver its answer will arrive on.
    pub(crate) fn prepare(
        operation: O,
        table: Arc<Table<S>>,
        lock_timeout: Option<Duration>,
        span: tracing::Span,
        ticket: Option<Ticket>,
    ) -> (Box<dyn Job<S>>, Answer<O::Output>) {
        let (task, answer) = Self::new(operation, table, lock_timeout, span);
        (Box::new(Self { ticket, ..task }), answer)
    }

    /// A job for the writer that runs although nobody waits for its answer.
    pub(crate) fn detached(operation: O, table: Arc<Table<S>>, span: tracing::Span, ticket: Ticket) -> Box<dyn Job<S>> {
        let (task, _) = Self::new(operation, table, None, span);
        Box::new(Self { detached: true, ticket: Some(ticket), ..task })
    }

    fn new(
        operation: O,
        table: Arc<Table<S>>,
        lock_timeout: Option<Duration>,
        span: tracing::Span,
    ) -> (Self, Answer<O::Output>) {
        let (sender, answer) = oneshot::channel();
        let queued_at = Instant::now();
        let deadline = lock_timeout.map(|timeout| (queued_at + timeout, timeout));
        let reply = match deadline {
            None => Reply::Direct(sender),
            Some((at, waited)) => {
                let settle = Arc::new(Settle { sender: parking_lot::Mutex::new(Some(sender)), waited });
                deadline::at(at, Arc::downgrade(&settle) as Weak<dyn Expire>);
                Reply::Shared(settle)
            }
        };
        let task =
            Self { operation, table, outcome: None, reply, queued_at, deadline, span, detached: false, ticket: None };
        (task, answer)
    }
}

impl<S, O> Job<S> for Task<S, O>
where
    S: Storage,
    O: Operation<S> + Send + 'static,
    O::Output: Send + 'static,
{
    fn kind(&self) -> Kind {
        self.operation.kind()
    }

    fn claim(&mut self) -> bool {
        self.reply.claim()
    }

    fn is_abandoned(&self) -> bool {
        !self.detached && self.reply.is_canceled()
    }

    fn queued_at(&self) -> Instant {
        self.queued_at
    }

    fn overdue(&self, now: Instant) -> Option<Duration> {
        self.deadline.filter(|(deadline, _)| now > *deadline).map(|(_, timeout)| timeout)
    }

    fn time_out(&mut self, now: Instant) -> bool {
        let waited = self.overdue(now);
        if let Some(waited) = waited {
            self.outcome = Some(Err(Error::LockTimeout { waited }));
        }
        waited.is_some()
    }

    fn run(&mut self, storage: &mut S) {
        let _entered = self.span.enter();
        let (operation, table) = (&mut self.operation, &self.table);
        self.outcome = Some(engine::contained(|| operation.run(storage, table)));
    }

    fn failed(&self) -> bool {
        !matches!(self.outcome, Some(Ok(_)))
    }

    fn error(&self) -> Option<&Error> {
        self.outcome.as_ref().and_then(|outcome| outcome.as_ref().err())
    }

    fn finish(self: Box<Self>, error: Option<&Error>) {
        let Self { outcome, reply, queued_at, table, ticket, .. } = *self;
        let answer = match (error, outcome) {
            (Some(error), _) => Err(error.clone()),
            (None, Some(Ok(Applied { output, change }))) => {
                table.apply(change);
                Ok(output)
            }
            (None, Some(Err(error))) => Err(error),
            (None, None) => Err(Error::Closed),
        };
        // Before the answer: the caller's next write may then run on its own thread.
        drop(ticket);
        // Another process held the file's write lock for the whole busy timeout.
        reply.send(answer.map_err(|error| error.busy_as_lock_timeout(queued_at.elapsed())));
    }

    fn reject(self: Box<Self>, error: Error) {
        let Self { reply, ticket, .. } = *self;
        drop(ticket);
        reply.send(Err(error));
    }
}
