//! The engine: the public entry point every surface (Rust, C, Python, the command) calls.
//!
//! An [`Engine`] holds the backup catalog, the server restores go to, and the table of jobs
//! (running ones and a bounded history of ended ones). All engines of a process share one tokio
//! runtime and one rayon pool ([`runtime`]), so the C and Python layers never create one per
//! call. Blocking methods are for callers without a runtime (the C ABI, the command, Python's
//! sync API); the `_async` twins run on any executor.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::catalog::{Backup, BackupPage, Catalog, ListOptions};
use crate::checksum::Checksum;
use crate::codec;
use crate::error::{ErrorCode, RestoreError, Result};
use crate::ids;
use crate::job::{self, Job, RestoreRequest, RestoreStatus, RestoreUpdate, RunContext};
use crate::local::LocalServer;
use crate::server::Server;
use crate::staging;

/// How an engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The directory holding the backups.
    pub backup_dir: PathBuf,
    /// Where restores go: a `postgresql://` URL or `key=value` string. `None` uses the `PG*`
    /// variables when set, else the managed local server (started on first use).
    pub database_url: Option<String>,
    /// Restores that may run at once; more are refused with `rate_limit_exceeded`.
    pub max_concurrent_restores: usize,
    /// Ended restores whose status stays available.
    pub history_limit: usize,
    /// Threads decoding compressed backups (default: the number of cores); only the first
    /// engine of a process sets it, since all share one pool.
    pub decode_threads: Option<usize>,
    /// Where the managed local server keeps its files, when it is used.
    pub local_state_dir: Option<PathBuf>,
}

impl EngineConfig {
    /// A configuration with the documented defaults for `backup_dir`.
    pub fn new(backup_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            backup_dir: backup_dir.into(),
            database_url: None,
            max_concurrent_restores: 5,
            history_limit: 100,
            decode_threads: None,
            local_state_dir: None,
        }
    }

    /// Sets the database URL.
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }
}

/// The restore engine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Arc<rayon::ThreadPool>,
    catalog: Catalog,
    config: EngineConfig,
    server: OnceLock<Server>,
    jobs: Mutex<JobTable>,
}

/// The process's runtime, on which every engine runs its restores. Bindings that expose async
/// APIs (Python's asyncio) run their futures on it too.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("securerestore")
            .enable_all()
            .build()
            // Without a runtime no restore can run at all; there is nothing to fall back to.
            .expect("the securerestore runtime starts")
    })
}

/// The process's pool for decoding compressed backups.
fn decode_pool(threads: Option<usize>) -> Result<Arc<rayon::ThreadPool>> {
    static POOL: OnceLock<Arc<rayon::ThreadPool>> = OnceLock::new();
    if let Some(pool) = POOL.get() {
        return Ok(pool.clone());
    }
    let mut builder = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("sr-decode-{i}"));
    if let Some(threads) = threads {
        builder = builder.num_threads(threads);
    }
    let pool = builder
        .build()
        .map_err(|err| RestoreError::failed(format!("cannot start the decode pool: {err}")))?;
    Ok(POOL.get_or_init(|| Arc::new(pool)).clone())
}

#[derive(Default)]
struct JobTable {
    jobs: HashMap<String, Arc<Job>>,
    order: VecDeque<String>,
}

impl Engine {
    /// An engine over `config`. Fails when the backup directory is unusable.
    pub fn new(config: EngineConfig) -> Result<Engine> {
        let catalog = Catalog::open(&config.backup_dir)?;
        if config.max_concurrent_restores == 0 {
            return Err(RestoreError::invalid(
                "max_concurrent_restores must be at least 1",
            ));
        }
        let pool = decode_pool(config.decode_threads)?;
        let inner = Inner {
            pool,
            catalog,
            config,
            server: OnceLock::new(),
            jobs: Mutex::new(JobTable::default()),
        };
        Ok(Engine {
            inner: Arc::new(inner),
        })
    }

