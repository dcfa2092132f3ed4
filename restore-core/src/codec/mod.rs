//! Decoding the stored bytes of a backup into the plain SQL of the dump.
//!
//! This step sits between reading the backup file (hashed as it is read, see
//! [`crate::checksum`]) and splitting the dump into statements. It recognises the format by its
//! magic bytes, never by the file name, and refuses what it cannot restore with a message saying
//! what the file is. Decoding runs on other threads than the consumer's: a reader thread per
//! stream feeds gzip members or zstd frames to the engine's rayon pool and hands the decoded
//! bytes back in order through a bounded channel, so memory stays flat whatever the file's size.

mod gzip;
mod pack;
mod split;
mod zstd;

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, Read, Seek};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use crate::checksum::HashingReader;
use crate::error::{RestoreError, Result};
pub use pack::{default_level, pack, packed_name, DEFAULT_PIECE_BYTES};
use split::{Buffers, Limits, Message, Source, Splitter, StoredFile};

/// How many decoded chunks may wait for the consumer. With the segments in flight on the pool
/// this bounds the memory a stream holds.
const CHANNEL_CAPACITY: usize = 2;

/// Bytes a format sniff looks at.
pub const SNIFF_LEN: usize = 4096;

/// The stored formats a backup can be restored from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Plain SQL text, as `pg_dump -Fp` writes it.
    Plain,
    /// gzip, one member or several concatenated.
    Gzip,
    /// zstd, one frame or several, skippable frames allowed.
    Zstd,
}

impl Format {
    /// The format's name as people write it: `plain`, `gzip`, `zstd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Plain => "plain",
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = RestoreError;

    /// Parses a compression a backup may be packed in: `gzip` or `zstd`. `plain` is a format
    /// of stored backups, not of packed ones, so it is not read here.
    fn from_str(text: &str) -> Result<Format> {
        match text {
            "gzip" => Ok(Format::Gzip),
            "zstd" => Ok(Format::Zstd),
            _ => Err(
                RestoreError::invalid(format!("cannot pack as {text:?}: use gzip or zstd"))
                    .with_detail("format", text),
            ),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Formats that are recognised only to be refused: magic, offset, name, and advice.
const REFUSED: &[(&[u8], usize, &str, &str)] = &[
    (
        b"PGDMP",
        0,
        "pg_dump custom archive",
        "; use pg_restore or a plain-format dump",
    ),
    (
        b"ustar",
        257,
        "tar archive",
        " (pg_dump -Ft?); restore it with pg_restore",
    ),
    (
        b"BZh",
        0,
        "bzip2",
        "; decompress it or recompress with gzip or zstd",
    ),
    (
        b"\xfd7zXZ\x00",
        0,
        "xz",
        "; decompress it or recompress with gzip or zstd",
    ),
    (
        b"PK\x03\x04",
        0,
        "zip",
        "; extract the dump from the archive",
    ),
    (
        b"\x04\x22\x4d\x18",
        0,
        "lz4",
        "; decompress it or recompress with gzip or zstd",
    ),
];

/// Recognises a backup's format from its first bytes (up to [`SNIFF_LEN`] of them).
///
/// Refusals are `invalid_request` errors whose `format` detail names what the file is
/// (`empty`, `pg_dump custom archive`, `tar archive`, `bzip2`, `xz`, `zip`, `lz4`,
/// `unknown binary`).
pub fn sniff(head: &[u8]) -> Result<Format> {
    if head.is_empty() {
        return Err(RestoreError::invalid("the backup is empty").with_detail("format", "empty"));
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Format::Gzip);
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18])
    {
        return Ok(Format::Zstd);
    }
    for &(magic, at, name, advice) in REFUSED {
        if head.get(at..at + magic.len()) == Some(magic) {
            return Err(refusal(name, &format!("the backup is a {name}{advice}")));
        }
    }

    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let window = &text[..text.len().min(SNIFF_LEN)];
    if memchr::memchr(0, window).is_none() {
        return Ok(Format::Plain);
    }
    Err(refusal(
        "unknown binary",
        "the backup is neither SQL text nor gzip or zstd (unknown binary format)",
    ))
}

fn refusal(name: &str, message: &str) -> RestoreError {
    RestoreError::invalid(message).with_detail("format", name)
}

/// The decoded bytes of a backup, in order, decoded on other threads while they are read.
///
/// A failure is an [`io::Error`] wrapping a [`RestoreError`] (reach it with
/// `err.get_ref().and_then(|e| e.downcast_ref::<RestoreError>())`); its `offset` detail gives
/// the byte of the stored file where the trouble starts. Every read after a failure fails the
/// same way. Dropping the stream stops the decoding.
pub struct DecodedStream {
    messages: Receiver<Message>,
    current: Vec<u8>,
    pos: usize,
    state: StreamState,
    buffers: Buffers,
}

enum StreamState {
    Open,
    Ended,
    Failed(io::ErrorKind, String, Option<RestoreError>),
}

impl DecodedStream {
    fn fail(&mut self, err: io::Error) -> io::Error {
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<RestoreError>())
            .cloned();
        self.state = StreamState::Failed(err.kind(), err.to_string(), inner);
        err
    }
}

