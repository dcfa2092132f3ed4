//! The engine's `tracing` events, forwarded to Python's `logging` (logger `secureai.restore`).
//!
//! A library never chooses where logs go: events become log records and the host's logging
//! configuration decides. An event takes the GIL only when the logger's level lets it through,
//! and that level is read from Python (at import, when a client is made, and on every
//! forwarded record), so disabled debug events cost one atomic load. The engine never puts row
//! data, passwords or keys in its events.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The logger's effective level, in Python's numbers (DEBUG 10, INFO 20 …).
static THRESHOLD: AtomicU8 = AtomicU8::new(30);

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    LOGGER
        .get_or_try_init(py, || {
            let logger = py
                .import("logging")?
                .call_method1("getLogger", ("secureai.restore",))?;
            Ok::<_, PyErr>(logger.unbind())
        })
        .map(|logger| logger.bind(py))
}

/// Sets the level below which events are dropped; the package passes the logger's effective
/// level when a client is created.
#[pyfunction]
pub(crate) fn set_log_level(level: u8) {
    THRESHOLD.store(level, Ordering::Relaxed);
}

/// Installs the forwarding layer as the process's tracing subscriber, unless the host program
/// installed one already (then its choice stands).
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    refresh_threshold(py)?;
    let subscriber = tracing_subscriber::registry().with(PythonLogging);
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

fn refresh_threshold(py: Python<'_>) -> PyResult<()> {
    let level: u8 = logger(py)?.call_method0("getEffectiveLevel")?.extract()?;
    THRESHOLD.store(level, Ordering::Relaxed);
    Ok(())
}

fn python_level(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

struct PythonLogging;

impl<S: Subscriber> Layer<S> for PythonLogging {
    fn register_callsite(
        &self,
        _metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // The level may change at any time on the Python side; decide per event.
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        // Only the engine's own events: the PostgreSQL client's debug events quote the
        // statements they send, and a dump's statements may hold row data.
        metadata.target().starts_with("restore_core")
            && python_level(metadata.level()) >= THRESHOLD.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut text = EventText::default();
        event.record(&mut text);
        let level = python_level(event.metadata().level());

        // During interpreter shutdown there is nobody left to log to.
        let _ = Python::try_attach(|py| {
            let forwarded = logger(py).and_then(|logger| {
                logger.call_method1("log", (level, "%s", text.finish()))?;
                refresh_threshold(py)
            });
            if let Err(err) = forwarded {
                err.write_unraisable(py, None);
            }
        });
    }
}

/// An event as one line: its message, then `key=value` for each other field.
#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
}

impl EventText {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else {
            format!("{}{}", self.message, self.fields)
        }
    }
}

impl Visit for EventText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}
