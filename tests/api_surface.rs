//! Public methods that no behaviour test reaches otherwise: each is called here and its effect
//! checked (the settings read back from SQLite, the rows from the file).

use std::time::Duration;

use nanasqlite::sql::Clause;
use nanasqlite::{AsyncNanaSQLite, CacheStrategy, NanaSQLite, Query, SqlPolicy, SqlValue, params};
use serde_json::{Value, json};

mod common;

use common::{Setup, in_file};

fn integer(value: Option<SqlValue>) -> i64 {
    match value {
        Some(SqlValue::Integer(n)) => n,
        other => panic!("an integer pragma, got {other:?}"),
    }
}

fn text(value: Option<SqlValue>) -> String {
    match value {
        Some(SqlValue::Text(text)) => text,
        other => panic!("a text pragma, got {other:?}"),
    }
}

/// A policy that lets fragments call `HEX`, which the default refuses.
fn hex_policy() -> SqlPolicy {
    SqlPolicy::default().allow(["hex"])
}

#[test]
fn the_sync_store_names_its_file_table_and_policy() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("named.db");
    let db = NanaSQLite::builder(&path).table("users").sql_policy(hex_policy()).open()?;
    assert_eq!(db.path(), path);
    assert_eq!(db.table_name(), "users");
    db.set("alice", &1)?;
    assert_eq!(in_file::<i32>(&path, "alice"), None, "not in the default table");
    let in_users: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT value FROM users WHERE key = 'alice'", [], |row| row.get::<_, String>(0))
        .map(|text| text.parse().unwrap())
        .unwrap();
    assert_eq!(in_users, 1);

    assert!(db.sql_policy().check("HEX(key) = ?", Clause::Where).is_ok());
    let rows = db.query(Query::table("users").filter("HEX(key) = ?", params!["616C696365"]))?;
    assert_eq!(rows.len(), 1, "the store's policy admits HEX");
    let other = db.table("other")?;
    assert_eq!(other.table_name(), "other");
    assert_eq!(other.sql_policy(), db.sql_policy(), "a table store inherits the policy");
    assert!(
        NanaSQLite::open(dir.path().join("default.db"))?.sql_policy().check("HEX(key) = ?", Clause::Where).is_err()
    );
    Ok(())
}

#[test]
fn sync_builder_settings_reach_sqlite() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let db = NanaSQLite::builder(dir.path().join("tuned.db"))
        .busy_timeout(Duration::from_millis(1234))
        .cache_size_mb(8)
        .mmap_size(1 << 20)
        .open()?;
    assert_eq!(integer(db.pragma("busy_timeout", None)?), 1234);
    assert_eq!(integer(db.pragma("cache_size", None)?), -8 * 1024, "negative: KiB");
    assert_eq!(integer(db.pragma("mmap_size", None)?), 1 << 20);
    assert_eq!(text(db.pragma("journal_mode", None)?), "wal");

    let plain = NanaSQLite::builder(dir.path().join("plain.db")).optimize(false).open()?;
    assert_eq!(text(plain.pragma("journal_mode", None)?), "delete", "optimize(false) leaves the journal alone");
    assert_eq!(integer(plain.pragma("synchronous", None)?), 2, "and SQLite's FULL default");
    plain.set("k", &1)?;
    assert_eq!(plain.get_fresh::<i32>("k")?, Some(1));
    Ok(())
}

#[test]
fn ttl_caches_evict_by_size_too() -> nanasqlite::Result<()> {
    let ttl = CacheStrategy::Ttl { ttl: Duration::from_secs(3600), size: Some(2), delete_expired: false };
    let db = NanaSQLite::builder(":memory:").cache(ttl).open()?;
    for key in ["a", "b", "c"] {
        db.set(key, &key)?;
    }
    assert!(!db.is_cached("a") && db.is_cached("b") && db.is_cached("c"), "the oldest left the cache");
    assert_eq!(db.get::<String>("a")?.as_deref(), Some("a"), "evicted, not deleted");
    Ok(())
}

