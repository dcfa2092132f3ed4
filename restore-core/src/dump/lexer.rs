//! The dump lexer: decoded bytes in, [`Item`]s out.
//!
//! The lexer reads its source in large blocks into one buffer and hands out statements and COPY
//! rows as `Bytes` slices of that buffer, so rows are never copied one by one. Statements are
//! found by [`Scanner`], COPY blocks by [`CopyBlock`], and the few statements that change how
//! the rest is read (`COPY … FROM stdin`, `standard_conforming_strings`, `client_encoding`) by
//! [`classify`].

use std::io::{self, Read};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use memchr::memchr;

use super::classify::{classify, StatementKind};
use super::copy::{chunk_cut, CopyBlock, MultiByte};
use super::meta::split_meta_command;
use super::scan::{Mode, Scanner, Stop};
use super::{Construct, Item, LexError, LexErrorKind, MetaCommand, Statement, TocEntry};

/// How much the lexer asks its reader for at a time.
const READ_BLOCK: usize = 1 << 20;

/// Default bound of one statement, comment or COPY row: memory stays bounded whatever the
/// input. PostgreSQL itself takes no statement or field over 1 GiB.
const DEFAULT_MAX_ITEM: usize = 256 << 20;

/// Default upper bound of the rows in one [`Item::CopyData`].
const DEFAULT_COPY_CHUNK: usize = 1 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Splits a plain-format dump, read from `R`, into [`Item`]s in file order.
///
/// A psql meta-command in the middle of a statement is handed out as soon as its line ends, as
/// psql runs it; the statement text before it stays pending and the statement continues after
/// the meta-command's line, so the resulting [`Statement`] holds both parts without the
/// meta-command. Its `line` is where the first part began.
///
/// A `;` standing alone between statements is handed out as a statement of its own: an empty
/// query, which the server accepts and which does nothing.
///
/// After an error the lexer yields nothing more.
#[derive(Debug)]
pub struct DumpLexer<R: Read> {
    reader: R,
    buf: BytesMut,
    eof: bool,
    /// A read failure met after some bytes of a block, reported once those are lexed.
    read_error: Option<io::Error>,
    started: bool,
    finished: bool,
    scanner: Scanner,
    in_statement: bool,
    statement_line: u64,
    /// Statement text that preceded a meta-command, with the line where it began.
    pending: Option<(BytesMut, u64)>,
    copy: Option<CopyBlock>,
    copy_chunk: usize,
    max_item: usize,
    read_block: usize,
    toc: Option<Arc<TocEntry>>,
    standard_conforming_strings: bool,
    /// The dump's client encoding, when it is one whose characters may hold a backslash byte.
    multibyte: Option<MultiByte>,
}

impl<R: Read> DumpLexer<R> {
    /// A lexer reading `reader`, which yields the dump's decoded (decompressed) bytes.
    pub fn new(reader: R) -> Self {
        DumpLexer {
            reader,
            buf: BytesMut::new(),
            eof: false,
            read_error: None,
            started: false,
            finished: false,
            scanner: Scanner::new(),
            in_statement: false,
            statement_line: 1,
            pending: None,
            copy: None,
            copy_chunk: DEFAULT_COPY_CHUNK,
            max_item: DEFAULT_MAX_ITEM,
            read_block: READ_BLOCK,
            toc: None,
            standard_conforming_strings: true,
            multibyte: None,
        }
    }

    /// Sets the most bytes of rows one [`Item::CopyData`] holds; a single longer row is handed
    /// out whole. The default is 1 MiB.
    pub fn with_copy_chunk_size(mut self, bytes: usize) -> Self {
        self.copy_chunk = bytes.max(1);
        self
    }

    /// Sets the longest statement, comment or COPY row the lexer holds; a longer one fails with
    /// [`LexErrorKind::TooLong`]. The default is 256 MiB.
    pub fn with_max_item_size(mut self, bytes: usize) -> Self {
        self.max_item = bytes.max(1);
        self
    }

    /// The current 1-based line, for error messages.
    pub fn line(&self) -> u64 {
        self.scanner.line
    }

    /// Whether plain `'…'` strings currently treat backslashes literally, as set by the last
    /// `standard_conforming_strings` setting read so far (on by default).
    pub fn standard_conforming_strings(&self) -> bool {
        self.standard_conforming_strings
    }

    /// The next item, or `None` at the end of the dump.
    pub fn next_item(&mut self) -> Result<Option<Item>, LexError> {
        if self.finished {
            return Ok(None);
        }
        let item = self.lex();
        if !matches!(item, Ok(Some(_))) {
            self.finished = true;
        }
        item
    }

