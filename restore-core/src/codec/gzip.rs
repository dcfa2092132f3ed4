//! gzip members (RFC 1952): where one may start, and decoding one with its trailer checked.
//!
//! A gzip file is one or more members, each a header, raw deflate data and an 8-byte trailer
//! (CRC32 and length of the decoded bytes). Concatenated members decode as one stream. Member
//! starts cannot be found without decoding, only guessed from header bytes; the guesses let the
//! splitter decode members in parallel, and it corrects the false ones.

use std::io::{self, BufRead, Write};

use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc, Decompress, FlushDecompress, Status};

use super::split::{Codec, Counted, DecodeError, HeaderReader, Headers, Output};
use crate::error::RestoreError;

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FLG_RESERVED: u8 = 0xe0;
/// Bytes of a member header up to and including OS.
const FIXED_HEADER: usize = 10;

/// The extra-field subfield in which a packed member records its own length.
const LENGTH_SUBFIELD: [u8; 2] = *b"SR";
/// Bytes of a packed member's header: fixed part, XLEN, and one 4-byte subfield.
const PACKED_HEADER: usize = FIXED_HEADER + 2 + 4 + 4;

/// Decodes gzip members.
pub(crate) struct Gzip {
    inflate: Decompress,
}

impl Default for Gzip {
    fn default() -> Self {
        Gzip {
            inflate: Decompress::new(false),
        }
    }
}

/// Whether `head` (at least [`FIXED_HEADER`] bytes) looks like the start of a member as
/// ordinary compressors write it: deflate, no reserved flags, a known XFL and OS.
pub(crate) fn is_member_start(head: &[u8]) -> bool {
    head.len() >= FIXED_HEADER
        && head[0] == 0x1f
        && head[1] == 0x8b
        && head[2] == 8
        && head[3] & FLG_RESERVED == 0
        && matches!(head[8], 0 | 2 | 4)
        && (head[9] <= 13 || head[9] == 255)
}

fn truncated(start: u64, part: &str) -> DecodeError {
    DecodeError::Truncated(
        RestoreError::failed(format!(
            "gzip stream is truncated: the member starting at byte {start} ends before its {part}"
        ))
        .with_detail("offset", start),
    )
}

fn invalid(offset: u64, message: String) -> DecodeError {
    DecodeError::Invalid(RestoreError::failed(message).with_detail("offset", offset))
}

/// The error for bytes where a member should start but does not.
fn not_a_member(offset: u64, head: &[u8]) -> DecodeError {
    let what = if head.iter().all(|&b| b == 0) {
        "zero bytes"
    } else {
        "bytes that are not a gzip member"
    };
    invalid(
        offset,
        format!("gzip stream has {what} after its last member, at byte {offset}"),
    )
}

impl Gzip {
    /// Reads and checks a member header; `start` is its offset.
    fn read_header<R: BufRead>(
        &mut self,
        input: &mut Counted<R>,
        start: u64,
    ) -> Result<(), DecodeError> {
        let head = input.fill()?;
        if head.first() != Some(&0x1f) || head.get(1).is_some_and(|&b| b != 0x8b) {
            return Err(not_a_member(start, &head[..head.len().min(16)]));
        }

        let mut fixed = [0u8; FIXED_HEADER];
        if !input.read_exact_or_end(&mut fixed)? {
            return Err(truncated(start, "header ends"));
        }
        if fixed[1] != 0x8b {
            return Err(not_a_member(start, &fixed));
        }
        if fixed[2] != 8 || fixed[3] & FLG_RESERVED != 0 {
            return Err(invalid(
                start,
                format!("gzip member at byte {start} has an unsupported method or flags"),
            ));
        }

        let flags = fixed[3];
        if flags & FEXTRA != 0 {
            let mut len = [0u8; 2];
            if !input.read_exact_or_end(&mut len)? || !input.skip(u16::from_le_bytes(len).into())? {
                return Err(truncated(start, "header ends"));
            }
        }
        for field in [FNAME, FCOMMENT] {
            if flags & field != 0 && !skip_zero_terminated(input)? {
                return Err(truncated(start, "header ends"));
            }
        }
        if flags & FHCRC != 0 && !input.skip(2)? {
            return Err(truncated(start, "header ends"));
        }
        Ok(())
    }
}

