//! `sr_status` and `sr_update`: a restore's state as C reads it.

use std::ffi::{c_char, CString};
use std::ptr;

use chrono::{DateTime, SecondsFormat, Utc};
use restore_core::{Operation, RestoreState, RestoreStatus, RestoreUpdate, VerificationStatus};

use crate::error::{details_json, sr_result};
use crate::ffi::{c_string, take};
use crate::panic::boundary_or;

/// Where a restore is in its life.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sr_state {
    /// Accepted, not yet started.
    SR_STATE_PENDING = 0,
    /// Running.
    SR_STATE_IN_PROGRESS = 1,
    /// Finished; the target database holds the restored copy.
    SR_STATE_COMPLETED = 2,
    /// Stopped by an error or its timeout; the target is untouched.
    SR_STATE_FAILED = 3,
    /// Cancelled; the target is untouched.
    SR_STATE_CANCELLED = 4,
}

impl From<RestoreState> for sr_state {
    fn from(state: RestoreState) -> sr_state {
        match state {
            RestoreState::Pending => sr_state::SR_STATE_PENDING,
            RestoreState::InProgress => sr_state::SR_STATE_IN_PROGRESS,
            RestoreState::Completed => sr_state::SR_STATE_COMPLETED,
            RestoreState::Failed => sr_state::SR_STATE_FAILED,
            RestoreState::Cancelled => sr_state::SR_STATE_CANCELLED,
        }
    }
}

/// What a running restore is doing.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sr_operation {
    /// Nothing: not started, or ended.
    SR_OPERATION_NONE = 0,
    /// Comparing the backup's sha256 with its recorded checksum.
    SR_OPERATION_VERIFYING_CHECKSUM = 1,
    /// Creating the staging database.
    SR_OPERATION_CREATING_DATABASE = 2,
    /// Running schema statements.
    SR_OPERATION_RESTORING_SCHEMA = 3,
    /// Loading table data.
    SR_OPERATION_RESTORING_DATA = 4,
    /// Building indexes and constraints.
    SR_OPERATION_BUILDING_INDEXES = 5,
    /// Checking and swapping the staging database into place.
    SR_OPERATION_FINALIZING = 6,
}

impl From<Option<Operation>> for sr_operation {
    fn from(operation: Option<Operation>) -> sr_operation {
        match operation {
            None => sr_operation::SR_OPERATION_NONE,
            Some(Operation::VerifyingChecksum) => sr_operation::SR_OPERATION_VERIFYING_CHECKSUM,
            Some(Operation::CreatingDatabase) => sr_operation::SR_OPERATION_CREATING_DATABASE,
            Some(Operation::RestoringSchema) => sr_operation::SR_OPERATION_RESTORING_SCHEMA,
            Some(Operation::RestoringData) => sr_operation::SR_OPERATION_RESTORING_DATA,
            Some(Operation::BuildingIndexes) => sr_operation::SR_OPERATION_BUILDING_INDEXES,
            Some(Operation::Finalizing) => sr_operation::SR_OPERATION_FINALIZING,
        }
    }
}

/// The outcome of checking a backup's checksum.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sr_verification {
    /// Not checked yet.
    SR_VERIFICATION_PENDING = 0,
    /// The sha256 of the stored bytes equals the recorded checksum.
    SR_VERIFICATION_VERIFIED = 1,
    /// The sha256 differs from the recorded checksum.
    SR_VERIFICATION_FAILED = 2,
    /// Verification was not asked for.
    SR_VERIFICATION_SKIPPED = 3,
}

impl From<VerificationStatus> for sr_verification {
    fn from(status: VerificationStatus) -> sr_verification {
        match status {
            VerificationStatus::Pending => sr_verification::SR_VERIFICATION_PENDING,
            VerificationStatus::Verified => sr_verification::SR_VERIFICATION_VERIFIED,
            VerificationStatus::Failed => sr_verification::SR_VERIFICATION_FAILED,
            VerificationStatus::Skipped => sr_verification::SR_VERIFICATION_SKIPPED,
        }
    }
}

/// A snapshot of a restore, from `sr_restore_status` or
/// `sr_restore_wait`; free it with `sr_status_free`. Read-only. Its
/// strings are UTF-8, NUL-terminated and live as long as the snapshot.
/// Times are RFC 3339 in UTC; NULL when they did not happen (yet).
#[repr(C)]
pub struct sr_status {
    /// `rst_...`.
    pub restore_id: *const c_char,
    /// Where the restore is.
    pub status: sr_state,
    /// The backup restored.
    pub backup_name: *const c_char,
    /// The database restored into.
    pub target_database: *const c_char,
    /// When the restore was accepted.
    pub started_at: *const c_char,
    /// When it is expected to end, from the rate so far, or NULL.
    pub estimated_completion: *const c_char,
    /// When it completed, or NULL.
    pub completed_at: *const c_char,
    /// When it was cancelled, or NULL.
    pub cancelled_at: *const c_char,
    /// When it failed, or NULL.
    pub failed_at: *const c_char,
    /// Size of the backup as stored.
    pub size_bytes: u64,
    /// Stored bytes read so far.
    pub bytes_read: u64,
    /// Run time, once ended (or so far, while running).
    pub duration_seconds: f64,
    /// The checksum's outcome.
    pub verification_status: sr_verification,
    /// Share of the stored bytes read, 0-100; 100 only on success.
    pub progress: u8,
    /// What the restore is doing now.
    pub current_operation: sr_operation,
    /// COPY blocks (tables) loaded.
    pub tables: u64,
    /// Rows loaded by COPY.
    pub rows: u64,
    /// Statements run.
    pub statements: u64,
    /// Statements left out (ownership, privileges, database-level).
    pub skipped: u64,
    /// `sha256:<hex>` of the stored bytes once read to the end, or NULL.
    pub checksum: *const c_char,
    /// Why the restore failed or was cancelled: one of the engine's
    /// codes, or `SR_OK` when there is no error.
    pub error_code: sr_result,
    /// The error's message, or NULL when there is no error.
    pub error_message: *const c_char,
    /// The error's details as a JSON object, or NULL.
    pub error_details: *const c_char,
    /// The `req_...` id of the error, or NULL.
    pub error_request_id: *const c_char,
}

