//! Validation of SQL fragments (WHERE, ORDER BY, GROUP BY, column lists), column types and
//! pragmas, before anything runs. Every check is one left-to-right scan: no backtracking
//! regular expressions, so hostile input of any length is rejected in linear time.

use std::collections::BTreeSet;

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
        let dangerous = || Some(format!("invalid {label}: potentially dangerous SQL pattern or invalid characters"));
        if matches!(clause, Clause::OrderBy | Clause::GroupBy) && !fragment.chars().all(is_list_char) {
            return Some(format!("invalid {label}: contains forbidden characters"));
        }
        if has_subquery_keyword(fragment, clause) {
            return Some(format!("invalid {label}: subquery keywords are not permitted"));
        }
        if !fragment.chars().all(is_fragment_char) {
            return dangerous();
        }
        if fragment.contains(';') || fragment.contains("--") || fragment.contains("/*") {
            return dangerous();
        }
        let masked = mask(fragment, Keep::Nothing);
        if words(&masked).any(|word| WRITE_KEYWORDS.iter().any(|k| word.eq_ignore_ascii_case(k))) {
            return dangerous();
        }
        if self.max_clause_length.is_some_and(|max| fragment.chars().count() > max) {
            let max = self.max_clause_length.unwrap_or_default();
            return Some(format!("SQL expression exceeds maximum length of {max} characters"));
        }
        self.function_problem(fragment)
    }

    fn function_problem(&self, fragment: &str) -> Option<String> {
        let masked = mask(fragment, Keep::QuotedNames);
        for name in function_calls(&masked) {
            let name = name.to_ascii_uppercase();
            if OPERATORS.contains(&name.as_str()) {
                continue;
            }
            if self.forbid_all {
                return Some("all SQL functions are forbidden for this expression".to_owned());
            }
            if self.forbidden.contains(&name) {
                return Some(format!("SQL function {name:?} is explicitly forbidden"));
            }
            if !self.allows(&name) {
                return Some(format!("SQL function {name:?} is not in the allowed list; allow it if you trust it"));
            }
        }
        None
    }
}

/// Keywords that change data or schema; a fragment may not contain them outside string literals.
const WRITE_KEYWORDS: [&str; 11] =
    ["DROP", "DELETE", "UPDATE", "INSERT", "TRUNCATE", "ALTER", "ATTACH", "DETACH", "CREATE", "REINDEX", "REPLACE"];

/// Keywords that would start a subquery or another statement part in ORDER BY / GROUP BY.
const LIST_SUBQUERY_KEYWORDS: [&str; 10] =
    ["SELECT", "FROM", "JOIN", "UNION", "WHERE", "HAVING", "LIMIT", "OFFSET", "EXCEPT", "INTERSECT"];

/// The same for a column entry (WHERE is allowed there for `COUNT(*) FILTER (WHERE …)`).
const COLUMN_SUBQUERY_KEYWORDS: [&str; 6] = ["SELECT", "FROM", "JOIN", "UNION", "EXCEPT", "INTERSECT"];

/// The same for a WHERE condition, outside string literals. Python NanaSQLite has no such rule
/// and instead counts every word before `(` as a function call, which also rejects plain
/// `a AND (b OR c)`; with subqueries ruled out here, operators before `(` can be let through.
const WHERE_SUBQUERY_KEYWORDS: [&str; 4] = ["SELECT", "UNION", "EXCEPT", "INTERSECT"];

/// Operators that may stand before `(` without being function calls.
const OPERATORS: [&str; 13] =
    ["AND", "OR", "NOT", "IN", "IS", "BETWEEN", "LIKE", "GLOB", "CASE", "WHEN", "THEN", "ELSE", "ESCAPE"];

fn has_subquery_keyword(fragment: &str, clause: Clause) -> bool {
    let (keywords, text): (&[&str], std::borrow::Cow<'_, str>) = match clause {
        Clause::OrderBy | Clause::GroupBy => (&LIST_SUBQUERY_KEYWORDS, fragment.into()),
        Clause::Column => (&COLUMN_SUBQUERY_KEYWORDS, fragment.into()),
        Clause::Where => (&WHERE_SUBQUERY_KEYWORDS, mask(fragment, Keep::Nothing).into()),
    };
    words(&text).any(|word| keywords.iter().any(|k| word.eq_ignore_ascii_case(k)))
}

/// ORDER BY / GROUP BY: letters, digits, `_ . ,`, whitespace, parentheses and quotes.
fn is_list_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.,()\"'`[] \t\n\r\x0b\x0c".contains(c)
}

