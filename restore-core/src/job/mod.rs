//! A restore as a job: its state machine, status, progress, cancellation and updates.
//!
//! A job is created in `pending`, runs in `in_progress` and ends `completed`, `failed` or
//! `cancelled`; once final it never changes. Its status is computed from the shared
//! [`Progress`] counters and published on a watch channel, so waiting, polling and the event
//! stream all see the same values. Progress is the share of the stored bytes read; it only
//! grows, and reaches 100 only on success.

mod progress;
mod run;
mod status;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify};

use crate::error::RestoreError;
pub(crate) use progress::Progress;
pub(crate) use run::{run, CountingReader, RunContext};
pub use status::{
    OnError, Operation, RestoreOptions, RestoreRequest, RestoreState, RestoreStatus,
    RestoreSummary, RestoreUpdate, StatementError, VerificationStatus,
};

/// Assumed rate for the first estimate, before the restore has measured its own.
const FIRST_GUESS_BYTES_PER_SECOND: f64 = 20e6;

/// One restore.
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) request: RestoreRequest,
    pub(crate) size_bytes: u64,
    pub(crate) started_at: DateTime<Utc>,
    started: Instant,
    pub(crate) progress: Arc<Progress>,
    pub(crate) cancel_flag: Arc<AtomicBool>,
    pub(crate) cancelled: Notify,
    state: Mutex<JobState>,
    updates: watch::Sender<RestoreStatus>,
}

#[derive(Debug, Clone)]
struct JobState {
    status: RestoreState,
    ended: Option<(DateTime<Utc>, Duration)>,
    error: Option<RestoreError>,
    verification: VerificationStatus,
    checksum: Option<String>,
    shown_progress: u8,
    warnings: Vec<String>,
}

impl Job {
    pub(crate) fn new(id: String, request: RestoreRequest, size_bytes: u64) -> Arc<Job> {
        let verification = if request.options.verify {
            VerificationStatus::Pending
        } else {
            VerificationStatus::Skipped
        };
        let state = JobState {
            status: RestoreState::Pending,
            ended: None,
            error: None,
            verification,
            checksum: None,
            shown_progress: 0,
            warnings: Vec::new(),
        };
        let (updates, _) = watch::channel(placeholder_status());
        let job = Arc::new(Job {
            id,
            request,
            size_bytes,
            started_at: Utc::now(),
            started: Instant::now(),
            progress: Arc::new(Progress::default()),
            cancel_flag: Arc::new(AtomicBool::new(false)),
            cancelled: Notify::new(),
            state: Mutex::new(state),
            updates,
        });
        job.publish();
        job
    }

    fn state(&self) -> std::sync::MutexGuard<'_, JobState> {
        // A panic while holding the lock cannot leave the plain fields inconsistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The status now.
    pub(crate) fn status(&self) -> RestoreStatus {
        let mut state = self.state();
        let read = self.progress.bytes_read.load(Ordering::Relaxed);
        let fraction = self.progress.fraction_done(self.size_bytes);
        let progress = match state.status {
            RestoreState::Completed => 100,
            RestoreState::Pending => 0,
            _ => ((fraction * 100.0) as u8).min(99),
        };
        state.shown_progress = state.shown_progress.max(progress);

        let elapsed = state
            .ended
            .map_or_else(|| self.started.elapsed(), |(_, took)| took);
        let estimated_completion = match state.status {
            RestoreState::Pending | RestoreState::InProgress => {
                let total = if fraction >= 0.02 {
                    elapsed.as_secs_f64() / fraction.min(1.0)
                } else {
                    self.size_bytes as f64 / FIRST_GUESS_BYTES_PER_SECOND
                };
                let total = chrono::Duration::milliseconds((total * 1000.0) as i64);
                Some(self.started_at + total)
            }
            _ => state.ended.map(|(at, _)| at),
        };
        let ended_at = |wanted: RestoreState| {
            (state.status == wanted)
                .then(|| state.ended.map(|(at, _)| at))
                .flatten()
        };
        let mut summary = self.progress.summary();
        summary.checksum = state.checksum.clone();
        let mut warnings = state.warnings.clone();
        warnings.extend(self.progress.warnings());

        RestoreStatus {
            restore_id: self.id.clone(),
            status: state.status,
            backup_name: self.request.backup_name.clone(),
            target_database: self.request.target_database.clone(),
            started_at: self.started_at,
            estimated_completion,
            completed_at: ended_at(RestoreState::Completed),
            cancelled_at: ended_at(RestoreState::Cancelled),
            failed_at: ended_at(RestoreState::Failed),
            size_bytes: self.size_bytes,
            bytes_read: read,
            duration_seconds: elapsed.as_secs_f64(),
            verification_status: state.verification,
            progress: state.shown_progress,
            current_operation: if state.status.is_final() {
                None
            } else {
                self.progress.operation()
            },
            options: self.request.options.clone(),
            summary,
            warnings,
            errors: self.progress.errors(),
            error: state.error.clone(),
        }
    }

