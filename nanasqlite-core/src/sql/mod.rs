//! SQL helpers: validation of fragments, column types and pragmas; values, rows, queries; and
//! the operations on a connection that the stores' SQL methods run.

mod connection;
#[cfg(test)]
mod escape_routes;
mod lexer;
mod ops;
mod query;
mod row;
mod validate;
mod value;

pub use connection::{Dialect, Fence, SqlConnection, Write};
pub(crate) use connection::{not_a_query, plain_pragma};
pub use ops::{ColumnInfo, IndexInfo, SqlOps};
pub use query::{Query, RowCount};
pub use row::Row;
pub use validate::{
    Clause, DEFAULT_ALLOWED_FUNCTIONS, DEFAULT_MAX_CLAUSE_LENGTH, READ_ONLY_PRAGMAS, READABLE_PRAGMAS, SqlPolicy,
    check_added_column_type, check_column_type, check_pragma, check_pragma_text,
};
pub use value::SqlValue;
