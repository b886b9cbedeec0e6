//! [`Query`]: a validated `SELECT` on one table.

use super::{Clause, SqlPolicy, SqlValue};
use crate::error::{Error, Result};
use crate::identifier::Identifier;

/// A `SELECT` on one table, built step by step and validated before it runs: the table and
/// plain column names are identifiers; `filter`, `order_by`, `group_by` and expression columns
/// are checked against the store's [`SqlPolicy`] (and this query's, if set). Values always
/// go in as bound parameters.
///
/// # Examples
///
/// ```
/// use nanasqlite_core::{params, sql::Query};
///
/// let query = Query::table("users")
///     .columns(["id", "name", "COUNT(*) AS n"])
///     .filter("age > ? AND name LIKE ?", params![20, "A%"])
///     .group_by("name")
///     .order_by("name ASC")
///     .limit(10)
///     .offset(20);
/// # let _ = query;
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Query {
    table: String,
    columns: Vec<String>,
    filter: Option<String>,
    params: Vec<SqlValue>,
    order_by: Option<String>,
    group_by: Option<String>,
    limit: Option<Count>,
    offset: Option<Count>,
    policy: Option<SqlPolicy>,
}

/// A `LIMIT` or `OFFSET`, or why it cannot be one (reported when the query is built).
type Count = std::result::Result<i64, String>;

/// A number of rows for [`Query::limit`] and [`Query::offset`]: any integer type. SQLite takes
/// 0 to `i64::MAX`; a value outside that is an [`Error::Validation`] when the query runs.
pub trait RowCount: Copy + std::fmt::Display {
    /// The count as SQLite's integer, if it is one.
    fn to_i64(self) -> Option<i64>;
}

macro_rules! row_count {
    ($($t:ty),*) => {$(
        impl RowCount for $t {
            fn to_i64(self) -> Option<i64> {
                i64::try_from(self).ok().filter(|n| *n >= 0)
            }
        }
    )*};
}

row_count!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

fn count(what: &str, n: impl RowCount) -> Count {
    n.to_i64().ok_or_else(|| format!("{what} {n} is out of range: SQLite takes 0 to {}", i64::MAX))
}

