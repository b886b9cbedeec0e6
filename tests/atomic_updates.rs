//! `increment` and `patch`: their semantics, and atomicity across threads and processes.

use std::process::Stdio;

use nanasqlite::{Error, NanaSQLite};
use serde_json::{Value, json};

mod common;

#[test]
fn increment_semantics() -> nanasqlite::Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    assert_eq!(db.increment::<Value>("n", 2, None)?, json!(2), "a missing key starts from 0");
    assert_eq!(db.increment::<Value>("n", 3, None)?, json!(5), "integers stay integers");
    assert_eq!(db.increment::<Value>("n", -1, None)?, json!(4));
    assert_eq!(db.increment::<Value>("n", 0.5, None)?, json!(4.5));
    assert_eq!(db.get::<f64>("n")?, Some(4.5), "the cache holds the new value");
    assert_eq!(db.get_fresh::<f64>("n")?, Some(4.5));
    db.set("page", &json!({"hits": 1, "title": "home"}))?;
    assert_eq!(db.increment::<Value>("page", 2, Some("hits"))?, json!({"hits": 3, "title": "home"}));
    assert_eq!(db.increment::<Value>("new", 1, Some("hits"))?, json!({"hits": 1}));
    for (key, value) in [("flag", json!(true)), ("none", Value::Null), ("text", json!("5")), ("list", json!([1]))] {
        db.set(key, &value)?;
        assert!(matches!(db.increment::<Value>(key, 1, None), Err(Error::Validation { .. })), "{key}");
        assert_eq!(db.get_fresh::<Value>(key)?, Some(value), "nothing written for {key}");
    }
    assert!(matches!(db.increment::<Value>("n", f64::INFINITY, None), Err(Error::Validation { .. })));
    db.set("big", &f64::MAX)?;
    assert!(
        matches!(db.increment::<Value>("big", f64::MAX, None), Err(Error::Validation { .. })),
        "a result must be finite"
    );
    assert!(matches!(db.increment::<Value>("list", 1, Some("x")), Err(Error::Validation { .. })));
    Ok(())
}

#[test]
fn patch_semantics() -> nanasqlite::Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    assert!(matches!(db.patch("user", &json!({"a": 1}), false), Err(Error::NotFound { .. })));
    assert_eq!(
        db.patch("user", &json!({"nested": {"a": 1}, "keep": 1}), true)?,
        json!({"nested": {"a": 1}, "keep": 1})
    );
    assert_eq!(db.patch("user", &json!({"nested": {"b": 2}}), false)?, json!({"nested": {"b": 2}, "keep": 1}));
    assert_eq!(db.get::<Value>("user")?.unwrap()["nested"], json!({"b": 2}));
    assert!(matches!(db.patch("user", &json!([1]), false), Err(Error::Validation { .. })));
    db.set("n", &1)?;
    assert!(matches!(db.patch("n", &json!({"a": 1}), false), Err(Error::Validation { .. })));
    Ok(())
}

#[test]
fn threads_increment_without_losing_updates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("threads.db");
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let path = path.clone();
            // Each thread opens its own store: separate connections, as separate processes would.
            scope.spawn(move || {
                let db = NanaSQLite::open(path).unwrap();
                (0..250).for_each(|_| drop(db.increment::<Value>("counter", 1, None).unwrap()));
            });
        }
    });
    assert_eq!(NanaSQLite::open(&path).unwrap().get::<i64>("counter").unwrap(), Some(1000));
}

/// The child of the test below: 1,000 increments.
fn increment_a_thousand_times(path: &std::ffi::OsStr) {
    let db = NanaSQLite::open(path).unwrap();
    for _ in 0..1000 {
        db.increment::<Value>("counter", 1, None).unwrap();
        db.patch("last", &json!({"pid": std::process::id()}), true).unwrap();
    }
}

#[test]
fn two_processes_increment_to_2000() {
    if common::child_role().is_some() {
        return increment_a_thousand_times(&std::env::var_os("NANASQLITE_INCREMENT_DB").unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("processes.db");
    NanaSQLite::open(&path).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            common::child("two_processes_increment_to_2000", "increment")
                .env("NANASQLITE_INCREMENT_DB", &path)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(common::wait_for_exit(&mut child, std::time::Duration::from_secs(120)).success());
    }
    assert_eq!(NanaSQLite::open(&path).unwrap().get::<i64>("counter").unwrap(), Some(2000));
}

/// `increment_from`: a missing key or field starts at the value given (Python's `default=`),
/// a stored one goes on from itself, and a start that is not finite writes nothing; the async
/// store takes the same call.
#[test]
fn increment_from_starts_a_missing_number_where_asked() -> nanasqlite::Result<()> {
    let db = NanaSQLite::open(":memory:")?;
    assert_eq!(db.increment_from::<i64>("stock", -1, None, 10)?, 9);
    assert_eq!(db.increment_from::<i64>("stock", -1, None, 10)?, 8, "stored: the start is not used");
    assert_eq!(db.increment::<i64>("other", 1, None)?, 1, "increment still starts at 0");
    db.set("user", &json!({"name": "Ann"}))?;
    let user: Value = db.increment_from("user", 2, Some("visits"), 100)?;
    assert_eq!(user, json!({"name": "Ann", "visits": 102}));
    assert_eq!(db.increment_from::<f64>("ratio", 0.25, None, 0.5)?, 0.75);
    let error = db.increment_from::<f64>("bad", 1, None, f64::INFINITY).unwrap_err();
    assert!(matches!(error, Error::Validation { .. }), "{error}");
    assert_eq!(db.get::<Value>("bad")?, None, "nothing written");

    futures::executor::block_on(async {
        let db = nanasqlite::AsyncNanaSQLite::open(":memory:").await?;
        assert_eq!(db.increment_from::<i64>("stock", 5, None, 10).await?, 15);
        assert_eq!(db.increment_from::<i64>("stock", 5, None, 10).await?, 20);
        db.close().await
    })
}
