//! The SQL helpers, on one connection: every helper of both stores and their transactions
//! runs here, so the rules live in one place.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Dialect, Fence, Query, Row, SqlConnection, SqlPolicy, SqlValue, Write, check_added_column_type, check_column_type,
    check_pragma, check_pragma_text,
};
use crate::error::{Error, Result};
use crate::identifier::Identifier;

/// One column of a table, from `PRAGMA table_info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ColumnInfo {
    /// Position, from 0.
    pub cid: i64,
    /// Column name.
    pub name: String,
    /// Declared type.
    #[serde(rename = "type")]
    pub column_type: String,
    /// Whether it is `NOT NULL`.
    pub notnull: bool,
    /// The `DEFAULT` expression, as written.
    pub default_value: Option<String>,
    /// Whether it is (part of) the primary key.
    pub pk: bool,
}

/// One index, from `sqlite_master` (SQLite's own autoindexes left out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IndexInfo {
    /// Index name.
    pub name: String,
    /// The indexed table.
    pub table: String,
    /// The `CREATE INDEX` statement.
    pub sql: Option<String>,
}

/// The SQL helpers on `conn`, checking fragments against `policy`.
#[derive(Clone, Copy)]
pub struct SqlOps<'a> {
    conn: &'a dyn SqlConnection,
    policy: &'a SqlPolicy,
}

impl std::fmt::Debug for SqlOps<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlOps").field("dialect", &self.conn.dialect()).field("policy", self.policy).finish()
    }
}

fn quoted(name: &str) -> Result<String> {
    Ok(Identifier::new(name)?.quoted())
}

/// The fields of a serialisable record, as column names and values.
fn record<T: Serialize + ?Sized>(table: &str, data: &T) -> Result<(Vec<String>, Vec<SqlValue>)> {
    let Value::Object(fields) = crate::engine::encode_record(table, data)? else {
        return Err(Error::validation(format!("a row for {table:?} must be a map or struct of columns")));
    };
    if fields.is_empty() {
        return Err(Error::validation(format!("a row for {table:?} needs at least one column")));
    }
    let mut columns = Vec::with_capacity(fields.len());
    let mut values = Vec::with_capacity(fields.len());
    for (column, value) in &fields {
        columns.push(quoted(column)?);
        values.push(SqlValue::from_json(value));
    }
    Ok((columns, values))
}

impl<'a> SqlOps<'a> {
    /// The helpers on `conn` with `policy`.
    #[must_use]
    pub fn new(conn: &'a dyn SqlConnection, policy: &'a SqlPolicy) -> Self {
        Self { conn, policy }
    }

    // ----- schema -----

    /// `CREATE TABLE IF NOT EXISTS "<name>" ("<col>" <type>, …)`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad name or type (nothing is created); SQLite's error.
    pub fn create_table(&self, name: &str, columns: &[(&str, &str)]) -> Result<()> {
        if columns.is_empty() {
            return Err(Error::validation(format!("table {name:?} needs at least one column")));
        }
        let mut definitions = Vec::with_capacity(columns.len());
        for (column, column_type) in columns {
            check_column_type(column_type)?;
            definitions.push(format!("{} {}", quoted(column)?, self.portable(column_type)));
        }
        self.run(&format!("CREATE TABLE IF NOT EXISTS {} ({})", quoted(name)?, definitions.join(", ")), &[])?;
        Ok(())
    }

    /// `CREATE [UNIQUE] INDEX IF NOT EXISTS "<name>" ON "<table>" ("<col>", …)`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad name; SQLite's error.
    pub fn create_index(&self, name: &str, table: &str, columns: &[&str], unique: bool) -> Result<()> {
        let columns: Vec<String> = columns.iter().map(|c| quoted(c)).collect::<Result<_>>()?;
        if columns.is_empty() {
            return Err(Error::validation(format!("index {name:?} needs at least one column")));
        }
        let unique = if unique { "UNIQUE " } else { "" };
        let sql = format!(
            "CREATE {unique}INDEX IF NOT EXISTS {} ON {} ({})",
            quoted(name)?,
            quoted(table)?,
            columns.join(", ")
        );
        self.run(&sql, &[]).map(drop)
    }

    /// `DROP TABLE IF EXISTS "<name>"`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad name; SQLite's error.
    pub fn drop_table(&self, name: &str) -> Result<()> {
        self.run(&format!("DROP TABLE IF EXISTS {}", quoted(name)?), &[]).map(drop)
    }

