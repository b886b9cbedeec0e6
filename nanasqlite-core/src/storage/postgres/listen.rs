//! Cache coherence between clients: triggers announce each statement's changed keys on channel
//! `nanasqlite`, and every open store listens on a connection of its own and drops those keys
//! from its caches.
//!
//! A notice is `{"pid": <writer's server process>, "table": "<name>", "keys": [...]}`, or
//! `{"pid": …, "table": "<name>", "all": true}` when the keys would not fit the 8,000 bytes a
//! notice may carry (a large batch, a `TRUNCATE`). PostgreSQL delivers notices when the
//! transaction commits, never for one rolled back. A store ignores the notices of its own
//! writer, whose writes its caches already hold.
//!
//! The staleness bound ([`STALENESS`]): a committed write of another client leaves this
//! store's caches once its notice arrives, normally within milliseconds of the commit. When the
//! listening connection is lost (a server restart, a network cut), notices sent meanwhile are
//! lost too, so every cache is emptied as soon as the loss is noticed, which is within one poll
//! ([`POLL`]); the listener then reconnects, retrying every second, and empties the caches again
//! once listening.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use serde::Deserialize;

use super::PostgresConfig;
use crate::error::Result;
use crate::storage::{Changed, OnChange, Watch};

/// How often the listener looks up from waiting, to notice that its store closed or that its
/// connection died.
pub(super) const POLL: Duration = Duration::from_millis(100);

/// The longest a cache may serve a value another client has since overwritten, while the
/// server and the network work: a notice arrives within milliseconds of the commit on a LAN
/// (the listener wakes for it at once), and this bound leaves room for a loaded machine; the
/// tests hold the stores to it. After the listening connection is lost, every cache is
/// emptied within a tenth of a second of noticing it.
pub const STALENESS: Duration = Duration::from_secs(1);

/// The trigger function every key/value table calls, once per statement.
pub(super) const FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION nanasqlite_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    changed bigint;
    keys text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        changed := 1;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT count(*), string_agg(to_json(key)::text, ',') INTO changed, keys FROM nanasqlite_old;
    ELSE
        SELECT count(*), string_agg(to_json(key)::text, ',') INTO changed, keys FROM nanasqlite_new;
    END IF;
    IF changed = 0 THEN
        RETURN NULL;
    END IF;
    IF keys IS NULL OR octet_length(keys) > 7000 THEN
        PERFORM pg_notify('nanasqlite', json_build_object('pid', pg_backend_pid(), 'table', TG_TABLE_NAME, 'all', true)::text);
    ELSE
        PERFORM pg_notify('nanasqlite',
            '{"pid":' || pg_backend_pid() || ',"table":' || to_json(TG_TABLE_NAME::text)::text || ',"keys":[' || keys || ']}');
    END IF;
    RETURN NULL;
END
$fn$;
"#;

/// The triggers of table `name` (`quoted` for SQL).
pub(super) fn triggers(name: &str, quoted: &str) -> String {
    let trigger = |event: &str, transition: &str| {
        // `name` is an identifier (ASCII letters, digits, `_`), so the trigger's name is one too.
        let trigger_name = format!("\"{name}_nanasqlite_{}\"", event.to_lowercase());
        format!(
            "CREATE OR REPLACE TRIGGER {trigger_name} AFTER {event} ON {quoted} {transition} \
             FOR EACH STATEMENT EXECUTE FUNCTION nanasqlite_changed();"
        )
    };
    [
        trigger("INSERT", "REFERENCING NEW TABLE AS nanasqlite_new"),
        trigger("UPDATE", "REFERENCING NEW TABLE AS nanasqlite_new"),
        trigger("DELETE", "REFERENCING OLD TABLE AS nanasqlite_old"),
        trigger("TRUNCATE", ""),
    ]
    .join("\n")
}

#[derive(Deserialize)]
struct Notice {
    pid: i32,
    table: String,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    all: bool,
}

/// Stops the listener when dropped (it notices within one [`POLL`]).
struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Starts the listener thread of a store whose writer is server process `own`: `changed` hears
/// what other clients changed.
pub(super) fn start(config: &PostgresConfig, own: i32, changed: OnChange) -> Result<Watch> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut client = connect(config, own)?;
    let (config, stopped) = (config.clone(), Arc::clone(&stop));
    std::thread::Builder::new()
        .name("nanasqlite-pg-listen".to_owned())
        .spawn(move || {
            loop {
                listen(&mut client, own, &changed, &stopped);
                changed(Changed::All);
                match reconnect(&config, own, &stopped) {
                    Some(fresh) => client = fresh,
                    None => return,
                }
                changed(Changed::All);
            }
        })
        .map_err(crate::Error::Io)?;
    Ok(Box::new(Stop(stop)))
}

/// A connection listening on channel `nanasqlite`, named after the writer whose store it
/// serves (`nanasqlite-listen-<pid>`), so that an operator can tell the listeners apart.
fn connect(config: &PostgresConfig, own: i32) -> Result<postgres::Client> {
    let mut client = config.connect(&format!("nanasqlite-listen-{own}"))?;
    client.batch_execute("LISTEN nanasqlite").map_err(super::backend)?;
    Ok(client)
}

/// Hands on notices until the store closes (then returns at once) or the connection dies.
fn listen(client: &mut postgres::Client, own: i32, changed: &OnChange, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        {
            let mut notices = client.notifications();
            let mut waiting = notices.timeout_iter(POLL);
            loop {
                match waiting.next() {
                    Ok(Some(notice)) => hand_on(notice.payload(), own, changed),
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "the PostgreSQL listener lost its connection; caches emptied");
                        return;
                    }
                }
            }
        }
        if client.is_closed() {
            tracing::warn!("the PostgreSQL listener lost its connection; caches emptied");
            return;
        }
    }
}

fn hand_on(payload: &str, own: i32, changed: &OnChange) {
    match serde_json::from_str::<Notice>(payload) {
        Ok(notice) if notice.pid == own => {}
        Ok(notice) if notice.all => changed(Changed::Table(&notice.table)),
        Ok(notice) => changed(Changed::Keys { table: &notice.table, keys: &notice.keys }),
        Err(error) => {
            tracing::warn!(%error, "an unreadable change notice; every cache emptied");
            changed(Changed::All);
        }
    }
}

/// A listening connection again, retrying every second; `None` once the store has closed.
fn reconnect(config: &PostgresConfig, own: i32, stop: &AtomicBool) -> Option<postgres::Client> {
    while !stop.load(Ordering::Acquire) {
        match connect(config, own) {
            Ok(client) => return Some(client),
            Err(error) => {
                tracing::warn!(%error, "the PostgreSQL listener cannot reconnect yet");
                for _ in 0..10 {
                    if stop.load(Ordering::Acquire) {
                        return None;
                    }
                    std::thread::sleep(POLL);
                }
            }
        }
    }
    None
}
