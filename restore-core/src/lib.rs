//! restore-core: the securerestore engine.
mod error;
mod ids;

pub mod dump;
pub mod local;

pub use error::{ErrorCode, RestoreError, Result};
