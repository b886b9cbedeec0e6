//! The PostgreSQL backend (feature `postgres`) against a real server: the backend and store
//! conformance suites, the dict API, batches, atomic updates, transactions, scans, hooks,
//! encryption and the SQL helpers on the sync store; the async store on every runtime; two
//! processes sharing one table through their caches; the listener losing its connection.
//!
//! Needs a server: `bash .ci/postgres start` starts one and prints its URL; export it as
//! `NANASQLITE_POSTGRES_URL`. The tests are `#[ignore]`d, so plain `cargo test` lists them as
//! ignored; `bash .ci/test` starts the server and runs them (and names them as skipped when no
//! server can start). Each test works in a schema of its own.
#![cfg(feature = "postgres")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nanasqlite::hook::{self, KeyFilter};
use nanasqlite::storage::{PostgresConfig, PostgresStorage, STALENESS};
use nanasqlite::{AsyncNanaSQLite, Encryption, Error, NanaSQLite, Scan, SqlValue, params};
use serde_json::{Value, json};

mod common;

use common::{Watchdog, child, child_role, wait_until};

/// The server's URL, from `NANASQLITE_POSTGRES_URL`.
fn server() -> String {
    std::env::var("NANASQLITE_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("this test needs a PostgreSQL server: run `bash .ci/postgres start` and export NANASQLITE_POSTGRES_URL")
    })
}

/// A fresh schema on the server, dropped at the end: the URL of connections that use it.
struct Schema {
    name: String,
    url: String,
}

impl Schema {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("t_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        Self::named(&name, true)
    }

    /// The schema `name` (created if `create`), as a child process gets it from its parent.
    fn named(name: &str, create: bool) -> Self {
        let base = server();
        if create {
            let mut admin = postgres::Client::connect(&base, postgres::NoTls).expect("the server answers");
            admin.batch_execute(&format!("CREATE SCHEMA {name}")).unwrap();
        }
        let separator = if base.contains('?') { '&' } else { '?' };
        Self { url: format!("{base}{separator}options=-csearch_path%3D{name}"), name: name.to_owned() }
    }

