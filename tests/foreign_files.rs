//! Files written by Python NanaSQLite and other tools, read by both stores: nothing silently
//! altered, duplicated or lost. Each test writes the file with plain SQL (as another tool would),
//! then checks the sync store and the async store (on every runtime) on it.

use std::path::Path;
use std::time::Duration;

use nanasqlite::{AsyncNanaSQLite, Error, NanaSQLite};
use serde_json::{Value, json};

mod common;

use common::Setup;

/// Runs `sql` on the file with a plain connection, as another tool would.
fn other_tool(path: &Path, sql: &str) {
    rusqlite::Connection::open(path).unwrap().execute_batch(sql).unwrap();
}

/// The stored text of `key`, read with a plain connection.
fn stored_text(path: &Path, key: &str) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT CAST(value AS TEXT) FROM data WHERE key = ?", [key], |row| row.get(0)).unwrap()
}

fn rows(path: &Path) -> i64 {
    rusqlite::Connection::open(path).unwrap().query_row("SELECT COUNT(*) FROM data", [], |row| row.get(0)).unwrap()
}

const FOREIGN_LAYOUTS: [(&str, &str); 5] = [
    ("CREATE TABLE data (key INTEGER, value BLOB)", "primary key"),
    ("CREATE TABLE data (key TEXT, value TEXT)", "primary key"),
    ("CREATE TABLE data (key TEXT PRIMARY KEY, value TEXT) STRICT", "STRICT"),
    ("CREATE TABLE data (key TEXT PRIMARY KEY, value TEXT, owner TEXT NOT NULL)", "NOT NULL"),
    ("CREATE TABLE t (key TEXT PRIMARY KEY, value TEXT); CREATE VIEW data AS SELECT * FROM t", "view"),
];

#[test]
fn a_table_of_another_layout_is_refused_at_open() {
    let _watchdog = common::Watchdog::new("a_table_of_another_layout_is_refused_at_open", common::TEST_LIMIT);
    for (layout, says) in FOREIGN_LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foreign.db");
        other_tool(&path, layout);
        let error = NanaSQLite::open(&path).unwrap_err();
        assert!(matches!(&error, Error::Schema { table, .. } if table == "data"), "{layout}: {error}");
        assert!(error.to_string().contains(says) && error.to_string().contains("key TEXT PRIMARY KEY"), "{error}");
        let fine = NanaSQLite::builder(&path).table("other").open().unwrap();
        assert!(matches!(fine.table("data"), Err(Error::Schema { .. })), "table() refuses it too");
    }
}

/// A file holding one row of each kind another tool might leave.
fn write_foreign_rows(path: &Path) {
    NanaSQLite::open(path).unwrap().close().unwrap();
    let deep = format!("{}1{}", "[".repeat(900), "]".repeat(900));
    let too_deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    other_tool(
        path,
        &format!(
            "INSERT INTO data VALUES ('good', '{{\"a\": 1}}'), ('bad utf8', CAST(x'7b22613a22ff7d' AS TEXT)), \
             ('blob', x'00112233445566778899aabbccddeeff00112233445566778899'), \
             (CAST(x'ff6b6579' AS TEXT), '1'), ('big', '9223372036854775808'), \
             ('obj', '{{\"huge\": 1180591620717411303424, \"n\": 1, \"f\": 1.10}}'), \
             ('deep', '{deep}'), ('too deep', '{too_deep}')"
        ),
    );
}

/// What both stores must say of those rows.
fn assert_foreign_rows_read_truly(path: &Path, mut get: impl FnMut(&str) -> Result<Option<Value>, Error>) {
    assert_eq!(get("good").unwrap(), Some(json!({"a": 1})));
    let error = get("bad utf8").unwrap_err();
    assert!(matches!(&error, Error::Decode { key, .. } if key == "bad utf8"), "{error}");
    assert!(error.to_string().contains("UTF-8"), "{error}");
    let error = get("blob").unwrap_err();
    assert!(error.to_string().contains("binary") && error.to_string().contains("encrypt"), "{error}");
    assert!(get("deep").unwrap().is_some_and(|v| v.is_array()), "900 levels, as Python's json writes, read");
    let error = get("too deep").unwrap_err();
    assert!(error.to_string().contains("levels deep"), "{error}");
    let conn = rusqlite::Connection::open(path).unwrap();
    let bytes: Vec<u8> =
        conn.query_row("SELECT CAST(value AS BLOB) FROM data WHERE key = 'bad utf8'", [], |row| row.get(0)).unwrap();
    assert_eq!(bytes, b"{\"a:\"\xff}", "left as it was");
}

