//! Encryption at rest: every mode on both stores, values sealed in the file, failures for
//! their key alone, key rotation (also under SIGKILL), and files shared with Python
//! NanaSQLite 1.6.2 both ways.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nanasqlite::{AsyncNanaSQLite, Encryption, Error, NanaSQLite, Query, params};
use serde_json::{Map, Value, json};

mod common;

const FERNET_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

/// Each mode, named, with the key as Python is given it (hex bytes, or Fernet's base64).
fn modes() -> Vec<(&'static str, String, Encryption)> {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    vec![
        ("aes-gcm", hex(&[0x11; 16]), Encryption::aes_gcm([0x11; 16]).unwrap()),
        ("aes-gcm", hex(&[0x22; 24]), Encryption::aes_gcm([0x22; 24]).unwrap()),
        ("aes-gcm", hex(&[0x33; 32]), Encryption::aes_gcm([0x33; 32]).unwrap()),
        ("chacha20", hex(&[0x44; 32]), Encryption::chacha20([0x44; 32]).unwrap()),
        ("fernet", FERNET_KEY.to_owned(), Encryption::fernet(FERNET_KEY).unwrap()),
    ]
}

fn dataset() -> Map<String, Value> {
    let entries = [
        ("user:1", json!({"name": "Alice", "age": 30, "tags": ["a", "b"]})),
        ("unicode", json!("日本語 ✓")),
        ("number", json!(42)),
        ("null", Value::Null),
        ("big", json!("x".repeat(5000))),
    ];
    entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The storage class and bytes of `key`'s value in `table`, read with a plain connection.
fn raw(path: &Path, table: &str, key: &str) -> (String, Vec<u8>) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let sql = format!("SELECT typeof(value), CAST(value AS BLOB) FROM \"{table}\" WHERE key = ?1");
    conn.query_row(&sql, [key], |row| Ok((row.get(0)?, row.get(1)?))).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[test]
fn every_mode_round_trips_and_keeps_values_sealed_in_the_file() -> nanasqlite::Result<()> {
    let _watchdog =
        common::Watchdog::new("every_mode_round_trips_and_keeps_values_sealed_in_the_file", common::TEST_LIMIT);
    for (mode, _, encryption) in modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealed.db");
        let db = NanaSQLite::builder(&path).encryption(encryption.clone()).open()?;
        db.set("secret", &json!({"card": "4111-1111"}))?;
        db.table("child")?.set("inner", &"child secret")?;
        db.close()?;

        for (table, key, plaintext) in [("data", "secret", "4111-1111"), ("child", "inner", "child secret")] {
            let (class, bytes) = raw(&path, table, key);
            assert_eq!(class, "blob", "{mode}: {table} holds a BLOB");
            assert!(!contains(&bytes, plaintext.as_bytes()), "{mode}: the plaintext is not in the file");
        }
        let db = NanaSQLite::builder(&path).encryption(encryption).open()?;
        assert_eq!(db.get::<Value>("secret")?, Some(json!({"card": "4111-1111"})), "{mode}");
        assert_eq!(db.table("child")?.get::<String>("inner")?.as_deref(), Some("child secret"), "{mode}");
        let plain = NanaSQLite::open(&path)?;
        let error = plain.get::<Value>("secret").unwrap_err();
        assert!(error.to_string().contains("secret") && error.to_string().contains("encrypt"), "{error}");
    }
    Ok(())
}

