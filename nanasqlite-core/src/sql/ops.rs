//! The SQL helpers, on one connection: shared by the sync store, its transactions and the
//! async store's jobs, so the rules live in one place.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params_from_iter};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Query, Row, SqlPolicy, SqlValue, check_added_column_type, check_column_type, check_pragma, check_pragma_text,
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
#[derive(Clone, Copy, Debug)]
pub struct SqlOps<'a> {
    conn: &'a Connection,
    policy: &'a SqlPolicy,
}

fn quoted(name: &str) -> Result<String> {
    Ok(Identifier::new(name)?.quoted())
}

/// The fields of a serialisable record, as column names and values.
fn record<T: Serialize + ?Sized>(table: &str, data: &T) -> Result<(Vec<String>, Vec<SqlValue>)> {
    let value = serde_json::to_value(data).map_err(|source| Error::Encode { key: table.to_owned(), source })?;
    let Value::Object(fields) = value else {
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
    pub fn new(conn: &'a Connection, policy: &'a SqlPolicy) -> Self {
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
            definitions.push(format!("{} {column_type}", quoted(column)?));
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
        let sql = "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)";
        Ok(self.conn.prepare_cached(sql)?.query_row([name], |row| row.get(0))?)
    }

    /// The tables of the file, by name (SQLite's own left out).
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn list_tables(&self) -> Result<Vec<String>> {
        let sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name";
        let mut statement = self.conn.prepare_cached(sql)?;
        let names = statement.query_map([], |row| row.get(0))?;
        Ok(names.collect::<rusqlite::Result<_>>()?)
    }

    /// The columns of `table`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad name; SQLite's error.
    pub fn get_table_schema(&self, table: &str) -> Result<Vec<ColumnInfo>> {
        let mut statement = self.conn.prepare(&format!("PRAGMA table_info({})", quoted(table)?))?;
        let columns = statement.query_map([], |row| {
            Ok(ColumnInfo {
                cid: row.get(0)?,
                name: row.get(1)?,
                column_type: row.get(2)?,
                notnull: row.get(3)?,
                default_value: row.get(4)?,
                pk: row.get::<_, i64>(5)? > 0,
            })
        })?;
        Ok(columns.collect::<rusqlite::Result<_>>()?)
    }

    /// The indexes of `table` (every table's with `None`), by name.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn list_indexes(&self, table: Option<&str>) -> Result<Vec<IndexInfo>> {
        let sql = "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' \
                   AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND (?1 IS NULL OR tbl_name = ?1) ORDER BY name";
        let mut statement = self.conn.prepare_cached(sql)?;
        let indexes = statement
            .query_map([table], |row| Ok(IndexInfo { name: row.get(0)?, table: row.get(1)?, sql: row.get(2)? }))?;
        Ok(indexes.collect::<rusqlite::Result<_>>()?)
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
        self.run(&format!("UPDATE {} SET {} WHERE {condition}", quoted(table)?, sets.join(", ")), &values)
    }

    /// Deletes the rows matching `condition`; returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad name or condition; SQLite's error.
    pub fn sql_delete(&self, table: &str, condition: &str, params: impl AsRef<[SqlValue]>) -> Result<usize> {
        self.policy.check(condition, super::Clause::Where)?;
        self.run(&format!("DELETE FROM {} WHERE {condition}", quoted(table)?), params.as_ref())
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
        let sql = if conflict.is_empty() {
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
        let mut statement = self.conn.prepare_cached(&format!("{sql} RETURNING rowid"))?;
        let rowid = statement.query_row(params_from_iter(&values), |row| row.get(0)).optional()?;
        Ok(rowid.unwrap_or(0))
    }

    // ----- queries -----

    /// The rows `query` selects.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for bad parts (nothing runs); SQLite's error.
    pub fn query(&self, query: &Query) -> Result<Vec<Row>> {
        let (sql, params) = query.select_sql(self.policy)?;
        self.fetch_all(&sql, &params)
    }

    /// The number of rows `query`'s table and filter select.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn count(&self, query: &Query) -> Result<u64> {
        let (sql, params) = query.count_sql(self.policy)?;
        let count: i64 = self.conn.prepare_cached(&sql)?.query_row(params_from_iter(&params), |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Whether `query`'s table and filter select any row.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    pub fn exists(&self, query: &Query) -> Result<bool> {
        let (sql, params) = query.exists_sql(self.policy)?;
        Ok(self.conn.prepare_cached(&sql)?.query_row(params_from_iter(&params), |row| row.get(0))?)
    }

    /// Runs one statement of the caller's (not validated: it is the caller's SQL; values go
    /// in as parameters); returns the rows it changed.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn execute(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Result<usize> {
        self.run(sql, params.as_ref())
    }

    /// Runs `sql` once per parameter list (wrap it in a transaction to make it atomic);
    /// returns the rows changed in all.
    ///
    /// # Errors
    ///
    /// SQLite's error, at the first list that fails.
    pub fn execute_many(&self, sql: &str, params: &[Vec<SqlValue>]) -> Result<usize> {
        let mut statement = self.conn.prepare_cached(sql)?;
        params.iter().try_fold(0, |changed, params| Ok(changed + statement.execute(params_from_iter(params))?))
    }

    /// The first row of the caller's query, if any.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn fetch_one(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Result<Option<Row>> {
        Ok(self.rows(sql, params.as_ref(), Some(1))?.pop())
    }

    /// Every row of the caller's query.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn fetch_all(&self, sql: &str, params: impl AsRef<[SqlValue]>) -> Result<Vec<Row>> {
        self.rows(sql, params.as_ref(), None)
    }

    // ----- utilities -----

    /// Rebuilds the file to reclaim space (`VACUUM`); not inside a transaction.
    ///
    /// # Errors
    ///
    /// SQLite's error.
    pub fn vacuum(&self) -> Result<()> {
        self.conn.execute_batch("VACUUM")?;
        Ok(())
    }

    /// Reads (`value` `None`) or sets a whitelisted pragma; reading returns its first value.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a pragma or value not allowed; SQLite's error.
    pub fn pragma(&self, name: &str, value: Option<&SqlValue>) -> Result<Option<SqlValue>> {
        check_pragma(name, value.is_some())?;
        let Some(value) = value else {
            return Ok(self
                .rows(&format!("PRAGMA {name}"), &[], Some(1))?
                .pop()
                .and_then(|row| row.values().first().cloned()));
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
        self.conn.execute_batch(&format!("PRAGMA {name} = {literal}"))?;
        Ok(None)
    }

    fn run(&self, sql: &str, params: &[SqlValue]) -> Result<usize> {
        Ok(self.conn.prepare_cached(sql)?.execute(params_from_iter(params))?)
    }

    fn rows(&self, sql: &str, params: &[SqlValue], limit: Option<usize>) -> Result<Vec<Row>> {
        let mut statement = self.conn.prepare_cached(sql)?;
        let columns: Arc<[String]> = statement.column_names().into_iter().map(str::to_owned).collect();
        let mut rows = statement.query(params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let values =
                (0..columns.len()).map(|i| row.get_ref(i).map(SqlValue::from_ref)).collect::<rusqlite::Result<_>>()?;
            out.push(Row::new(Arc::clone(&columns), values));
            if limit.is_some_and(|limit| out.len() >= limit) {
                break;
            }
        }
        Ok(out)
    }
}
