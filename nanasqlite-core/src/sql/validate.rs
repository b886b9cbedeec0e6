//! Validation of SQL fragments (WHERE, ORDER BY, GROUP BY, column lists), column types and
//! pragmas, before anything runs. Every check is one left-to-right scan: no backtracking
//! regular expressions, so hostile input of any length is rejected in linear time.

use std::collections::BTreeSet;

use super::lexer::{Kind, Token, tokens};
use crate::error::{Error, Result};

/// The SQL functions a fragment may call unless a policy says otherwise (Python NanaSQLite's 18).
pub const DEFAULT_ALLOWED_FUNCTIONS: [&str; 18] = [
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "ABS",
    "UPPER",
    "LOWER",
    "LENGTH",
    "ROUND",
    "COALESCE",
    "IFNULL",
    "NULLIF",
    "STRFTIME",
    "DATE",
    "TIME",
    "DATETIME",
    "JULIANDAY",
];

/// The longest fragment accepted unless a policy says otherwise.
pub const DEFAULT_MAX_CLAUSE_LENGTH: usize = 1000;

/// Where a fragment goes; the rules differ a little.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Clause {
    /// A `WHERE` condition.
    Where,
    /// An `ORDER BY` list.
    OrderBy,
    /// A `GROUP BY` list.
    GroupBy,
    /// One entry of a column list (`name`, `COUNT(*) AS n`, …).
    Column,
}

impl Clause {
    fn label(self) -> &'static str {
        match self {
            Self::Where => "where clause",
            Self::OrderBy => "order_by clause",
            Self::GroupBy => "group_by clause",
            Self::Column => "column",
        }
    }
}

/// Which functions fragments may call, and how long they may be: set per store and per query.
///
/// Names are compared case-insensitively (Python NanaSQLite compares them upper-cased, so its
/// lists only work in upper case).
///
/// # Examples
///
/// ```
/// use nanasqlite_core::sql::{Clause, SqlPolicy};
///
/// let policy = SqlPolicy::default();
/// assert!(policy.check("UPPER(name) = ?", Clause::Where).is_ok());
/// assert!(policy.check("HEX(name) = ?", Clause::Where).is_err());
/// assert!(policy.clone().allow(["hex"]).check("HEX(name) = ?", Clause::Where).is_ok());
/// assert!(policy.forbid(["UPPER"]).check("UPPER(name) = ?", Clause::Where).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlPolicy {
    allowed: BTreeSet<String>,
    forbidden: BTreeSet<String>,
    forbid_all: bool,
    replace_defaults: bool,
    max_clause_length: Option<usize>,
    strict: bool,
}

impl Default for SqlPolicy {
    fn default() -> Self {
        Self {
            allowed: BTreeSet::new(),
            forbidden: BTreeSet::new(),
            forbid_all: false,
            replace_defaults: false,
            max_clause_length: Some(DEFAULT_MAX_CLAUSE_LENGTH),
            strict: true,
        }
    }
}

fn upper_all<'a>(names: impl IntoIterator<Item = &'a str>) -> impl Iterator<Item = String> {
    names.into_iter().map(str::to_ascii_uppercase)
}

