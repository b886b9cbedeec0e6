//! Write-back mode: staged writes coalesce and are read back at once, commit in chunks (a
//! prefix of them after SIGKILL), go to the dead-letter queue when they cannot commit, wait or
//! fail at the bound, flush on close, on drop and before calls that must see them, on both
//! stores (the async one on every runtime).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nanasqlite::hook::{self, Hook};
use nanasqlite::writeback::{Flush, OnFull};
use nanasqlite::{Error, NanaSQLite, Scan, WriteBack, params};
use serde_json::{Value, json};

mod common;

use common::{Setup, child_role, wait_for_exit, wait_until};

/// Records what the success hooks hear, in order.
#[derive(Default)]
struct Audit {
    heard: Mutex<Vec<String>>,
}

impl Audit {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.heard.lock().unwrap())
    }
}

impl Hook for Audit {
    fn on_write_success(&self, key: &str, value: &Value) {
        self.heard.lock().unwrap().push(format!("wrote {key}={value}"));
    }

    fn on_delete_success(&self, key: &str) {
        self.heard.lock().unwrap().push(format!("deleted {key}"));
    }
}

/// A trigger that refuses rows whose key starts with `bad`, as a full disk or a constraint
/// would refuse them: their chunk fails, and only they fail when it is replayed row by row.
const REFUSE_BAD_KEYS: &str = "CREATE TRIGGER refuse_bad BEFORE INSERT ON data WHEN NEW.key LIKE 'bad%' BEGIN SELECT RAISE(ABORT, 'bad key'); END";

/// The rows of `data` as the file holds them, read by a connection of its own.
fn in_file(path: &std::path::Path) -> Vec<(String, String)> {
    let conn = nanasqlite::rusqlite::Connection::open(path).unwrap();
    let mut statement = conn.prepare("SELECT key, value FROM data ORDER BY key").unwrap();
    statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

fn manual(path: &std::path::Path) -> NanaSQLite {
    NanaSQLite::builder(path).write_back(WriteBack::manual()).open().unwrap()
}

#[test]
fn staged_writes_coalesce_and_are_read_back_at_once() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wb.db");
    let db = manual(&path);
    db.set("a", &1)?;
    db.set("a", &2)?;
    db.set("b", &json!({"x": 1}))?;
    db.set("gone", &1)?;
    assert!(db.delete("gone")?);
    assert!(!db.delete("never")?);
    db.batch_update([("c", 3), ("d", 4)])?;
    assert_eq!(db.batch_delete(["d", "nope"])?, 1);
    assert_eq!(in_file(&path), [], "nothing committed yet");
    assert_eq!((db.get::<i64>("a")?, db.contains("gone")?, db.get::<i64>("d")?), (Some(2), false, None));
    db.clear_cache();
    assert_eq!(db.get::<i64>("a")?, Some(2), "staged rows are read even after the cache let them go");
    assert_eq!(db.get::<Value>("gone")?, None, "a staged delete hides the key");
    let stats = db.write_back_stats().unwrap();
    assert_eq!(stats.staged, 5, "a, b, gone (deleted), c, d (deleted): one row per key");
    db.flush()?;
    assert_eq!(in_file(&path), [("a".into(), "2".into()), ("b".into(), r#"{"x":1}"#.into()), ("c".into(), "3".into())]);
    let stats = db.write_back_stats().unwrap();
    assert_eq!((stats.staged, stats.rows_committed, stats.chunks), (0, 5, 1));
    Ok(())
}

#[test]
fn calls_that_must_see_staged_rows_commit_them_first_in_order() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wb.db");
    let db = manual(&path);
    db.batch_update((0..10).map(|i| (format!("k{i}"), i)))?;
    assert_eq!(db.len()?, 10, "len commits first");
    db.set("k0", &100)?;
    assert_eq!(db.keys()?.len(), 10);
    db.set("t", &1)?;
    db.transaction(|tx| tx.set("t", &2))?;
    db.flush()?;
    assert_eq!(db.get_fresh::<i64>("t")?, Some(2), "the staged write went first; the transaction's stands");
    db.set("s", &1)?;
    assert_eq!(
        db.fetch_one("SELECT value FROM data WHERE key = ?", nanasqlite::params!["s"])?
            .unwrap()
            .get::<String>("value")?,
        "1"
    );
    db.set("n", &1)?;
    assert_eq!(db.increment::<i64>("n", 1, None)?, 2);
    db.set("p", &"x")?;
    assert_eq!(db.pop::<String>("p")?.as_deref(), Some("x"));
    db.set("z", &1)?;
    assert_eq!(db.scan::<i64>(Scan::prefix("z"))?, [("z".to_owned(), 1)]);
    assert_eq!(db.write_back_stats().unwrap().staged, 0);
    Ok(())
}

#[test]
fn the_bound_waits_flushes_or_refuses() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let refusing = NanaSQLite::builder(dir.path().join("e.db"))
        .write_back(WriteBack::manual().max_staged(3).on_full(OnFull::Error))
        .open()?;
    refusing.batch_update([("a", 1), ("b", 2), ("c", 3)])?;
    refusing.set("a", &10)?; // a staged key counts once
    assert!(matches!(refusing.set("d", &4), Err(Error::Validation { .. })));
    assert!(!refusing.contains("d")?, "nothing staged");
    refusing.flush()?;
    refusing.set("d", &4)?;

    let flushing = NanaSQLite::builder(dir.path().join("f.db"))
        .write_back(WriteBack::manual().max_staged(3).on_full(OnFull::Flush))
        .open()?;
    flushing.batch_update((0..10).map(|i| (format!("k{i}"), i)))?;
    assert!(flushing.write_back_stats().unwrap().flushes >= 3, "each time the bound was met");
    assert!(in_file(&dir.path().join("f.db")).len() >= 9);

    let waiting = NanaSQLite::builder(dir.path().join("w.db"))
        .write_back(WriteBack::interval(Duration::from_millis(20)).max_staged(5).on_full(OnFull::Wait))
        .open()?;
    waiting.batch_update((0..50).map(|i| (format!("k{i}"), i)))?;
    assert!(waiting.write_back_stats().unwrap().staged <= 5, "the bound held while the flusher made room");
    waiting.flush()?;
    assert_eq!(in_file(&dir.path().join("w.db")).len(), 50);
    let bytes = NanaSQLite::builder(dir.path().join("b.db"))
        .write_back(WriteBack::manual().max_staged_bytes(100).on_full(OnFull::Error))
        .open()?;
    assert!(bytes.set("big", &"x".repeat(200)).is_err(), "one value past the byte bound");
    Ok(())
}

#[test]
fn policies_commit_in_the_background() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    for (name, policy) in [
        ("immediate", WriteBack::immediate()),
        ("every", WriteBack::every(10)),
        ("interval", WriteBack::interval(Duration::from_millis(50))),
    ] {
        let path = dir.path().join(format!("{name}.db"));
        let db = NanaSQLite::builder(&path).write_back(policy).open()?;
        db.batch_update((0..10).map(|i| (format!("k{i}"), i)))?;
        wait_until(&format!("{name}: the background commit"), Duration::from_secs(10), || in_file(&path).len() == 10);
    }
    let path = dir.path().join("manual.db");
    let db = manual(&path);
    db.set("k", &1)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(in_file(&path), [], "manual never commits on its own");
    Ok(())
}

