//! `securerestore`: the engine for people at a terminal.
//!
//! A thin shell over restore-core: it reads the command line, calls the engine, shows
//! progress, and maps the engine's error codes to exit statuses.

mod args;
mod progress;

use std::process::ExitCode;

use clap::Parser;
use restore_core::codec::{self, Format};
use restore_core::{
    Engine, EngineConfig, ErrorCode, ListOptions, LocalServer, OnError, RestoreError,
    RestoreOptions, RestoreRequest, RestoreState, RestoreStatus, SortKey, SortOrder,
};

use args::{
    BackupsArgs, Cli, Command, LocalAction, OnErrorArg, Order, PackArgs, PackFormat, RestoreArgs,
    Sort,
};

/// Exit status of a restore stopped by Ctrl-C.
const EXIT_CANCELLED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            ExitCode::from(exit_code(err.code()))
        }
    }
}

/// Writes an error for people: the message, its details, its code and request id.
fn report(err: &RestoreError) {
    eprintln!("securerestore: {}", err.message());
    if !err.details().is_empty() {
        let details = serde_json::Value::Object(err.details().clone());
        eprintln!("  details: {details}");
    }
    if let Some(hint) = hint(err.code()) {
        eprintln!("  hint: {hint}");
    }
    eprintln!("  code: {}  request: {}", err.code(), err.request_id());
}

/// What to do next, in the command's own terms, where the message cannot say it.
fn hint(code: ErrorCode) -> Option<&'static str> {
    match code {
        ErrorCode::DatabaseExists => {
            Some("--force replaces it, once the new copy has been restored beside it")
        }
        ErrorCode::BackupNotFound => Some("`securerestore backups` lists the backup directory"),
        _ => None,
    }
}

/// The documented exit status of each error code.
fn exit_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::InvalidRequest => 3,
        ErrorCode::BackupNotFound => 4,
        ErrorCode::DatabaseExists => 5,
        ErrorCode::RateLimitExceeded => 6,
        ErrorCode::RestoreFailed => 7,
        ErrorCode::InsufficientSpace => 8,
        _ => 1,
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // Other crates stay at warnings whatever -v says: the PostgreSQL client's debug events
    // quote the statements they send, and a dump's statements may hold row data.
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SECURERESTORE_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("warn,restore_core={level}"))
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn engine(cli: &Cli) -> Result<Engine, RestoreError> {
    let mut config = EngineConfig::new(&cli.backup_dir);
    config.database_url = cli.database_url.clone();
    config.local_state_dir = cli.state_dir.clone();
    config.decode_threads = cli.decode_threads;
    Engine::new(config)
}

fn run(cli: Cli) -> Result<ExitCode, RestoreError> {
    match &cli.command {
        Command::Backups(args) => backups(&engine(&cli)?, args),
        Command::Restore(args) => restore(&engine(&cli)?, args),
        Command::Seal { name } => {
            let backup = engine(&cli)?.seal(name)?;
            println!("{}  {}", backup.checksum.unwrap_or_default(), backup.name);
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            name,
            json,
            decode_only: true,
        } => {
            let report = engine(&cli)?.decode_backup(name)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                let mib = report.decoded_bytes as f64 / (1024.0 * 1024.0);
                println!(
                    "{}: {mib:.1} MiB decoded in {:.3} s ({:.1} MiB/s, {} threads)",
                    report.name,
                    report.seconds,
                    mib / report.seconds.max(1e-9),
                    report.threads
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { name, json, .. } => {
            let report = engine(&cli)?.verify_backup(name)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                println!("{report}");
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(exit_code(ErrorCode::RestoreFailed))
            })
        }
        Command::Pack(args) => pack(&engine(&cli)?, args),
        Command::Local { action } => local(&cli, action),
    }
}

fn backups(engine: &Engine, args: &BackupsArgs) -> Result<ExitCode, RestoreError> {
    let options = ListOptions {
        limit: args.limit,
        offset: args.offset,
        sort: match args.sort {
            Sort::CreatedAt => SortKey::CreatedAt,
            Sort::Size => SortKey::Size,
        },
        order: match args.order {
            Order::Asc => SortOrder::Asc,
            Order::Desc => SortOrder::Desc,
        },
    };
    let page = engine.list_backups(&options)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&page).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:>12}  {:<20}  {:<12}  CHECKSUM",
        "NAME", "SIZE", "CREATED", "STATUS"
    );
    for backup in &page.backups {
        let created = backup.created_at.format("%Y-%m-%d %H:%M:%S");
        let checksum = backup
            .checksum
            .as_deref()
            .map_or("-", |c| &c[..c.len().min(23)]);
        println!(
            "{:<40} {:>12}  {created:<20}  {:<12}  {checksum}",
            backup.name, backup.size, backup.status
        );
    }
    let shown = page.backups.len();
    println!("{shown} of {} backups (offset {})", page.total, page.offset);
    Ok(ExitCode::SUCCESS)
}

