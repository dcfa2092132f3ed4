//! Checking a backup without a database: its checksum, and that it decodes and splits cleanly.
//!
//! This is the dry run of a restore's first half: the same reader, decoder and lexer, with the
//! items counted instead of loaded. It finds a truncated or corrupt file, a checksum mismatch
//! or a dump that ends inside a COPY block before anyone depends on the backup.

use std::fmt;
use std::fs::File;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::checksum::HashingReader;
use crate::codec::{self, Format};
use crate::dump::{DumpLexer, Item};
use crate::error::{RestoreError, Result};
use crate::job::CountingReader;

/// What checking a backup found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The backup's name.
    pub name: String,
    /// `plain`, `gzip` or `zstd`.
    pub format: String,
    /// Stored size in bytes.
    pub size: u64,
    /// `sha256:<hex>` of the stored bytes (of what was read, when reading failed).
    pub checksum: Option<String>,
    /// The recorded checksum, if any.
    pub recorded: Option<String>,
    /// Whether the two agree; `None` when nothing is recorded.
    pub checksum_matches: Option<bool>,
    /// Decoded bytes of SQL.
    pub decoded_bytes: u64,
    /// Statements outside COPY blocks.
    pub statements: u64,
    /// COPY blocks.
    pub copy_blocks: u64,
    /// Rows in all COPY blocks.
    pub rows: u64,
    /// Meta-commands (`\restrict`, `\connect` …).
    pub meta_commands: u64,
    /// What is wrong with the file, if anything besides the checksum.
    pub problem: Option<String>,
}

impl VerifyReport {
    /// True when the file reads cleanly and matches its recorded checksum (if any).
    pub fn ok(&self) -> bool {
        self.problem.is_none() && self.checksum_matches != Some(false)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({}, {} bytes)", self.name, self.format, self.size)?;
        writeln!(f, "  checksum: {}", self.checksum.as_deref().unwrap_or("-"))?;
        let verdict = match self.checksum_matches {
            Some(true) => "matches",
            Some(false) => "DOES NOT MATCH",
            None => "none recorded",
        };
        writeln!(
            f,
            "  recorded: {} ({verdict})",
            self.recorded.as_deref().unwrap_or("-")
        )?;
        writeln!(
            f,
            "  content:  {} bytes of SQL, {} statements, {} COPY blocks, {} rows",
            self.decoded_bytes, self.statements, self.copy_blocks, self.rows
        )?;
        match &self.problem {
            Some(problem) => write!(f, "  problem:  {problem}"),
            None if self.ok() => write!(f, "  ok"),
            None => write!(f, "  checksum mismatch"),
        }
    }
}

/// How long decoding a backup took, without hashing or splitting it.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeReport {
    /// The backup's name.
    pub name: String,
    /// Stored size in bytes.
    pub size: u64,
    /// Decoded size in bytes.
    pub decoded_bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Threads of the decode pool.
    pub threads: usize,
}

/// Decodes the backup `name` to its end and measures it: the decoder's throughput alone.
pub(crate) fn decode_only(
    catalog: &Catalog,
    name: &str,
    pool: Arc<rayon::ThreadPool>,
) -> Result<DecodeReport> {
    let path = catalog.resolve(name)?;
    let size = catalog.backup(name)?.size;
    let threads = pool.current_num_threads();
    let clock = std::time::Instant::now();
    let mut decoded = codec::decode_file(&path, pool)?;
    // The decoded bytes are taken where the decoder put them: the consumer's copy is not the
    // decoder's work.
    let mut decoded_bytes = 0u64;
    loop {
        let available = match decoded.fill_buf() {
            Ok(bytes) => bytes.len(),
            Err(err) => {
                return Err(
                    match err
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<RestoreError>())
                    {
                        Some(restore) => restore.clone().context(name),
                        None => RestoreError::failed(format!("{name}: {err}")),
                    },
                )
            }
        };
        if available == 0 {
            break;
        }
        decoded.consume(available);
        decoded_bytes += available as u64;
    }
    let seconds = clock.elapsed().as_secs_f64();
    Ok(DecodeReport {
        name: name.to_owned(),
        size,
        decoded_bytes,
        seconds,
        threads,
    })
}

/// Reads the whole backup `name` and reports what it holds.
pub(crate) fn verify(
    catalog: &Catalog,
    name: &str,
    pool: Arc<rayon::ThreadPool>,
) -> Result<VerifyReport> {
    let path = catalog.resolve(name)?;
    let backup = catalog.backup(name)?;
    let recorded = catalog.recorded_checksum(name)?;
    let format = codec::sniff_file(&path)?;
    let file = File::open(&path)
        .map_err(|err| RestoreError::failed(format!("cannot open {name}: {err}")))?;
    let hashing = HashingReader::new(
        file,
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let slot = hashing.checksum_slot();
    let decoded = codec::decoded_file(hashing, format, pool)?;

    let mut report = VerifyReport {
        name: name.to_owned(),
        format: match format {
            Format::Plain => "plain",
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
        }
        .to_owned(),
        size: backup.size,
        checksum: None,
        recorded: recorded.as_ref().map(ToString::to_string),
        checksum_matches: None,
        decoded_bytes: 0,
        statements: 0,
        copy_blocks: 0,
        rows: 0,
        meta_commands: 0,
        problem: None,
    };
    let decoded_bytes = AtomicU64::new(0);
    let counting = CountingReader {
        inner: decoded,
        count: &decoded_bytes,
    };
    for item in DumpLexer::new(counting) {
        match item {
            Ok(Item::Statement(_)) => report.statements += 1,
            Ok(Item::CopyStart(_)) => report.copy_blocks += 1,
            Ok(Item::CopyData(_)) => {}
            Ok(Item::CopyEnd { rows, .. }) => report.rows += rows,
            Ok(Item::Meta(_)) => report.meta_commands += 1,
            Err(err) => {
                report.problem = Some(err.to_string());
                break;
            }
        }
    }
    report.decoded_bytes = decoded_bytes.load(Ordering::Relaxed);
    if let Some(digest) = slot.get() {
        report.checksum_matches = recorded.as_ref().map(|recorded| *recorded == digest);
        report.checksum = Some(digest.to_string());
    } else if report.problem.is_none() {
        report.problem = Some("the file was not read to its end".into());
    }
    Ok(report)
}