#[test]
fn chunks_commit_in_order_each_atomic() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let db = NanaSQLite::builder(&path).write_back(WriteBack::manual().chunk_size(100)).open()?;
    db.batch_update((0..1050).map(|i| (format!("k{i:05}"), i)))?;
    db.flush()?;
    let stats = db.write_back_stats().unwrap();
    assert_eq!((stats.chunks, stats.largest_chunk, stats.rows_committed), (11, 100, 1050));
    Ok(())
}

#[test]
fn rows_that_cannot_commit_become_dead_letters_and_can_be_retried() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    let db =
        NanaSQLite::builder(&path).write_back(WriteBack::manual().chunk_size(50).dead_letter_capacity(120)).open()?;
    db.set("before", &1)?;
    db.flush()?;
    let pages: i64 = db
        .pragma("page_count", None)?
        .and_then(|v| if let nanasqlite::SqlValue::Integer(n) = v { Some(n) } else { None })
        .unwrap();
    db.pragma("max_page_count", Some(nanasqlite::SqlValue::Integer(pages)))?;
    db.batch_update((0..200).map(|i| (format!("big{i:03}"), "x".repeat(5000))))?;
    assert!(db.get::<String>("big000")?.is_some(), "readable while staged");
    let flushed = db.flush();
    assert!(matches!(flushed, Err(Error::Unflushed { staged: 0, dead_letters: 120 })), "{flushed:?}");
    let dead = db.dead_letters();
    assert_eq!(dead.len(), 120, "the queue keeps its capacity");
    assert!(dead[0].error.contains("full"), "{}", dead[0].error);
    assert_eq!(db.write_back_stats().unwrap().dead_letters_dropped, 80, "the oldest 80 of the 200 were dropped");
    assert_eq!(db.get::<String>("big199")?, None, "a dead letter reads as the file has it");
    db.pragma("max_page_count", Some(nanasqlite::SqlValue::Integer(1_000_000)))?;
    assert_eq!(db.retry_dead_letters()?, 120);
    db.flush()?;
    assert!(db.dead_letters().is_empty());
    assert_eq!(db.get::<String>("big199")?.map(|v| v.len()), Some(5000));
    db.set("x", &1)?;
    assert_eq!(db.clear_dead_letters(), 0);
    Ok(())
}