impl SqlPolicy {
    /// Also allows these functions. Keywords written like calls count as functions, as in
    /// Python NanaSQLite (`EXISTS (…)`, `CAST (…)`, `FILTER (…)` need allowing), except the
    /// operators `AND`, `OR`, `NOT`, `IN`, `IS`, `BETWEEN`, `LIKE`, `GLOB`, `CASE`, `WHEN`,
    /// `THEN`, `ELSE` and `ESCAPE`: a WHERE condition cannot hold a subquery, so they are safe.
    #[must_use]
    pub fn allow<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.allowed.extend(upper_all(names));
        self
    }

    /// Allows only the functions passed to [`allow`](Self::allow), not the 18 defaults.
    #[must_use]
    pub fn replace_defaults(mut self) -> Self {
        self.replace_defaults = true;
        self
    }

    /// Forbids these functions, even when allowed; `"*"` forbids every function.
    #[must_use]
    pub fn forbid<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        for name in upper_all(names) {
            if name == "*" {
                self.forbid_all = true;
            } else {
                self.forbidden.insert(name);
            }
        }
        self
    }

    /// The longest fragment accepted; `None` for no limit. Default [`DEFAULT_MAX_CLAUSE_LENGTH`].
    #[must_use]
    pub fn max_clause_length(mut self, max: Option<usize>) -> Self {
        self.max_clause_length = max;
        self
    }

    /// With `false`, a fragment that fails a check is logged (a `tracing` warning) and used
    /// anyway, as Python NanaSQLite's `strict_sql_validation=False`. Default `true`.
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// This policy with a query's own settings on top: its allowed and forbidden names are
    /// added, and its limit and strictness win.
    #[must_use]
    pub fn merged(&self, query: &Self) -> Self {
        let mut merged = self.clone();
        merged.allowed.extend(query.allowed.iter().cloned());
        merged.forbidden.extend(query.forbidden.iter().cloned());
        merged.forbid_all |= query.forbid_all;
        merged.replace_defaults |= query.replace_defaults;
        merged.max_clause_length = query.max_clause_length;
        merged.strict = query.strict;
        merged
    }

    fn allows(&self, function: &str) -> bool {
        !self.forbidden.contains(function)
            && (self.allowed.contains(function)
                || (!self.replace_defaults && DEFAULT_ALLOWED_FUNCTIONS.contains(&function)))
    }

    /// Checks `fragment` for use as `clause`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] saying what is wrong (in strict mode; otherwise a warning is
    /// logged and `Ok` returned).
    pub fn check(&self, fragment: &str, clause: Clause) -> Result<()> {
        match self.first_problem(fragment, clause) {
            None => Ok(()),
            Some(problem) if self.strict => Err(Error::validation(problem)),
            Some(problem) => {
                tracing::warn!(fragment, %problem, "sql fragment used although it failed validation");
                Ok(())
            }
        }
    }

    fn first_problem(&self, fragment: &str, clause: Clause) -> Option<String> {
        let label = clause.label();
        if let Some(max) = self.max_clause_length.filter(|max| fragment.chars().count() > *max) {
            return Some(format!("SQL expression exceeds maximum length of {max} characters"));
        }
        let tokens: Vec<Token<'_>> = tokens(fragment).filter(|token| token.kind != Kind::Space).collect();
        if tokens.is_empty() {
            return Some(format!("invalid {label}: it is empty"));
        }
        let at = |token: &Token<'_>| fragment[..token.start].chars().count() + 1;
        let mut depth = Vec::new();
        for (i, token) in tokens.iter().enumerate() {
            let next = tokens.get(i + 1);
            let after_distinct =
                i > 0 && tokens[i - 1].kind == Kind::Word && tokens[i - 1].text.eq_ignore_ascii_case("DISTINCT");
            if clause == Clause::Where
                && token.kind == Kind::Word
                && token.text.eq_ignore_ascii_case("FROM")
                && !after_distinct
            {
                return Some(format!(
                    "invalid {label}: the keyword `FROM` starts another part of the statement at position {}",
                    at(token)
                ));
            }
            if let Some(problem) = self.token_problem(token, next, clause, &mut depth) {
                return Some(format!("invalid {label}: {problem} at position {}", at(token)));
            }
        }
        depth.last().map(|open| format!("invalid {label}: the `(` at position {} is never closed", at(open)))
    }

    /// What is wrong with `token` (followed by `next`) in a fragment for `clause`; `open` holds
    /// the parentheses opened so far.
    fn token_problem<'a>(
        &self,
        token: &Token<'a>,
        next: Option<&Token<'a>>,
        clause: Clause,
        open: &mut Vec<Token<'a>>,
    ) -> Option<String> {
        let text = token.text;
        let calls = next.is_some_and(|next| next.is_punct("("));
        match token.kind {
            Kind::Space => None,
            Kind::Comment => Some(format!("`{}` starts a comment", &text[..2])),
            Kind::Unterminated => Some(format!("`{}` is never closed", first_char(text))),
            Kind::Illegal => Some(format!("`{}` is not SQL here", shorten(text))),
            Kind::TclParameter => {
                Some(format!("the parameter `{}` uses SQLite's Tcl form; use `?` placeholders", shorten(text)))
            }
            Kind::Parameter | Kind::Number | Kind::String | Kind::Blob => None,
            Kind::QuotedName if calls => self.function_problem(token.unquoted()),
            Kind::QuotedName => None,
            Kind::Punct => self.punct_problem(token, clause, open),
            Kind::Word => {
                let upper = text.to_ascii_uppercase();
                if WRITE_KEYWORDS.contains(&upper.as_str()) {
                    return Some(format!("the keyword `{upper}` changes data or schema"));
                }
                if clause.subquery_keywords().contains(&upper.as_str()) {
                    return Some(format!("the keyword `{upper}` starts a subquery or another part of the statement"));
                }
                if upper == "IN" && !calls {
                    return Some("`IN` must be followed by a list in parentheses".to_owned());
                }
                if calls && !OPERATORS.contains(&upper.as_str()) {
                    return self.function_problem(text);
                }
                None
            }
        }
    }

    fn punct_problem<'a>(&self, token: &Token<'a>, clause: Clause, open: &mut Vec<Token<'a>>) -> Option<String> {
        match token.text {
            "(" => {
                open.push(*token);
                None
            }
            ")" => open.pop().map_or_else(|| Some("this `)` closes no `(`".to_owned()), |_| None),
            ";" => Some("`;` would end the statement".to_owned()),
            "->" | "->>" => self
                .function_problem("JSON_EXTRACT")
                .map(|_| format!("the JSON operator `{}` calls json_extract, which is not allowed", token.text)),
            "," | "." => None,
            other if matches!(clause, Clause::OrderBy | Clause::GroupBy) => {
                Some(format!("the operator `{other}` (a {} takes names, functions and ASC/DESC)", clause.label()))
            }
            _ => None,
        }
    }

    fn function_problem(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_uppercase();
        if self.forbid_all {
            return Some("all SQL functions are forbidden for this expression".to_owned());
        }
        if self.forbidden.contains(&name) {
            return Some(format!("SQL function {name:?} is explicitly forbidden"));
        }
        if !self.allows(&name) {
            return Some(format!("SQL function {name:?} is not in the allowed list; allow it if you trust it"));
        }
        None
    }

    /// Whether `function` may be called by a fragment (for the database's own check while a
    /// helper's statement is prepared).
    pub(crate) fn permits_call(&self, function: &str) -> bool {
        let name = function.to_ascii_uppercase();
        !self.forbid_all && self.allows(&name)
    }
}