on_every_runtime!(
    the_async_store_names_its_file_table_and_policy,
    async_builder_settings_reach_sqlite,
    async_dict_methods,
    async_transaction_methods,
    async_fifo_cache,
    calls_return_a_nameable_future,
);

/// What a caller keeps while a call is answered: the future's type, named.
struct Waiting {
    read: nanasqlite::Pending<Option<i32>>,
    write: nanasqlite::Pending<()>,
}

fn unpin_send_static<F: std::future::Future + Unpin + Send + 'static>(future: F) -> F {
    future
}

async fn calls_return_a_nameable_future(setup: Setup) {
    let db = setup.builder.clone().open().await.unwrap();
    let waiting = Waiting { write: db.set("k", &7), read: db.get("absent") };
    assert!(format!("{:?}", waiting.read).starts_with("Pending"));
    waiting.write.await.unwrap();
    assert_eq!(waiting.read.await.unwrap(), None);
    let read = unpin_send_static(db.get::<i32>("k"));
    let mut read = std::thread::spawn(move || read).join().unwrap(); // sent to another thread unpolled
    assert_eq!(std::pin::Pin::new(&mut read).await.unwrap(), Some(7), "polled through a plain Pin, unpinned");
    db.close().await.unwrap();
}

async fn the_async_store_names_its_file_table_and_policy(setup: Setup) {
    let db = setup.builder.clone().table("users").sql_policy(hex_policy()).open().await.unwrap();
    assert_eq!(db.path(), setup.path);
    assert_eq!(db.table_name(), "users");
    assert!(db.sql_policy().check("HEX(key) = ?", Clause::Where).is_ok());
    db.set("alice", &1).await.unwrap();
    let rows = db.query(Query::table("users").filter("HEX(key) = ?", params!["616C696365"])).await.unwrap();
    assert_eq!(rows.len(), 1, "the store's policy admits HEX");
    let other = db.table("other").await.unwrap();
    assert_eq!(other.table_name(), "other");
    assert_eq!(other.sql_policy(), db.sql_policy(), "a table store inherits the policy");
    let rows = other.query(Query::table("users").filter("HEX(key) = ?", params!["616C696365"])).await.unwrap();
    assert_eq!(rows.len(), 1, "and applies it");
    db.close().await.unwrap();
}

async fn async_builder_settings_reach_sqlite(setup: Setup) {
    let db = setup
        .builder
        .clone()
        .busy_timeout(Duration::from_millis(1234))
        .cache_size_mb(8)
        .mmap_size(1 << 20)
        .open()
        .await
        .unwrap();
    assert_eq!(integer(db.pragma("busy_timeout", None).await.unwrap()), 1234);
    assert_eq!(integer(db.pragma("cache_size", None).await.unwrap()), -8 * 1024);
    assert_eq!(integer(db.pragma("mmap_size", None).await.unwrap()), 1 << 20);
    assert_eq!(text(db.pragma("journal_mode", None).await.unwrap()), "wal");
    db.close().await.unwrap();

    let plain_path = setup.path.with_file_name("plain.db");
    let plain = setup.builder_for(&plain_path).optimize(false).open().await.unwrap();
    assert_eq!(text(plain.pragma("journal_mode", None).await.unwrap()), "delete");
    plain.set("k", &1).await.unwrap();
    assert_eq!(in_file::<i32>(&plain_path, "k"), Some(1));
    plain.close().await.unwrap();
}

async fn async_dict_methods(setup: Setup) {
    let db = setup.open().await;
    db.update([("a", json!(1)), ("b", json!({"x": [1, 2]}))]).await.unwrap();
    assert_eq!(in_file::<Value>(&setup.path, "b"), Some(json!({"x": [1, 2]})), "update wrote both");
    let mut keys = db.keys().await.unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
    let mut values = db.values::<Value>().await.unwrap();
    values.sort_by_key(Value::to_string);
    assert_eq!(values, [json!(1), json!({"x": [1, 2]})]);

    db.clear_cache();
    assert!(!db.is_cached("a"));
    db.load_all().await.unwrap();
    assert!(db.is_cached("a") && db.is_cached("b"), "load_all fills the cache");
    db.close().await.unwrap();
}

