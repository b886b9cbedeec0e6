//! The SQL helpers' statements on a SQLite connection, fenced by SQLite's authorizer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::{ErrorCode, Statement, params_from_iter};

use super::SqliteStorage;
use crate::error::{Error, Result};
use crate::sql::{Dialect, Fence, Row, SqlConnection, SqlPolicy, SqlValue, Write};

impl SqlConnection for SqliteStorage {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[SqlValue], fence: Fence<'_>) -> Result<usize> {
        self.fenced(sql, fence, |statement| Ok(statement.execute(params_from_iter(params))?))
    }

    fn execute_many(&self, sql: &str, params: &[Vec<SqlValue>], fence: Fence<'_>) -> Result<usize> {
        self.fenced(sql, fence, |statement| {
            params.iter().try_fold(0, |changed, params| Ok(changed + statement.execute(params_from_iter(params))?))
        })
    }

    fn rows(&self, sql: &str, params: &[SqlValue], limit: Option<usize>, fence: Fence<'_>) -> Result<Vec<Row>> {
        self.fenced(sql, fence, |statement| {
            if matches!(fence, Fence::CallerQuery) && !statement.readonly() {
                return Err(crate::sql::not_a_query());
            }
            let columns: Arc<[String]> = statement.column_names().into_iter().map(str::to_owned).collect();
            let mut rows = statement.query(params_from_iter(params))?;
            let mut out = Vec::new();
            while limit.is_none_or(|limit| out.len() < limit) {
                let Some(row) = rows.next()? else { break };
                let values = (0..columns.len())
                    .map(|i| row.get_ref(i).map(SqlValue::from_ref))
                    .collect::<rusqlite::Result<_>>()?;
                out.push(Row::new(Arc::clone(&columns), values));
            }
            Ok(out)
        })
    }

    fn execute_batch(&self, sql: &str) -> Result<()> {
        Ok(self.conn.execute_batch(sql)?)
    }

    fn last_insert_rowid(&self) -> i64 {
        self.conn.last_insert_rowid()
    }

    fn pragma(&self, name: &str, literal: Option<&str>) -> Result<Option<SqlValue>> {
        self.run_pragma(name, literal)
    }
}

impl SqliteStorage {
    /// Prepares `sql` and runs `work` on it, with SQLite's authorizer enforcing `fence` while it
    /// is prepared and run. Fenced statements are never taken from (or left in) the statement
    /// cache: a cached statement would skip the authorizer.
    fn fenced<R>(&self, sql: &str, fence: Fence<'_>, work: impl FnOnce(&mut Statement<'_>) -> Result<R>) -> Result<R> {
        let Some(mut rule) = Rule::for_fence(fence) else {
            let mut statement = self.conn.prepare_cached(sql)?;
            return work(&mut statement);
        };
        if let Some(helper) = rule.helper.as_mut().filter(|helper| helper.write.is_some()) {
            helper.triggers = self.triggers_on(&helper.table)?;
        }
        let (refusal, pragma) = (Arc::clone(&rule.refusal), Arc::clone(&rule.pragma));
        self.conn.authorizer(Some(move |context: AuthContext<'_>| rule.decide(&context)))?;
        let result = self.conn.prepare(sql).map_err(Error::from).and_then(|mut statement| work(&mut statement));
        self.conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>)?;
        if pragma.load(Ordering::Relaxed) {
            // A caller's own `PRAGMA` (as `synchronous = FULL`) may change what the connection
            // keeps track of, as `pragma()` would.
            self.note_settings();
        }
        result.map_err(|error| match refusal.lock().take() {
            Some(why) if error.sqlite_code() == Some(ErrorCode::AuthorizationForStatementDenied) => {
                Error::validation(format!("the database refused the statement: {why}"))
            }
            _ => error,
        })
    }
}

