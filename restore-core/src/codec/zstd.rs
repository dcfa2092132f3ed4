//! zstd frames (RFC 8878): where each ends, and decoding one.
//!
//! A zstd file is a sequence of frames, each decodable on its own, possibly with skippable
//! frames (magic `0x184D2A5?`, a 4-byte length, then that many ignored bytes) between them.
//! Unlike gzip, a frame's end can be found without decoding by walking its block headers, so
//! the cuts the splitter makes are exact.
//!
//! Frames are decoded with zstd's default window limit (128 MiB), as `zstd -d` does: frames
//! written with `--long=31` are refused as corrupt until a larger limit is made an option.

use std::io::{self, BufRead};

use zstd::zstd_safe::{self, DCtx, InBuffer, OutBuffer, ResetDirective};

use super::split::{Codec, Counted, DecodeError, HeaderReader, Headers, Output};
use crate::error::RestoreError;

const FRAME_MAGIC: u32 = 0xFD2F_B528;
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// Decodes zstd frames.
pub(crate) struct Zstd {
    context: DCtx<'static>,
}

impl Default for Zstd {
    fn default() -> Self {
        Zstd {
            context: DCtx::create(),
        }
    }
}

fn truncated(start: u64) -> DecodeError {
    DecodeError::Truncated(
        RestoreError::failed(format!(
            "zstd stream is truncated: the frame starting at byte {start} ends before its last \
             block"
        ))
        .with_detail("offset", start),
    )
}

fn invalid(offset: u64, message: String) -> DecodeError {
    DecodeError::Invalid(RestoreError::failed(message).with_detail("offset", offset))
}

/// The length of the complete frame (or skippable frame) at the start of `bytes`, if all of it
/// is there.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let walked = walk_frame(&mut &*bytes, 0, bytes.len() as u64).ok()??;
    usize::try_from(walked.len)
        .ok()
        .filter(|&len| len > 0 && len <= bytes.len())
}

/// Frames whose window exceeds this are refused, as `zstd -d` refuses them without `--long`.
const WINDOW_LIMIT: u64 = 1 << 27;
/// The largest block a frame may hold, whatever its window.
const BLOCK_LIMIT: u64 = 128 << 10;

/// What a frame's headers say about it.
struct Walked {
    /// Its stored length.
    len: u64,
    /// Whether its window and every block's size stay within the limits a conforming decoder
    /// checks.
    conforming: bool,
}

/// Walks the frame (or skippable frame) at `offset` over its frame and block headers as
/// RFC 8878 lays them out; `None` when the headers are not those of a frame, the input ends
/// inside them, or the frame runs past `limit` bytes. The last block's payload is not read: the
/// caller checks the length against the input's.
fn walk_frame(headers: &mut impl Headers, offset: u64, limit: u64) -> io::Result<Option<Walked>> {
    let mut head = [0u8; 14];
    if !headers.read(offset, &mut head[..4])? {
        return Ok(None);
    }
    let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
        let mut size = [0u8; 4];
        if !headers.read(offset + 4, &mut size)? {
            return Ok(None);
        }
        let len = 8 + u64::from(u32::from_le_bytes(size));
        return Ok((len <= limit).then_some(Walked {
            len,
            conforming: true,
        }));
    }
    if magic != FRAME_MAGIC || !headers.read(offset, &mut head[..5])? {
        return Ok(None);
    }

    // Frame header descriptor: content size field flag (2 bits), single segment, unused,
    // reserved (must be 0), content checksum, dictionary id field flag (2 bits).
    let descriptor = head[4];
    if descriptor & 0x08 != 0 {
        return Ok(None);
    }
    let single_segment = descriptor & 0x20 != 0;
    let window_len = usize::from(!single_segment);
    let dictionary_len = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
    let content_len = [usize::from(single_segment), 2, 4, 8][usize::from(descriptor >> 6)];
    let header_len = 5 + window_len + dictionary_len + content_len;
    if !headers.read(offset, &mut head[..header_len])? {
        return Ok(None);
    }

    let window = if single_segment {
        // The window is the content size, whose field ends the header (2-byte sizes are
        // stored less 256).
        let field = &head[header_len - content_len..header_len];
        let mut bytes = [0u8; 8];
        bytes[..content_len].copy_from_slice(field);
        u64::from_le_bytes(bytes) + if content_len == 2 { 256 } else { 0 }
    } else {
        let descriptor = head[5];
        let base = 1u64 << (10 + (descriptor >> 3));
        base + (base / 8) * u64::from(descriptor & 0x07)
    };
    let block_limit = window.min(BLOCK_LIMIT);
    let mut conforming = window <= WINDOW_LIMIT;

    let mut pos = offset + header_len as u64;
    loop {
        let mut block = [0u8; 3];
        if pos - offset > limit || !headers.read(pos, &mut block)? {
            return Ok(None);
        }
        let header = u32::from_le_bytes([block[0], block[1], block[2], 0]);
        let size = u64::from(header >> 3);
        conforming &= size <= block_limit;
        let payload = match (header >> 1) & 0x03 {
            0 | 2 => size,
            1 => 1,
            _ => return Ok(None),
        };
        pos += 3 + payload;
        if header & 1 == 1 {
            break;
        }
    }
    if descriptor & 0x04 != 0 {
        pos += 4;
    }
    let len = pos - offset;
    Ok((len <= limit).then_some(Walked { len, conforming }))
}

