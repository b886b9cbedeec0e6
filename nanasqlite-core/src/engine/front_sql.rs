//! The SQL helpers of a store's front end, written once for both stores ([`SqlFront`]): each
//! takes its arguments (owned, as a call of the async store outlives its caller's borrows),
//! and runs one [`Sql`] operation through [`Front::run`].

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::{Backup, Front, Kind, Rekey, Restore, RunTransaction, Size, Sql, Transaction};
use crate::encryption::Encryption;
use crate::error::{Error, Result};
use crate::sql::{ColumnInfo, IndexInfo, Query, Row, SqlOps, SqlValue};
use crate::storage::{End, Storage};

/// `data` as the JSON of a row for `table`, encoded on the caller's thread.
///
/// # Errors
///
/// [`Error::EncodeRow`] naming `table`.
pub fn encode_record<T: Serialize + ?Sized>(table: &str, data: &T) -> Result<Value> {
    serde_json::to_value(data).map_err(|source| Error::EncodeRow { table: table.to_owned(), source })
}

/// The SQL helpers, backup and restore of every [`Front`]; each store's method of the same
/// name calls these.
pub trait SqlFront<S: Storage>: Front<S> {
    /// Runs `work` on the SQL helpers of this store's connection, as an operation of `kind`.
    fn sql<R: Send + 'static>(
        &self,
        name: &'static str,
        kind: Kind,
        work: impl FnMut(&SqlOps<'_>) -> Result<R> + Send + 'static,
    ) -> Self::Answer<R> {
        self.run(Ok(Sql::new(name, kind, work)))
    }

    /// [`Error::Transaction`] while a transaction is open on the store: `what` cannot run then.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`]; [`Error::Transaction`].
    fn outside_transaction(&self, what: &str) -> Result<()> {
        self.ensure_open()?;
        if self.transaction_open() {
            return Err(Error::Transaction { message: format!("cannot {what} during a transaction") });
        }
        Ok(())
    }

    /// Creates table `name` with `columns` (name, type).
    fn create_table(&self, name: &str, columns: &[(&str, &str)]) -> Self::Answer<()> {
        let name = name.to_owned();
        let columns: Vec<(String, String)> = columns.iter().map(|(c, t)| ((*c).to_owned(), (*t).to_owned())).collect();
        self.sql("create_table", Kind::Write, move |sql| {
            let columns: Vec<(&str, &str)> = columns.iter().map(|(c, t)| (c.as_str(), t.as_str())).collect();
            sql.create_table(&name, &columns)
        })
    }

    /// Creates index `name` on `columns` of `table`.
    fn create_index(&self, name: &str, table: &str, columns: &[&str], unique: bool) -> Self::Answer<()> {
        let (name, table) = (name.to_owned(), table.to_owned());
        let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
        self.sql("create_index", Kind::Write, move |sql| {
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            sql.create_index(&name, &table, &columns, unique)
        })
    }

    /// Drops table `name`.
    fn drop_table(&self, name: &str) -> Self::Answer<()> {
        let name = name.to_owned();
        self.sql("drop_table", Kind::Write, move |sql| sql.drop_table(&name))
    }

    /// Drops index `name`.
    fn drop_index(&self, name: &str) -> Self::Answer<()> {
        let name = name.to_owned();
        self.sql("drop_index", Kind::Write, move |sql| sql.drop_index(&name))
    }

    /// Whether table `name` exists.
    fn table_exists(&self, name: &str) -> Self::Answer<bool> {
        let name = name.to_owned();
        self.sql("table_exists", Kind::Read, move |sql| sql.table_exists(&name))
    }

    /// Every table's name.
    fn list_tables(&self) -> Self::Answer<Vec<String>> {
        self.sql("list_tables", Kind::Read, |sql| sql.list_tables())
    }

    /// The columns of `table`.
    fn get_table_schema(&self, table: &str) -> Self::Answer<Vec<ColumnInfo>> {
        let table = table.to_owned();
        self.sql("get_table_schema", Kind::Read, move |sql| sql.get_table_schema(&table))
    }

    /// The indexes of `table`, or of every table.
    fn list_indexes(&self, table: Option<&str>) -> Self::Answer<Vec<IndexInfo>> {
        let table = table.map(str::to_owned);
        self.sql("list_indexes", Kind::Read, move |sql| sql.list_indexes(table.as_deref()))
    }

    /// Adds `column` of `column_type` to `table`.
    fn alter_table_add_column(
        &self,
        table: &str,
        column: &str,
        column_type: &str,
        default: Option<SqlValue>,
    ) -> Self::Answer<()> {
        let (table, column, column_type) = (table.to_owned(), column.to_owned(), column_type.to_owned());
        self.sql("alter_table_add_column", Kind::Write, move |sql| {
            sql.alter_table_add_column(&table, &column, &column_type, default.as_ref())
        })
    }

    /// Inserts one row; its rowid.
    fn sql_insert<T: Serialize + ?Sized>(&self, table: &str, data: &T) -> Self::Answer<i64> {
        let table = table.to_owned();
        let insert = encode_record(&table, data)
            .map(|data| Sql::new("sql_insert", Kind::Write, move |sql| sql.sql_insert(&table, &data)));
        self.run(insert)
    }

    /// Inserts `rows`; how many.
    fn import_rows<T: Serialize>(&self, table: &str, rows: &[T]) -> Self::Answer<usize> {
        let table = table.to_owned();
        let records = rows.iter().map(|row| encode_record(&table, row)).collect::<Result<Vec<Value>>>();
        self.run(
            records.map(|records| Sql::new("import_rows", Kind::Write, move |sql| sql.import_rows(&table, &records))),
        )
    }

