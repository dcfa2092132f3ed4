//! One restore from start to end: read, decode, split, load, verify, swap.
//!
//! Three threads of work overlap: the codec's reader (which also hashes the stored bytes and
//! counts them for progress) and decoder, the lexer on its own thread, and the loader on the
//! engine's runtime. They are joined by bounded channels, so memory stays flat. The loader's
//! future is raced against cancellation and the timeout; whichever way it ends, a failed
//! restore drops its staging database and leaves the target as it was.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::{Job, Progress, RestoreState, VerificationStatus};
use crate::checksum::{Checksum, ChecksumSlot, HashingReader};
use crate::codec::{self, Format};
use crate::dump::{DumpLexer, Item, LexError, LexErrorKind};
use crate::error::{ErrorCode, RestoreError, Result};
use crate::job::Operation;
use crate::load::{LoadSettings, Loader};
use crate::plan::PlanOptions;
use crate::server::{quote_ident, Server};
use crate::staging;

/// Items in flight between the lexer and the loader; COPY items are up to 1 MiB each.
const ITEM_QUEUE: usize = 16;

/// Everything a restore needs besides its job.
pub(crate) struct RunContext {
    pub(crate) server: Server,
    pub(crate) path: PathBuf,
    pub(crate) format: Format,
    pub(crate) recorded: Option<Checksum>,
    pub(crate) pool: Arc<rayon::ThreadPool>,
}

/// Runs the restore to its end; the outcome is in the job's status.
pub(crate) async fn run(job: Arc<Job>, context: RunContext) {
    job.start();
    let ticker = tokio::spawn(publish_while_running(job.clone()));
    let staging = staging::staging_name(&job.request.target_database, &job.id);

    let outcome = match context.server.connect_admin().await {
        Ok(admin) => {
            let admin = Arc::new(admin);
            let outcome = restore(&job, &context, &admin, &staging).await;
            if outcome.is_err() {
                // Whatever happened, the staging database goes; the target was never touched.
                drop_staging(&job, &context.server, &admin, &staging).await;
            }
            outcome
        }
        Err(err) => Err(err),
    };

    ticker.abort();
    match outcome {
        Ok(()) => job.finish(RestoreState::Completed, None),
        Err(err) if job.cancel_requested() && err.code() == ErrorCode::RestoreFailed => {
            let reason = RestoreError::failed("the restore was cancelled")
                .with_detail("reason", "cancelled")
                .with_request_id(err.request_id());
            job.finish(RestoreState::Cancelled, Some(reason));
        }
        Err(err) => job.finish(RestoreState::Failed, Some(err)),
    }
}

/// Drops the staging database, on a new connection when the restore's own one was lost (the
/// dump may have ended it).
async fn drop_staging(job: &Job, server: &Server, admin: &Client, staging: &str) {
    if staging::drop(admin, staging).await.is_ok() {
        return;
    }
    let dropped = match server.connect_admin().await {
        Ok(fresh) => staging::drop(&fresh, staging).await,
        Err(err) => Err(err),
    };
    if let Err(err) = dropped {
        job.warn(format!(
            "staging database {staging} could not be dropped: {err}"
        ));
    }
}

async fn publish_while_running(job: Arc<Job>) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        job.publish();
    }
}

