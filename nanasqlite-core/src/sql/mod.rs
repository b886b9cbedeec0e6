//! SQL helpers: validation of identifiers and fragments, values and rows.

mod validate;

pub use validate::{
    Clause, DEFAULT_ALLOWED_FUNCTIONS, DEFAULT_MAX_CLAUSE_LENGTH, READABLE_PRAGMAS, SqlPolicy, WRITABLE_PRAGMAS,
    check_added_column_type, check_column_type, check_pragma, check_pragma_text,
};
