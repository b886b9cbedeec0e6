//! Jobs: the work a caller hands to a lane, and how its answer gets back.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use nanasqlite_core::Error;
use nanasqlite_core::storage::SqliteStorage;

/// Whether a job reads or writes: writes are grouped into one write transaction, reads into
/// one read snapshot, and the two never share one. An exclusive job runs alone on the writer,
/// outside any transaction (it may open its own, or need none, as `VACUUM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Read,
    Write,
    Exclusive,
}

/// What a job produced: the caller's answer, and what to do once it is committed (the cache
/// update, which must never show a write that did not commit).
pub(crate) struct Outcome<R> {
    pub(crate) value: R,
    pub(crate) on_commit: Option<Box<dyn FnOnce() + Send>>,
}

impl<R> Outcome<R> {
    /// An answer with nothing to do after the commit.
    pub(crate) fn plain(value: R) -> Self {
        Self { value, on_commit: None }
    }

    /// An answer and the cache update to apply once committed.
    pub(crate) fn then(value: R, on_commit: impl FnOnce() + Send + 'static) -> Self {
        Self { value, on_commit: Some(Box::new(on_commit)) }
    }
}

/// A job as the lanes see it, whatever its answer's type.
pub(crate) trait Job: Send {
    fn kind(&self) -> Kind;
    /// The caller is gone (its future was dropped), so running the job would serve nobody.
    fn is_abandoned(&self) -> bool;
    /// When the job was handed to the pool.
    fn queued_at(&self) -> Instant;
    /// How long the job waited, if that is past its `lock_timeout`.
    fn overdue(&self, now: Instant) -> Option<Duration>;
    /// Settles the job with [`Error::LockTimeout`] instead of running it, if it waited past
    /// its `lock_timeout` (also behind earlier jobs of its own group); returns whether it did.
    fn time_out(&mut self, now: Instant) -> bool;
    /// Runs the work; a write may be run again (when another write of its group failed and
    /// the group's transaction was rolled back), so the work must be repeatable.
    fn run(&mut self, storage: &mut SqliteStorage);
    /// Whether the last run failed.
    fn failed(&self) -> bool;
    /// The error of the last run, if it failed with one.
    fn error(&self) -> Option<&Error>;
    /// Answers the caller: with `error` if the group failed as a whole, else with the outcome
    /// (applying its cache update first).
    fn finish(self: Box<Self>, error: Option<&Error>);
    /// Answers the caller with `error` without running.
    fn reject(self: Box<Self>, error: Error);
}

/// A job whose work returns `R`.
pub(crate) struct Task<F, R> {
    kind: Kind,
    work: F,
    outcome: Option<nanasqlite_core::Result<Outcome<R>>>,
    reply: oneshot::Sender<nanasqlite_core::Result<R>>,
    queued_at: Instant,
    deadline: Option<(Instant, Duration)>,
    span: tracing::Span,
    /// Runs although nobody waits for its answer (housekeeping).
    detached: bool,
}

impl<F, R> Task<F, R>
where
    F: Fn(&mut SqliteStorage) -> nanasqlite_core::Result<Outcome<R>> + Send + 'static,
    R: Send + 'static,
{
    /// A job, and the receiver its answer will arrive on.
    pub(crate) fn prepare(
        kind: Kind,
        lock_timeout: Option<Duration>,
        span: tracing::Span,
        work: F,
    ) -> (Box<dyn Job>, oneshot::Receiver<nanasqlite_core::Result<R>>) {
        let (reply, answer) = oneshot::channel();
        let queued_at = Instant::now();
        let deadline = lock_timeout.map(|timeout| (queued_at + timeout, timeout));
        let task = Self { kind, work, outcome: None, reply, queued_at, deadline, span, detached: false };
        (Box::new(task), answer)
    }

    /// A job that runs although nobody waits for its answer.
    pub(crate) fn detached(kind: Kind, span: tracing::Span, work: F) -> Box<dyn Job> {
        let (reply, _) = oneshot::channel();
        let queued_at = Instant::now();
        Box::new(Self { kind, work, outcome: None, reply, queued_at, deadline: None, span, detached: true })
    }
}

impl<F, R> Job for Task<F, R>
where
    F: Fn(&mut SqliteStorage) -> nanasqlite_core::Result<Outcome<R>> + Send + 'static,
    R: Send + 'static,
{
    fn kind(&self) -> Kind {
        self.kind
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

    fn run(&mut self, storage: &mut SqliteStorage) {
        let _entered = self.span.enter();
        let work = &self.work;
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| work(storage)));
        self.outcome = Some(outcome.unwrap_or_else(|panic| Err(panic_error(panic.as_ref()))));
    }

    fn failed(&self) -> bool {
        !matches!(self.outcome, Some(Ok(_)))
    }

    fn error(&self) -> Option<&Error> {
        self.outcome.as_ref().and_then(|outcome| outcome.as_ref().err())
    }

    fn finish(self: Box<Self>, error: Option<&Error>) {
        let Self { outcome, reply, queued_at, .. } = *self;
        let answer = match (error, outcome) {
            (Some(error), _) => Err(error.duplicate()),
            (None, Some(Ok(Outcome { value, on_commit }))) => {
                on_commit.into_iter().for_each(|apply| apply());
                Ok(value)
            }
            (None, Some(Err(error))) => Err(error),
            (None, None) => Err(Error::Closed),
        };
        // Another process held the file's write lock for the whole busy timeout.
        let answer = answer.map_err(|error| error.busy_as_lock_timeout(queued_at.elapsed()));
        // The caller may have gone meanwhile: then nobody needs the answer.
        let _ = reply.send(answer);
    }

    fn reject(self: Box<Self>, error: Error) {
        let _ = self.reply.send(Err(error));
    }
}

/// A panic as an error for its caller.
pub(crate) fn panic_error(panic: &(dyn Any + Send)) -> Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned());
    Error::Panic { message }
}