impl SqliteStorage {
    /// The names of the triggers on `table`: what a helper's write may fire.
    fn triggers_on(&self, table: &str) -> Result<Vec<String>> {
        let mut statement =
            self.conn.prepare_cached("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?1")?;
        let names = statement.query_map([table], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(names)
    }
}

/// What a fence allows, owned (the authorizer outlives the borrow of the fence).
struct Rule {
    helper: Option<HelperRule>,
    /// Why the first refused action was refused.
    refusal: Arc<Mutex<Option<String>>>,
    /// The statement reads or sets a pragma.
    pragma: Arc<AtomicBool>,
}

struct HelperRule {
    table: String,
    write: Option<Write>,
    policy: SqlPolicy,
    internal: Vec<String>,
    /// The triggers on `table` (for a helper that writes): their bodies run as defined.
    triggers: Vec<String>,
}

impl Rule {
    fn for_fence(fence: Fence<'_>) -> Option<Self> {
        let helper = match fence {
            Fence::Open => return None,
            Fence::Caller | Fence::CallerQuery => None,
            Fence::Helper { table, write, policy, internal } => Some(HelperRule {
                table: table.to_owned(),
                write,
                policy: policy.clone(),
                internal: internal.iter().map(|name| (*name).to_owned()).collect(),
                triggers: Vec::new(),
            }),
        };
        Some(Self { helper, refusal: Arc::default(), pragma: Arc::default() })
    }

    fn decide(&self, context: &AuthContext<'_>) -> Authorization {
        if matches!(context.action, AuthAction::Pragma { .. }) {
            self.pragma.store(true, Ordering::Relaxed);
        }
        let refused = match &self.helper {
            None => caller_refusal(&context.action),
            // A trigger on the helper's table, fired by its write, runs as it was defined.
            // SQLite names a view or a common table expression (`WITH x AS (…)`) as the
            // accessor of what it reads too, so no other accessor is trusted: a fragment's
            // CTE reading another table is refused as that read would be.
            Some(helper) if context.accessor.is_some_and(|accessor| helper.fires(accessor)) => None,
            Some(helper) => helper.refusal(&context.action),
        };
        match refused {
            None => Authorization::Allow,
            Some(why) => {
                self.refusal.lock().get_or_insert(why);
                Authorization::Deny
            }
        }
    }
}

/// The caller's own statements may do anything but control the transaction.
fn caller_refusal(action: &AuthAction<'_>) -> Option<String> {
    matches!(action, AuthAction::Transaction { .. } | AuthAction::Savepoint { .. }).then(|| {
        "transaction control (BEGIN, COMMIT, ROLLBACK, END, SAVEPOINT, RELEASE) would end the store's own \
         transaction; use `transaction` or `begin` instead"
            .to_owned()
    })
}

impl HelperRule {
    fn refusal(&self, action: &AuthAction<'_>) -> Option<String> {
        let ours = |table: &str| table.eq_ignore_ascii_case(&self.table);
        match *action {
            AuthAction::Select => None,
            AuthAction::Read { table_name, .. } if ours(table_name) => None,
            AuthAction::Read { table_name, .. } => {
                Some(format!("it reads table {table_name:?}, and this helper may read {:?} only", self.table))
            }
            AuthAction::Function { function_name } if self.may_call(function_name) => None,
            AuthAction::Function { function_name } => {
                Some(format!("it calls {function_name}(), which the SQL policy does not allow"))
            }
            AuthAction::Update { table_name, .. } if self.write == Some(Write::Update) && ours(table_name) => None,
            AuthAction::Delete { table_name } if self.write == Some(Write::Delete) && ours(table_name) => None,
            ref other => Some(format!("{other:?} is not part of this helper")),
        }
    }

    /// Whether `accessor` is a trigger on the helper's table (its write fires it).
    fn fires(&self, accessor: &str) -> bool {
        self.triggers.iter().any(|trigger| trigger.eq_ignore_ascii_case(accessor))
    }

    /// Functions a fragment may call, the helper's own, and the ones SQLite calls for the
    /// operators the validator lets through (`LIKE`, `GLOB`, and `->`/`->>` as json_extract).
    fn may_call(&self, function: &str) -> bool {
        match function {
            "like" | "glob" => true,
            "->" | "->>" => self.policy.permits_call("JSON_EXTRACT"),
            name => self.internal.iter().any(|own| own.eq_ignore_ascii_case(name)) || self.policy.permits_call(name),
        }
    }
}