impl Query {
    /// All rows and columns of `table`.
    pub fn table(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            columns: Vec::new(),
            filter: None,
            params: Vec::new(),
            order_by: None,
            group_by: None,
            limit: None,
            offset: None,
            policy: None,
        }
    }

    /// The columns to return: names (quoted for you) or expressions (`COUNT(*) AS n`).
    /// Default: every column.
    pub fn columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.columns = columns.into_iter().map(Into::into).collect();
        self
    }

    /// A `WHERE` condition with `?` placeholders and their values (`params![…]`, `&params![…]`,
    /// a slice or an array of [`SqlValue`]).
    pub fn filter(mut self, condition: impl Into<String>, params: impl AsRef<[SqlValue]>) -> Self {
        self.filter = Some(condition.into());
        self.params = params.as_ref().to_vec();
        self
    }

    /// An `ORDER BY` list (`name ASC, id DESC`).
    pub fn order_by(mut self, order: impl Into<String>) -> Self {
        self.order_by = Some(order.into());
        self
    }

    /// A `GROUP BY` list.
    pub fn group_by(mut self, group: impl Into<String>) -> Self {
        self.group_by = Some(group.into());
        self
    }

    /// At most this many rows (`0` gives none); any integer type.
    pub fn limit(mut self, limit: impl RowCount) -> Self {
        self.limit = Some(count("limit", limit));
        self
    }

    /// Skip this many rows first; any integer type.
    pub fn offset(mut self, offset: impl RowCount) -> Self {
        self.offset = Some(count("offset", offset));
        self
    }

    /// This query's own function lists and limits, on top of the store's (see
    /// [`SqlPolicy::merged`]).
    pub fn policy(mut self, policy: SqlPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The name of the queried table.
    #[must_use]
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The policy this query's fragments are checked against: the store's, with the query's own
    /// on top.
    pub(crate) fn effective_policy(&self, store: &SqlPolicy) -> SqlPolicy {
        self.policy.as_ref().map_or_else(|| store.clone(), |own| store.merged(own))
    }

    fn where_part(&self, policy: &SqlPolicy) -> Result<String> {
        match &self.filter {
            Some(condition) => {
                policy.check(condition, Clause::Where)?;
                Ok(format!(" WHERE {condition}"))
            }
            None => Ok(String::new()),
        }
    }

    fn column_list(&self, policy: &SqlPolicy) -> Result<String> {
        if self.columns.is_empty() {
            return Ok("*".to_owned());
        }
        let mut list = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            match Identifier::new(column) {
                Ok(name) => list.push(name.quoted()),
                Err(_) => {
                    policy.check(column, Clause::Column)?;
                    list.push(column.clone());
                }
            }
        }
        Ok(list.join(", "))
    }

    /// `SELECT … FROM "<table>" [WHERE] [GROUP BY] [ORDER BY] [LIMIT] [OFFSET]`, and its parameters.
    pub(crate) fn select_sql(&self, store: &SqlPolicy) -> Result<(String, Vec<SqlValue>)> {
        let policy = self.effective_policy(store);
        let table = Identifier::new(&self.table)?.quoted();
        let mut sql = format!("SELECT {} FROM {table}{}", self.column_list(&policy)?, self.where_part(&policy)?);
        if let Some(group) = &self.group_by {
            policy.check(group, Clause::GroupBy)?;
            sql.push_str(&format!(" GROUP BY {group}"));
        }
        if let Some(order) = &self.order_by {
            policy.check(order, Clause::OrderBy)?;
            sql.push_str(&format!(" ORDER BY {order}"));
        }
        let checked = |n: &Option<Count>| n.clone().transpose().map_err(Error::validation);
        match (checked(&self.limit)?, checked(&self.offset)?) {
            (Some(limit), Some(offset)) => sql.push_str(&format!(" LIMIT {limit} OFFSET {offset}")),
            (Some(limit), None) => sql.push_str(&format!(" LIMIT {limit}")),
            (None, Some(offset)) => sql.push_str(&format!(" LIMIT -1 OFFSET {offset}")),
            (None, None) => {}
        }
        Ok((sql, self.params.clone()))
    }

    /// `SELECT COUNT(*) FROM "<table>" [WHERE]`.
    pub(crate) fn count_sql(&self, store: &SqlPolicy) -> Result<(String, Vec<SqlValue>)> {
        let policy = self.effective_policy(store);
        let table = Identifier::new(&self.table)?.quoted();
        Ok((format!("SELECT COUNT(*) FROM {table}{}", self.where_part(&policy)?), self.params.clone()))
    }

    /// `SELECT EXISTS(SELECT 1 FROM "<table>" [WHERE])`.
    pub(crate) fn exists_sql(&self, store: &SqlPolicy) -> Result<(String, Vec<SqlValue>)> {
        let policy = self.effective_policy(store);
        let table = Identifier::new(&self.table)?.quoted();
        Ok((format!("SELECT EXISTS(SELECT 1 FROM {table}{})", self.where_part(&policy)?), self.params.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params;

    #[test]
    fn builds_select_in_sql_order() {
        let (sql, params) = Query::table("users")
            .columns(["id", "group", "COUNT(*) AS n"])
            .filter("age > ?", params![20])
            .group_by("name")
            .order_by("name ASC")
            .limit(10)
            .offset(5)
            .select_sql(&SqlPolicy::default())
            .unwrap();
        assert_eq!(
            sql,
            r#"SELECT "id", "group", COUNT(*) AS n FROM "users" WHERE age > ? GROUP BY name ORDER BY name ASC LIMIT 10 OFFSET 5"#
        );
        assert_eq!(params, params![20]);
        let (sql, _) = Query::table("t").offset(3).select_sql(&SqlPolicy::default()).unwrap();
        assert_eq!(sql, r#"SELECT * FROM "t" LIMIT -1 OFFSET 3"#);
        let (sql, _) = Query::table("t").limit(10_usize).offset(2_i32).select_sql(&SqlPolicy::default()).unwrap();
        assert_eq!(sql, r#"SELECT * FROM "t" LIMIT 10 OFFSET 2"#);
    }

    #[test]
    fn counts_out_of_range_are_validation_errors() {
        let policy = SqlPolicy::default();
        for query in
            [Query::table("t").limit(u64::MAX), Query::table("t").offset(-1), Query::table("t").limit(i128::MAX)]
        {
            let error = query.select_sql(&policy).unwrap_err();
            assert!(matches!(&error, Error::Validation { message } if message.contains("out of range")), "{error}");
        }
    }

    #[test]
    fn rejects_bad_parts_before_building() {
        let policy = SqlPolicy::default();
        assert!(Query::table("t; DROP TABLE t").select_sql(&policy).is_err());
        assert!(Query::table("t").order_by("id; DROP TABLE t--").select_sql(&policy).is_err());
        assert!(Query::table("t").columns(["HEX(x)"]).select_sql(&policy).is_err());
        let own = SqlPolicy::default().allow(["HEX"]);
        assert!(Query::table("t").columns(["HEX(x)"]).policy(own).select_sql(&policy).is_ok());
    }
}
