//! The last handle of a write-back store dropped by a hook that runs on the flusher thread:
//! what is staged is still committed, and nothing is logged as a failure. A binary of its own,
//! because it installs a process-wide `tracing` subscriber (the flusher is another thread).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nanasqlite::hook::Hook;
use nanasqlite::{NanaSQLite, WriteBack};
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

mod common;

use common::{in_file, wait_until};

/// Keeps the message of every event at `ERROR` level.
#[derive(Default)]
struct Errors(Mutex<Vec<String>>);

struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Errors {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if *event.metadata().level() == Level::ERROR {
            let mut message = String::new();
            event.record(&mut Message(&mut message));
            self.0.lock().unwrap().push(message);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Holds a handle of the store until the flusher commits `key`; then waits until the test has
/// dropped its own (so that this one is the last, whenever the flusher runs), stages one more
/// row through it and drops it, on the flusher thread.
struct DroppingTheLastHandle {
    key: &'static str,
    store: Mutex<Option<NanaSQLite>>,
    others_dropped: AtomicBool,
    /// What staging the row gave, and whether the test's handle was gone by then.
    staged: Mutex<Option<(nanasqlite::Result<()>, bool)>>,
}

impl Hook for DroppingTheLastHandle {
    fn on_write_success(&self, key: &str, _value: &Value) {
        if key != self.key {
            return;
        }
        let start = Instant::now();
        while !self.others_dropped.load(Ordering::Acquire) && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Some(store) = self.store.lock().unwrap().take() {
            let staged = store.set("from the hook", &2);
            *self.staged.lock().unwrap() = Some((staged, self.others_dropped.load(Ordering::Acquire)));
        }
    }
}

#[test]
fn a_hook_dropping_the_last_handle_on_the_flusher_commits_and_logs_no_failure() {
    let _watchdog = common::Watchdog::new("a hook dropping the last handle", common::TEST_LIMIT);
    let errors = Arc::new(Errors::default());
    tracing::subscriber::set_global_default(Arc::clone(&errors)).expect("the only subscriber of this binary");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last-drop.db");
    let db = NanaSQLite::builder(&path).write_back(WriteBack::interval(Duration::from_millis(20))).open().unwrap();
    let hook = Arc::new(DroppingTheLastHandle {
        key: "first",
        store: Mutex::default(),
        others_dropped: AtomicBool::new(false),
        staged: Mutex::default(),
    });
    db.add_hook(Arc::clone(&hook)).unwrap();
    *hook.store.lock().unwrap() = Some(db.clone());
    db.set("first", &1).unwrap();
    drop(db); // the hook's handle is the last: it waits for this
    hook.others_dropped.store(true, Ordering::Release);
    wait_until("the row staged by the hook to be committed", Duration::from_secs(30), || {
        in_file::<i32>(&path, "from the hook") == Some(2)
    });
    let staged = hook.staged.lock().unwrap();
    assert!(matches!(*staged, Some((Ok(()), true))), "staged, by the last handle: {staged:?}");
    assert_eq!(in_file::<i32>(&path, "first"), Some(1));
    let errors = errors.0.lock().unwrap().clone();
    assert!(errors.is_empty(), "nothing failed, yet these were logged: {errors:?}");
}