/// The length a packed member at the start of `head` records for itself.
fn recorded_length(head: &[u8]) -> Option<usize> {
    let header = head.get(..PACKED_HEADER)?;
    let shaped = is_member_start(header)
        && header[3] & FEXTRA != 0
        && header[10..12] == [8, 0]
        && header[12..14] == LENGTH_SUBFIELD
        && header[14..16] == [4, 0];
    let len = u32::from_le_bytes([header[16], header[17], header[18], header[19]]) as usize;
    (shaped && len >= PACKED_HEADER + 8).then_some(len)
}

/// One gzip member holding `data`, with its own length recorded in an extra-field subfield.
pub(crate) fn packed_member(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut member = Vec::with_capacity(data.len() / 3 + 64);
    member.extend_from_slice(&[0x1f, 0x8b, 8, FEXTRA, 0, 0, 0, 0, 0, 255, 8, 0]);
    member.extend_from_slice(&LENGTH_SUBFIELD);
    member.extend_from_slice(&[4, 0, 0, 0, 0, 0]);

    let mut deflate = DeflateEncoder::new(member, Compression::new(level));
    deflate.write_all(data)?;
    let mut member = deflate.finish()?;
    let mut crc = Crc::new();
    crc.update(data);
    member.extend_from_slice(&crc.sum().to_le_bytes());
    member.extend_from_slice(&crc.amount().to_le_bytes());

    let len = u32::try_from(member.len()).map_err(io::Error::other)?;
    member[16..20].copy_from_slice(&len.to_le_bytes());
    Ok(member)
}

fn skip_zero_terminated<R: BufRead>(input: &mut Counted<R>) -> Result<bool, DecodeError> {
    loop {
        let buf = input.fill()?;
        if buf.is_empty() {
            return Ok(false);
        }
        if let Some(end) = memchr::memchr(0, buf) {
            input.consume(end + 1);
            return Ok(true);
        }
        let len = buf.len();
        input.consume(len);
    }
}

impl Codec for Gzip {
    fn decode_member<R: BufRead>(
        &mut self,
        input: &mut Counted<R>,
        output: &mut dyn Output,
    ) -> Result<(), DecodeError> {
        let start = input.offset();
        self.read_header(input, start)?;

        self.inflate.reset(false);
        let mut crc = Crc::new();
        loop {
            let buf = input.fill()?;
            if buf.is_empty() {
                return Err(truncated(start, "trailer"));
            }
            let out = output.room()?;
            let (in_before, out_before) = (self.inflate.total_in(), out.len());
            let status = self
                .inflate
                .decompress_vec(buf, out, FlushDecompress::None)
                .map_err(|err| {
                    invalid(
                        start,
                        format!(
                            "gzip stream is corrupt: the member starting at byte {start} \
                                 holds invalid deflate data ({err})"
                        ),
                    )
                })?;
            let used = (self.inflate.total_in() - in_before) as usize;
            let made = out.len() - out_before;
            crc.update(&out[out_before..]);
            input.consume(used);

            if status == Status::StreamEnd {
                break;
            }
            if used == 0 && made == 0 {
                return Err(invalid(
                    start,
                    format!("gzip stream is corrupt: the member starting at byte {start} stalls"),
                ));
            }
        }

        let mut trailer = [0u8; 8];
        if !input.read_exact_or_end(&mut trailer)? {
            return Err(truncated(start, "trailer"));
        }
        let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let stored_len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if stored_crc != crc.sum() || stored_len != crc.amount() {
            return Err(invalid(
                start,
                format!(
                    "gzip stream is corrupt: the member starting at byte {start} fails its \
                     CRC32/length check"
                ),
            ));
        }
        Ok(())
    }

