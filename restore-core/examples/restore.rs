//! Restores one backup and follows its progress: the engine's API in one program.
//!
//! ```sh
//! cargo run -p restore-core --example restore -- BACKUP_DIR BACKUP_NAME TARGET_DB [DATABASE_URL]
//! ```
//!
//! Without a database URL the engine uses the `PG*` variables, or else the managed local
//! PostgreSQL.

use std::process::ExitCode;
use std::time::Duration;

use restore_core::{Engine, EngineConfig, RestoreOptions, RestoreRequest, RestoreState};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, name, target, rest @ ..] = args.as_slice() else {
        eprintln!("usage: restore BACKUP_DIR BACKUP_NAME TARGET_DB [DATABASE_URL]");
        return ExitCode::from(2);
    };
    let mut config = EngineConfig::new(dir);
    config.database_url = rest.first().cloned();

    match restore(config, name, target) {
        Ok(RestoreState::Completed) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("{err} [{}]", err.request_id());
            ExitCode::FAILURE
        }
    }
}

fn restore(config: EngineConfig, name: &str, target: &str) -> restore_core::Result<RestoreState> {
    let engine = Engine::new(config)?;
    let started = engine.create_restore(RestoreRequest {
        backup_name: name.to_owned(),
        target_database: target.to_owned(),
        options: RestoreOptions {
            parallel_workers: 4,
            ..Default::default()
        },
    })?;
    println!("{} started", started.restore_id);

    let mut events = engine.subscribe(&started.restore_id)?;
    while let Ok(Some(status)) = events.next_status_blocking(Duration::from_secs(3600)) {
        let operation = status.current_operation.map_or("", |op| op.as_str());
        println!("{:>3}% {operation}", status.progress);
    }

    let done = engine.restore_status(&started.restore_id)?;
    match &done.error {
        Some(err) => println!("{}: {}", done.status.as_str(), err.message()),
        None => println!(
            "{}: {} tables, {} rows in {:.2} s",
            done.status.as_str(),
            done.summary.tables,
            done.summary.rows,
            done.duration_seconds
        ),
    }
    Ok(done.status)
}
