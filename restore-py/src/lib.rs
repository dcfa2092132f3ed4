//! `secureai.restore._native`: the securerestore engine as a Python extension module.
//!
//! This crate translates one boundary and holds no restore logic. It exposes the engine with
//! plain Python values (dicts, lists, strings) that the pure-Python package
//! `secureai.restore` turns into its public classes:
//!
//! - `engine`: the `Engine` class, blocking calls (with the GIL released) and awaitables on the
//!   engine's own runtime;
//! - `watch`: `RestoreWatch`, the stream of status changes a waiter reads;
//! - `values`: engine values to Python objects, and restore options from a Python dict;
//! - `errors`: the one conversion of engine errors into the Python exception hierarchy;
//! - `logging`: the engine's `tracing` events forwarded to Python's `logging`.

use pyo3::prelude::*;

mod engine;
mod errors;
mod logging;
mod values;
mod watch;

/// The extension module.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    // Futures handed to asyncio run on the engine's one runtime. A second import of the module
    // in the same process finds it already set, which is what we want.
    let _ = pyo3_async_runtimes::tokio::init_with_runtime(restore_core::runtime());
    logging::install(module.py())?;

    module.add_class::<engine::Engine>()?;
    module.add_class::<watch::RestoreWatch>()?;
    module.add_function(wrap_pyfunction!(logging::set_log_level, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
