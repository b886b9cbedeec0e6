//! Files written by Python NanaSQLite 1.6.2 read here, and files written here read there.
//!
//! Needs a Python with `nanasqlite==1.6.2` and `orjson`: `bash .ci/python-venv` makes one in
//! `target/interop-venv`, or point `NANASQLITE_PYTHON` at another. The tests are `#[ignore]`d,
//! so plain `cargo test` lists them as ignored; `bash .ci/test` runs them, and fails with the
//! command that fixes it when that Python is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use nanasqlite::NanaSQLite;
use serde_json::{Map, Value, json};

mod common;

fn run_python(python: &Path, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/python_side.py");
    let output = Command::new(python).arg(script).args(args).output().expect("python runs");
    assert!(output.status.success(), "python {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// How deeply `value` nests arrays and objects (without recursion, so any depth is fine).
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0)];
    while let Some((value, level)) = pending.pop() {
        deepest = deepest.max(level);
        match value {
            Value::Array(items) => pending.extend(items.iter().map(|item| (item, level + 1))),
            Value::Object(fields) => pending.extend(fields.values().map(|item| (item, level + 1))),
            _ => {}
        }
    }
    deepest
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("bottom"), |inner, level| json!({ format!("level{level}"): inner }))
}

/// Keys and values both sides must agree on.
fn dataset() -> Map<String, Value> {
    let entries = [
        ("user_1", json!({"name": "Alice", "age": 25, "tags": ["admin", "active"], "active": true})),
        ("", json!("empty key")),
        (" ", json!(" ")),
        ("日本語キー", json!("日本語テキスト🦀")),
        ("tab\tkey", json!("tab\tvalue")),
        ("line\nkey", json!("line\nvalue")),
        ("quote'\"key", json!("quote'\"value")),
        ("back\\slash", json!("back\\slash")),
        ("🦀", json!({"emoji": "🎉"})),
        ("none", Value::Null),
        ("true", json!(true)),
        ("false", json!(false)),
        ("zero", json!(0)),
        ("negative", json!(-7)),
        ("i64_max", json!(i64::MAX)),
        ("i64_min", json!(i64::MIN)),
        ("u64_max", json!(u64::MAX)),
        ("pi", json!(std::f64::consts::PI)),
        ("tiny", json!(1e-300)),
        ("huge_float", json!(1.7976931348623157e308)),
        ("float_one", json!(1.0)),
        ("negative_zero", json!(-0.5)),
        ("empty_string", json!("")),
        ("empty_list", json!([])),
        ("empty_object", json!({})),
        ("list", json!([1, "two", 3.5, null, [4, [5]], {"six": 6}])),
        ("nested", json!({"a": {"b": {"c": [1, {"d": "e"}]}}})),
        ("deep", nested(30)),
        ("long", json!("x".repeat(100_000))),
    ];
    entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn write_dataset(dir: &Path) -> PathBuf {
    let path = dir.join("dataset.json");
    std::fs::write(&path, serde_json::to_vec(&dataset()).unwrap()).unwrap();
    path
}

fn raw_value(db: &Path, key: &str) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT value FROM data WHERE key = ?", [key], |row| row.get(0)).unwrap()
}

