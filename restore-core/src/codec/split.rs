//! Cutting a compressed stream at member or frame boundaries and decoding the pieces in
//! parallel, reassembled in order.
//!
//! One reader thread per stream reads the stored bytes in blocks and keeps the bytes not yet
//! handed out as a pending tail. The codec names places in the tail where a member (gzip) or a
//! frame (zstd) may start; the reader cuts the tail there into segments of at least
//! `segment_min` bytes and decodes each segment on the rayon pool. Segment results are taken
//! strictly in order by the same reader thread and sent to the consumer through a bounded
//! channel, so output order never depends on scheduling.
//!
//! A cut is only a guess for gzip: `1f 8b 08 …` may occur inside compressed data. The segment at
//! the front of the queue always starts where the previous one really ended, so decoding it
//! sequentially is authoritative: if its last member runs past the cut, the cut was false, and
//! the segment is merged with the next one and decoded again. Work done on segments that start
//! at a false cut is thrown away.
//!
//! When no cut is in sight for `stream_threshold` bytes (a single large member or frame), or a
//! segment would decode to more than `output_cap` bytes, the reader decodes the rest of the
//! file itself, streaming. A single-member gzip file is thus decoded on the reader thread alone;
//! it still overlaps the consumer, which is all the parallelism such a file allows.
//!
//! A backup file (rather than a stream) first goes through the positional phase (see
//! [`positional`]): while members or frames can be told apart from their headers, the pool
//! threads read their own segments from the file, and the splitter described here takes over
//! from the first byte that phase did not account for.

mod positional;

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf, Bytes, BytesMut};

use crate::error::RestoreError;
pub(crate) use positional::{HeaderReader, StoredFile};

/// Bytes read from the source at a time.
pub(crate) const BLOCK: usize = 1 << 20;

/// The sizes that bound a splitter's work and memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Bytes read from the source at a time.
    pub(crate) block: usize,
    /// Smallest segment handed to the pool; consecutive small members are grouped up to it.
    pub(crate) segment_min: usize,
    /// Pending compressed bytes without a usable cut after which the rest is decoded
    /// streaming.
    pub(crate) stream_threshold: usize,
    /// Most decoded bytes one segment may hold before the rest is decoded streaming.
    pub(crate) output_cap: usize,
}

impl Default for Limits {
    /// With at most four segments in flight and two chunks waiting for the consumer, a stream
    /// of packed or ordinary multi-member input holds well under 64 MiB; the bound for input
    /// built to defeat it (segments of 16 MiB that each decode to just under 8 MiB) is about
    /// 140 MiB.
    fn default() -> Self {
        Limits {
            block: BLOCK,
            segment_min: 1 << 20,
            stream_threshold: 16 << 20,
            output_cap: 8 << 20,
        }
    }
}

/// Size of the chunks the streaming decoder sends to the consumer.
const CHUNK: usize = 1 << 20;

/// What travels from the reader thread to the consumer.
pub(crate) enum Message {
    /// Decoded bytes, in order.
    Data(Vec<u8>),
    /// The stream failed; nothing follows.
    Failed(io::Error),
    /// The stream ended cleanly.
    End,
}

/// Why decoding stopped early.
pub(crate) enum DecodeError {
    /// The input ended inside a member or frame. For a segment cut at a guess this may only mean
    /// the guess was wrong.
    Truncated(RestoreError),
    /// The input is not valid: corrupt data, a checksum mismatch, bytes that start no member.
    Invalid(RestoreError),
    /// The segment decodes to more bytes than it may hold.
    TooLarge,
    /// The consumer went away.
    ConsumerGone,
}

/// Spare capacity a codec can count on in the buffer it decodes into.
pub(crate) const STEP: usize = 64 << 10;

/// Where a codec appends what it decodes: straight into the buffer that reaches the consumer,
/// so decoded bytes are written once and never copied on the decoding side.
pub(crate) trait Output {
    /// The buffer to append to, with at least [`STEP`] bytes of spare capacity. Fails when the
    /// output is full ([`DecodeError::TooLarge`]) or its consumer went away.
    fn room(&mut self) -> Result<&mut Vec<u8>, DecodeError>;