#[test]
fn close_flushes_and_dropping_the_last_handle_flushes_in_the_background() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("close.db");
    let db = manual(&path);
    db.batch_update((0..100).map(|i| (format!("k{i}"), i)))?;
    db.close()?;
    assert_eq!(in_file(&path).len(), 100);

    let dropped = dir.path().join("drop.db");
    let db = manual(&dropped);
    let other = db.table("other")?;
    db.batch_update((0..100).map(|i| (format!("k{i}"), i)))?;
    drop(db);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(in_file(&dropped).len(), 0, "another handle is still open");
    drop(other);
    wait_until("the last drop to flush", Duration::from_secs(10), || in_file(&dropped).len() == 100);

    let late = dir.path().join("timeout.db");
    let db = NanaSQLite::builder(&late).write_back(WriteBack::manual().close_timeout(Duration::ZERO)).open()?;
    db.set("k", &1)?;
    assert!(matches!(db.close(), Err(Error::Unflushed { staged: 1, dead_letters: 0 })), "close reports what it left");
    Ok(())
}

#[test]
fn a_close_refused_during_a_transaction_keeps_what_is_staged() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("close_in_tx.db");
    let db = manual(&path);
    let (begun, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|scope| -> nanasqlite::Result<()> {
        let running = scope.spawn(|| {
            db.transaction(|_| {
                begun.wait();
                release.wait();
                Ok(())
            })
        });
        begun.wait();
        db.set("staged", &1)?; // staged beside the transaction, not committed
        let refused = db.close();
        release.wait();
        running.join().unwrap()?;
        assert!(matches!(refused, Err(Error::Transaction { .. })), "{refused:?}");
        Ok(())
    })?;
    assert_eq!(db.write_back_stats().unwrap().staged, 1, "the refused close committed nothing");
    assert_eq!(db.get::<i32>("staged")?, Some(1), "and left the store open");
    db.close()?;
    assert_eq!(in_file(&path), [("staged".to_owned(), "1".to_owned())]);
    Ok(())
}

/// A hook that, when `key` commits (its operation holds the store's lock), makes `call` on
/// the store it is registered on, and keeps what the call said.
struct CallingBack {
    key: &'static str,
    call: fn(&NanaSQLite) -> nanasqlite::Result<()>,
    store: std::sync::OnceLock<NanaSQLite>,
    said: Mutex<Vec<String>>,
}

impl CallingBack {
    /// The hook, registered on `db`.
    fn on(db: &NanaSQLite, key: &'static str, call: fn(&NanaSQLite) -> nanasqlite::Result<()>) -> Arc<Self> {
        let hook = Arc::new(Self { key, call, store: std::sync::OnceLock::new(), said: Mutex::default() });
        db.add_hook(Arc::clone(&hook)).unwrap();
        hook.store.set(db.clone()).ok();
        hook
    }

    fn said(&self) -> Vec<String> {
        self.said.lock().unwrap().clone()
    }
}

impl Hook for CallingBack {
    fn on_write_success(&self, key: &str, _value: &Value) {
        if key == self.key {
            let said = (self.call)(self.store.get().expect("set"));
            self.said.lock().unwrap().push(format!("{said:?}"));
        }
    }
}

#[test]
fn a_hook_closing_its_own_store_is_refused_and_the_flusher_lives_on() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("a hook closing its own store", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hook-close.db");
    let db = NanaSQLite::builder(&path).write_back(WriteBack::interval(Duration::from_millis(20))).open()?;
    let hook = CallingBack::on(&db, "close", NanaSQLite::close);
    db.set("close", &1)?;
    db.flush()?;
    let said = hook.said();
    assert!(matches!(said.as_slice(), [closed] if closed.starts_with("Err(Transaction")), "{said:?}");
    db.set("after", &2)?;
    wait_until("the flusher to commit a row staged after the refused close", Duration::from_secs(30), || {
        in_file(&path).iter().any(|(key, _)| key == "after")
    });
    db.close()
}

