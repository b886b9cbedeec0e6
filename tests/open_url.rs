//! A store whose backend is chosen at run time from a URL (`NanaSQLite<AnyStorage>`): the same
//! file and behaviour as a store opened on the path, on both stores; bad URLs refused clearly.
//! (`tests/postgres.rs` opens a `postgres://` URL.)

use std::path::Path;

use nanasqlite::storage::Storage;
use nanasqlite::{AnyStorage, AsyncNanaSQLite, Error, NanaSQLite, Query, params};

mod common;

use common::Setup;

/// A helper a program writes once for every backend.
fn total<S: Storage>(db: &NanaSQLite<S>) -> nanasqlite::Result<i64> {
    db.values::<i64>().map(|values| values.iter().sum())
}

fn url_of(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

#[test]
fn a_sqlite_url_opens_the_file_as_its_path_does() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url.db");
    let db: NanaSQLite<AnyStorage> = NanaSQLite::builder(url_of(&path)).table("users").open_url()?;
    assert_eq!(db.path(), path, "the store's path is the file");
    db.batch_update([("a", 1), ("b", 2)])?;
    db.transaction(|tx| tx.set("c", &3))?;
    assert_eq!(db.count(Query::table("users").filter("key > ?", params!["a"]))?, 2, "the SQL helpers");
    let by_path = NanaSQLite::builder(&path).table("users").open()?;
    assert_eq!(by_path.get::<i64>("c")?, Some(3), "the same file and table");
    assert_eq!((total(&db)?, total(&by_path)?), (6, 6), "one generic helper takes both");
    db.backup(dir.path().join("copy.db"))?;
    assert_eq!(NanaSQLite::builder(dir.path().join("copy.db")).table("users").open()?.len()?, 3);
    db.close()?;

    let memory = NanaSQLite::open_url("sqlite::memory:")?;
    memory.set("k", &1)?;
    assert_eq!(memory.get::<i64>("k")?, Some(1));
    Ok(())
}

#[test]
fn bad_urls_are_refused_before_anything_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("never.db");
    let with_query = format!("{}?mode=ro", url_of(&file));
    for url in ["", "app.db", "mysql://localhost/db", "sqlite://", with_query.as_str(), "file:app.db"] {
        let error = NanaSQLite::open_url(url).unwrap_err();
        assert!(matches!(error, Error::Validation { .. }), "{url:?}: {error}");
        let error = futures::executor::block_on(AsyncNanaSQLite::open_url(url)).unwrap_err();
        assert!(matches!(error, Error::Validation { .. }), "{url:?}: {error}");
    }
    assert!(!file.exists(), "nothing was created");
    let error = NanaSQLite::builder(url_of(&file)).table("a; DROP TABLE data").open_url().unwrap_err();
    assert!(matches!(error, Error::Validation { .. }), "{error}");
    assert!(!file.exists(), "options are checked before the file is opened");
    #[cfg(not(feature = "postgres"))]
    {
        let error = NanaSQLite::open_url("postgres://localhost/db").unwrap_err();
        assert!(error.to_string().contains("`postgres` feature"), "{error}");
    }
}

on_every_runtime!(the_async_store_opens_a_url_with_inline_reads_and_writes);

async fn the_async_store_opens_a_url_with_inline_reads_and_writes(setup: Setup) {
    let url = url_of(&setup.path);
    let db = (setup.adapt)(AsyncNanaSQLite::builder(&url)).inline_writes(true).open_url().await.unwrap();
    assert_eq!(db.path(), setup.path);
    for i in 0..20 {
        db.set(&format!("k{i}"), &i).await.unwrap();
    }
    db.clear_cache();
    assert_eq!(db.get::<i64>("k7").await.unwrap(), Some(7));
    let stats = db.stats();
    assert!(stats.inline_writes > 0 && stats.inline_reads > 0, "SQLite behind AnyStorage runs inline: {stats:?}");
    assert_eq!(db.count(Query::table("data")).await.unwrap(), 20, "the SQL helpers");
    db.close().await.unwrap();
    assert_eq!(total(&NanaSQLite::open(&setup.path).unwrap()).unwrap(), (0..20).sum::<i64>());
}
