//! The engine's one error type.
//!
//! Every failure leaves the engine as a [`RestoreError`]: a stable [`ErrorCode`] from the public
//! vocabulary (each with its HTTP status), a message for people that names the file, line and
//! object where it can, structured `details`, and the `request_id` of the call that failed. The
//! C and Python layers map this type in exactly one place each.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

/// Result alias used throughout the engine.
pub type Result<T, E = RestoreError> = std::result::Result<T, E>;

/// The public error codes. Their string forms and HTTP statuses are part of the API and never
/// change; new codes may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request itself is wrong: a bad name, option or combination.
    InvalidRequest,
    /// No backup of that name is in the backup directory.
    BackupNotFound,
    /// The target database exists and `force` was not given.
    DatabaseExists,
    /// A request or concurrency limit was reached; try again later.
    RateLimitExceeded,
    /// The restore ran and failed; nothing was changed.
    RestoreFailed,
    /// The server's disk cannot hold the restored database.
    InsufficientSpace,
}

impl ErrorCode {
    /// Every code, in a stable order.
    pub const ALL: [ErrorCode; 6] = [
        ErrorCode::InvalidRequest,
        ErrorCode::BackupNotFound,
        ErrorCode::DatabaseExists,
        ErrorCode::RateLimitExceeded,
        ErrorCode::RestoreFailed,
        ErrorCode::InsufficientSpace,
    ];

    /// The code as it appears in JSON, e.g. `backup_not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::BackupNotFound => "backup_not_found",
            ErrorCode::DatabaseExists => "database_exists",
            ErrorCode::RateLimitExceeded => "rate_limit_exceeded",
            ErrorCode::RestoreFailed => "restore_failed",
            ErrorCode::InsufficientSpace => "insufficient_space",
        }
    }

    /// The HTTP status the documented API answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::BackupNotFound => 404,
            ErrorCode::DatabaseExists => 409,
            ErrorCode::RateLimitExceeded => 429,
            ErrorCode::RestoreFailed => 500,
            ErrorCode::InsufficientSpace => 507,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of the engine: a code, a message, details and the id of the request that failed.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreError {
    code: ErrorCode,
    message: String,
    details: Map<String, Value>,
    request_id: String,
}

impl RestoreError {
    /// A new error with a fresh request id and no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RestoreError {
            code,
            message: message.into(),
            details: Map::new(),
            request_id: crate::ids::request_id(),
        }
    }

    /// Shorthand for [`ErrorCode::InvalidRequest`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// Shorthand for [`ErrorCode::RestoreFailed`].
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::RestoreFailed, message)
    }

    /// Adds one entry to `details`.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// Replaces the request id, so that an error reports the request it belongs to.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = request_id.into();
        self
    }

    /// Prefixes the message with where the failure happened, e.g. `backup.sql.gz, line 12`.
    pub fn context(mut self, place: impl fmt::Display) -> Self {
        self.message = format!("{place}: {}", self.message);
        self
    }

    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Structured details (file, line, object, byte offsets, limits …).
    pub fn details(&self) -> &Map<String, Value> {
        &self.details
    }

    /// The `req_…` id of the request that failed.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The HTTP status of this error's code.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// The documented JSON error object: `{"error": {code, message, details, request_id}}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "error": self })
    }
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for RestoreError {}

impl From<std::io::Error> for RestoreError {
    fn from(err: std::io::Error) -> Self {
        RestoreError::failed(format!("I/O error: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_documented_status() {
        let pairs: Vec<(&str, u16)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str(), c.http_status()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("invalid_request", 400),
                ("backup_not_found", 404),
                ("database_exists", 409),
                ("rate_limit_exceeded", 429),
                ("restore_failed", 500),
                ("insufficient_space", 507),
            ]
        );
    }

    #[test]
    fn json_shape_carries_code_message_details_and_request_id() {
        let err = RestoreError::new(ErrorCode::BackupNotFound, "no backup named x")
            .with_detail("name", "x")
            .with_request_id("req_1");
        let json = err.to_json();
        assert_eq!(json["error"]["code"], "backup_not_found");
        assert_eq!(json["error"]["message"], "no backup named x");
        assert_eq!(json["error"]["details"]["name"], "x");
        assert_eq!(json["error"]["request_id"], "req_1");
    }
}
