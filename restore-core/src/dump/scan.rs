//! The resumable scanner that finds where SQL statements end.
//!
//! The scanner walks the lexer's buffer and stops at the places the lexer must act on: the
//! first significant byte of a statement, a `;` that ends one, a backslash that starts a psql
//! meta-command, a complete `--` comment between statements (which may be a table-of-contents
//! header), or the end of the buffered bytes. Its state survives a stop, so a statement that
//! spans many reads is scanned once, not again after every read.
//!
//! As in psql, a `;` inside the `BEGIN ATOMIC … END` body of a function or procedure, or inside
//! the parenthesised actions of a rule, does not end the statement; [`Nesting`] tells where.

use memchr::{memchr, memchr2, memmem};

use super::nesting::Nesting;
use super::quote::{dollar_delimiter, is_ident_byte, string_escapes, Delimiter};

/// What the scanner is inside of at the current position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Mode {
    /// Plain SQL text, or the whitespace between statements.
    Code,
    /// A `'…'` string; `escapes` tells whether a backslash escapes the next byte.
    Single { escapes: bool },
    /// A `"…"` quoted identifier.
    Double,
    /// A dollar-quoted string; `delimiter` is the whole `$tag$`.
    Dollar { delimiter: Box<[u8]> },
    /// A `--` comment running to the end of the line.
    LineComment { start: usize },
    /// A `/* … */` comment; they nest.
    BlockComment { depth: u32 },
}

/// Why the scanner stopped. Offsets are into the slice passed to [`Scanner::scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stop {
    /// The buffered bytes are used up (or a decision needs bytes not read yet).
    NeedMore,
    /// Between statements, the first byte of a statement is at `pos`.
    Significant,
    /// A statement ends with the `;` at `pos`.
    Semicolon,
    /// A meta-command's backslash is at `pos`.
    Backslash,
    /// A `--` comment between statements spans `start..end` (without its newline) on `line`.
    Comment { start: usize, end: usize, line: u64 },
}

/// Scanning position and state; `line` is the 1-based line of the byte at `pos`.
#[derive(Debug)]
pub(super) struct Scanner {
    pub(super) mode: Mode,
    pub(super) pos: usize,
    pub(super) line: u64,
    /// Line where the current quote or comment began, for error messages.
    pub(super) mode_line: u64,
    /// What the current statement's words and parentheses say about where it may end.
    nesting: Nesting,
    /// The bytes that end a run of text of no meaning to the scanner, given `nesting`.
    stops: &'static [bool; 256],
}

impl Scanner {
    pub(super) fn new() -> Self {
        Scanner {
            mode: Mode::Code,
            pos: 0,
            line: 1,
            mode_line: 1,
            nesting: Nesting::Flat,
            stops: &SPECIAL,
        }
    }

    /// Forgets the first `n` bytes of the buffer, which the lexer has taken away.
    pub(super) fn consumed(&mut self, n: usize) {
        self.pos -= n;
        if let Mode::LineComment { start } = &mut self.mode {
            *start -= n;
        }
    }

    /// Scans `buf` from `pos`. `eof` says no bytes follow `buf`; `in_statement` whether a
    /// statement has begun; `conforming` is the current `standard_conforming_strings`.
    pub(super) fn scan(
        &mut self,
        buf: &[u8],
        eof: bool,
        in_statement: bool,
        conforming: bool,
    ) -> Stop {
        loop {
            let stop = match self.mode {
                Mode::Code => self.code(buf, eof, in_statement, conforming),
                Mode::Single { escapes } => self.single(buf, eof, escapes),
                Mode::Double => self.double(buf, eof),
                Mode::Dollar { .. } => self.dollar(buf),
                Mode::LineComment { start } => self.line_comment(buf, eof, start, in_statement),
                Mode::BlockComment { depth } => self.block_comment(buf, eof, depth),
            };
            if let Some(stop) = stop {
                return stop;
            }
        }
    }

    /// Moves to `to`, counting the newlines passed over.
    fn skip_to(&mut self, buf: &[u8], to: usize) {
        self.line += count_newlines(&buf[self.pos..to]);
        self.pos = to;
    }

    fn enter(&mut self, mode: Mode, width: usize) {
        self.mode = mode;
        self.mode_line = self.line;
        self.pos += width;
    }

