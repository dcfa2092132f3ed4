//! The public shape of a restore: its options, states, operations and status object.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, RestoreError, Result};

/// What to do when a statement or COPY block fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Fail the restore; the target is left untouched (the default).
    #[default]
    Stop,
    /// Skip the failing statement or COPY block, report it, and finish, as psql does.
    Continue,
}

impl std::str::FromStr for OnError {
    type Err = RestoreError;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "stop" => Ok(OnError::Stop),
            "continue" => Ok(OnError::Continue),
            other => Err(RestoreError::invalid(format!(
                "on_error must be \"stop\" or \"continue\", not {other:?}"
            ))),
        }
    }
}

/// Options of one restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreOptions {
    /// Check the backup's sha256 against its recorded checksum while streaming.
    pub verify: bool,
    /// Replace an existing target database (swapped in only after the restore succeeded).
    pub force: bool,
    /// Worker connections loading data and building indexes concurrently (1–64).
    pub parallel_workers: usize,
    /// Fail the restore when it runs longer than this.
    pub timeout_seconds: Option<u64>,
    /// What a failing statement does.
    pub on_error: OnError,
    /// Skip `OWNER TO` and session authorization, as `pg_restore -O`.
    pub no_owner: bool,
    /// Skip `GRANT` and `REVOKE`, as `pg_restore -x`.
    pub no_privileges: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            verify: false,
            force: false,
            parallel_workers: 2,
            timeout_seconds: None,
            on_error: OnError::Stop,
            no_owner: false,
            no_privileges: false,
        }
    }
}

impl RestoreOptions {
    /// Checks the values are in range.
    pub fn validate(&self) -> Result<()> {
        if !(1..=64).contains(&self.parallel_workers) {
            return Err(RestoreError::invalid(format!(
                "parallel_workers must be between 1 and 64, not {}",
                self.parallel_workers
            ))
            .with_detail("parallel_workers", self.parallel_workers));
        }
        if self.timeout_seconds == Some(0) {
            return Err(RestoreError::invalid("timeout_seconds must be at least 1"));
        }
        Ok(())
    }
}

/// A restore to run: which backup, into which database, how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRequest {
    /// The backup's file name in the backup directory.
    pub backup_name: String,
    /// The database to create (or replace, with `force`).
    pub target_database: String,
    /// How to restore.
    #[serde(default)]
    pub options: RestoreOptions,
}

/// Where a restore is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreState {
    /// Accepted, not yet started.
    Pending,
    /// Running.
    InProgress,
    /// Finished; the target database holds the restored copy.
    Completed,
    /// Stopped by an error or its timeout; the target is untouched.
    Failed,
    /// Cancelled; the target is untouched.
    Cancelled,
}

impl RestoreState {
    /// True once the restore can change no more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RestoreState::Completed | RestoreState::Failed | RestoreState::Cancelled
        )
    }

    /// The state as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreState::Pending => "pending",
            RestoreState::InProgress => "in_progress",
            RestoreState::Completed => "completed",
            RestoreState::Failed => "failed",
            RestoreState::Cancelled => "cancelled",
        }
    }
}

/// What a running restore is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Comparing the backup's sha256 with its recorded checksum.
    VerifyingChecksum,
    /// Creating the staging database.
    CreatingDatabase,
    /// Running schema statements.
    RestoringSchema,
    /// Loading table data.
    RestoringData,
    /// Building indexes and constraints.
    BuildingIndexes,
    /// Checking and swapping the staging database into place.
    Finalizing,
}

impl Operation {
    /// The operation as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::VerifyingChecksum => "verifying_checksum",
            Operation::CreatingDatabase => "creating_database",
            Operation::RestoringSchema => "restoring_schema",
            Operation::RestoringData => "restoring_data",
            Operation::BuildingIndexes => "building_indexes",
            Operation::Finalizing => "finalizing",
        }
    }

    pub(crate) fn from_index(index: u8) -> Option<Operation> {
        const ALL: [Operation; 6] = [
            Operation::VerifyingChecksum,
            Operation::CreatingDatabase,
            Operation::RestoringSchema,
            Operation::RestoringData,
            Operation::BuildingIndexes,
            Operation::Finalizing,
        ];
        ALL.get(usize::from(index).checked_sub(1)?).copied()
    }

    pub(crate) fn index(self) -> u8 {
        self as u8 + 1
    }
}

/// The outcome of checking the backup's checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStatus {
    /// Not checked yet.
    Pending,
    /// The sha256 of the stored bytes equals the recorded checksum.
    Verified,
    /// The sha256 differs from the recorded checksum.
    Failed,
    /// `verify` was not asked for.
    Skipped,
}

impl VerificationStatus {
    /// The status as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationStatus::Pending => "pending",
            VerificationStatus::Verified => "verified",
            VerificationStatus::Failed => "failed",
            VerificationStatus::Skipped => "skipped",
        }
    }
}

