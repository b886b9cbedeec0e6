//! The SQL helpers' statements on a PostgreSQL connection: `?` placeholders numbered, values
//! converted to the types the server expects, and result columns read back as [`SqlValue`]s.
//!
//! PostgreSQL has no authorizer, so the fence SQLite enforces while preparing a statement is
//! not enforced here: fragments are held by the validator alone (which refuses subqueries and
//! names outside the policy), and the caller's own statements may not control transactions.

use std::error::Error as StdError;
use std::sync::Arc;

use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use super::{PostgresStorage, backend};
use crate::error::{Error, Result};
use crate::sql::{Dialect, Fence, Row, SqlConnection, SqlValue};

type BoxError = Box<dyn StdError + Sync + Send>;

impl SqlConnection for PostgresStorage {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[SqlValue], fence: Fence<'_>) -> Result<usize> {
        check_fence(sql, fence)?;
        let (sql, binds) = (numbered(sql), binds(params)?);
        let changed = self.execute(&sql, &refs(&binds))?;
        self.note_insert(&sql);
        Ok(usize::try_from(changed).unwrap_or(usize::MAX))
    }

    fn execute_many(&self, sql: &str, params: &[Vec<SqlValue>], fence: Fence<'_>) -> Result<usize> {
        check_fence(sql, fence)?;
        let sql = numbered(sql);
        let mut changed = 0;
        for params in params {
            let binds = binds(params)?;
            changed += self.execute(&sql, &refs(&binds))?;
        }
        self.note_insert(&sql);
        Ok(usize::try_from(changed).unwrap_or(usize::MAX))
    }

    fn rows(&self, sql: &str, params: &[SqlValue], limit: Option<usize>, fence: Fence<'_>) -> Result<Vec<Row>> {
        check_fence(sql, fence)?;
        let (sql, binds) = (numbered(sql), binds(params)?);
        let rows = if matches!(fence, Fence::CallerQuery) {
            self.query_read_only(&sql, &refs(&binds)).map_err(|error| match error.server_code() {
                // read_only_sql_transaction: the statement tried to write.
                Some("25006") => crate::sql::not_a_query(),
                _ => error,
            })?
        } else {
            self.query(&sql, &refs(&binds))?
        };
        let Some(first) = rows.first() else { return Ok(Vec::new()) };
        let columns: Arc<[String]> = first.columns().iter().map(|column| column.name().to_owned()).collect();
        rows.iter()
            .take(limit.unwrap_or(usize::MAX))
            .map(|row| {
                let values = (0..columns.len())
                    .map(|i| row.try_get::<_, Column>(i).map(|column| column.0).map_err(backend))
                    .collect::<Result<_>>()?;
                Ok(Row::new(Arc::clone(&columns), values))
            })
            .collect()
    }

    fn execute_batch(&self, sql: &str) -> Result<()> {
        self.batch(sql)
    }

    fn last_insert_rowid(&self) -> i64 {
        self.last_insert.get()
    }
}

impl PostgresStorage {
    /// After an `INSERT`, the value the session's sequence last gave (a serial or identity
    /// column's), as SQLite's rowid; 0 when the insert used none.
    fn note_insert(&self, sql: &str) {
        if sql.trim_start().get(..6).is_some_and(|start| start.eq_ignore_ascii_case("insert")) {
            let id =
                self.query("SELECT lastval()", &[]).ok().and_then(|rows| rows.first().map(|row| row.get::<_, i64>(0)));
            self.last_insert.set(id.unwrap_or(0));
        }
    }
}

/// The caller's statements may do anything but end the store's transaction.
fn check_fence(sql: &str, fence: Fence<'_>) -> Result<()> {
    if matches!(fence, Fence::Caller | Fence::CallerQuery) {
        let first = sql.trim_start().split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or_default();
        let control = ["begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release", "prepare"];
        if control.iter().any(|word| first.eq_ignore_ascii_case(word)) {
            return Err(Error::validation(format!(
                "{first} controls transactions, which the store does: use its transaction methods"
            )));
        }
    }
    Ok(())
}

/// `sql` with its `?` placeholders numbered `$1`, `$2`, … (those outside string literals,
/// quoted names and comments).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let (mut chars, mut n) = (sql.chars().peekable(), 0);
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                n += 1;
                out.push_str(&format!("${n}"));
            }
            _ => out.push(c),
        }
    }
    out
}

/// A value bound to a parameter, converted to the type the server expects there.
#[derive(Debug)]
struct Bind<'a>(&'a SqlValue);

/// `params` as the client binds them; text holding NUL, which PostgreSQL text cannot hold,
/// refused with [`Error::Validation`] before anything is sent.
fn binds(params: &[SqlValue]) -> Result<Vec<Bind<'_>>> {
    if params.iter().any(|param| matches!(param, SqlValue::Text(text) if text.contains('\0'))) {
        return Err(Error::validation("PostgreSQL text cannot hold the NUL character (\\0)"));
    }
    Ok(params.iter().map(Bind).collect())
}

fn refs<'a>(binds: &'a [Bind<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    binds.iter().map(|bind| bind as &(dyn ToSql + Sync)).collect()
}

