//! Finding the rows of a `COPY … FROM stdin` block and its `\.` terminator.
//!
//! Rows are never parsed: the block ends at the first line that is exactly `\.` (a `\r` before
//! the newline allowed, the newline itself optional at the end of the dump). The search jumps
//! between candidate lines with `memmem`, so the cost per byte stays far below that of loading
//! the rows into the server.
//!
//! Only the ends of rows are looked at, since the loader sends a block's rows in pieces, over
//! several connections, and the server reads each piece on its own: a row may not end in a way
//! that makes the server read it together with the next one, or read the rows after it not at
//! all ([`CopyBlock::count_rows`]).

use memchr::{memchr, memchr_iter, memmem, memrchr};

use super::error::{LexError, LexErrorKind};

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
    /// Whether the rows end in `\r\n`, as the first row does.
    crlf: Option<bool>,
}

impl CopyBlock {
    pub(super) fn new(start_line: u64) -> Self {
        CopyBlock {
            start_line,
            rows: 0,
            rows_end: 0,
            search_from: 0,
            crlf: None,
        }
    }

    /// Counts the rows of `rows` (whole rows, the first on `line`), refusing a row whose end
    /// PostgreSQL reads as more than a row end:
    ///
    /// - a line end unlike the first row's (`\n` and `\r\n` mixed), which it refuses, but only
    ///   when both reach it in one piece;
    /// - an unescaped backslash before the line end, which joins the row to the next line;
    /// - an unescaped `\.` before the line end, which PostgreSQL 15 takes as the end of the
    ///   data, silently dropping the rows after it.
    ///
    /// pg_dump writes none of these: a backslash in data is `\\` and a newline `\n`.
    pub(super) fn count_rows(&mut self, rows: &[u8], line: u64) -> Result<u64, LexError> {
        let mut count = 0;
        let mut start = 0;
        for end in memchr_iter(b'\n', rows) {
            let crlf = end > start && rows[end - 1] == b'\r';
            let row_line = line + count;
            if *self.crlf.get_or_insert(crlf) != crlf {
                return Err(LexError::new(row_line, LexErrorKind::MixedLineEnds));
            }
            let content = &rows[start..end - usize::from(crlf)];
            if odd_backslashes_at_end(content) {
                return Err(LexError::new(row_line, LexErrorKind::RowJoinsNextLine));
            }
            if content
                .strip_suffix(b".")
                .is_some_and(odd_backslashes_at_end)
            {
                return Err(LexError::new(row_line, LexErrorKind::EndOfDataInRow));
            }
            count += 1;
            start = end + 1;
        }
        Ok(count)
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

/// True when `text` ends in an odd number of backslashes: the last escapes what follows.
fn odd_backslashes_at_end(text: &[u8]) -> bool {
    text.iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 1
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

#[cfg(test)]
mod tests {
    use crate::dump::tests::{copy_rows, error, items, outline};
    use crate::dump::{DumpLexer, Item, LexErrorKind};

    /// A dump holding one COPY block with `rows`, then a statement.
    fn copy_block(rows: &str) -> Vec<Item> {
        items(format!("COPY t (a) FROM stdin;\n{rows}\\.\nSELECT 1;\n").as_bytes())
    }

    fn end(items: &[Item]) -> (u64, u64) {
        let end = items.iter().find_map(|item| match item {
            Item::CopyEnd { rows, line } => Some((*rows, *line)),
            _ => None,
        });
        end.expect("a COPY end")
    }

    #[test]
    fn copy_block_yields_start_rows_and_end() {
        let items = copy_block("1\tx\n2\t\\N\n");
        assert_eq!(outline(&items), "CDES");
        assert_eq!(copy_rows(&items), b"1\tx\n2\t\\N\n");
        assert_eq!(end(&items), (2, 4));
    }

    #[test]
    fn copy_row_ending_in_dot_is_data() {
        let items = copy_block("ends with a dot.\n.\n");
        assert_eq!(copy_rows(&items), b"ends with a dot.\n.\n");
        assert_eq!(end(&items).0, 2);
    }

    #[test]
    fn copy_row_holding_escaped_backslash_dot_is_data() {
        let items = copy_block("\\\\.\n");
        assert_eq!(copy_rows(&items), b"\\\\.\n");
    }

    #[test]
    fn copy_row_containing_backslash_dot_is_data() {
        // The server refuses these itself ("end-of-copy marker corrupt"), whatever piece of the
        // block they arrive in.
        let items = copy_block("a\\.b\n\\.x\n\\. \nx\\\\.\n");
        assert_eq!(copy_rows(&items), b"a\\.b\n\\.x\n\\. \nx\\\\.\n");
        assert_eq!(end(&items).0, 4);
    }

    #[test]
    fn copy_row_ending_in_backslash_dot_is_refused() {
        let err = error(b"COPY t (a) FROM stdin;\n1\nx\\.\n2\n\\.\n");
        assert!(matches!(err.kind(), LexErrorKind::EndOfDataInRow));
        assert_eq!(err.line(), 3);
        let err = error(b"COPY t (a) FROM stdin;\n\\\\\\.\r\n\\.\r\n");
        assert!(matches!(err.kind(), LexErrorKind::EndOfDataInRow), "{err}");
    }

    #[test]
    fn copy_row_ending_in_a_backslash_is_refused() {
        let err = error(b"COPY t (a) FROM stdin;\n1\n2\n3\\\n4\n\\.\n");
        assert!(matches!(err.kind(), LexErrorKind::RowJoinsNextLine));
        assert_eq!(err.line(), 4);
        let ok = copy_block("escaped \\\\\n");
        assert_eq!(end(&ok).0, 1, "an escaped backslash ends the row");
    }

    #[test]
    fn copy_rows_with_mixed_line_ends_are_refused() {
        let err = error(b"COPY t (a) FROM stdin;\n1\r\n2\r\n3\n\\.\n");
        assert!(matches!(err.kind(), LexErrorKind::MixedLineEnds));
        assert_eq!(err.line(), 4);
        let err = error(b"COPY t (a) FROM stdin;\n1\n2\r\n\\.\n");
        assert_eq!(err.line(), 3);
        let crlf = items(b"COPY t (a) FROM stdin;\r\n1\r\n2\r\n\\.\r\n");
        assert_eq!(end(&crlf).0, 2);
    }

    #[test]
    fn copy_rows_are_never_parsed_as_sql() {
        let items = copy_block("'open\n$$\n/* x\n\\connect other\n;\n");
        assert_eq!(outline(&items), "CDES");
        assert_eq!(end(&items).0, 5);
    }

    #[test]
    fn copy_terminator_may_lack_its_final_newline() {
        let items = items(b"COPY t FROM stdin;\n1\n\\.");
        assert_eq!(outline(&items), "CDE");
        assert_eq!(end(&items), (1, 3));
    }

    #[test]
    fn empty_copy_block_has_no_data() {
        let items = items(b"COPY t FROM stdin;\n\\.\n");
        assert_eq!(outline(&items), "CE");
        assert_eq!(end(&items), (0, 2));
    }

    #[test]
    fn truncated_copy_block_names_its_start_line() {
        for input in [
            "SELECT 1;\n\nCOPY t FROM stdin;\n1\n2\n",
            "\n\nCOPY t FROM stdin;\n1\n\\",
        ] {
            let err = error(input.as_bytes());
            assert!(matches!(err.kind(), LexErrorKind::TruncatedCopy));
            assert_eq!(err.line(), 3);
            assert_eq!(
                err.to_string(),
                "dump ends inside the COPY block started at line 3 (no \\. terminator): the file \
                 is truncated"
            );
        }
    }

    #[test]
    fn copy_data_is_cut_into_chunks_of_whole_rows() {
        let input = b"COPY t FROM stdin;\n1234\n5678\n9\n\\.\n";
        let lexer = DumpLexer::new(&input[..]).with_copy_chunk_size(8);
        let items: Vec<Item> = lexer.collect::<Result<_, _>>().expect("lexes");
        let chunks: Vec<&[u8]> = items
            .iter()
            .filter_map(|item| {
                if let Item::CopyData(data) = item {
                    Some(&data[..])
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(chunks, [&b"1234\n"[..], b"5678\n9\n"]);
        assert_eq!(end(&items), (3, 5));
    }

    #[test]
    fn copy_row_longer_than_a_chunk_is_handed_out_whole() {
        let input = b"COPY t FROM stdin;\nabcdefghij\nk\n\\.\n";
        let lexer = DumpLexer::new(&input[..]).with_copy_chunk_size(4);
        let items: Vec<Item> = lexer.collect::<Result<_, _>>().expect("lexes");
        assert_eq!(outline(&items), "CDDE");
        assert_eq!(
            items[1],
            Item::CopyData(bytes::Bytes::from_static(b"abcdefghij\n"))
        );
    }

    #[test]
    fn text_after_copy_statement_on_its_line_is_an_error() {
        let err = error(b"COPY t FROM stdin; SELECT 1;\n\\.\n");
        assert!(matches!(err.kind(), LexErrorKind::TextAfterCopyStatement));
        let ok = items(b"COPY t FROM stdin; -- rows follow\n\\.\n");
        assert_eq!(outline(&ok), "CE");
    }
}
