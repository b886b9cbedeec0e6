//! [`Query`]: a validated `SELECT` on one table.

use super::{Clause, SqlPolicy, SqlValue};
use crate::error::Result;
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
    limit: Option<u64>,
    offset: Option<u64>,
    policy: Option<SqlPolicy>,
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

    /// A `WHERE` condition with `?` placeholders and their values.
    pub fn filter(mut self, condition: impl Into<String>, params: Vec<SqlValue>) -> Self {
        self.filter = Some(condition.into());
        self.params = params;
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

    /// At most this many rows (`0` gives none).
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Skip this many rows first.
    pub fn offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
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

    fn effective_policy(&self, store: &SqlPolicy) -> SqlPolicy {
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
        match (self.limit, self.offset) {
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