#[test]
fn a_write_staged_while_its_store_closes_fails_instead_of_being_dropped() -> nanasqlite::Result<()> {
    /// Closes the store it is registered on while `doomed` is being staged (staging holds no
    /// lock, so the close goes through), as another thread's close could.
    #[derive(Default)]
    struct ClosingMidWrite(std::sync::OnceLock<NanaSQLite>);
    impl Hook for ClosingMidWrite {
        fn before_write(&self, key: &str, value: Value) -> nanasqlite::Result<Value> {
            if key == "doomed" {
                self.0.get().expect("set").close()?;
            }
            Ok(value)
        }
    }
    let _watchdog = common::Watchdog::new("a write staged while its store closes", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("staged-closing.db");
    let hook = Arc::new(ClosingMidWrite::default());
    let db = NanaSQLite::builder(&path).write_back(WriteBack::manual()).open()?;
    db.add_hook(Arc::clone(&hook))?;
    hook.0.set(db.clone()).ok();
    db.set("kept", &1)?;
    let doomed = db.set("doomed", &2);
    assert!(doomed.as_ref().is_err_and(Error::is_closed), "acknowledged but never to be written: {doomed:?}");
    assert_eq!(in_file(&path), [("kept".to_owned(), "1".to_owned())], "the close committed what was staged before");
    Ok(())
}

#[test]
fn a_write_made_during_the_closes_last_flush_is_refused_not_left_behind() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("a write during the close's last flush", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.db");
    let db = NanaSQLite::builder(&path).write_back(WriteBack::manual()).open()?;
    // `first` commits during the close's last flush: the hook's write comes after it began.
    let hook = CallingBack::on(&db, "first", |db| db.set("late", &1));
    db.set("first", &1)?;
    db.close().expect("nothing was left uncommitted");
    let said = hook.said();
    assert!(matches!(said.as_slice(), [late] if late.starts_with("Err(Closed")), "{said:?}");
    assert_eq!(in_file(&path), [("first".to_owned(), "1".to_owned())]);
    Ok(())
}

#[test]
fn hooks_run_when_writes_are_staged_and_constraints_are_refused() -> nanasqlite::Result<()> {
    let db = NanaSQLite::builder(":memory:")
        .write_back(WriteBack::manual())
        .hook(nanasqlite::hook::check(|_, v: &Value| v.as_i64().is_some_and(|n| n >= 0)))
        .open()?;
    assert!(db.set("n", &-1).unwrap_err().is_refused());
    assert!(!db.contains("n")?);
    assert!(matches!(db.add_hook(nanasqlite::hook::unique("email")), Err(Error::Validation { .. })));
    let memory_first = NanaSQLite::builder(":memory:").write_back(WriteBack::memory_first()).open()?;
    assert_eq!(memory_first.write_back_stats().unwrap().staged, 0);
    let zero = NanaSQLite::builder(":memory:").write_back(WriteBack::interval(Duration::ZERO)).open();
    assert!(matches!(zero, Err(Error::Validation { .. })), "a zero interval is refused");
    assert_eq!(WriteBack::every(0).chunk_size(0).max_staged(0), WriteBack::every(1).chunk_size(1).max_staged(1));
    let _ = Flush::Manual;
    Ok(())
}

/// A child writes sequential keys in write-back mode and says on stderr how many rows are
/// committed so far: after each `flush()` returned (even rounds, which flush every 100 rows:
/// one chunk of 100 each time), or as `write_back_stats` counts the flusher's commits (odd
/// rounds, immediate policy). The parent kills it (SIGKILL, while it is alive) after a growing
/// number of such reports. The file must pass `integrity_check` and hold exactly the first N
/// keys, with their values: a prefix of the chunks, N at least the last count reported (what
/// `flush()` returned for is never lost), and in even rounds a whole number of chunks.
#[test]
fn after_sigkill_the_file_holds_a_prefix_of_chunks() {
    if let Some(role) = child_role() {
        let (path, by_hand) = role.split_once('|').map(|(path, mode)| (path.to_owned(), mode == "manual")).unwrap();
        let policy = if by_hand { WriteBack::manual() } else { WriteBack::immediate() };
        let db = NanaSQLite::builder(&path).write_back(policy.chunk_size(100)).open().unwrap();
        for i in 0_u64.. {
            db.set(&format!("k{i:08}"), &i).unwrap();
            if by_hand && i % 100 == 99 {
                db.flush().unwrap();
                eprintln!("committed {}", i + 1);
            } else if !by_hand && i % 100 == 99 {
                eprintln!("committed {}", db.write_back_stats().unwrap().rows_committed);
            }
        }
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    for round in 0..8_usize {
        let by_hand = round % 2 == 0;
        let path = dir.path().join(format!("kill{round}.db"));
        let role = format!("{}|{}", path.display(), if by_hand { "manual" } else { "immediate" });
        let mut child = common::child("after_sigkill_the_file_holds_a_prefix_of_chunks", &role)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let reports = common::lines_of(child.stderr.take().unwrap());
        let mut committed = 0;
        for _ in 0..(3 + 4 * round) {
            let line = reports.recv_timeout(Duration::from_secs(60)).expect("the child reports its commits");
            if let Some(count) = line.strip_prefix("committed ") {
                committed = count.trim().parse::<usize>().unwrap();
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "round {round}: the child is alive until it is killed");
        child.kill().unwrap();
        let status = wait_for_exit(&mut child, Duration::from_secs(10));
        assert_eq!(status.signal(), Some(9), "round {round}: the child died of the SIGKILL, not of a failure");
        let conn = nanasqlite::rusqlite::Connection::open(&path).unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
        assert_eq!(check, "ok");
        let keys = in_file(&path);
        for (i, (key, value)) in keys.iter().enumerate() {
            assert_eq!(
                (key.as_str(), value.as_str()),
                (format!("k{i:08}").as_str(), i.to_string().as_str()),
                "round {round}: a gap"
            );
        }
        assert!(
            keys.len() >= committed,
            "round {round}: {} rows in the file, but {committed} were reported committed",
            keys.len()
        );
        if by_hand {
            assert!(committed >= 300, "round {round}: flushes returned before the kill");
            assert_eq!(keys.len() % 100, 0, "round {round}: {} rows: a chunk was torn", keys.len());
        }
        eprintln!("round {round}: {} rows survived, {committed} reported committed", keys.len());
    }
}

#[test]
fn a_failed_chunk_is_replayed_row_by_row_and_only_the_failing_rows_become_dead_letters() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.db");
    let db = NanaSQLite::builder(&path).write_back(WriteBack::manual().chunk_size(100)).open()?;
    db.execute(REFUSE_BAD_KEYS, params![])?;
    db.batch_update((0..9).map(|i| (format!("k{i}"), i)).chain([("bad1".to_owned(), 99)]))?;
    let flushed = db.flush();
    assert!(matches!(flushed, Err(Error::Unflushed { staged: 0, dead_letters: 1 })), "{flushed:?}");
    let dead = db.dead_letters();
    assert_eq!((dead.len(), dead[0].key.as_str(), dead[0].value.as_deref()), (1, "bad1", Some("99")));
    assert!(dead[0].error.contains("bad key"), "{}", dead[0].error);
    let committed: Vec<String> = in_file(&path).into_iter().map(|(key, _)| key).collect();
    assert_eq!(committed, (0..9).map(|i| format!("k{i}")).collect::<Vec<_>>(), "the nine others committed");
    let stats = db.write_back_stats().unwrap();
    assert_eq!((stats.rows_committed, stats.chunks, stats.dead_letters), (9, 0, 1), "replayed, not a chunk");
    assert_eq!(db.get::<i64>("bad1")?, None, "a dead letter reads as the file has it");
    Ok(())
}

#[test]
fn a_dead_letter_the_hooks_refuse_on_retry_stays_and_the_others_are_staged() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("retry.db");
    let db = NanaSQLite::builder(&path).write_back(WriteBack::manual()).open()?;
    db.execute(REFUSE_BAD_KEYS, params![])?;
    db.batch_update([("bad1", 1), ("bad2", 2), ("bad3", 3)])?;
    assert!(db.flush().is_err());
    assert_eq!(db.dead_letters().len(), 3);
    db.execute("DROP TRIGGER refuse_bad", params![])?;
    db.add_hook(hook::check(|key, _: &Value| key != "bad1").named("not bad1"))?;
    assert_eq!(db.retry_dead_letters()?, 2, "the two the hook allows are staged");
    let dead = db.dead_letters();
    assert_eq!(dead.len(), 1, "the refused one stays a dead letter: {dead:?}");
    assert_eq!((dead[0].key.as_str(), dead[0].value.as_deref()), ("bad1", Some("1")));
    assert!(dead[0].error.contains("not bad1"), "its error is now the refusal: {}", dead[0].error);
    db.flush()?;
    let keys: Vec<String> = in_file(&path).into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys, ["bad2", "bad3"]);
    Ok(())
}