    fn raw(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if child_role().is_none()
            && let Ok(mut admin) = postgres::Client::connect(&server(), postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// Bad input to the PostgreSQL builders fails clearly before (or without) any server: a URL
/// the client cannot read, a hostile table name or option (checked before connecting), and a
/// server that is not there. Needs no server, so it always runs.
#[test]
fn postgres_builders_refuse_bad_input_clearly() {
    let _watchdog = common::Watchdog::new("postgres_builders_refuse_bad_input_clearly", common::TEST_LIMIT);
    for url in ["not a url", "postgres://user@host:notaport/db", "postgres://[::1"] {
        let error = NanaSQLite::postgres(url).open().unwrap_err();
        assert!(matches!(error, Error::Validation { .. }), "{url}: {error}");
        assert_eq!(error.to_string().matches("invalid input").count(), 1, "said once: {error}");
        let error = futures::executor::block_on(AsyncNanaSQLite::postgres(url).open()).unwrap_err();
        assert!(matches!(error, Error::Validation { .. }), "{url}: {error}");
        assert_eq!(error.to_string().matches("invalid input").count(), 1, "said once: {error}");
        assert_eq!(NanaSQLite::postgres(url).config().unwrap_err().to_string(), error.to_string(), "the same words");
    }
    // Port 1 on loopback: nothing listens there, so reaching it would fail differently.
    let nowhere = "postgres://nobody:secret@127.0.0.1:1/db?connect_timeout=2";
    for table in ["users; DROP TABLE users", "", "sqlite_master", "a\"b"] {
        let error = NanaSQLite::postgres(nowhere).table(table).open().unwrap_err();
        assert!(matches!(error, Error::Validation { .. }), "{table:?}: {error}");
    }
    let error = NanaSQLite::postgres(nowhere).open().unwrap_err();
    assert!(matches!(error, Error::Backend { backend: "postgres", .. }), "{error}");
    assert!(!error.to_string().contains("secret"), "the password stays out of the message: {error}");
    let error = futures::executor::block_on(AsyncNanaSQLite::postgres(nowhere).table("x; DROP").open()).unwrap_err();
    assert!(matches!(error, Error::Validation { .. }), "{error}");
}

#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_passes_the_storage_conformance_suite() {
    let _watchdog = common::Watchdog::new("postgres_passes_the_storage_conformance_suite", common::TEST_LIMIT);
    let schema = Schema::new();
    let config = PostgresConfig::new(&schema.url).unwrap();
    nanasqlite::storage::conformance::check(|| PostgresStorage::connect(&config));
}

#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_passes_the_async_conformance_suite() {
    let _watchdog = common::Watchdog::new("postgres_passes_the_async_conformance_suite", common::TEST_LIMIT);
    let schema = Schema::new();
    let config = PostgresConfig::new(&schema.url).unwrap();
    futures::executor::block_on(nanasqlite_pool::conformance::check(move || PostgresStorage::connect(&config)));
}

/// The PostgreSQL builders' own settings: `bulk_load` caches every row at open, `cache` bounds
/// the cache, `hook` registers a hook, `with` reaches any option of the store's builder.
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_builders_set_bulk_load_cache_hooks_and_any_option() -> nanasqlite::Result<()> {
    let _watchdog =
        common::Watchdog::new("postgres_builders_set_bulk_load_cache_hooks_and_any_option", common::TEST_LIMIT);
    let schema = Schema::new();
    let keys: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
    let cached = |is_cached: &dyn Fn(&str) -> bool| keys.iter().filter(|key| is_cached(key)).count();
    NanaSQLite::postgres(&schema.url).open()?.batch_update(keys.iter().zip(0..))?;
    NanaSQLite::postgres(&schema.url).table("other").open()?.batch_update(keys.iter().zip(0..))?;

    let loaded = NanaSQLite::postgres(&schema.url).bulk_load(true).open()?;
    assert_eq!(cached(&|key| loaded.is_cached(key)), 5, "bulk_load cached every row at open");
    let unloaded = NanaSQLite::postgres(&schema.url).open()?;
    assert_eq!(cached(&|key| unloaded.is_cached(key)), 0, "without it, nothing");
    let bounded = NanaSQLite::postgres(&schema.url).cache(nanasqlite::CacheStrategy::Lru { size: 2 }).open()?;
    for key in &keys {
        assert!(bounded.get::<i64>(key)?.is_some());
    }
    assert_eq!(cached(&|key| bounded.is_cached(key)), 2, "the LRU cache keeps two");

    futures::executor::block_on(async {
        let db = AsyncNanaSQLite::postgres(&schema.url)
            .cache(nanasqlite::CacheStrategy::Lru { size: 2 })
            .hook(hook::check(|_key: &str, value: &Value| value.as_i64().is_some_and(|n| n >= 0)))
            .with(|builder| builder.table("other"))
            .open()
            .await?;
        assert_eq!(db.table_name(), "other", "with reached the store's builder");
        assert!(db.set("negative", &-1).await.unwrap_err().is_refused(), "the hook runs");
        db.set("positive", &1).await?;
        for key in &keys {
            assert!(db.get::<i64>(key).await?.is_some());
        }
        assert_eq!(cached(&|key| db.is_cached(key)), 2, "the LRU cache keeps two");
        db.close().await
    })
}

#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_serves_the_dict_api_batches_atomic_updates_and_transactions() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new(
        "postgres_serves_the_dict_api_batches_atomic_updates_and_transactions",
        common::TEST_LIMIT,
    );
    let schema = Schema::new();
    let db = NanaSQLite::postgres(&schema.url).open()?;
    assert!(db.path().to_str().unwrap().starts_with("postgres://"), "the path names the server");
    db.set("a", &json!({"n": 1, "tags": ["x"]}))?;
    assert_eq!(db.get::<Value>("a")?, Some(json!({"n": 1, "tags": ["x"]})));
    db.clear_cache();
    assert_eq!(db.get::<Value>("a")?, Some(json!({"n": 1, "tags": ["x"]})), "read back from the server");
    assert!(db.contains("a")? && !db.contains("zz")?);
    db.batch_update([("b", json!(2)), ("c", json!(3)), ("b", json!(22))])?;
    assert_eq!(db.get::<i64>("b")?, Some(22), "the last write of a key in a batch wins");
    assert_eq!(db.len()?, 3);
    assert_eq!(db.keys()?, ["a", "b", "c"]);
    assert_eq!(db.batch_delete(["b", "zz"])?, 1);
    assert_eq!(db.pop::<i64>("c")?, Some(3));
    assert_eq!(db.popitem::<Value>()?.map(|(key, _)| key), Some("a".to_owned()));
    assert!(db.is_empty()?);

    assert_eq!(db.increment::<i64>("hits", 5, None)?, 5);
    assert_eq!(db.increment::<i64>("hits", 1, None)?, 6);
    db.patch("user", &json!({"name": "Ann"}), true)?;
    assert_eq!(db.patch("user", &json!({"age": 3}), false)?, json!({"name": "Ann", "age": 3}));
    assert_eq!(db.setdefault("hits", &0)?, 6);

    let failed: nanasqlite::Result<()> = db.transaction(|tx| {
        tx.set("t1", &1)?;
        Err(Error::refused("t1", "the test"))
    });
    assert!(failed.is_err());
    assert!(!db.contains("t1")?, "a failed transaction rolls back");
    db.transaction(|tx| {
        tx.set("t1", &1)?;
        tx.set("t2", &2)
    })?;
    assert_eq!(db.batch_get::<i64>(&["t1", "t2"])?.len(), 2);

    db.batch_update((0..600).map(|i| (format!("k{i:04}"), i)))?;
    let page: Vec<(String, i64)> = db.scan(Scan::prefix("k").descending().limit(3))?;
    assert_eq!(page.iter().map(|(key, _)| key.as_str()).collect::<Vec<_>>(), ["k0599", "k0598", "k0597"]);
    let streamed = db.iter::<i64>(Scan::range("k0100".."k0400"))?.count();
    assert_eq!(streamed, 300, "pages follow each other through the range");
    db.clear()?;
    assert_eq!(db.len()?, 0);
    Ok(())
}

