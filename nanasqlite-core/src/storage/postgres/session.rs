//! One connection's conversation with the server, in as few round trips as it can be:
//! statements prepared once per connection, and a transaction's writes held back and sent with
//! its `BEGIN` and `COMMIT` in one message, so that a write costs one round trip, and a group of
//! writes committed together costs one too.
//!
//! Writes are held only while nothing needs an answer from the server: any statement that
//! returns rows or a count first sends what is held, in order. A held write that fails makes
//! its transaction fail as a whole, at the latest when it commits.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt::Write as _;

use postgres::types::ToSql;
use postgres::{Client, Row, Statement};

use super::{PostgresConfig, backend};
use crate::error::Result;

/// Where the conversation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No transaction: each statement commits on its own.
    Idle,
    /// A transaction whose `BEGIN` is held, not yet sent (nothing of it reached the server).
    Held,
    /// A transaction the server knows of.
    Open,
}

pub(super) struct Session {
    client: RefCell<Client>,
    statements: RefCell<HashMap<String, Statement>>,
    /// Statements to send before the next one that needs an answer.
    held: RefCell<String>,
    /// Whether the held transaction holds a write (else committing it sends nothing).
    holds_writes: Cell<bool>,
    state: Cell<State>,
    config: PostgresConfig,
    application: &'static str,
    read_only: bool,
    /// The token of the store this connection belongs to, set on every (re)connect as
    /// `nanasqlite.origin`: the triggers put it in their notices, and the store's listener
    /// ignores the notices of its own writes by it.
    origin: std::sync::Arc<str>,
}

impl Session {
    pub(super) fn connect(
        config: &PostgresConfig,
        application: &'static str,
        read_only: bool,
        origin: std::sync::Arc<str>,
    ) -> Result<Self> {
        let session = Self {
            client: RefCell::new(Self::open(config, application, read_only, &origin)?),
            statements: RefCell::default(),
            held: RefCell::default(),
            holds_writes: Cell::new(false),
            state: Cell::new(State::Idle),
            config: config.clone(),
            application,
            read_only,
            origin,
        };
        Ok(session)
    }

    fn open(config: &PostgresConfig, application: &str, read_only: bool, origin: &str) -> Result<Client> {
        let mut client = config.connect(application)?;
        // The token is made of hex digits only (`origin_token`), so it goes into the SQL as is.
        let mut setup = format!("SET nanasqlite.origin = '{origin}';");
        if read_only {
            // A reader only reads, as SQLite's read-only connections.
            setup.push_str("SET default_transaction_read_only = on;");
        }
        client.batch_execute(&setup).map_err(backend)?;
        Ok(client)
    }

    pub(super) fn into_client(self) -> Client {
        self.client.into_inner()
    }

    /// Reconnects if the connection was lost outside a transaction (a transaction cannot
    /// survive its connection: it fails, and the next statement after it reconnects).
    fn ensure_connected(&self) -> Result<()> {
        if self.state.get() == State::Idle && self.client.borrow().is_closed() {
            *self.client.borrow_mut() = Self::open(&self.config, self.application, self.read_only, &self.origin)?;
            self.statements.borrow_mut().clear();
        }
        Ok(())
    }

    /// Runs `work` on the client, after what is held. A statement of its own (outside a
    /// transaction) that finds the connection lost runs once more on a new connection: nothing
    /// of it happened, since the server does not finish a statement whose client is gone.
    fn run<R>(
        &self,
        work: impl Fn(&mut Client, &mut HashMap<String, Statement>) -> std::result::Result<R, postgres::Error>,
    ) -> Result<R> {
        self.send_held()?;
        self.ensure_connected()?;
        let attempt = || work(&mut self.client.borrow_mut(), &mut self.statements.borrow_mut());
        match attempt() {
            Err(error) if self.state.get() == State::Idle && self.client.borrow().is_closed() => {
                tracing::info!(%error, "the connection to PostgreSQL was lost; reconnecting once");
                self.ensure_connected()?;
                attempt().map_err(backend)
            }
            outcome => outcome.map_err(backend),
        }
    }