    fn lex(&mut self) -> Result<Option<Item>, LexError> {
        if !self.started {
            self.skip_bom()?;
        }
        if let Some(block) = self.copy.take() {
            return self.copy_item(block).map(Some);
        }
        loop {
            let conforming = self.standard_conforming_strings;
            match self
                .scanner
                .scan(&self.buf, self.eof, self.in_statement, conforming)
            {
                Stop::NeedMore if self.eof => return self.end_of_dump(),
                Stop::NeedMore => self.fill()?,
                Stop::Significant => {
                    self.discard(self.scanner.pos);
                    self.in_statement = true;
                    self.statement_line = self.scanner.line;
                }
                Stop::Comment { start, end, line } => {
                    if let Some(entry) = TocEntry::parse(&self.buf[start..end], line) {
                        self.toc = Some(Arc::new(entry));
                    }
                }
                Stop::Semicolon => return self.statement_end().map(Some),
                Stop::Backslash => return self.meta_command().map(Some),
            }
        }
    }

    fn skip_bom(&mut self) -> Result<(), LexError> {
        while self.buf.len() < BOM.len() && !self.eof {
            self.fill()?;
        }
        if self.buf.starts_with(BOM) {
            self.buf.advance(BOM.len());
        }
        self.started = true;
        Ok(())
    }

