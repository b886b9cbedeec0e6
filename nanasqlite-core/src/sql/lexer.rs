//! A tokenizer that reads SQL as SQLite's own tokenizer (`tokenize.c`) does, so that the
//! validator sees the tokens SQLite will see: string and blob literals, the four identifier
//! quotings, numbers, every parameter form and comments. One left-to-right pass, no
//! backtracking: linear in the input whatever it holds.

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Spaces, tabs, newlines.
    Space,
    /// `-- …` or `/* … */`.
    Comment,
    /// A bare word: a keyword or an identifier (`[A-Za-z_][A-Za-z0-9_$]*`).
    Word,
    /// A quoted identifier: `"…"`, `` `…` `` or `[…]`.
    QuotedName,
    /// A string literal `'…'`.
    String,
    /// A blob literal `x'…'`.
    Blob,
    /// A number: `12`, `1.5e3`, `.5`, `0x1F`, `1_000`.
    Number,
    /// A parameter: `?`, `?12`, `:name`, `@name` or `$name`.
    Parameter,
    /// A `$name` parameter with SQLite's Tcl suffixes (`$a::b`, `$a(…)`), which can hide any
    /// character in its parentheses.
    TclParameter,
    /// An operator or punctuation: `( ) , . ; + - * / % = == < > <= >= <> != || & | ~ << >> -> ->>`.
    Punct,
    /// An unterminated string, blob, quoted name or comment (it runs to the end).
    Unterminated,
    /// A character SQLite does not accept here.
    Illegal,
}

/// One token: its kind, where it starts (a byte offset) and its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub(crate) kind: Kind,
    pub(crate) start: usize,
    pub(crate) text: &'a str,
}

impl Token<'_> {
    /// Whether this is the punctuation `punct`.
    pub(crate) fn is_punct(&self, punct: &str) -> bool {
        self.kind == Kind::Punct && self.text == punct
    }

    /// Whether it means something (not a space or a comment).
    #[cfg(test)]
    pub(crate) fn is_significant(&self) -> bool {
        !matches!(self.kind, Kind::Space | Kind::Comment)
    }

    /// The name of a quoted identifier, without its quotes.
    pub(crate) fn unquoted(&self) -> &str {
        match self.kind {
            Kind::QuotedName if self.text.len() >= 2 => &self.text[1..self.text.len() - 1],
            _ => self.text,
        }
    }
}

/// The tokens of `sql`, in order; together they cover it exactly.
pub(crate) fn tokens(sql: &str) -> impl Iterator<Item = Token<'_>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let rest = &sql[start..];
        let first = rest.chars().next()?;
        let (kind, len) = token(rest, first);
        let token = Token { kind, start, text: &rest[..len] };
        start += len;
        Some(token)
    })
}

/// SQLite's identifier characters: letters, digits, `_`, `$`, and any non-ASCII character.
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// The kind and byte length of the token at the start of `rest`, whose first char is `first`.
fn token(rest: &str, first: char) -> (Kind, usize) {
    let bytes = rest.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    match first {
        ' ' | '\t' | '\n' | '\r' | '\x0c' => {
            (Kind::Space, run_len(rest, |c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')))
        }
        '-' if at(1) == Some(b'-') => (Kind::Comment, rest.find('\n').map_or(rest.len(), |end| end + 1)),
        '/' if at(1) == Some(b'*') => match rest[2..].find("*/") {
            Some(end) => (Kind::Comment, end + 4),
            None => (Kind::Unterminated, rest.len()),
        },
        '\'' => quoted(rest, b'\'', Kind::String),
        '"' => quoted(rest, b'"', Kind::QuotedName),
        '`' => quoted(rest, b'`', Kind::QuotedName),
        '[' => match rest.find(']') {
            Some(end) => (Kind::QuotedName, end + 1),
            None => (Kind::Unterminated, rest.len()),
        },
        'x' | 'X' if at(1) == Some(b'\'') => blob(rest),
        '0'..='9' => number(rest),
        '.' if at(1).is_some_and(|b| b.is_ascii_digit()) => number(rest),
        '?' => (Kind::Parameter, 1 + run_len(&rest[1..], |c| c.is_ascii_digit())),
        '$' | '@' | ':' | '#' => variable(rest),
        c if c.is_ascii_alphabetic() || c == '_' => (Kind::Word, run_len(rest, is_id_char)),
        c if !c.is_ascii() => (Kind::Illegal, c.len_utf8()),
        _ => punct(rest),
    }
}

/// The byte length of the run of chars at the start of `text` that satisfy `keep`.
fn run_len(text: &str, keep: impl Fn(char) -> bool) -> usize {
    text.find(|c| !keep(c)).unwrap_or(text.len())
}

/// A literal or name quoted by `quote`, where a doubled quote stands for itself.
fn quoted(rest: &str, quote: u8, kind: Kind) -> (Kind, usize) {
    let bytes = rest.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return (kind, i + 1);
        }
        i += 1;
    }
    (Kind::Unterminated, rest.len())
}

