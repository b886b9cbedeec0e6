//! [`SqlConnection`]: what the SQL helpers need from a backend's connection.

use super::{Row, SqlPolicy, SqlValue};
use crate::error::Result;

/// The SQL dialect a connection speaks; the helpers pick their statements by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// What a statement may do, enforced by the database itself while the statement is prepared
/// (SQLite's authorizer): a second line behind the fragment validator, so that even a hole in
/// the validator cannot reach another table.
#[derive(Clone, Copy, Debug)]
pub enum Fence<'a> {
    /// A statement the helpers built from checked names and bound values only.
    Open,
    /// A helper's statement holding fragments: it may read `table` only, call only what
    /// `policy` allows (and `internal`, the helper's own calls), and write only as `write` says.
    Helper {
        /// The one table the statement may read (and write, if `write`).
        table: &'a str,
        /// The helper's own write, if it has one.
        write: Option<Write>,
        /// The functions fragments may call.
        policy: &'a SqlPolicy,
        /// Functions the helper itself calls (`count` for `count`).
        internal: &'a [&'a str],
    },
    /// The caller's own statement (`execute`): anything but transaction control, which would
    /// end the store's own transaction.
    Caller,
    /// The caller's own query (`fetch_one`, `fetch_all`): a statement that only reads, as the
    /// database itself judges it (SQLite's `sqlite3_stmt_readonly`; PostgreSQL runs it in a
    /// read-only transaction), wherever it runs.
    CallerQuery,
}

/// The refusal of a write passed to `fetch_one` or `fetch_all`.
pub(crate) fn not_a_query() -> crate::Error {
    crate::Error::validation(
        "fetch_one and fetch_all run statements that only read; this one writes (or may): run it with execute",
    )
}

/// The one write a helper's statement makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// `UPDATE` of the helper's table.
    Update,
    /// `DELETE` from the helper's table.
    Delete,
}

/// A connection the SQL helpers ([`SqlOps`](super::SqlOps)) run their statements on.
/// Statements use `?` placeholders; a backend whose server wants others rewrites them.
pub trait SqlConnection {
    /// The dialect of this connection.
    fn dialect(&self) -> Dialect;

    /// Runs one statement with `params` bound, inside `fence`; the rows it changed.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`](crate::Error::Validation) when the fence refused the statement;
    /// the backend's error.
    fn execute(&self, sql: &str, params: &[SqlValue], fence: Fence<'_>) -> Result<usize>;

    /// Runs one statement once per parameter list, inside `fence`; the rows changed in all.
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute), at the first list that fails.
    fn execute_many(&self, sql: &str, params: &[Vec<SqlValue>], fence: Fence<'_>) -> Result<usize>;

    /// The rows of one statement with `params` bound, inside `fence`, at most `limit` of them.
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute).
    fn rows(&self, sql: &str, params: &[SqlValue], limit: Option<usize>, fence: Fence<'_>) -> Result<Vec<Row>>;

    /// Runs statements without parameters (`VACUUM`, a pragma assignment).
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn execute_batch(&self, sql: &str) -> Result<()>;

    /// The rowid of the last row this connection inserted.
    fn last_insert_rowid(&self) -> i64;

    /// Reads pragma `name` (its first value), or sets it to `literal` when given; both were
    /// checked by the caller. A backend whose own behaviour hangs on a pragma overrides this
    /// to keep track of it.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn pragma(&self, name: &str, literal: Option<&str>) -> Result<Option<SqlValue>> {
        plain_pragma(self, name, literal)
    }
}

/// [`SqlConnection::pragma`] as any connection runs it: reads the first value, or sets it.
pub(crate) fn plain_pragma<C: SqlConnection + ?Sized>(
    conn: &C,
    name: &str,
    literal: Option<&str>,
) -> Result<Option<SqlValue>> {
    match literal {
        None => Ok(conn
            .rows(&format!("PRAGMA {name}"), &[], Some(1), Fence::Open)?
            .pop()
            .and_then(|row| row.values().first().cloned())),
        Some(literal) => conn.execute_batch(&format!("PRAGMA {name} = {literal}")).map(|()| None),
    }
}
