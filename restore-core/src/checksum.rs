//! Streaming sha256 of the stored bytes and its `sha256:<hex>` form.
//!
//! A restore proves it loads the file that was sealed by hashing the bytes exactly as they are
//! stored (compressed, if the backup is compressed) while they are read for decoding. The
//! [`HashingReader`] sits between the backup file and the decoder: it hashes, counts the bytes
//! for progress, and stops the read when the restore is cancelled. [`Checksum`] is the digest in
//! the form the API and the `NAME.sha256` sidecars use.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use crate::error::{RestoreError, Result};

/// A sha256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checksum([u8; 32]);

impl Checksum {
    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Checksum(bytes)
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits, without the `sha256:` prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses `sha256:<64 hex digits>` or the bare 64 hex digits (either case).
    pub fn parse(text: &str) -> Result<Checksum> {
        let trimmed = text.trim();
        let digits = trimmed.strip_prefix("sha256:").unwrap_or(trimmed);
        let mut bytes = [0u8; 32];
        if digits.len() != 64 || hex::decode_to_slice(digits, &mut bytes).is_err() {
            return Err(RestoreError::invalid(format!(
                "not a sha256 checksum (expected sha256: and 64 hex digits): {trimmed:?}"
            ))
            .with_detail("checksum", trimmed));
        }
        Ok(Checksum(bytes))
    }

    /// The sha256 of a file's contents, read in streaming fashion.
    pub fn of_file(path: &Path) -> Result<Checksum> {
        let mut file = File::open(path).map_err(|err| {
            RestoreError::failed(format!("cannot open {} to hash it: {err}", path.display()))
                .with_detail("path", path.display().to_string())
        })?;
        let mut hasher = Sha256Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(RestoreError::failed(format!(
                        "cannot read {} to hash it: {err}",
                        path.display()
                    ))
                    .with_detail("path", path.display().to_string()))
                }
            };
            hasher.update(&buf[..n]);
        }
        Ok(hasher.finish())
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
}

impl FromStr for Checksum {
    type Err = RestoreError;

    fn from_str(text: &str) -> Result<Checksum> {
        Checksum::parse(text)
    }
}

/// An incremental sha256.
#[derive(Clone, Default)]
pub struct Sha256Hasher {
    inner: Sha256,
}

impl Sha256Hasher {
    /// A hasher that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
    }

    /// The digest of every byte fed so far.
    pub fn finish(self) -> Checksum {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&self.inner.finalize());
        Checksum(bytes)
    }
}

/// Where a [`HashingReader`] leaves its digest once its source is exhausted, for the caller
/// that handed the reader away (to the decoder's thread) to collect it afterwards.
#[derive(Clone, Default)]
pub struct ChecksumSlot(Arc<OnceLock<Checksum>>);

impl ChecksumSlot {
    /// The digest of the whole source, or `None` while the source has not been read to its end.
    pub fn get(&self) -> Option<Checksum> {
        self.0.get().copied()
    }
}

/// Returns whether an I/O error is the one a [`HashingReader`] returns on cancellation.
pub fn is_cancelled(err: &io::Error) -> bool {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<RestoreError>())
        .is_some_and(|inner| inner.details().get("cancelled").is_some())
}