fn python_writes_rust_reads(orjson: bool) {
    let python = common::python();
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("from_python.db");
    let dataset_file = write_dataset(dir.path());
    let mut args = vec!["write", db_path.to_str().unwrap(), dataset_file.to_str().unwrap()];
    if !orjson {
        args.push("--no-orjson");
    }
    run_python(&python, &args);

    let spaced = raw_value(&db_path, "nested").contains(": ");
    assert_eq!(spaced, !orjson, "orjson writes compact JSON, the stdlib spaced JSON");

    let db = NanaSQLite::open(&db_path).unwrap();
    let expected = dataset();
    for (key, value) in &expected {
        assert_eq!(db.get::<Value>(key).unwrap().as_ref(), Some(value), "key {key:?}");
    }
    assert_eq!(db.get::<Value>("special:nan").unwrap(), Some(Value::Null), "NaN reads as null");
    assert_eq!(db.get::<Value>("special:inf").unwrap(), Some(Value::Null));
    assert_eq!(db.get::<Value>("special:ninf").unwrap(), Some(Value::Null));
    assert_eq!(db.get::<Value>("special:list_nan").unwrap(), Some(json!([1.5, null])));
    let deep: Value = db.get("special:deep").unwrap().unwrap();
    assert_eq!(depth(&deep), if orjson { 250 } else { 900 }, "as deep as Python writes, read");
    if !orjson {
        assert_eq!(raw_value(&db_path, "special:nan"), "NaN", "the stdlib writes the bare token");
        let huge: f64 = db.get("special:huge_int").unwrap().unwrap();
        assert_eq!(huge, 1e30, "integers beyond 64 bits read as the nearest float");
        db.patch("special:big_obj", &json!({"n": 2}), false).unwrap();
        assert_eq!(raw_value(&db_path, "special:big_obj"), r#"{"huge":1180591620717411303424,"n":2}"#, "2**70 kept");
        assert_eq!(db.increment::<i128>("special:huge_int", 1, None).unwrap(), 10_i128.pow(30) + 1, "exact");
    }
    assert_eq!(db.len().unwrap(), expected.len() + if orjson { 5 } else { 7 });

    let sub = db.table("sub").unwrap();
    let read: Map<String, Value> = sub.to_dict::<Value>().unwrap().into_iter().collect();
    assert_eq!(read, expected, "a table() sub-table written by Python");
}

#[test]
#[ignore = "needs Python NanaSQLite 1.6.2: bash .ci/python-venv; bash .ci/test runs it"]
fn python_with_orjson_writes_rust_reads() {
    python_writes_rust_reads(true);
}

#[test]
#[ignore = "needs Python NanaSQLite 1.6.2: bash .ci/python-venv; bash .ci/test runs it"]
fn python_without_orjson_writes_rust_reads() {
    python_writes_rust_reads(false);
}

/// Writes [`dataset`] into `data` (key by key) and `sub` (one batch) with the sync store.
fn write_with_the_sync_store(path: &Path, expected: &Map<String, Value>) {
    let db = NanaSQLite::open(path).unwrap();
    for (key, value) in expected {
        db.set(key, value).unwrap();
    }
    db.table("sub").unwrap().batch_update(expected).unwrap();
    db.close().unwrap();
}

/// As [`write_with_the_sync_store`], with the async store (concurrent sets, group commits).
fn write_with_the_async_store(path: &Path, expected: &Map<String, Value>) {
    futures::executor::block_on(async {
        let db = nanasqlite::AsyncNanaSQLite::open(path).await.unwrap();
        let sets = futures::future::join_all(expected.iter().map(|(key, value)| db.set(key, value))).await;
        sets.into_iter().for_each(|set| set.unwrap());
        db.table("sub").await.unwrap().batch_update(expected).await.unwrap();
        db.close().await.unwrap();
    });
}

fn rust_writes_python_reads(bulk_load: bool, orjson: bool) {
    rust_writes_python_reads_with(write_with_the_sync_store, bulk_load, orjson);
}

fn rust_writes_python_reads_with(write: fn(&Path, &Map<String, Value>), bulk_load: bool, orjson: bool) {
    let python = common::python();
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("from_rust.db");
    let expected = dataset();
    write(&db_path, &expected);

    let out = dir.path().join("read.json");
    let mut args = vec!["read", db_path.to_str().unwrap(), out.to_str().unwrap()];
    args.extend(bulk_load.then_some("--bulk-load"));
    args.extend((!orjson).then_some("--no-orjson"));
    run_python(&python, &args);

    let read: Value = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
    assert_eq!(read["orjson"], json!(orjson));
    for table in ["data", "sub"] {
        let read = read[table].as_object().unwrap();
        for (key, value) in &expected {
            assert_eq!(read.get(key), Some(value), "table {table}, key {key:?}");
        }
        assert_eq!(read.len(), expected.len(), "table {table}");
    }
}

#[test]
#[ignore = "needs Python NanaSQLite 1.6.2: bash .ci/python-venv; bash .ci/test runs it"]
fn rust_writes_python_reads_lazily() {
    rust_writes_python_reads(false, true);
}

#[test]
#[ignore = "needs Python NanaSQLite 1.6.2: bash .ci/python-venv; bash .ci/test runs it"]
fn rust_writes_python_bulk_loads() {
    rust_writes_python_reads(true, true);
}

#[test]
#[ignore = "needs Python NanaSQLite 1.6.2: bash .ci/python-venv; bash .ci/test runs it"]
fn rust_writes_python_without_orjson_reads() {
    rust_writes_python_reads(true, false);
}

#[test]
#[ignore = "needs Python NanaSQLite 1.6.2: bash .ci/python-venv; bash .ci/test runs it"]
fn the_async_store_writes_python_reads() {
    rust_writes_python_reads_with(write_with_the_async_store, false, true);
}

fn the_deepest_value_we_write_reads_in_python(orjson: bool) {
    let python = common::python();
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("deep.db");
    let db = NanaSQLite::open(&db_path).unwrap();
    let deepest = (0..512).fold(json!(1), |inner, _| json!([inner]));
    db.set("deep", &deepest).unwrap();
    let deeper = json!([deepest]);
    assert!(db.set("deeper", &deeper).is_err(), "what Python could not read back is refused");
    db.close().unwrap();
    let out = dir.path().join("read.json");
    let mut args = vec!["read", db_path.to_str().unwrap(), out.to_str().unwrap()];
    args.extend((!orjson).then_some("--no-orjson"));
    run_python(&python, &args);
    let text = std::fs::read_to_string(out).unwrap();
    assert!(text.contains(&format!("{}1{}", "[".repeat(512), "]".repeat(512))), "Python read all 512 levels");
    std::mem::forget((deepest, deeper));
}

#[test]
#[ignore = "needs Python NanaSQLite 1.6.2: bash .ci/python-venv; bash .ci/test runs it"]
fn the_deepest_value_we_write_reads_in_python_with_orjson() {
    the_deepest_value_we_write_reads_in_python(true);
}

#[test]
#[ignore = "needs Python NanaSQLite 1.6.2: bash .ci/python-venv; bash .ci/test runs it"]
fn the_deepest_value_we_write_reads_in_python_without_orjson() {
    the_deepest_value_we_write_reads_in_python(false);
}

/// A table with a unique-field hook carries an index on a JSON expression; Python NanaSQLite
/// (its SQLite has JSON built in) keeps reading and writing it, and the index keeps up with
/// what Python wrote, so the hook here still refuses a duplicate of a Python-written value.
#[test]
#[ignore = "needs Python NanaSQLite 1.6.2: bash .ci/python-venv; bash .ci/test runs it"]
fn python_writes_a_table_indexed_for_a_unique_hook() {
    let python = common::python();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unique.db");
    let builder = || NanaSQLite::builder(&path).hook(nanasqlite::hook::unique("email"));
    let db = builder().open().unwrap();
    db.set("rust", &json!({"email": "rust@x"})).unwrap();
    db.close().unwrap();
    let script = "import sys\n\
                  from nanasqlite import NanaSQLite\n\
                  db = NanaSQLite(sys.argv[1])\n\
                  assert db['rust'] == {'email': 'rust@x'}, db['rust']\n\
                  db['py'] = {'email': 'py@x'}\n\
                  db.batch_update({'py2': {'email': 'py2@x'}, 'plain': 'text'})\n\
                  del db['py2']\n\
                  db.close()\n";
    let output = Command::new(&python).args(["-c", script, path.to_str().unwrap()]).output().expect("python runs");
    assert!(output.status.success(), "python failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let db = builder().open().unwrap();
    assert_eq!(db.get::<Value>("py").unwrap(), Some(json!({"email": "py@x"})));
    assert!(db.set("dup", &json!({"email": "py@x"})).unwrap_err().is_refused(), "the index saw Python's write");
    db.set("py2-again", &json!({"email": "py2@x"})).expect("Python's delete left the index too");
}