#[test]
fn damaged_altered_and_foreign_values_fail_for_their_key_alone() -> nanasqlite::Result<()> {
    let _watchdog =
        common::Watchdog::new("damaged_altered_and_foreign_values_fail_for_their_key_alone", common::TEST_LIMIT);
    for (mode, _, encryption) in modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.db");
        let db = NanaSQLite::builder(&path).encryption(encryption.clone()).open()?;
        db.batch_update([("short", 1), ("altered", 2), ("intact", 3)])?;
        db.close()?;
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE data SET value = substr(value, 1, 10) WHERE key = 'short'", []).unwrap();
        let (_, mut bytes) = raw(&path, "data", "altered");
        let middle = bytes.len() / 2;
        bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
        conn.execute("UPDATE data SET value = ?1 WHERE key = 'altered'", [&bytes]).unwrap();

        let db = NanaSQLite::builder(&path).encryption(encryption).open()?;
        // A damaged value does not decrypt: a wrong-key error for that key alone (the cipher
        // cannot tell a changed value from another key's), and the store opened all the same.
        for key in ["short", "altered"] {
            let error = db.get::<i32>(key).unwrap_err();
            assert!(matches!(&error, Error::WrongKey { key: named, .. } if named == key), "{mode}: {error:?}");
        }
        assert_eq!(db.get::<i32>("intact")?, Some(3), "{mode}: other keys read normally");
        let other = || NanaSQLite::builder(&path).encryption(Encryption::chacha20([9; 32]).unwrap());
        let error = other().open().unwrap_err();
        assert!(error.is_wrong_key() && error.to_string().contains("key"), "{mode}: refused at open: {error}");
        let unchecked = other().check_key(false).open()?;
        let error = unchecked.get::<i32>("intact").unwrap_err();
        assert!(error.is_wrong_key() && error.to_string().contains("intact"), "{mode}: {error}");
    }
    Ok(())
}

#[test]
fn legacy_plaintext_rows_need_the_flag_in_aead_modes() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("legacy_plaintext_rows_need_the_flag_in_aead_modes", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.db");
    NanaSQLite::open(&path)?.set("old", &"written before encryption")?;
    let key = Encryption::aes_gcm([5; 32])?;

    let strict = NanaSQLite::builder(&path).encryption(key.clone()).open()?;
    let error = strict.get::<String>("old").unwrap_err();
    assert!(error.to_string().contains("allow_legacy_plaintext") && error.to_string().contains("old"), "{error}");
    strict.set("new", &1)?;
    assert_eq!(strict.get_fresh::<i32>("new")?, Some(1));

    let lenient = NanaSQLite::builder(&path).encryption(key).allow_legacy_plaintext(true).open()?;
    assert_eq!(lenient.get::<String>("old")?.as_deref(), Some("written before encryption"));
    lenient.set("old", &"now encrypted")?;
    assert_eq!(raw(&path, "data", "old").0, "blob", "a rewrite encrypts the row");
    Ok(())
}

#[test]
fn every_feature_works_encrypted() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("every_feature_works_encrypted", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.db");
    let key = Encryption::fernet(FERNET_KEY)?;
    let open = || NanaSQLite::builder(&path).encryption(key.clone());
    let db = open().watch_external_writes(Duration::from_millis(1)).open()?;
    db.batch_update([("a", json!(1)), ("b", json!({"n": 1}))])?;
    assert_eq!(db.increment::<i64>("a", 41, None)?, 42);
    db.patch("b", &json!({"m": 2}), false)?;
    db.transaction(|tx| tx.set("c", &"in a transaction"))?;
    db.create_table("log", &[("id", "INTEGER PRIMARY KEY"), ("m", "TEXT")])?;
    db.sql_insert("log", &json!({"m": "helpers are not encrypted"}))?;
    assert_eq!(db.query(Query::table("log").filter("m LIKE ?", params!["helpers%"]))?.len(), 1);

    let other = open().open()?;
    other.set("d", &"from another store")?;
    common::wait_until("the other store's write noticed", Duration::from_secs(10), || {
        db.get::<String>("d").unwrap().is_some()
    });

    let copy = dir.path().join("copy.db");
    db.backup(&copy)?;
    let warm = NanaSQLite::builder(&copy).encryption(key.clone()).bulk_load(true).open()?;
    assert_eq!(warm.get::<i64>("a")?, Some(42));
    assert_eq!(warm.get::<Value>("b")?, Some(json!({"n": 1, "m": 2})));
    warm.set("a", &0)?;
    db.restore(&copy)?;
    assert_eq!(db.get::<i64>("a")?, Some(0), "restored from the encrypted backup");
    assert_eq!(db.get::<String>("c")?.as_deref(), Some("in a transaction"));
    Ok(())
}