    /// `DROP INDEX IF EXISTS "<name>"`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad name; SQLite's error.
    pub fn drop_index(&self, name: &str) -> Result<()> {
        self.run(&format!("DROP INDEX IF EXISTS {}", quoted(name)?), &[]).map(drop)
    }

    /// Whether a table named `name` exists.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn table_exists(&self, name: &str) -> Result<bool> {
        let sql = match self.conn.dialect() {
            Dialect::Sqlite => "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)",
            Dialect::Postgres => {
                "SELECT CASE WHEN EXISTS(SELECT 1 FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = ?) THEN 1 ELSE 0 END"
            }
        };
        Ok(self.scalar(sql, &[SqlValue::from(name)])?.is_some_and(|value| value == SqlValue::Integer(1)))
    }

    /// The tables of the file, by name (SQLite's own left out).
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn list_tables(&self) -> Result<Vec<String>> {
        let sql = match self.conn.dialect() {
            Dialect::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
            }
            Dialect::Postgres => {
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
            }
        };
        self.conn.rows(sql, &[], None, Fence::Open)?.iter().map(|row| text_column(row, 0)).collect()
    }

    /// The columns of `table`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad name; SQLite's error.
    pub fn get_table_schema(&self, table: &str) -> Result<Vec<ColumnInfo>> {
        let sql = match self.conn.dialect() {
            Dialect::Sqlite => format!("PRAGMA table_info({})", quoted(table)?),
            Dialect::Postgres => format!(
                "SELECT (c.ordinal_position - 1)::bigint, c.column_name::text, upper(c.data_type)::text, \
                 CASE WHEN c.is_nullable = 'NO' THEN 1 ELSE 0 END, c.column_default::text, \
                 CASE WHEN EXISTS(SELECT 1 FROM information_schema.table_constraints t \
                   JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name) \
                   WHERE t.constraint_type = 'PRIMARY KEY' AND k.table_schema = c.table_schema \
                   AND k.table_name = c.table_name AND k.column_name = c.column_name) THEN 1 ELSE 0 END \
                 FROM information_schema.columns c WHERE c.table_schema = current_schema() \
                 AND c.table_name = '{}' ORDER BY c.ordinal_position",
                crate::identifier::Identifier::new(table)?.as_str()
            ),
        };
        let rows = self.conn.rows(&sql, &[], None, Fence::Open)?;
        rows.iter()
            .map(|row| {
                Ok(ColumnInfo {
                    cid: integer_column(row, 0),
                    name: text_column(row, 1)?,
                    column_type: text_column(row, 2)?,
                    notnull: integer_column(row, 3) != 0,
                    default_value: text_column(row, 4).ok(),
                    pk: integer_column(row, 5) > 0,
                })
            })
            .collect()
    }

    /// The indexes of `table` (every table's with `None`), by name.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn list_indexes(&self, table: Option<&str>) -> Result<Vec<IndexInfo>> {
        let sql = match self.conn.dialect() {
            Dialect::Sqlite => {
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND (?1 IS NULL OR tbl_name = ?1) ORDER BY name"
            }
            Dialect::Postgres => {
                "SELECT indexname::text, tablename::text, indexdef FROM pg_indexes \
                 WHERE schemaname = current_schema() AND ($1::text IS NULL OR tablename = $1) ORDER BY indexname"
            }
        };
        let rows = self.conn.rows(sql, &[SqlValue::from(table)], None, Fence::Open)?;
        rows.iter()
            .map(|row| {
                Ok(IndexInfo { name: text_column(row, 0)?, table: text_column(row, 1)?, sql: text_column(row, 2).ok() })
            })
            .collect()
    }

    /// `ALTER TABLE "<table>" ADD COLUMN "<column>" <type> [DEFAULT <value>]`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad name or type; SQLite's error.
    pub fn alter_table_add_column(
        &self,
        table: &str,
        column: &str,
        column_type: &str,
        default: Option<&SqlValue>,
    ) -> Result<()> {
        check_added_column_type(column_type)?;
        let default = default.map(|value| format!(" DEFAULT {}", value.to_literal())).unwrap_or_default();
        let column_type = self.portable(column_type);
        let sql = format!("ALTER TABLE {} ADD COLUMN {} {column_type}{default}", quoted(table)?, quoted(column)?);
        self.run(&sql, &[]).map(drop)
    }

    // ----- rows -----

    /// Inserts `data` (a struct or map of column values) into `table`; returns its rowid.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for bad names or a value that is not a map; SQLite's error.
    pub fn sql_insert<T: Serialize + ?Sized>(&self, table: &str, data: &T) -> Result<i64> {
        let (columns, values) = record(table, data)?;
        let marks = vec!["?"; columns.len()].join(", ");
        self.run(&format!("INSERT INTO {} ({}) VALUES ({marks})", quoted(table)?, columns.join(", ")), &values)?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Inserts `rows` (structs or maps of column values) into `table`; returns how many. The
    /// columns are those of the first row; a later row lacking one stores NULL there, and a
    /// later row with a column the first lacks is refused (so no value is dropped unseen).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for bad names, a row that is not a map, or a column the first row
    /// lacks (naming the row); [`Error::EncodeRow`]; SQLite's error.
    pub fn import_rows<T: Serialize>(&self, table: &str, rows: &[T]) -> Result<usize> {
        let encode = |row: &T| match crate::engine::encode_record(table, row)? {
            Value::Object(fields) => Ok(fields),
            _ => Err(Error::validation(format!("a row for {table:?} must be a map or struct of columns"))),
        };
        let records = rows.iter().map(encode).collect::<Result<Vec<_>>>()?;
        let Some(first) = records.first() else { return Ok(0) };
        let names: Vec<&String> = first.keys().collect();
        if names.is_empty() {
            return Err(Error::validation(format!("a row for {table:?} needs at least one column")));
        }
        let mut params = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            if let Some(extra) = record.keys().find(|column| !first.contains_key(*column)) {
                return Err(Error::validation(format!(
                    "row {index} for {table:?} has column {extra:?}, which the first row (whose columns are imported) lacks"
                )));
            }
            params
                .push(names.iter().map(|name| record.get(*name).map_or(SqlValue::Null, SqlValue::from_json)).collect());
        }
        let columns = names.iter().map(|name| quoted(name)).collect::<Result<Vec<_>>>()?;
        let marks = vec!["?"; columns.len()].join(", ");
        let sql = format!("INSERT INTO {} ({}) VALUES ({marks})", quoted(table)?, columns.join(", "));
        self.conn.execute_many(&sql, &params, Fence::Open)?;
        Ok(records.len())
    }

    /// The rowid of the last row inserted on this connection (by any statement), as SQLite's
    /// `last_insert_rowid()`; 0 before any insert.
    #[must_use]
    pub fn last_insert_rowid(&self) -> i64 {
        self.conn.last_insert_rowid()
    }

    /// Sets the columns of `data` on the rows matching `condition`; returns how many changed.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for bad names or condition; SQLite's error.
    pub fn sql_update<T: Serialize + ?Sized>(
        &self,
        table: &str,
        data: &T,
        condition: &str,
        params: impl AsRef<[SqlValue]>,
    ) -> Result<usize> {
        self.policy.check(condition, super::Clause::Where)?;
        let (columns, mut values) = record(table, data)?;
        let sets: Vec<String> = columns.iter().map(|c| format!("{c} = ?")).collect();
        values.extend_from_slice(params.as_ref());
        let sql = format!("UPDATE {} SET {} WHERE {condition}", quoted(table)?, sets.join(", "));
        self.conn.execute(&sql, &values, self.fence(table, Some(Write::Update), self.policy, &[]))
    }

    /// Deletes the rows matching `condition`; returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad name or condition; SQLite's error.
    pub fn sql_delete(&self, table: &str, condition: &str, params: impl AsRef<[SqlValue]>) -> Result<usize> {
        self.policy.check(condition, super::Clause::Where)?;
        let sql = format!("DELETE FROM {} WHERE {condition}", quoted(table)?);
        self.conn.execute(&sql, params.as_ref(), self.fence(table, Some(Write::Delete), self.policy, &[]))
    }

    /// Inserts `data`, or updates the row it conflicts with on `conflict` columns (with no
    /// conflict columns, replaces the row). Returns the rowid of the row written, inserted or
    /// updated (Python NanaSQLite returns the last *inserted* rowid, stale after an update),
    /// or 0 when a conflict changed nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for bad names; SQLite's error.
    pub fn upsert<T: Serialize + ?Sized>(&self, table: &str, data: &T, conflict: &[&str]) -> Result<i64> {
        let (columns, values) = record(table, data)?;
        let marks = vec!["?"; columns.len()].join(", ");
        let table = quoted(table)?;
        let postgres = self.conn.dialect() == Dialect::Postgres;
        let sql = if conflict.is_empty() {
            if postgres {
                return Err(Error::validation("an upsert on PostgreSQL needs its conflict columns"));
            }
            format!("INSERT OR REPLACE INTO {table} ({}) VALUES ({marks})", columns.join(", "))
        } else {
            let keys: Vec<String> = conflict.iter().map(|c| quoted(c)).collect::<Result<_>>()?;
            let updates: Vec<String> =
                columns.iter().filter(|c| !keys.contains(c)).map(|c| format!("{c} = excluded.{c}")).collect();
            let action =
                if updates.is_empty() { "NOTHING".to_owned() } else { format!("UPDATE SET {}", updates.join(", ")) };
            format!(
                "INSERT INTO {table} ({}) VALUES ({marks}) ON CONFLICT ({}) DO {action}",
                columns.join(", "),
                keys.join(", ")
            )
        };
        if postgres {
            self.run(&sql, &values)?;
            return Ok(self.conn.last_insert_rowid());
        }
        match self.scalar(&format!("{sql} RETURNING rowid"), &values)? {
            Some(SqlValue::Integer(rowid)) => Ok(rowid),
            _ => Ok(0),
        }
    }

    // ----- queries -----

    /// The rows `query` selects.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for bad parts (nothing runs); SQLite's error.
    pub fn query(&self, query: &Query) -> Result<Vec<Row>> {
        let (sql, params) = query.select_sql(self.policy)?;
        let policy = query.effective_policy(self.policy);
        self.conn.rows(&sql, &params, None, self.fence(query.table_name(), None, &policy, &[]))
    }

    /// The number of rows `query`'s table and filter select.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn count(&self, query: &Query) -> Result<u64> {
        let (sql, params) = query.count_sql(self.policy)?;
        let policy = query.effective_policy(self.policy);
        let fence = self.fence(query.table_name(), None, &policy, &["count"]);
        match self.conn.rows(&sql, &params, Some(1), fence)?.pop().and_then(|row| row.values().first().cloned()) {
            Some(SqlValue::Integer(count)) => Ok(u64::try_from(count).unwrap_or_default()),
            _ => Ok(0),
        }
    }

    /// Whether `query`'s table and filter select any row.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn exists(&self, query: &Query) -> Result<bool> {
        let (sql, params) = query.exists_sql(self.policy)?;
        let policy = query.effective_policy(self.policy);
        let found = self.conn.rows(&sql, &params, Some(1), self.fence(query.table_name(), None, &policy, &[]))?;
        Ok(found.first().and_then(|row| row.values().first()) == Some(&SqlValue::Integer(1)))
    }

    /// Runs one statement of the caller's (not validated: it is the caller's SQL; values go
    /// in as parameters); returns the rows it changed. Transaction control (`BEGIN`, `COMMIT`,
    /// `ROLLBACK`, `END`, `SAVEPOINT`, `RELEASE`) is refused: it would end the store's own
    /// transaction; use the stores' `transaction` or `begin`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for transaction control; SQLite's error.
    pub fn execute(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Result<usize> {
        self.conn.execute(sql, params.as_ref(), Fence::Caller)
    }

    /// Runs `sql` once per parameter list (wrap it in a transaction to make it atomic);
    /// returns the rows changed in all.
    ///
    /// # Errors
    ///
    /// SQLite's error, at the first list that fails.
    pub fn execute_many(&self, sql: &str, params: &[Vec<SqlValue>]) -> Result<usize> {
        self.conn.execute_many(sql, params, Fence::Caller)
    }

    /// The first row of the caller's query, if any. The statement must only read (SQLite's
    /// own judgement, `sqlite3_stmt_readonly`): a write is refused before it runs, wherever the
    /// query runs.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a statement that writes, or for transaction control;
    /// SQLite's error.
    pub fn fetch_one(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Result<Option<Row>> {
        Ok(self.conn.rows(sql, params.as_ref(), Some(1), Fence::CallerQuery)?.pop())
    }

    /// Every row of the caller's query, which must only read, as for
    /// [`fetch_one`](Self::fetch_one).
    ///
    /// # Errors
    ///
    /// As [`fetch_one`](Self::fetch_one).
    pub fn fetch_all(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Result<Vec<Row>> {
        self.conn.rows(sql, params.as_ref(), None, Fence::CallerQuery)
    }

    // ----- utilities -----

    /// Rebuilds the file to reclaim space (`VACUUM`); not inside a transaction.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn vacuum(&self) -> Result<()> {
        self.sqlite_only("vacuum")?;
        self.conn.execute_batch("VACUUM")
    }

    /// `Err(Unsupported)` for `operation` on a backend other than SQLite.
    fn sqlite_only(&self, operation: &'static str) -> Result<()> {
        match self.conn.dialect() {
            Dialect::Sqlite => Ok(()),
            Dialect::Postgres => Err(Error::Unsupported { operation, backend: "postgres" }),
        }
    }

    /// A column type as this backend spells it: SQLite's names as they are; on PostgreSQL
    /// `INTEGER` is a 64-bit `BIGINT` (an `INTEGER PRIMARY KEY` one generated as SQLite's rowid
    /// is), `REAL` a `DOUBLE PRECISION` and `BLOB` a `BYTEA`, so that values keep their range.
    fn portable(&self, column_type: &str) -> String {
        if self.conn.dialect() == Dialect::Sqlite {
            return column_type.to_owned();
        }
        let upper = column_type.to_ascii_uppercase();
        let upper = upper.replace(" AUTOINCREMENT", "");
        if let Some(rest) = upper.strip_prefix("INTEGER PRIMARY KEY") {
            return format!("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY{rest}");
        }
        let words: Vec<&str> = upper.split(' ').collect();
        let mut out: Vec<String> = Vec::with_capacity(words.len());
        for word in words {
            out.push(
                match word {
                    "INTEGER" | "INT" => "BIGINT",
                    "REAL" | "DOUBLE" | "FLOAT" => "DOUBLE PRECISION",
                    "BLOB" => "BYTEA",
                    other => other,
                }
                .to_owned(),
            );
        }
        out.join(" ")
    }

    /// Reads (`value` `None`) or sets a whitelisted pragma; reading returns its first value.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a pragma or value not allowed; SQLite's error.
    pub fn pragma(&self, name: &str, value: Option<&SqlValue>) -> Result<Option<SqlValue>> {
        self.sqlite_only("pragma")?;
        check_pragma(name, value.is_some())?;
        let Some(value) = value else {
            return self.conn.pragma(name, None);
        };
        let literal = match value {
            SqlValue::Integer(i) => i.to_string(),
            SqlValue::Real(f) if f.is_finite() => f.to_string(),
            SqlValue::Text(text) => {
                check_pragma_text(text)?;
                format!("'{text}'")
            }
            other => return Err(Error::validation(format!("a pragma value must be a number or text, not {other:?}"))),
        };
        self.conn.pragma(name, Some(&literal))
    }

    /// Runs a statement built from checked names and bound values only.
    fn run(&self, sql: &str, params: &[SqlValue]) -> Result<usize> {
        self.conn.execute(sql, params, Fence::Open)
    }

    /// The first column of the first row of a statement built from checked names and values.
    fn scalar(&self, sql: &str, params: &[SqlValue]) -> Result<Option<SqlValue>> {
        Ok(self.conn.rows(sql, params, Some(1), Fence::Open)?.pop().and_then(|row| row.values().first().cloned()))
    }

    /// The fence of a helper's statement on `table`.
    fn fence<'f>(
        &self,
        table: &'f str,
        write: Option<Write>,
        policy: &'f SqlPolicy,
        internal: &'f [&'f str],
    ) -> Fence<'f> {
        Fence::Helper { table, write, policy, internal }
    }
}

/// Column `i` of a catalogue row as text.
fn text_column(row: &Row, i: usize) -> Result<String> {
    match row.values().get(i) {
        Some(SqlValue::Text(text)) => Ok(text.clone()),
        other => Err(Error::validation(format!("expected text in column {i} of a catalogue row, found {other:?}"))),
    }
}

/// Column `i` of a catalogue row as an integer (0 when it is not one).
fn integer_column(row: &Row, i: usize) -> i64 {
    match row.values().get(i) {
        Some(SqlValue::Integer(i)) => *i,
        _ => 0,
    }
}
