//! restore-core: the securerestore engine for PostgreSQL logical backups.
//!
//! Given a plain-format pg_dump backup (uncompressed, gzip or zstd), the engine proves it is
//! the file that was sealed (sha256 of the stored bytes, computed while streaming), decodes it
//! (in parallel when the file is made of several gzip members or zstd frames), splits it into
//! statements and COPY blocks, and loads it over several connections into a staging database
//! that is renamed into place only when every check passed. A failed, cancelled or timed-out
//! restore drops its staging database: the target is never touched.
//!
//! Restores are jobs with an id, a status, progress, cancellation, a timeout and a stream of
//! updates. Everything starts from an [`Engine`]:
//!
//! ```no_run
//! use restore_core::{Engine, EngineConfig, ListOptions, RestoreOptions, RestoreRequest};
//!
//! # fn main() -> restore_core::Result<()> {
//! let url = "postgresql://postgres@localhost/postgres";
//! let engine = Engine::new(EngineConfig::new("/var/backups/pg").database_url(url))?;
//! for backup in engine.list_backups(&ListOptions::default())?.backups {
//!     println!("{} {} bytes {:?}", backup.name, backup.size, backup.checksum);
//! }
//! let started = engine.create_restore(RestoreRequest {
//!     backup_name: "backup_20240101_120000.sql.gz".into(),
//!     target_database: "restored_db".into(),
//!     options: RestoreOptions { verify: true, parallel_workers: 4, ..Default::default() },
//! })?;
//! let done = engine.wait_restore(&started.restore_id, None)?;
//! let (state, rows) = (done.status.as_str(), done.summary.rows);
//! println!("{state}: {rows} rows in {:.1} s", done.duration_seconds);
//! # Ok(())
//! # }
//! ```
//!
//! The pipeline, one module a step: `catalog` (the backup directory), `checksum`, `codec`
//! (format sniffing and decoding), `dump` (the lexer), `plan` (what each statement is and how
//! it may be scheduled), `load` (control and worker connections), `staging` (the database that
//! becomes the target), `job` (state, progress, events) and `service` (the [`Engine`]).

mod error;
mod ids;
mod job;
mod load;
mod plan;
mod server;
mod service;
mod staging;
mod verify;

pub mod catalog;
pub mod checksum;
pub mod codec;
pub mod dump;
pub mod local;

pub use catalog::{Backup, BackupPage, Catalog, ListOptions, SortKey, SortOrder};
pub use checksum::Checksum;
pub use error::{ErrorCode, RestoreError, Result};
pub use job::{
    OnError, Operation, RestoreOptions, RestoreRequest, RestoreState, RestoreStatus,
    RestoreSummary, RestoreUpdate, StatementError, VerificationStatus,
};
pub use local::{LocalServer, LocalStatus};
pub use server::Server;
pub use service::{runtime, Engine, EngineConfig, RestoreEvents};
pub use verify::{DecodeReport, VerifyReport};
