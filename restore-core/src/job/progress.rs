//! What a running restore has done so far, shared by its steps.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use super::status::{Operation, RestoreSummary, StatementError};

/// The most failures kept under `on_error: continue`; more are counted only.
const MAX_KEPT_ERRORS: usize = 1000;

/// Counters and lists written by the reader, the lexer and the loader, read for status.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Stored bytes read so far (the reader adds to it).
    pub(crate) bytes_read: Arc<AtomicU64>,
    /// Decoded bytes handed to the lexer.
    pub(crate) decoded_bytes: AtomicU64,
    /// Decoded bytes of the items the loader has passed on to the server.
    loaded_bytes: AtomicU64,
    operation: AtomicU8,
    tables: AtomicU64,
    rows: AtomicU64,
    binary_rows: AtomicU64,
    statements: AtomicU64,
    skipped: AtomicU64,
    errors_total: AtomicU64,
    warnings: Mutex<Vec<String>>,
    errors: Mutex<Vec<StatementError>>,
}

impl Progress {
    pub(crate) fn set_operation(&self, operation: Operation) {
        let previous = self.operation.swap(operation.index(), Ordering::Relaxed);
        if previous != operation.index() {
            tracing::info!(operation = operation.as_str(), "restore phase");
        }
    }

    pub(crate) fn operation(&self) -> Option<Operation> {
        Operation::from_index(self.operation.load(Ordering::Relaxed))
    }

    pub(crate) fn count_loaded(&self, bytes: usize) {
        self.loaded_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The share of the backup done, 0–1: the stored bytes read, discounted by the decoded
    /// bytes still queued between the reader and the server. Reading runs ahead of loading by
    /// the queues' size, which is all of a small backup.
    pub(crate) fn fraction_done(&self, size: u64) -> f64 {
        if size == 0 {
            return 0.0;
        }
        let read = self.bytes_read.load(Ordering::Relaxed) as f64 / size as f64;
        let decoded = self.decoded_bytes.load(Ordering::Relaxed);
        let loaded = self.loaded_bytes.load(Ordering::Relaxed);
        let passed_on = if decoded == 0 {
            0.0
        } else {
            loaded as f64 / decoded as f64
        };
        (read.min(1.0) * passed_on.min(1.0)).max(0.0)
    }

    pub(crate) fn count_statement(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_copy(&self, rows: u64) {
        self.tables.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
    }

    /// Rows of a checked COPY block that the server took in the binary format.
    pub(crate) fn count_binary_rows(&self, rows: u64) {
        self.binary_rows.fetch_add(rows, Ordering::Relaxed);
    }

    pub(crate) fn warn(&self, warning: String) {
        tracing::warn!("{warning}");
        if let Ok(mut warnings) = self.warnings.lock() {
            warnings.push(warning);
        }
    }

    pub(crate) fn record_error(&self, error: StatementError) {
        self.errors_total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut errors) = self.errors.lock() {
            if errors.len() < MAX_KEPT_ERRORS {
                errors.push(error);
            }
        }
    }

    /// Failures recorded so far under `continue`, those past the kept list included.
    pub(crate) fn error_count(&self) -> u64 {
        self.errors_total.load(Ordering::Relaxed)
    }

    pub(crate) fn summary(&self) -> RestoreSummary {
        RestoreSummary {
            tables: self.tables.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            binary_rows: self.binary_rows.load(Ordering::Relaxed),
            statements: self.statements.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            decoded_bytes: self.decoded_bytes.load(Ordering::Relaxed),
            checksum: None,
        }
    }

    pub(crate) fn warnings(&self) -> Vec<String> {
        self.warnings.lock().map(|w| w.clone()).unwrap_or_default()
    }

    pub(crate) fn errors(&self) -> Vec<StatementError> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }
}