async fn async_transaction_methods(setup: Setup) {
    let db = setup.open().await;
    db.create_table("log", &[("id", "INTEGER PRIMARY KEY"), ("m", "TEXT")]).await.unwrap();
    db.set("gone", &1).await.unwrap();

    let tx = db.begin().await.unwrap();
    let id = tx.sql_insert("log", &json!({"m": "first"})).await.unwrap();
    assert_eq!(id, 1);
    let rows = tx.query(Query::table("log")).await.unwrap();
    assert_eq!(rows.len(), 1, "the transaction sees its own insert");
    assert!(tx.delete("gone").await.unwrap());
    assert!(!tx.delete("gone").await.unwrap(), "already deleted in this transaction");
    let counted = tx.run(|t| t.count(&Query::table("log"))).await.unwrap();
    assert_eq!(counted, 1, "run gives the whole Transaction");
    tx.commit().await.unwrap();
    assert_eq!(in_file::<i32>(&setup.path, "gone"), None);
    assert_eq!(db.count(Query::table("log")).await.unwrap(), 1);

    let tx = db.begin().await.unwrap();
    tx.sql_insert("log", &json!({"m": "rolled back"})).await.unwrap();
    tx.run(|t| t.set("never", &1)).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(db.count(Query::table("log")).await.unwrap(), 1);
    assert_eq!(db.get::<i32>("never").await.unwrap(), None);
    db.close().await.unwrap();
}

async fn async_fifo_cache(setup: Setup) {
    let db: AsyncNanaSQLite = setup.builder.clone().cache(CacheStrategy::Fifo { size: 2 }).open().await.unwrap();
    for key in ["a", "b", "c"] {
        db.set(key, &key).await.unwrap();
    }
    assert!(!db.is_cached("a") && db.is_cached("b") && db.is_cached("c"), "the first in left first");
    db.set("b", &"again").await.unwrap();
    db.set("d", &"d").await.unwrap();
    assert!(!db.is_cached("b") && db.is_cached("c") && db.is_cached("d"), "rewriting kept b's place");
    assert_eq!(db.get::<String>("a").await.unwrap().as_deref(), Some("a"), "evicted, not deleted");
    db.close().await.unwrap();
}

/// A value serde_json cannot encode: a map whose keys are not strings.
fn unencodable() -> std::collections::HashMap<(i32, i32), i32> {
    std::collections::HashMap::from([((1, 2), 3)])
}

#[test]
fn popitem_takes_the_first_key_in_order() -> nanasqlite::Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    assert_eq!(db.popitem::<i32>()?, None, "empty: None, not a panic");
    db.batch_update([("b", 2), ("a", 1), ("c", 3)])?;
    assert_eq!(db.popitem::<i32>()?, Some(("a".to_owned(), 1)));
    assert!(!db.contains("a")?);
    db.set("text", &"not a number")?;
    db.set("0first", &"not a number")?;
    assert!(db.popitem::<i32>().is_err(), "a value that does not fit T");
    assert!(db.contains("0first")?, "is not removed");
    Ok(())
}

#[test]
fn batch_update_partial_writes_what_it_can_and_reports_the_rest() -> nanasqlite::Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    let rows = vec![("ok1", std::collections::HashMap::new()), ("bad", unencodable()), ("ok2", Default::default())];
    let report = db.batch_update_partial(rows)?;
    assert_eq!(report.written, 2);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, "bad");
    assert!(matches!(report.failed[0].1, nanasqlite::Error::Encode { .. }));
    assert!(db.contains("ok1")? && db.contains("ok2")? && !db.contains("bad")?);
    let none = db.batch_update_partial(vec![("bad", unencodable())])?;
    assert_eq!((none.written, none.failed.len()), (0, 1), "all failed: nothing written, still a report");
    db.close()?;
    assert!(matches!(db.batch_update_partial(vec![("k", 1)]), Err(nanasqlite::Error::Closed)));
    Ok(())
}

