//! Every operation that reaches the pool runs in a `nanasqlite` span, entered on the lane.

use std::sync::{Arc, Mutex};

use nanasqlite_pool::AsyncNanaSQLite;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records `(op, thread name)` each time a span is entered.
#[derive(Default)]
struct Recorder {
    ops: Mutex<Vec<String>>,
    entered: Mutex<Vec<(String, String)>>,
}

struct OpField<'a>(&'a mut String);

impl Visit for OpField<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "op" {
            value.clone_into(self.0);
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut op = String::new();
        span.record(&mut OpField(&mut op));
        let mut ops = self.ops.lock().unwrap();
        ops.push(op);
        Id::from_u64(ops.len() as u64)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, span: &Id) {
        let op = self.ops.lock().unwrap()[span.into_u64() as usize - 1].clone();
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        self.entered.lock().unwrap().push((op, thread));
    }
    fn exit(&self, _: &Id) {}
}

fn entered_spans(inline: bool) -> Vec<(String, String)> {
    let recorder = Arc::new(Recorder::default());
    tracing::subscriber::with_default(Arc::clone(&recorder), || {
        futures::executor::block_on(async {
            let builder = AsyncNanaSQLite::builder(":memory:").inline_reads(inline).inline_writes(inline);
            let db = builder.open().await.unwrap();
            db.set("k", &1).await.unwrap();
            db.clear_cache();
            db.get::<i32>("k").await.unwrap();
            db.close().await.unwrap();
        });
    });
    recorder.entered.lock().unwrap().clone()
}

#[test]
fn operations_are_traced_into_the_writer_thread() {
    let entered = entered_spans(false);
    for op in ["set", "get"] {
        assert!(entered.iter().any(|(o, t)| o == op && t == "nanasqlite-writer"), "{op} on the writer: {entered:?}");
    }
}

#[test]
fn an_inline_read_and_write_are_traced_on_the_callers_thread() {
    let entered = entered_spans(true);
    let caller = std::thread::current().name().unwrap_or("").to_owned();
    assert!(entered.iter().any(|(o, t)| o == "set" && *t == caller), "the write ran on {caller:?}: {entered:?}");
    assert!(entered.iter().any(|(o, t)| o == "get" && *t == caller), "the read ran on {caller:?}: {entered:?}");
}
