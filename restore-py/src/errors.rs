//! The one place engine errors become Python exceptions.
//!
//! The exception classes live in `secureai.restore.errors`, where Python users read them; the
//! code-to-class table is there too (`error_from_engine`), so that a failed restore's status
//! and a raised error build the same class from the same code.

use pyo3::prelude::*;
use restore_core::RestoreError;

use crate::values::json_to_py;

/// An engine error on its way to Python.
pub(crate) struct EngineError(pub(crate) RestoreError);

impl From<RestoreError> for EngineError {
    fn from(err: RestoreError) -> Self {
        EngineError(err)
    }
}

impl From<EngineError> for PyErr {
    fn from(EngineError(err): EngineError) -> PyErr {
        Python::attach(|py| match to_exception(py, &err) {
            Ok(exception) => PyErr::from_value(exception),
            // The package is broken or half imported; still say what the engine said.
            Err(import_failure) => {
                let message = format!("{err} [{}]", err.request_id());
                let fallback = pyo3::exceptions::PyRuntimeError::new_err(message);
                fallback.set_cause(py, Some(import_failure));
                fallback
            }
        })
    }
}

fn to_exception<'py>(py: Python<'py>, err: &RestoreError) -> PyResult<Bound<'py, PyAny>> {
    let details = json_to_py(py, &serde_json::Value::Object(err.details().clone()))?;
    py.import("secureai.restore.errors")?
        .getattr("error_from_engine")?
        .call1((
            err.code().as_str(),
            err.message(),
            details,
            err.request_id(),
        ))
}

/// Result of a call into the engine.
pub(crate) type EngineResult<T> = Result<T, EngineError>;
