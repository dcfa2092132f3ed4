//! Recognising the few statements that change how the rest of the dump is read.
//!
//! Three kinds matter to the lexer: `COPY … FROM stdin`, after which rows follow in-line;
//! settings of `standard_conforming_strings`, which decide whether a backslash in a plain
//! `'…'` string escapes the next byte; and settings of `client_encoding`, since in a few
//! encodings the second byte of a character may be a backslash. All are found by a small
//! tokenizer over the complete statement, so comments, quoted identifiers and column lists
//! cannot mislead it.

use super::quote::{dollar_delimiter, is_ident_byte, string_escapes, Delimiter};

/// What a complete statement means to the lexer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StatementKind {
    /// `COPY … FROM stdin`: rows follow.
    CopyFromStdin,
    /// A setting of `standard_conforming_strings` to this value.
    StandardConformingStrings(bool),
    /// A setting of `client_encoding` (also `SET NAMES`) to this name; `None` for the default.
    ClientEncoding(Option<String>),
    /// Anything else.
    Other,
}

/// Classifies the statement `sql`, read with `standard_conforming_strings` = `conforming`.
pub(super) fn classify(sql: &[u8], conforming: bool) -> StatementKind {
    let mut tokens = Tokens {
        sql,
        pos: 0,
        conforming,
    };
    let Some(Token::Word(first)) = tokens.next() else {
        return StatementKind::Other;
    };
    let kind = if first.eq_ignore_ascii_case(b"copy") {
        copy_kind(tokens)
    } else if first.eq_ignore_ascii_case(b"set") {
        set_kind(tokens)
    } else if first.eq_ignore_ascii_case(b"reset") {
        match tokens.next() {
            Some(Token::Word(name)) if is_conforming_name(name) => {
                Some(StatementKind::StandardConformingStrings(true))
            }
            Some(Token::Word(name)) if is_encoding_name(name) => {
                Some(StatementKind::ClientEncoding(None))
            }
            _ => None,
        }
    } else if first.eq_ignore_ascii_case(b"select") {
        set_config_kind(tokens)
    } else {
        None
    };
    kind.unwrap_or(StatementKind::Other)
}

/// `COPY target [(columns)] FROM STDIN …`: the first `FROM` or `TO` outside parentheses decides.
fn copy_kind(mut tokens: Tokens<'_>) -> Option<StatementKind> {
    let mut depth = 0usize;
    while let Some(token) = tokens.next() {
        match token {
            Token::Punct(b'(') => depth += 1,
            Token::Punct(b')') => depth = depth.saturating_sub(1),
            Token::Word(word) if depth == 0 && word.eq_ignore_ascii_case(b"to") => return None,
            Token::Word(word) if depth == 0 && word.eq_ignore_ascii_case(b"from") => {
                return match tokens.next() {
                    Some(Token::Word(source)) if source.eq_ignore_ascii_case(b"stdin") => {
                        Some(StatementKind::CopyFromStdin)
                    }
                    _ => None,
                };
            }
            _ => {}
        }
    }
    None
}

/// `SET [SESSION | LOCAL] standard_conforming_strings { = | TO } value`, the same of
/// `client_encoding`, and `SET NAMES value`.
fn set_kind(mut tokens: Tokens<'_>) -> Option<StatementKind> {
    let mut name = tokens.next()?;
    if let Token::Word(word) = name {
        if word.eq_ignore_ascii_case(b"session") || word.eq_ignore_ascii_case(b"local") {
            name = tokens.next()?;
        }
    }
    let Token::Word(name) = name else {
        return None;
    };
    if name.eq_ignore_ascii_case(b"names") {
        return encoding_value(tokens.next()?);
    }
    if !is_conforming_name(name) && !is_encoding_name(name) {
        return None;
    }
    match tokens.next()? {
        Token::Punct(b'=') => {}
        Token::Word(word) if word.eq_ignore_ascii_case(b"to") => {}
        _ => return None,
    }
    let value = tokens.next()?;
    if is_encoding_name(name) {
        return encoding_value(value);
    }
    let value = match value {
        Token::Word(value) | Token::Str(value) => parse_bool(value)?,
        _ => return None,
    };
    Some(StatementKind::StandardConformingStrings(value))
}