/// Any fragment: ASCII letters, digits and ``_ space , . ( ) ' = < > ! + - * / " | ? : @ $ ` [ ]``.
fn is_fragment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_ ,.()'=<>!+-*/\"|?:@$`[]".contains(c)
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The words (`[A-Za-z_][A-Za-z0-9_]*`, not preceded by a word character) of `text`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find(is_word_start)?;
            let preceded = rest[..start].chars().next_back().is_some_and(|c| c.is_ascii_digit());
            let len = rest[start..].find(|c: char| !is_word_char(c)).unwrap_or(rest.len() - start);
            let word = &rest[start..start + len];
            rest = &rest[start + len..];
            if !preceded {
                return Some(word);
            }
        }
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Blank out string literals, comments and quoted names.
    Nothing,
    /// Blank out string literals and comments; keep quoted names (`"x"`, `` `x` ``, `[x]`)
    /// with their quotes, so `"EVIL"(1)` is still seen as a call.
    QuotedNames,
}

/// `text` with single-quoted literals (`''` escapes) and comments replaced by spaces.
fn mask(text: &str, keep: Keep) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                skip_quoted(&mut chars, '\'');
                out.push(' ');
            }
            '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                let mut name = String::new();
                while let Some(n) = chars.next() {
                    if n == close && !(close != ']' && chars.peek() == Some(&close)) {
                        break;
                    }
                    if n == close {
                        chars.next();
                    }
                    name.push(n);
                }
                if keep == Keep::QuotedNames {
                    out.push('"');
                    out.push_str(&name.replace('"', ""));
                    out.push('"');
                } else {
                    out.push(' ');
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                chars.by_ref().take_while(|&n| n != '\n').for_each(drop);
                out.push(' ');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut previous = ' ';
                for n in chars.by_ref() {
                    if previous == '*' && n == '/' {
                        break;
                    }
                    previous = n;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Skips a quoted run whose opening `quote` was consumed; a doubled quote is an escape.
fn skip_quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, quote: char) {
    while let Some(n) = chars.next() {
        if n == quote {
            if chars.peek() == Some(&quote) {
                chars.next();
            } else {
                return;
            }
        }
    }
}

/// The names called in `masked` text: a word or a `"quoted"` name followed (after optional
/// whitespace) by `(`.
fn function_calls(masked: &str) -> Vec<&str> {
    let bytes = masked.as_bytes();
    let mut calls = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let (start, end, next) = match bytes[i] {
            b'"' => match masked[i + 1..].find('"') {
                Some(len) => (i + 1, i + 1 + len, i + 2 + len),
                None => break,
            },
            b if is_word_start(char::from(b)) && (i == 0 || !is_word_char(char::from(bytes[i - 1]))) => {
                let len = masked[i..].find(|c: char| !is_word_char(c)).unwrap_or(masked.len() - i);
                (i, i + len, i + len)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let after = masked[next..].trim_start();
        if after.starts_with('(') {
            calls.push(&masked[start..end]);
        }
        i = next.max(i + 1);
    }
    calls
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
pub const READABLE_PRAGMAS: [&str; 22] = [
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
    "table_info",
    "index_list",
    "index_info",
    "database_list",
];

/// Pragmas `pragma()` may read but not set.
pub const READ_ONLY_PRAGMAS: [&str; 6] =
    ["schema_version", "page_count", "table_info", "index_list", "index_info", "database_list"];

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

    #[test]
    fn words_skip_numbers_with_letters() {
        assert_eq!(words("1e5 + abc_1 OR x2").collect::<Vec<_>>(), ["abc_1", "OR", "x2"]);
    }

    #[test]
    fn masking_hides_literals_and_keeps_quoted_names_when_asked() {
        assert_eq!(mask("a = 'DROP ''x'' y' AND b", Keep::Nothing), "a =   AND b");
        assert_eq!(mask("\"EVIL\"(1)", Keep::QuotedNames), "\"EVIL\"(1)");
        assert_eq!(mask("[EVIL](1) + `x`(2)", Keep::QuotedNames), "\"EVIL\"(1) + \"x\"(2)");
    }

    #[test]
    fn finds_function_calls() {
        let masked = mask("COUNT(*) + upper (x) + \"EVIL\"(1) + a.b + IN (1)", Keep::QuotedNames);
        assert_eq!(function_calls(&masked), ["COUNT", "upper", "EVIL", "IN"]);
    }
}
