//! The one result table of the C ABI and the thread's last error.
//!
//! Every fallible function returns an [`sr_result`]. Numbers 1 to 99 are the engine's public
//! error codes, in the order of [`ErrorCode::ALL`]; numbers 100 to 199 are the ABI's own
//! (a NULL pointer, bad UTF-8, a small buffer, a caught panic). A number once given keeps its
//! meaning for good; a retired one is never reused.
//!
//! Details of a failure (message, details JSON, request id) stay in a thread-local slot until
//! the next fallible call on the same thread, and are copied out into caller buffers.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

use restore_core::{ErrorCode, RestoreError};

use crate::ffi::{c_string, copy_to_buffer};
use crate::panic::{boundary, boundary_or};

/// The outcome of a call: `SR_OK`, one of the engine's public error
/// codes (1-99), or an error of the C interface itself (100-199).
///
/// Numbers are stable: a code keeps its number for good and a retired
/// number is never reused.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sr_result {
    /// Success.
    SR_OK = 0,
    /// `invalid_request`: a bad name, option or combination.
    SR_INVALID_REQUEST = 1,
    /// `backup_not_found`: no backup of that name.
    SR_BACKUP_NOT_FOUND = 2,
    /// `database_exists`: the target exists (use force) or another
    /// restore writes it.
    SR_DATABASE_EXISTS = 3,
    /// `rate_limit_exceeded`: too many restores at once.
    SR_RATE_LIMIT_EXCEEDED = 4,
    /// `restore_failed`: the restore ran and failed; nothing changed.
    SR_RESTORE_FAILED = 5,
    /// `insufficient_space`: the server's disk cannot hold the restore.
    SR_INSUFFICIENT_SPACE = 6,
    /// An engine error code newer than this library knows.
    SR_UNKNOWN_ENGINE_ERROR = 99,
    /// A required pointer argument was NULL.
    SR_NULL_ARGUMENT = 100,
    /// A string argument was not valid UTF-8.
    SR_INVALID_UTF8 = 101,
    /// An argument is out of range, e.g. an unknown enum value.
    SR_INVALID_ARGUMENT = 102,
    /// The caller's buffer cannot hold the value and its NUL.
    SR_BUFFER_TOO_SMALL = 103,
    /// The library failed internally (a Rust panic was caught); the
    /// objects involved stay valid but the call did nothing reliable.
    SR_PANIC = 104,
}

impl sr_result {
    /// The result for one of the engine's public codes.
    pub(crate) fn from_code(code: ErrorCode) -> sr_result {
        match code {
            ErrorCode::InvalidRequest => sr_result::SR_INVALID_REQUEST,
            ErrorCode::BackupNotFound => sr_result::SR_BACKUP_NOT_FOUND,
            ErrorCode::DatabaseExists => sr_result::SR_DATABASE_EXISTS,
            ErrorCode::RateLimitExceeded => sr_result::SR_RATE_LIMIT_EXCEEDED,
            ErrorCode::RestoreFailed => sr_result::SR_RESTORE_FAILED,
            ErrorCode::InsufficientSpace => sr_result::SR_INSUFFICIENT_SPACE,
            _ => sr_result::SR_UNKNOWN_ENGINE_ERROR,
        }
    }

    fn name(self) -> &'static CStr {
        match self {
            sr_result::SR_OK => c"ok",
            sr_result::SR_INVALID_REQUEST => c"invalid_request",
            sr_result::SR_BACKUP_NOT_FOUND => c"backup_not_found",
            sr_result::SR_DATABASE_EXISTS => c"database_exists",
            sr_result::SR_RATE_LIMIT_EXCEEDED => c"rate_limit_exceeded",
            sr_result::SR_RESTORE_FAILED => c"restore_failed",
            sr_result::SR_INSUFFICIENT_SPACE => c"insufficient_space",
            sr_result::SR_UNKNOWN_ENGINE_ERROR => c"unknown_engine_error",
            sr_result::SR_NULL_ARGUMENT => c"null_argument",
            sr_result::SR_INVALID_UTF8 => c"invalid_utf8",
            sr_result::SR_INVALID_ARGUMENT => c"invalid_argument",
            sr_result::SR_BUFFER_TOO_SMALL => c"buffer_too_small",
            sr_result::SR_PANIC => c"panic",
        }
    }

    /// The result with this number, if there is one.
    fn from_number(number: u32) -> Option<sr_result> {
        const ALL: [sr_result; 13] = [
            sr_result::SR_OK,
            sr_result::SR_INVALID_REQUEST,
            sr_result::SR_BACKUP_NOT_FOUND,
            sr_result::SR_DATABASE_EXISTS,
            sr_result::SR_RATE_LIMIT_EXCEEDED,
            sr_result::SR_RESTORE_FAILED,
            sr_result::SR_INSUFFICIENT_SPACE,
            sr_result::SR_UNKNOWN_ENGINE_ERROR,
            sr_result::SR_NULL_ARGUMENT,
            sr_result::SR_INVALID_UTF8,
            sr_result::SR_INVALID_ARGUMENT,
            sr_result::SR_BUFFER_TOO_SMALL,
            sr_result::SR_PANIC,
        ];
        ALL.into_iter().find(|result| *result as u32 == number)
    }
}

