//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit status:
  0  success                    5  database_exists
  1  unexpected failure         6  rate_limit_exceeded
  2  usage error                7  restore_failed
  3  invalid_request            8  insufficient_space
  4  backup_not_found         130  cancelled (Ctrl-C)";

/// Restore PostgreSQL logical backups: verified, parallel, atomic.
#[derive(Debug, Parser)]
#[command(name = "securerestore", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Directory holding the backups.
    #[arg(
        long,
        global = true,
        env = "SECURERESTORE_BACKUP_DIR",
        default_value = "."
    )]
    pub(crate) backup_dir: PathBuf,

    /// Server to restore into (postgresql://…). Without it the PG* variables are used, or
    /// else the managed local PostgreSQL (see `local`).
    #[arg(
        long,
        global = true,
        env = "SECURERESTORE_DATABASE_URL",
        hide_env_values = true
    )]
    pub(crate) database_url: Option<String>,

    /// Where the managed local PostgreSQL keeps its files.
    #[arg(long, global = true, env = "SECURERESTORE_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,

    /// Threads decoding compressed backups (default: one per core).
    #[arg(long, global = true, env = "SECURERESTORE_DECODE_THREADS")]
    pub(crate) decode_threads: Option<usize>,

    /// More detail on standard error (-v phases, -vv each unit of work, -vvv everything).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the backups in the backup directory.
    Backups(BackupsArgs),
    /// Restore a backup into a new database (or replace one with --force).
    Restore(RestoreArgs),
    /// Compute a backup's sha256 and record it in NAME.sha256.
    Seal {
        /// The backup's file name.
        name: String,
    },
    /// Check a backup: its checksum against the recorded one, and that it decodes and splits
    /// cleanly to the end. Needs no database.
    Verify {
        /// The backup's file name.
        name: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Only decode the file and report the decoder's throughput.
        #[arg(long)]
        decode_only: bool,
    },
    /// Write a backup as many gzip members or zstd frames, which restores decode on every
    /// core (gunzip and zstd still read it as one stream), into the backup directory, sealed.
    Pack(PackArgs),
    /// Manage the local PostgreSQL used when no database is configured.
    Local {
        #[command(subcommand)]
        action: LocalAction,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PackArgs {
    /// The dump to pack (plain, gzip or zstd), anywhere on disk.
    pub(crate) file: PathBuf,
    /// Compression of the packed backup.
    #[arg(long, value_enum, default_value_t = PackFormat::Gzip)]
    pub(crate) format: PackFormat,
    /// Decoded MiB per piece.
    #[arg(long, default_value_t = 4)]
    pub(crate) piece_mib: usize,
    /// Compression level (gzip 0–9, zstd 1–22; default 6 and 3).
    #[arg(long)]
    pub(crate) level: Option<i32>,
    /// Name of the packed backup (default: the file's name with .gz or .zst).
    #[arg(long)]
    pub(crate) name: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PackFormat {
    Gzip,
    Zstd,
}

#[derive(Debug, Args)]
pub(crate) struct BackupsArgs {
    /// Backups per page (1–1000).
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: usize,
    /// Backups to skip.
    #[arg(long, default_value_t = 0)]
    pub(crate) offset: usize,
    /// Sort key.
    #[arg(long, value_enum, default_value_t = Sort::CreatedAt)]
    pub(crate) sort: Sort,
    /// Sort order.
    #[arg(long, value_enum, default_value_t = Order::Desc)]
    pub(crate) order: Order,
    /// Print the page as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Sort {
    #[value(name = "created_at")]
    CreatedAt,
    Size,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Order {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OnErrorArg {
    Stop,
    Continue,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The backup's file name in the backup directory.
    pub(crate) name: String,
    /// The database to create.
    #[arg(long, short = 't')]
    pub(crate) target: String,
    /// Check the backup's sha256 against its recorded checksum before swapping it in.
    #[arg(long)]
    pub(crate) verify: bool,
    /// Replace the target database if it exists (only once the restore succeeded).
    #[arg(long)]
    pub(crate) force: bool,
    /// Worker connections.
    #[arg(long, short = 'j', default_value_t = 2)]
    pub(crate) jobs: usize,
    /// Fail the restore after this many seconds.
    #[arg(long)]
    pub(crate) timeout: Option<u64>,
    /// What a failing statement does.
    #[arg(long, value_enum, default_value_t = OnErrorArg::Stop)]
    pub(crate) on_error: OnErrorArg,
    /// Skip ownership changes (as pg_restore -O).
    #[arg(long, short = 'O')]
    pub(crate) no_owner: bool,
    /// Skip GRANT and REVOKE (as pg_restore -x).
    #[arg(long, short = 'x')]
    pub(crate) no_privileges: bool,
    /// Print the final status as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LocalAction {
    /// Start it (creating it on first use).
    Start {
        /// Trade durability for speed (fsync off): for throwaway clusters, such as tests'.
        #[arg(long)]
        fast: bool,
    },
    /// Stop it.
    Stop,
    /// Show whether it runs, where, and its URL.
    Status,
    /// Print its URL.
    Url,
}
