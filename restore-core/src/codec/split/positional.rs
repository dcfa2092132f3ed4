//! Decoding a backup file whose members or frames can be told apart from their headers alone,
//! with every decoding thread reading its own segment from the file.
//!
//! A zstd frame's stored length follows from its header and block headers; a packed gzip
//! member records its own. For such files the reader thread only reads headers, a few bytes per
//! block, and hands out segments as positions; the pool threads read the segments' bytes
//! themselves, so copying the file out of the page cache is spread over all threads instead of
//! holding back the one thread everything else waits on. Results are still taken in order, and
//! every segment's stored bytes are accounted for (hashed, counted, checked for cancellation)
//! in order before its decoded bytes go out, so the digest is of exactly the bytes decoded.
//!
//! Anything this phase cannot handle hands the rest of the file, from the first byte not yet
//! accounted for, to the ordinary stream splitter: headers that do not add up, a member that
//! records no length, a segment that fails to decode or decodes to too much. The stream
//! splitter then decodes or refuses it with the same errors as any stream; it also takes over at
//! the end, where it finds the end of the file or bytes added since. A file found shorter than
//! it was when it was opened fails, in either phase.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use super::{
    decode_segment, lost_worker, read_error, Buffers, Codec, Headers, SegmentOutcome, Splitter,
    Stop,
};
use crate::checksum::HashingReader;
use crate::error::RestoreError;

/// A backup file read at positions, and the accounting of its bytes.
pub(crate) struct StoredFile {
    pub(super) hashing: HashingReader<File>,
    file: Arc<File>,
    len: u64,
}

impl StoredFile {
    /// Wraps the file behind `hashing`; its bytes will be accounted for through `hashing`.
    pub(crate) fn new(hashing: HashingReader<File>) -> io::Result<Self> {
        let file = Arc::new(hashing.get_ref().try_clone()?);
        let len = file.metadata()?.len();
        Ok(StoredFile { hashing, file, len })
    }

    /// A file that had `len` bytes when it was opened, whatever it has now: for tests of a
    /// file that shrinks while it is read.
    #[cfg(test)]
    pub(crate) fn measured(hashing: HashingReader<File>, len: u64) -> io::Result<Self> {
        let file = Arc::new(hashing.get_ref().try_clone()?);
        Ok(StoredFile { hashing, file, len })
    }

    /// The file as a stream read in order from where it stands.
    pub(crate) fn into_reader(self) -> HashingReader<File> {
        self.hashing
    }
}

/// Reads up to `buf.len()` bytes at `offset`, fewer only at the end of the file.
pub(crate) fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// Reads small pieces of a file at increasing positions through a window, so that headers a few
/// bytes apart cost one read between them.
pub(crate) struct HeaderReader<'a> {
    file: &'a File,
    window: Vec<u8>,
    start: u64,
}

impl<'a> HeaderReader<'a> {
    const WINDOW: usize = 4096;

    pub(crate) fn new(file: &'a File) -> Self {
        HeaderReader {
            file,
            window: Vec::new(),
            start: 0,
        }
    }
}