/// A failed call as the C side sees it: the result and what the last-error functions report.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) result: sr_result,
    message: String,
    details: String,
    request_id: String,
}

impl Failure {
    /// A failure of the C interface itself: no details, no request id.
    pub(crate) fn abi(result: sr_result, message: impl Into<String>) -> Failure {
        Failure {
            result,
            message: message.into(),
            details: "{}".to_owned(),
            request_id: String::new(),
        }
    }

    pub(crate) fn null(argument: &str) -> Failure {
        Failure::abi(sr_result::SR_NULL_ARGUMENT, format!("{argument} is NULL"))
    }
}

impl From<RestoreError> for Failure {
    fn from(err: RestoreError) -> Failure {
        Failure {
            result: sr_result::from_code(err.code()),
            message: err.message().to_owned(),
            details: details_json(&err),
            request_id: err.request_id().to_owned(),
        }
    }
}

/// The error's details as a JSON object.
pub(crate) fn details_json(err: &RestoreError) -> String {
    serde_json::to_string(err.details()).unwrap_or_else(|_| "{}".to_owned())
}

/// The last failure of this thread, as C strings ready to copy out.
struct LastError {
    result: sr_result,
    message: CString,
    details: CString,
    request_id: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

/// Forgets this thread's last error; every fallible call starts with it.
pub(crate) fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|slot| slot.borrow_mut().take());
}

/// Records `failure` as this thread's last error and returns its result.
pub(crate) fn set_last_error(failure: Failure) -> sr_result {
    let result = failure.result;
    let last = LastError {
        result,
        message: c_string(&failure.message),
        details: c_string(&failure.details),
        request_id: c_string(&failure.request_id),
    };
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = Some(last));
    result
}