impl DecodedStream {
    /// Makes sure unread bytes are at hand unless the stream ended or failed.
    fn refill(&mut self) -> io::Result<()> {
        while self.pos == self.current.len() {
            match &self.state {
                StreamState::Open => {}
                StreamState::Ended => return Ok(()),
                StreamState::Failed(kind, message, inner) => {
                    return Err(match inner {
                        Some(err) => io::Error::new(*kind, err.clone()),
                        None => io::Error::new(*kind, message.clone()),
                    })
                }
            }
            match self.messages.recv() {
                Ok(Message::Data(bytes)) => {
                    let done = std::mem::replace(&mut self.current, bytes);
                    self.buffers.give(done);
                    self.pos = 0;
                }
                Ok(Message::End) => self.state = StreamState::Ended,
                Ok(Message::Failed(err)) => return Err(self.fail(err)),
                Err(_) => {
                    let err = io::Error::other(RestoreError::failed(
                        "the decoder stopped before the end of the backup",
                    ));
                    return Err(self.fail(err));
                }
            }
        }
        Ok(())
    }
}

impl Read for DecodedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let available = self.fill_buf()?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// The decoded bytes as the decoder made them, without a copy into the reader's buffer.
impl BufRead for DecodedStream {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.refill()?;
        Ok(&self.current[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.current.len());
    }
}

/// Decodes `source`, stored in `format`, on a reader thread of its own and on `pool`.
///
/// Multi-member gzip and multi-frame zstd are decoded in parallel; a stream of one large member
/// or frame is decoded on the reader thread, overlapping the consumer.
///
/// Read the stream from a thread outside `pool`: a reader blocked on a pool thread waits for
/// work that may be queued behind it.
pub fn decoded_reader(
    source: Box<dyn Read + Send>,
    format: Format,
    pool: Arc<rayon::ThreadPool>,
) -> Result<DecodedStream> {
    spawn_decoder(Source::Stream(source), format, pool, Limits::default())
}

/// Decodes the backup file behind `file` from its first byte, stored in `format`, on a reader
/// thread of its own and on `pool`; every stored byte passes through `file`'s accounting (digest,
/// count, cancellation) in order, the digest reaching its slot once the whole file was read.
///
/// Unlike a stream, a file whose zstd frames or packed gzip members can be told apart from their
/// headers is read by the decoding threads themselves, each its own segment, which keeps the
/// reader thread from holding the others back. Other files are decoded as by
/// [`decoded_reader`].
pub fn decoded_file(
    file: HashingReader<File>,
    format: Format,
    pool: Arc<rayon::ThreadPool>,
) -> Result<DecodedStream> {
    decoded_file_with(file, format, pool, Limits::default())
}

fn decoded_file_with(
    mut file: HashingReader<File>,
    format: Format,
    pool: Arc<rayon::ThreadPool>,
    limits: Limits,
) -> Result<DecodedStream> {
    let describe =
        |err: io::Error| RestoreError::failed(format!("cannot read the backup file: {err}"));
    file.get_mut().rewind().map_err(describe)?;
    let source = match format {
        Format::Plain => Source::Stream(Box::new(file)),
        Format::Gzip | Format::Zstd => Source::File(StoredFile::new(file).map_err(describe)?),
    };
    spawn_decoder(source, format, pool, limits)
}

fn spawn_decoder(
    source: Source,
    format: Format,
    pool: Arc<rayon::ThreadPool>,
    limits: Limits,
) -> Result<DecodedStream> {
    let (sender, messages) = sync_channel(CHANNEL_CAPACITY);
    let buffers = Buffers::default();
    let shared = buffers.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("decode-{format}"))
        .spawn(move || match (format, source) {
            (Format::Plain, Source::Stream(stream)) => {
                split::pass_through(stream, sender, shared);
            }
            (Format::Plain, Source::File(file)) => {
                split::pass_through(Box::new(file.into_reader()), sender, shared);
            }
            (Format::Gzip, source) => {
                Splitter::<gzip::Gzip>::new(source, pool, sender, shared, limits).run();
            }
            (Format::Zstd, source) => {
                Splitter::<zstd::Zstd>::new(source, pool, sender, shared, limits).run();
            }
        });
    spawned.map_err(|err| {
        RestoreError::failed(format!("cannot start the {format} decoder thread: {err}"))
    })?;

    Ok(DecodedStream {
        messages,
        current: Vec::new(),
        pos: 0,
        state: StreamState::Open,
        buffers,
    })
}

