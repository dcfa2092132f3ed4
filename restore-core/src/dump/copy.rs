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
        let items = copy_block("a\\.b\n\\.x\nx\\.\n\\. \n");
        assert_eq!(copy_rows(&items), b"a\\.b\n\\.x\nx\\.\n\\. \n");
        assert_eq!(end(&items).0, 4);
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