    fn find_cut(tail: &[u8], resume: &mut usize, min_len: usize) -> Option<usize> {
        // Members that record their length are walked exactly; guessing starts where they end.
        let mut walked = 0;
        while let Some(len) = recorded_length(&tail[walked..]) {
            if walked + len > tail.len() {
                return None;
            }
            walked += len;
            if walked >= min_len {
                return Some(walked);
            }
        }

        let from = (*resume).max(min_len).max(walked + 1);
        let scan_end = tail.len().saturating_sub(FIXED_HEADER - 1);
        let mut pos = from;
        while pos < scan_end {
            let Some(found) = memchr::memchr(0x1f, &tail[pos..scan_end]) else {
                break;
            };
            let candidate = pos + found;
            if is_member_start(&tail[candidate..]) {
                return Some(candidate);
            }
            pos = candidate + 1;
        }
        *resume = from.max(scan_end);
        None
    }

    fn resume_after_merge(front_len: usize) -> Option<usize> {
        Some(front_len + 1)
    }

    fn stored_len_at(
        headers: &mut HeaderReader<'_>,
        offset: u64,
        limit: u64,
    ) -> io::Result<Option<u64>> {
        let mut head = [0u8; PACKED_HEADER];
        if !headers.read(offset, &mut head)? {
            return Ok(None);
        }
        Ok(recorded_length(&head)
            .map(|len| len as u64)
            .filter(|&len| len <= limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(xfl: u8, os: u8) -> Vec<u8> {
        vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, os]
    }

    #[test]
    fn member_start_needs_deflate_clear_reserved_flags_and_known_xfl_and_os() {
        assert!(is_member_start(&header(0, 3)));
        assert!(is_member_start(&header(2, 255)));
        assert!(!is_member_start(&header(1, 3)), "unknown XFL");
        assert!(!is_member_start(&header(0, 14)), "unknown OS");
        let mut reserved = header(0, 3);
        reserved[3] = 0x20;
        assert!(!is_member_start(&reserved));
        let mut method = header(0, 3);
        method[2] = 7;
        assert!(!is_member_start(&method));
        assert!(!is_member_start(&header(0, 3)[..9]), "too short to judge");
    }

    #[test]
    fn cut_is_the_first_candidate_past_the_minimum_and_resumes_where_it_stopped() {
        let mut tail = vec![b'x'; 100];
        tail.extend(header(0, 3));
        tail.extend(vec![b'y'; 50]);
        tail.extend(header(4, 3));
        tail.extend(vec![b'z'; 20]);
        let (first, second) = (100, 160);

        assert_eq!(Gzip::find_cut(&tail, &mut 0, 10), Some(first));
        assert_eq!(Gzip::find_cut(&tail, &mut 0, first + 1), Some(second));
        let mut resume = 0;
        assert_eq!(
            Gzip::find_cut(&tail[..second + 5], &mut resume, first + 1),
            None
        );
        assert!(resume > first && resume <= second, "{resume}");
        assert_eq!(Gzip::find_cut(&tail, &mut resume, first + 1), Some(second));
    }

    #[test]
    fn packed_members_are_walked_by_their_recorded_length() {
        // A stored member holding a header that would pass for a member start.
        let mut fake = header(0, 3);
        fake.extend([0u8; 40]);
        let first = packed_member(&[b"abc".as_slice(), &fake, b"def"].concat(), 0).unwrap();
        let second = packed_member(b"second", 6).unwrap();
        let mut tail = first.clone();
        tail.extend(&second);
        tail.extend(packed_member(b"third", 6).unwrap());

        assert_eq!(recorded_length(&tail), Some(first.len()));
        assert_eq!(Gzip::find_cut(&tail, &mut 0, 1), Some(first.len()));
        assert_eq!(
            Gzip::find_cut(&tail, &mut 0, first.len() + 1),
            Some(first.len() + second.len())
        );
        assert_eq!(Gzip::find_cut(&tail[..first.len() - 1], &mut 0, 1), None);
    }

    #[test]
    fn packed_member_is_ordinary_gzip() {
        let member = packed_member(b"hello, packed world", 9).unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&member[..]), &mut out)
            .unwrap();
        assert_eq!(out, "hello, packed world");
    }
}
