//! zstd frames (RFC 8878): where each ends, and decoding one.
//!
//! A zstd file is a sequence of frames, each decodable on its own, possibly with skippable
//! frames (magic `0x184D2A5?`, a 4-byte length, then that many ignored bytes) between them.
//! Unlike gzip, a frame's end can be found without decoding by walking its block headers, so
//! the cuts the splitter makes are exact.
//!
//! Frames are decoded with zstd's default window limit (128 MiB), as `zstd -d` does: frames
//! written with `--long=31` are refused as corrupt until a larger limit is made an option.

use std::io::BufRead;

use zstd::zstd_safe::{self, DCtx, InBuffer, OutBuffer, ResetDirective};

use super::split::{Codec, Counted, DecodeError, Sink};
use crate::error::RestoreError;

const FRAME_MAGIC: u32 = 0xFD2F_B528;
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// Decodes zstd frames.
pub(crate) struct Zstd {
    context: DCtx<'static>,
    scratch: Vec<u8>,
}

impl Default for Zstd {
    fn default() -> Self {
        Zstd {
            context: DCtx::create(),
            scratch: vec![0; 256 << 10],
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
    let magic = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    let len = if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
        let size = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
        8usize.checked_add(size as usize)?
    } else {
        zstd_safe::find_frame_compressed_size(bytes).ok()?
    };
    (len > 0 && len <= bytes.len()).then_some(len)
}

impl Codec for Zstd {
    fn decode_member<R: BufRead>(
        &mut self,
        input: &mut Counted<R>,
        sink: &mut Sink<'_>,
    ) -> Result<(), DecodeError> {
        let start = input.offset();
        let mut magic_bytes = [0u8; 4];
        if !input.read_exact_or_end(&mut magic_bytes)? {
            return Err(truncated(start));
        }
        let magic = u32::from_le_bytes(magic_bytes);

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
        let mut head = InBuffer::around(&magic_bytes);
        let mut out = OutBuffer::around(&mut self.scratch[..]);
        self.context
            .decompress_stream(&mut out, &mut head)
            .map_err(corrupt)?;

        loop {
            let buf = input.fill()?;
            let at_end = buf.is_empty();
            let mut src = InBuffer::around(buf);
            let mut out = OutBuffer::around(&mut self.scratch[..]);
            let remaining = self
                .context
                .decompress_stream(&mut out, &mut src)
                .map_err(corrupt)?;
            let (used, made) = (src.pos(), out.pos());
            input.consume(used);
            sink(&self.scratch[..made])?;

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
}
