//! [`SqlConnection`]: what the SQL helpers need from a backend's connection.

use super::{Row, SqlValue};
use crate::error::Result;

/// The SQL dialect a connection speaks; the helpers pick their statements by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// SQLite.
    Sqlite,
}

/// A connection the SQL helpers ([`SqlOps`](super::SqlOps)) run their statements on.
/// Statements use `?` placeholders; a backend whose server wants others rewrites them.
pub trait SqlConnection {
    /// The dialect of this connection.
    fn dialect(&self) -> Dialect;

    /// Runs one statement with `params` bound; the rows it changed.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<usize>;

    /// The rows of one statement with `params` bound, at most `limit` of them.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn rows(&self, sql: &str, params: &[SqlValue], limit: Option<usize>) -> Result<Vec<Row>>;

    /// Runs statements without parameters (`VACUUM`, a pragma assignment).
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn execute_batch(&self, sql: &str) -> Result<()>;

    /// The rowid of the last row this connection inserted.
    fn last_insert_rowid(&self) -> i64;
}