#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_keeps_hooks_typed_tables_and_encrypted_values() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("postgres_keeps_hooks_typed_tables_and_encrypted_values", common::TEST_LIMIT);
    let schema = Schema::new();
    let db = NanaSQLite::postgres(&schema.url)
        .hook(hook::unique("email"))
        .hook(hook::foreign_key("owner", "users").only(KeyFilter::prefix("order:")))
        .open()?;
    db.table("users")?.set("ann", &json!({}))?;
    db.set("u1", &json!({"email": "a@x"}))?;
    assert!(db.set("u2", &json!({"email": "a@x"})).unwrap_err().is_refused());
    db.set("order:1", &json!({"owner": "ann"}))?;
    assert!(db.set("order:2", &json!({"owner": "bob"})).unwrap_err().is_refused());

    let secret =
        NanaSQLite::postgres(&schema.url).table("secret").encryption(Encryption::aes_gcm([9u8; 32])?).open()?;
    secret.set("k", &json!({"card": "4111"}))?;
    secret.clear_cache();
    assert_eq!(secret.get::<Value>("k")?, Some(json!({"card": "4111"})));
    let row = schema.raw().query_one("SELECT value, value_bytes FROM secret WHERE key = 'k'", &[]).unwrap();
    let (text, bytes): (Option<String>, Option<Vec<u8>>) = (row.get(0), row.get(1));
    assert!(text.is_none() && bytes.is_some_and(|b| !String::from_utf8_lossy(&b).contains("4111")), "stored sealed");

    #[derive(serde::Serialize, serde::Deserialize, Clone, PartialEq, Debug)]
    struct Item {
        qty: u32,
    }
    let items = db.typed::<Item>("items")?;
    items.set("i", &Item { qty: 2 })?;
    assert_eq!(items.get("i")?, Some(Item { qty: 2 }));
    Ok(())
}

#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_runs_the_portable_sql_helpers() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("postgres_runs_the_portable_sql_helpers", common::TEST_LIMIT);
    let schema = Schema::new();
    let db = NanaSQLite::postgres(&schema.url).open()?;
    db.create_table(
        "people",
        &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT NOT NULL"), ("score", "REAL"), ("photo", "BLOB")],
    )?;
    db.create_index("people_name", "people", &["name"], true)?;
    assert!(db.table_exists("people")? && !db.table_exists("nobody")?);
    let first = db.sql_insert("people", &json!({"name": "Ann", "score": 1.5}))?;
    let second = db.sql_insert("people", &json!({"name": "Bob", "score": 2, "photo": null}))?;
    assert_eq!((first, second), (1, 2), "the generated ids, as SQLite's rowids");
    assert!(db.sql_insert("people", &json!({"name": "Ann"})).unwrap_err().is_unique_violation());
    let rows = db.query(nanasqlite::Query::table("people").filter("score > ?", params![1]).order_by("name"))?;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<String>("name")?, "Ann");
    assert_eq!(db.count(nanasqlite::Query::table("people").filter("name = ?", params!["Bob"]))?, 1);
    assert!(db.exists(nanasqlite::Query::table("people").filter("score >= ?", params![2.0]))?);
    assert_eq!(db.sql_update("people", &json!({"score": 9}), "name = ?", params!["Bob"])?, 1);
    db.upsert("people", &json!({"id": 2, "name": "Bob", "score": 10}), &["id"])?;
    assert_eq!(db.fetch_one("SELECT score FROM people WHERE id = ?", params![2])?.unwrap().get::<f64>("score")?, 10.0);
    assert_eq!(db.sql_delete("people", "name = ?", params!["Ann"])?, 1);
    assert!(db.list_tables()?.contains(&"people".to_owned()));
    let columns: Vec<String> = db.get_table_schema("people")?.into_iter().map(|column| column.name).collect();
    assert_eq!(columns, ["id", "name", "score", "photo"]);
    let sum = db.fetch_one("SELECT sum(score) AS total, count(*) AS n FROM people", [])?.unwrap();
    assert_eq!(sum.values(), [SqlValue::Real(10.0), SqlValue::Integer(1)]);
    for refused in [db.vacuum().unwrap_err(), db.pragma("user_version", None).unwrap_err()] {
        assert!(matches!(refused, Error::Unsupported { backend: "postgres", .. }), "{refused}");
    }
    assert!(matches!(db.backup("/tmp/x.db"), Err(Error::Unsupported { .. })));
    assert!(matches!(db.execute("COMMIT", []), Err(Error::Validation { .. })), "the store owns transactions");
    assert!(db.query(nanasqlite::Query::table("people").filter("1=1; DROP TABLE people", [])).is_err());
    assert!(db.table_exists("people")?, "a hostile fragment ran nothing");
    Ok(())
}

/// On PostgreSQL a unique field is checked by the server in the write's own message, at its
/// commit: in a group of writes committed together, the one that repeats a value fails alone
/// (with `Error::Refused`), and the others commit.
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_a_duplicate_in_a_write_group_fails_alone() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("postgres_a_duplicate_in_a_write_group_fails_alone", common::TEST_LIMIT);
    let schema = Schema::new();
    futures::executor::block_on(async {
        let db = AsyncNanaSQLite::postgres(&schema.url).hook(hook::unique("email")).open().await?;
        db.set("first", &json!({"email": "taken@x"})).await?;
        let email = |i: usize| if i == 7 { "taken@x".to_owned() } else { format!("{i}@x") };
        let values: Vec<Value> = (0..20).map(|i| json!({ "email": email(i) })).collect();
        let writes = values.iter().enumerate().map(|(i, value)| db.set(&format!("k{i:02}"), value));
        let results = futures::future::join_all(writes).await;
        for (i, result) in results.iter().enumerate() {
            match result {
                Err(error) => assert!(i == 7 && error.is_refused(), "write {i}: {error}"),
                Ok(()) => assert_ne!(i, 7, "the duplicate was written"),
            }
        }
        assert!(db.stats().largest_write_group >= 2, "the writes shared a group: {:?}", db.stats());
        assert_eq!(db.len().await?, 20, "the first and the 19 others");
        assert_eq!(db.get_fresh::<Value>("k07").await?, None);
        db.close().await
    })
}