/// Opens the backup at `path`, recognises its format and decodes it (see [`decoded_file`]).
pub fn decode_file(path: &Path, pool: Arc<rayon::ThreadPool>) -> Result<DecodedStream> {
    let describe = |err: io::Error| {
        RestoreError::failed(format!("cannot read {}: {err}", path.display()))
            .with_detail("path", path.display().to_string())
    };
    let mut file = File::open(path).map_err(describe)?;
    let head = read_head(&mut file).map_err(describe)?;
    let format = sniff(&head).map_err(|err| err.context(path.display()))?;

    decoded_file(HashingReader::without_digest(file), format, pool)
}

/// Reads up to [`SNIFF_LEN`] bytes, fewer only at the end of the input.
pub fn read_head(source: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(SNIFF_LEN);
    source
        .by_ref()
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// Recognises the format of the file at `path` from its first bytes.
pub fn sniff_file(path: &Path) -> Result<Format> {
    let mut file = std::fs::File::open(path)
        .map_err(|err| RestoreError::failed(format!("cannot open {}: {err}", path.display())))?;
    let head = read_head(&mut file)?;
    sniff(&head)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::split::Codec;
    use super::*;
    use crate::error::ErrorCode;

    fn pool(threads: usize) -> Arc<rayon::ThreadPool> {
        Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap(),
        )
    }

    /// Small limits so that small inputs exercise cuts, merges, block edges and fallbacks.
    fn tight() -> Limits {
        Limits {
            block: 4096,
            segment_min: 2048,
            stream_threshold: 64 << 10,
            output_cap: 256 << 10,
        }
    }

    /// Deterministic bytes: SQL-ish text when `text`, else noise that does not compress.
    fn sample(len: usize, seed: u64, text: bool) -> Vec<u8> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let word = (state >> 33) as u32;
            if text {
                let line = format!("{}\tname_{}\t{}\n", word % 100_000, word % 977, word % 13);
                out.extend_from_slice(line.as_bytes());
            } else {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn gzip_member(data: &[u8], level: u32) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::new(level));
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn zstd_frame(data: &[u8], checksum: bool) -> Vec<u8> {
        let mut encoder = ::zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_checksum(checksum).unwrap();
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn skippable_frame(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x53, 0x2a, 0x4d, 0x18];
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// Decodes `stored` as a stream and as a file, checks that both ways agree (the same bytes
    /// or the same error), and returns the result.
    fn decode_with(
        stored: &[u8],
        format: Format,
        threads: usize,
        limits: Limits,
    ) -> io::Result<Vec<u8>> {
        let source = Box::new(io::Cursor::new(stored.to_vec()));
        let mut stream =
            spawn_decoder(Source::Stream(source), format, pool(threads), limits).unwrap();
        let mut out = Vec::new();
        let streamed = stream.read_to_end(&mut out).map(|_| out);

        let mut file = tempfile::tempfile().unwrap();
        file.write_all(stored).unwrap();
        let hashing = HashingReader::without_digest(file);
        let mut placed = decoded_file_with(hashing, format, pool(threads), limits).unwrap();
        let mut out = Vec::new();
        let from_file = placed.read_to_end(&mut out).map(|_| out);

        match (&streamed, &from_file) {
            (Ok(a), Ok(b)) => assert!(a == b, "stream and file decode to different bytes"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!(
                "stream and file decoding disagree: {:?} / {:?}",
                a.as_ref().map(Vec::len),
                b.as_ref().map(Vec::len)
            ),
        }
        streamed
    }

    fn restore_error(err: &io::Error) -> RestoreError {
        err.get_ref()
            .and_then(|e| e.downcast_ref::<RestoreError>())
            .cloned()
            .unwrap_or_else(|| panic!("not an engine error: {err}"))
    }

    fn failure_offset(err: &io::Error) -> u64 {
        let inner = restore_error(err);
        assert_eq!(inner.code(), ErrorCode::RestoreFailed, "{inner}");
        inner.details()["offset"].as_u64().unwrap()
    }

    /// Members of many sizes, some empty, some text and some noise, and where each starts.
    fn members(count: usize, seed: u64) -> (Vec<u8>, Vec<u8>, Vec<usize>) {
        let (mut plain, mut stored, mut starts) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..count {
            let len = match i % 5 {
                0 => 0,
                1 => 1,
                2 => 3000 + i * 37,
                3 => 20_000 + i * 101,
                _ => 50_000,
            };
            let data = sample(len, seed + i as u64, i % 3 != 0);
            starts.push(stored.len());
            stored.extend(gzip_member(&data, (i % 10) as u32));
            plain.extend(data);
        }
        (plain, stored, starts)
    }

    #[test]
    fn sniff_recognises_gzip_zstd_and_plain_text_by_magic() {
        assert_eq!(sniff(b"\x1f\x8b\x08\x00rest").unwrap(), Format::Gzip);
        assert_eq!(sniff(b"\x28\xb5\x2f\xfdrest").unwrap(), Format::Zstd);
        assert_eq!(sniff(b"\x50\x2a\x4d\x18\x04\0\0\0").unwrap(), Format::Zstd);
        assert_eq!(
            sniff(b"--\n-- PostgreSQL database dump\n").unwrap(),
            Format::Plain
        );
        assert_eq!(sniff(b"\xef\xbb\xbfSET x = 1;\n").unwrap(), Format::Plain);
    }

    #[test]
    fn sniff_refuses_what_it_cannot_restore_and_says_what_it_is() {
        let mut tar = vec![b'a'; 300];
        tar[257..262].copy_from_slice(b"ustar");
        let cases: [(&[u8], &str); 8] = [
            (b"", "empty"),
            (b"PGDMP\x01\x0e\x00", "pg_dump custom archive"),
            (&tar, "tar archive"),
            (b"BZh91AY&SY", "bzip2"),
            (b"\xfd7zXZ\x00\x00", "xz"),
            (b"PK\x03\x04\x14\x00", "zip"),
            (b"\x04\x22\x4d\x18\x64", "lz4"),
            (b"SELECT\x00\x01\x02", "unknown binary"),
        ];
        for (head, name) in cases {
            let err = sniff(head).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
            assert_eq!(err.details()["format"], name);
        }
        let custom = sniff(b"PGDMP").unwrap_err();
        assert!(
            custom.message().contains("pg_restore"),
            "{}",
            custom.message()
        );
    }

    #[test]
    fn plain_text_passes_through_unchanged() {
        let text = sample(3 << 20, 1, true);
        assert_eq!(
            decode_with(&text, Format::Plain, 1, Limits::default()).unwrap(),
            text
        );
    }

    #[test]
    fn multi_member_gzip_decodes_like_a_sequential_decoder() {
        let (plain, stored, _) = members(150, 7);
        let mut reference = Vec::new();
        flate2::read::MultiGzDecoder::new(&stored[..])
            .read_to_end(&mut reference)
            .unwrap();
        assert_eq!(reference, plain);

        for threads in [1, 2, 4] {
            for limits in [tight(), Limits::default()] {
                let out = decode_with(&stored, Format::Gzip, threads, limits).unwrap();
                assert!(out == plain, "{threads} threads, {limits:?}");
            }
        }
    }

    #[test]
    fn gzip_member_boundary_on_every_position_around_a_block_edge() {
        let limits = tight();
        let tail = gzip_member(&sample(9000, 3, true), 6);
        for shift in 0..24 {
            // A stored member whose length puts the next header `shift - 12` bytes from the
            // edge of the second block.
            let target = 2 * limits.block + shift - 12;
            let mut len = target;
            let first = loop {
                let member = gzip_member(&sample(len, 4, false), 0);
                if member.len() == target {
                    break member;
                }
                len = len + target - member.len().min(len + target);
            };
            let mut stored = first.clone();
            stored.extend(&tail);
            let mut plain = sample(len, 4, false);
            plain.extend(sample(9000, 3, true));
            assert!(
                decode_with(&stored, Format::Gzip, 2, limits).unwrap() == plain,
                "{shift}"
            );
        }
    }

    #[test]
    fn gzip_header_inside_stored_deflate_data_is_not_taken_for_a_member() {
        let fake = gzip_member(b"not a real member", 6);
        let mut plain = Vec::new();
        let mut stored = Vec::new();
        for i in 0..6 {
            let mut data = sample(5000 + i * 700, 20 + i as u64, false);
            data.extend(&fake);
            data.extend(sample(3000, 40 + i as u64, true));
            data.extend(&fake[..12]);
            let member = gzip_member(&data, 0);
            assert!(
                member.windows(fake.len()).any(|w| w == fake),
                "fake member is stored as is"
            );
            stored.extend(member);
            plain.extend(data);
        }
        for threads in [1, 2] {
            let out = decode_with(&stored, Format::Gzip, threads, tight()).unwrap();
            assert!(out == plain, "{threads} threads");
        }
    }

    #[test]
    fn false_member_header_shortly_before_the_next_real_member_is_merged_back() {
        let fake = gzip_member(b"", 6);
        let mut plain = Vec::new();
        let mut stored = Vec::new();
        for i in 0..40 {
            let mut data = sample(3000, 80 + i, false);
            data.extend(&fake);
            data.extend(sample(i as usize * 40, 90 + i, false));
            stored.extend(gzip_member(&data, 0));
            plain.extend(data);
        }
        for threads in [1, 2] {
            let out = decode_with(&stored, Format::Gzip, threads, tight()).unwrap();
            assert!(out == plain, "{threads} threads");
        }
    }

    #[test]
    fn packed_members_with_member_headers_inside_decode_in_order() {
        let fake = gzip_member(b"inside", 6);
        let mut plain = Vec::new();
        let mut stored = Vec::new();
        for i in 0..50 {
            let mut data = sample(i * 300, 100 + i as u64, i % 2 == 0);
            data.extend(&fake);
            stored.extend(gzip::packed_member(&data, (i % 3) as u32).unwrap());
            plain.extend(data);
        }
        for threads in [1, 2] {
            let out = decode_with(&stored, Format::Gzip, threads, tight()).unwrap();
            assert!(out == plain, "{threads} threads");
        }
    }

    #[test]
    fn single_large_gzip_member_is_decoded_streaming() {
        let limits = tight();
        let plain = sample(limits.stream_threshold * 3, 5, false);
        let stored = gzip_member(&plain, 1);
        assert!(stored.len() > limits.stream_threshold);
        assert!(decode_with(&stored, Format::Gzip, 2, limits).unwrap() == plain);
    }

    #[test]
    fn member_decoding_to_more_than_the_cap_switches_to_streaming() {
        let limits = tight();
        let big = sample(limits.output_cap * 3, 8, true);
        let mut stored = gzip_member(&sample(1000, 9, true), 6);
        stored.extend(gzip_member(&big, 9));
        stored.extend(gzip_member(&sample(1000, 10, true), 6));
        let mut plain = sample(1000, 9, true);
        plain.extend(&big);
        plain.extend(sample(1000, 10, true));
        assert!(decode_with(&stored, Format::Gzip, 2, limits).unwrap() == plain);
    }

    #[test]
    fn truncated_gzip_fails_with_the_offset_of_the_cut_member() {
        let (plain, stored, starts) = members(12, 11);
        let mut cuts: Vec<usize> = (1..stored.len()).step_by(997).collect();
        for &start in &starts[1..] {
            cuts.extend([
                start - 9,
                start - 8,
                start - 1,
                start + 1,
                start + 5,
                start + 10,
            ]);
        }
        for cut in cuts {
            match decode_with(&stored[..cut], Format::Gzip, 2, tight()) {
                Ok(out) => panic!(
                    "cut at {cut} decoded {} of {} bytes",
                    out.len(),
                    plain.len()
                ),
                Err(err) => {
                    let member = *starts.iter().filter(|&&s| s < cut).max().unwrap();
                    assert_eq!(failure_offset(&err), member as u64, "cut at {cut}");
                    assert!(restore_error(&err).message().contains("truncated"));
                }
            }
        }
    }

    #[test]
    fn flipped_byte_in_gzip_data_fails_with_the_member_offset() {
        let (_, stored, starts) = members(12, 12);
        let victim = 8;
        let mut corrupt = stored.clone();
        corrupt[starts[victim] + 500] ^= 0x40;
        let err = decode_with(&corrupt, Format::Gzip, 2, tight()).unwrap_err();
        assert_eq!(failure_offset(&err), starts[victim] as u64);
        assert!(restore_error(&err)
            .message()
            .contains("gzip stream is corrupt"));
    }

    #[test]
    fn bytes_after_the_last_gzip_member_are_refused_with_their_offset() {
        let (_, stored, _) = members(7, 13);
        for (junk, said) in [
            (&b"trailing text"[..], "not a gzip member"),
            (&[0u8; 512][..], "zero bytes"),
            (&[0x1f][..], "truncated"),
        ] {
            let mut bad = stored.clone();
            bad.extend_from_slice(junk);
            for limits in [tight(), Limits::default()] {
                let err = decode_with(&bad, Format::Gzip, 2, limits).unwrap_err();
                assert_eq!(failure_offset(&err), stored.len() as u64);
                assert!(restore_error(&err).message().contains(said), "{err}");
            }
        }
    }

    #[test]
    fn multi_frame_zstd_with_skippable_frames_decodes_like_a_sequential_decoder() {
        let mut plain = Vec::new();
        let mut stored = skippable_frame(b"pzstd");
        for i in 0..120 {
            let data = sample(
                [0, 1, 5000, 40_000, 50_000][i % 5],
                30 + i as u64,
                i % 2 == 0,
            );
            stored.extend(zstd_frame(&data, i % 3 == 0));
            if i % 4 == 0 {
                stored.extend(skippable_frame(&[7; 13]));
            }
            plain.extend(data);
        }
        assert_eq!(::zstd::stream::decode_all(&stored[..]).unwrap(), plain);

        for threads in [1, 2, 4] {
            for limits in [tight(), Limits::default()] {
                let out = decode_with(&stored, Format::Zstd, threads, limits).unwrap();
                assert!(out == plain, "{threads} threads, {limits:?}");
            }
        }
    }

    #[test]
    fn single_large_zstd_frame_is_decoded_streaming() {
        let limits = tight();
        let plain = sample(limits.stream_threshold * 3, 31, false);
        let stored = zstd_frame(&plain, true);
        assert!(stored.len() > limits.stream_threshold);
        assert!(decode_with(&stored, Format::Zstd, 2, limits).unwrap() == plain);
    }

    #[test]
    fn truncated_zstd_fails_with_the_offset_of_the_cut_frame() {
        let mut stored = Vec::new();
        let mut starts = Vec::new();
        for i in 0..8 {
            starts.push(stored.len());
            stored.extend(zstd_frame(&sample(30_000, 50 + i, i % 2 == 0), true));
        }
        let mut cuts: Vec<usize> = (1..stored.len()).step_by(1009).collect();
        for &start in &starts[1..] {
            cuts.extend([start - 1, start + 1, start + 3, start + 4, start + 9]);
        }
        for cut in cuts {
            let err = decode_with(&stored[..cut], Format::Zstd, 2, tight()).unwrap_err();
            let frame = *starts.iter().filter(|&&s| s < cut).max().unwrap();
            assert_eq!(failure_offset(&err), frame as u64, "cut at {cut}");
        }
    }

    #[test]
    fn corrupt_or_trailing_zstd_bytes_are_refused_with_their_offset() {
        let mut stored = Vec::new();
        let mut starts = Vec::new();
        for i in 0..6 {
            starts.push(stored.len());
            stored.extend(zstd_frame(&sample(30_000, 60 + i, true), true));
        }

        let mut flipped = stored.clone();
        flipped[starts[4] + 200] ^= 0x10;
        let err = decode_with(&flipped, Format::Zstd, 2, tight()).unwrap_err();
        assert_eq!(failure_offset(&err), starts[4] as u64);

        for (junk, said) in [
            (&b"junk after"[..], "not a zstd frame"),
            (&[0u8; 64][..], "zero"),
        ] {
            let mut bad = stored.clone();
            bad.extend_from_slice(junk);
            let err = decode_with(&bad, Format::Zstd, 2, tight()).unwrap_err();
            assert_eq!(failure_offset(&err), stored.len() as u64);
            assert!(restore_error(&err).message().contains(said), "{err}");
        }
    }

    #[test]
    fn cancellation_reaches_the_consumer_and_stays() {
        for format in [Format::Plain, Format::Gzip, Format::Zstd] {
            let source = crate::checksum::HashingReader::new(
                io::Cursor::new(vec![1u8; 10]),
                Arc::default(),
                Arc::new(std::sync::atomic::AtomicBool::new(true)),
            );
            let mut stream = decoded_reader(Box::new(source), format, pool(1)).unwrap();
            let err = stream.read_to_end(&mut Vec::new()).unwrap_err();
            assert!(crate::checksum::is_cancelled(&err), "{format}: {err}");
            let again = stream.read(&mut [0u8; 8]).unwrap_err();
            assert!(
                crate::checksum::is_cancelled(&again),
                "{format}: failure is sticky"
            );
        }
    }

    /// Yields its bytes, then fails like a disk that went away.
    struct FailingSource(io::Cursor<Vec<u8>>);

    impl Read for FailingSource {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(io::Error::other("device gone")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn source_read_error_fails_the_stream_with_the_offset_reached() {
        let (_, stored, _) = members(10, 15);
        let cut = stored.len() / 2;
        for format in [Format::Plain, Format::Gzip] {
            let source = FailingSource(io::Cursor::new(stored[..cut].to_vec()));
            let mut stream = decoded_reader(Box::new(source), format, pool(2)).unwrap();
            let err = stream.read_to_end(&mut Vec::new()).unwrap_err();
            assert_eq!(failure_offset(&err), cut as u64, "{format}");
            assert!(restore_error(&err).message().contains("device gone"));
        }
    }

    /// Checks that a decode gave `plain` and accounted for every byte of `stored`: its digest in
    /// the slot, its length in the counter.
    fn assert_accounted(
        out: &[u8],
        plain: &[u8],
        stored: &[u8],
        slot: &crate::checksum::ChecksumSlot,
        counted: &std::sync::atomic::AtomicU64,
        what: &str,
    ) {
        let mut expected = crate::checksum::Sha256Hasher::new();
        expected.update(stored);
        assert!(out == plain, "{what}: decoded bytes differ");
        assert_eq!(slot.get(), Some(expected.finish()), "{what}");
        let counted = counted.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(counted, stored.len() as u64, "{what}");
    }

    #[test]
    fn stored_bytes_are_hashed_and_counted_by_the_time_the_stream_ends() {
        let (plain, stored, _) = members(20, 14);
        for format_stored in [
            (Format::Gzip, stored.clone()),
            (Format::Plain, plain.clone()),
        ] {
            let (format, bytes) = format_stored;
            let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let source = crate::checksum::HashingReader::new(
                io::Cursor::new(bytes.clone()),
                counted.clone(),
                Arc::default(),
            );
            let slot = source.checksum_slot();
            let mut stream = decoded_reader(Box::new(source), format, pool(2)).unwrap();
            let mut out = Vec::new();
            stream.read_to_end(&mut out).unwrap();

            assert_accounted(&out, &plain, &bytes, &slot, &counted, &format!("{format}"));
        }
    }

    #[test]
    fn damaged_input_fails_or_decodes_but_never_panics_or_hangs() {
        let (_, gzip_stored, _) = members(8, 16);
        let zstd_stored: Vec<u8> = (0..6)
            .flat_map(|i| zstd_frame(&sample(20_000, 110 + i, true), i % 2 == 0))
            .collect();
        for (format, stored) in [(Format::Gzip, gzip_stored), (Format::Zstd, zstd_stored)] {
            for seed in 0..60u64 {
                let noise = sample(64, seed, false);
                let mut damaged = stored.clone();
                let at = (seed as usize * 7919) % damaged.len();
                let end = (at + 1 + seed as usize % 40).min(damaged.len());
                damaged[at..end].copy_from_slice(&noise[..end - at]);
                if let Err(err) = decode_with(&damaged, format, 2, tight()) {
                    assert_eq!(restore_error(&err).code(), ErrorCode::RestoreFailed);
                }
            }
        }
    }

    /// Packed gzip members, then ordinary ones (the file phase hands over to the stream
    /// splitter at the first), and their decoded bytes.
    fn packed_then_ordinary() -> (Vec<u8>, Vec<u8>) {
        let mut plain = Vec::new();
        let mut stored = Vec::new();
        for i in 0..30 {
            let data = sample(20_000 + i * 500, 200 + i as u64, i % 4 != 0);
            stored.extend(gzip::packed_member(&data, 6).unwrap());
            plain.extend(data);
        }
        let (rest_plain, rest_stored, _) = members(20, 17);
        stored.extend(rest_stored);
        plain.extend(rest_plain);
        (plain, stored)
    }

    fn zstd_frames(count: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
        let mut plain = Vec::new();
        let mut stored = Vec::new();
        for i in 0..count {
            let data = sample(
                [0, 10, 3000, 70_000, 300_000][i % 5],
                seed + i as u64,
                i % 3 != 1,
            );
            stored.extend(zstd_frame(&data, i % 2 == 0));
            if i % 7 == 3 {
                stored.extend(skippable_frame(&[1; 40]));
            }
            plain.extend(data);
        }
        (plain, stored)
    }

    #[test]
    fn a_file_is_hashed_counted_and_decoded_whole_whichever_phase_reads_it() {
        let packed: Vec<u8> = (0..40)
            .flat_map(|i| gzip::packed_member(&sample(30_000, 300 + i, true), 6).unwrap())
            .collect();
        let (frames_plain, frames) = zstd_frames(40, 400);
        let (mixed_plain, mixed) = packed_then_ordinary();
        let packed_plain: Vec<u8> = (0..40)
            .flat_map(|i| sample(30_000, 300 + i, true))
            .collect();
        let cases = [
            (Format::Gzip, packed, packed_plain),
            (Format::Zstd, frames, frames_plain),
            (Format::Gzip, mixed, mixed_plain),
        ];
        for (format, stored, plain) in cases {
            for limits in [tight(), Limits::default()] {
                let mut file = tempfile::tempfile().unwrap();
                file.write_all(&stored).unwrap();
                let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
                let hashing =
                    crate::checksum::HashingReader::new(file, counted.clone(), Arc::default());
                let slot = hashing.checksum_slot();
                let mut decoded = decoded_file_with(hashing, format, pool(2), limits).unwrap();
                let mut out = Vec::new();
                decoded.read_to_end(&mut out).unwrap();

                let what = format!("{format} {limits:?}");
                assert_accounted(&out, &plain, &stored, &slot, &counted, &what);
            }
        }
    }

    #[test]
    fn a_cancelled_file_read_stops_the_decoder() {
        let (_, stored) = zstd_frames(30, 500);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&stored).unwrap();
        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let hashing = crate::checksum::HashingReader::new(file, Arc::default(), cancel);
        let mut decoded = decoded_file_with(hashing, Format::Zstd, pool(2), tight()).unwrap();
        let err = decoded.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(crate::checksum::is_cancelled(&err), "{err}");
    }

    fn stored_len_at<C: Codec>(file: &File, offset: usize, limit: u64) -> Option<u64> {
        C::stored_len_at(&mut split::HeaderReader::new(file), offset as u64, limit).unwrap()
    }

    #[test]
    fn frame_lengths_walked_from_headers_match_zstd() {
        let (_, stored) = zstd_frames(60, 600);
        let mut single = ::zstd::bulk::Compressor::new(5).unwrap();
        single.include_checksum(false).unwrap();
        let small = single.compress(b"a small single-segment frame").unwrap();
        let mut stored = stored;
        stored.extend(&small);

        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&stored).unwrap();
        let mut offset = 0usize;
        let mut frames = 0;
        while offset < stored.len() {
            let walked = stored_len_at::<zstd::Zstd>(&file, offset, u64::MAX).unwrap();
            let magic = u32::from_le_bytes(stored[offset..offset + 4].try_into().unwrap());
            if magic & 0xFFFF_FFF0 != 0x184D_2A50 {
                let known = ::zstd::zstd_safe::find_frame_compressed_size(&stored[offset..]);
                assert_eq!(walked, known.unwrap() as u64, "frame at {offset}");
                frames += 1;
            }
            offset += walked as usize;
        }
        assert_eq!(offset, stored.len());
        assert_eq!(frames, 61);

        let cut = &stored[..stored.len() - 3];
        let mut short = tempfile::tempfile().unwrap();
        short.write_all(cut).unwrap();
        let last = stored.len() - small.len();
        let walked = stored_len_at::<zstd::Zstd>(&short, last, u64::MAX);
        assert!(
            walked.is_none_or(|len| last + len as usize > cut.len()),
            "a frame cut short is not taken for whole"
        );
        assert_eq!(
            stored_len_at::<zstd::Zstd>(&file, 0, 5),
            None,
            "a frame longer than the limit has no length either"
        );
    }

    #[test]
    fn a_file_that_shrinks_while_it_is_read_fails() {
        let (_, frames) = zstd_frames(40, 700);
        let packed: Vec<u8> = (0..40)
            .flat_map(|i| gzip::packed_member(&sample(30_000, 800 + i, true), 6).unwrap())
            .collect();
        for (format, stored) in [(Format::Zstd, frames), (Format::Gzip, packed)] {
            for limits in [tight(), Limits::default()] {
                let mut file = tempfile::tempfile().unwrap();
                file.write_all(&stored).unwrap();
                let hashing = HashingReader::without_digest(file);
                // Measured 1000 bytes longer than it is: as if cut after it was opened.
                let measured = StoredFile::measured(hashing, stored.len() as u64 + 1000).unwrap();
                let source = Source::File(measured);
                let mut decoded = spawn_decoder(source, format, pool(2), limits).unwrap();
                let err = decoded.read_to_end(&mut Vec::new()).unwrap_err();
                let inner = restore_error(&err);
                assert!(inner.message().contains("shrank"), "{format}: {inner}");
                assert_eq!(inner.details()["offset"], stored.len() as u64, "{format}");
            }
        }
    }

    /// A frame of one block, by hand: `descriptor`, then `fields` (window descriptor and
    /// content size as the descriptor says), then the block.
    fn hand_made_frame(
        descriptor: u8,
        fields: &[u8],
        kind: u32,
        size: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut frame = 0xFD2F_B528u32.to_le_bytes().to_vec();
        frame.push(descriptor);
        frame.extend_from_slice(fields);
        let header = (size << 3) | (kind << 1) | 1;
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn frames_zstd_refuses_are_refused_whole_or_streamed() {
        let lines = b"-- x\n".repeat(40_000);
        let raw_size = lines.len() as u32;
        let cases = [
            (
                "a raw block over 128 KiB",
                // Content size in 4 bytes, single segment.
                hand_made_frame(0xA0, &raw_size.to_le_bytes(), 0, raw_size, &lines),
            ),
            (
                "an RLE block of 2 MiB",
                hand_made_frame(0xA0, &(2u32 << 20).to_le_bytes(), 1, 2 << 20, b"\n"),
            ),
            (
                "a 2 GiB window",
                // Content size in 4 bytes, then a window descriptor of 2^31 bytes.
                {
                    let mut fields = vec![21 << 3];
                    fields.extend_from_slice(&(64u32 << 10).to_le_bytes());
                    let mut frame = 0xFD2F_B528u32.to_le_bytes().to_vec();
                    frame.push(0x80);
                    frame.extend_from_slice(&fields);
                    let header = ((64u32 << 10) << 3) | (1 << 1) | 1;
                    frame.extend_from_slice(&header.to_le_bytes()[..3]);
                    frame.push(b'x');
                    frame
                },
            ),
        ];
        let good = zstd_frame(b"SELECT 1;\n", true);
        for (what, frame) in cases {
            let mut stored = good.clone();
            stored.extend(&frame);
            stored.extend(&good);
            assert!(
                ::zstd::stream::decode_all(&stored[..]).is_err(),
                "zstd accepts {what}"
            );
            for limits in [tight(), Limits::default()] {
                let Err(err) = decode_with(&stored, Format::Zstd, 2, limits) else {
                    panic!("{what} was decoded");
                };
                assert_eq!(failure_offset(&err), good.len() as u64, "{what}");
            }
        }
    }

    #[test]
    fn decoded_stream_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<DecodedStream>();
    }

    #[test]
    fn decode_file_sniffs_and_decodes() {
        let dir = tempfile::tempdir().unwrap();
        let plain = sample(100_000, 70, true);
        let path = dir.path().join("backup.sql.gz");
        std::fs::write(&path, gzip_member(&plain, 6)).unwrap();
        let mut out = Vec::new();
        decode_file(&path, pool(2))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == plain);

        let custom = dir.path().join("backup.dump");
        std::fs::write(&custom, b"PGDMP\x01\x0e\x00").unwrap();
        let err = decode_file(&custom, pool(1)).err().unwrap();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
    }
}