#[test]
fn success_hooks_hear_a_staged_write_once_its_chunk_commits_and_never_a_dead_letter() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let audit = Arc::new(Audit::default());
    let db = NanaSQLite::builder(dir.path().join("hooks.db"))
        .write_back(WriteBack::manual().chunk_size(2))
        .hook(Arc::clone(&audit))
        .open()?;
    db.execute(REFUSE_BAD_KEYS, params![])?;
    db.set("a", &1)?;
    db.set("gone", &1)?;
    db.flush()?;
    assert_eq!(audit.take(), ["wrote a=1", "wrote gone=1"]);
    db.set("a", &2)?;
    assert!(db.delete("gone")?);
    db.set("bad", &3)?;
    assert_eq!(audit.take(), Vec::<String>::new(), "nothing has committed yet");
    assert!(db.flush().is_err(), "bad is a dead letter");
    assert_eq!(audit.take(), ["wrote a=2", "deleted gone"], "the dead letter was never reported");
    db.execute("DROP TRIGGER refuse_bad", params![])?;
    assert_eq!(db.retry_dead_letters()?, 1);
    assert_eq!(audit.take(), Vec::<String>::new(), "a retry is staged, not yet committed");
    db.flush()?;
    assert_eq!(audit.take(), ["wrote bad=3"], "reported once, when it committed");
    Ok(())
}