    /// Told that the next `size` bytes decoded come as one piece, makes room for all of them
    /// at once when that is within its limits; otherwise leaves the room as it is. `size` comes
    /// from the input and is a hint, never trusted for more.
    fn expect(&mut self, size: usize) -> Result<(), DecodeError>;
}

/// Things kept between uses by the threads of one stream, at most `most` of them.
struct Kept<T>(Arc<Mutex<Vec<T>>>);

impl<T> Kept<T> {
    fn new() -> Self {
        Kept(Arc::new(Mutex::new(Vec::new())))
    }

    fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    fn give(&self, item: T, most: usize) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < most {
            kept.push(item);
        }
    }
}

impl<T> Clone for Kept<T> {
    fn clone(&self) -> Self {
        Kept(self.0.clone())
    }
}

/// Decoded-byte buffers the consumer has finished with, kept for the decoders to fill again.
///
/// Buffers of megabytes freshly allocated cost a page fault for every 4 KiB written; at a
/// gigabyte a second that was a quarter of the decoding threads' time. The buffers in use are
/// bounded by the segments in flight and the channel, so keeping the idle ones adds no memory
/// beyond what a stream already holds at its busiest.
#[derive(Clone)]
pub(crate) struct Buffers(Kept<Vec<u8>>);

impl Default for Buffers {
    fn default() -> Self {
        Buffers(Kept::new())
    }
}

impl Buffers {
    /// Idle buffers kept at most.
    const KEPT: usize = 8;
    /// Buffers larger than this (a segment that grew past the usual size) are let go.
    const LARGEST: usize = 16 << 20;

    /// An empty buffer with room for at least `capacity` bytes.
    pub(crate) fn take(&self, capacity: usize) -> Vec<u8> {
        let mut buffer = self.0.take().unwrap_or_default();
        buffer.reserve(capacity);
        buffer
    }

    /// Hands `buffer` back for reuse.
    pub(crate) fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0 || buffer.capacity() > Self::LARGEST {
            return;
        }
        buffer.clear();
        self.0.give(buffer, Self::KEPT);
    }
}

/// Codec states (inflate or zstd contexts and their windows) kept between segments: building
/// one per segment allocated and faulted in hundreds of KiB each time. There are never more of
/// them than pool threads.
type Codecs<C> = Kept<C>;

/// The output of a segment decoded on the pool: one buffer, refused past `cap` bytes.
struct SegmentOutput {
    out: Vec<u8>,
    cap: usize,
}

impl Output for SegmentOutput {
    fn room(&mut self) -> Result<&mut Vec<u8>, DecodeError> {
        if self.out.len() > self.cap {
            return Err(DecodeError::TooLarge);
        }
        let (len, capacity) = (self.out.len(), self.out.capacity());
        if capacity - len < STEP {
            let wanted = (capacity * 2).clamp(len + STEP, self.cap + STEP);
            self.out.reserve_exact(wanted - len);
        }
        Ok(&mut self.out)
    }

    fn expect(&mut self, size: usize) -> Result<(), DecodeError> {
        let len = self.out.len();
        if len.saturating_add(size) <= self.cap {
            self.out.reserve(size.max(STEP));
        }
        Ok(())
    }
}

/// The output of the streaming decoder: chunks of about [`CHUNK`] bytes sent as they fill.
struct StreamOutput<'a> {
    chunk: Vec<u8>,
    out: &'a SyncSender<Message>,
    buffers: &'a Buffers,
}

impl StreamOutput<'_> {
    fn send(&mut self) -> Result<(), DecodeError> {
        let full = std::mem::replace(&mut self.chunk, self.buffers.take(CHUNK + STEP));
        self.out
            .send(Message::Data(full))
            .map_err(|_| DecodeError::ConsumerGone)
    }
}

impl Output for StreamOutput<'_> {
    fn room(&mut self) -> Result<&mut Vec<u8>, DecodeError> {
        if self.chunk.len() >= CHUNK {
            self.send()?;
        }
        if self.chunk.capacity() - self.chunk.len() < STEP {
            self.chunk.reserve(STEP);
        }
        Ok(&mut self.chunk)
    }

    fn expect(&mut self, size: usize) -> Result<(), DecodeError> {
        if size > 2 * CHUNK {
            return Ok(());
        }
        if !self.chunk.is_empty() && self.chunk.len() + size > self.chunk.capacity() {
            self.send()?;
        }
        self.chunk.reserve(size.max(STEP));
        Ok(())
    }
}