/// A reader that hashes and counts every byte read through it and can be cancelled.
///
/// Cancellation surfaces as an error of kind [`io::ErrorKind::Other`] wrapping a
/// [`RestoreError`] whose message is "cancelled" (see [`is_cancelled`]). It is deliberately not
/// [`io::ErrorKind::Interrupted`]: the standard library retries reads interrupted that way.
pub struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256Hasher>,
    bytes_read: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
    slot: ChecksumSlot,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`; every byte read is added to `bytes_read`, and reads fail once `cancel` is
    /// set.
    pub fn new(inner: R, bytes_read: Arc<AtomicU64>, cancel: Arc<AtomicBool>) -> Self {
        HashingReader {
            inner,
            hasher: Some(Sha256Hasher::new()),
            bytes_read,
            cancel,
            slot: ChecksumSlot::default(),
        }
    }

    /// A handle that receives the digest when the source reports its end.
    pub fn checksum_slot(&self) -> ChecksumSlot {
        self.slot.clone()
    }

    /// The digest of the bytes read so far (the whole source if it was read to its end).
    pub fn into_checksum(self) -> Checksum {
        match (self.slot.get(), self.hasher) {
            (Some(done), _) => done,
            (None, Some(hasher)) => hasher.finish(),
            (None, None) => Sha256Hasher::new().finish(),
        }
    }
}

impl<R> HashingReader<R> {
    /// Wraps `inner` to count bytes and honour cancellation without hashing them: for reads
    /// whose digest nobody asks for (the slot stays empty).
    pub(crate) fn without_digest(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: None,
            bytes_read: Arc::default(),
            cancel: Arc::default(),
            slot: ChecksumSlot::default(),
        }
    }

    /// The wrapped source.
    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The wrapped source, to reposition it after bytes were taken from it by other means.
    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Accounts for `bytes`, the next bytes of the source read by other means (at positions, by
    /// other threads): hashes and counts them, or fails if the read was cancelled.
    pub(crate) fn account(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.check_cancel()?;
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(bytes);
        }
        self.bytes_read
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Records that the source was accounted for to its end.
    pub(crate) fn account_end(&mut self) {
        if let Some(hasher) = self.hasher.take() {
            let _ = self.slot.0.set(hasher.finish());
        }
    }

    fn check_cancel(&self) -> io::Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other(
                RestoreError::failed("cancelled").with_detail("cancelled", true),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check_cancel()?;
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.account_end();
            return Ok(0);
        }

        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(&buf[..n]);
        }
        self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn digest_of_abc_is_the_known_vector_in_prefixed_form() {
        let mut hasher = Sha256Hasher::new();
        hasher.update(b"a");
        hasher.update(b"bc");
        assert_eq!(hasher.finish().to_string(), format!("sha256:{ABC}"));
    }

    #[test]
    fn parse_accepts_prefixed_and_bare_hex_and_round_trips() {
        let prefixed = Checksum::parse(&format!("sha256:{ABC}")).unwrap();
        let bare = Checksum::parse(&ABC.to_uppercase()).unwrap();
        assert_eq!(prefixed, bare);
        assert_eq!(prefixed.to_hex(), ABC);
    }

    #[test]
    fn parse_refuses_wrong_length_and_non_hex() {
        for bad in [
            "",
            "sha256:",
            "sha256:abc",
            &ABC[1..],
            &format!("{}zz", &ABC[2..]),
        ] {
            let err = Checksum::parse(bad).unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::InvalidRequest, "{bad:?}");
        }
    }

    #[test]
    fn of_file_hashes_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let mut hasher = Sha256Hasher::new();
        hasher.update(&content);
        assert_eq!(Checksum::of_file(&path).unwrap(), hasher.finish());
    }

    #[test]
    fn hashing_reader_hashes_counts_and_fills_the_slot_at_end() {
        let bytes_read = Arc::new(AtomicU64::new(0));
        let mut reader = HashingReader::new(
            &b"abc"[..],
            bytes_read.clone(),
            Arc::new(AtomicBool::new(false)),
        );
        let slot = reader.checksum_slot();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc");
        assert_eq!(bytes_read.load(Ordering::Relaxed), 3);
        assert_eq!(slot.get().unwrap().to_hex(), ABC);
        assert_eq!(reader.into_checksum().to_hex(), ABC);
    }

    #[test]
    fn hashing_reader_slot_stays_empty_before_the_end() {
        let mut reader = HashingReader::new(
            &b"abc"[..],
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let slot = reader.checksum_slot();
        let mut two = [0u8; 2];
        reader.read_exact(&mut two).unwrap();
        assert!(slot.get().is_none());
    }

    #[test]
    fn hashing_reader_fails_once_cancelled() {
        let cancel = Arc::new(AtomicBool::new(false));
        let mut reader = HashingReader::new(&b"abcdef"[..], Arc::default(), cancel.clone());
        let mut one = [0u8; 1];
        reader.read_exact(&mut one).unwrap();
        cancel.store(true, Ordering::Relaxed);
        let err = reader.read(&mut one).unwrap_err();
        assert!(is_cancelled(&err));
        assert_ne!(err.kind(), io::ErrorKind::Interrupted);
    }
}