/// The encoding a `client_encoding` value names; `DEFAULT` is the server's, UTF-8 here.
fn encoding_value(value: Token<'_>) -> Option<StatementKind> {
    let (Token::Word(value) | Token::Str(value)) = value else {
        return None;
    };
    let value = String::from_utf8_lossy(value).into_owned();
    let default = value.eq_ignore_ascii_case("default");
    Some(StatementKind::ClientEncoding((!default).then_some(value)))
}

/// `SELECT [pg_catalog.]set_config('standard_conforming_strings', 'value', …)`.
fn set_config_kind(mut tokens: Tokens<'_>) -> Option<StatementKind> {
    while let Some(token) = tokens.next() {
        if !matches!(token, Token::Word(word) if word.eq_ignore_ascii_case(b"set_config")) {
            continue;
        }
        let call = [
            tokens.next()?,
            tokens.next()?,
            tokens.next()?,
            tokens.next()?,
        ];
        if let [Token::Punct(b'('), Token::Str(name), Token::Punct(b','), Token::Str(value)] = call
        {
            if is_conforming_name(name) {
                return parse_bool(value).map(StatementKind::StandardConformingStrings);
            }
            if is_encoding_name(name) {
                return encoding_value(Token::Str(value));
            }
        }
    }
    None
}

fn is_conforming_name(word: &[u8]) -> bool {
    word.eq_ignore_ascii_case(b"standard_conforming_strings")
}

fn is_encoding_name(word: &[u8]) -> bool {
    word.eq_ignore_ascii_case(b"client_encoding")
}