#[test]
fn a_bulk_load_reads_foreign_rows_truly_packed_or_not() {
    let _watchdog = common::Watchdog::new("a_bulk_load_reads_foreign_rows_truly_packed_or_not", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.db");
    write_foreign_rows(&path);
    let db = NanaSQLite::builder(&path).bulk_load(true).open().unwrap();
    assert!(db.is_cached("bad utf8") && db.is_cached("blob") && db.is_cached("good"), "every named row is loaded");
    assert_foreign_rows_read_truly(&path, |key| db.get::<Value>(key));
    // Reads that keep a decoded form take packed rows out; they must say the same.
    assert_foreign_rows_read_truly(&path, |key| db.get_shared(key).map(|value| value.map(|value| (*value).clone())));
    assert_eq!(rows(&path), 8, "loading and reading changed nothing in the file");
}

#[test]
fn the_sync_store_reads_foreign_rows_truly() {
    let _watchdog = common::Watchdog::new("the_sync_store_reads_foreign_rows_truly", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.db");
    write_foreign_rows(&path);
    let db = NanaSQLite::open(&path).unwrap();
    assert_foreign_rows_read_truly(&path, |key| db.get::<Value>(key));
    let keys = db.keys().unwrap();
    assert!(keys.contains(&"good".to_owned()) && keys.len() == 7, "the unreadable key is left out: {keys:?}");
    assert_eq!(db.unreadable_keys().unwrap(), 1);
    assert_eq!(db.len().unwrap(), 8, "len counts every row");
    assert!(matches!(db.pop::<Value>("bad utf8"), Err(Error::Decode { .. })));
    assert_eq!(rows(&path), 8, "pop of an unreadable value deletes nothing");
    assert!(db.items::<Value>().is_err_and(|e| e.key().is_some()), "items names the key that fails");
    let readable: Vec<_> = keys.iter().filter(|k| !["bad utf8", "blob", "too deep"].contains(&k.as_str())).collect();
    assert_eq!(db.batch_get::<Value>(readable.iter().map(|k| k.as_str())).unwrap().len(), 4);

    // Integers stay exact, and a field nobody touched is written back digit for digit.
    assert_eq!(db.increment::<u64>("big", 0, None).unwrap(), 9_223_372_036_854_775_808);
    assert_eq!(stored_text(&path, "big"), "9223372036854775808");
    db.patch("obj", &json!({"n": 2}), false).unwrap();
    assert_eq!(stored_text(&path, "obj"), r#"{"huge":1180591620717411303424,"n":2,"f":1.10}"#);
    assert_eq!(db.increment::<Value>("obj", 1, Some("n")).unwrap()["n"], 3);
    assert_eq!(stored_text(&path, "obj"), r#"{"huge":1180591620717411303424,"n":3,"f":1.10}"#);
    db.set("max", &i64::MAX).unwrap();
    assert_eq!(db.increment::<i128>("max", 1, None).unwrap(), i128::from(i64::MAX) + 1, "exact past i64");
    db.set("huge", &i128::MAX).unwrap();
    assert!(matches!(db.increment::<Value>("huge", 1, None), Err(Error::Validation { .. })), "overflow is an error");
    assert_eq!(stored_text(&path, "huge"), i128::MAX.to_string(), "and nothing was written");
    let deep = (0..600).fold(json!(1), |inner, _| json!([inner]));
    let error = db.set("deeper", &deep).unwrap_err();
    assert!(matches!(&error, Error::Encode { key, .. } if key == "deeper"), "{error}");
    std::mem::forget(deep);
}

on_every_runtime!(the_async_store_reads_foreign_rows_truly, the_async_store_refuses_a_table_of_another_layout);

async fn the_async_store_reads_foreign_rows_truly(setup: Setup) {
    write_foreign_rows(&setup.path);
    let db = setup.open().await;
    let mut read = std::collections::HashMap::new();
    for key in ["good", "bad utf8", "blob", "deep", "too deep"] {
        read.insert(key, db.get::<Value>(key).await);
    }
    assert_foreign_rows_read_truly(&setup.path, |key| match read.remove(key) {
        Some(answer) => answer,
        None => Ok(None),
    });
    assert_eq!(db.keys().await.unwrap().len(), 7);
    assert_eq!(db.unreadable_keys().await.unwrap(), 1);
    assert!(matches!(db.pop::<Value>("bad utf8").await, Err(Error::Decode { .. })));
    assert_eq!(rows(&setup.path), 8);
    assert_eq!(db.increment::<u64>("big", 0, None).await.unwrap(), 9_223_372_036_854_775_808);
    db.patch("obj", &json!({"n": 2}), false).await.unwrap();
    assert_eq!(stored_text(&setup.path, "obj"), r#"{"huge":1180591620717411303424,"n":2,"f":1.10}"#);
    db.close().await.unwrap();
}

async fn the_async_store_refuses_a_table_of_another_layout(setup: Setup) {
    for (layout, _) in FOREIGN_LAYOUTS {
        let path = setup.path.with_file_name(format!("layout{}.db", layout.len()));
        other_tool(&path, layout);
        let opened = setup.builder_for(&path).open().await;
        assert!(matches!(opened, Err(Error::Schema { .. })), "{layout}: {opened:?}");
    }
}

#[test]
fn a_restore_keeps_what_other_stores_write_afterwards() {
    let _watchdog = common::Watchdog::new("a_restore_keeps_what_other_stores_write_afterwards", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.db");
    let a = NanaSQLite::open(&path).unwrap();
    a.set("before", &1).unwrap();
    let backup = dir.path().join("backup.db");
    a.backup(&backup).unwrap();
    a.set("lost by the restore", &2).unwrap();
    // Another store on the same file, opened separately (its own connection), and an async one.
    let b = NanaSQLite::open(&path).unwrap();
    let c = futures::executor::block_on(AsyncNanaSQLite::open(&path)).unwrap();
    b.set("b before", &3).unwrap();
    a.restore(&backup).unwrap();
    b.set("b after", &4).unwrap();
    futures::executor::block_on(c.set("c after", &5)).unwrap();
    for key in ["b after", "c after", "before"] {
        assert!(a.get_fresh::<i32>(key).unwrap().is_some(), "{key} is in the restored file");
    }
    assert_eq!(a.get_fresh::<i32>("b before").unwrap(), None, "the restore replaced what was there");
    drop((a, b));
    futures::executor::block_on(c.close()).unwrap();
    let reopened = NanaSQLite::open(&path).unwrap();
    assert_eq!(reopened.get::<i32>("b after").unwrap(), Some(4), "acknowledged writes after the restore stay");
    assert_eq!(reopened.get::<i32>("c after").unwrap(), Some(5));
}

/// The child of the test below: opens the file and writes once a second file says so.
fn write_after_the_restore() {
    let path = std::env::var_os("NANASQLITE_RESTORE_DB").expect("the parent names the file");
    let signal = std::path::PathBuf::from(std::env::var_os("NANASQLITE_RESTORE_SIGNAL").unwrap());
    let db = NanaSQLite::open(path).unwrap();
    db.set("child before", &1).unwrap();
    common::wait_until("the parent's signal", Duration::from_secs(60), || signal.exists());
    db.set("child after", &2).unwrap();
}

#[test]
fn a_restore_keeps_what_another_process_writes_afterwards() {
    let _watchdog = common::Watchdog::new("a_restore_keeps_what_another_process_writes_afterwards", common::TEST_LIMIT);
    if common::child_role().is_some() {
        return write_after_the_restore();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let signal = dir.path().join("restored");
    let a = NanaSQLite::open(&path).unwrap();
    a.backup(dir.path().join("empty.db")).unwrap();
    let mut child = common::child("a_restore_keeps_what_another_process_writes_afterwards", "write")
        .env("NANASQLITE_RESTORE_DB", &path)
        .env("NANASQLITE_RESTORE_SIGNAL", &signal)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_until("the child's first write", Duration::from_secs(60), || {
        a.get_fresh::<i32>("child before").unwrap().is_some()
    });
    a.restore(dir.path().join("empty.db")).unwrap();
    std::fs::write(&signal, b"go").unwrap();
    assert!(common::wait_for_exit(&mut child, Duration::from_secs(60)).success());
    assert_eq!(a.get_fresh::<i32>("child after").unwrap(), Some(2), "the other process's write after the restore");
    assert_eq!(a.get_fresh::<i32>("child before").unwrap(), None);
}

/// A file damaged by something else (its fifth page overwritten): reads that touch the damage
/// fail with SQLite's error, on a reader lane that tries a new connection first; the reader
/// lives on and serves the reads that do not touch it, and the writer goes on writing.
#[test]
fn readers_survive_a_damaged_file() {
    let _watchdog = common::Watchdog::new("readers_survive_a_damaged_file", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.db");
    let store = NanaSQLite::open(&path).unwrap();
    store.batch_update((0..2_000).map(|i| (format!("key{i:05}"), format!("value {i}")))).unwrap();
    store.close().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4 * 4096..5 * 4096].fill(0xFF);
    std::fs::write(&path, bytes).unwrap();

    futures::executor::block_on(async {
        let db = AsyncNanaSQLite::builder(&path).read_pool_size(1).open().await.unwrap();
        let held = db.begin().await.unwrap(); // the writer is busy: reads go to the reader
        let scan = db.fetch_one("SELECT count(*) AS n, sum(length(value)) AS size FROM data", nanasqlite::params![]);
        let error = scan.await.unwrap_err();
        assert!(matches!(&error, Error::Sqlite(_)) && error.to_string().contains("malformed"), "{error}");
        assert!(db.stats().reconnects >= 1, "the reader tried a new connection: {:?}", db.stats());
        let one = db.fetch_one("SELECT 1 AS one", nanasqlite::params![]).await.unwrap().unwrap();
        assert_eq!(one.get::<i64>("one").unwrap(), 1, "the reader serves the next read");
        assert_eq!(db.stats().lanes, 2, "the reader lives on");
        held.commit().await.unwrap();
        db.set("after", &1).await.unwrap();
        db.close().await.unwrap();
    });
}