/// A statement or COPY block that failed in a restore run with `on_error: continue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementError {
    /// 1-based line in the dump.
    pub line: u64,
    /// The object, from the dump's header: `TABLE public.film`.
    pub object: Option<String>,
    /// The server's message.
    pub message: String,
    /// The SQLSTATE, when the server gave one.
    pub sqlstate: Option<String>,
}

/// Counts of what a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSummary {
    /// COPY blocks loaded.
    pub tables: u64,
    /// Rows loaded by COPY.
    pub rows: u64,
    /// Of those, the rows sent to the server in PostgreSQL's binary COPY format, which it takes
    /// in at less cost; the others went as the dump wrote them. Tables with a column of a type
    /// outside the few converted exactly (numbers, dates and times, text, JSON, uuid, bytea,
    /// enums and domains over them) go as text.
    pub binary_rows: u64,
    /// Statements run.
    pub statements: u64,
    /// Statements left out (ownership, privileges, database-level statements).
    pub skipped: u64,
    /// Decoded bytes of SQL read.
    pub decoded_bytes: u64,
    /// `sha256:<hex>` of the stored bytes, once read to the end.
    pub checksum: Option<String>,
}

/// The status of a restore: the documented status object plus what the engine knows.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreStatus {
    /// `rst_…`.
    pub restore_id: String,
    /// Where the restore is.
    pub status: RestoreState,
    /// The backup restored.
    pub backup_name: String,
    /// The database restored into.
    pub target_database: String,
    /// When the restore was accepted.
    pub started_at: DateTime<Utc>,
    /// When it is expected to end, from the rate so far.
    pub estimated_completion: Option<DateTime<Utc>>,
    /// When it completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// When it was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// When it failed.
    pub failed_at: Option<DateTime<Utc>>,
    /// Size of the backup as stored.
    pub size_bytes: u64,
    /// Stored bytes read so far.
    pub bytes_read: u64,
    /// Run time, once finished (or so far, while running).
    pub duration_seconds: f64,
    /// The checksum's outcome.
    pub verification_status: VerificationStatus,
    /// Share of the stored bytes read, 0–100; 100 only on success.
    pub progress: u8,
    /// What the restore is doing now.
    pub current_operation: Option<Operation>,
    /// Options it runs with.
    pub options: RestoreOptions,
    /// Counts so far.
    pub summary: RestoreSummary,
    /// Things worth knowing that did not stop the restore.
    pub warnings: Vec<String>,
    /// Failures skipped under `on_error: continue`.
    pub errors: Vec<StatementError>,
    /// Why it failed or was cancelled.
    pub error: Option<RestoreError>,
}

impl RestoreStatus {
    /// The `restore_update` event for this status.
    pub fn update(&self) -> RestoreUpdate {
        RestoreUpdate {
            kind: "restore_update",
            restore_id: self.restore_id.clone(),
            status: self.status,
            progress: self.progress,
            current_operation: self.current_operation,
            timestamp: Utc::now(),
        }
    }

    /// The error code when the restore failed.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.error.as_ref().map(RestoreError::code)
    }
}

/// One status update, as pushed to subscribers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreUpdate {
    /// Always `restore_update`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `rst_…`.
    pub restore_id: String,
    /// Where the restore is.
    pub status: RestoreState,
    /// 0–100.
    pub progress: u8,
    /// What it is doing.
    pub current_operation: Option<Operation>,
    /// When this update was made.
    pub timestamp: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_operations_use_the_documented_names() {
        let json = serde_json::to_string(&RestoreState::InProgress).unwrap();
        assert_eq!(json, "\"in_progress\"");
        assert_eq!(RestoreState::InProgress.as_str(), "in_progress");
        for index in 1..=6 {
            let op = Operation::from_index(index).unwrap();
            assert_eq!(op.index(), index);
            assert_eq!(serde_json::to_value(op).unwrap(), op.as_str());
        }
        assert_eq!(Operation::from_index(0), None);
    }

    #[test]
    fn options_out_of_range_are_invalid_requests() {
        let options = RestoreOptions {
            parallel_workers: 0,
            ..Default::default()
        };
        assert_eq!(
            options.validate().unwrap_err().code(),
            ErrorCode::InvalidRequest
        );
        let options = RestoreOptions {
            timeout_seconds: Some(0),
            ..Default::default()
        };
        assert!(options.validate().is_err());
        assert!(RestoreOptions::default().validate().is_ok());
    }

    #[test]
    fn options_deserialise_with_defaults_for_missing_keys() {
        let options: RestoreOptions =
            serde_json::from_str(r#"{"verify": true, "on_error": "continue"}"#).unwrap();
        assert!(options.verify);
        assert_eq!(options.on_error, OnError::Continue);
        assert_eq!(options.parallel_workers, 2);
    }
}