/// PostgreSQL's spellings of a boolean setting; `DEFAULT` restores the default, on.
fn parse_bool(value: &[u8]) -> Option<bool> {
    const TRUE: [&[u8]; 5] = [b"on", b"true", b"yes", b"1", b"default"];
    const FALSE: [&[u8]; 4] = [b"off", b"false", b"no", b"0"];
    if TRUE.iter().any(|t| value.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| value.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    /// An unquoted word or number.
    Word(&'a [u8]),
    /// A quoted identifier's contents.
    Quoted(&'a [u8]),
    /// A string's contents, escapes left as written.
    Str(&'a [u8]),
    Punct(u8),
}

struct Tokens<'a> {
    sql: &'a [u8],
    pos: usize,
    conforming: bool,
}

impl<'a> Tokens<'a> {
    fn skip_space_and_comments(&mut self) {
        let sql = self.sql;
        loop {
            let rest = &sql[self.pos..];
            match rest {
                [b, ..] if b.is_ascii_whitespace() => self.pos += 1,
                [b'-', b'-', ..] => {
                    self.pos += memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                }
                [b'/', b'*', ..] => self.pos += block_comment_len(rest),
                _ => return,
            }
        }
    }

    /// The quoted text starting at `pos` (an opening `quote`), up to the closing one.
    fn quoted(&mut self, quote: u8, escapes: bool) -> &'a [u8] {
        let sql = self.sql;
        let start = self.pos + 1;
        let mut at = start;
        while at < sql.len() {
            match sql[at] {
                b'\\' if escapes => at += 2,
                b if b == quote && sql.get(at + 1) == Some(&quote) => at += 2,
                b if b == quote => break,
                _ => at += 1,
            }
        }
        let end = at.min(sql.len());
        self.pos = (end + 1).min(sql.len());
        &sql[start..end]
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        self.skip_space_and_comments();
        let sql = self.sql;
        let byte = *sql.get(self.pos)?;
        let token = match byte {
            b'\'' => {
                Token::Str(self.quoted(b'\'', string_escapes(&sql[..self.pos], self.conforming)))
            }
            b'"' => Token::Quoted(self.quoted(b'"', false)),
            b'$' => match dollar_delimiter(sql, self.pos, true) {
                Delimiter::Found(end) => {
                    let delimiter = &sql[self.pos..end];
                    let body = &sql[end..];
                    let len = memchr::memmem::find(body, delimiter).unwrap_or(body.len());
                    self.pos = (end + len + delimiter.len()).min(sql.len());
                    Token::Str(&body[..len])
                }
                _ => {
                    self.pos += 1;
                    Token::Punct(b'$')
                }
            },
            b if is_ident_byte(b) => {
                let len = sql[self.pos..]
                    .iter()
                    .take_while(|&&b| is_ident_byte(b))
                    .count();
                let word = &sql[self.pos..self.pos + len];
                self.pos += len;
                // A string prefix (`E'…'`, `U&'…'`, …) belongs to the string that follows.
                match sql.get(self.pos) {
                    Some(b'\'') if len == 1 => return self.next(),
                    Some(b'&') if len == 1 && word.eq_ignore_ascii_case(b"u") => {
                        self.pos += 1;
                        return self.next();
                    }
                    _ => Token::Word(word),
                }
            }
            _ => {
                self.pos += 1;
                Token::Punct(byte)
            }
        };
        Some(token)
    }
}

/// Length of the (nested) block comment at the start of `rest`, or all of `rest`.
fn block_comment_len(rest: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut at = 0;
    while at + 1 < rest.len() {
        match (rest[at], rest[at + 1]) {
            (b'/', b'*') => {
                depth += 1;
                at += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                at += 2;
                if depth == 0 {
                    return at;
                }
            }
            _ => at += 1,
        }
    }
    rest.len()
}

#[cfg(test)]
mod tests {
    use super::StatementKind;
    use crate::dump::tests::{items, outline, statements};
    use crate::dump::DumpLexer;

    fn conforming_after(input: &str) -> bool {
        let mut lexer = DumpLexer::new(input.as_bytes());
        while lexer.next_item().expect("lexes").is_some() {}
        lexer.standard_conforming_strings()
    }

    #[test]
    fn copy_from_stdin_is_recognised_in_any_case() {
        assert_eq!(
            outline(&items(b"copy t from STDIN;\n1\n\\.\nSELECT 1;")),
            "CDES"
        );
    }

    #[test]
    fn copy_with_comments_newlines_and_quoted_names_is_recognised() {
        let input =
            "COPY /* c */ \"from\" (\"to\", b)\n-- x\nFrom\n  stdin WITH (FORMAT csv);\n1,2\n\\.\n";
        assert_eq!(outline(&items(input.as_bytes())), "CDE");
    }

    #[test]
    fn copy_to_stdout_and_from_file_are_plain_statements() {
        let input =
            "COPY t TO stdout;\nCOPY t FROM '/tmp/x';\nCOPY (SELECT * FROM stdin) TO stdout;\n";
        assert_eq!(outline(&items(input.as_bytes())), "SSS");
    }

    #[test]
    fn conforming_strings_off_makes_plain_backslash_escape() {
        let input = "SET standard_conforming_strings = off;\nSELECT 'a\\'; b';\n";
        assert_eq!(statements(&items(input.as_bytes()))[1], "SELECT 'a\\'; b';");
    }

    #[test]
    fn conforming_strings_default_to_on() {
        assert!(conforming_after("SELECT 1;"));
    }

    #[test]
    fn set_session_to_quoted_value_changes_conforming_strings() {
        assert!(!conforming_after(
            "SET SESSION standard_conforming_strings TO 'off';"
        ));
        assert!(!conforming_after(
            "set Standard_Conforming_Strings = false;"
        ));
        assert!(conforming_after(
            "SET standard_conforming_strings = off; SET standard_conforming_strings = 'on';"
        ));
    }

    fn encoding_of(sql: &str) -> StatementKind {
        super::classify(sql.as_bytes(), true)
    }

    #[test]
    fn client_encoding_is_recognised_in_each_spelling() {
        let sjis = || StatementKind::ClientEncoding(Some("SJIS".into()));
        assert_eq!(encoding_of("SET client_encoding = 'SJIS';"), sjis());
        assert_eq!(encoding_of("set SESSION Client_Encoding TO SJIS;"), sjis());
        assert_eq!(encoding_of("SET NAMES 'SJIS';"), sjis());
        assert_eq!(
            encoding_of("SELECT pg_catalog.set_config('client_encoding', 'SJIS', false);"),
            sjis()
        );
        assert_eq!(
            encoding_of("SET client_encoding TO DEFAULT;"),
            StatementKind::ClientEncoding(None)
        );
        assert_eq!(
            encoding_of("RESET client_encoding;"),
            StatementKind::ClientEncoding(None)
        );
        assert_eq!(encoding_of("SET search_path = sjis;"), StatementKind::Other);
    }

    #[test]
    fn set_config_changes_conforming_strings() {
        let input = "SELECT pg_catalog.set_config('standard_conforming_strings', 'off', false);";
        assert!(!conforming_after(input));
        assert!(conforming_after(
            "SELECT pg_catalog.set_config('search_path', 'off', false);"
        ));
    }

    #[test]
    fn reset_restores_conforming_strings() {
        let input = "SET standard_conforming_strings = off;\nRESET standard_conforming_strings;";
        assert!(conforming_after(input));
    }
}
