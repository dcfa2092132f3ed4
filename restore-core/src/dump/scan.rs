//! The resumable scanner that finds where SQL statements end.
//!
//! The scanner walks the lexer's buffer and stops at the places the lexer must act on: the
//! first significant byte of a statement, a `;` that ends one, a backslash that starts a psql
//! meta-command, a complete `--` comment between statements (which may be a table-of-contents
//! header), or the end of the buffered bytes. Its state survives a stop, so a statement that
//! spans many reads is scanned once, not again after every read.

use memchr::{memchr, memchr2, memmem};

use super::quote::{dollar_delimiter, string_escapes, Delimiter};

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
}

impl Scanner {
    pub(super) fn new() -> Self {
        Scanner {
            mode: Mode::Code,
            pos: 0,
            line: 1,
            mode_line: 1,
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
                let rest = &buf[self.pos..];
                let run = rest.iter().position(|&b| SPECIAL[usize::from(b)]);
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
                _ if !in_statement => return Some(Stop::Significant),
                b';' => return Some(Stop::Semicolon),
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
                _ => self.pos += 1,
            }
        }
        Some(Stop::NeedMore)
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
static SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let bytes = b"\n\\-/;'\"$";
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
};

fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use crate::dump::tests::{items, statements};

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
}
