//! The SQL helpers' statements on a SQLite connection.

use std::sync::Arc;

use rusqlite::params_from_iter;

use super::SqliteStorage;
use crate::error::Result;
use crate::sql::{Dialect, Row, SqlConnection, SqlValue};

impl SqlConnection for SqliteStorage {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<usize> {
        Ok(self.conn.prepare_cached(sql)?.execute(params_from_iter(params))?)
    }

    fn rows(&self, sql: &str, params: &[SqlValue], limit: Option<usize>) -> Result<Vec<Row>> {
        let mut statement = self.conn.prepare_cached(sql)?;
        let columns: Arc<[String]> = statement.column_names().into_iter().map(str::to_owned).collect();
        let mut rows = statement.query(params_from_iter(params))?;
        let mut out = Vec::new();
        while limit.is_none_or(|limit| out.len() < limit) {
            let Some(row) = rows.next()? else { break };
            let values =
                (0..columns.len()).map(|i| row.get_ref(i).map(SqlValue::from_ref)).collect::<rusqlite::Result<_>>()?;
            out.push(Row::new(Arc::clone(&columns), values));
        }
        Ok(out)
    }

    fn execute_batch(&self, sql: &str) -> Result<()> {
        Ok(self.conn.execute_batch(sql)?)
    }

    fn last_insert_rowid(&self) -> i64 {
        self.conn.last_insert_rowid()
    }
}