impl ToSql for Bind<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> std::result::Result<IsNull, BoxError> {
        let mismatch = || -> BoxError { format!("cannot bind {:?} to a {ty} parameter", self.0).into() };
        match (self.0, ty) {
            (SqlValue::Null, _) => Ok(IsNull::Yes),
            (SqlValue::Integer(n), &Type::INT8) => n.to_sql(ty, out),
            (SqlValue::Integer(n), &Type::INT4) => i32::try_from(*n)?.to_sql(ty, out),
            (SqlValue::Integer(n), &Type::INT2) => i16::try_from(*n)?.to_sql(ty, out),
            (SqlValue::Integer(n), &Type::BOOL) => (*n != 0).to_sql(ty, out),
            #[allow(clippy::cast_precision_loss)]
            (SqlValue::Integer(n), &Type::FLOAT8) => (*n as f64).to_sql(ty, out),
            #[allow(clippy::cast_precision_loss)]
            (SqlValue::Integer(n), &Type::FLOAT4) => (*n as f32).to_sql(ty, out),
            (SqlValue::Real(x), &Type::FLOAT8) => x.to_sql(ty, out),
            #[allow(clippy::cast_possible_truncation)]
            (SqlValue::Real(x), &Type::FLOAT4) => (*x as f32).to_sql(ty, out),
            (SqlValue::Integer(n), text) if is_text(text) => n.to_string().to_sql(&Type::TEXT, out),
            (SqlValue::Real(x), text) if is_text(text) => x.to_string().to_sql(&Type::TEXT, out),
            (SqlValue::Text(s), text) if is_text(text) => s.to_sql(&Type::TEXT, out),
            (SqlValue::Text(s), &Type::JSON) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (SqlValue::Text(s), &Type::JSONB) => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (SqlValue::Blob(b), &Type::BYTEA) => b.to_sql(ty, out),
            _ => Err(mismatch()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text(ty: &Type) -> bool {
    matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN)
}

/// A result column as a [`SqlValue`], whatever its type.
struct Column(SqlValue);

impl<'a> FromSql<'a> for Column {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        Ok(Self(match *ty {
            Type::INT2 => SqlValue::Integer(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => SqlValue::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => SqlValue::Integer(i64::from_sql(ty, raw)?),
            Type::OID => SqlValue::Integer(u32::from_sql(ty, raw)?.into()),
            Type::BOOL => SqlValue::Integer(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => SqlValue::Real(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => SqlValue::Real(f64::from_sql(ty, raw)?),
            Type::NUMERIC => numeric(raw)?,
            Type::BYTEA => SqlValue::Blob(raw.to_vec()),
            Type::JSONB => SqlValue::Text(String::from_utf8(raw.get(1..).unwrap_or_default().to_vec())?),
            _ => SqlValue::Text(String::from_utf8(raw.to_vec())?),
        }))
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, BoxError> {
        Ok(Self(SqlValue::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A `NUMERIC` in PostgreSQL's binary form (base-10,000 digits): an integer when it has no
/// fraction and fits, else the nearest float (as SQLite gives `SUM` and `AVG`).
fn numeric(raw: &[u8]) -> std::result::Result<SqlValue, BoxError> {
    let word = |i: usize| -> std::result::Result<i16, BoxError> {
        let bytes = raw.get(2 * i..2 * i + 2).ok_or("a truncated NUMERIC")?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    };
    let (digits, weight, sign, scale) = (word(0)?, word(1)?, word(2)? as u16, word(3)?);
    if sign == 0xC000 {
        return Ok(SqlValue::Real(f64::NAN));
    }
    let mut value = 0f64;
    for i in 0..usize::try_from(digits)? {
        let exponent = i32::from(weight) - i32::try_from(i)?;
        value += f64::from(word(4 + i)?) * 10_000f64.powi(exponent);
    }
    if sign == 0x4000 {
        value = -value;
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok(if scale == 0 && value.abs() < 9.0e15 { SqlValue::Integer(value as i64) } else { SqlValue::Real(value) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_literals_names_and_comments() {
        assert_eq!(
            numbered("a = ? AND b = '?' AND \"c?\" = ? -- ?\n AND d = ?"),
            "a = $1 AND b = '?' AND \"c?\" = $2 -- ?\n AND d = $3"
        );
        assert_eq!(numbered("it''s ?"), "it''s $1");
    }

    #[test]
    fn transaction_control_is_refused_to_callers() {
        for sql in ["COMMIT", "  rollback", "BEGIN; DELETE FROM x", "savepoint a", "END"] {
            assert!(check_fence(sql, Fence::Caller).is_err(), "{sql}");
        }
        assert!(check_fence("SELECT 1", Fence::Caller).is_ok());
        assert!(check_fence("UPDATE commits SET x = 1", Fence::Caller).is_ok());
    }

    #[test]
    fn numerics_decode() {
        // 12345.67: ndigits 3, weight 1, positive, dscale 2: 1 2345 6700
        let raw: Vec<u8> = [3i16, 1, 0, 2, 1, 2345, 6700].iter().flat_map(|w| w.to_be_bytes()).collect();
        assert!(matches!(numeric(&raw).unwrap(), SqlValue::Real(x) if (x - 12345.67).abs() < 1e-9));
        let raw: Vec<u8> = [1i16, 0, 0x4000u16 as i16, 0, 42].iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(numeric(&raw).unwrap(), SqlValue::Integer(-42));
    }
}
