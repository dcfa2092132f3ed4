//! Just enough SQL tokenising to recognise what a statement is.
//!
//! The planner looks at the first words of a statement (`CREATE UNIQUE INDEX … ON tbl`,
//! `ALTER TABLE ONLY tbl ADD CONSTRAINT …`, `SET name = value`). This reads those words while
//! skipping whitespace and comments, folding unquoted identifiers to lower case as the server
//! does, and stops after a given number of words so long statements cost nothing.

/// One token at the start of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Word {
    /// An identifier or keyword; unquoted ones are folded to lower case.
    Ident { text: String, quoted: bool },
    /// A string literal's content (`'…'`, `E'…'`), with `''` undoubled.
    Literal(String),
    /// Any other single character: punctuation, operators, digits.
    Symbol(char),
}

impl Word {
    /// True when this is the unquoted keyword `kw` (given in lower case).
    pub(crate) fn is(&self, kw: &str) -> bool {
        matches!(self, Word::Ident { text, quoted: false } if text == kw)
    }

    /// The text of an identifier or literal.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Word::Ident { text, .. } | Word::Literal(text) => Some(text),
            Word::Symbol(_) => None,
        }
    }
}

/// Reads up to `max` words from the start of `sql`.
pub(crate) fn leading_words(sql: &[u8], max: usize) -> Vec<Word> {
    leading_words_with_ends(sql, max)
        .into_iter()
        .map(|(word, _)| word)
        .collect()
}

/// Reads up to `max` words from the start of `sql`, each with the byte offset just after it.
pub(crate) fn leading_words_with_ends(sql: &[u8], max: usize) -> Vec<(Word, usize)> {
    let mut words = Vec::new();
    let mut i = 0;
    while words.len() < max && i < sql.len() {
        let c = sql[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let word = if sql[i..].starts_with(b"--") {
            i = memchr::memchr(b'\n', &sql[i..]).map_or(sql.len(), |n| i + n + 1);
            continue;
        } else if sql[i..].starts_with(b"/*") {
            i = skip_block_comment(sql, i);
            continue;
        } else if c == b'"' {
            let (text, next) = quoted(sql, i + 1, b'"');
            i = next;
            Word::Ident { text, quoted: true }
        } else if c == b'\'' {
            let (text, next) = quoted(sql, i + 1, b'\'');
            i = next;
            Word::Literal(text)
        } else if (c == b'E' || c == b'e') && sql.get(i + 1) == Some(&b'\'') {
            let (text, next) = escaped_literal(sql, i + 2);
            i = next;
            Word::Literal(text)
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let start = i;
            while i < sql.len() && is_ident_byte(sql[i]) {
                i += 1;
            }
            // The server lowers only ASCII letters in a UTF-8 database (and others through
            // the locale in a single-byte one); non-ASCII letters are kept as written.
            let text = String::from_utf8_lossy(&sql[start..i]).to_ascii_lowercase();
            Word::Ident {
                text,
                quoted: false,
            }
        } else {
            i += 1;
            Word::Symbol(c as char)
        };
        words.push((word, i));
    }
    words
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn skip_block_comment(sql: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < sql.len() {
        if sql[i] == b'/' && sql[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if sql[i] == b'*' && sql[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    sql.len()
}

/// Reads a `'…'` or `"…"` body whose quote is doubled to escape it.
fn quoted(sql: &[u8], mut i: usize, quote: u8) -> (String, usize) {
    let mut text = Vec::new();
    while i < sql.len() {
        if sql[i] == quote {
            if sql.get(i + 1) == Some(&quote) {
                text.push(quote);
                i += 2;
                continue;
            }
            return (String::from_utf8_lossy(&text).into_owned(), i + 1);
        }
        text.push(sql[i]);
        i += 1;
    }
    (String::from_utf8_lossy(&text).into_owned(), i)
}

/// Reads an `E'…'` body; only the escapes a name or setting could hold are interpreted.
fn escaped_literal(sql: &[u8], mut i: usize) -> (String, usize) {
    let mut text = Vec::new();
    while i < sql.len() {
        match sql[i] {
            b'\\' if i + 1 < sql.len() => {
                text.push(sql[i + 1]);
                i += 2;
            }
            b'\'' if sql.get(i + 1) == Some(&b'\'') => {
                text.push(b'\'');
                i += 2;
            }
            b'\'' => return (String::from_utf8_lossy(&text).into_owned(), i + 1),
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    (String::from_utf8_lossy(&text).into_owned(), i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(s: &str) -> Word {
        Word::Ident {
            text: s.into(),
            quoted: false,
        }
    }

    #[test]
    fn unquoted_identifiers_fold_to_lower_case_and_quoted_ones_keep_case() {
        let words = leading_words(br#"CREATE INDEX "Ix" ON Public."My""T""#, 10);
        assert_eq!(words[0], ident("create"));
        assert_eq!(
            words[2],
            Word::Ident {
                text: "Ix".into(),
                quoted: true
            }
        );
        assert_eq!(words[4], ident("public"));
        assert_eq!(words[5], Word::Symbol('.'));
        assert_eq!(
            words[6],
            Word::Ident {
                text: "My\"T".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn comments_between_words_are_skipped() {
        let words = leading_words(b"-- a\nALTER /* x /* nested */ y */ TABLE t", 3);
        assert_eq!(words, [ident("alter"), ident("table"), ident("t")]);
    }

    #[test]
    fn literals_are_read_with_their_escapes() {
        let words = leading_words(b"SELECT set_config('search_path', E'a\\'b', false)", 8);
        assert_eq!(words[3], Word::Literal("search_path".into()));
        assert_eq!(words[5], Word::Literal("a'b".into()));
    }

    #[test]
    fn reading_stops_after_max_words() {
        assert_eq!(leading_words(b"a b c d e", 2).len(), 2);
    }
}
