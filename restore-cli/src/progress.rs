//! Following a restore: a progress bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use restore_core::{Engine, RestoreError, RestoreStatus};

/// How often plain lines are written when standard error is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Follows the restore until it ends and returns its final status.
pub(crate) fn follow(
    engine: &Engine,
    started: &RestoreStatus,
) -> Result<RestoreStatus, RestoreError> {
    let mut events = engine.subscribe(&started.restore_id)?;
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| bar(started.size_bytes));
    let mut last_line = Instant::now();
    let mut last_operation = None;

    loop {
        match events.next_status_blocking(Duration::from_millis(500)) {
            Ok(Some(status)) => {
                let operation = status.current_operation.map(|op| op.as_str()).unwrap_or("");
                match &bar {
                    Some(bar) => {
                        // Reading runs ahead of loading; the bar follows what reached the server.
                        let done = status.size_bytes * u64::from(status.progress) / 100;
                        bar.set_position(done);
                        bar.set_message(operation.to_owned());
                    }
                    None => {
                        let changed = last_operation != status.current_operation;
                        if changed || last_line.elapsed() >= LINE_EVERY {
                            // The percentage is of what reached the server; reading runs
                            // ahead of it, so the bytes say how far reading has gone.
                            eprintln!(
                                "{} {:>3}% {operation} ({} of {} bytes read)",
                                status.restore_id,
                                status.progress,
                                status.bytes_read,
                                status.size_bytes
                            );
                            last_line = Instant::now();
                            last_operation = status.current_operation;
                        }
                    }
                }
                if status.status.is_final() {
                    if let Some(bar) = &bar {
                        bar.finish_and_clear();
                    }
                    return Ok(status);
                }
            }
            Ok(None) => return engine.restore_status(&started.restore_id),
            Err(()) => continue,
        }
    }
}

fn bar(size: u64) -> ProgressBar {
    let bar = ProgressBar::new(size);
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} \
         ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