/// One notice channel serves the whole database: a write to a table of the same name in
/// another schema is another table's, and empties nothing here. (A store's caches learn of
/// notices in order: once a later write in its own schema is seen, the other schema's earlier
/// write has been heard too.)
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_a_table_of_the_same_name_in_another_schema_is_another_table() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("postgres_a_table_of_the_same_name_in_another_schema", common::TEST_LIMIT);
    let (ours, theirs) = (Schema::new(), Schema::new());
    let db = NanaSQLite::postgres(&ours.url).open()?;
    let neighbour = NanaSQLite::postgres(&theirs.url).open()?;
    let colleague = NanaSQLite::postgres(&ours.url).open()?;
    db.set("k", &1)?;
    db.set("marker", &0)?;
    cache(&db, "k");
    cache(&db, "marker");
    neighbour.set("k", &2)?;
    colleague.set("marker", &1)?;
    wait_until("the colleague's write to be noticed", STALENESS * 5, || !db.is_cached("marker"));
    assert!(db.is_cached("k"), "a write in another schema emptied this store's cache");
    assert_eq!(db.get::<i64>("k")?, Some(1));
    colleague.set("k", &3)?;
    wait_until("a write in this schema to be noticed", STALENESS * 5, || !db.is_cached("k"));
    assert_eq!(db.get::<i64>("k")?, Some(3));
    Ok(())
}

/// Write-back mode on PostgreSQL: staged rows are read back at once, committed by a flush
/// (in chunks, through the same held-writes path as normal writes), seen by another client.
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_write_back_stages_then_commits() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("postgres_write_back_stages_then_commits", common::TEST_LIMIT);
    let schema = Schema::new();
    let db = NanaSQLite::postgres(&schema.url)
        .with(|b| b.write_back(nanasqlite::WriteBack::manual().chunk_size(100)))
        .open()?;
    let other = NanaSQLite::postgres(&schema.url).open()?;
    db.batch_update((0..250).map(|i| (format!("k{i:03}"), i)))?;
    assert_eq!(db.get::<i64>("k249")?, Some(249), "read back while staged");
    assert_eq!(other.len()?, 0, "nothing committed yet");
    db.flush()?;
    assert_eq!(db.write_back_stats().unwrap().chunks, 3);
    assert_eq!(other.len()?, 250);
    db.set("k000", &-1)?;
    db.close()?;
    assert_eq!(other.get_fresh::<i64>("k000")?, Some(-1), "close committed the rest");
    Ok(())
}

/// Reads `key` through `store` until its cache holds it (so that a later write must be
/// noticed through the cache, not read on a miss).
fn cache(store: &NanaSQLite<PostgresStorage>, key: &str) {
    wait_until("the key to settle in the cache", STALENESS * 5, || {
        store.get::<Value>(key).is_ok() && store.is_cached(key)
    });
}

/// A write by one store reaches another store's cache: the other's listener drops the key.
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_caches_of_two_stores_stay_coherent() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("postgres_caches_of_two_stores_stay_coherent", common::TEST_LIMIT);
    let schema = Schema::new();
    // Through a connector, as a TLS one would be passed (`NoTls` stands in for it).
    let writer = NanaSQLite::postgres(&schema.url).tls(postgres::NoTls).open()?;
    let reader = NanaSQLite::postgres(&schema.url).open()?;
    writer.set("k", &1)?;
    for round in 2..20 {
        cache(&reader, "k");
        writer.set("k", &round)?;
        let written = Instant::now();
        wait_until("the other store to read the new value", STALENESS, || {
            reader.get::<i64>("k").unwrap() == Some(round)
        });
        eprintln!("round {round}: seen after {:?}", written.elapsed());
    }
    let big = |i: i64, value: i64| (format!("big{i:05}-{}", "x".repeat(20)), value);
    writer.batch_update((0..2000).map(|i| big(i, i)))?;
    cache(&reader, "big00001-xxxxxxxxxxxxxxxxxxxx");
    writer.batch_update((0..2000).map(|i| big(i, -i)))?;
    wait_until("a batch too large to name its keys to reach the other cache", STALENESS, || {
        reader.get::<i64>("big00001-xxxxxxxxxxxxxxxxxxxx").unwrap() == Some(-1)
    });
    reader.set("mine", &1)?;
    cache(&writer, "mine");
    Ok(())
}

/// The `application_name` of the listening connection of `store`: named after the token its
/// sessions set as `nanasqlite.origin`.
fn listener_of<S: nanasqlite::storage::Storage>(store: &NanaSQLite<S>) -> nanasqlite::Result<String> {
    let origin: String =
        store.fetch_one("SELECT current_setting('nanasqlite.origin') AS origin", [])?.unwrap().get("origin")?;
    Ok(format!("nanasqlite-listen-{origin}"))
}