on_every_runtime!(async_popitem_and_partial_batches);

async fn async_popitem_and_partial_batches(setup: Setup) {
    let db = setup.open().await;
    assert_eq!(db.popitem::<i32>().await.unwrap(), None);
    let rows = vec![("b", std::collections::HashMap::new()), ("bad", unencodable()), ("a", Default::default())];
    let report = db.batch_update_partial(rows).await.unwrap();
    assert_eq!((report.written, report.failed[0].0.as_str()), (2, "bad"));
    let (key, value) = db.popitem::<Value>().await.unwrap().unwrap();
    assert_eq!((key.as_str(), value), ("a", json!({})));
    assert_eq!(in_file::<Value>(&setup.path, "a"), None, "popped from the file");
    assert_eq!(db.keys().await.unwrap(), ["b"]);
    db.close().await.unwrap();
}

/// The store's own threads carry the prefix (a runtime's blocking pool names its threads itself).
#[test]
fn threads_carry_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    futures::executor::block_on(async {
        let builder = AsyncNanaSQLite::builder(dir.path().join("named.db")).thread_name_prefix("orders-db");
        let db = builder.clone().open().await.unwrap();
        let writer = db.transaction(|_| Ok(std::thread::current().name().map(str::to_owned))).await.unwrap();
        assert_eq!(writer.as_deref(), Some("orders-db-writer"));
        db.close().await.unwrap();
        let refused = builder.clone().thread_name_prefix("").open().await;
        assert!(matches!(refused, Err(nanasqlite::Error::Validation { .. })), "an empty prefix");
        let refused = builder.thread_name_prefix("a\0b").open().await;
        assert!(matches!(refused, Err(nanasqlite::Error::Validation { .. })), "a NUL would panic at spawn");
    });
}

on_every_runtime!(async_last_insert_rowid);

async fn async_last_insert_rowid(setup: Setup) {
    let db = setup.open().await;
    assert_eq!(db.last_insert_rowid().await.unwrap(), 0, "nothing inserted yet");
    db.create_table("log", &[("id", "INTEGER PRIMARY KEY"), ("m", "TEXT")]).await.unwrap();
    let id = db.sql_insert("log", &json!({"id": 41, "m": "a"})).await.unwrap();
    assert_eq!((id, db.last_insert_rowid().await.unwrap()), (41, 41));
    db.execute("INSERT INTO log (m) VALUES ('b')", params![]).await.unwrap();
    assert_eq!(db.last_insert_rowid().await.unwrap(), 42, "any statement's insert counts");
    db.close().await.unwrap();
}

#[test]
fn get_by_path_reads_one_element_from_the_file() -> nanasqlite::Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    let user = json!({"name": "Alice", "zip": "01234", "n": {"deep": [1, {"x": true}]}, "none": null});
    db.set("user", &user)?;
    assert_eq!(db.get_by_path::<String>("user", "name")?.as_deref(), Some("Alice"));
    assert_eq!(
        db.get_by_path::<String>("user", ".zip")?.as_deref(),
        Some("01234"),
        "a numeric-looking string stays one"
    );
    assert_eq!(db.get_by_path::<bool>("user", "$.n.deep[1].x")?, Some(true), "booleans stay booleans");
    assert_eq!(db.get_by_path::<Value>("user", "n.deep")?, Some(json!([1, {"x": true}])));
    assert_eq!(db.get_by_path::<Value>("user", "none")?, None, "JSON null");
    assert_eq!(db.get_by_path::<Value>("user", "absent")?, None);
    assert_eq!(db.get_by_path::<Value>("nobody", "name")?, None);
    assert!(db.get_by_path::<i32>("user", "name").is_err(), "does not fit T");
    for hostile in ["$.a'); DROP TABLE data; --", "$[", "$..x"] {
        let _ = db.get_by_path::<Value>("user", hostile); // an error or None: bound, never run as SQL
    }
    assert_eq!(db.get::<Value>("user")?, Some(user), "the table is intact");

    let encrypted = NanaSQLite::builder(":memory:").encryption(nanasqlite::Encryption::chacha20([1; 32])?).open()?;
    encrypted.set("k", &json!({"a": 1}))?;
    assert!(matches!(encrypted.get_by_path::<i32>("k", "a"), Err(nanasqlite::Error::Validation { .. })));
    Ok(())
}