/// `x'…'`: an even number of hex digits, else SQLite calls it illegal.
fn blob(rest: &str) -> (Kind, usize) {
    match rest[2..].find('\'') {
        Some(len) => {
            let digits = &rest[2..2 + len];
            let valid = digits.len().is_multiple_of(2) && digits.chars().all(|c| c.is_ascii_hexdigit());
            (if valid { Kind::Blob } else { Kind::Illegal }, len + 3)
        }
        None => (Kind::Unterminated, rest.len()),
    }
}

/// A number; one followed at once by an identifier character is illegal, as in SQLite.
fn number(rest: &str) -> (Kind, usize) {
    let bytes = rest.as_bytes();
    let digits = |from: usize| from + run_len(&rest[from..], |c| c.is_ascii_digit() || c == '_');
    let mut i = if rest.len() > 2 && (rest.starts_with("0x") || rest.starts_with("0X")) {
        2 + run_len(&rest[2..], |c| c.is_ascii_hexdigit() || c == '_')
    } else {
        let mut i = digits(0);
        if bytes.get(i) == Some(&b'.') {
            i = digits(i + 1);
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(bytes.get(i + 1), Some(b'+' | b'-')));
            if bytes.get(i + 1 + sign).is_some_and(u8::is_ascii_digit) {
                i = digits(i + 1 + sign);
            }
        }
        i
    };
    if rest[i..].chars().next().is_some_and(is_id_char) {
        i += run_len(&rest[i..], is_id_char);
        return (Kind::Illegal, i);
    }
    (Kind::Number, i)
}

/// `:name`, `@name`, `$name` (and `#name`, which SQLite keeps for itself); `$name` may carry
/// Tcl suffixes, `::more` and a final `(…)` that runs to the next space or `)`.
fn variable(rest: &str) -> (Kind, usize) {
    let bytes = rest.as_bytes();
    let mut i = 1;
    let mut letters = 0;
    let mut tcl = false;
    while let Some(c) = rest[i..].chars().next() {
        if is_id_char(c) {
            letters += 1;
            i += c.len_utf8();
        } else if c == '(' && letters > 0 {
            let inner = run_len(&rest[i + 1..], |c| !c.is_whitespace() && c != ')');
            let end = i + 1 + inner;
            return if bytes.get(end) == Some(&b')') { (Kind::TclParameter, end + 1) } else { (Kind::Illegal, end) };
        } else if c == ':' && bytes.get(i + 1) == Some(&b':') {
            tcl = true;
            i += 2;
        } else {
            break;
        }
    }
    match (letters, tcl, bytes[0]) {
        (0, _, _) | (_, _, b'#') => (Kind::Illegal, i.max(1)),
        (_, true, _) => (Kind::TclParameter, i),
        _ => (Kind::Parameter, i),
    }
}

