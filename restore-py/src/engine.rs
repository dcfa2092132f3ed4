//! The `Engine` class: one `restore_core::Engine` and the calls the package makes on it.
//!
//! Blocking calls release the GIL while the engine works, so other Python threads (and the
//! engine's own threads, which take the GIL briefly to log) keep running. A `timeout` in
//! seconds bounds the calls that may wait on the server or on the disk. Awaitables run on the
//! engine's runtime; none of this creates a runtime of its own.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use restore_core::codec::{self, Format};
use restore_core::{ListOptions, RestoreError, RestoreRequest};

use crate::errors::{EngineError, EngineResult};
use crate::values::{options_from_dict, to_py};
use crate::watch::RestoreWatch;

/// The securerestore engine over one backup directory and one database server.
#[pyclass(module = "secureai.restore._native", frozen)]
pub(crate) struct Engine {
    engine: restore_core::Engine,
}

#[pymethods]
impl Engine {
    /// An engine reading backups from `backup_dir` and restoring to `database_url` (the `PG*`
    /// variables, else the managed local PostgreSQL, when it is `None`).
    #[new]
    #[pyo3(signature = (backup_dir, database_url=None, state_dir=None))]
    fn new(
        backup_dir: PathBuf,
        database_url: Option<String>,
        state_dir: Option<PathBuf>,
    ) -> EngineResult<Engine> {
        let mut config = restore_core::EngineConfig::new(backup_dir);
        config.database_url = database_url;
        config.local_state_dir = state_dir;
        Ok(Engine {
            engine: restore_core::Engine::new(config)?,
        })
    }

    /// A page of backups as a dict: backups, total, limit, offset.
    #[pyo3(signature = (limit, offset, sort, order, timeout=None))]
    fn list_backups<'py>(
        &self,
        py: Python<'py>,
        limit: usize,
        offset: usize,
        sort: &str,
        order: &str,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = ListOptions {
            limit,
            offset,
            sort: sort.parse().map_err(EngineError)?,
            order: order.parse().map_err(EngineError)?,
        };
        let engine = self.engine.clone();
        let page = blocking(py, timeout, "list_backups", move || {
            engine.list_backups(&options)
        })?;
        to_py(py, &page)
    }

    /// One backup as a dict.
    fn backup<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let backup = self.engine.backup(name).map_err(EngineError)?;
        to_py(py, &backup)
    }

    /// Computes a backup's sha256, records it beside the file and returns the backup.
    #[pyo3(signature = (name, timeout=None))]
    fn seal<'py>(
        &self,
        py: Python<'py>,
        name: String,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let engine = self.engine.clone();
        let backup = blocking(py, timeout, "seal", move || engine.seal(&name))?;
        to_py(py, &backup)
    }

    /// Packs the dump at `path` into the backup directory as `name` (by default the file's
    /// name with `.gz` or `.zst`): pieces of `piece_bytes` bytes of SQL compressed as `format`
    /// at `level`, which restores decode on every core. Seals it and returns the backup.
    #[pyo3(signature = (
        path, name=None, format="gzip", piece_bytes=None, level=None, timeout=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn pack<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        name: Option<String>,
        format: &str,
        piece_bytes: Option<usize>,
        level: Option<i32>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let format: Format = format.parse().map_err(EngineError)?;
        let name = name.unwrap_or_else(|| codec::packed_name(&path, format));
        let level = level.unwrap_or(codec::default_level(format));
        let piece_bytes = piece_bytes.unwrap_or(codec::DEFAULT_PIECE_BYTES);
        let engine = self.engine.clone();
        let backup = blocking(py, timeout, "pack", move || {
            engine.pack(&path, &name, format, piece_bytes, level)
        })?;
        to_py(py, &backup)
    }

    /// Starts a restore; returns its first status.
    #[pyo3(signature = (backup_name, target_database, options, timeout=None))]
    fn create_restore<'py>(
        &self,
        py: Python<'py>,
        backup_name: String,
        target_database: String,
        options: &Bound<'py, PyDict>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = restore_request(backup_name, target_database, options)?;
        let engine = self.engine.clone();
        let status = py.detach(|| {
            restore_core::runtime().block_on(bounded(
                timeout,
                "create_restore",
                engine.create_restore_async(request),
            ))
        });
        to_py(py, &status.map_err(EngineError)?)
    }

    /// Awaitable form of `create_restore`.
    fn create_restore_async<'py>(
        &self,
        py: Python<'py>,
        backup_name: String,
        target_database: String,
        options: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = restore_request(backup_name, target_database, options)?;
        let engine = self.engine.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let status = engine
                .create_restore_async(request)
                .await
                .map_err(EngineError)?;
            Python::attach(|py| to_py(py, &status).map(Bound::unbind))
        })
    }

    /// A restore's current status. Off the GIL although it answers at once: an engine thread
    /// may hold what this call needs while it waits for the GIL to log.
    fn restore_status<'py>(
        &self,
        py: Python<'py>,
        restore_id: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let status = py.detach(|| self.engine.restore_status(restore_id));
        to_py(py, &status.map_err(EngineError)?)
    }

    /// Asks a restore to stop; returns its status.
    fn cancel_restore<'py>(
        &self,
        py: Python<'py>,
        restore_id: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let status = py.detach(|| self.engine.cancel_restore(restore_id));
        to_py(py, &status.map_err(EngineError)?)
    }

    /// The status changes of a restore, starting with its current status.
    fn subscribe(&self, py: Python<'_>, restore_id: &str) -> EngineResult<RestoreWatch> {
        let events = py.detach(|| self.engine.subscribe(restore_id))?;
        Ok(RestoreWatch::new(events))
    }
}

/// Runs `work` off the GIL on the runtime's blocking threads, bounded by `timeout` seconds.
fn blocking<T, F>(py: Python<'_>, timeout: Option<f64>, call: &str, work: F) -> EngineResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> restore_core::Result<T> + Send + 'static,
{
    py.detach(|| {
        restore_core::runtime().block_on(bounded(timeout, call, async move {
            tokio::task::spawn_blocking(work)
                .await
                .map_err(|err| RestoreError::failed(format!("{call} stopped: {err}")))?
        }))
    })
    .map_err(EngineError)
}

/// `future`, failing with `restore_failed` when it takes longer than `timeout` seconds.
async fn bounded<T>(
    timeout: Option<f64>,
    call: &str,
    future: impl Future<Output = restore_core::Result<T>>,
) -> restore_core::Result<T> {
    let Some(seconds) = timeout else {
        return future.await;
    };
    let limit = Duration::try_from_secs_f64(seconds).map_err(|_| {
        RestoreError::invalid(format!(
            "timeout must be a positive number of seconds, not {seconds}"
        ))
    })?;
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| {
            Err(
                RestoreError::failed(format!("{call} did not finish within {seconds} s"))
                    .with_detail("timeout_seconds", seconds),
            )
        })
}

/// The request a Python call describes, its options dict checked.
fn restore_request(
    backup_name: String,
    target_database: String,
    options: &Bound<'_, PyDict>,
) -> PyResult<RestoreRequest> {
    Ok(RestoreRequest {
        backup_name,
        target_database,
        options: options_from_dict(options)?,
    })
}
