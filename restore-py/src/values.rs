//! Engine values as Python objects, and restore options from Python.
//!
//! Engine values go through their serde form, the same JSON the documented API returns, so
//! Python sees exactly the documented field names; the package turns timestamps (RFC 3339
//! strings) into aware datetimes.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use restore_core::{OnError, RestoreError, RestoreOptions};
use serde::Serialize;
use serde_json::Value;

use crate::errors::EngineResult;

/// Any serialisable engine value as a Python object.
pub(crate) fn to_py<'py, T: Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(value).map_err(|err| {
        pyo3::exceptions::PyRuntimeError::new_err(format!("cannot convert a value: {err}"))
    })?;
    json_to_py(py, &json)
}

/// A JSON value as the Python object `json.loads` would give.
pub(crate) fn json_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    let object = match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(flag) => flag.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(number) => match (number.as_u64(), number.as_i64()) {
            (Some(unsigned), _) => unsigned.into_pyobject(py)?.into_any(),
            (None, Some(signed)) => signed.into_pyobject(py)?.into_any(),
            _ => number
                .as_f64()
                .unwrap_or(f64::NAN)
                .into_pyobject(py)?
                .into_any(),
        },
        Value::String(text) => text.into_pyobject(py)?.into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(fields) => {
            let dict = PyDict::new(py);
            for (key, item) in fields {
                dict.set_item(key, json_to_py(py, item)?)?;
            }
            dict.into_any()
        }
    };
    Ok(object)
}

/// Restore options from a dict with the documented keys; a missing key keeps its default, an
/// unknown key or a value of the wrong type is an `invalid_request`.
pub(crate) fn options_from_dict(dict: &Bound<'_, PyDict>) -> EngineResult<RestoreOptions> {
    let mut options = RestoreOptions::default();
    for (key, value) in dict.iter() {
        let key: String = key
            .extract()
            .map_err(|_| RestoreError::invalid("option names must be strings"))?;
        let wrong_type = |expected: &str| {
            RestoreError::invalid(format!("option {key} must be {expected}"))
                .with_detail("option", key.as_str())
        };
        match key.as_str() {
            "verify" => options.verify = strict_bool(&value).ok_or_else(|| wrong_type("a bool"))?,
            "force" => options.force = strict_bool(&value).ok_or_else(|| wrong_type("a bool"))?,
            "no_owner" => {
                options.no_owner = strict_bool(&value).ok_or_else(|| wrong_type("a bool"))?
            }
            "no_privileges" => {
                options.no_privileges = strict_bool(&value).ok_or_else(|| wrong_type("a bool"))?
            }
            "parallel_workers" => {
                options.parallel_workers = strict_int(&value)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| wrong_type("a positive int"))?
            }
            "timeout_seconds" => {
                options.timeout_seconds = if value.is_none() {
                    None
                } else {
                    let seconds = strict_int(&value)
                        .and_then(|n| u64::try_from(n).ok())
                        .ok_or_else(|| wrong_type("a positive int or None"))?;
                    Some(seconds)
                }
            }
            "on_error" => {
                let text: String = value
                    .extract()
                    .map_err(|_| wrong_type("\"stop\" or \"continue\""))?;
                options.on_error = text.parse::<OnError>()?;
            }
            _ => {
                return Err(RestoreError::invalid(format!(
                    "unknown restore option {key:?}; known: verify, force, parallel_workers, \
                     timeout_seconds, on_error, no_owner, no_privileges"
                ))
                .with_detail("option", key.as_str())
                .into())
            }
        }
    }
    Ok(options)
}

/// A Python bool, and nothing that merely converts to one.
fn strict_bool(value: &Bound<'_, PyAny>) -> Option<bool> {
    value
        .cast::<pyo3::types::PyBool>()
        .ok()
        .map(|flag| flag.is_true())
}

/// A Python int that is not a bool.
fn strict_int(value: &Bound<'_, PyAny>) -> Option<i64> {
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return None;
    }
    value.cast::<pyo3::types::PyInt>().ok()?.extract().ok()
}