/// A compression format's knowledge of its members: where they may start, and how to decode one.
pub(crate) trait Codec: Default + Send + 'static {
    /// Decodes one member or frame starting at the input's position into `output`. Bytes at
    /// that position that start no member are [`DecodeError::Invalid`].
    fn decode_member<R: BufRead>(
        &mut self,
        input: &mut Counted<R>,
        output: &mut dyn Output,
    ) -> Result<(), DecodeError>;

    /// Finds a place at or after `min_len` in `tail` (which starts at a member start) where a
    /// member may start. `resume` carries scanning progress between calls on a growing tail.
    fn find_cut(tail: &[u8], resume: &mut usize, min_len: usize) -> Option<usize>;

    /// Where scanning resumes after a segment of `front_len` bytes whose cut proved false is
    /// put back before the tail, or `None` when cuts are exact and a false one is an error.
    fn resume_after_merge(front_len: usize) -> Option<usize>;

    /// The stored length of the member or frame at `offset` of `file`, told from headers alone,
    /// or `None` when they do not tell it (or it would exceed `limit`): the stream splitter,
    /// which reads everything, then takes over from there.
    fn stored_len_at(
        headers: &mut HeaderReader<'_>,
        offset: u64,
        limit: u64,
    ) -> io::Result<Option<u64>>;
}

/// Stored bytes read at positions, a few at a time: the headers of members or frames.
pub(crate) trait Headers {
    /// The `out.len()` bytes at `offset`; `Ok(false)` when the input ends first.
    fn read(&mut self, offset: u64, out: &mut [u8]) -> io::Result<bool>;
}

impl Headers for &[u8] {
    fn read(&mut self, offset: u64, out: &mut [u8]) -> io::Result<bool> {
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        match at.checked_add(out.len()).and_then(|end| self.get(at..end)) {
            Some(bytes) => {
                out.copy_from_slice(bytes);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Where a splitter's stored bytes come from.
pub(crate) enum Source {
    /// A stream, read in order by the splitter's thread.
    Stream(Box<dyn Read + Send>),
    /// A file, read at positions by the decoding threads while its headers allow.
    File(StoredFile),
}

/// A buffered reader that knows the offset in the stored file of its next unconsumed byte.
pub(crate) struct Counted<R> {
    inner: R,
    offset: u64,
}

impl<R: BufRead> Counted<R> {
    /// Wraps `inner`, whose first byte is at `offset` in the stored file.
    pub(crate) fn new(inner: R, offset: u64) -> Self {
        Counted { inner, offset }
    }

    /// The offset of the next unconsumed byte.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The buffered bytes, refilled when empty; empty only at the end of input.
    pub(crate) fn fill(&mut self) -> Result<&[u8], DecodeError> {
        let offset = self.offset;
        // The buffer is taken by a second call: a borrow returned from inside the retry loop
        // would outlive it. The second call returns what the first one buffered, or at the end
        // of input asks the source once more, which reports the end again.
        loop {
            match self.inner.fill_buf() {
                Ok(_) => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(DecodeError::Invalid(read_error(err, offset))),
            }
        }
        self.inner
            .fill_buf()
            .map_err(|err| DecodeError::Invalid(read_error(err, offset)))
    }

    /// Marks `amount` buffered bytes as used.
    pub(crate) fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
        self.offset += amount as u64;
    }

    /// Reads exactly `out.len()` bytes; `Ok(false)` when the input ends first.
    pub(crate) fn read_exact_or_end(&mut self, out: &mut [u8]) -> Result<bool, DecodeError> {
        let mut filled = 0;
        while filled < out.len() {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Ok(false);
            }
            let n = buf.len().min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&buf[..n]);
            self.consume(n);
            filled += n;
        }
        Ok(true)
    }

    /// Skips `count` bytes; `Ok(false)` when the input ends first.
    pub(crate) fn skip(&mut self, mut count: u64) -> Result<bool, DecodeError> {
        while count > 0 {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Ok(false);
            }
            let n = (buf.len() as u64).min(count) as usize;
            self.consume(n);
            count -= n as u64;
        }
        Ok(true)
    }
}