/// The decoded size a frame declares, when the whole frame is in `bytes` and its headers keep
/// within the limits `zstd -d` checks: only then is it decoded in one pass, a path on which
/// zstd checks less than when it streams.
fn whole_frame_content_size(bytes: &[u8]) -> Option<usize> {
    let walked = walk_frame(&mut &*bytes, 0, bytes.len() as u64).ok()??;
    if !walked.conforming || walked.len > bytes.len() as u64 {
        return None;
    }
    let size = zstd_safe::get_frame_content_size(bytes).ok()??;
    usize::try_from(size).ok()
}

impl Codec for Zstd {
    fn decode_member<R: BufRead>(
        &mut self,
        input: &mut Counted<R>,
        output: &mut dyn Output,
    ) -> Result<(), DecodeError> {
        let start = input.offset();
        // A frame whose bytes are all at hand, and whose headers keep within the limits zstd
        // checks, reaches zstd in one piece with room for all it declares: zstd then decodes it
        // in one pass straight into the output instead of through its window buffer. Any other
        // frame gets its magic first and alone, which keeps zstd on its streaming path, where
        // it checks everything.
        let buffered = input.fill()?;
        let one_pass = match buffered.get(..4) {
            Some(head)
                if u32::from_le_bytes([head[0], head[1], head[2], head[3]]) == FRAME_MAGIC =>
            {
                whole_frame_content_size(buffered)
            }
            _ => None,
        };
        let mut magic_bytes = [0u8; 4];
        if one_pass.is_none() && !input.read_exact_or_end(&mut magic_bytes)? {
            return Err(truncated(start));
        }
        let magic = match one_pass {
            Some(_) => FRAME_MAGIC,
            None => u32::from_le_bytes(magic_bytes),
        };

        if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
            let mut size = [0u8; 4];
            if !input.read_exact_or_end(&mut size)?
                || !input.skip(u32::from_le_bytes(size).into())?
            {
                return Err(truncated(start));
            }
            return Ok(());
        }
        if magic != FRAME_MAGIC {
            let what = if magic == 0 {
                "zero bytes"
            } else {
                "bytes that are not a zstd frame"
            };
            return Err(invalid(
                start,
                format!("zstd stream has {what} after its last frame, at byte {start}"),
            ));
        }

        let corrupt = |code: usize| {
            invalid(
                start,
                format!(
                    "zstd stream is corrupt: the frame starting at byte {start} cannot be \
                     decoded ({})",
                    zstd_safe::get_error_name(code)
                ),
            )
        };
        self.context
            .reset(ResetDirective::SessionOnly)
            .map_err(corrupt)?;
        match one_pass {
            Some(size) => output.expect(size)?,
            None => {
                let mut head = InBuffer::around(&magic_bytes);
                let out = output.room()?;
                let at = out.len();
                self.context
                    .decompress_stream(&mut OutBuffer::around_pos(out, at), &mut head)
                    .map_err(corrupt)?;
            }
        }

        loop {
            let buf = input.fill()?;
            let at_end = buf.is_empty();
            let mut src = InBuffer::around(buf);
            let out = output.room()?;
            let at = out.len();
            let remaining = self
                .context
                .decompress_stream(&mut OutBuffer::around_pos(out, at), &mut src)
                .map_err(corrupt)?;
            let (used, made) = (src.pos(), out.len() - at);
            input.consume(used);

            if remaining == 0 {
                return Ok(());
            }
            if at_end && made == 0 {
                return Err(truncated(start));
            }
        }
    }

    fn find_cut(tail: &[u8], resume: &mut usize, min_len: usize) -> Option<usize> {
        let mut pos = *resume;
        loop {
            if pos > 0 && pos >= min_len {
                return Some(pos);
            }
            match frame_len(&tail[pos..]) {
                Some(len) => pos += len,
                None => {
                    *resume = pos;
                    return None;
                }
            }
        }
    }

    fn resume_after_merge(_front_len: usize) -> Option<usize> {
        None
    }

    fn stored_len_at(
        headers: &mut HeaderReader<'_>,
        offset: u64,
        limit: u64,
    ) -> io::Result<Option<u64>> {
        Ok(walk_frame(headers, offset, limit)?.map(|walked| walked.len))
    }
}
