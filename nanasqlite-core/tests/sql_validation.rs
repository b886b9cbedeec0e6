//! The attack and bad-input corpus of Python NanaSQLite against the fragment validator, and the
//! fragments it must accept.

#[path = "support/hostile.rs"]
mod hostile;

use nanasqlite_core::Error;
use nanasqlite_core::sql::{
    Clause, SqlPolicy, check_added_column_type, check_column_type, check_pragma, check_pragma_text,
};

fn rejected(fragment: &str, clause: Clause) -> String {
    match SqlPolicy::default().check(fragment, clause) {
        Err(Error::Validation { message }) => message,
        other => panic!("{fragment:?} as {clause:?} was not rejected: {other:?}"),
    }
}

fn accepted(fragment: &str, clause: Clause) {
    if let Err(error) = SqlPolicy::default().check(fragment, clause) {
        panic!("{fragment:?} as {clause:?} was rejected: {error}");
    }
}

#[test]
fn order_by_attacks_are_rejected() {
    for attack in [
        "id; DROP TABLE test--",
        "id * COALESCE((SELECT 1 FROM secrets WHERE value GLOB 's*'), 10)",
        "id * COALESCE((SELECT -1 FROM secrets), 10)",
        "(SELECT CASE WHEN 1=1 THEN name ELSE score END)",
        "name FROM users",
        "name UNION SELECT password",
        "name LIMIT 1",
        "id /* c */",
    ] {
        let message = rejected(attack, Clause::OrderBy);
        assert!(message.contains("order_by"), "{attack}: {message}");
    }
}

/// (How fast long lists and hostile input are checked is measured by `benches/sql_validation.rs`.)
#[test]
fn order_by_lists_are_accepted() {
    for ok in ["id ASC", "id DESC, name ASC", "name", "key ASC", "id", "\"group\" DESC", "LOWER(name)"] {
        accepted(ok, Clause::OrderBy);
    }
    let fifty: Vec<String> = (0..50).map(|i| format!("col{i} ASC")).collect();
    accepted(&fifty.join(", "), Clause::OrderBy);
}

#[test]
fn group_by_attacks_are_rejected() {
    for attack in ["category; DROP TABLE test--", "(SELECT name FROM other)", "HEX(category)"] {
        rejected(attack, Clause::GroupBy);
    }
    let policy = SqlPolicy::default().allow(["HEX"]);
    assert!(policy.check("HEX(category)", Clause::GroupBy).is_ok());
}

#[test]
fn column_attacks_are_rejected() {
    for attack in [
        "id); DROP TABLE test--",
        "id; DROP TABLE users",
        "id -- comment",
        "id, DELETE FROM users",
        "(SELECT name FROM sqlite_master) AS leaked",
        "DANGEROUS_FUNC(*)",
        "HEX(name)",
        "name UNION SELECT password FROM users",
    ] {
        rejected(attack, Clause::Column);
    }
}

#[test]
fn column_expressions_are_accepted() {
    for ok in [
        "COUNT(*)",
        "COUNT(*) as count",
        "SUM(value) as total",
        "name AS username",
        "age AS user_age",
        "MAX(age) as max_age",
        "MIN(age) as min_age",
        "AVG(age) as avg_age",
        "name as \"user_name\"",
        "val + 100 as total",
        "'prefix as ' || name as complex_label",
        "`my column`",
        "group",
    ] {
        accepted(ok, Clause::Column);
    }
    let filter = SqlPolicy::default().allow(["FILTER"]);
    assert!(filter.check("COUNT(*) FILTER (WHERE key IS NOT NULL) AS positives", Clause::Column).is_ok());
    assert!(
        SqlPolicy::default().check("COUNT(*) FILTER (WHERE key IS NOT NULL) AS positives", Clause::Column).is_err()
    );
}

#[test]
fn harmless_fragments_python_refuses_are_accepted() {
    // Python NanaSQLite checks characters on the raw text; these are tokenised here, and are
    // ordinary SQL: whitespace, a `%` or `--` inside a literal, non-ASCII text in a literal,
    // a bitwise operator.
    for fragment in
        ["key = ?\n", "key = ?\t", "value LIKE 'a%'", "a = 1 & 2", "a = 'é'", "note = 'even -- inside a literal'"]
    {
        SqlPolicy::default().check(fragment, Clause::Where).unwrap();
    }
}

#[test]
fn where_attacks_are_rejected() {
    for attack in [
        "1=1; DROP TABLE data",
        "EVIL(1)",
        "\"EVIL\"(1)",
        "\"UNKNOWN_FUNC\"(1)",
        "DANGEROUS(1)",
        "\"DANGEROUS\"(1)",
        "[EVIL](1)",
        "`EVIL`(1)",
        "load_extension('x')",
        "\"LOAD_EXTENSION\"(x)",
        "1=1 OR id IN (SELECT id FROM secrets)",
        "EXISTS (SELECT 1 FROM secrets)",
        "a = 1 AND (SELECT COUNT(*) FROM secrets) > 0",
        "a = 1 UNION SELECT password FROM users",
        "a IN (VALUES(1)) OR b IN (SELECT 1)",
        "name = 'x' -- trailing",
        "replace(name, 'a', 'b') = ?",
        "x = 1; ATTACH DATABASE 'evil.db' AS e",
    ] {
        rejected(attack, Clause::Where);
    }
}

