//! gzip members (RFC 1952): where one may start, and decoding one with its trailer checked.
//!
//! A gzip file is one or more members, each a header, raw deflate data and an 8-byte trailer
//! (CRC32 and length of the decoded bytes). Concatenated members decode as one stream. Member
//! starts cannot be found without decoding, only guessed from header bytes; the guesses let the
//! splitter decode members in parallel, and it corrects the false ones.

use std::io::BufRead;

use flate2::{Crc, Decompress, FlushDecompress, Status};

use super::split::{Codec, Counted, DecodeError, Sink};
use crate::error::RestoreError;

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FLG_RESERVED: u8 = 0xe0;
/// Bytes of a member header up to and including OS.
const FIXED_HEADER: usize = 10;

/// Decodes gzip members.
pub(crate) struct Gzip {
    inflate: Decompress,
    scratch: Vec<u8>,
}

impl Default for Gzip {
    fn default() -> Self {
        Gzip {
            inflate: Decompress::new(false),
            scratch: vec![0; 256 << 10],
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
        sink: &mut Sink<'_>,
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
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(buf, &mut self.scratch, FlushDecompress::None)
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
            let made = (self.inflate.total_out() - out_before) as usize;
            input.consume(used);
            crc.update(&self.scratch[..made]);
            sink(&self.scratch[..made])?;

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
        let from = (*resume).max(min_len).max(1);
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
}