/// The error for a source that failed to read, keeping an engine error (such as cancellation)
/// as it is.
pub(crate) fn read_error(err: io::Error, offset: u64) -> RestoreError {
    if let Some(inner) = err.get_ref().and_then(|e| e.downcast_ref::<RestoreError>()) {
        return inner.clone();
    }
    RestoreError::failed(format!("cannot read the backup at byte {offset}: {err}"))
        .with_detail("offset", offset)
}

/// Decodes members one after another until the input ends.
pub(crate) fn decode_members<C: Codec, R: BufRead>(
    codec: &mut C,
    input: &mut Counted<R>,
    output: &mut dyn Output,
) -> Result<(), DecodeError> {
    while !input.fill()?.is_empty() {
        codec.decode_member(input, output)?;
    }
    Ok(())
}

/// What decoding one segment on the pool produced.
enum SegmentOutcome {
    Done(Vec<u8>),
    Truncated(RestoreError),
    Failed(RestoreError),
    TooLarge,
}

fn decode_segment<C: Codec>(
    data: &[u8],
    start: u64,
    output_cap: usize,
    buffers: &Buffers,
    codecs: &Codecs<C>,
) -> SegmentOutcome {
    let mut output = SegmentOutput {
        out: buffers.take(data.len().saturating_mul(4).min(output_cap)),
        cap: output_cap,
    };
    let mut codec = codecs.take().unwrap_or_default();
    let result = decode_members(&mut codec, &mut Counted::new(data, start), &mut output);
    codecs.give(codec, usize::MAX);

    let result = match result {
        Ok(()) if output.out.len() > output_cap => Err(DecodeError::TooLarge),
        other => other,
    };
    if result.is_err() {
        buffers.give(std::mem::take(&mut output.out));
    }
    match result {
        Ok(()) => SegmentOutcome::Done(output.out),
        Err(DecodeError::Truncated(err)) => SegmentOutcome::Truncated(err),
        Err(DecodeError::Invalid(err)) => SegmentOutcome::Failed(err),
        Err(DecodeError::TooLarge) => SegmentOutcome::TooLarge,
        Err(DecodeError::ConsumerGone) => {
            SegmentOutcome::Failed(RestoreError::failed("segment decoder lost its output"))
        }
    }
}

/// A segment handed to the pool.
struct Job {
    start: u64,
    data: Bytes,
    result: Receiver<SegmentOutcome>,
}

/// Why the reader thread stopped before the end.
enum Stop {
    Failed(RestoreError),
    ConsumerGone,
}

/// Where the parallel phase left the stream.
enum Phase {
    Finished,
    Streaming,
}

/// What taking the front segment's result leaves to do.
enum Settled {
    Continue,
    Streaming,
}

/// The reader thread's state while decoding one stream.
pub(crate) struct Splitter<C> {
    source: Box<dyn Read + Send>,
    file: Option<StoredFile>,
    pool: Arc<rayon::ThreadPool>,
    out: SyncSender<Message>,
    inflight: VecDeque<Job>,
    max_inflight: usize,
    limits: Limits,
    tail: BytesMut,
    tail_start: u64,
    resume: usize,
    eof: bool,
    buffers: Buffers,
    codecs: Codecs<C>,
}

impl<C: Codec> Splitter<C> {
    /// A splitter reading `source` from its first byte.
    pub(crate) fn new(
        source: Source,
        pool: Arc<rayon::ThreadPool>,
        out: SyncSender<Message>,
        buffers: Buffers,
        limits: Limits,
    ) -> Self {
        // One segment per pool thread plus one decoded ahead keeps every thread busy; more only
        // adds memory.
        let max_inflight = (pool.current_num_threads() + 2).clamp(3, 6);
        let (source, file) = match source {
            Source::Stream(stream) => (stream, None),
            Source::File(file) => (Box::new(io::empty()) as Box<dyn Read + Send>, Some(file)),
        };
        Splitter {
            source,
            file,
            pool,
            out,
            inflight: VecDeque::new(),
            max_inflight,
            limits,
            tail: BytesMut::new(),
            tail_start: 0,
            resume: 0,
            eof: false,
            buffers,
            codecs: Kept::new(),
        }
    }

