//! Creating a key/value table, or checking that an existing one has a layout the store can use.
//!
//! Python NanaSQLite creates `"<name>"(key TEXT PRIMARY KEY, value TEXT)` and uses whatever
//! table of that name it finds. A table of another layout would be silently misused (two rows
//! of one key without a primary key, values refused by a `STRICT` or `NOT NULL` column, writes
//! into a view), so it is refused here, at open, with what was found and what is expected.

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::identifier::Identifier;

/// The layout the store creates and expects.
pub(super) const EXPECTED: &str = "(key TEXT PRIMARY KEY, value TEXT)";

/// Creates `name` if it does not exist; otherwise checks it. The table as this crate or Python
/// NanaSQLite creates it is recognised from its `CREATE` statement alone (one query, as opening
/// must stay cheap); any other is checked column by column.
pub(super) fn create_or_check(conn: &Connection, name: &Identifier, quoted: &str) -> Result<()> {
    match definition(conn, name)? {
        None => {
            conn.execute(&format!("CREATE TABLE IF NOT EXISTS {quoted} {EXPECTED}"), [])?;
            Ok(())
        }
        Some((kind, sql)) if kind == "table" => {
            if sql.is_some_and(|sql| is_expected(&sql, name)) {
                Ok(())
            } else {
                check(conn, name)
            }
        }
        Some((other, _)) => Err(refuse(name, &format!("it is a {other}, not a table"))),
    }
}

/// The tables of the database with the key/value layout, in name order.
pub(super) fn key_value_tables(conn: &Connection) -> Result<Vec<Identifier>> {
    let sql = "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
               ORDER BY name";
    let mut statement = conn.prepare(sql)?;
    let tables = statement
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut found = Vec::new();
    for (name, sql) in tables {
        // A table whose name the store could not open is not one of its tables.
        let Ok(name) = Identifier::new(&name) else { continue };
        if sql.is_some_and(|sql| is_expected(&sql, &name)) || check(conn, &name).is_ok() {
            found.push(name);
        }
    }
    Ok(found)
}

/// The kind (`"table"`, `"view"`) and `CREATE` statement of the schema object named `name`.
fn definition(conn: &Connection, name: &Identifier) -> Result<Option<(String, Option<String>)>> {
    let sql = "SELECT type, sql FROM sqlite_master WHERE name = ?1 COLLATE NOCASE AND type IN ('table', 'view')";
    Ok(conn.prepare_cached(sql)?.query_row([name.as_str()], |row| Ok((row.get(0)?, row.get(1)?))).optional()?)
}

/// Whether `sql` is the statement that creates the expected layout (spacing, case and the
/// quotes around the name aside), as this crate and Python NanaSQLite write it.
fn is_expected(sql: &str, name: &Identifier) -> bool {
    let squeeze = |text: &str| text.chars().filter(|c| !c.is_whitespace() && *c != '"').collect::<String>();
    squeeze(sql).eq_ignore_ascii_case(&squeeze(&format!("CREATE TABLE {} {EXPECTED}", name.as_str())))
}

struct Column {
    name: String,
    declared: String,
    not_null: bool,
    has_default: bool,
    pk: i64,
}