#[test]
fn where_conditions_are_accepted() {
    for ok in [
        "value = 'DELETE'",
        "\"name\" IS NOT NULL",
        "[column name] = 1",
        "age > ?",
        "key = ?",
        "name LIKE ?",
        "a = ? AND (b < ? OR c >= ?)",
        "UPPER(name) = ? AND LENGTH(name) > 3",
        "created > DATETIME('now', '-1 day')",
        "note = 'it''s fine'",
    ] {
        accepted(ok, Clause::Where);
    }
}

#[test]
fn function_lists_per_store_and_per_query() {
    let forbid_upper = SqlPolicy::default().forbid(["UPPER"]);
    assert!(
        matches!(forbid_upper.check("UPPER(name) = ?", Clause::Where), Err(Error::Validation { message }) if message.contains("forbidden"))
    );
    let custom = SqlPolicy::default().allow(["MY_CUSTOM_FUNC"]);
    assert!(custom.check("MY_CUSTOM_FUNC(*) > 0", Clause::Where).is_ok());
    let per_query = SqlPolicy::default().allow(["LOCAL_FUNC"]);
    assert!(SqlPolicy::default().merged(&per_query).check("LOCAL_FUNC(*)", Clause::Where).is_ok());
    let only = SqlPolicy::default().allow(["FUNC_A", "func_b"]).replace_defaults();
    assert!(only.check("FUNC_A(x) + FUNC_B(y)", Clause::Where).is_ok());
    assert!(only.check("COUNT(x)", Clause::Where).is_err(), "defaults replaced");
    let none = SqlPolicy::default().forbid(["*"]);
    assert!(none.check("COUNT(x) > 1", Clause::Where).is_err());
    assert!(none.check("age > ?", Clause::Where).is_ok(), "no call, nothing to forbid");
    assert!(SqlPolicy::default().check("age IN (?, ?) AND NOT (a = 1 OR b = 2)", Clause::Where).is_ok());
    assert!(SqlPolicy::default().check("CAST(age AS TEXT) = ?", Clause::Where).is_err(), "CAST needs allowing");
}

#[test]
fn length_limit() {
    let long = format!("key = {}", "?".repeat(20));
    let short = SqlPolicy::default().max_clause_length(Some(10));
    assert!(
        matches!(short.check(&long, Clause::Where), Err(Error::Validation { message }) if message.contains("maximum length"))
    );
    assert!(
        SqlPolicy::default()
            .max_clause_length(None)
            .check("a = 1 AND ".repeat(500).trim_end_matches(" AND "), Clause::Where)
            .is_ok()
    );
}

#[test]
fn long_hostile_input_is_rejected() {
    // Its time, and how it grows with the input's length, is measured by the benchmark
    // `benches/sql_validation.rs`, not asserted here.
    for input in hostile::hostile_inputs(100_000) {
        for clause in [Clause::Where, Clause::OrderBy, Clause::Column] {
            assert!(SqlPolicy::default().check(&input, clause).is_err());
        }
        assert!(check_column_type(&input).is_err());
        assert!(check_added_column_type(&input).is_err());
    }
}

#[test]
fn non_strict_mode_warns_and_accepts() {
    assert!(SqlPolicy::default().strict(false).check("1=1; DROP TABLE data", Clause::Where).is_ok());
}

#[test]
fn column_types_for_create_table() {
    for attack in [
        "INTEGER); DELETE FROM \"victim\" WHERE 1=1; --",
        "TEXT); DELETE FROM \"data\"; --",
        "INTEGER -- comment",
        "INTEGER /* comment */",
        "TEXT, injected INTEGER",
        "DECIMAL(10,2",
        "TEXT)",
        "TEXT DEFAULT 'x') --",
        "TEXT DEFAULT \"x\"",
        "",
        "TEXT CHECK(length(x) > 0); DROP TABLE t",
    ] {
        assert!(check_column_type(attack).is_err(), "{attack:?}");
    }
    for ok in [
        "INTEGER PRIMARY KEY AUTOINCREMENT",
        "TEXT NOT NULL",
        "TEXT UNIQUE",
        "DECIMAL(10,2) DEFAULT 0",
        "INTEGER REFERENCES other(id)",
        "INTEGER PRIMARY KEY",
    ] {
        assert!(check_column_type(ok).is_ok(), "{ok:?}");
    }
}

#[test]
fn column_types_for_alter_table() {
    for attack in [
        "TEXT CHECK(1=1)",
        "TEXT; DROP TABLE t",
        "TEXT; DROP TABLE test--",
        "TEXT\0DROP",
        "TEXT'--",
        "1TEXT",
        "TEXT ",
        "",
    ] {
        assert!(check_added_column_type(attack).is_err(), "{attack:?}");
    }
    for ok in
        ["TEXT", "INTEGER", "REAL", "BLOB", "VARCHAR(255)", "DECIMAL(10,2)", "DOUBLE PRECISION", "DECIMAL (10, 2)"]
    {
        assert!(check_added_column_type(ok).is_ok(), "{ok:?}");
    }
}

#[test]
fn pragma_whitelist() {
    assert!(check_pragma("compile_options", false).is_err());
    assert!(check_pragma("schema_version", true).is_err(), "read-only");
    assert!(check_pragma("schema_version", false).is_ok());
    assert!(check_pragma("user_version", true).is_ok());
    assert!(check_pragma_text("WAL; DROP TABLE test--").is_err());
    assert!(check_pragma_text("NORMAL").is_ok());
}