/// `max_staged` bounds the rows staged in the whole store: tables staging at once from several
/// threads never pass it together. Each round fills a store whose four tables are written by
/// four threads at once until the bound refuses them.
#[test]
fn max_staged_bounds_every_table_together() {
    const BOUND: usize = 8;
    let db = NanaSQLite::builder(":memory:")
        .write_back(WriteBack::manual().max_staged(BOUND).on_full(OnFull::Error))
        .open()
        .unwrap();
    let tables: Vec<NanaSQLite> = (0..4).map(|i| db.table(&format!("t{i}")).unwrap()).collect();
    for round in 0..300 {
        let start = Arc::new(std::sync::Barrier::new(tables.len()));
        std::thread::scope(|scope| {
            for table in &tables {
                let start = Arc::clone(&start);
                scope.spawn(move || {
                    start.wait();
                    let mut i = 0;
                    while table.set(&format!("r{round}-{i}"), &i).is_ok() {
                        i += 1;
                    }
                });
            }
        });
        let staged = db.write_back_stats().unwrap().staged;
        assert_eq!(staged, BOUND, "round {round}: the store holds {staged} staged rows, bound {BOUND}");
        db.flush().unwrap();
    }
}

/// At the bound with `OnFull::Wait`, both stores do the same: the flusher is asked to flush at
/// once (whatever its policy, manual included), and the write waits for the room it makes. A
/// flusher left to its hour-long interval would leave the batch waiting past the deadline.
#[test]
fn waiting_at_the_bound_wakes_the_flusher_on_the_sync_store() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    for (name, policy) in
        [("interval", WriteBack::interval(Duration::from_secs(3600))), ("manual", WriteBack::manual())]
    {
        let path = dir.path().join(format!("{name}.db"));
        let db = NanaSQLite::builder(&path).write_back(policy.max_staged(5).on_full(OnFull::Wait)).open()?;
        let (done, finished) = std::sync::mpsc::channel();
        let writer = db.clone();
        std::thread::spawn(move || done.send(writer.batch_update((0..50).map(|i| (format!("k{i:02}"), i)))));
        finished.recv_timeout(Duration::from_secs(60)).expect("the batch waited for room, and got it")?;
        let stats = db.write_back_stats().unwrap();
        assert!(stats.staged <= 5, "{name}: the bound held");
        assert!(stats.flushes >= 1 && in_file(&path).len() >= 45, "{name}: the flusher made the room");
        db.flush()?;
        assert_eq!(in_file(&path).len(), 50);
    }
    Ok(())
}

