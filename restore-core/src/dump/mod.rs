//! Splitting a plain-format dump into the items the loader runs.
//!
//! pg_dump's plain output is a psql script: SQL statements, `COPY ... FROM stdin;` blocks whose
//! rows follow in-line up to a line holding only `\.`, a few psql meta-commands, and `--`
//! comments of which the `-- Name: ...; Type: ...; Schema: ...; Owner: ...` table-of-contents
//! headers tell which object the next statements belong to. The lexer reads decoded bytes and
//! yields [`Item`]s in file order; it knows SQL only as far as it must to find where a statement
//! ends and never executes, interprets or rejects anything: that is the planner's job.

mod classify;
mod copy;
mod error;
mod lexer;
mod meta;
mod nesting;
mod quote;
mod scan;
#[cfg(test)]
mod tests;
mod toc;

use std::sync::Arc;

use bytes::Bytes;

pub use error::{Construct, LexError, LexErrorKind};
pub use lexer::DumpLexer;
pub use toc::TocEntry;

/// One unit of a dump, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete SQL statement that is not a `COPY … FROM stdin`.
    Statement(Statement),
    /// A `COPY … FROM stdin` statement. Its rows follow as [`Item::CopyData`], then one
    /// [`Item::CopyEnd`].
    CopyStart(Statement),
    /// Whole rows of the current COPY block, each ending in `\n` (or `\r\n`), exactly as they
    /// stand in the file; the `\.` terminator line is not included.
    CopyData(Bytes),
    /// The end of the current COPY block: the number of rows it held and the line of its `\.`.
    CopyEnd {
        /// Rows in the block (lines between the COPY statement and `\.`).
        rows: u64,
        /// 1-based line of the terminator.
        line: u64,
    },
    /// A psql meta-command (`\connect db`, `\restrict KEY`, `\! ls` …), never executed by the
    /// lexer.
    Meta(MetaCommand),
}

/// An SQL statement with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement's bytes from its first significant character up to and including the
    /// terminating `;` (absent only for a final statement cut off by the end of the file).
    /// Leading comments and whitespace are not included; comments inside are kept.
    pub sql: Bytes,
    /// 1-based line of the statement's first significant character.
    pub line: u64,
    /// The most recent table-of-contents header before the statement, if any.
    pub toc: Option<Arc<TocEntry>>,
}

/// A psql meta-command: a backslash outside quotes and comments, up to the end of its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaCommand {
    /// The command name without the backslash: `connect`, `restrict`, `!`, `o`, `copy` …
    pub name: String,
    /// The rest of the line after the name, trimmed; raw bytes as in the file.
    pub args: Bytes,
    /// 1-based line of the backslash.
    pub line: u64,
    /// The most recent table-of-contents header before the command, if any.
    pub toc: Option<Arc<TocEntry>>,
}