fn check(conn: &Connection, name: &Identifier) -> Result<()> {
    let mut statement =
        conn.prepare("SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk FROM pragma_table_info(?1)")?;
    let columns = statement
        .query_map([name.as_str()], |row| {
            Ok(Column {
                name: row.get(0)?,
                declared: row.get(1)?,
                not_null: row.get(2)?,
                has_default: row.get(3)?,
                pk: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let problem = layout_problem(&columns).or_else(|| is_strict(conn, name).then(|| "it is a STRICT table".to_owned()));
    problem.map_or(Ok(()), |problem| Err(refuse(name, &problem)))
}

/// What is wrong with `columns` for a key/value table, if anything.
fn layout_problem(columns: &[Column]) -> Option<String> {
    let column = |wanted: &str| columns.iter().find(|c| c.name.eq_ignore_ascii_case(wanted));
    let (Some(key), Some(_value)) = (column("key"), column("value")) else {
        let found: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        return Some(format!("it has columns ({}), not key and value", found.join(", ")));
    };
    if key.pk != 1 || columns.iter().any(|c| c.pk > 1) {
        return Some("its key column is not the table's primary key on its own".to_owned());
    }
    if !text_affinity(&key.declared) {
        return Some(format!("its key column is declared {:?}, which does not keep keys as text", key.declared));
    }
    let blocking = columns
        .iter()
        .find(|c| !matches!(c.name.to_ascii_lowercase().as_str(), "key" | "value") && c.not_null && !c.has_default);
    blocking.map(|c| format!("its column {:?} is NOT NULL without a default, so no row could be written", c.name))
}

/// Whether a column declared `declared` keeps text as text: SQLite's affinity rules give TEXT
/// affinity to types containing CHAR, CLOB or TEXT, and none (BLOB) to an empty type.
fn text_affinity(declared: &str) -> bool {
    let upper = declared.to_ascii_uppercase();
    upper.is_empty()
        || ((upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT")) && !upper.contains("INT"))
}

fn is_strict(conn: &Connection, name: &Identifier) -> bool {
    let sql = "SELECT strict FROM pragma_table_list WHERE name = ?1 AND schema = 'main'";
    conn.query_row(sql, [name.as_str()], |row| row.get::<_, bool>(0)).unwrap_or(false)
}

fn refuse(name: &Identifier, problem: &str) -> Error {
    Error::Schema {
        table: name.as_str().to_owned(),
        message: format!("{problem}; a key/value table needs the layout {EXPECTED}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(setup: &str) -> Result<()> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(setup).unwrap();
        let name = Identifier::new("data").unwrap();
        create_or_check(&conn, &name, &name.quoted())
    }

    #[test]
    fn python_and_compatible_layouts_open() {
        open("").unwrap();
        let name = Identifier::new("data").unwrap();
        assert!(is_expected("CREATE TABLE \"data\" (\n    key TEXT PRIMARY KEY,\n    value TEXT\n)", &name));
        assert!(is_expected("create table data (key text primary key, value text)", &name));
        assert!(!is_expected("CREATE TABLE data (key TEXT PRIMARY KEY, value TEXT) STRICT", &name));
        open("CREATE TABLE data (\n    key TEXT PRIMARY KEY,\n    value TEXT\n)").unwrap();
        open("CREATE TABLE data (key VARCHAR(64) PRIMARY KEY, value BLOB, note TEXT)").unwrap();
        open("CREATE TABLE data (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID").unwrap();
        open("CREATE TABLE data (key PRIMARY KEY, value)").unwrap();
    }

    #[test]
    fn other_layouts_are_refused_with_what_is_wrong() {
        for (setup, says) in [
            ("CREATE TABLE data (key INTEGER, value BLOB)", "primary key"),
            ("CREATE TABLE data (key INTEGER PRIMARY KEY, value TEXT)", "declared"),
            ("CREATE TABLE data (k TEXT PRIMARY KEY, v TEXT)", "not key and value"),
            ("CREATE TABLE data (key TEXT, value TEXT, PRIMARY KEY (key, value))", "primary key"),
            ("CREATE TABLE data (key TEXT PRIMARY KEY, value TEXT) STRICT", "STRICT"),
            ("CREATE TABLE data (key TEXT PRIMARY KEY, value TEXT, owner TEXT NOT NULL)", "NOT NULL"),
            ("CREATE TABLE t (key TEXT PRIMARY KEY, value TEXT); CREATE VIEW data AS SELECT * FROM t", "view"),
        ] {
            let error = open(setup).unwrap_err();
            assert!(matches!(&error, Error::Schema { table, .. } if table == "data"), "{setup}: {error:?}");
            let message = error.to_string();
            assert!(message.contains(says) && message.contains(EXPECTED), "{setup}: {message}");
        }
    }
}