    /// Updates the rows matching `condition`; how many.
    fn sql_update<T: Serialize + ?Sized>(
        &self,
        table: &str,
        data: &T,
        condition: &str,
        params: &[SqlValue],
    ) -> Self::Answer<usize> {
        let (table, condition, params) = (table.to_owned(), condition.to_owned(), params.to_vec());
        self.run(encode_record(&table, data).map(|data| {
            Sql::new("sql_update", Kind::Write, move |sql| sql.sql_update(&table, &data, &condition, &params))
        }))
    }

    /// Deletes the rows matching `condition`; how many.
    fn sql_delete(&self, table: &str, condition: &str, params: &[SqlValue]) -> Self::Answer<usize> {
        let (table, condition, params) = (table.to_owned(), condition.to_owned(), params.to_vec());
        self.sql("sql_delete", Kind::Write, move |sql| sql.sql_delete(&table, &condition, &params))
    }

    /// Inserts or updates one row on `conflict`; its rowid.
    fn upsert<T: Serialize + ?Sized>(&self, table: &str, data: &T, conflict: &[&str]) -> Self::Answer<i64> {
        let table = table.to_owned();
        let conflict: Vec<String> = conflict.iter().map(|c| (*c).to_owned()).collect();
        self.run(encode_record(&table, data).map(|data| {
            Sql::new("upsert", Kind::Write, move |sql| {
                let conflict: Vec<&str> = conflict.iter().map(String::as_str).collect();
                sql.upsert(&table, &data, &conflict)
            })
        }))
    }

    /// The rows `query` selects.
    fn query(&self, query: Query) -> Self::Answer<Vec<Row>> {
        self.sql("query", Kind::Read, move |sql| sql.query(&query))
    }

    /// How many rows `query` selects.
    fn count(&self, query: Query) -> Self::Answer<u64> {
        self.sql("count", Kind::Read, move |sql| sql.count(&query))
    }

    /// Whether `query` selects a row.
    fn exists(&self, query: Query) -> Self::Answer<bool> {
        self.sql("exists", Kind::Read, move |sql| sql.exists(&query))
    }

    /// The rowid of the last insert on the read-write connection.
    fn last_insert_rowid(&self) -> Self::Answer<i64> {
        self.sql("last_insert_rowid", Kind::Exclusive, |sql| Ok(sql.last_insert_rowid()))
    }

    /// Runs one writing statement; rows changed.
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Self::Answer<usize> {
        let (sql, params) = (sql.to_owned(), params.to_vec());
        self.sql("execute", Kind::Write, move |ops| ops.execute(&sql, &params))
    }

    /// Runs one statement per parameter list, in one transaction; rows changed.
    fn execute_many(&self, sql: &str, params: Vec<Vec<SqlValue>>) -> Self::Answer<usize> {
        let sql = sql.to_owned();
        self.sql("execute_many", Kind::Write, move |ops| ops.execute_many(&sql, &params))
    }

    /// The first row of a read-only statement.
    fn fetch_one(&self, sql: &str, params: &[SqlValue]) -> Self::Answer<Option<Row>> {
        let (sql, params) = (sql.to_owned(), params.to_vec());
        self.sql("fetch_one", Kind::Read, move |ops| ops.fetch_one(&sql, &params))
    }

    /// Every row of a read-only statement.
    fn fetch_all(&self, sql: &str, params: &[SqlValue]) -> Self::Answer<Vec<Row>> {
        let (sql, params) = (sql.to_owned(), params.to_vec());
        self.sql("fetch_all", Kind::Read, move |ops| ops.fetch_all(&sql, &params))
    }

    /// Rebuilds the file.
    fn vacuum(&self) -> Self::Answer<()> {
        self.sql("vacuum", Kind::Exclusive, |sql| sql.vacuum())
    }

    /// Reads (or sets) pragma `name`.
    fn pragma(&self, name: &str, value: Option<SqlValue>) -> Self::Answer<Option<SqlValue>> {
        let name = name.to_owned();
        self.sql("pragma", Kind::Exclusive, move |sql| sql.pragma(&name, value.as_ref()))
    }

    /// The database's size in bytes.
    fn get_db_size(&self) -> Self::Answer<u64> {
        self.run(Ok(Size))
    }

    /// Copies the database to `dest`.
    fn backup(&self, dest: &Path) -> Self::Answer<()> {
        self.run(Ok(Backup::new(dest.to_path_buf())))
    }

    /// Runs `work` in one transaction of its own on the writer: all of it or, on an error or a
    /// panic, none.
    fn transaction<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction<'_, S>) -> Result<R> + Send + 'static,
    ) -> Self::Answer<R> {
        self.transaction_ending(move |tx| (work(tx), End::Commit))
    }

    /// As [`transaction`](Self::transaction), with `work` saying how the transaction ends when
    /// it returns `Ok`: committed, or rolled back. The async store's `begin` serves its
    /// handle's steps from such a `work`.
    fn transaction_ending<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction<'_, S>) -> (Result<R>, End) + Send + 'static,
    ) -> Self::Answer<R> {
        self.run(Ok(RunTransaction::new(work)))
    }

    /// Replaces the whole database with the one in `source`, outside any transaction.
    fn restore(&self, source: &Path) -> Self::Answer<()> {
        let restore =
            self.outside_transaction("restore").map(|()| Restore::new(source.to_path_buf(), Arc::clone(self.shared())));
        Self::then(self.run(restore), Self::now)
    }

    /// Re-encrypts every value with `to` (or decrypts them), outside any transaction.
    fn rekey(&self, to: Option<Encryption>) -> Self::Answer<()> {
        self.run(self.outside_transaction("rekey").map(|()| Rekey::new(to)))
    }
}

impl<S: Storage, F: Front<S>> SqlFront<S> for F {}