#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_listener_losing_its_connection_empties_the_cache_and_reconnects() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new(
        "postgres_listener_losing_its_connection_empties_the_cache_and_reconnects",
        common::TEST_LIMIT,
    );
    let schema = Schema::new();
    let writer = NanaSQLite::postgres(&schema.url).open()?;
    let reader = NanaSQLite::postgres(&schema.url).open()?;
    writer.set("k", &1)?;
    assert_eq!(reader.get::<i64>("k")?, Some(1));
    let listener = listener_of(&reader)?;
    let killed = schema
        .raw()
        .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", &[&listener])
        .unwrap();
    assert_eq!(killed.len(), 1, "the reader's listener was found");
    wait_until("the cache to be emptied", STALENESS * 2, || !reader.is_cached("k"));
    let _watchdog = Watchdog::new("the listener reconnecting", Duration::from_secs(60));
    wait_until("the listener to reconnect", Duration::from_secs(30), || {
        schema
            .raw()
            .query("SELECT 1 FROM pg_stat_activity WHERE application_name = $1", &[&listener])
            .is_ok_and(|rows| rows.len() == 1)
    });
    assert_eq!(reader.get::<i64>("k")?, Some(1));
    writer.set("k", &2)?;
    wait_until("the reconnected listener to hear a write", STALENESS, || !reader.is_cached("k"));
    assert_eq!(reader.get::<i64>("k")?, Some(2));
    Ok(())
}

/// Two processes, each with its own store and cache, increment one counter 1,000 times each.
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_two_processes_increment_one_counter() {
    let _watchdog = common::Watchdog::new("postgres_two_processes_increment_one_counter", common::TEST_LIMIT);
    if let Some(schema) = child_role() {
        let schema = Schema::named(&schema, false);
        let db = NanaSQLite::postgres(&schema.url).open().unwrap();
        for _ in 0..1000 {
            db.increment::<i64>("counter", 1, None).unwrap();
        }
        db.close().unwrap();
        return;
    }
    let schema = Schema::new();
    let db = NanaSQLite::postgres(&schema.url).open().unwrap();
    assert_eq!(db.get::<i64>("counter").unwrap(), None, "cached as absent before the children write");
    let children: Vec<_> = (0..2)
        .map(|_| child("postgres_two_processes_increment_one_counter", &schema.name).spawn().expect("a child starts"))
        .collect();
    for mut process in children {
        assert!(common::wait_for_exit(&mut process, Duration::from_secs(120)).success(), "a child failed");
    }
    wait_until("the children's increments to reach this cache", STALENESS, || !db.is_cached("counter"));
    assert_eq!(db.get::<i64>("counter").unwrap(), Some(2000), "no increment was lost");
}

macro_rules! on_every_runtime_with_postgres {
    ($name:ident) => {
        mod $name {
            #[test]
            #[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
            fn postgres_tokio_current_thread() {
                let schema = super::Schema::new();
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(super::$name(schema.url.clone()));
            }

            #[test]
            #[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
            fn postgres_tokio_multi_thread() {
                let schema = super::Schema::new();
                let runtime =
                    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
                runtime.block_on(super::$name(schema.url.clone()));
            }

            #[cfg(feature = "smol")]
            #[test]
            #[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
            fn postgres_smol() {
                let schema = super::Schema::new();
                ::smol::block_on(super::$name(schema.url.clone()));
            }

            #[cfg(feature = "async-std")]
            #[test]
            #[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
            fn postgres_async_std() {
                let schema = super::Schema::new();
                ::async_std::task::block_on(super::$name(schema.url.clone()));
            }

            #[test]
            #[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
            fn postgres_futures_block_on() {
                let schema = super::Schema::new();
                futures::executor::block_on(super::$name(schema.url.clone()));
            }
        }
    };
}

on_every_runtime_with_postgres!(the_async_store_on_postgres);

/// The async store on PostgreSQL, on the runtime running it (the schema is made outside it:
/// the raw client the test uses must not run on a runtime's thread, as the store never does).
async fn the_async_store_on_postgres(url: String) {
    let _watchdog = Watchdog::new("the async store on PostgreSQL", Duration::from_secs(120));
    let db = AsyncNanaSQLite::postgres(&url).read_pool_size(2).open().await.unwrap();
    let other = AsyncNanaSQLite::postgres(&url).tls(postgres::NoTls).open().await.unwrap();
    db.set("a", &json!({"n": 1})).await.unwrap();
    db.clear_cache();
    assert_eq!(db.get::<Value>("a").await.unwrap(), Some(json!({"n": 1})));
    let writes = (0..100).map(|i| db.set(&format!("w{i:03}"), &i));
    assert!(futures::future::join_all(writes).await.iter().all(Result::is_ok));
    assert!(db.stats().largest_write_group >= 1);
    db.clear_cache();
    let reads = futures::future::join_all((0..100).map(|i| db.get::<i64>(&format!("w{i:03}")))).await;
    assert!(reads.into_iter().enumerate().all(|(i, read)| read.unwrap() == Some(i as i64)));
    let increments = (0..50).map(|_| other.increment::<i64>("n", 1, None));
    let more = (0..50).map(|_| db.increment::<i64>("n", 1, None));
    let (a, b) = futures::future::join(futures::future::join_all(increments), futures::future::join_all(more)).await;
    assert!(a.iter().chain(b.iter()).all(Result::is_ok));
    assert_eq!(other.get_fresh::<i64>("n").await.unwrap(), Some(100));
    db.batch_update([("x", 1), ("y", 2)]).await.unwrap();
    assert_eq!(db.len().await.unwrap(), 104);
    let tx = db.transaction(|tx| {
        tx.set("t", &1)?;
        tx.delete("x")
    });
    assert!(tx.await.unwrap());
    assert_eq!(other.get_fresh::<i64>("t").await.unwrap(), Some(1));
    db.close().await.unwrap();
    other.close().await.unwrap();
}