    fn code(
        &mut self,
        buf: &[u8],
        eof: bool,
        in_statement: bool,
        conforming: bool,
    ) -> Option<Stop> {
        while self.pos < buf.len() {
            if in_statement {
                // Skip the run of bytes with no meaning to the scanner in one go.
                let stops = self.stops;
                let rest = &buf[self.pos..];
                let run = rest.iter().position(|&b| stops[usize::from(b)]);
                self.pos += run.unwrap_or(rest.len());
                if self.pos == buf.len() {
                    break;
                }
            }
            let byte = buf[self.pos];
            let next = buf.get(self.pos + 1).copied();
            let undecided = next.is_none() && !eof;
            match byte {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b'\x0c' => self.pos += 1,
                b'\\' => return Some(Stop::Backslash),
                b'-' | b'/' if undecided => return Some(Stop::NeedMore),
                b'-' if next == Some(b'-') => {
                    let start = self.pos;
                    self.enter(Mode::LineComment { start }, 2);
                    return None;
                }
                b'/' if next == Some(b'*') => {
                    self.enter(Mode::BlockComment { depth: 1 }, 2);
                    return None;
                }
                _ if !in_statement => {
                    self.set_nesting(Nesting::at_start(&buf[self.pos..]));
                    return Some(Stop::Significant);
                }
                b';' if !self.nesting.ends_at_semicolon() => self.pos += 1,
                b';' => return Some(Stop::Semicolon),
                b'(' => {
                    let mut nesting = self.nesting;
                    nesting.open_paren();
                    self.set_nesting(nesting);
                    self.pos += 1;
                }
                b')' => {
                    let mut nesting = self.nesting;
                    nesting.close_paren();
                    self.set_nesting(nesting);
                    self.pos += 1;
                }
                b'\'' => {
                    let escapes = string_escapes(&buf[..self.pos], conforming);
                    self.enter(Mode::Single { escapes }, 1);
                    return None;
                }
                b'"' => {
                    self.enter(Mode::Double, 1);
                    return None;
                }
                b'$' => match dollar_delimiter(buf, self.pos, eof) {
                    Delimiter::Undecided => return Some(Stop::NeedMore),
                    Delimiter::Found(end) => {
                        let delimiter = buf[self.pos..end].into();
                        self.enter(Mode::Dollar { delimiter }, end - self.pos);
                        return None;
                    }
                    Delimiter::None => self.pos += 1,
                },
                // Only where `stops` holds the bytes that may begin a word.
                _ if is_ident_byte(byte) => {
                    if !self.word(buf, eof) {
                        return Some(Stop::NeedMore);
                    }
                }
                _ => self.pos += 1,
            }
        }
        Some(Stop::NeedMore)
    }

    /// Reads the word at `pos` and moves past it; `false` when it may go on in bytes not read
    /// yet, leaving `pos` at its start. Numbers, and the rest of a word whose start was passed
    /// over, are skipped unread.
    fn word(&mut self, buf: &[u8], eof: bool) -> bool {
        let rest = &buf[self.pos..];
        let len = rest.iter().position(|&b| !is_ident_byte(b));
        let inside = self.pos > 0 && is_ident_byte(buf[self.pos - 1]);
        if inside || rest[0].is_ascii_digit() {
            self.pos += len.unwrap_or(rest.len());
            return true;
        }
        let len = match len {
            Some(len) => len,
            None if eof => rest.len(),
            None => return false,
        };
        let mut nesting = self.nesting;
        nesting.read(&rest[..len]);
        self.set_nesting(nesting);
        self.pos += len;
        true
    }

    fn set_nesting(&mut self, nesting: Nesting) {
        self.nesting = nesting;
        // Stop at no byte that cannot change the state: a word may begin anywhere in a routine
        // definition, but only the first letters of the words that count are worth a look.
        self.stops = match nesting {
            Nesting::Flat => &SPECIAL,
            Nesting::Rule { .. } | Nesting::Routine { parens: 1.., .. } => &NESTED,
            // Whatever word follows a `BEGIN` says whether it opened the body.
            Nesting::Routine {
                blocks: 0,
                after_begin: true,
                ..
            } => &NESTED_OR_WORD,
            Nesting::Routine { blocks: 0, .. } => &NESTED_OR_BEGIN,
            Nesting::Routine { .. } => &NESTED_OR_BLOCK_WORD,
            _ => &NESTED_OR_WORD,
        };
    }

    /// Ends a quote at the `quote` byte at `at` unless it is doubled; `None` means undecided.
    fn close_quote(&mut self, buf: &[u8], eof: bool, at: usize, quote: u8) -> Option<Stop> {
        self.skip_to(buf, at);
        match buf.get(at + 1) {
            None if !eof => Some(Stop::NeedMore),
            Some(&b) if b == quote => {
                self.pos += 2;
                None
            }
            _ => {
                self.pos += 1;
                self.mode = Mode::Code;
                None
            }
        }
    }

