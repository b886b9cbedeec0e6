//! Cache coherence between clients: triggers announce each statement's changed keys on channel
//! `nanasqlite`, and every open store listens on a connection of its own and drops those keys
//! from its caches.
//!
//! A notice is `{"pid": <writer's server process>, "origin": "<store token>", "table":
//! "<name>", "keys": [...]}`, or `{…, "all": true}` when the keys would not fit the 8,000 bytes
//! a notice may carry (a large batch, a `TRUNCATE`). PostgreSQL delivers notices when the
//! transaction commits, never for one rolled back. A store ignores the notices of its own
//! writes, whose keys its caches already hold: it knows them by the token its sessions set as
//! `nanasqlite.origin` on every (re)connect, never by a server process id, which the server
//! hands to another client once a session reconnects (and which a session-pooling proxy
//! shares between clients).
//!
//! The staleness bound ([`STALENESS`]): a committed write of another client leaves this
//! store's caches once its notice arrives, normally within milliseconds of the commit. When the
//! listening connection is lost (a server restart, a network cut), notices sent meanwhile are
//! lost too, so every cache is emptied as soon as the loss is noticed, which is within one poll
//! ([`POLL`]); the listener then reconnects, retrying every second, and empties the caches again
//! once listening.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use serde::Deserialize;

use super::PostgresConfig;
use crate::error::Result;
use crate::storage::{Changed, OnChange, Watch};

/// How often the listener looks up from waiting, to notice that its store closed or that its
/// connection died.
pub(super) const POLL: Duration = Duration::from_millis(100);

/// How long the listener waits without a notice before it checks that its connection still
/// answers.
pub(super) const PING_EVERY: Duration = Duration::from_secs(1);

/// How long unanswered data may wait on a connection before the client gives it up (the
/// kernel's `TCP_USER_TIMEOUT`), unless the URL sets its own `tcp_user_timeout`; with
/// [`PING_EVERY`] and [`POLL`] it bounds [`SILENT_CUT`].
pub(super) const UNANSWERED: Duration = Duration::from_secs(3);

/// The longest a silently cut listening connection goes unnoticed: a network that drops the
/// connection's packets without a reset (a partition, a NAT or load balancer that forgot an
/// idle connection) is noticed within the listener's ping interval (1 s), the time a ping may
/// go unanswered (3 s) and its poll (0.1 s), and every cache is emptied then. Until then, a cache may serve values other clients overwrote.
pub const SILENT_CUT: Duration = Duration::from_secs(5);

/// The longest a cache may serve a value another client has since overwritten, while the
/// server and the network work: a notice arrives within milliseconds of the commit on a LAN
/// (the listener wakes for it at once), and this bound leaves room for a loaded machine; the
/// tests hold the stores to it. After the listening connection is lost, every cache is
/// emptied within a tenth of a second of noticing it.
pub const STALENESS: Duration = Duration::from_secs(1);

/// Marks this version of the trigger function (its source holds it): a table whose function
/// lacks it gets this version's function and triggers when opened.
pub(super) const VERSION: &str = "nanasqlite trigger v3";

/// The names of the four triggers on every key/value table, in the order PostgreSQL lists
/// them: short and fixed (a trigger's name need only be unique on its table), so that no table
/// name makes them collide when PostgreSQL cuts names to 63 bytes.
pub(super) const TRIGGER_NAMES: [&str; 4] =
    ["nanasqlite_delete", "nanasqlite_insert", "nanasqlite_truncate", "nanasqlite_update"];

/// The trigger function every key/value table calls, once per statement. Its notices carry
/// the writing session's `nanasqlite.origin` (the token of the store that wrote, `null` for
/// other programs) besides its server process, and the table's schema: one channel serves
/// the whole database, and a table of the same name in another schema is another table.
pub(super) const FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION nanasqlite_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
-- nanasqlite trigger v3
DECLARE
    changed bigint;
    keys text;
    origin text := coalesce(to_json(nullif(current_setting('nanasqlite.origin', true), ''))::text, 'null');
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
        PERFORM pg_notify('nanasqlite',
            '{"pid":' || pg_backend_pid() || ',"origin":' || origin || ',"schema":' || to_json(TG_TABLE_SCHEMA::text)::text || ',"table":' || to_json(TG_TABLE_NAME::text)::text || ',"all":true}');
    ELSE
        PERFORM pg_notify('nanasqlite',
            '{"pid":' || pg_backend_pid() || ',"origin":' || origin || ',"schema":' || to_json(TG_TABLE_SCHEMA::text)::text || ',"table":' || to_json(TG_TABLE_NAME::text)::text || ',"keys":[' || keys || ']}');
    END IF;
    RETURN NULL;
END
$fn$;
"#;

