//! The boundary every exported body runs in: a Rust panic must never unwind into C.
//!
//! A caught panic becomes `SR_PANIC` with the panic's message as the last error; functions
//! that return no `sr_result` return a documented fallback value instead.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{sr_result, Failure};

/// Runs `body`, turning a panic into an `SR_PANIC` failure.
pub(crate) fn boundary<T>(body: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    // Objects a panicking body touched are not used again by that body; a C caller that goes on
    // using them sees whatever state the engine's own locks (which recover from poisoning) left.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(outcome) => outcome,
        Err(payload) => Err(Failure::abi(
            sr_result::SR_PANIC,
            format!(
                "internal error in libsecurerestore: {}",
                panic_message(&*payload)
            ),
        )),
    }
}

/// Runs an infallible `body`, answering `fallback` if it panics.
pub(crate) fn boundary_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "a panic without a message"
    }
}
