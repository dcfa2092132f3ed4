//! Finding the rows of a `COPY … FROM stdin` block and its `\.` terminator.
//!
//! Rows are never parsed: the block ends at the first line that is exactly `\.` (a `\r` before
//! the newline allowed, the newline itself optional at the end of the dump). The search jumps
//! between candidate lines with `memmem`, so the cost per byte stays far below that of loading
//! the rows into the server.

use memchr::{memchr, memmem, memrchr};

/// Progress through the COPY block at the front of the lexer's buffer.
#[derive(Debug)]
pub(super) struct CopyBlock {
    /// Line of the `COPY` statement, for the truncation error.
    pub(super) start_line: u64,
    /// Rows handed out so far.
    pub(super) rows: u64,
    /// Bytes at the front of the buffer known to be whole rows; always a line start.
    rows_end: usize,
    /// Bytes before this offset hold no terminator candidate past `rows_end`.
    search_from: usize,
}

impl CopyBlock {
    pub(super) fn new(start_line: u64) -> Self {
        CopyBlock {
            start_line,
            rows: 0,
            rows_end: 0,
            search_from: 0,
        }
    }

    /// Bytes at the front of the buffer that are known to be whole rows.
    pub(super) fn rows_end(&self) -> usize {
        self.rows_end
    }

    /// Forgets the first `n` bytes of the buffer, which the lexer has handed out.
    pub(super) fn consumed(&mut self, n: usize) {
        self.rows_end -= n;
        self.search_from = self.search_from.saturating_sub(n);
    }

    /// Extends the known rows as far as `buf` allows. Returns the terminator's length (with its
    /// line end) when the terminator line starts right at [`CopyBlock::rows_end`].
    pub(super) fn scan(&mut self, buf: &[u8], eof: bool) -> Option<usize> {
        loop {
            match terminator_at(&buf[self.rows_end..], eof) {
                Terminator::Yes(len) => return Some(len),
                Terminator::Undecided => return None,
                Terminator::No => {}
            }
            let from = self.search_from.max(self.rows_end);
            if let Some(offset) = memmem::find(&buf[from..], b"\n\\.") {
                self.rows_end = from + offset + 1;
                self.search_from = self.rows_end;
                continue;
            }
            if let Some(offset) = memrchr(b'\n', &buf[from..]) {
                self.rows_end = from + offset + 1;
            }
            // A candidate may straddle the end of the buffer: search its last two bytes again.
            self.search_from = buf.len().saturating_sub(2).max(self.rows_end);
            return match terminator_at(&buf[self.rows_end..], eof) {
                Terminator::Yes(len) => Some(len),
                _ => None,
            };
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Terminator {
    Yes(usize),
    No,
    Undecided,
}

/// Whether the line starting `rest` is the `\.` terminator.
fn terminator_at(rest: &[u8], eof: bool) -> Terminator {
    let undecided = if eof {
        Terminator::No
    } else {
        Terminator::Undecided
    };
    match rest {
        [] | [b'\\'] => undecided,
        [b'\\', b'.'] | [b'\\', b'.', b'\r'] if eof => Terminator::Yes(rest.len()),
        [b'\\', b'.'] | [b'\\', b'.', b'\r'] => Terminator::Undecided,
        [b'\\', b'.', b'\n', ..] => Terminator::Yes(3),
        [b'\\', b'.', b'\r', b'\n', ..] => Terminator::Yes(4),
        _ => Terminator::No,
    }
}

/// Where to cut `rows` (whole rows) so the piece holds at most `chunk` bytes, or the first row
/// alone when that row is longer.
pub(super) fn chunk_cut(rows: &[u8], chunk: usize) -> usize {
    if rows.len() <= chunk {
        return rows.len();
    }
    match memrchr(b'\n', &rows[..chunk]) {
        Some(offset) => offset + 1,
        None => memchr(b'\n', &rows[chunk..]).map_or(rows.len(), |offset| chunk + offset + 1),
    }
}