/// Copies one part of the last error into the caller's buffer.
///
/// # Safety
///
/// `buf` must be NULL or valid for `len` bytes of writes; `needed` NULL or valid for a write.
unsafe fn copy_last(
    part: fn(&LastError) -> &CStr,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> sr_result {
    // The last error is read, never replaced, here: a failure of these calls is reported by
    // their result alone.
    boundary_or(sr_result::SR_PANIC, || {
        LAST_ERROR.with(|slot| {
            let slot = slot.borrow();
            let text = slot.as_ref().map_or(c"", part);
            // SAFETY: the caller's promise on `buf`, `len` and `needed` is passed on.
            match unsafe { copy_to_buffer(text, buf, len, needed) } {
                Ok(()) => sr_result::SR_OK,
                Err(failure) => failure.result,
            }
        })
    })
}

/// The result of this thread's last failed call, or `SR_OK` when the
/// last fallible call succeeded (or there was none).
#[no_mangle]
pub extern "C" fn sr_last_error_code() -> sr_result {
    boundary_or(sr_result::SR_PANIC, || {
        LAST_ERROR.with(|slot| {
            slot.borrow()
                .as_ref()
                .map_or(sr_result::SR_OK, |last| last.result)
        })
    })
}

/// Copies the message of this thread's last failed call into `buf`.
///
/// `buf` receives at most `len` bytes: the UTF-8 message and its NUL.
/// `*needed`, when `needed` is not NULL, receives the size the message
/// needs with its NUL, on `SR_OK` and on `SR_BUFFER_TOO_SMALL` alike;
/// `buf` is written only on `SR_OK`. Pass `buf` NULL and `len` 0 to ask
/// for the size. Without a last error the message is the empty string.
/// These functions never change the last error.
///
/// # Safety
///
/// `buf` must be NULL or point to `len` writable bytes; `needed` must
/// be NULL or point to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sr_last_error_message(
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> sr_result {
    // SAFETY: the caller's promise on the arguments is passed on unchanged.
    unsafe { copy_last(|last| &last.message, buf, len, needed) }
}

/// Copies the details of this thread's last failed call, a JSON object
/// such as `{"limit":1,"retry_after_seconds":5}`, into `buf`; `{}` when
/// there are none. Buffers as in `sr_last_error_message`.
///
/// # Safety
///
/// As for `sr_last_error_message`.
#[no_mangle]
pub unsafe extern "C" fn sr_last_error_details(
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> sr_result {
    // SAFETY: the caller's promise on the arguments is passed on unchanged.
    unsafe { copy_last(|last| &last.details, buf, len, needed) }
}

/// Copies the request id (`req_...`) of this thread's last failed call
/// into `buf`; the empty string for failures of the C interface itself,
/// which no request reached. Buffers as in `sr_last_error_message`.
///
/// # Safety
///
/// As for `sr_last_error_message`.
#[no_mangle]
pub unsafe extern "C" fn sr_last_error_request_id(
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> sr_result {
    // SAFETY: the caller's promise on the arguments is passed on unchanged.
    unsafe { copy_last(|last| &last.request_id, buf, len, needed) }
}

/// The stable name of a result, e.g. `"backup_not_found"` for
/// `SR_BACKUP_NOT_FOUND`; `"unknown"` for a number not in the table.
/// The string is static: never free it.
#[no_mangle]
pub extern "C" fn sr_result_name(result: u32) -> *const c_char {
    let name = boundary_or(c"unknown", || {
        sr_result::from_number(result).map_or(c"unknown", sr_result::name)
    });
    name.as_ptr()
}

/// Runs a fallible body the C way: the last error cleared first, a failure recorded.
pub(crate) fn run(body: impl FnOnce() -> Result<(), Failure>) -> sr_result {
    clear_last_error();
    match boundary(body) {
        Ok(()) => sr_result::SR_OK,
        Err(failure) => set_last_error(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail_with(message: &str) -> sr_result {
        run(|| {
            Err(Failure::from(
                RestoreError::new(ErrorCode::BackupNotFound, message).with_request_id("req_t"),
            ))
        })
    }

    #[test]
    fn every_engine_code_has_its_own_stable_number() {
        let numbers: Vec<u32> = ErrorCode::ALL
            .iter()
            .map(|code| sr_result::from_code(*code) as u32)
            .collect();
        assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_failure_is_readable_until_the_next_call() {
        assert_eq!(
            fail_with("no backup named x"),
            sr_result::SR_BACKUP_NOT_FOUND
        );
        assert_eq!(sr_last_error_code(), sr_result::SR_BACKUP_NOT_FOUND);

        let mut buf = [0 as c_char; 64];
        let mut needed = 0;
        // SAFETY: `buf` holds 64 bytes and `needed` is a local.
        let result = unsafe { sr_last_error_request_id(buf.as_mut_ptr(), buf.len(), &mut needed) };
        assert_eq!(result, sr_result::SR_OK);
        // SAFETY: the call wrote a NUL-terminated string into `buf`.
        assert_eq!(unsafe { CStr::from_ptr(buf.as_ptr()) }, c"req_t");
        assert_eq!(needed, 6);

        assert_eq!(run(|| Ok(())), sr_result::SR_OK);
        assert_eq!(sr_last_error_code(), sr_result::SR_OK);
    }

    #[test]
    fn a_small_buffer_reports_the_size_and_stays_untouched() {
        fail_with("no backup named x");
        let mut buf = [b'#' as c_char; 4];
        let mut needed = 0;
        // SAFETY: `buf` holds 4 bytes and `needed` is a local.
        let result = unsafe { sr_last_error_message(buf.as_mut_ptr(), buf.len(), &mut needed) };
        assert_eq!(result, sr_result::SR_BUFFER_TOO_SMALL);
        assert_eq!(needed, "no backup named x".len() + 1);
        assert!(buf.iter().all(|byte| *byte == b'#' as c_char));
    }

    #[test]
    fn a_null_buffer_with_room_claimed_is_a_null_argument() {
        fail_with("x");
        // SAFETY: NULL pointers are what is tested; nothing is written through them.
        let result =
            unsafe { sr_last_error_details(std::ptr::null_mut(), 16, std::ptr::null_mut()) };
        assert_eq!(result, sr_result::SR_NULL_ARGUMENT);
    }

    #[test]
    fn a_panic_becomes_sr_panic_with_its_message() {
        let result = run(|| panic!("boom"));
        assert_eq!(result, sr_result::SR_PANIC);
        let mut buf = [0 as c_char; 128];
        // SAFETY: `buf` holds 128 bytes.
        unsafe { sr_last_error_message(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut()) };
        // SAFETY: the call wrote a NUL-terminated string into `buf`.
        let message = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
        assert!(message.ends_with("boom"), "{message}");
    }

    #[test]
    fn results_have_names_and_unknown_numbers_do_not() {
        // SAFETY: `sr_result_name` returns static NUL-terminated strings.
        let name = |number| unsafe { CStr::from_ptr(sr_result_name(number)) };
        assert_eq!(name(2), c"backup_not_found");
        assert_eq!(name(104), c"panic");
        assert_eq!(name(7), c"unknown");
    }
}