impl Headers for HeaderReader<'_> {
    fn read(&mut self, offset: u64, out: &mut [u8]) -> io::Result<bool> {
        let end = self.start + self.window.len() as u64;
        if offset < self.start || offset + out.len() as u64 > end {
            self.window.resize(Self::WINDOW.max(out.len()), 0);
            let got = read_at_most(self.file, &mut self.window, offset)?;
            self.window.truncate(got);
            self.start = offset;
        }
        let at = (offset - self.start) as usize;
        match self.window.get(at..at + out.len()) {
            Some(bytes) => {
                out.copy_from_slice(bytes);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// What a pool thread made of a segment it read from the file.
enum Placed {
    /// It read the segment (its bytes come along) and decoded it, or tried to.
    Read(SegmentOutcome, Vec<u8>),
    /// It could not read the segment: the file ended before the segment did (it shrank since
    /// it was measured), or the read failed.
    Failed(RestoreError),
}

/// A segment handed to the pool as a position in the file.
struct PlacedJob {
    start: u64,
    result: Receiver<Placed>,
}

/// The error for a file found shorter than when it was opened.
fn shrank(len: u64, end: u64) -> RestoreError {
    RestoreError::failed(format!(
        "the backup file shrank while it was read: it had {len} bytes when the restore started \
         and now ends at byte {end}"
    ))
    .with_detail("offset", end)
}

/// The stream the splitter goes on with after the positional phase: the file from where that
/// phase stopped, failing if it ends before the length the file had when it was opened (a
/// file that grows is read to its new end, as any stream).
struct AtLeast<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Read for AtLeast<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.pos < self.len {
            return Err(io::Error::other(shrank(self.len, self.pos)));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl<C: Codec> Splitter<C> {
    /// Decodes the file at positions for as long as its headers allow, and says where the
    /// stream splitter takes over: at the end of the file, where it only finds the end (or
    /// bytes added since), or earlier.
    pub(super) fn run_positional(&mut self, stored: &mut StoredFile) -> Result<u64, Stop> {
        let stored_buffers = Buffers::default();
        let file = stored.file.clone();
        let mut headers = HeaderReader::new(&file);
        let mut inflight: VecDeque<PlacedJob> = VecDeque::new();
        let mut walked = 0u64;
        let mut walk_stopped = false;

        loop {
            while !walk_stopped && inflight.len() < self.max_inflight && walked < stored.len {
                let (len, stopped) = self.next_segment(&mut headers, stored.len, walked)?;
                walk_stopped = stopped;
                if len > 0 {
                    inflight.push_back(self.spawn_placed(stored, walked, len, &stored_buffers));
                    walked += len;
                }
            }

            let Some(front) = inflight.pop_front() else {
                return Ok(walked);
            };
            let (outcome, bytes) = match front.result.recv().map_err(|_| lost_worker())? {
                Placed::Read(outcome, bytes) => (outcome, bytes),
                Placed::Failed(err) => return Err(Stop::Failed(err)),
            };
            match outcome {
                SegmentOutcome::Done(decoded) => {
                    stored
                        .hashing
                        .account(&bytes)
                        .map_err(|err| Stop::Failed(read_error(err, front.start)))?;
                    stored_buffers.give(bytes);
                    if decoded.is_empty() {
                        self.buffers.give(decoded);
                    } else {
                        self.out
                            .send(super::Message::Data(decoded))
                            .map_err(|_| Stop::ConsumerGone)?;
                    }
                }
                SegmentOutcome::Failed(err) if C::resume_after_merge(0).is_none() => {
                    return Err(Stop::Failed(err));
                }
                SegmentOutcome::Failed(_)
                | SegmentOutcome::Truncated(_)
                | SegmentOutcome::TooLarge => {
                    tracing::debug!(
                        offset = front.start,
                        "segment needs the stream decoder, handing over"
                    );
                    return Ok(front.start);
                }
            }
        }
    }

    /// The length of the next segment from `offset`: whole members or frames adding up to at
    /// least the minimum segment size, and whether the walk over headers has to stop after it.
    fn next_segment(
        &self,
        headers: &mut HeaderReader<'_>,
        file_len: u64,
        offset: u64,
    ) -> Result<(u64, bool), Stop> {
        let limit = self.limits.stream_threshold as u64;
        let mut len = 0u64;
        while offset + len < file_len {
            let at = offset + len;
            let found = C::stored_len_at(headers, at, limit)
                .map_err(|err| Stop::Failed(read_error(err, at)))?;
            match found {
                Some(member) if at + member <= file_len && len + member <= limit => {
                    len += member;
                    if len >= self.limits.segment_min as u64 {
                        return Ok((len, false));
                    }
                }
                _ => return Ok((len, true)),
            }
        }
        Ok((len, false))
    }

    fn spawn_placed(
        &self,
        stored: &StoredFile,
        start: u64,
        len: u64,
        stored_buffers: &Buffers,
    ) -> PlacedJob {
        let (sender, result) = sync_channel(1);
        let file = stored.file.clone();
        let file_len = stored.len;
        let output_cap = self.limits.output_cap;
        let (buffers, codecs) = (self.buffers.clone(), self.codecs.clone());
        let stored_buffers = stored_buffers.clone();
        self.pool.spawn(move || {
            let len = len as usize;
            let mut bytes = stored_buffers.take(len);
            bytes.resize(len, 0);
            let placed = match read_at_most(&file, &mut bytes, start) {
                Ok(got) if got == len => {
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        decode_segment::<C>(&bytes, start, output_cap, &buffers, &codecs)
                    }))
                    .unwrap_or_else(|_| {
                        SegmentOutcome::Failed(RestoreError::failed(format!(
                            "the decoder failed unexpectedly on the segment at byte {start}"
                        )))
                    });
                    Placed::Read(outcome, bytes)
                }
                Ok(got) => Placed::Failed(shrank(file_len, start + got as u64)),
                Err(err) => Placed::Failed(read_error(err, start)),
            };
            let _ = sender.send(placed);
        });
        PlacedJob { start, result }
    }

    /// Makes the stream splitter go on from `offset` of the file.
    pub(super) fn hand_over(&mut self, mut stored: StoredFile, offset: u64) -> Result<(), Stop> {
        stored
            .hashing
            .get_mut()
            .seek(SeekFrom::Start(offset))
            .map_err(|err| Stop::Failed(read_error(err, offset)))?;
        self.source = Box::new(AtLeast {
            inner: stored.hashing,
            pos: offset,
            len: stored.len,
        });
        self.tail_start = offset;
        Ok(())
    }
}