    /// Sends the current status to every watcher.
    pub(crate) fn publish(&self) {
        let status = self.status();
        self.updates.send_replace(status);
    }

    /// A receiver of every status change.
    pub(crate) fn watch(&self) -> watch::Receiver<RestoreStatus> {
        self.updates.subscribe()
    }

    pub(crate) fn is_final(&self) -> bool {
        self.state().status.is_final()
    }

    pub(crate) fn start(&self) {
        self.state().status = RestoreState::InProgress;
        self.publish();
    }

    pub(crate) fn warn(&self, warning: String) {
        self.state().warnings.push(warning);
    }

    pub(crate) fn set_verification(&self, verification: VerificationStatus) {
        self.state().verification = verification;
    }

    pub(crate) fn set_checksum(&self, checksum: String) {
        self.state().checksum = Some(checksum);
    }

    /// Moves to a final state; a job already final stays as it was.
    pub(crate) fn finish(&self, outcome: RestoreState, error: Option<RestoreError>) {
        {
            let mut state = self.state();
            if state.status.is_final() {
                return;
            }
            state.status = outcome;
            state.ended = Some((Utc::now(), self.started.elapsed()));
            state.error = error;
        }
        match outcome {
            RestoreState::Completed => tracing::info!(restore_id = %self.id, "restore completed"),
            other => {
                tracing::info!(restore_id = %self.id, status = other.as_str(), "restore ended")
            }
        }
        self.publish();
    }

    /// Asks the job to stop. Returns false when it had already ended.
    pub(crate) fn cancel(&self) -> bool {
        if self.is_final() {
            return false;
        }
        self.cancel_flag.store(true, Ordering::Release);
        self.cancelled.notify_waiters();
        self.cancelled.notify_one();
        true
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.cancel_flag.load(Ordering::Acquire)
    }
}

fn placeholder_status() -> RestoreStatus {
    RestoreStatus {
        restore_id: String::new(),
        status: RestoreState::Pending,
        backup_name: String::new(),
        target_database: String::new(),
        started_at: Utc::now(),
        estimated_completion: None,
        completed_at: None,
        cancelled_at: None,
        failed_at: None,
        size_bytes: 0,
        bytes_read: 0,
        duration_seconds: 0.0,
        verification_status: VerificationStatus::Skipped,
        progress: 0,
        current_operation: None,
        options: RestoreOptions::default(),
        summary: RestoreSummary::default(),
        warnings: Vec::new(),
        errors: Vec::new(),
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(size: u64) -> Arc<Job> {
        let request = RestoreRequest {
            backup_name: "b.sql".into(),
            target_database: "t".into(),
            options: RestoreOptions::default(),
        };
        Job::new("rst_test".into(), request, size)
    }

    #[test]
    fn progress_follows_bytes_read_never_falls_and_reaches_100_only_on_success() {
        let job = job(1000);
        job.start();
        job.progress.bytes_read.store(500, Ordering::Relaxed);
        job.progress.decoded_bytes.store(2000, Ordering::Relaxed);
        job.progress.count_loaded(2000);
        assert_eq!(job.status().progress, 50);
        job.progress.bytes_read.store(1000, Ordering::Relaxed);
        job.progress.decoded_bytes.store(4000, Ordering::Relaxed);
        assert_eq!(
            job.status().progress,
            50,
            "half of what was read is still queued"
        );
        job.progress.count_loaded(2000);
        assert_eq!(job.status().progress, 99);
        job.progress.bytes_read.store(10, Ordering::Relaxed);
        assert_eq!(job.status().progress, 99);
        job.finish(RestoreState::Completed, None);
        let status = job.status();
        assert_eq!(status.progress, 100);
        assert!(status.completed_at.is_some());
        assert_eq!(status.current_operation, None);
    }

    #[test]
    fn a_final_state_never_changes() {
        let job = job(10);
        job.start();
        assert!(job.cancel());
        job.finish(RestoreState::Cancelled, None);
        job.finish(RestoreState::Completed, None);
        let status = job.status();
        assert_eq!(status.status, RestoreState::Cancelled);
        assert!(status.cancelled_at.is_some());
        assert!(!job.cancel());
    }

    #[test]
    fn watchers_see_published_changes() {
        let job = job(10);
        let watcher = job.watch();
        job.start();
        assert_eq!(watcher.borrow().status, RestoreState::InProgress);
        assert_eq!(watcher.borrow().update().kind, "restore_update");
    }
}