async fn restore(
    job: &Arc<Job>,
    context: &RunContext,
    admin: &Arc<Client>,
    staging: &str,
) -> Result<()> {
    let target = job.request.target_database.as_str();
    let options = &job.request.options;
    staging::claim_target(admin, target).await?;
    check_space(job, context, admin).await?;
    if !options.force && staging::database_exists(admin, target).await? {
        return Err(RestoreError::new(
            ErrorCode::DatabaseExists,
            format!("database {target:?} exists; use force to replace it"),
        )
        .with_detail("target_database", target));
    }

    let (items, checksum) = spawn_reader(job, context)?;
    let settings = LoadSettings {
        workers: options.parallel_workers,
        on_error: options.on_error,
        plan: PlanOptions {
            no_owner: options.no_owner,
            no_privileges: options.no_privileges,
        },
        source: job.request.backup_name.clone(),
        restore_id: job.id.clone(),
        staging: staging.to_owned(),
        pool: context.pool.clone(),
    };
    let loader = Loader::new(
        context.server.clone(),
        admin.clone(),
        settings,
        job.progress.clone(),
    );
    let mut items = items;
    let load = loader.load(&mut items);

    let timeout = options.timeout_seconds.map(Duration::from_secs);
    let deadline = async {
        match timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let (outcome, loaded) = tokio::select! {
        result = load => result,
        _ = job.cancelled.notified() => return Err(RestoreError::failed("cancelled")),
        _ = deadline => {
            let seconds = options.timeout_seconds.unwrap_or_default();
            return Err(RestoreError::failed(format!(
                "the restore did not finish within its timeout of {seconds} s"
            ))
            .with_detail("reason", "timeout")
            .with_detail("timeout_seconds", seconds));
        }
    };
    drop(items);
    loaded?;
    if job.cancel_requested() {
        return Err(RestoreError::failed("cancelled"));
    }

    job.progress.set_operation(Operation::VerifyingChecksum);
    let digest = checksum.get().ok_or_else(|| {
        RestoreError::failed("the backup was not read to its end").with_detail("reason", "short")
    })?;
    job.set_checksum(digest.to_string());
    if options.verify {
        let recorded = context.recorded.as_ref();
        if recorded != Some(&digest) {
            job.set_verification(VerificationStatus::Failed);
            let recorded = recorded.map(ToString::to_string);
            return Err(RestoreError::failed(format!(
                "{}: checksum mismatch: the file's sha256 is {digest}, the recorded one {}",
                job.request.backup_name,
                recorded.as_deref().unwrap_or("missing")
            ))
            .with_detail("actual", digest.to_string())
            .with_detail("expected", recorded));
        }
        job.set_verification(VerificationStatus::Verified);
    }

    job.progress.set_operation(Operation::Finalizing);
    if !outcome.staging_created {
        staging::create(admin, staging, None, &job.id).await?;
    }
    for warning in staging::swap(admin, staging, target, options.force).await? {
        job.warn(warning);
    }
    for comment in outcome.deferred_comments {
        let sql = comment.replace("{target}", &quote_ident(target));
        if let Err(err) = crate::server::execute_one(admin, &sql).await {
            job.warn(format!(
                "the dump's comment on the database was not applied: {err}"
            ));
        }
    }
    Ok(())
}

/// Checks the server's disk can hold the restore when its data directory is on this host.
async fn check_space(job: &Job, context: &RunContext, admin: &Client) -> Result<()> {
    if !context.server.is_on_this_host() {
        job.warn("space check skipped: the server is not on this host".into());
        return Ok(());
    }
    let directory = match admin.query_one("SHOW data_directory", &[]).await {
        Ok(row) => PathBuf::from(row.get::<_, String>(0)),
        Err(_) => {
            job.warn("space check skipped: the server does not show its data directory".into());
            return Ok(());
        }
    };
    let Ok(available) = fs4::available_space(&directory) else {
        job.warn("space check skipped: the data directory is not readable here".into());
        return Ok(());
    };
    let required = required_bytes(job.size_bytes, context.format);
    if available < required {
        return Err(RestoreError::new(
            ErrorCode::InsufficientSpace,
            format!(
                "the server's disk has {available} bytes free; restoring {} needs about {required}",
                job.request.backup_name
            ),
        )
        .with_detail("required_bytes", required)
        .with_detail("available_bytes", available));
    }
    Ok(())
}

/// An estimate of the space a restored database takes: the decoded dump, assumed to be a
/// fifth of the stored size when compressed, plus half again for indexes.
fn required_bytes(stored: u64, format: Format) -> u64 {
    let decoded = match format {
        Format::Plain => stored,
        Format::Gzip | Format::Zstd => stored.saturating_mul(5),
    };
    decoded.saturating_add(decoded / 2)
}

/// Starts the reader, decoder and lexer; returns the item channel and where the checksum of
/// the stored bytes appears once they were all read.
fn spawn_reader(
    job: &Arc<Job>,
    context: &RunContext,
) -> Result<(mpsc::Receiver<Result<Item>>, ChecksumSlot)> {
    let file = File::open(&context.path).map_err(|err| {
        RestoreError::failed(format!("cannot open {}: {err}", job.request.backup_name))
    })?;
    let progress = job.progress.clone();
    let hashing = HashingReader::new(file, progress.bytes_read.clone(), job.cancel_flag.clone());
    let checksum = hashing.checksum_slot();
    let decoded = codec::decoded_file(hashing, context.format, context.pool.clone())?;
    let source = job.request.backup_name.clone();
    let (sender, items) = mpsc::channel(ITEM_QUEUE);

    std::thread::Builder::new()
        .name("securerestore-lexer".into())
        .spawn(move || lex(decoded, &progress, &source, &sender))
        .map_err(|err| RestoreError::failed(format!("cannot start the lexer thread: {err}")))?;
    Ok((items, checksum))
}

fn lex(decoded: impl Read, progress: &Progress, source: &str, sender: &mpsc::Sender<Result<Item>>) {
    let counting = CountingReader {
        inner: decoded,
        count: &progress.decoded_bytes,
    };
    for item in DumpLexer::new(counting) {
        let item = item.map_err(|err| lex_error(err, source));
        let failed = item.is_err();
        if sender.blocking_send(item).is_err() || failed {
            return;
        }
    }
}

/// A failure of reading, decoding or splitting, naming the file and line.
fn lex_error(err: LexError, source: &str) -> RestoreError {
    if let LexErrorKind::Io(io) = err.kind() {
        if let Some(restore) = io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<RestoreError>())
        {
            return restore.clone().context(source);
        }
    }
    let line = err.line();
    // The context names the line; a message that starts with it would say it twice.
    let message = err.to_string();
    let message = message
        .strip_prefix(&format!("line {line}: "))
        .unwrap_or(&message);
    RestoreError::failed(message)
        .context(format!("{source}, line {line}"))
        .with_detail("file", source)
        .with_detail("line", line)
}

/// A reader that adds the bytes it hands out to a counter.
pub(crate) struct CountingReader<'a, R> {
    pub(crate) inner: R,
    pub(crate) count: &'a AtomicU64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