fn pack(engine: &Engine, args: &PackArgs) -> Result<ExitCode, RestoreError> {
    let format = match args.format {
        PackFormat::Gzip => Format::Gzip,
        PackFormat::Zstd => Format::Zstd,
    };
    let level = args.level.unwrap_or(codec::default_level(format));
    let name = match &args.name {
        Some(name) => name.clone(),
        None => codec::packed_name(&args.file, format),
    };
    let piece_bytes = args.piece_mib.saturating_mul(1 << 20);
    let backup = engine.pack(&args.file, &name, format, piece_bytes, level)?;
    println!(
        "{}  {} ({} bytes)",
        backup.checksum.unwrap_or_default(),
        backup.name,
        backup.size
    );
    Ok(ExitCode::SUCCESS)
}

fn restore(engine: &Engine, args: &RestoreArgs) -> Result<ExitCode, RestoreError> {
    let request = RestoreRequest {
        backup_name: args.name.clone(),
        target_database: args.target.clone(),
        options: RestoreOptions {
            verify: args.verify,
            force: args.force,
            parallel_workers: args.jobs,
            timeout_seconds: args.timeout,
            on_error: match args.on_error {
                OnErrorArg::Stop => OnError::Stop,
                OnErrorArg::Continue => OnError::Continue,
            },
            no_owner: args.no_owner,
            no_privileges: args.no_privileges,
        },
    };
    let started = engine.create_restore(request)?;
    let id = started.restore_id.clone();
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let engine = engine.clone();
        let id = id.clone();
        let interrupted = interrupted.clone();
        // A second Ctrl-C while the staging database is dropped is ignored: stopping then
        // would leave it behind until the next start.
        let _ = ctrlc::set_handler(move || {
            if !interrupted.swap(true, std::sync::atomic::Ordering::SeqCst) {
                eprintln!("\ncancelling {id} …");
                let _ = engine.cancel_restore(&id);
            }
        });
    }

    let status = progress::follow(engine, &started)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
    } else {
        print_summary(&status);
    }
    Ok(match status.status {
        RestoreState::Completed => ExitCode::SUCCESS,
        RestoreState::Cancelled => ExitCode::from(EXIT_CANCELLED),
        _ => {
            if let Some(err) = &status.error {
                report(err);
                ExitCode::from(exit_code(err.code()))
            } else {
                ExitCode::from(exit_code(ErrorCode::RestoreFailed))
            }
        }
    })
}

fn print_summary(status: &RestoreStatus) {
    let summary = &status.summary;
    println!(
        "{} {} into {}: {}",
        status.restore_id,
        status.backup_name,
        status.target_database,
        status.status.as_str()
    );
    println!(
        "  {} tables, {} rows, {} statements, {} skipped",
        summary.tables, summary.rows, summary.statements, summary.skipped
    );
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "  {:.1} MiB stored, {:.1} MiB of SQL, {:.2} s ({:.1} MiB/s of SQL)",
        mib(status.size_bytes),
        mib(summary.decoded_bytes),
        status.duration_seconds,
        mib(summary.decoded_bytes) / status.duration_seconds.max(1e-3)
    );
    if let Some(checksum) = &summary.checksum {
        let verification = status.verification_status.as_str();
        println!("  {checksum} (verification: {verification})");
    }
    for warning in &status.warnings {
        println!("  warning: {warning}");
    }
    if !status.errors.is_empty() {
        println!(
            "  {} statements failed and were skipped:",
            status.errors.len()
        );
        for error in status.errors.iter().take(20) {
            let object = error.object.as_deref().unwrap_or("-");
            println!("    line {} ({object}): {}", error.line, error.message);
        }
    }
}

fn local(cli: &Cli, action: &LocalAction) -> Result<ExitCode, RestoreError> {
    let dir = cli
        .state_dir
        .clone()
        .unwrap_or_else(LocalServer::default_state_dir);
    let server = LocalServer::new(dir);
    match action {
        LocalAction::Start { fast } => {
            let server = if *fast {
                server.fast_for_tests()
            } else {
                server
            };
            let status = server.start()?;
            println!("{}", status.url.unwrap_or_default());
        }
        LocalAction::Stop => server.stop()?,
        LocalAction::Status => {
            let status = server.status()?;
            println!(
                "{}",
                serde_json::to_string_pretty(&status).unwrap_or_default()
            );
            if !status.running {
                return Ok(ExitCode::from(1));
            }
        }
        LocalAction::Url => println!("{}", server.url()?),
    }
    Ok(ExitCode::SUCCESS)
}