/// The first char of `text` (the quote of an unterminated literal).
fn first_char(text: &str) -> char {
    text.chars().next().unwrap_or(' ')
}

/// `text`, cut to 30 chars for a message.
fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(30).collect();
    if text.chars().count() > 30 {
        short.push('…');
    }
    short
}

/// Keywords that change data or schema; a fragment may not contain them outside literals.
const WRITE_KEYWORDS: [&str; 15] = [
    "DROP",
    "DELETE",
    "UPDATE",
    "INSERT",
    "TRUNCATE",
    "ALTER",
    "ATTACH",
    "DETACH",
    "CREATE",
    "REINDEX",
    "REPLACE",
    "PRAGMA",
    "VACUUM",
    "ANALYZE",
    "RETURNING",
];

/// Keywords that would start a subquery or another statement part in ORDER BY / GROUP BY.
const LIST_SUBQUERY_KEYWORDS: [&str; 13] = [
    "SELECT",
    "FROM",
    "JOIN",
    "UNION",
    "WHERE",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "EXCEPT",
    "INTERSECT",
    "VALUES",
    "WITH",
    "WINDOW",
];

/// The same for a column entry (WHERE is allowed there for `COUNT(*) FILTER (WHERE …)`).
const COLUMN_SUBQUERY_KEYWORDS: [&str; 8] =
    ["SELECT", "FROM", "JOIN", "UNION", "EXCEPT", "INTERSECT", "VALUES", "WITH"];