/// A value as `jsonb`, or `NULL` when it is not JSON (another program's text, an encrypted
/// row's `NULL`): what unique fields are indexed and looked up through. Not parallel safe: its
/// exception block is a subtransaction, which a parallel worker (of an index build) cannot
/// start.
pub(super) const JSON_FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION nanasqlite_json(value text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE PARALLEL UNSAFE AS $fn$
BEGIN
    RETURN value::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$fn$;
"#;

/// Raises a unique check's refusal of the write of `key` (SQLSTATE `NSQ01`, the key as its
/// message and the rule as its detail), which the client maps back to `Error::Refused`.
pub(super) const REFUSE_FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION nanasqlite_refuse(key text, by text) RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'NSQ01', MESSAGE = key, DETAIL = by;
END
$fn$;
"#;

/// The triggers of table `quoted` (an identifier, quoted): this version's four, after dropping
/// any other trigger of the table that calls the function (older versions' names).
pub(super) fn triggers(quoted: &str) -> String {
    let kept = TRIGGER_NAMES.map(|name| format!("'{name}'")).join(", ");
    let drop_others = format!(
        "DO $drop$ DECLARE old record; BEGIN
             FOR old IN SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                 WHERE t.tgrelid = '{quoted}'::regclass AND p.proname = 'nanasqlite_changed'
                 AND NOT t.tgisinternal AND t.tgname NOT IN ({kept})
             LOOP EXECUTE format('DROP TRIGGER %I ON %s', old.tgname, '{quoted}'); END LOOP;
         END $drop$;"
    );
    let trigger = |event: &str, transition: &str| {
        format!(
            "CREATE OR REPLACE TRIGGER nanasqlite_{} AFTER {event} ON {quoted} {transition} \
             FOR EACH STATEMENT EXECUTE FUNCTION nanasqlite_changed();",
            event.to_lowercase()
        )
    };
    [
        drop_others,
        trigger("INSERT", "REFERENCING NEW TABLE AS nanasqlite_new"),
        trigger("UPDATE", "REFERENCING NEW TABLE AS nanasqlite_new"),
        trigger("DELETE", "REFERENCING OLD TABLE AS nanasqlite_old"),
        trigger("TRUNCATE", ""),
    ]
    .join("\n")
}

#[derive(Deserialize)]
struct Notice {
    /// The token of the store that wrote (`None` for another program, or a notice of an older
    /// version).
    #[serde(default)]
    origin: Option<String>,
    /// The table's schema (`None` in a notice of an older version: then any schema).
    #[serde(default)]
    schema: Option<String>,
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

/// Starts the listener thread of the store whose token is `own` (the notices of its own writes
/// carry it, whatever server process its session has now): `changed` hears what other clients
/// changed.
pub(super) fn start(config: &PostgresConfig, own: Arc<str>, changed: OnChange) -> Result<Watch> {
    let stop = Arc::new(AtomicBool::new(false));
    let (mut client, schema) = connect(config, &own)?;
    let (config, stopped) = (config.clone(), Arc::clone(&stop));
    std::thread::Builder::new()
        .name("nanasqlite-pg-listen".to_owned())
        .spawn(move || {
            loop {
                listen(&mut client, (&own, &schema), &changed, &stopped);
                changed(Changed::All);
                match reconnect(&config, &own, &stopped) {
                    Some((fresh, _)) => client = fresh,
                    None => return,
                }
                changed(Changed::All);
            }
        })
        .map_err(crate::Error::Io)?;
    Ok(Box::new(Stop(stop)))
}

/// A connection listening on channel `nanasqlite`, named after the store it serves
/// (`nanasqlite-listen-<token>`), so that an operator can tell the listeners apart; and the
/// schema the store's tables are in (the connection's, as the store's sessions share its
/// settings).
fn connect(config: &PostgresConfig, own: &str) -> Result<(postgres::Client, String)> {
    let mut client = config.connect(&format!("nanasqlite-listen-{own}"))?;
    client.batch_execute("LISTEN nanasqlite").map_err(super::backend)?;
    let schema = client.query_one("SELECT current_schema()::text", &[]).map_err(super::backend)?.get(0);
    Ok((client, schema))
}

/// Hands on notices until the store closes (then returns at once) or the connection dies.
/// After [`PING_EVERY`] without a notice it asks the server for a row: on a connection a
/// network cut silently (no reset: a partition, a NAT that forgot it), the question goes
/// unanswered and the connection's `tcp_user_timeout` ([`PostgresConfig`]) fails it within
/// seconds, where waiting for notices alone would wait for TCP keepalive's two hours.
fn listen(client: &mut postgres::Client, own: (&str, &str), changed: &OnChange, stop: &AtomicBool) {
    let mut heard = Instant::now();
    while !stop.load(Ordering::Acquire) {
        {
            let mut notices = client.notifications();
            let mut waiting = notices.timeout_iter(POLL);
            loop {
                match waiting.next() {
                    Ok(Some(notice)) => {
                        heard = Instant::now();
                        hand_on(notice.payload(), own, changed);
                    }
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
        if heard.elapsed() >= PING_EVERY {
            if let Err(error) = client.simple_query("SELECT 1") {
                tracing::warn!(%error, "the PostgreSQL listener's connection stopped answering; caches emptied");
                return;
            }
            heard = Instant::now();
        }
    }
}

/// Hands on a notice of another client's change to a table of this store's schema; `own` is
/// the store's token and schema.
fn hand_on(payload: &str, (token, schema): (&str, &str), changed: &OnChange) {
    match serde_json::from_str::<Notice>(payload) {
        Ok(notice) if notice.origin.as_deref() == Some(token) => {}
        Ok(notice) if notice.schema.as_deref().is_some_and(|theirs| theirs != schema) => {}
        Ok(notice) if notice.all => changed(Changed::Table(&notice.table)),
        Ok(notice) => changed(Changed::Keys { table: &notice.table, keys: &notice.keys }),
        Err(error) => {
            tracing::warn!(%error, "an unreadable change notice; every cache emptied");
            changed(Changed::All);
        }
    }
}

/// A listening connection again (and its schema), retrying every second; `None` once the
/// store has closed.
fn reconnect(config: &PostgresConfig, own: &str, stop: &AtomicBool) -> Option<(postgres::Client, String)> {
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