    /// Sends what is held (the transaction's `BEGIN` first, if it is held too).
    fn send_held(&self) -> Result<()> {
        if self.held.borrow().is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut *self.held.borrow_mut());
        if self.state.get() == State::Held {
            // Nothing of the transaction reached the server yet: a lost connection is harmless.
            self.state.set(State::Idle);
            self.ensure_connected()?;
            let sent = self.client.borrow_mut().batch_execute(&held).map_err(backend);
            self.state.set(State::Open);
            return sent;
        }
        self.client.borrow_mut().batch_execute(&held).map_err(backend)
    }

    /// Runs `sql` (statements whose values are literals) in the same message as what is held,
    /// one round trip for both; the rows of its last statement, as text. Inside a transaction
    /// only (a statement of its own has nothing held to go with).
    pub(super) fn query_with_held(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut message = std::mem::take(&mut *self.held.borrow_mut());
        message.push_str(sql);
        if self.state.get() == State::Held {
            // Nothing of the transaction reached the server yet: a lost connection is harmless.
            self.state.set(State::Idle);
            self.ensure_connected()?;
            self.state.set(State::Open);
        }
        let answers = self.client.borrow_mut().simple_query(&message).map_err(backend)?;
        let mut rows = Vec::new();
        for answer in answers {
            match answer {
                postgres::SimpleQueryMessage::Row(row) => {
                    rows.push((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect());
                }
                // A statement's end: the rows wanted are the last statement's.
                postgres::SimpleQueryMessage::CommandComplete(_) => {}
                _ => {}
            }
        }
        Ok(rows)
    }

    fn prepared(
        client: &mut Client,
        statements: &mut HashMap<String, Statement>,
        sql: &str,
    ) -> std::result::Result<Statement, postgres::Error> {
        if let Some(statement) = statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub(super) fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.run(|client, statements| {
            let statement = Self::prepared(client, statements, sql)?;
            client.query(&statement, params)
        })
    }

    pub(super) fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.run(|client, statements| {
            let statement = Self::prepared(client, statements, sql)?;
            client.execute(&statement, params)
        })
    }

    pub(super) fn batch(&self, sql: &str) -> Result<()> {
        self.run(|client, _| client.batch_execute(sql))
    }

    /// Holds `sql` (a statement without parameters, its values as literals) to be sent with the
    /// next statement, or with the commit; outside a transaction, runs it now.
    pub(super) fn hold(&self, sql: impl FnOnce(&mut String)) -> Result<()> {
        if self.state.get() == State::Idle {
            let mut statement = String::new();
            sql(&mut statement);
            return self.batch(&statement);
        }
        sql(&mut self.held.borrow_mut());
        self.holds_writes.set(true);
        Ok(())
    }

    /// Begins a transaction (held until a statement needs the server).
    pub(super) fn begin(&self, begin: &str) {
        debug_assert_eq!(self.state.get(), State::Idle, "no transaction is open");
        let mut held = self.held.borrow_mut();
        held.clear();
        let _ = write!(held, "{begin};");
        self.holds_writes.set(false);
        self.state.set(State::Held);
    }

    /// Commits, sending what is held with the `COMMIT`: one round trip for a transaction that
    /// only wrote. A commit is never sent again on a new connection (it would commit nothing
    /// and say so only with a warning).
    pub(super) fn commit(&self) -> Result<()> {
        let mut held = std::mem::take(&mut *self.held.borrow_mut());
        let state = self.state.replace(State::Idle);
        if state == State::Held && !self.holds_writes.get() {
            return Ok(()); // nothing reached the server, and nothing is held: nothing to commit
        }
        held.push_str("COMMIT");
        if state == State::Held {
            self.ensure_connected()?;
        }
        let committed = self.client.borrow_mut().batch_execute(&held).map_err(backend);
        if committed.is_err() && !self.client.borrow().is_closed() {
            let _ = self.client.borrow_mut().batch_execute("ROLLBACK");
        }
        committed
    }

    /// Rolls back: nothing to send when nothing reached the server.
    pub(super) fn rollback(&self) -> Result<()> {
        self.held.borrow_mut().clear();
        match self.state.replace(State::Idle) {
            State::Open if !self.client.borrow().is_closed() => {
                self.client.borrow_mut().batch_execute("ROLLBACK").map_err(backend)
            }
            _ => Ok(()),
        }
    }

    /// Runs `work`, a query of the caller's, so that it cannot write: in a read-only
    /// transaction of its own, or, inside an open transaction, in a read-only savepoint that
    /// is undone afterwards (so the transaction may write again).
    pub(super) fn read_only<R>(&self, work: impl FnOnce() -> Result<R>) -> Result<R> {
        if !self.in_transaction() {
            self.begin("BEGIN READ ONLY");
            let result = work();
            let ended = if result.is_ok() { self.commit() } else { self.rollback() };
            return result.and_then(|rows| ended.map(|()| rows));
        }
        self.batch("SAVEPOINT nanasqlite_query; SET LOCAL transaction_read_only = on")?;
        let result = work();
        let undone = self.batch("ROLLBACK TO SAVEPOINT nanasqlite_query; RELEASE SAVEPOINT nanasqlite_query");
        result.and_then(|rows| undone.map(|()| rows))
    }

    /// Whether a transaction is open (held or sent).
    pub(super) fn in_transaction(&self) -> bool {
        self.state.get() != State::Idle
    }
}

/// `text` as an escape-string literal (`E'…'`, backslashes and quotes doubled): read the same
/// whatever the session's `standard_conforming_strings`, which a caller's own SQL may turn off.
/// The caller has refused NUL, which PostgreSQL text cannot hold.
pub(super) fn text_literal(out: &mut String, text: &str) {
    out.push_str("E'");
    for c in text.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
}

/// `bytes` as a `bytea` literal, in hex, as an escape string (see [`text_literal`]).
pub(super) fn bytes_literal(out: &mut String, bytes: &[u8]) {
    out.push_str(r"E'\\x");
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out.push_str("'::bytea");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_quote_what_they_must() {
        let mut out = String::new();
        text_literal(&mut out, r"it's a \ 'test'");
        assert_eq!(out, r"E'it''s a \\ ''test'''");
        let mut out = String::new();
        bytes_literal(&mut out, &[0, 255, 16]);
        assert_eq!(out, r"E'\\x00ff10'::bytea");
    }
}