on_every_runtime!(async_get_by_path);

async fn async_get_by_path(setup: Setup) {
    let db = setup.open().await;
    db.set("order", &json!({"items": [{"sku": "A1", "qty": 2}]})).await.unwrap();
    assert_eq!(db.get_by_path::<u32>("order", "items[0].qty").await.unwrap(), Some(2));
    assert_eq!(db.get_by_path::<String>("order", "items[1].sku").await.unwrap(), None);
    db.close().await.unwrap();
}

#[test]
fn call_hands_over_the_connection_and_takes_it_back_clean() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let db = NanaSQLite::open(dir.path().join("call.db"))?;
    db.set("k", &1)?;
    db.call(|conn| conn.execute("UPDATE data SET value = '2' WHERE key = 'k'", []))?;
    assert_eq!(db.get::<i32>("k")?, Some(1), "the cache does not see it");
    db.clear_cache();
    assert_eq!(db.get::<i32>("k")?, Some(2), "the file does");

    let left_open = db.call(|conn| conn.execute_batch("BEGIN; UPDATE data SET value = '3' WHERE key = 'k'"));
    assert!(matches!(left_open, Err(nanasqlite::Error::Transaction { .. })), "{left_open:?}");
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = db.call(|conn| -> rusqlite::Result<()> {
            conn.execute_batch("BEGIN; UPDATE data SET value = '4' WHERE key = 'k'")?;
            panic!("inside call")
        });
    }));
    assert!(panicked.is_err(), "the panic reaches the caller");
    db.set("after", &true)?; // the store's own transactions work: nothing was left open
    assert_eq!(db.get_fresh::<i32>("k")?, Some(2), "both were rolled back");
    let sql_error = db.call(|conn| conn.execute("NOT SQL", []));
    assert!(matches!(sql_error, Err(nanasqlite::Error::Sqlite(_))));
    let inside = db.transaction(|_| Ok(db.call(|_| Ok(())).unwrap_err()))?;
    assert!(matches!(inside, nanasqlite::Error::Transaction { .. }));
    Ok(())
}

on_every_runtime!(async_call);

async fn async_call(setup: Setup) {
    let db = setup.open().await;
    let journal: String = db.call(|conn| conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))).await.unwrap();
    assert_eq!(journal, "wal", "the writer's connection");
    let panicked = db
        .call(|conn| -> rusqlite::Result<()> {
            conn.execute_batch("BEGIN; INSERT INTO data VALUES ('ghost', '1')")?;
            panic!("inside call")
        })
        .await;
    assert!(matches!(panicked, Err(nanasqlite::Error::Panic { .. })), "{panicked:?}");
    db.set("after", &1).await.unwrap();
    assert_eq!(db.get_fresh::<i32>("ghost").await.unwrap(), None, "rolled back");
    db.close().await.unwrap();
}