    fn runtime(&self) -> &'static Runtime {
        runtime()
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, JobTable> {
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The backup catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// A page of backups.
    pub fn list_backups(&self, options: &ListOptions) -> Result<BackupPage> {
        self.inner.catalog.list(options)
    }

    /// One backup's description.
    pub fn backup(&self, name: &str) -> Result<Backup> {
        self.inner.catalog.backup(name)
    }

    /// Computes a backup's sha256 and records it beside the file.
    pub fn seal(&self, name: &str) -> Result<Backup> {
        self.inner.catalog.seal(name)
    }

    /// Writes `input` (plain, gzip or zstd, anywhere on disk) into the backup directory as
    /// `name`: gzip members or zstd frames of `piece_bytes` decoded bytes each, compressed in
    /// parallel, which restores decode on every core; `gunzip` and `zstd -d` read it as one
    /// stream. The new backup is sealed.
    pub fn pack(
        &self,
        input: &std::path::Path,
        name: &str,
        format: codec::Format,
        piece_bytes: usize,
        level: i32,
    ) -> Result<Backup> {
        let output = self.inner.catalog.path_for_new(name)?;
        codec::pack(
            input,
            &output,
            format,
            piece_bytes,
            level,
            self.inner.pool.clone(),
        )?;
        // A backup that cannot be sealed is not left behind unsealed.
        self.inner.catalog.seal(name).inspect_err(|_| {
            let _ = std::fs::remove_file(&output);
        })
    }

    /// Reads a whole backup without a database: its checksum against the recorded one, and
    /// that it decodes and splits cleanly to the end.
    pub fn verify_backup(&self, name: &str) -> Result<crate::VerifyReport> {
        crate::verify::verify(&self.inner.catalog, name, self.inner.pool.clone())
    }

    /// Decodes a whole backup and measures how long that took: the decoder's throughput.
    pub fn decode_backup(&self, name: &str) -> Result<crate::DecodeReport> {
        crate::verify::decode_only(&self.inner.catalog, name, self.inner.pool.clone())
    }

    /// The server restores go to, resolved on first use; the managed local server is started
    /// when nothing else is configured. Staging databases left by dead processes are dropped
    /// then.
    pub async fn server_async(&self) -> Result<Server> {
        if let Some(server) = self.inner.server.get() {
            return Ok(server.clone());
        }
        let config = &self.inner.config;
        let server = match &config.database_url {
            Some(url) => Server::from_url(url)?,
            None => match Server::from_pg_env() {
                Some(server) => server?,
                None => {
                    let dir = config
                        .local_state_dir
                        .clone()
                        .unwrap_or_else(LocalServer::default_state_dir);
                    let url = tokio::task::spawn_blocking(move || {
                        let local = LocalServer::new(dir);
                        local.start()?;
                        local.url()
                    })
                    .await
                    .map_err(|err| RestoreError::failed(format!("local server start: {err}")))??;
                    Server::from_url(&url)?
                }
            },
        };
        let admin = server.connect_admin().await?;
        let dropped = staging::drop_abandoned(&admin).await?;
        if !dropped.is_empty() {
            tracing::info!(count = dropped.len(), "dropped abandoned staging databases");
        }
        Ok(self.inner.server.get_or_init(|| server).clone())
    }

    /// Blocking form of [`Engine::server_async`].
    pub fn server(&self) -> Result<Server> {
        self.runtime().block_on(self.server_async())
    }

    /// Starts a restore and returns at once with its status (`pending` or `in_progress`).
    ///
    /// Refused before anything is written: an invalid name or option (`invalid_request`), a
    /// missing backup (`backup_not_found`), `verify` of a backup without a recorded checksum
    /// (`invalid_request`), an existing target without `force` or a target another restore is
    /// writing (`database_exists`), too many restores at once (`rate_limit_exceeded`).
    pub async fn create_restore_async(&self, request: RestoreRequest) -> Result<RestoreStatus> {
        let request_id = ids::request_id();
        let status = self
            .create(request)
            .await
            .map_err(|err| err.with_request_id(&request_id))?;
        Ok(status)
    }

    /// Blocking form of [`Engine::create_restore_async`]. Not to be called from inside an async
    /// runtime.
    pub fn create_restore(&self, request: RestoreRequest) -> Result<RestoreStatus> {
        self.runtime().block_on(self.create_restore_async(request))
    }

    async fn create(&self, request: RestoreRequest) -> Result<RestoreStatus> {
        request.options.validate()?;
        let catalog = &self.inner.catalog;
        let path = catalog.resolve(&request.backup_name)?;
        let backup = catalog.backup(&request.backup_name)?;
        let recorded: Option<Checksum> = catalog.recorded_checksum(&request.backup_name)?;
        if request.options.verify && recorded.is_none() {
            return Err(RestoreError::invalid(format!(
                "backup {} has no recorded checksum to verify against; seal it first",
                request.backup_name
            ))
            .with_detail("backup_name", request.backup_name.clone()));
        }
        let format = codec::sniff_file(&path)?;
        let server = self.server_async().await?;
        staging::validate_target(&request.target_database, server.maintenance_db())?;
        self.admit(&request)?;
        let admin = server.connect_admin().await?;
        let target = &request.target_database;
        if !request.options.force && staging::database_exists(&admin, target).await? {
            return Err(RestoreError::new(
                ErrorCode::DatabaseExists,
                format!("database {target:?} exists; use force to replace it"),
            )
            .with_detail("target_database", target.clone()));
        }
        drop(admin);

        let job = Job::new(ids::restore_id(), request, backup.size);
        let context = RunContext {
            server,
            path,
            format,
            recorded,
            pool: self.inner.pool.clone(),
        };
        {
            let mut table = self.jobs();
            self.admit_locked(&table, &job.request)?;
            table.jobs.insert(job.id.clone(), job.clone());
            table.order.push_back(job.id.clone());
            self.evict_locked(&mut table);
        }
        tracing::info!(restore_id = %job.id, backup = %job.request.backup_name, "restore accepted");
        self.runtime().spawn(job::run(job.clone(), context));
        Ok(job.status())
    }

    fn admit(&self, request: &RestoreRequest) -> Result<()> {
        let table = self.jobs();
        self.admit_locked(&table, request)
    }

    fn admit_locked(&self, table: &JobTable, request: &RestoreRequest) -> Result<()> {
        let running: Vec<&Arc<Job>> = table.jobs.values().filter(|job| !job.is_final()).collect();
        let limit = self.inner.config.max_concurrent_restores;
        if running.len() >= limit {
            return Err(RestoreError::new(
                ErrorCode::RateLimitExceeded,
                format!("{limit} restores are running; try again when one has ended"),
            )
            .with_detail("limit", limit)
            .with_detail("retry_after_seconds", 5));
        }
        let same = running
            .iter()
            .find(|job| job.request.target_database == request.target_database);
        if let Some(job) = same {
            return Err(RestoreError::new(
                ErrorCode::DatabaseExists,
                format!(
                    "restore {} is already writing database {:?}",
                    job.id, request.target_database
                ),
            )
            .with_detail("restore_id", job.id.clone()));
        }
        Ok(())
    }

    fn evict_locked(&self, table: &mut JobTable) {
        let limit = self.inner.config.history_limit;
        while table.order.len() > limit {
            let Some(at) = table.order.iter().position(|id| table.jobs[id].is_final()) else {
                break;
            };
            if let Some(id) = table.order.remove(at) {
                table.jobs.remove(&id);
            }
        }
    }

    fn job(&self, restore_id: &str) -> Result<Arc<Job>> {
        self.jobs().jobs.get(restore_id).cloned().ok_or_else(|| {
            RestoreError::invalid(format!("no restore with id {restore_id:?} is known"))
                .with_detail("restore_id", restore_id)
        })
    }

    /// The status of a restore, running or ended (within the history).
    pub fn restore_status(&self, restore_id: &str) -> Result<RestoreStatus> {
        Ok(self.job(restore_id)?.status())
    }

    /// Statuses of the known restores, newest first.
    pub fn list_restores(&self) -> Vec<RestoreStatus> {
        let table = self.jobs();
        table
            .order
            .iter()
            .rev()
            .filter_map(|id| table.jobs.get(id))
            .map(|j| j.status())
            .collect()
    }

    /// Asks a restore to stop; its staging database is dropped and it ends `cancelled`.
    /// Cancelling an ended restore changes nothing and returns its status.
    pub fn cancel_restore(&self, restore_id: &str) -> Result<RestoreStatus> {
        let job = self.job(restore_id)?;
        if job.cancel() {
            tracing::info!(restore_id, "cancel requested");
        }
        Ok(job.status())
    }

    /// Waits until the restore ends, or `timeout` passes; returns its status then (final or
    /// not).
    pub async fn wait_restore_async(
        &self,
        restore_id: &str,
        timeout: Option<Duration>,
    ) -> Result<RestoreStatus> {
        let job = self.job(restore_id)?;
        let mut watcher = job.watch();
        let ended = watcher.wait_for(|status| status.status.is_final());
        match timeout {
            Some(limit) => {
                let _ = tokio::time::timeout(limit, ended).await;
            }
            None => {
                let _ = ended.await;
            }
        }
        Ok(job.status())
    }

    /// Blocking form of [`Engine::wait_restore_async`].
    pub fn wait_restore(
        &self,
        restore_id: &str,
        timeout: Option<Duration>,
    ) -> Result<RestoreStatus> {
        self.runtime()
            .block_on(self.wait_restore_async(restore_id, timeout))
    }

    /// A stream of `restore_update` events for a restore, starting with its current state.
    pub fn subscribe(&self, restore_id: &str) -> Result<RestoreEvents> {
        let job = self.job(restore_id)?;
        let receiver = job.watch();
        Ok(RestoreEvents {
            receiver,
            first: true,
            ended: false,
            engine: self.clone(),
        })
    }
}

/// Status updates of one restore. Intermediate values may be skipped when the reader is
/// slower than the restore; the final one never is.
pub struct RestoreEvents {
    receiver: watch::Receiver<RestoreStatus>,
    first: bool,
    ended: bool,
    engine: Engine,
}

impl RestoreEvents {
    /// The next update, or `None` after the final one.
    pub async fn next(&mut self) -> Option<RestoreUpdate> {
        self.next_status().await.map(|status| status.update())
    }

    /// The next full status, or `None` after the final one.
    pub async fn next_status(&mut self) -> Option<RestoreStatus> {
        if self.ended {
            return None;
        }
        if !self.first {
            self.receiver.changed().await.ok()?;
        }
        self.first = false;
        let status = self.receiver.borrow_and_update().clone();
        self.ended = status.status.is_final();
        Some(status)
    }

    /// Blocking form of [`RestoreEvents::next_status`], waiting at most `timeout`; `Ok(None)`
    /// after the final status, `Err(())` when the time ran out.
    #[allow(clippy::result_unit_err)]
    pub fn next_status_blocking(
        &mut self,
        timeout: Duration,
    ) -> std::result::Result<Option<RestoreStatus>, ()> {
        let engine = self.engine.clone();
        engine
            .runtime()
            .block_on(async { tokio::time::timeout(timeout, self.next_status()).await })
            .map_err(|_| ())
    }
}
