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