/// A write-back store whose last handle is dropped, in a process that exits right after: the
/// sync store's drop commits what is staged before it returns.
#[test]
fn dropping_the_last_sync_handle_commits_before_the_process_exits() {
    if let Some(path) = child_role() {
        let db = NanaSQLite::builder(&path).write_back(WriteBack::interval(Duration::from_secs(3600))).open().unwrap();
        let other = db.table("other").unwrap();
        db.batch_update((0..100).map(|i| (format!("k{i:03}"), i))).unwrap();
        other.set("o", &1).unwrap();
        drop(db);
        drop(other);
        std::process::exit(0); // no destructor of any other thread runs after this
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropped.db");
    let mut child =
        common::child("dropping_the_last_sync_handle_commits_before_the_process_exits", path.to_str().unwrap())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
    assert!(wait_for_exit(&mut child, Duration::from_secs(60)).success());
    assert_eq!(in_file(&path).len(), 100, "every staged row of data");
    assert_eq!(common::in_file::<i64>(&path, "o"), None, "not a row of data");
    let other = NanaSQLite::open(&path).unwrap().table("other").unwrap();
    assert_eq!(other.get::<i64>("o").unwrap(), Some(1), "and of the other table");
}

/// The async store cannot block its caller's runtime in a drop: dropping its last handle wakes
/// the flusher, which commits on its own thread. A process that goes on running keeps
/// everything (the child waits until the file holds the rows, with a deadline, and fails
/// otherwise); one that exits at once may lose it, which is why `close().await` is the way to
/// be sure.
#[test]
fn dropping_the_last_async_handle_commits_in_the_background() {
    if let Some(path) = child_role() {
        futures::executor::block_on(async {
            let db = nanasqlite::AsyncNanaSQLite::builder(&path)
                .write_back(WriteBack::interval(Duration::from_secs(3600)))
                .open()
                .await
                .unwrap();
            db.batch_update((0..100).map(|i| (format!("k{i:03}"), i))).await.unwrap();
            drop(db);
        });
        let path = std::path::Path::new(&path);
        wait_until("the flusher to commit after the drop", Duration::from_secs(30), || in_file(path).len() == 100);
        std::process::exit(0);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropped.db");
    let mut child = common::child("dropping_the_last_async_handle_commits_in_the_background", path.to_str().unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for_exit(&mut child, Duration::from_secs(60)).success());
    assert_eq!(in_file(&path).len(), 100, "every staged row");
}

on_every_runtime!(write_back_on_the_async_store);

async fn write_back_on_the_async_store(setup: Setup) {
    let db = setup.builder.clone().write_back(WriteBack::manual().chunk_size(10)).open().await.unwrap();
    db.set("a", &1).await.unwrap();
    db.set("a", &2).await.unwrap();
    db.batch_update((0..25).map(|i| (format!("k{i:02}"), i))).await.unwrap();
    assert!(db.delete("k00").await.unwrap());
    assert_eq!(in_file(&setup.path), [], "nothing committed yet");
    assert_eq!(db.get::<i64>("a").await.unwrap(), Some(2));
    db.clear_cache();
    assert_eq!(db.get::<i64>("a").await.unwrap(), Some(2), "read from the staged rows");
    assert_eq!(db.len().await.unwrap(), 25, "len commits first");
    assert_eq!(in_file(&setup.path).len(), 25);
    assert_eq!(db.write_back_stats().unwrap().chunks, 3);
    db.set("t", &1).await.unwrap();
    db.transaction(|tx| tx.set("t", &2)).await.unwrap();
    assert_eq!(db.get_fresh::<i64>("t").await.unwrap(), Some(2));
    db.set("u", &1).await.unwrap();
    let tx = db.begin().await.unwrap();
    assert_eq!(tx.get::<i64>("u").await.unwrap(), Some(1), "begin committed the staged row first");
    tx.set("u", &2).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.get_fresh::<i64>("u").await.unwrap(), Some(2));
    db.set("last", &1).await.unwrap();
    db.flush().await.unwrap();
    db.set("closing", &1).await.unwrap();
    db.close().await.unwrap();
    assert!(in_file(&setup.path).iter().any(|(key, _)| key == "closing"), "close flushed");

    let full = setup
        .builder_for(setup.path.with_extension("full"))
        .write_back(WriteBack::manual().max_staged(2).on_full(OnFull::Wait))
        .open()
        .await
        .unwrap();
    full.batch_update((0..10).map(|i| (format!("k{i}"), i))).await.unwrap();
    assert!(full.write_back_stats().unwrap().staged <= 2, "the bound held");
    assert!(in_file(&setup.path.with_extension("full")).len() >= 8, "the flusher made room while the write awaited it");
    let waiting = setup
        .builder_for(setup.path.with_extension("wait"))
        .write_back(WriteBack::interval(Duration::from_secs(3600)).max_staged(5).on_full(OnFull::Wait))
        .open()
        .await
        .unwrap();
    waiting.batch_update((0..50).map(|i| (format!("k{i:02}"), i))).await.unwrap();
    assert!(
        waiting.write_back_stats().unwrap().staged <= 5,
        "the flusher was woken past its interval, as on the sync store"
    );
    let dropped = setup.path.with_extension("drop");
    let db = setup.builder_for(&dropped).write_back(WriteBack::manual()).open().await.unwrap();
    db.set("k", &1).await.unwrap();
    drop(db);
    common::wait_until_async("the dropped store to flush", Duration::from_secs(10), || {
        dropped.exists() && in_file(&dropped).len() == 1
    })
    .await;
}

on_every_runtime!(a_close_dropped_after_its_first_poll_still_closes);

/// A write-back close stops staging before its last flush: dropped after its first poll, it
/// must still commit what was staged and close the store, not leave it open and refusing
/// writes.
async fn a_close_dropped_after_its_first_poll_still_closes(setup: Setup) {
    let db = setup.builder.clone().write_back(WriteBack::manual()).open().await.unwrap();
    db.set("k", &1).await.unwrap();
    let mut close = db.close();
    let _ = futures::poll!(&mut close);
    drop(close);
    let start = std::time::Instant::now();
    while !db.get::<i32>("k").await.is_err_and(|error| error.is_closed()) {
        assert!(start.elapsed() < Duration::from_secs(30), "the dropped close did not close the store");
        common::YieldNow(false).await;
    }
    assert_eq!(in_file(&setup.path), [("k".to_owned(), "1".to_owned())], "its last flush ran");
    assert!(db.set("later", &2).await.unwrap_err().is_closed());
}

on_every_runtime!(dead_letters_on_the_async_store);

/// The async store's dead letters: rows a trigger refuses at commit become dead letters (the
/// others of their chunk commit), `retry_dead_letters` stages them again once they can commit,
/// and `clear_dead_letters` drops them, saying how many.
async fn dead_letters_on_the_async_store(setup: Setup) {
    let db = setup.builder.clone().write_back(WriteBack::manual().chunk_size(10)).open().await.unwrap();
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON data WHEN NEW.key LIKE 'bad%' \
         BEGIN SELECT RAISE(ABORT, 'refused by the trigger'); END",
        params![],
    )
    .await
    .unwrap();
    db.batch_update((0..10).map(|i| (if i % 4 == 0 { format!("bad{i}") } else { format!("ok{i}") }, i))).await.unwrap();
    let flushed = db.flush().await;
    assert!(matches!(flushed, Err(Error::Unflushed { staged: 0, dead_letters: 3 })), "{flushed:?}");
    let mut dead: Vec<_> =
        db.dead_letters().into_iter().map(|letter| (letter.key, letter.value, letter.error)).collect();
    dead.sort();
    assert_eq!(dead.iter().map(|(key, ..)| key.as_str()).collect::<Vec<_>>(), ["bad0", "bad4", "bad8"]);
    assert_eq!(dead[1].1.as_deref(), Some("4"), "the letter keeps the value it was to store");
    assert!(dead.iter().all(|(.., error)| error.contains("refused by the trigger")), "{dead:?}");
    assert_eq!(in_file(&setup.path).len(), 7, "the other rows of the chunk committed");

    db.execute("DROP TRIGGER refuse", params![]).await.unwrap();
    assert_eq!(db.retry_dead_letters().unwrap(), 3);
    assert!(db.dead_letters().is_empty(), "staged again");
    db.flush().await.unwrap();
    assert_eq!(in_file(&setup.path).len(), 10, "committed on retry");

    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON data BEGIN SELECT RAISE(ABORT, 'refused again'); END",
        params![],
    )
    .await
    .unwrap();
    db.set("late", &1).await.unwrap();
    assert!(db.flush().await.is_err());
    assert_eq!(db.clear_dead_letters(), 1);
    assert!(db.dead_letters().is_empty());
    db.flush().await.unwrap();
    assert!(!in_file(&setup.path).iter().any(|(key, _)| key == "late"), "a cleared letter is never written");
    db.close().await.unwrap();
}

