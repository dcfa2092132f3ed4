//! `RestoreWatch`: what `wait_for_completion` reads.
//!
//! The blocking `next` waits for one short slice with the GIL released, then checks for
//! signals, so Ctrl-C interrupts a wait within a slice. The package calls it in a loop and
//! runs the progress callback between slices, in the waiting thread.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use restore_core::{RestoreEvents, RestoreStatus};
use tokio::sync::Mutex;

use crate::values::to_py;

/// Status changes of one restore.
#[pyclass(module = "secureai.restore._native", frozen)]
pub(crate) struct RestoreWatch {
    state: Arc<Mutex<WatchState>>,
}

struct WatchState {
    events: RestoreEvents,
    /// The final status, once read, returned again on every later call.
    last_final: Option<RestoreStatus>,
}

impl WatchState {
    fn take(&mut self, next: Option<RestoreStatus>) -> Option<RestoreStatus> {
        match next {
            Some(status) => {
                if status.status.is_final() {
                    self.last_final = Some(status.clone());
                }
                Some(status)
            }
            None => self.last_final.clone(),
        }
    }
}

impl RestoreWatch {
    pub(crate) fn new(events: RestoreEvents) -> Self {
        RestoreWatch {
            state: Arc::new(Mutex::new(WatchState {
                events,
                last_final: None,
            })),
        }
    }
}

#[pymethods]
impl RestoreWatch {
    /// The next status as a dict, or `None` when nothing changed within `timeout` seconds.
    /// After the final status, returns it again at once. Raises `KeyboardInterrupt` (or what a
    /// signal handler raises) when a signal arrived meanwhile.
    fn next<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Option<Bound<'py, PyAny>>> {
        let slice = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::ZERO);
        let state = self.state.clone();
        let next = py.detach(move || {
            restore_core::runtime().block_on(async {
                let mut state = state.lock().await;
                if let Some(status) = &state.last_final {
                    return Some(status.clone());
                }
                match tokio::time::timeout(slice, state.events.next_status()).await {
                    Ok(next) => state.take(next),
                    Err(_) => None,
                }
            })
        });
        py.check_signals()?;
        next.map(|status| to_py(py, &status)).transpose()
    }

    /// Awaitable: the next status as a dict; the final one again after the end.
    fn next_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let mut state = state.lock().await;
            let next = match state.last_final.clone() {
                Some(status) => Some(status),
                None => {
                    let next = state.events.next_status().await;
                    state.take(next)
                }
            };
            Python::attach(|py| match next {
                Some(status) => to_py(py, &status).map(Bound::unbind),
                None => Ok(py.None()),
            })
        })
    }
}
