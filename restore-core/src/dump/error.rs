//! Why a dump could not be split into items.

use std::{error, fmt, io};

/// A failure to split a dump: the dump is malformed or truncated, or reading it failed.
///
/// Every error names a 1-based line of the dump: where the offending construct began, or where
/// the reader was when a read failed.
#[derive(Debug)]
pub struct LexError {
    line: u64,
    kind: LexErrorKind,
}

/// What went wrong; see [`LexError::kind`].
#[derive(Debug)]
#[non_exhaustive]
pub enum LexErrorKind {
    /// The reader failed; the original error is kept so callers can look at what their reader
    /// produced (`io::Error::get_ref`).
    Io(io::Error),
    /// The dump ends inside a quote or comment that began at the error's line.
    Unterminated(Construct),
    /// The dump ends inside the COPY block whose statement began at the error's line.
    TruncatedCopy,
    /// Text other than a comment follows `COPY … FROM stdin;` on its line, where psql would
    /// read it as SQL only after the rows; such a dump was not written by pg_dump.
    TextAfterCopyStatement,
    /// A COPY row ends in `\r\n` where the block's first row ends in `\n`, or the other way
    /// round; PostgreSQL refuses such a block.
    MixedLineEnds,
    /// A COPY row ends in an unescaped backslash, which makes PostgreSQL read it together with
    /// the next line.
    RowJoinsNextLine,
    /// A COPY row ends in an unescaped `\.`, which PostgreSQL 15 takes as the end of the data,
    /// silently leaving out the rows after it.
    EndOfDataInRow,
    /// A statement, comment or COPY row longer than the lexer holds at once.
    TooLong {
        /// The most bytes held.
        limit: usize,
    },
}

/// A quote or comment that must be closed before the end of the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Construct {
    /// A `'…'` string, including `E'…'`, `U&'…'`, `B'…'` and `X'…'` forms.
    String,
    /// A `"…"` quoted identifier.
    QuotedIdentifier,
    /// A `$tag$…$tag$` string.
    DollarQuotedString,
    /// A `/* … */` comment.
    BlockComment,
}

impl LexError {
    pub(super) fn new(line: u64, kind: LexErrorKind) -> Self {
        LexError { line, kind }
    }

    /// The 1-based line the error is about.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// What went wrong.
    pub fn kind(&self) -> &LexErrorKind {
        &self.kind
    }

    /// Takes the error apart, for callers that want to keep the reader's `io::Error`.
    pub fn into_kind(self) -> LexErrorKind {
        self.kind
    }
}

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self.line;
        match &self.kind {
            LexErrorKind::Io(err) => write!(f, "reading the dump failed near line {line}: {err}"),
            LexErrorKind::Unterminated(construct) => {
                let what = match construct {
                    Construct::String => "quoted string",
                    Construct::QuotedIdentifier => "quoted identifier",
                    Construct::DollarQuotedString => "dollar-quoted string",
                    Construct::BlockComment => "/* comment",
                };
                write!(f, "unterminated {what} starting at line {line}")
            }
            LexErrorKind::TruncatedCopy => write!(
                f,
                "dump ends inside the COPY block started at line {line} (no \\. terminator): \
                 the file is truncated"
            ),
            LexErrorKind::TooLong { limit } => write!(
                f,
                "the statement, comment or COPY row at line {line} is longer than {} MiB, \
                 the most a restore holds at once",
                limit >> 20
            ),
            LexErrorKind::MixedLineEnds => write!(
                f,
                "line {line}: this COPY row ends in another line end than the block's first row \
                 (\\n and \\r\\n mixed), which PostgreSQL refuses"
            ),
            LexErrorKind::RowJoinsNextLine => write!(
                f,
                "line {line}: the COPY row ends in an unescaped backslash, which makes PostgreSQL \
                 read it together with the next line; pg_dump writes a newline in data as \\n"
            ),
            LexErrorKind::EndOfDataInRow => write!(
                f,
                "line {line}: the COPY row ends in \\., which PostgreSQL takes as the end of the \
                 data, silently leaving out the rows after it; pg_dump writes a backslash in data \
                 as \\\\"
            ),
            LexErrorKind::TextAfterCopyStatement => write!(
                f,
                "line {line}: text follows `COPY … FROM stdin;` on the same line, where the rows \
                 must begin"
            ),
        }
    }
}

impl error::Error for LexError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        match &self.kind {
            LexErrorKind::Io(err) => Some(err),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read};

    use super::*;
    use crate::dump::tests::error;
    use crate::dump::DumpLexer;

    fn unterminated(input: &str) -> (Construct, u64, String) {
        let err = error(input.as_bytes());
        let LexErrorKind::Unterminated(construct) = err.kind() else {
            panic!("{err}")
        };
        (*construct, err.line(), err.to_string())
    }

    #[test]
    fn unterminated_dollar_quote_names_the_line_it_began() {
        let (construct, line, message) =
            unterminated("SELECT 1;\n\nCREATE FUNCTION f() AS $body$\nx;\n");
        assert_eq!((construct, line), (Construct::DollarQuotedString, 3));
        assert_eq!(
            message,
            "unterminated dollar-quoted string starting at line 3"
        );
    }

    #[test]
    fn unterminated_string_names_the_line_it_began() {
        assert_eq!(unterminated("SELECT\n'a;\n\n").0, Construct::String);
        assert_eq!(unterminated("SELECT\n'a;\n\n").1, 2);
    }

    #[test]
    fn unterminated_quoted_identifier_names_the_line_it_began() {
        assert_eq!(unterminated("\nSELECT \"a;\n").1, 2);
        assert_eq!(
            unterminated("\nSELECT \"a;\n").0,
            Construct::QuotedIdentifier
        );
    }

    #[test]
    fn unterminated_block_comment_names_the_line_it_began() {
        let (construct, line, _) = unterminated("SELECT 1;\n/* a /* b */\n");
        assert_eq!((construct, line), (Construct::BlockComment, 2));
    }

    #[derive(Debug)]
    struct Corrupt;

    impl fmt::Display for Corrupt {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("corrupt block")
        }
    }

    impl error::Error for Corrupt {}

    /// Yields its bytes, then fails with a [`Corrupt`] error.
    struct FailingReader(&'static [u8]);

    impl Read for FailingReader {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, Corrupt));
            }
            self.0.read(out)
        }
    }

    #[test]
    fn read_failure_keeps_the_readers_error() {
        let mut lexer = DumpLexer::new(FailingReader(b"SELECT 1;\nSELECT"));
        let Err(err) = lexer.by_ref().collect::<Result<Vec<_>, _>>() else {
            panic!("no error")
        };
        let LexErrorKind::Io(io_err) = err.kind() else {
            panic!("not an I/O error: {err}")
        };
        assert!(io_err.get_ref().is_some_and(|inner| inner.is::<Corrupt>()));
        assert!(error::Error::source(&err).is_some());
        assert_eq!(err.line(), 2);
        assert!(lexer.next().is_none(), "nothing follows an error");
    }
}