/// `hook::unique` cannot be raced by two processes: each round, two children write different
/// keys with the same email at once, and exactly one of them wins. The check takes a lock on
/// the value inside the write's transaction and looks it up through an index.
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_unique_field_holds_between_two_processes() {
    let _watchdog = common::Watchdog::new("postgres_unique_field_holds_between_two_processes", common::TEST_LIMIT);
    use std::io::{BufRead, Write};
    const ROUNDS: usize = 200;
    if let Some(role) = child_role() {
        let (schema, id) = role.split_once('|').unwrap();
        let schema = Schema::named(schema, false);
        let db = NanaSQLite::postgres(&schema.url).hook(hook::unique("email")).open().unwrap();
        println!("ready");
        for line in std::io::stdin().lock().lines() {
            let round = line.unwrap();
            let outcome = match db.set(&format!("{id}-{round}"), &json!({"email": format!("e{round}@x")})) {
                Ok(()) => "won".to_owned(),
                Err(error) if error.is_refused() => "lost".to_owned(),
                Err(error) => format!("error {error}"),
            };
            println!("{outcome} {round}");
        }
        return;
    }
    let _watchdog = Watchdog::new("the unique race between two processes", Duration::from_secs(240));
    let schema = Schema::new();
    // The table and its index exist before the children race to create them.
    NanaSQLite::postgres(&schema.url).hook(hook::unique("email")).open().unwrap();
    let mut children: Vec<_> = (0..2)
        .map(|id| {
            let mut process =
                child("postgres_unique_field_holds_between_two_processes", &format!("{}|c{id}", schema.name))
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .expect("a child starts");
            let answers = common::lines_of(process.stdout.take().unwrap());
            (process, answers)
        })
        .collect();
    for (_, answers) in &children {
        // The test harness's own lines come first; the child's "ready" ends the line naming it.
        while !answers.recv_timeout(Duration::from_secs(60)).expect("the child opened its store").ends_with("ready") {}
    }
    let answer = |answers: &std::sync::mpsc::Receiver<String>| loop {
        let line = answers.recv_timeout(Duration::from_secs(60)).expect("the child answers");
        if line.starts_with("won") || line.starts_with("lost") || line.starts_with("error") {
            return line;
        }
    };
    for round in 0..ROUNDS {
        for (process, _) in &mut children {
            writeln!(process.stdin.as_mut().unwrap(), "{round}").unwrap();
        }
        let outcomes: Vec<String> = children.iter().map(|(_, answers)| answer(answers)).collect();
        let won = outcomes.iter().filter(|outcome| outcome.starts_with("won")).count();
        assert_eq!(won, 1, "round {round}: exactly one writer of the email wins: {outcomes:?}");
    }
    for (mut process, _) in children {
        drop(process.stdin.take());
        assert!(common::wait_for_exit(&mut process, Duration::from_secs(60)).success());
    }
    let rows = schema.raw().query_one("SELECT count(*), count(DISTINCT value) FROM data", &[]).unwrap();
    assert_eq!((rows.get::<_, i64>(0), rows.get::<_, i64>(1)), (ROUNDS as i64, ROUNDS as i64));
}

/// A unique field is looked up through an index on PostgreSQL too: numbers by value, strings
/// exactly, rows that are not JSON ignored; objects and arrays refused.
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_unique_field_is_one_index_lookup() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("postgres_unique_field_is_one_index_lookup", common::TEST_LIMIT);
    let schema = Schema::new();
    let db = NanaSQLite::postgres(&schema.url).open()?;
    schema
        .raw()
        .batch_execute("INSERT INTO data (key, value) VALUES ('junk', 'not json'), ('nan', '{\"email\": NaN}')")
        .unwrap();
    db.add_hook(hook::unique("email"))?;
    db.set("a", &json!({"email": 1}))?;
    assert!(db.set("b", &json!({"email": 1.0})).unwrap_err().is_refused(), "1 and 1.0 are one value");
    db.set("b", &json!({"email": "1"}))?;
    assert!(matches!(db.set("c", &json!({"email": {"x": 1}})), Err(Error::Validation { .. })));
    // The lookup the check runs, spelled as the store spells it, goes through the index.
    let mut raw = schema.raw();
    raw.batch_execute("SET enable_seqscan = off").unwrap();
    let plan: Vec<String> = raw
        .query("EXPLAIN SELECT key FROM data WHERE (nanasqlite_json(value) #> '{\"email\"}') = '1'::text::jsonb", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(plan.iter().any(|step| step.contains("data_by_email")), "{plan:?}");
    Ok(())
}