#[test]
fn the_async_store_encrypts_too() {
    let _watchdog = common::Watchdog::new("the_async_store_encrypts_too", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("async.db");
    futures::executor::block_on(async {
        let key = Encryption::chacha20([8; 32]).unwrap();
        let db = AsyncNanaSQLite::builder(&path).encryption(key.clone()).open().await.unwrap();
        let writes = futures::future::join_all((0..50).map(|i| db.set(&format!("k{i}"), &i))).await;
        writes.into_iter().for_each(|write| write.unwrap());
        db.batch_update((0..2000).map(|i| (format!("b{i}"), i))).await.unwrap();
        db.table("child").await.unwrap().set("inner", &true).await.unwrap();
        db.clear_cache();
        assert_eq!(db.get::<i32>("k7").await.unwrap(), Some(7));
        assert_eq!(db.get::<i32>("b1999").await.unwrap(), Some(1999));
        db.rekey(Encryption::aes_gcm([9; 16]).unwrap()).await.unwrap();
        assert_eq!(db.get_fresh::<i32>("k8").await.unwrap(), Some(8));
        db.close().await.unwrap();
        let wrong = AsyncNanaSQLite::builder(&path).encryption(key).open().await.unwrap_err();
        assert!(wrong.is_wrong_key(), "the key before the rotation is refused at open: {wrong}");
    });
    assert_eq!(raw(&path, "child", "inner").0, "blob");
    assert_eq!(raw(&path, "data", "b1999").0, "blob", "a batch's rows are sealed too");
    let rekeyed = NanaSQLite::builder(&path).encryption(Encryption::aes_gcm([9; 16]).unwrap()).open().unwrap();
    assert_eq!(rekeyed.table("child").unwrap().get::<bool>("inner").unwrap(), Some(true));
}

#[test]
fn rekey_rotates_every_table_of_the_file() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("rekey_rotates_every_table_of_the_file", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotate.db");
    let old = Encryption::aes_gcm([1; 32])?;
    let new = Encryption::chacha20([2; 32])?;
    let db = NanaSQLite::builder(&path).encryption(old.clone()).open()?;
    db.batch_update((0..100).map(|i| (format!("k{i}"), i)))?;
    db.table("never_opened_again")?.set("x", &"y")?;
    db.create_table("plain_sql", &[("id", "INTEGER PRIMARY KEY"), ("m", "TEXT")])?;
    db.sql_insert("plain_sql", &json!({"m": "left alone"}))?;
    let child = db.table("child")?;
    child.set("c", &1)?;

    db.rekey(new.clone())?;
    assert_eq!(db.get_fresh::<i32>("k99")?, Some(99));
    child.set("after", &2)?;
    db.close()?;

    let with_new = NanaSQLite::builder(&path).encryption(new.clone()).open()?;
    assert_eq!(with_new.len()?, 100);
    assert_eq!(with_new.get::<i32>("k5")?, Some(5));
    assert_eq!(with_new.table("never_opened_again")?.get::<String>("x")?.as_deref(), Some("y"));
    assert_eq!(with_new.table("child")?.get::<i32>("after")?, Some(2), "open tables switched key");
    assert_eq!(with_new.query(Query::table("plain_sql"))?.len(), 1);
    let with_old = NanaSQLite::builder(&path).encryption(old).open().unwrap_err();
    assert!(with_old.is_wrong_key(), "the old key no longer reads: {with_old}");

    // A row the current key cannot read stops the rekey before anything changes.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE data SET value = x'00' WHERE key = 'k3'", []).unwrap();
    let error = with_new.rekey(Encryption::aes_gcm([3; 16])?).unwrap_err();
    assert!(error.to_string().contains("k3") && error.to_string().contains("nothing was changed"), "{error}");
    with_new.clear_cache();
    assert_eq!(with_new.get::<i32>("k5")?, Some(5), "still under the new key");

    // And back to plain JSON text.
    conn.execute("DELETE FROM data WHERE key = 'k3'", []).unwrap();
    with_new.rekey(None)?;
    assert_eq!(NanaSQLite::open(&path)?.get::<i32>("k5")?, Some(5));
    assert_eq!(raw(&path, "data", "k5").0, "text");
    Ok(())
}

/// The child of the test below: reports readiness, then rekeys until killed.
fn rekey_until_killed(path: &Path) {
    let keys = [Encryption::aes_gcm([1; 32]).unwrap(), Encryption::aes_gcm([2; 32]).unwrap()];
    let db = NanaSQLite::builder(path).encryption(keys[0].clone()).open().unwrap();
    std::io::stderr().write_all(b"READY\n").unwrap();
    for round in 1.. {
        db.rekey(keys[round % 2].clone()).unwrap();
    }
}

/// With exactly one of `keys`, every row of both tables reads; `None` if neither key reads all.
fn key_that_reads_everything(path: &Path, keys: &[Encryption]) -> Option<usize> {
    keys.iter().position(|key| {
        let Ok(db) = NanaSQLite::builder(path).encryption(key.clone()).open() else { return false };
        let child = db.table("child").unwrap();
        (0..2_000).all(|i| db.get::<i32>(&format!("k{i}")).is_ok_and(|v| v == Some(i)))
            && child.get::<i32>("c").is_ok_and(|v| v == Some(1))
    })
}

#[test]
fn a_rekey_killed_midway_leaves_one_key_working() {
    let _watchdog = common::Watchdog::new("a_rekey_killed_midway_leaves_one_key_working", common::TEST_LIMIT);
    if common::child_role().is_some() {
        return rekey_until_killed(&PathBuf::from(std::env::var_os("NANASQLITE_REKEY_DB").unwrap()));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rekey.db");
    let keys = [Encryption::aes_gcm([1; 32]).unwrap(), Encryption::aes_gcm([2; 32]).unwrap()];
    let db = NanaSQLite::builder(&path).encryption(keys[0].clone()).open().unwrap();
    db.batch_update((0..2_000).map(|i| (format!("k{i}"), i))).unwrap();
    db.table("child").unwrap().set("c", &1).unwrap();
    db.close().unwrap();
    let mut seen = [0, 0];
    for round in 0..8u64 {
        let mut child = common::child("a_rekey_killed_midway_leaves_one_key_working", "rekey")
            .env("NANASQLITE_REKEY_DB", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let line = common::read_line_within(child.stderr.take().unwrap(), Duration::from_secs(60));
        assert_eq!(line, "READY\n");
        std::thread::sleep(Duration::from_millis(30 + round * 37 % 200));
        assert!(child.try_wait().unwrap().is_none(), "the child was still rekeying");
        child.kill().unwrap();
        common::wait_for_exit(&mut child, Duration::from_secs(60));
        let key = key_that_reads_everything(&path, &keys);
        let key = key.unwrap_or_else(|| panic!("round {round}: neither key reads every row: a mix"));
        seen[key] += 1;
        if key == 1 {
            // The next child starts from the first key: rotate back, whole.
            let db = NanaSQLite::builder(&path).encryption(keys[1].clone()).open().unwrap();
            db.rekey(keys[0].clone()).unwrap();
        }
    }
    println!("after 8 kills mid-rotation: old key {} times, new key {} times", seen[0], seen[1]);
}

// ===== Python NanaSQLite 1.6.2 =====

fn run_python(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/python_encrypted.py");
    let output = Command::new(common::python()).arg(script).args(args).output().expect("python runs");
    assert!(output.status.success(), "python {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

fn python_reads(path: &Path, mode: &str, key: &str, allow_legacy: bool) -> Value {
    let out = path.with_extension("json");
    let mut args = vec!["read", path.to_str().unwrap(), mode, key, out.to_str().unwrap()];
    args.extend(allow_legacy.then_some("--allow-legacy"));
    run_python(&args);
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

#[test]
#[ignore = "needs Python NanaSQLite 1.6.2 with cryptography: bash .ci/python-venv; bash .ci/test runs it"]
fn python_writes_every_mode_and_rust_reads() {
    let _watchdog = common::Watchdog::new("python_writes_every_mode_and_rust_reads", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dataset.json");
    std::fs::write(&data, serde_json::to_vec(&dataset()).unwrap()).unwrap();
    for (i, (mode, key, encryption)) in modes().into_iter().enumerate() {
        let path = dir.path().join(format!("python-{i}.db"));
        run_python(&["write", path.to_str().unwrap(), mode, &key, data.to_str().unwrap()]);
        assert_eq!(raw(&path, "sub", "number").0, "blob", "{mode}: Python 1.6.2 encrypts the child table");
        let db = NanaSQLite::builder(&path).encryption(encryption).open().unwrap();
        let child = db.table("sub").unwrap();
        for (name, value) in dataset() {
            assert_eq!(
                db.get::<Value>(&name).unwrap(),
                Some(value.clone()),
                "{mode} ({} key chars): {name}",
                key.len()
            );
            assert_eq!(child.get::<Value>(&name).unwrap(), Some(value), "{mode}: sub/{name}");
        }
    }
}

#[test]
#[ignore = "needs Python NanaSQLite 1.6.2 with cryptography: bash .ci/python-venv; bash .ci/test runs it"]
fn rust_writes_every_mode_and_python_reads() {
    let _watchdog = common::Watchdog::new("rust_writes_every_mode_and_python_reads", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    for (i, (mode, key, encryption)) in modes().into_iter().enumerate() {
        let path = dir.path().join(format!("rust-{i}.db"));
        let db = NanaSQLite::builder(&path).encryption(encryption).open().unwrap();
        db.batch_update(dataset()).unwrap();
        db.table("sub").unwrap().batch_update(dataset()).unwrap();
        db.close().unwrap();
        let read = python_reads(&path, mode, &key, false);
        for table in ["data", "sub"] {
            assert_eq!(read[table], Value::Object(dataset()), "{mode} ({} key chars): {table}", key.len());
        }
    }
}

#[test]
#[ignore = "needs Python NanaSQLite 1.6.2 with cryptography: bash .ci/python-venv; bash .ci/test runs it"]
fn legacy_plaintext_and_wrong_keys_fail_clearly_on_both_sides() {
    let _watchdog =
        common::Watchdog::new("legacy_plaintext_and_wrong_keys_fail_clearly_on_both_sides", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.db");
    let (_, key, encryption) = modes().swap_remove(2);
    run_python(&["plain", path.to_str().unwrap(), "old", "\"plaintext\""]);
    let db = NanaSQLite::builder(&path).encryption(encryption.clone()).open().unwrap();
    db.set("new", &"sealed").unwrap();
    db.table("sub").unwrap().set("x", &1).unwrap();
    db.close().unwrap();

    let strict = python_reads(&path, "aes-gcm", &key, false);
    assert!(strict["data"]["old"]["error"].as_str().unwrap().contains("allow_legacy_plaintext"), "{strict}");
    assert_eq!(strict["data"]["new"], json!("sealed"));
    let lenient = python_reads(&path, "aes-gcm", &key, true);
    assert_eq!(lenient["data"]["old"], json!("plaintext"));
    let ours = NanaSQLite::builder(&path).encryption(encryption).allow_legacy_plaintext(true).open().unwrap();
    assert_eq!(ours.get::<String>("old").unwrap().as_deref(), Some("plaintext"));

    let wrong = "99".repeat(32);
    let python_wrong = python_reads(&path, "aes-gcm", &wrong, false);
    assert!(python_wrong["data"]["new"]["error"].is_string(), "Python refuses the wrong key: {python_wrong}");
    let rust_wrong = || NanaSQLite::builder(&path).encryption(Encryption::aes_gcm([0x99; 32]).unwrap());
    let error = rust_wrong().open().unwrap_err();
    assert!(error.is_wrong_key() && error.to_string().contains("new"), "refused at open: {error}");
    let error = rust_wrong().check_key(false).open().unwrap().get::<String>("new").unwrap_err();
    assert!(error.is_wrong_key() && error.to_string().contains("key"), "{error}");
}

/// A rotation ends legacy mode: the plaintext rows it found are sealed, and a plaintext row
/// planted in the file afterwards is refused, as in a store that never allowed them.
#[test]
fn a_rotation_ends_legacy_mode() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("a_rotation_ends_legacy_mode", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.db");
    NanaSQLite::open(&path)?.set("old", &"written before encryption")?;
    let lenient =
        NanaSQLite::builder(&path).encryption(Encryption::aes_gcm([5; 32])?).allow_legacy_plaintext(true).open()?;
    lenient.rekey(Encryption::chacha20([6; 32])?)?;
    assert_eq!(raw(&path, "data", "old").0, "blob", "the plaintext row was sealed");
    assert_eq!(lenient.get_fresh::<String>("old")?.as_deref(), Some("written before encryption"));
    let conn = nanasqlite::rusqlite::Connection::open(&path).unwrap();
    conn.execute("INSERT INTO data (key, value) VALUES ('planted', '\"forged\"')", []).unwrap();
    let error = lenient.get_fresh::<String>("planted").unwrap_err();
    assert!(error.to_string().contains("allow_legacy_plaintext"), "plaintext is refused after the rotation: {error}");
    Ok(())
}

/// Rows another tool stored under a key that is not text (a blob, `NULL`, bytes that are not
/// UTF-8; the column's TEXT affinity turns numbers into text) are re-sealed by a rotation with the rest: copied under a text key afterwards, each
/// reads with the new key.
#[test]
fn a_rotation_reseals_rows_whose_key_is_not_text() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("a_rotation_reseals_rows_whose_key_is_not_text", common::TEST_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.db");
    let old = Encryption::aes_gcm([1; 32])?;
    let db = NanaSQLite::builder(&path).encryption(old.clone()).open()?;
    db.set("named", &"n")?;
    for (i, value) in ["blob", "null", "bytes"].iter().enumerate() {
        db.set(&format!("seed{i}"), value)?;
    }
    let conn = nanasqlite::rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE data SET key = X'00FF' WHERE key = 'seed0';
         UPDATE data SET key = NULL WHERE key = 'seed1';
         UPDATE data SET key = CAST(X'66FF6F' AS TEXT) WHERE key = 'seed2';",
    )
    .unwrap();
    assert_eq!(db.unreadable_keys()?, 3);
    let new = Encryption::chacha20([2; 32])?;
    db.rekey(new.clone())?;
    conn.execute_batch(
        "INSERT INTO data (key, value) SELECT 'probe0', value FROM data WHERE key = X'00FF';
         INSERT INTO data (key, value) SELECT 'probe1', value FROM data WHERE key IS NULL;
         INSERT INTO data (key, value) SELECT 'probe2', value FROM data WHERE key = CAST(X'66FF6F' AS TEXT);",
    )
    .unwrap();
    let reopened = NanaSQLite::builder(&path).encryption(new).open()?;
    for (i, value) in ["blob", "null", "bytes"].iter().enumerate() {
        assert_eq!(reopened.get::<String>(&format!("probe{i}"))?.as_deref(), Some(*value), "probe{i}");
    }
    assert_eq!(reopened.get::<String>("named")?.as_deref(), Some("n"));
    Ok(())
}

/// No error message and no `Debug` output of an encrypted store holds a value's plaintext:
/// a value read as the wrong type, a scan iterator holding a page, dead letters.
#[test]
fn no_error_or_debug_output_shows_an_encrypted_value() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("no_error_or_debug_output_shows_an_encrypted_value", common::TEST_LIMIT);
    let secret = "4111 1111 1111 1111";
    let key = Encryption::aes_gcm([3; 32])?;
    let db = NanaSQLite::builder(":memory:").encryption(key).open()?;
    db.set("card", &secret)?;
    db.set("record", &json!({"number": secret, "kind": "visa"}))?;
    db.set("counter", &json!({"n": 300}))?;
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    enum Kind {
        Mastercard,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Record {
        number: u64,
        kind: Kind,
    }
    let mut messages = vec![
        db.get::<u32>("card").unwrap_err(),
        db.get_cloned::<u32>("card").unwrap_err(),
        db.get::<Record>("record").unwrap_err(),
        db.items::<u32>().unwrap_err(),
        db.scan::<u32>(nanasqlite::Scan::all()).unwrap_err(),
        db.increment::<u8>("counter", 1, Some("n")).unwrap_err(),
    ]
    .into_iter()
    .map(|error| format!("{error} / {error:?}"))
    .collect::<Vec<_>>();
    let mut pages = db.iter::<Value>(nanasqlite::Scan::all())?;
    let _first = pages.next();
    messages.push(format!("{pages:?}"));
    for message in &messages {
        assert!(!message.contains("4111") && !message.contains("301"), "the plaintext leaked: {message}");
        assert!(!message.contains("visa"), "the plaintext leaked: {message}");
    }
    assert!(messages[0].contains("expected u32"), "what was expected stays: {}", messages[0]);
    // The same reads of an unencrypted store keep serde's whole message.
    let plain = NanaSQLite::open(":memory:")?;
    plain.set("card", &secret)?;
    assert!(plain.get::<u32>("card").unwrap_err().to_string().contains(secret));
    Ok(())
}

/// Cold reads running beside key rotations, grouped on the reader lanes (a group's snapshot
/// may start before a rotation commits and its last reads run after the switch to the new key)
/// and on the caller's thread, never leave a key cached as unreadable: after the rotations
/// every cached key still reads (a read that overlapped one may have failed, but cached
/// nothing). The interleaving that would cache one is rare here; the engine's
/// `a_read_overlapping_a_rotation_caches_nothing` makes it happen every time.
#[test]
fn reads_overlapping_rotations_never_cache_an_unreadable_value() {
    let _watchdog =
        common::Watchdog::new("reads_overlapping_rotations_never_cache_an_unreadable_value", common::TEST_LIMIT);
    const ROWS: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotating.db");
    let keys = [Encryption::aes_gcm([1; 32]).unwrap(), Encryption::chacha20([2; 32]).unwrap()];
    futures::executor::block_on(async {
        let db = AsyncNanaSQLite::builder(&path).encryption(keys[0].clone()).read_pool_size(2).open().await.unwrap();
        db.batch_update((0..ROWS).map(|i| (format!("k{i:05}"), i))).await.unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..4)
            .map(|lane| {
                let (db, stop) = (db.clone(), std::sync::Arc::clone(&stop));
                std::thread::spawn(move || {
                    futures::executor::block_on(async {
                        let mut round = 0;
                        while !stop.load(std::sync::atomic::Ordering::Acquire) {
                            db.clear_cache();
                            let reads = (0..1000).map(|i| {
                                db.get::<i64>(&format!("k{:05}", (i * 13 + lane * 997 + round * 1000) % ROWS))
                            });
                            let _ = futures::future::join_all(reads).await;
                            round += 1;
                        }
                    });
                })
            })
            .collect();
        for rotation in 0..20 {
            db.rekey(keys[(rotation + 1) % 2].clone()).await.unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        readers.into_iter().for_each(|reader| reader.join().unwrap());
        for i in 0..ROWS {
            let key = format!("k{i:05}");
            if db.is_cached(&key) {
                assert_eq!(db.get::<i64>(&key).await.unwrap(), Some(i as i64), "{key} is cached as unreadable");
            }
        }
        for i in 0..ROWS {
            let key = format!("k{i:05}");
            assert_eq!(db.get::<i64>(&key).await.unwrap(), Some(i as i64), "{key} after the rotations");
            assert!(db.is_cached(&key), "a read after the rotations caches again");
        }
        db.close().await.unwrap();
    });
}
