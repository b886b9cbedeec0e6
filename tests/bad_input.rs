//! Bad input gets a clear error, and nothing changes (attack corpus of the Python library).

use std::collections::HashMap;
use std::path::Path;

use nanasqlite::{Error, NanaSQLite};
use serde_json::{Value, json};

mod common;

/// Table names from the Python library's tests and proofs of concept, plus the cases where
/// its check was looser than ours (non-ASCII, a trailing newline, quotes).
const BAD_NAMES: &[&str] = &[
    "data; DROP TABLE data--",
    "data; DROP TABLE data; --",
    "data (key TEXT PRIMARY KEY, value TEXT); DROP TABLE users; --",
    "test; DROP TABLE users--",
    "id; DROP TABLE",
    "idx; DROP TABLE test--",
    "",
    "usérs",
    "テーブル",
    "users\n",
    "\"users\"",
    "users\"; DROP TABLE users; --",
    "'users'",
    "user`s",
    "[users]",
    "9lives",
    "sqlite_master",
];

fn tables(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut statement = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").unwrap();
    statement.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

#[test]
fn bad_table_names_are_rejected_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attack.db");
    let users = NanaSQLite::builder(&path).table("users").open().unwrap();
    users.set("alice", &1).unwrap();
    for name in BAD_NAMES {
        let opened = NanaSQLite::builder(&path).table(*name).open();
        assert!(matches!(opened, Err(Error::Validation { .. })), "open accepted {name:?}");
        assert!(matches!(users.table(name), Err(Error::Validation { .. })), "table() accepted {name:?}");
    }
    assert_eq!(tables(&path), ["users"]);
    assert_eq!(users.get::<i32>("alice").unwrap(), Some(1), "the users table survives");
}

#[test]
fn a_bad_name_does_not_even_create_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("never.db");
    assert!(NanaSQLite::builder(&path).table("a;b").open().is_err());
    assert!(!path.exists());
}

#[test]
fn unencodable_values_name_the_key_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = NanaSQLite::open(dir.path().join("t.db")).unwrap();
    let bad: HashMap<(i32, i32), i32> = HashMap::from([((1, 2), 3)]);
    let error = db.set("bad", &bad).unwrap_err();
    assert!(matches!(&error, Error::Encode { key, .. } if key == "bad"), "{error:?}");
    assert!(!db.contains("bad").unwrap());

    let mixed: Vec<(&str, &dyn erased::Value)> = vec![("ok1", &1), ("bad", &bad), ("ok2", &2)];
    let error = db.batch_update(mixed.iter().map(|(k, v)| (*k, erased::Wrap(*v)))).unwrap_err();
    assert!(matches!(&error, Error::Encode { key, .. } if key == "bad"), "{error:?}");
    assert_eq!(db.len().unwrap(), 0, "nothing of the batch is written");
    assert!(!db.is_cached("ok1"));
}

/// A tiny type-erased `Serialize`, to put good and bad values in one batch.
mod erased {
    use serde::{Serialize, Serializer};

    pub(crate) trait Value {
        fn to_json(&self) -> Result<serde_json::Value, serde_json::Error>;
    }

    impl<T: Serialize> Value for T {
        fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
            serde_json::to_value(self)
        }
    }

    pub(crate) struct Wrap<'a>(pub(crate) &'a dyn Value);

    impl Serialize for Wrap<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self.0.to_json() {
                Ok(value) => value.serialize(serializer),
                Err(error) => Err(serde::ser::Error::custom(error)),
            }
        }
    }
}

#[test]
fn rows_that_are_not_json_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.db");
    let db = NanaSQLite::open(&path).unwrap();
    db.set("good", &json!({"a": 1})).unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch(
            "INSERT INTO data VALUES ('broken', '{not json');
             INSERT INTO data VALUES ('blob', x'00ff');
             INSERT INTO data VALUES ('number', 42);
             INSERT INTO data VALUES ('nothing', NULL);",
        )
        .unwrap();
    for key in ["broken", "blob"] {
        let error = db.get::<Value>(key).unwrap_err();
        assert!(matches!(&error, Error::Decode { key: k, .. } if k == key), "{error:?}");
    }
    assert_eq!(db.get::<Value>("good").unwrap(), Some(json!({"a": 1})));
    assert_eq!(db.get::<i64>("number").unwrap(), Some(42));
    assert_eq!(db.get::<Value>("nothing").unwrap(), Some(Value::Null));
    assert_eq!(db.keys().unwrap().len(), 5);
    let found = db.batch_get::<Value>(["good", "number"]).unwrap();
    assert_eq!(found.len(), 2);
    assert!(matches!(db.values::<Value>(), Err(Error::Decode { .. })));
    assert_eq!(db.get::<Value>("good").unwrap(), Some(json!({"a": 1})), "still fine after a failed scan");
}

#[test]
fn a_file_that_is_not_sqlite_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not.db");
    std::fs::write(&path, b"this is not a sqlite database, just some text padding it out ......").unwrap();
    for optimize in [true, false] {
        let error = NanaSQLite::builder(&path).optimize(optimize).open().unwrap_err();
        assert!(matches!(error, Error::Open { .. }), "{error:?}");
    }
    assert_eq!(std::fs::read(&path).unwrap()[..4], *b"this", "the file is left alone");
}

#[test]
fn unopenable_paths_are_open_errors() {
    let dir = tempfile::tempdir().unwrap();
    for path in [dir.path().to_path_buf(), dir.path().join("missing/dir/x.db")] {
        let error = NanaSQLite::open(&path).unwrap_err();
        assert!(matches!(error, Error::Open { .. }), "{path:?}: {error:?}");
    }
}

/// Run as root (as CI is), the test runs itself again as the unprivileged user `nobody`
/// (uid 65534), for whom a read-only directory is read-only.
#[cfg(unix)]
#[test]
fn a_read_only_directory_is_an_open_error() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(locked.join("probe"), b"").is_ok() {
        assert!(common::child_role().is_none(), "the unprivileged child can write a read-only directory");
        // Root writes anywhere: the check runs again as the user nobody. The test binary may sit
        // in a folder nobody cannot enter (a checkout under /root, a 0700 temp dir), so the
        // child runs from a copy in a folder of its own that nobody can read.
        let reachable = tempfile::tempdir().unwrap();
        std::fs::set_permissions(reachable.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let binary = reachable.path().join("bad_input");
        std::fs::copy(std::env::current_exe().unwrap(), &binary).unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        let template = common::child("a_read_only_directory_is_an_open_error", "unprivileged");
        let mut child = std::process::Command::new(&binary)
            .args(template.get_args())
            .envs(template.get_envs().filter_map(|(name, value)| Some((name, value?))))
            .current_dir(reachable.path())
            .uid(65534)
            .gid(65534)
            .env("TMPDIR", std::env::temp_dir())
            .spawn()
            .expect("a child process as the user nobody");
        let status = common::wait_for_exit(&mut child, std::time::Duration::from_secs(60));
        assert!(status.success(), "the unprivileged run failed: {status:?}");
        return;
    }
    let error = NanaSQLite::open(locked.join("x.db")).unwrap_err();
    assert!(matches!(error, Error::Open { .. }), "{error:?}");
}

#[test]
fn non_finite_floats_are_written_as_null() {
    let db = NanaSQLite::open(":memory:").unwrap();
    db.set("nan", &f64::NAN).unwrap();
    db.clear_cache();
    assert_eq!(db.get::<Value>("nan").unwrap(), Some(Value::Null));
}