/// The same for a WHERE condition. Python NanaSQLite has no such rule and instead counts every
/// word before `(` as a function call, which also rejects plain `a AND (b OR c)`; with
/// subqueries ruled out here, operators before `(` can be let through.
const WHERE_SUBQUERY_KEYWORDS: [&str; 6] = ["SELECT", "UNION", "EXCEPT", "INTERSECT", "VALUES", "WITH"];

/// Operators that may stand before `(` without being function calls.
const OPERATORS: [&str; 13] =
    ["AND", "OR", "NOT", "IN", "IS", "BETWEEN", "LIKE", "GLOB", "CASE", "WHEN", "THEN", "ELSE", "ESCAPE"];

impl Clause {
    fn subquery_keywords(self) -> &'static [&'static str] {
        match self {
            Self::OrderBy | Self::GroupBy => &LIST_SUBQUERY_KEYWORDS,
            Self::Column => &COLUMN_SUBQUERY_KEYWORDS,
            Self::Where => &WHERE_SUBQUERY_KEYWORDS,
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Checks a column type for `create_table`: letters, digits, `_`, whitespace, `( ) , = < > ! @ # % .`;
/// parentheses balanced; commas only inside parentheses (so no second column can be smuggled in);
/// at most [`DEFAULT_MAX_CLAUSE_LENGTH`] characters.
///
/// # Errors
///
/// [`Error::Validation`].
pub fn check_column_type(column_type: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_ \t\n\r(),=<>!@#%.".contains(c);
    let too_long = column_type.len() > DEFAULT_MAX_CLAUSE_LENGTH;
    if too_long || column_type.trim().is_empty() || !column_type.chars().all(allowed) {
        return Err(Error::validation(format!("invalid column type {column_type:?}")));
    }
    let mut depth = 0usize;
    for c in column_type.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    Error::validation(format!("column type {column_type:?}: parentheses are not balanced"))
                })?;
            }
            ',' if depth == 0 => {
                return Err(Error::validation(format!("column type {column_type:?}: a comma outside parentheses")));
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(Error::validation(format!("column type {column_type:?}: parentheses are not balanced")));
    }
    Ok(())
}

/// Checks a column type for `alter_table_add_column`: words (`TEXT`, `DOUBLE PRECISION`) and an
/// optional `(digits, digits)` size, as `^[A-Za-z]\w*(\s+\w+)*(\s*\([\d,\s]+\))?$`.
///
/// # Errors
///
/// [`Error::Validation`] ("invalid or dangerous column type").
pub fn check_added_column_type(column_type: &str) -> Result<()> {
    let error = || Error::validation(format!("invalid or dangerous column type {column_type:?}"));
    if column_type.len() > DEFAULT_MAX_CLAUSE_LENGTH {
        return Err(error());
    }
    let (words, size) = match column_type.find('(') {
        Some(open) => (&column_type[..open], Some(&column_type[open..])),
        None => (column_type, None),
    };
    let words = if size.is_some() { words.trim_end() } else { words };
    let mut parts = words.split(|c: char| c.is_ascii_whitespace());
    let first = parts.next().unwrap_or_default();
    let first_ok = first.starts_with(|c: char| c.is_ascii_alphabetic()) && first.chars().all(is_word_char);
    // Splitting on single whitespace characters leaves empty parts between runs of them.
    let rest_ok = parts.all(|part| part.chars().all(is_word_char));
    let ends_in_word = words.ends_with(is_word_char);
    let size_ok = size.is_none_or(|size| {
        size.strip_prefix('(').and_then(|s| s.strip_suffix(')')).is_some_and(|inner| {
            !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit() || c == ',' || c.is_ascii_whitespace())
        })
    });
    if first_ok && rest_ok && ends_in_word && size_ok { Ok(()) } else { Err(error()) }
}