/// Table names up to PostgreSQL's 63 bytes keep coherent caches (their triggers' names no
/// longer collide when PostgreSQL cuts long names), longer ones are refused whole, and a unique
/// field's index on a long table gets a name that fits.
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_long_table_names_fit_or_are_refused() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("postgres_long_table_names_fit_or_are_refused", common::TEST_LIMIT);
    let schema = Schema::new();
    for length in [50, 51, 63] {
        let name = format!("t{}", "x".repeat(length - 1));
        let writer = NanaSQLite::postgres(&schema.url).table(&name).hook(hook::unique("email_address")).open()?;
        let reader = NanaSQLite::postgres(&schema.url).table(&name).open()?;
        for (step, write) in ["insert", "update", "delete"].into_iter().enumerate() {
            cache(&reader, "k");
            match write {
                "delete" => drop(writer.delete("k")?),
                _ => writer.set("k", &json!({"step": step}))?,
            }
            wait_until(&format!("{length}: the {write} to reach the other cache"), STALENESS, || {
                !reader.is_cached("k")
            });
        }
        let triggers = schema
            .raw()
            .query_one(
                &format!("SELECT count(*) FROM pg_trigger WHERE tgrelid = '\"{name}\"'::regclass AND NOT tgisinternal"),
                &[],
            )
            .unwrap()
            .get::<_, i64>(0);
        assert_eq!(triggers, 4, "{length}: four triggers survive");
        writer.set("u1", &json!({"email_address": "a@x"}))?;
        assert!(writer.set("u2", &json!({"email_address": "a@x"})).unwrap_err().is_refused(), "{length}");
    }
    let long = format!("t{}", "x".repeat(63));
    let other = format!("t{}y", "x".repeat(62));
    for name in [&long, &other] {
        let error = NanaSQLite::postgres(&schema.url).table(name.as_str()).open().unwrap_err();
        assert!(matches!(error, Error::Validation { .. }) && error.to_string().contains("63"), "{error}");
    }
    Ok(())
}

/// The filter that ignores a store's own notices survives its session reconnecting: after the
/// writer's connection is terminated, its own writes stay in its cache (their notices carry the
/// store's token, not a server process id that changed), and another client's writes still
/// reach it.
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_own_notices_are_known_after_a_reconnect() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("postgres_own_notices_are_known_after_a_reconnect", common::TEST_LIMIT);
    let schema = Schema::new();
    let store = NanaSQLite::postgres(&schema.url).open()?;
    let other = NanaSQLite::postgres(&schema.url).open()?;
    let pid: i64 = store.fetch_one("SELECT pg_backend_pid()::bigint AS pid", [])?.unwrap().get("pid")?;
    let terminated: bool =
        schema.raw().query_one("SELECT pg_terminate_backend($1::int)", &[&(pid as i32)]).unwrap().get(0);
    assert!(terminated, "the store's connection was terminated");
    let _watchdog = Watchdog::new("the reconnect", Duration::from_secs(60));
    wait_until("the store to reconnect and write", Duration::from_secs(30), || store.set("own", &1).is_ok());
    let new_pid: i64 = store.fetch_one("SELECT pg_backend_pid()::bigint AS pid", [])?.unwrap().get("pid")?;
    assert_ne!(new_pid, pid, "a new session");
    store.set("own", &2)?;
    cache(&store, "marker");
    other.set("marker", &1)?;
    wait_until("the other client's write to reach the store", STALENESS, || !store.is_cached("marker"));
    // Notices arrive in commit order: the store's own write's notice came before the marker's.
    assert!(store.is_cached("own"), "the store's own write was taken for another client's");
    other.set("own", &3)?;
    wait_until("the other client's write of the same key to reach the store", STALENESS, || !store.is_cached("own"));
    assert_eq!(store.get::<i64>("own")?, Some(3));
    Ok(())
}