    fn single(&mut self, buf: &[u8], eof: bool, escapes: bool) -> Option<Stop> {
        let found = if escapes {
            memchr2(b'\'', b'\\', &buf[self.pos..])
        } else {
            memchr(b'\'', &buf[self.pos..])
        };
        let Some(offset) = found else {
            self.skip_to(buf, buf.len());
            return Some(Stop::NeedMore);
        };
        let at = self.pos + offset;
        if buf[at] == b'\\' {
            if at + 1 >= buf.len() {
                self.skip_to(buf, at);
                return Some(Stop::NeedMore);
            }
            self.skip_to(buf, at + 2);
            return None;
        }
        self.close_quote(buf, eof, at, b'\'')
    }

    fn double(&mut self, buf: &[u8], eof: bool) -> Option<Stop> {
        match memchr(b'"', &buf[self.pos..]) {
            Some(offset) => self.close_quote(buf, eof, self.pos + offset, b'"'),
            None => {
                self.skip_to(buf, buf.len());
                Some(Stop::NeedMore)
            }
        }
    }

    fn dollar(&mut self, buf: &[u8]) -> Option<Stop> {
        let Mode::Dollar { delimiter } = &self.mode else {
            return None;
        };
        let width = delimiter.len();
        match memmem::find(&buf[self.pos..], delimiter) {
            Some(offset) => {
                self.skip_to(buf, self.pos + offset + width);
                self.mode = Mode::Code;
                None
            }
            None => {
                // Keep the last bytes: they may be the start of the closing delimiter.
                let keep = buf.len().saturating_sub(width - 1).max(self.pos);
                self.skip_to(buf, keep);
                Some(Stop::NeedMore)
            }
        }
    }

    fn line_comment(
        &mut self,
        buf: &[u8],
        eof: bool,
        start: usize,
        in_statement: bool,
    ) -> Option<Stop> {
        let line = self.line;
        let end = match memchr(b'\n', &buf[self.pos..]) {
            Some(offset) => {
                self.pos += offset + 1;
                self.line += 1;
                self.pos - 1
            }
            None if eof => {
                self.pos = buf.len();
                buf.len()
            }
            None => {
                self.pos = buf.len();
                return Some(Stop::NeedMore);
            }
        };
        self.mode = Mode::Code;
        (!in_statement).then_some(Stop::Comment { start, end, line })
    }

    fn block_comment(&mut self, buf: &[u8], eof: bool, depth: u32) -> Option<Stop> {
        let Some(offset) = memchr2(b'*', b'/', &buf[self.pos..]) else {
            self.skip_to(buf, buf.len());
            return Some(Stop::NeedMore);
        };
        let at = self.pos + offset;
        self.skip_to(buf, at);
        let pair = (buf[at], buf.get(at + 1).copied());
        match pair {
            (_, None) if !eof => return Some(Stop::NeedMore),
            (b'*', Some(b'/')) if depth == 1 => {
                self.pos += 2;
                self.mode = Mode::Code;
            }
            (b'*', Some(b'/')) => {
                self.pos += 2;
                self.mode = Mode::BlockComment { depth: depth - 1 };
            }
            (b'/', Some(b'*')) => {
                self.pos += 2;
                self.mode = Mode::BlockComment { depth: depth + 1 };
            }
            _ => self.pos += 1,
        }
        None
    }
}

/// Bytes that end a run of ordinary statement text.
static SPECIAL: [bool; 256] = with([false; 256], b"\n\\-/;'\"$");

/// Bytes that end a run of text in a rule, or inside parentheses in a routine definition.
static NESTED: [bool; 256] = with(SPECIAL, b"()");

/// Bytes that end a run of routine definition text outside any body block, where only `BEGIN`
/// counts.
static NESTED_OR_BEGIN: [bool; 256] = with(NESTED, b"bB");

/// Bytes that end a run of text inside a routine body block, where `BEGIN`, `CASE` and `END`
/// count.
static NESTED_OR_BLOCK_WORD: [bool; 256] = with(NESTED, b"bBcCeE");

/// Bytes that end a run of text while every word counts: those that may begin a word or a
/// number, too.
static NESTED_OR_WORD: [bool; 256] = {
    let mut table = NESTED;
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        if b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80 {
            table[byte] = true;
        }
        byte += 1;
    }
    table
};

/// `table` with `bytes` added.
const fn with(mut table: [bool; 256], bytes: &[u8]) -> [bool; 256] {
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
}

fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use crate::dump::tests::{items, statements};
    use crate::dump::{DumpLexer, Item};

    fn sql(input: &str) -> Vec<String> {
        statements(&items(input.as_bytes()))
    }

    #[test]
    fn semicolon_ends_a_statement() {
        assert_eq!(sql("SELECT 1; SELECT 2;"), ["SELECT 1;", "SELECT 2;"]);
    }

    #[test]
    fn semicolon_in_doubled_quote_string_does_not_end_statement() {
        assert_eq!(
            sql("SELECT 'a;''b;'; SELECT 2;"),
            ["SELECT 'a;''b;';", "SELECT 2;"]
        );
    }

    #[test]
    fn quoted_identifier_may_hold_semicolon_comments_and_quotes() {
        let input = "SELECT 1 AS \"a;--/*'\"\"\"; SELECT 2;";
        assert_eq!(sql(input), ["SELECT 1 AS \"a;--/*'\"\"\";", "SELECT 2;"]);
    }

    #[test]
    fn semicolon_in_line_comment_does_not_end_statement() {
        assert_eq!(
            sql("SELECT 1 -- ; not yet\n;"),
            ["SELECT 1 -- ; not yet\n;"]
        );
    }

    #[test]
    fn block_comments_nest() {
        assert_eq!(sql("SELECT /* a /* ; */ ; */ 1; SELECT 2;").len(), 2);
    }

    #[test]
    fn dollar_quotes_take_any_tag() {
        for tag in ["", "_", "_X", "body", "été"] {
            let input = format!("SELECT ${tag}$ ; ' \" -- ${tag}$; SELECT 2;");
            assert_eq!(sql(&input).len(), 2, "tag {tag:?}");
        }
    }

    #[test]
    fn dollar_quote_closes_only_on_its_own_tag() {
        let input = "SELECT $a$ ; $b$ ; $$ ; $a$; SELECT 2;";
        assert_eq!(sql(input), ["SELECT $a$ ; $b$ ; $$ ; $a$;", "SELECT 2;"]);
    }

    #[test]
    fn dollar_inside_identifier_is_not_a_quote() {
        assert_eq!(sql("SELECT a$b$c; SELECT 2;").len(), 2);
    }

    #[test]
    fn positional_parameter_is_not_a_quote() {
        assert_eq!(sql("SELECT f($1$2); SELECT 2;").len(), 2);
    }

    #[test]
    fn escape_string_backslash_escapes_the_quote() {
        let input = "SELECT E'it\\'s; \\\\', e'\\';'; SELECT 2;";
        assert_eq!(
            sql(input),
            ["SELECT E'it\\'s; \\\\', e'\\';';", "SELECT 2;"]
        );
    }

    #[test]
    fn plain_string_backslash_is_literal_when_conforming() {
        assert_eq!(
            sql("SELECT 'a\\'; SELECT 'b';"),
            ["SELECT 'a\\';", "SELECT 'b';"]
        );
    }

    #[test]
    fn identifier_ending_in_e_does_not_make_an_escape_string() {
        // `type'…'` is a typed literal, not `E'…'`: the backslash stays literal.
        assert_eq!(sql("SELECT type'a\\'; SELECT 2;").len(), 2);
    }

    #[test]
    fn unicode_bit_and_hex_strings_never_take_backslash_escapes() {
        let off = "SET standard_conforming_strings = off;\n";
        for literal in ["U&'\\'", "u&'\\'", "B'\\'", "X'\\'"] {
            let input = format!("{off}SELECT {literal}; SELECT 2;");
            assert_eq!(sql(&input).len(), 3, "literal {literal}");
        }
    }

    #[test]
    fn unicode_quoted_identifier_may_hold_semicolon() {
        assert_eq!(
            sql("SELECT U&\"a;b\"; SELECT 2;"),
            ["SELECT U&\"a;b\";", "SELECT 2;"]
        );
    }

    #[test]
    fn national_string_may_hold_semicolon() {
        assert_eq!(
            sql("SELECT N'a;b'; SELECT 2;"),
            ["SELECT N'a;b';", "SELECT 2;"]
        );
    }

    #[test]
    fn rule_with_several_actions_is_one_statement() {
        let rule = "CREATE RULE r AS\n    ON INSERT TO public.t DO INSTEAD ( INSERT INTO public.a \
                    VALUES (new.id);\n INSERT INTO public.b VALUES (new.id);\n);";
        let input = format!("{rule}\nSELECT (1));\nSELECT 2;");
        assert_eq!(sql(&input), [rule, "SELECT (1));", "SELECT 2;"]);
    }

    #[test]
    fn routine_keywords_behind_comments_and_line_breaks_are_still_found() {
        let function = "create /* a */ or\n  replace -- b\n function f() returns int\n\
                        language sql begin atomic select 1; end;";
        let input = format!("{function}\nCREATE\n  PROCEDURE p() BEGIN ATOMIC SELECT 1; END;");
        assert_eq!(
            sql(&input),
            [
                function,
                "CREATE\n  PROCEDURE p() BEGIN ATOMIC SELECT 1; END;"
            ]
        );
    }

    /// A function with an SQL-standard body as pg_dump of PostgreSQL 14 and later writes it.
    const ADD_ONE: &str = "CREATE FUNCTION public.add_one(x integer) RETURNS integer
    LANGUAGE sql
    BEGIN ATOMIC
 SELECT (x + 1);