/// Pragmas `pragma()` may read; all but [`READ_ONLY_PRAGMAS`] may be set too.
pub const READABLE_PRAGMAS: [&str; 23] = [
    "foreign_keys",
    "journal_mode",
    "synchronous",
    "cache_size",
    "temp_store",
    "locking_mode",
    "auto_vacuum",
    "page_size",
    "encoding",
    "user_version",
    "schema_version",
    "wal_autocheckpoint",
    "busy_timeout",
    "query_only",
    "recursive_triggers",
    "secure_delete",
    "max_page_count",
    "page_count",
    "mmap_size",
    "table_info",
    "index_list",
    "index_info",
    "database_list",
];

/// Pragmas `pragma()` may read but not set (`mmap_size` is the builder's to set: readers
/// configure their own connections from it).
pub const READ_ONLY_PRAGMAS: [&str; 7] =
    ["schema_version", "page_count", "mmap_size", "table_info", "index_list", "index_info", "database_list"];

/// Checks a pragma name, for reading (`writing == false`) or setting.
///
/// # Errors
///
/// [`Error::Validation`] when the pragma is not on the list.
pub fn check_pragma(name: &str, writing: bool) -> Result<()> {
    if !READABLE_PRAGMAS.contains(&name) {
        Err(Error::validation(format!("pragma {name:?} is not allowed")))
    } else if writing && READ_ONLY_PRAGMAS.contains(&name) {
        Err(Error::validation(format!("pragma {name:?} is read-only or unsafe to set")))
    } else {
        Ok(())
    }
}

/// Checks a text value for a pragma: letters, digits, `_`, `-` and `.` only.
///
/// # Errors
///
/// [`Error::Validation`].
pub fn check_pragma_text(value: &str) -> Result<()> {
    if !value.is_empty() && value.chars().all(|c| is_word_char(c) || c == '-' || c == '.') {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "pragma value {value:?} must contain only letters, digits, underscores, dashes or dots"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(fragment: &str, clause: Clause) -> Option<String> {
        SqlPolicy::default().first_problem(fragment, clause)
    }

    #[test]
    fn harmless_fragments_pass() {
        for fragment in [
            "name LIKE 'User1%'",
            "a = ? AND (b OR c)",
            "x IN (1, 2, 3)",
            "note = 'DROP TABLE x; -- not a comment'",
            "\"name\" IS NOT NULL",
            "[column name] = 1",
            "age BETWEEN ?1 AND ?2",
            "a = :a OR b = @b OR c = $c",
            "a\n  AND\tb",
        ] {
            assert_eq!(problem(fragment, Clause::Where), None, "{fragment}");
        }
        assert_eq!(problem("name ASC, age DESC", Clause::OrderBy), None);
        assert_eq!(problem("COUNT(*) AS n", Clause::Column), None);
    }

    #[test]
    fn problems_are_named_with_their_position() {
        let said = problem("id = 1; DROP TABLE t", Clause::Where).unwrap();
        assert!(said.contains("`;`") && said.contains("position 7"), "{said}");
        let said = problem("id = $count(') UNION SELECT 1", Clause::Where).unwrap();
        assert!(said.contains("$count(')") && said.contains("position 6"), "{said}");
        let said = problem("? IN secret", Clause::Where).unwrap();
        assert!(said.contains("`IN`"), "{said}");
        let said = problem("'", Clause::Column).unwrap();
        assert!(said.contains("never closed"), "{said}");
        let said = problem("(a", Clause::Where).unwrap();
        assert!(said.contains("position 1") && said.contains("never closed"), "{said}");
        let said = problem("a -- comment", Clause::Where).unwrap();
        assert!(said.contains("`--`") || said.contains("comment"), "{said}");
        let said = problem("data->>'$.x' = 1", Clause::Where).unwrap();
        assert!(said.contains("json_extract"), "{said}");
        assert!(
            SqlPolicy::default().allow(["json_extract"]).first_problem("data->>'$.x' = 1", Clause::Where).is_none()
        );
        let said = problem("id * 2", Clause::OrderBy).unwrap();
        assert!(said.contains("`*`"), "{said}");
        assert!(problem("", Clause::Where).unwrap().contains("empty"));
    }
}