#[test]
fn import_rows_is_one_transaction_and_drops_nothing_unseen() -> nanasqlite::Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    db.create_table("users", &[("name", "TEXT UNIQUE"), ("age", "INTEGER")])?;
    assert_eq!(db.import_rows::<Value>("users", &[])?, 0);
    let rows = [json!({"name": "Alice", "age": 30}), json!({"name": "Bob"})];
    assert_eq!(db.import_rows("users", &rows)?, 2);
    let exported = serde_json::to_value(db.export_table("users")?)?;
    assert_eq!(exported, json!([{"name": "Alice", "age": 30}, {"name": "Bob", "age": null}]));

    let extra = [json!({"name": "Carol"}), json!({"name": "Dan", "email": "d@x"})];
    let error = db.import_rows("users", &extra).unwrap_err();
    assert!(error.to_string().contains("email") && error.to_string().contains("row 1"), "{error}");
    let duplicate = [json!({"name": "Eve"}), json!({"name": "Alice"})];
    assert!(db.import_rows("users", &duplicate).unwrap_err().is_unique_violation());
    assert!(matches!(db.import_rows("users", &[json!(1)]), Err(nanasqlite::Error::Validation { .. })));
    assert!(matches!(db.import_rows("users; DROP TABLE users", &rows), Err(nanasqlite::Error::Validation { .. })));
    assert_eq!(db.count(Query::table("users"))?, 2, "every failed import left nothing");
    Ok(())
}

on_every_runtime!(async_import_and_export);

async fn async_import_and_export(setup: Setup) {
    let db = setup.open().await;
    db.create_table("t", &[("a", "INTEGER"), ("b", "TEXT")]).await.unwrap();
    let rows: Vec<Value> = (0..100).map(|i| json!({"a": i, "b": format!("v{i}")})).collect();
    assert_eq!(db.import_rows("t", &rows).await.unwrap(), 100);
    let exported = db.export_table("t").await.unwrap();
    assert_eq!(exported.len(), 100);
    assert_eq!(exported[99].get::<String>("b").unwrap(), "v99");
    db.close().await.unwrap();
}

#[test]
fn sync_last_insert_rowid() -> nanasqlite::Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    assert_eq!(db.last_insert_rowid()?, 0, "nothing inserted yet");
    db.create_table("log", &[("id", "INTEGER PRIMARY KEY"), ("m", "TEXT")])?;
    let id = db.sql_insert("log", &json!({"id": 41, "m": "a"}))?;
    assert_eq!((id, db.last_insert_rowid()?), (41, 41));
    db.execute("INSERT INTO log (m) VALUES ('b')", params![])?;
    assert_eq!(db.last_insert_rowid()?, 42, "any statement's insert counts");
    Ok(())
}

#[test]
fn sync_in_transaction() -> nanasqlite::Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    assert!(!db.in_transaction());
    let inside = db.transaction(|tx| {
        tx.set("k", &1)?;
        Ok(db.in_transaction())
    })?;
    assert!(inside, "true while the transaction runs");
    assert!(!db.in_transaction(), "false once it committed");
    Ok(())
}

on_every_runtime!(async_in_transaction);

async fn async_in_transaction(setup: Setup) {
    let db = setup.open().await;
    assert!(!db.in_transaction());
    let tx = db.begin().await.unwrap();
    assert!(db.in_transaction(), "true while a begin() transaction is open");
    tx.set("k", &1).await.unwrap();
    tx.commit().await.unwrap();
    assert!(!db.in_transaction(), "false once it committed");
    db.close().await.unwrap();
}

/// The async store's handles can be shared between tasks (`&` held across an await in a
/// spawned task needs `Sync`); its futures and streams can move between threads.
#[test]
fn async_handles_are_send_and_sync_and_futures_are_send() {
    fn shared<T: Send + Sync + 'static>() {}
    fn sent<T: Send + 'static>() {}
    shared::<AsyncNanaSQLite>();
    shared::<nanasqlite::AsyncTransaction>();
    shared::<nanasqlite::AsyncTypedTable<Value>>();
    shared::<nanasqlite::AsyncBuilder>();
    shared::<nanasqlite::Stats>();
    sent::<nanasqlite::Pending<Value>>();
    sent::<nanasqlite::ScanStream<Value>>();
}