/// Held writes reach the server as escape-string literals, read the same whatever the
/// session's `standard_conforming_strings`: a key and value full of backslashes and quotes
/// are stored as they are.
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_writes_survive_standard_conforming_strings_off() -> nanasqlite::Result<()> {
    let _watchdog =
        common::Watchdog::new("postgres_writes_survive_standard_conforming_strings_off", common::TEST_LIMIT);
    let schema = Schema::new();
    let db = NanaSQLite::postgres(&schema.url).open()?;
    db.execute("SET standard_conforming_strings = off", [])?;
    let key = r"back\slash 'quote' \' \\";
    db.set(key, &r"value \n 'q' \\")?;
    let sealed = NanaSQLite::postgres(&schema.url).table("sealed").encryption(Encryption::chacha20([4; 32])?).open()?;
    sealed.execute("SET standard_conforming_strings = off", [])?;
    sealed.set(key, &"secret")?;
    let row = schema.raw().query_one("SELECT key, value FROM data", &[]).unwrap();
    assert_eq!((row.get::<_, String>(0).as_str(), row.get::<_, String>(1).as_str()), (key, r#""value \\n 'q' \\\\""#));
    sealed.clear_cache();
    assert_eq!(sealed.get::<String>(key)?.as_deref(), Some("secret"), "the sealed bytes came through whole");
    Ok(())
}

/// Concurrent writes of the async store share commits on PostgreSQL: counted on the server,
/// by the transactions that wrote the rows (each row's `xmin`), fewer than the writes.
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_concurrent_writes_share_commits() {
    let _watchdog = common::Watchdog::new("postgres_concurrent_writes_share_commits", common::TEST_LIMIT);
    let schema = Schema::new();
    let db = futures::executor::block_on(AsyncNanaSQLite::postgres(&schema.url).open()).unwrap();
    // Held back behind a transaction, the writes queue together.
    let writes = futures::executor::block_on(async {
        let held = db.begin().await.unwrap();
        let writes: Vec<_> = (0..100).map(|i| db.set(&format!("w{i:03}"), &i)).collect();
        let all = futures::future::join_all(writes);
        let release = async {
            common::YieldNow(false).await;
            held.commit().await
        };
        futures::future::join(all, release).await
    });
    assert!(writes.0.iter().all(Result::is_ok));
    writes.1.unwrap();
    let stats = db.stats();
    let commits: i64 =
        schema.raw().query_one("SELECT count(DISTINCT xmin::text) FROM data WHERE key LIKE 'w%'", &[]).unwrap().get(0);
    assert!(stats.largest_write_group > 1, "{stats:?}");
    assert!(commits < 100 && commits as u64 <= stats.write_groups, "100 writes in {commits} commits ({stats:?})");
    futures::executor::block_on(db.close()).unwrap();
}

/// What the README says of PostgreSQL and no test held it to: backup and restore are
/// unsupported; text holding NUL is refused clearly; inline reads stay off; patches of one key
/// by two clients at once lose no field.
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_keeps_its_other_promises() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("postgres_keeps_its_other_promises", common::TEST_LIMIT);
    let schema = Schema::new();
    let db = NanaSQLite::postgres(&schema.url).open()?;
    for refused in [db.backup("/tmp/never.db"), db.restore("/tmp/never.db")] {
        assert!(matches!(refused, Err(Error::Unsupported { backend: "postgres", .. })), "{refused:?}");
    }
    let error = db.set("nul\0key", &"v").unwrap_err();
    assert!(matches!(error, Error::Validation { .. }) && error.to_string().contains("NUL"), "{error}");
    assert_eq!(db.get::<String>("nul\0key")?, None, "a key PostgreSQL cannot hold is absent");
    db.set("k", &"nul\0value")?; // JSON text escapes it: \u0000
    db.clear_cache();
    assert_eq!(db.get::<String>("k")?.as_deref(), Some("nul\0value"));
    db.create_table("notes", &[("body", "TEXT")])?;
    let error = db.sql_insert("notes", &json!({"body": "nul\0body"})).unwrap_err();
    assert!(error.to_string().contains("NUL"), "a SQL helper's text with NUL is refused clearly: {error}");

    futures::executor::block_on(async {
        let adb = AsyncNanaSQLite::postgres(&schema.url).with(|builder| builder.inline_reads(true)).open().await?;
        adb.set("cold", &1).await?;
        for _ in 0..20 {
            adb.clear_cache();
            assert_eq!(adb.get::<i64>("cold").await?, Some(1));
        }
        assert_eq!(adb.stats().inline_reads, 0, "no read ran on a caller's thread");
        adb.close().await
    })?;

    db.set("shared", &json!({}))?;
    let other = NanaSQLite::postgres(&schema.url).open()?;
    std::thread::scope(|scope| {
        for (store, prefix) in [(&db, "a"), (&other, "b")] {
            scope.spawn(move || {
                for i in 0..50 {
                    store.patch("shared", &json!({ format!("{prefix}{i}"): i }), false).unwrap();
                }
            });
        }
    });
    let merged: Value = other.get_fresh("shared")?.unwrap();
    assert_eq!(merged.as_object().map(serde_json::Map::len), Some(100), "no patch was lost: {merged}");
    Ok(())
}

/// A store opened from a `postgres://` URL (the backend chosen at run time) reads and writes
/// the server as one opened with `postgres(url)` does, on both stores and through one helper
/// generic over the backend, and shows no password as its path. Also passes the conformance
/// suite as `AnyStorage`.
#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn a_postgres_url_opens_the_server_through_any_storage() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("a_postgres_url_opens_the_server_through_any_storage", common::TEST_LIMIT);
    let schema = Schema::new();
    let options = nanasqlite::storage::ConnectionOptions::default();
    nanasqlite::storage::conformance::check(|| nanasqlite::AnyStorage::connect(&schema.url, &options));
    fn count<S: nanasqlite::storage::Storage>(db: &NanaSQLite<S>) -> nanasqlite::Result<usize> {
        db.len()
    }
    let db = NanaSQLite::builder(&schema.url).table("by_url").open_url()?;
    db.set("k", &json!({"v": 1}))?;
    let direct = NanaSQLite::postgres(&schema.url).table("by_url").open()?;
    assert_eq!(direct.get::<Value>("k")?, Some(json!({"v": 1})), "the same table as postgres(url) opens");
    assert_eq!((count(&db)?, count(&direct)?), (1, 1), "one helper takes either");
    let shown = db.path().display().to_string();
    assert!(shown.starts_with("postgres://") && !shown.contains("password"), "{shown}");
    let asynchronous = futures::executor::block_on(async {
        let db = AsyncNanaSQLite::builder(&schema.url).table("by_url").open_url().await?;
        db.set("a", &2).await?;
        let got = db.get::<i32>("a").await?;
        db.close().await?;
        Ok::<_, Error>(got)
    })?;
    assert_eq!(asynchronous, Some(2));
    assert_eq!(direct.get_fresh::<i32>("a")?, Some(2));
    Ok(())
}