/// `cache_committed(false)`: a staged row is cached (read your writes) until its chunk
/// commits, then leaves the cache and reads from the file; the default keeps it. Both stores.
#[test]
fn committed_rows_can_leave_the_cache() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let lean = NanaSQLite::builder(dir.path().join("lean.db"))
        .write_back(WriteBack::manual().cache_committed(false))
        .open()?;
    lean.batch_update((0..100).map(|i| (format!("k{i}"), i)))?;
    assert!(lean.is_cached("k0") && lean.is_cached("k99"), "staged rows are read from the cache");
    lean.flush()?;
    assert!(!lean.is_cached("k0") && !lean.is_cached("k99"), "committed: out of the cache");
    assert_eq!(lean.get::<i64>("k42")?, Some(42), "and read from the file");
    lean.set("k1", &-1)?;
    assert_eq!(lean.get::<i64>("k1")?, Some(-1), "a new staged value is cached again");

    let kept = NanaSQLite::builder(dir.path().join("kept.db")).write_back(WriteBack::manual()).open()?;
    kept.set("k", &1)?;
    kept.flush()?;
    assert!(kept.is_cached("k"), "by default committed rows stay cached");

    futures::executor::block_on(async {
        let db = nanasqlite::AsyncNanaSQLite::builder(dir.path().join("async.db"))
            .write_back(WriteBack::manual().cache_committed(false))
            .open()
            .await?;
        db.set("a", &1).await?;
        assert!(db.is_cached("a"));
        db.flush().await?;
        assert!(!db.is_cached("a"));
        assert_eq!(db.get::<i64>("a").await?, Some(1));
        db.close().await
    })
}