END;";

    #[test]
    fn begin_atomic_function_is_one_statement() {
        let input = format!("{ADD_ONE}\n\nSELECT public.add_one(1);\n");
        assert_eq!(sql(&input), [ADD_ONE, "SELECT public.add_one(1);"]);
    }

    #[test]
    fn procedure_body_with_several_statements_and_a_case_is_one_statement() {
        let procedure =
            "CREATE OR REPLACE PROCEDURE public.fill(n integer)\n    LANGUAGE sql\n    \
                         begin atomic\n INSERT INTO public.t VALUES (1);\n INSERT INTO public.t \
                         VALUES (\n        CASE\n            WHEN (n > 1) THEN 2\n            \
                         ELSE 3\n        END);\n SELECT CASE WHEN n > 2 THEN 'end' END;\nEND;";
        let input = format!("{procedure}\nCALL public.fill(2);");
        assert_eq!(sql(&input), [procedure, "CALL public.fill(2);"]);
    }

    #[test]
    fn a_function_named_begin_ends_at_its_semicolon() {
        // psql would hold this `;` and send the rest of the file with the definition.
        let function = "CREATE FUNCTION public.begin() RETURNS integer\n    LANGUAGE sql\n    \
                        AS $$ SELECT 1 $$;";
        let input = format!("{function}\nSELECT public.begin();\n");
        assert_eq!(sql(&input), [function, "SELECT public.begin();"]);
    }

    #[test]
    fn case_end_outside_a_body_block_does_not_hold_the_semicolon() {
        let function = "CREATE FUNCTION f(x integer) RETURNS integer LANGUAGE sql \
                        RETURN CASE WHEN x > 0 THEN 1 ELSE 0 END;";
        let input = format!("{function} SELECT 2;");
        assert_eq!(sql(&input), [function, "SELECT 2;"]);
    }

    #[test]
    fn transaction_begin_and_begin_named_objects_split_normally() {
        let input = "BEGIN;\nCREATE TABLE begin_log (begin integer, \"end\" text);\n\
                     INSERT INTO begin_log VALUES (1, 'x');\nSELECT begin FROM begin_log;\n\
                     CREATE VIEW v AS SELECT CASE WHEN true THEN 1 END AS begin;\nCOMMIT;\nEND;";
        assert_eq!(sql(input).len(), 7);
    }

    #[test]
    fn begin_in_strings_comments_and_quoted_identifiers_opens_no_block() {
        let input = "CREATE FUNCTION f() RETURNS text LANGUAGE sql RETURN 'begin' /* begin */\n\
                     -- begin\n|| \"begin\"(E'\\'begin') || $q$begin$q$; SELECT 2;";
        assert_eq!(sql(input).len(), 2);
    }

    #[test]
    fn dollar_quoted_function_body_is_still_one_statement() {
        let function = "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n    \
                        NEW.at = now();\n    RETURN NEW;\nEND $$;";
        let input = format!("{function}\nBEGIN;\nSELECT 1;\nEND;");
        assert_eq!(sql(&input), [function, "BEGIN;", "SELECT 1;", "END;"]);
    }

    #[test]
    fn begin_atomic_body_split_across_two_reads_is_one_statement() {
        // The padding makes the first read end at `cut` and the second hold all the rest.
        let padding = format!("SELECT '{}';", "p".repeat(ADD_ONE.len()));
        let input = format!("{padding}\n{ADD_ONE}\nSELECT 2;");

        for cut in padding.len()..input.len() {
            let items: Vec<Item> = DumpLexer::new(input.as_bytes())
                .with_read_block(cut)
                .collect::<Result<_, _>>()
                .expect("lexes");
            let expected = [padding.as_str(), ADD_ONE, "SELECT 2;"];
            assert_eq!(statements(&items), expected, "first read of {cut} bytes");
        }
    }
}