/// An `sr_status` and the strings it points into. The public part comes first, so a pointer to
/// the whole is a pointer to the `sr_status` C sees.
#[repr(C)]
pub(crate) struct OwnedStatus {
    public: sr_status,
    _strings: Vec<CString>,
}

/// `at` as RFC 3339 in UTC, whole seconds, `Z` suffix.
pub(crate) fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl OwnedStatus {
    pub(crate) fn new(status: &RestoreStatus) -> Box<OwnedStatus> {
        let mut strings = Vec::new();
        let mut keep = |text: &str| {
            let text = c_string(text);
            let at = text.as_ptr();
            strings.push(text);
            at
        };
        let mut time =
            |at: &Option<DateTime<Utc>>| at.as_ref().map_or(ptr::null(), |at| keep(&rfc3339(at)));
        let estimated_completion = time(&status.estimated_completion);
        let completed_at = time(&status.completed_at);
        let cancelled_at = time(&status.cancelled_at);
        let failed_at = time(&status.failed_at);
        let error = status.error.as_ref();

        let public = sr_status {
            restore_id: keep(&status.restore_id),
            status: status.status.into(),
            backup_name: keep(&status.backup_name),
            target_database: keep(&status.target_database),
            started_at: keep(&rfc3339(&status.started_at)),
            estimated_completion,
            completed_at,
            cancelled_at,
            failed_at,
            size_bytes: status.size_bytes,
            bytes_read: status.bytes_read,
            duration_seconds: status.duration_seconds,
            verification_status: status.verification_status.into(),
            progress: status.progress,
            current_operation: status.current_operation.into(),
            tables: status.summary.tables,
            rows: status.summary.rows,
            statements: status.summary.statements,
            skipped: status.summary.skipped,
            checksum: status
                .summary
                .checksum
                .as_deref()
                .map_or(ptr::null(), &mut keep),
            error_code: error.map_or(sr_result::SR_OK, |err| sr_result::from_code(err.code())),
            error_message: error.map_or(ptr::null(), |err| keep(err.message())),
            error_details: error.map_or(ptr::null(), |err| keep(&details_json(err))),
            error_request_id: error.map_or(ptr::null(), |err| keep(err.request_id())),
        };
        Box::new(OwnedStatus {
            public,
            _strings: strings,
        })
    }

    /// The pointer C receives; [`sr_status_free`] turns it back into the box.
    pub(crate) fn into_raw(owned: Box<OwnedStatus>) -> *mut sr_status {
        Box::into_raw(owned).cast::<sr_status>()
    }
}

/// Frees a status snapshot. NULL is ignored.
///
/// # Safety
///
/// `status` must be NULL or a snapshot from `sr_restore_status` or
/// `sr_restore_wait` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn sr_status_free(status: *mut sr_status) {
    boundary_or((), || {
        // SAFETY: a snapshot is an `OwnedStatus` (whose first field is the `sr_status`) boxed by
        // `OwnedStatus::into_raw`; the caller promises it was not freed yet.
        drop(unsafe { take(status.cast::<OwnedStatus>()) });
    })
}

/// One progress update, passed to an `sr_update_callback`. Borrowed:
/// it and its strings are valid only during the callback; copy what
/// you keep.
#[repr(C)]
pub struct sr_update {
    /// `rst_...`.
    pub restore_id: *const c_char,
    /// Where the restore is.
    pub status: sr_state,
    /// 0-100.
    pub progress: u8,
    /// What it is doing.
    pub current_operation: sr_operation,
    /// When the update was made, RFC 3339 in UTC with milliseconds.
    pub timestamp: *const c_char,
    /// The same instant in milliseconds since the Unix epoch.
    pub timestamp_unix_ms: i64,
}

/// Hands `update` to `deliver` as an `sr_update` that lives for the call.
pub(crate) fn with_update(update: &RestoreUpdate, deliver: impl FnOnce(&sr_update)) {
    let restore_id = c_string(&update.restore_id);
    let timestamp = c_string(
        &update
            .timestamp
            .to_rfc3339_opts(SecondsFormat::Millis, true),
    );
    let update = sr_update {
        restore_id: restore_id.as_ptr(),
        status: update.status.into(),
        progress: update.progress,
        current_operation: update.current_operation.into(),
        timestamp: timestamp.as_ptr(),
        timestamp_unix_ms: update.timestamp.timestamp_millis(),
    };
    deliver(&update);
}