    /// Decodes the whole stream, sending its bytes and then its end or failure.
    pub(crate) fn run(mut self) {
        let outcome = self.run_file().and_then(|()| match self.run_parallel()? {
            Phase::Finished => Ok(()),
            Phase::Streaming => self.run_streaming(),
        });

        let last = match outcome {
            Ok(()) => Message::End,
            Err(Stop::Failed(err)) => Message::Failed(io::Error::other(err)),
            Err(Stop::ConsumerGone) => return,
        };
        let _ = self.out.send(last);
    }

    /// Runs the positional phase on a file source, then hands the rest of the file (often
    /// nothing but its end) to the stream splitter.
    fn run_file(&mut self) -> Result<(), Stop> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        let offset = self.run_positional(&mut file)?;
        self.hand_over(file, offset)
    }

    fn run_parallel(&mut self) -> Result<Phase, Stop> {
        loop {
            while self.inflight.len() < self.max_inflight {
                match C::find_cut(&self.tail, &mut self.resume, self.limits.segment_min) {
                    Some(cut) => self.dispatch(cut),
                    None => break,
                }
            }
            if self.eof && !self.tail.is_empty() && self.inflight.len() < self.max_inflight {
                self.dispatch(self.tail.len());
            }
            if self.eof && self.tail.is_empty() && self.inflight.is_empty() {
                return Ok(Phase::Finished);
            }

            let must_wait = self.eof
                || self.inflight.len() >= self.max_inflight
                || self.tail.len() >= self.limits.stream_threshold;
            if let Some(front) = self.inflight.front() {
                let outcome = if must_wait {
                    Some(front.result.recv().map_err(|_| lost_worker())?)
                } else {
                    match front.result.try_recv() {
                        Ok(outcome) => Some(outcome),
                        Err(TryRecvError::Empty) => None,
                        Err(TryRecvError::Disconnected) => return Err(lost_worker()),
                    }
                };
                if let Some(outcome) = outcome {
                    if let Settled::Streaming = self.settle_front(outcome)? {
                        return Ok(Phase::Streaming);
                    }
                    continue;
                }
            }

            if self.tail.len() >= self.limits.stream_threshold && self.inflight.is_empty() {
                return Ok(Phase::Streaming);
            }
            if !self.eof {
                self.read_block()?;
            }
        }
    }

    /// Takes the front segment's result; the front always starts where real output resumes.
    fn settle_front(&mut self, outcome: SegmentOutcome) -> Result<Settled, Stop> {
        let Some(front) = self.inflight.pop_front() else {
            return Ok(Settled::Continue);
        };

        match outcome {
            SegmentOutcome::Done(bytes) => {
                if bytes.is_empty() {
                    self.buffers.give(bytes);
                } else {
                    self.out
                        .send(Message::Data(bytes))
                        .map_err(|_| Stop::ConsumerGone)?;
                }
                Ok(Settled::Continue)
            }
            SegmentOutcome::Failed(err) => Err(Stop::Failed(err)),
            SegmentOutcome::TooLarge => {
                self.rewind(front.start, vec![front.data]);
                Ok(Settled::Streaming)
            }
            SegmentOutcome::Truncated(err) => {
                let Some(resume) = C::resume_after_merge(front.data.len()) else {
                    return Err(Stop::Failed(err));
                };
                if let Some(next) = self.inflight.pop_front() {
                    // The cut between them was false. The front's member ends at the first
                    // place past the cut where one may start, or later: decode up to there
                    // again, and the rest of the next segment as a segment of its own.
                    tracing::trace!(offset = next.start, "false member boundary, merging");
                    let end = C::find_cut(&next.data, &mut 0, 1).unwrap_or(next.data.len());
                    if front.data.len() + end > self.limits.stream_threshold {
                        self.rewind(front.start, vec![front.data, next.data]);
                        return Ok(Settled::Streaming);
                    }
                    if end < next.data.len() {
                        let rest = self.spawn(next.start + end as u64, next.data.slice(end..));
                        self.inflight.push_front(rest);
                    }
                    let mut merged = BytesMut::with_capacity(front.data.len() + end);
                    merged.extend_from_slice(&front.data);
                    merged.extend_from_slice(&next.data[..end]);
                    let job = self.spawn(front.start, merged.freeze());
                    self.inflight.push_front(job);
                } else if self.eof && self.tail.is_empty() {
                    return Err(Stop::Failed(err));
                } else {
                    self.rewind(front.start, vec![front.data]);
                    self.resume = resume;
                }
                Ok(Settled::Continue)
            }
        }
    }

    /// Puts `pieces` (starting at `start`) and every segment still in flight back before the
    /// tail, in order.
    fn rewind(&mut self, start: u64, mut pieces: Vec<Bytes>) {
        pieces.extend(self.inflight.drain(..).map(|job| job.data));
        let total: usize = pieces.iter().map(Bytes::len).sum::<usize>() + self.tail.len();
        let mut tail = BytesMut::with_capacity(total);
        for piece in &pieces {
            tail.extend_from_slice(piece);
        }
        tail.extend_from_slice(&self.tail);
        self.tail = tail;
        self.tail_start = start;
        self.resume = 0;
    }

    fn dispatch(&mut self, cut: usize) {
        let data = self.tail.split_to(cut).freeze();
        let start = self.tail_start;
        self.tail_start += cut as u64;
        self.resume = 0;
        let job = self.spawn(start, data);
        self.inflight.push_back(job);
    }

    fn spawn(&self, start: u64, data: Bytes) -> Job {
        let (sender, result) = sync_channel(1);
        let segment = data.clone();
        let output_cap = self.limits.output_cap;
        let (buffers, codecs) = (self.buffers.clone(), self.codecs.clone());
        self.pool.spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                decode_segment::<C>(&segment, start, output_cap, &buffers, &codecs)
            }))
            .unwrap_or_else(|_| {
                SegmentOutcome::Failed(RestoreError::failed(format!(
                    "the decoder failed unexpectedly on the segment at byte {start}"
                )))
            });
            let _ = sender.send(outcome);
        });
        Job {
            start,
            data,
            result,
        }
    }

    fn read_block(&mut self) -> Result<(), Stop> {
        let len = self.tail.len();
        self.tail.resize(len + self.limits.block, 0);
        loop {
            match self.source.read(&mut self.tail[len..]) {
                Ok(n) => {
                    self.tail.truncate(len + n);
                    self.eof = n == 0;
                    return Ok(());
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    self.tail.truncate(len);
                    let offset = self.tail_start + len as u64;
                    return Err(Stop::Failed(read_error(err, offset)));
                }
            }
        }
    }

    /// Decodes everything from the tail on, on this thread.
    fn run_streaming(&mut self) -> Result<(), Stop> {
        tracing::debug!(
            offset = self.tail_start,
            "decoding the rest of the stream on one thread"
        );
        let pending = std::mem::take(&mut self.tail).freeze();
        let source = std::mem::replace(&mut self.source, Box::new(io::empty()));
        let reader = BufReader::with_capacity(self.limits.block, pending.reader().chain(source));
        let mut input = Counted::new(reader, self.tail_start);

        let mut output = StreamOutput {
            chunk: self.buffers.take(CHUNK + STEP),
            out: &self.out,
            buffers: &self.buffers,
        };
        let result = decode_members(&mut C::default(), &mut input, &mut output);

        match result {
            Ok(()) => {
                if !output.chunk.is_empty() {
                    output.send().map_err(|_| Stop::ConsumerGone)?;
                }
                Ok(())
            }
            Err(DecodeError::Truncated(err) | DecodeError::Invalid(err)) => Err(Stop::Failed(err)),
            Err(DecodeError::ConsumerGone) => Err(Stop::ConsumerGone),
            Err(DecodeError::TooLarge) => Err(Stop::Failed(RestoreError::failed(
                "streaming decoder refused its output",
            ))),
        }
    }
}

fn lost_worker() -> Stop {
    Stop::Failed(RestoreError::failed(
        "a decoding worker stopped without a result",
    ))
}

/// Sends a plain file's bytes through unchanged, in blocks.
pub(crate) fn pass_through(
    mut source: Box<dyn Read + Send>,
    out: SyncSender<Message>,
    buffers: Buffers,
) {
    let mut offset = 0u64;
    loop {
        let mut block = buffers.take(BLOCK);
        block.resize(BLOCK, 0);
        let n = match source.read(&mut block) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                let _ = out.send(Message::Failed(io::Error::other(read_error(err, offset))));
                return;
            }
        };
        if n == 0 {
            let _ = out.send(Message::End);
            return;
        }
        block.truncate(n);
        offset += n as u64;
        if out.send(Message::Data(block)).is_err() {
            return;
        }
    }
}
