//! restore-core: the securerestore engine.
mod error;
mod ids;

pub mod catalog;
pub mod checksum;
pub mod codec;
pub mod dump;

pub use error::{ErrorCode, RestoreError, Result};
