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
    /// The dump's client encoding, when a backslash byte may be part of a character.
    multibyte: Option<MultiByte>,
}

impl CopyBlock {
    pub(super) fn new(start_line: u64, multibyte: Option<MultiByte>) -> Self {
        CopyBlock {
            start_line,
            rows: 0,
            rows_end: 0,
            search_from: 0,
            crlf: None,
            multibyte,
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
    /// pg_dump writes none of these: a backslash in data is `\\` and a newline `\n`. In the
    /// client encodings whose characters may end in the backslash byte (SJIS, BIG5, GBK, UHC,
    /// GB18030, JOHAB), the row is read character by character, as the server reads it.
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
            let row_end = match self.multibyte {
                None => RowEnd::of(content),
                Some(encoding) => RowEnd::read_in(content, encoding),
            };
            match row_end {
                RowEnd::Plain => {}
                RowEnd::Backslash => {
                    return Err(LexError::new(row_line, LexErrorKind::RowJoinsNextLine));
                }
                RowEnd::EndOfData => {
                    return Err(LexError::new(row_line, LexErrorKind::EndOfDataInRow));
                }
            }
            count += 1;
            start = end + 1;
        }
        Ok(count)
    }

    /// Refuses a terminator whose line end is unlike the rows' (`\.` + `\r\n` after rows ending
    /// in `\n`, or the reverse), which the server refuses when it reads the whole block. `line`
    /// is the terminator's; `terminator` is the line with its end, if any.
    pub(super) fn check_terminator(&self, terminator: &[u8], line: u64) -> Result<(), LexError> {
        let crlf = match terminator {
            [.., b'\r', b'\n'] => true,
            [.., b'\n'] => false,
            _ => return Ok(()),
        };
        match self.crlf {
            Some(rows) if rows != crlf => Err(LexError::new(line, LexErrorKind::MixedLineEnds)),
            _ => Ok(()),
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

/// The client encodings in which the second (or a later) byte of a character may be `\\`, so
/// that the server reads a row of them character by character (PostgreSQL's
/// `pg_encoding_mblen`). In every other encoding a byte below 0x80 is always that character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MultiByte {
    /// SJIS: 0xA1–0xDF are one-byte katakana, other bytes from 0x80 lead two.
    Sjis,
    /// BIG5, GBK, UHC: every byte from 0x80 leads two.
    Double,
    /// GB18030: a lead byte followed by 0x30–0x39 starts four bytes, else two.
    Gb18030,
    /// JOHAB, read as EUC: 0x8E leads two, 0x8F three, other bytes from 0x80 two.
    Johab,
}

impl MultiByte {
    /// The kind of `name`, a client encoding as a dump sets it (`'SJIS'`, `Shift_JIS`, `win950`);
    /// `None` for the encodings whose bytes below 0x80 are always characters.
    pub(crate) fn of(name: &str) -> Option<MultiByte> {
        let name: String = name
            .trim()
            .trim_matches(|c| c == '\'' || c == '"')
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match name.as_str() {
            "SJIS" | "SHIFTJIS" | "MSKANJI" | "WIN932" | "WINDOWS932" => Some(MultiByte::Sjis),
            "BIG5" | "WIN950" | "WINDOWS950" | "GBK" | "WIN936" | "WINDOWS936" | "UHC"
            | "WIN949" | "WINDOWS949" => Some(MultiByte::Double),
            "GB18030" => Some(MultiByte::Gb18030),
            "JOHAB" => Some(MultiByte::Johab),
            _ => None,
        }
    }

    /// Length of the character whose first byte is `bytes[0]`.
    fn char_len(self, bytes: &[u8]) -> usize {
        let lead = bytes[0];
        if lead < 0x80 {
            return 1;
        }
        match self {
            MultiByte::Sjis if (0xa1..=0xdf).contains(&lead) => 1,
            MultiByte::Sjis | MultiByte::Double => 2,
            MultiByte::Gb18030 => match bytes.get(1) {
                Some(b'0'..=b'9') => 4,
                _ => 2,
            },
            MultiByte::Johab if lead == 0x8f => 3,
            MultiByte::Johab => 2,
        }
    }
}

/// How a COPY row's text ends, before its line end.
#[derive(Debug, PartialEq, Eq)]
enum RowEnd {
    /// In a character or an escaped backslash.
    Plain,
    /// In an unescaped backslash, which joins the next line to the row.
    Backslash,
    /// In an unescaped `\.`, which PostgreSQL 15 takes as the end of the data.
    EndOfData,
}

impl RowEnd {
    /// The end of `content` in an encoding whose bytes below 0x80 are always characters.
    fn of(content: &[u8]) -> RowEnd {
        if odd_backslashes_at_end(content) {
            RowEnd::Backslash
        } else if content
            .strip_suffix(b".")
            .is_some_and(odd_backslashes_at_end)
        {
            RowEnd::EndOfData
        } else {
            RowEnd::Plain
        }
    }

    /// The end of `content` read as the server reads a row in `encoding`: a backslash takes
    /// the byte after it, and a byte from 0x80 starts a character of several bytes.
    fn read_in(content: &[u8], encoding: MultiByte) -> RowEnd {
        let mut at = 0;
        while at < content.len() {
            if content[at] == b'\\' {
                match content.get(at + 1) {
                    None => return RowEnd::Backslash,
                    Some(b'.') if at + 2 == content.len() => return RowEnd::EndOfData,
                    Some(_) => at += 2,
                }
            } else {
                at += encoding.char_len(&content[at..]);
            }
        }
        RowEnd::Plain
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
    fn a_backslash_byte_inside_a_character_of_the_dump_s_encoding_ends_no_row() {
        // 表 is 0x95 0x5C in SJIS, ソ 0x83 0x5C: pg_dump -E SJIS writes them as they are.
        let rows = b"1\t\x95\x5c\n2\t\x83\x5c.\n3\t\xb1\\\\\n";
        for set in [
            "SET client_encoding = 'SJIS';",
            "SET NAMES 'SJIS';",
            "SELECT pg_catalog.set_config('client_encoding', 'SJIS', false);",
        ] {
            let mut dump = format!("{set}\nCOPY t (a, b) FROM stdin;\n").into_bytes();
            dump.extend_from_slice(rows);
            dump.extend_from_slice(b"\\.\n");
            assert_eq!(end(&items(&dump)).0, 3, "{set}");
        }

        // Read as UTF-8 (or after a return to it) the same bytes end in a backslash.
        let mut dump = b"COPY t (a, b) FROM stdin;\n".to_vec();
        dump.extend_from_slice(rows);
        dump.extend_from_slice(b"\\.\n");
        assert!(matches!(
            error(&dump).kind(),
            LexErrorKind::RowJoinsNextLine
        ));
        let mut dump = b"SET NAMES 'SJIS';\nRESET client_encoding;\n".to_vec();
        dump.extend_from_slice(b"COPY t (a, b) FROM stdin;\n");
        dump.extend_from_slice(rows);
        dump.extend_from_slice(b"\\.\n");
        assert!(matches!(
            error(&dump).kind(),
            LexErrorKind::RowJoinsNextLine
        ));
    }

    #[test]
    fn in_a_multibyte_encoding_a_backslash_still_takes_the_next_byte() {
        for (encoding, row, kind) in [
            // A real backslash after a whole character still joins the row to the next.
            (
                "SJIS",
                &b"1\t\x95\x5c\\\n"[..],
                LexErrorKind::RowJoinsNextLine,
            ),
            // The server's backslash takes one byte, the lead of 表, leaving its 0x5C bare.
            ("SJIS", b"1\t\\\x95\x5c\n", LexErrorKind::RowJoinsNextLine),
            ("BIG5", b"1\t\xa4\x5c\\.\n", LexErrorKind::EndOfDataInRow),
            (
                "GB18030",
                b"1\t\x81\x30\x81\x30\\\n",
                LexErrorKind::RowJoinsNextLine,
            ),
        ] {
            let mut dump = format!("SET client_encoding = '{encoding}';\n").into_bytes();
            dump.extend_from_slice(b"COPY t (a, b) FROM stdin;\n");
            dump.extend_from_slice(row);
            dump.extend_from_slice(b"\\.\n");
            let err = error(&dump);
            assert_eq!(
                std::mem::discriminant(err.kind()),
                std::mem::discriminant(&kind)
            );
            assert_eq!(err.line(), 3, "{encoding}");
        }
    }

    #[test]
    fn a_terminator_with_another_line_end_than_the_rows_is_refused() {
        let err = error(b"COPY t (a) FROM stdin;\n1\n2\n\\.\r\n");
        assert!(matches!(err.kind(), LexErrorKind::MixedLineEnds), "{err}");
        assert_eq!(err.line(), 4);
        let err = error(b"COPY t (a) FROM stdin;\r\n1\r\n\\.\nSELECT 1;\n");
        assert!(matches!(err.kind(), LexErrorKind::MixedLineEnds), "{err}");
        // Without rows any line end goes, as it does for the server; so does the end of file.
        assert_eq!(end(&items(b"COPY t (a) FROM stdin;\n\\.\r\n")).0, 0);
        assert_eq!(end(&items(b"COPY t (a) FROM stdin;\r\n1\r\n\\.")).0, 1);
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