/// Operators and punctuation, longest first.
fn punct(rest: &str) -> (Kind, usize) {
    const PUNCTS: [&str; 28] = [
        "->>", "->", "||", "==", "<=", ">=", "<>", "!=", "<<", ">>", "(", ")", ",", ".", ";", "+", "-", "*", "/", "%",
        "=", "<", ">", "&", "|", "~", "!", "^",
    ];
    match PUNCTS.iter().find(|p| rest.starts_with(**p)) {
        Some(p) if *p == "!" || *p == "^" => (Kind::Illegal, 1),
        Some(p) => (Kind::Punct, p.len()),
        None => (Kind::Illegal, rest.chars().next().map_or(1, char::len_utf8)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(Kind, &str)> {
        tokens(sql).filter(Token::is_significant).map(|t| (t.kind, t.text)).collect()
    }

    #[test]
    fn tokens_cover_the_input_exactly() {
        for sql in ["a = 'x''y' AND \"b\"\"c\" = [d] OR `e``f` = x'00ff' -- c", "é'", "$a(')", "/* open", "'open"] {
            assert_eq!(tokens(sql).map(|t| t.text).collect::<String>(), sql);
        }
    }

    #[test]
    fn literals_and_quoted_names() {
        assert_eq!(kinds("'it''s'"), [(Kind::String, "'it''s'")]);
        assert_eq!(kinds("\"a\"\"b\""), [(Kind::QuotedName, "\"a\"\"b\"")]);
        assert_eq!(kinds("[a b]"), [(Kind::QuotedName, "[a b]")]);
        assert_eq!(kinds("`x`"), [(Kind::QuotedName, "`x`")]);
        assert_eq!(kinds("X'0aFF'"), [(Kind::Blob, "X'0aFF'")]);
        assert_eq!(kinds("x'0'"), [(Kind::Illegal, "x'0'")]);
        assert_eq!(kinds("'open"), [(Kind::Unterminated, "'open")]);
    }

    #[test]
    fn numbers_as_sqlite_reads_them() {
        assert_eq!(
            kinds("1.5e-3 .5 0x1F 1_000"),
            [(Kind::Number, "1.5e-3"), (Kind::Number, ".5"), (Kind::Number, "0x1F"), (Kind::Number, "1_000")]
        );
        assert_eq!(kinds("1abc"), [(Kind::Illegal, "1abc")]);
    }

    #[test]
    fn every_parameter_form() {
        assert_eq!(
            kinds("? ?12 :a @b $c"),
            [
                (Kind::Parameter, "?"),
                (Kind::Parameter, "?12"),
                (Kind::Parameter, ":a"),
                (Kind::Parameter, "@b"),
                (Kind::Parameter, "$c")
            ]
        );
        // SQLite reads `$count(')` as one token: the quote inside is not a string.
        assert_eq!(kinds("$count(') UNION"), [(Kind::TclParameter, "$count(')"), (Kind::Word, "UNION")]);
        assert_eq!(kinds("$a::b"), [(Kind::TclParameter, "$a::b")]);
        assert_eq!(kinds("$a(x y)"), [(Kind::Illegal, "$a(x"), (Kind::Word, "y"), (Kind::Punct, ")")]);
        assert_eq!(kinds(": #a"), [(Kind::Illegal, ":"), (Kind::Illegal, "#a")]);
    }

    #[test]
    fn comments_and_operators() {
        assert_eq!(kinds("a->>'$.x' -- rest"), [(Kind::Word, "a"), (Kind::Punct, "->>"), (Kind::String, "'$.x'")]);
        assert_eq!(
            kinds("a<>b||c"),
            [(Kind::Word, "a"), (Kind::Punct, "<>"), (Kind::Word, "b"), (Kind::Punct, "||"), (Kind::Word, "c")]
        );
        assert_eq!(kinds("a /* x */ ;"), [(Kind::Word, "a"), (Kind::Punct, ";")]);
        assert_eq!(kinds("{"), [(Kind::Illegal, "{")]);
    }
}