    /// Appends the next block of the source to the buffer.
    fn fill(&mut self) -> Result<(), LexError> {
        if !self.in_statement && self.scanner.mode == Mode::Code {
            // Whitespace between statements need not be kept.
            self.discard(self.scanner.pos);
        }
        // Fill the whole block: zeroing it costs as much as a copy, so do it once per byte.
        if let Some(err) = self.read_error.take() {
            return Err(LexError::new(self.scanner.line, LexErrorKind::Io(err)));
        }
        let old = self.buf.len();
        if old >= self.max_item {
            let line = if self.in_statement {
                self.statement_line
            } else {
                self.scanner.line
            };
            let kind = LexErrorKind::TooLong {
                limit: self.max_item,
            };
            return Err(LexError::new(line, kind));
        }
        self.buf.resize(old + self.read_block, 0);
        let mut filled = old;
        while filled < self.buf.len() {
            match self.reader.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if filled > old => {
                    // Lex what was read first; the error stops the next read.
                    self.read_error = Some(err);
                    break;
                }
                Err(err) => {
                    self.buf.truncate(old);
                    return Err(LexError::new(self.scanner.line, LexErrorKind::Io(err)));
                }
            }
        }
        self.buf.truncate(filled);
        Ok(())
    }

    /// Reads the source in blocks of `bytes`, so tests can split constructs across reads.
    #[cfg(test)]
    pub(super) fn with_read_block(mut self, bytes: usize) -> Self {
        self.read_block = bytes.max(1);
        self
    }

    /// Drops the first `n` bytes of the buffer.
    fn discard(&mut self, n: usize) {
        self.buf.advance(n);
        self.scanner.consumed(n);
    }

    /// Hands out the statement ending with the `;` at the scanner's position.
    fn statement_end(&mut self) -> Result<Item, LexError> {
        self.scanner.pos += 1;
        let segment = self.buf.split_to(self.scanner.pos);
        self.scanner.consumed(segment.len());
        let statement = self.take_statement(segment);

        match classify(&statement.sql, self.standard_conforming_strings) {
            StatementKind::CopyFromStdin => {
                self.skip_copy_statement_line()?;
                self.copy = Some(CopyBlock::new(statement.line, self.multibyte));
                Ok(Item::CopyStart(statement))
            }
            StatementKind::StandardConformingStrings(on) => {
                self.standard_conforming_strings = on;
                Ok(Item::Statement(statement))
            }
            StatementKind::ClientEncoding(name) => {
                self.multibyte = name.as_deref().and_then(MultiByte::of);
                Ok(Item::Statement(statement))
            }
            StatementKind::Other => Ok(Item::Statement(statement)),
        }
    }

    /// Builds the current statement from any pending text and its last `segment`.
    fn take_statement(&mut self, segment: BytesMut) -> Statement {
        self.in_statement = false;
        let (sql, line) = match self.pending.take() {
            Some((mut pending, line)) => {
                pending.extend_from_slice(&segment);
                (pending.freeze(), line)
            }
            None => (segment.freeze(), self.statement_line),
        };
        Statement {
            sql,
            line,
            toc: self.toc.clone(),
        }
    }

    /// Drops the rest of the `COPY … FROM stdin;` line, where only a comment may stand.
    fn skip_copy_statement_line(&mut self) -> Result<(), LexError> {
        let line_end = self.line_end()?;
        let rest = self.buf[..line_end].trim_ascii();
        if !rest.is_empty() && !rest.starts_with(b"--") {
            let kind = LexErrorKind::TextAfterCopyStatement;
            return Err(LexError::new(self.scanner.line, kind));
        }
        self.discard_line(line_end);
        Ok(())
    }

    /// Offset of the end of the line at the scanner's position (its `\n`, or the end of the
    /// dump), reading more of the source as needed.
    fn line_end(&mut self) -> Result<usize, LexError> {
        loop {
            let from = self.scanner.pos;
            if let Some(offset) = memchr(b'\n', &self.buf[from..]) {
                return Ok(from + offset);
            }
            if self.eof {
                return Ok(self.buf.len());
            }
            self.fill()?;
        }
    }

    /// Drops the buffer up to and including the line end at `line_end`.
    fn discard_line(&mut self, line_end: usize) {
        let newline = line_end < self.buf.len();
        self.scanner.pos = line_end + usize::from(newline);
        self.discard(self.scanner.pos);
        self.scanner.line += u64::from(newline);
    }

    /// Hands out the meta-command whose backslash is at the scanner's position.
    fn meta_command(&mut self) -> Result<Item, LexError> {
        let line_end = self.line_end()?;
        let start = self.scanner.pos;
        let text = &self.buf[start + 1..line_end];

        let (name, args) = split_meta_command(text);
        let meta = MetaCommand {
            name,
            args,
            line: self.scanner.line,
            toc: self.toc.clone(),
        };

        if self.in_statement {
            let statement_line = self.statement_line;
            let (pending, _) = self
                .pending
                .get_or_insert_with(|| (BytesMut::new(), statement_line));
            pending.extend_from_slice(&self.buf[..start]);
        }
        if meta.name == "encoding" && !meta.args.is_empty() {
            self.multibyte = MultiByte::of(&String::from_utf8_lossy(&meta.args));
        }
        self.discard_line(line_end);
        Ok(Item::Meta(meta))
    }

    /// The end of the dump outside any COPY block.
    fn end_of_dump(&mut self) -> Result<Option<Item>, LexError> {
        let construct = match self.scanner.mode {
            Mode::Code | Mode::LineComment { .. } => None,
            Mode::Single { .. } => Some(Construct::String),
            Mode::Double => Some(Construct::QuotedIdentifier),
            Mode::Dollar { .. } => Some(Construct::DollarQuotedString),
            Mode::BlockComment { .. } => Some(Construct::BlockComment),
        };
        if let Some(construct) = construct {
            let kind = LexErrorKind::Unterminated(construct);
            return Err(LexError::new(self.scanner.mode_line, kind));
        }
        if !self.in_statement {
            return Ok(None);
        }

        // psql runs a final statement that lacks its `;`.
        let len = self.buf.len()
            - self
                .buf
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
        let segment = self.buf.split_to(len);
        self.buf.clear();
        let statement = self.take_statement(segment);
        Ok(Some(Item::Statement(statement)))
    }

    /// The next item inside a COPY block: a chunk of rows or the block's end.
    fn copy_item(&mut self, mut block: CopyBlock) -> Result<Item, LexError> {
        loop {
            let terminator = block.scan(&self.buf, self.eof);
            let rows_end = block.rows_end();

            if rows_end > 0 && (rows_end >= self.copy_chunk || terminator.is_some()) {
                let cut = chunk_cut(&self.buf[..rows_end], self.copy_chunk);
                let rows = self.buf.split_to(cut).freeze();
                let count = block.count_rows(&rows, self.scanner.line)?;
                block.rows += count;
                block.consumed(cut);
                self.scanner.line += count;
                self.copy = Some(block);
                return Ok(Item::CopyData(rows));
            }
            if let Some(len) = terminator {
                block.check_terminator(&self.buf[..len], self.scanner.line)?;
                let end = Item::CopyEnd {
                    rows: block.rows,
                    line: self.scanner.line,
                };
                if self.buf[len - 1] == b'\n' {
                    self.scanner.line += 1;
                }
                self.buf.advance(len);
                return Ok(end);
            }
            if self.eof {
                let kind = LexErrorKind::TruncatedCopy;
                return Err(LexError::new(block.start_line, kind));
            }
            self.fill()?;
        }
    }
}

impl<R: Read> Iterator for DumpLexer<R> {
    type Item = Result<Item, LexError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}
