//! Running a dump's items against the staging database.
//!
//! The loader receives items in file order. Statements run in that order on one control
//! connection, runs of `INSERT`s sent without waiting for each answer. Each COPY block is loaded
//! whole by one worker, in batches of whole rows, in one transaction. With several workers the
//! loader reads on while a block loads, its rows waiting in the block's spool ([`spool`]), so
//! that the next blocks load on the other workers, as pg_restore loads one table per process;
//! a block waits for the first worker free. Batches of a table whose columns allow it are
//! rewritten in the binary COPY format on the engine's pool as a worker takes them up
//! ([`binary`]). In post-data, runs of index, constraint and foreign-key builds are spread over
//! the workers as their tables allow ([`schedule`]), each starting once the blocks of its tables
//! are in, beside the blocks still loading. Any other statement waits for every block, except
//! pg_dump's `setval` calls, which read no table. Statements that touch the database itself are
//! aimed at the staging database, and anything reaching beyond it is refused. Setting
//! statements are remembered and replayed on every worker.

mod binary;
mod schedule;
mod session;
mod spool;
mod worker;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::SinkExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, CopyInSink};

use crate::dump::{Item, MetaCommand, Statement, TocEntry};
use crate::error::{RestoreError, Result};
use crate::job::{OnError, Operation, Progress, StatementError};
use crate::plan::{
    answers_without_rows, classify, copy_table_name, copy_target, literal_setval, plain_copy,
    transaction_boundary, Action, Build, PlanOptions, Transaction,
};
use crate::server::{
    describe_db_error, execute_one, is_superuser, quote_ident, quote_literal, Server,
};
use crate::staging;
use binary::BinaryCopy;
use schedule::{next_startable, runs_alone, TableLocks};
use session::{Session, SessionSnapshot};
use spool::{Spool, SpoolBudget};
use worker::{CopyBlock, DbFailure, Freeze, Task, WorkerHandle};

/// How the loader works.
pub(crate) struct LoadSettings {
    pub(crate) workers: usize,
    pub(crate) on_error: OnError,
    pub(crate) plan: PlanOptions,
    /// The backup's name, for messages.
    pub(crate) source: String,
    pub(crate) restore_id: String,
    pub(crate) staging: String,
    /// Where COPY rows are converted to the binary format.
    pub(crate) pool: Arc<rayon::ThreadPool>,
}

/// What the loader leaves for the finalizing step.
#[derive(Debug, Default)]
pub(crate) struct LoadOutcome {
    /// `COMMENT ON DATABASE` statements of the dump, applied to the target after the swap
    /// (the staging database's own comment marks it until then).
    pub(crate) deferred_comments: Vec<String>,
    /// Whether the staging database was created.
    pub(crate) staging_created: bool,
}

/// Loads items into the staging database.
pub(crate) struct Loader {
    server: Server,
    admin: Arc<Client>,
    settings: LoadSettings,
    progress: Arc<Progress>,
    session: Session,
    control: Option<Arc<Client>>,
    /// Statements sent on the control connection, oldest first, not yet answered.
    in_flight: VecDeque<InFlight>,
    in_flight_bytes: usize,
    workers: Vec<WorkerHandle>,
    copy_failed: Arc<AtomicBool>,
    copy: Option<Arc<CopyBlock>>,
    copy_worker: usize,
    /// The current COPY block goes whole to one worker and nothing overlaps it.
    copy_serial: bool,
    unchecked: Vec<(Arc<CopyBlock>, u64)>,
    /// Blocks loaded whole by a worker each, from their spools: those loading, and those
    /// waiting for a worker.
    loads: Vec<ActiveLoad>,
    waiting: VecDeque<WaitingLoad>,
    /// The spool of the block being read, when it is one of those.
    spool: Option<Arc<Spool>>,
    budget: Arc<SpoolBudget>,
    /// The dump's transaction block open on the control connection.
    transaction: Option<OpenBlock>,
    /// A COPY block inside that transaction block, loaded on the control connection.
    control_copy: Option<ControlCopy>,
    run: Vec<Pending>,
    /// What sorting each table's rows into an index may take, from the COPY blocks read
    /// ([`SortSize`]), by the bare name of the table.
    sort_sizes: HashMap<String, SortSize>,
    /// The bare name of the table the block being read loads, and the bytes of it read.
    copy_table: Option<String>,
    copy_bytes: u64,
    dumped_db: Option<String>,
    dropped_db: Option<String>,
    dropped_line: u64,
    connected_db: Option<String>,
    create_options: Option<String>,
    outcome: LoadOutcome,
}

/// At most this many statements, and this many bytes of them, are sent on the control
/// connection before the first of them has answered.
const PIPELINE_STATEMENTS: usize = 256;
const PIPELINE_BYTES: usize = 8 << 20;

/// What the rows read ahead of the workers may take: in memory, then in temporary files.
const SPOOL_MEMORY: u64 = 32 << 20;
const SPOOL_DISK: u64 = 4 << 30;

/// The largest sort, as [`SortSize::estimate`] puts it, left to a B-tree build in the small sort
/// memory of a build beside others: with 16 MB the server merges about 60 sorted runs in one
/// pass, and 512 MiB makes at most 32 of them.
const SMALL_SORT_BYTES: u64 = 512 << 20;

/// What the COPY blocks of one table held: what sorting its rows into an index may take.
#[derive(Debug, Default, Clone, Copy)]
struct SortSize {
    bytes: u64,
    rows: u64,
}

impl SortSize {
    /// An upper estimate of the memory a sort of the table's rows takes in the server: their
    /// text, and for each row a sort slot, an index tuple header and allocation overhead.
    fn estimate(self) -> u64 {
        const PER_ROW: u64 = 64;
        self.bytes.saturating_add(self.rows.saturating_mul(PER_ROW))
    }
}

/// True for a B-tree build whose table's rows, all loaded by COPY, sort in one merge pass
/// within the small sort memory of a build beside others (the sizes its measurements covered).
/// A table without a COPY block may have been filled by `INSERT`s: it keeps the connection's
/// memory.
fn sorts_small(build: &Build, sizes: &HashMap<String, SortSize>) -> bool {
    build.is_btree()
        && build.tables().iter().all(|table| {
            let size = sizes.get(*table);
            size.is_some_and(|size| size.estimate() <= SMALL_SORT_BYTES)
        })
}

/// A block a worker loads whole from its spool.
struct ActiveLoad {
    worker: usize,
    block: Arc<CopyBlock>,
    table: Option<String>,
    done: oneshot::Receiver<()>,
}

/// A block waiting for a worker, its rows gathering in its spool.
struct WaitingLoad {
    block: Arc<CopyBlock>,
    spool: Arc<Spool>,
    session: Arc<SessionSnapshot>,
    table: Option<String>,
}

type Answer = Pin<Box<dyn Future<Output = std::result::Result<(), tokio_postgres::Error>> + Send>>;

/// A statement sent on the control connection whose answer has not been read yet.
struct InFlight {
    /// Only ever used through `&mut`; the mutex makes the loader shareable across the awaits
    /// of its `&self` methods without asking the future to be `Sync`.
    answer: Mutex<Answer>,
    line: u64,
    object: Option<String>,
    bytes: usize,
}

/// A transaction block of the dump, open on the control connection.
struct OpenBlock {
    /// The line of its `BEGIN`.
    line: u64,
    /// The session settings before it, in force again when it rolls back.
    session: Session,
    /// Failures recorded before it; a failure inside makes its `COMMIT` a rollback.
    errors_before: u64,
}

/// A COPY block loaded on the control connection, inside the dump's own transaction block,
/// where the workers could not see what the block did before it and would wait on its locks.
struct ControlCopy {
    /// `None` once the server refused the COPY; the rest of its rows are passed over.
    sink: Option<Pin<Box<CopyInSink<Bytes>>>>,
    line: u64,
    object: String,
    failure: Option<DbFailure>,
    /// The session's client encoding was changed for this COPY.
    converted: bool,
}

/// A post-data build waiting for its run to be scheduled.
struct Pending {
    sql: String,
    build: Build,
    line: u64,
    object: Option<String>,
}

fn object_of(toc: Option<&TocEntry>) -> Option<String> {
    let toc = toc?;
    let name = match &toc.schema {
        Some(schema) => format!("{schema}.{}", toc.name),
        None => toc.name.clone(),
    };
    Some(format!("{} {name}", toc.kind))
}

/// The operation a statement belongs to, from its header when it has one.
fn operation_of(toc: Option<&TocEntry>, build: bool) -> Operation {
    match toc.map(|toc| toc.kind.as_str()) {
        Some("TABLE DATA" | "SEQUENCE SET" | "BLOB" | "BLOBS" | "LARGE OBJECT" | "BLOB DATA") => {
            Operation::RestoringData
        }
        Some(
            "INDEX"
            | "CONSTRAINT"
            | "FK CONSTRAINT"
            | "CHECK CONSTRAINT"
            | "TRIGGER"
            | "INDEX ATTACH"
            | "RULE"
            | "POLICY"
            | "MATERIALIZED VIEW DATA",
        ) => Operation::BuildingIndexes,
        _ if build => Operation::BuildingIndexes,
        _ => Operation::RestoringSchema,
    }
}

impl Loader {
    pub(crate) fn new(
        server: Server,
        admin: Arc<Client>,
        settings: LoadSettings,
        progress: Arc<Progress>,
    ) -> Self {
        Loader {
            server,
            admin,
            settings,
            progress,
            session: Session::default(),
            control: None,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            workers: Vec::new(),
            copy_failed: Arc::new(AtomicBool::new(false)),
            copy: None,
            copy_worker: 0,
            copy_serial: false,
            unchecked: Vec::new(),
            loads: Vec::new(),
            waiting: VecDeque::new(),
            spool: None,
            budget: SpoolBudget::new(SPOOL_MEMORY, SPOOL_DISK),
            transaction: None,
            control_copy: None,
            run: Vec::new(),
            sort_sizes: HashMap::new(),
            copy_table: None,
            copy_bytes: 0,
            dumped_db: None,
            dropped_db: None,
            dropped_line: 0,
            connected_db: None,
            create_options: None,
            outcome: LoadOutcome::default(),
        }
    }

    /// Runs every item, then waits for all work to finish and be checked.
    pub(crate) async fn load(
        mut self,
        items: &mut mpsc::Receiver<Result<Item>>,
    ) -> (LoadOutcome, Result<()>) {
        let mut result = self.load_all(items).await;
        if result.is_err() {
            // What stopped the load (a refused statement, a lexer or encoding error) comes later
            // in the file than the statements still in flight: their failures come first, and
            // under `continue` they are recorded.
            if let Err(earlier) = self.drain().await {
                result = Err(earlier);
            }
            // The blocks still loading come before it too, but one may fail after a later
            // block or build: the failure earliest in the file is the one reported.
            if let Some(earlier) = self.failed_load().await {
                result = result.map_err(|stop| earliest(stop, earlier));
            }
        }
        self.outcome.staging_created = self.control.is_some() || self.outcome.staging_created;
        (std::mem::take(&mut self.outcome), result)
    }

    async fn load_all(&mut self, items: &mut mpsc::Receiver<Result<Item>>) -> Result<()> {
        while let Some(item) = items.recv().await {
            let size = match item? {
                Item::Statement(stmt) => {
                    let size = stmt.sql.len();
                    self.statement(stmt).await?;
                    size
                }
                Item::CopyStart(stmt) => {
                    let size = stmt.sql.len();
                    self.begin_copy(stmt).await?;
                    size
                }
                Item::CopyData(rows) => {
                    let size = rows.len();
                    self.copy_rows(rows).await?;
                    size
                }
                Item::CopyEnd { rows, .. } => {
                    self.end_copy(rows).await?;
                    0
                }
                Item::Meta(meta) => {
                    let size = meta.args.len();
                    self.meta(meta).await?;
                    size
                }
            };
            self.progress.count_loaded(size);
        }
        self.ensure_connected().await?;
        self.check_dropped()?;
        self.barrier().await?;
        if let Some(block) = &self.transaction {
            // psql would end here and its server roll the block back, reporting success.
            let why = "the dump ends inside this transaction block, which would be rolled back";
            return Err(self.refuse(block.line, None, why));
        }
        Ok(())
    }

    /// A dump may drop only the database it creates (`--clean --create`).
    fn check_dropped(&self) -> Result<()> {
        match &self.dropped_db {
            Some(dropped) if self.dumped_db.as_ref() != Some(dropped) => {
                let why = format!("drops database {dropped:?}, which the dump does not create");
                Err(self.refuse(self.dropped_line, None, &why))
            }
            _ => Ok(()),
        }
    }

    fn place(&self, line: u64, object: Option<&str>) -> String {
        match object {
            Some(object) => format!("{}, line {line} ({object})", self.settings.source),
            None => format!("{}, line {line}", self.settings.source),
        }
    }

    fn refuse(&self, line: u64, toc: Option<&TocEntry>, why: &str) -> RestoreError {
        let object = object_of(toc);
        RestoreError::failed(format!("refused, not run: {why}"))
            .context(self.place(line, object.as_deref()))
            .with_detail("line", line)
            .with_detail("object", object)
    }

    /// Reports a failed statement: fails the restore, or records it under `continue`.
    fn statement_failed(
        &self,
        line: u64,
        object: Option<String>,
        failure: DbFailure,
    ) -> Result<()> {
        if self.settings.on_error == OnError::Continue {
            tracing::debug!(line, "statement failed, continuing");
            self.progress.record_error(StatementError {
                line,
                object,
                message: failure.message,
                sqlstate: failure.sqlstate,
            });
            return Ok(());
        }
        let mut error = RestoreError::failed(failure.message)
            .context(self.place(line, object.as_deref()))
            .with_detail("file", self.settings.source.clone())
            .with_detail("line", line)
            .with_detail("object", object);
        if let Some(code) = failure.sqlstate {
            error = error.with_detail("sqlstate", code);
        }
        Err(error)
    }

    fn text(&self, stmt: &Statement) -> Result<String> {
        self.session
            .text(&stmt.sql)
            .map(|text| text.into_owned())
            .map_err(|why| {
                let object = object_of(stmt.toc.as_deref());
                RestoreError::failed(why)
                    .context(self.place(stmt.line, object.as_deref()))
                    .with_detail("line", stmt.line)
            })
    }

    async fn statement(&mut self, stmt: Statement) -> Result<()> {
        let toc = stmt.toc.clone();
        let mut action = classify(&stmt, self.settings.plan);
        if let Some(block) = &self.transaction {
            match action {
                // Inside the dump's transaction block only the control connection sees what the
                // block made, and a worker would wait on the locks it holds.
                Action::Concurrent(_) => action = Action::Barrier,
                // These are applied outside the control connection's transaction, which could
                // not roll them back; CREATE and DROP DATABASE cannot run in a block at all.
                Action::CreateDatabase { .. }
                | Action::DropDatabase { .. }
                | Action::DatabaseLevel { .. } => {
                    let why = format!(
                        "a statement about the database itself inside the transaction block \
                         opened at line {}",
                        block.line
                    );
                    return Err(self.refuse(stmt.line, toc.as_deref(), &why));
                }
                _ => {}
            }
        }
        match action {
            Action::Setting { name, value } => self.setting(&stmt, &name, value).await,
            Action::Concurrent(build) => {
                self.ensure_connected().await?;
                self.drain().await?;
                // A build waits for the blocks loaded from spools only when it runs, and only
                // for those of its tables.
                if !self.only_spooled() {
                    self.end_open_copy().await?;
                }
                let sql = self.text(&stmt)?;
                let object = object_of(toc.as_deref());
                self.run.push(Pending {
                    sql,
                    build,
                    line: stmt.line,
                    object,
                });
                Ok(())
            }
            Action::Barrier => {
                self.ensure_connected().await?;
                // pg_dump's `setval` calls between the data and the builds read no table: the
                // loads and builds go on beside them.
                let setval = literal_setval(&stmt.sql);
                if !(setval && self.only_spooled()) {
                    self.settle_workers().await?;
                }
                self.progress
                    .set_operation(operation_of(toc.as_deref(), false));
                let sql = self.text(&stmt)?;
                let pipelined = answers_without_rows(&stmt.sql);
                // An INSERT, the one statement pipelined, neither opens nor closes a block.
                let boundary = match pipelined {
                    true => None,
                    false => transaction_boundary(&stmt.sql),
                };
                match boundary {
                    Some(boundary) => {
                        let succeeded = self.run_now(&sql, stmt.line, toc.as_deref()).await?;
                        self.cross(boundary, &stmt, succeeded);
                        Ok(())
                    }
                    None => {
                        self.run_on_control(sql, stmt.line, toc.as_deref(), pipelined)
                            .await
                    }
                }
            }
            Action::Skip(reason) => {
                tracing::debug!(line = stmt.line, reason, "statement skipped");
                self.progress.count_skipped();
                Ok(())
            }
            Action::Refuse(why) => Err(self.refuse(stmt.line, toc.as_deref(), &why)),
            Action::DropDatabase { name } => {
                if self.control.is_some() || self.dropped_db.is_some() {
                    let why = format!("drops database {name:?} in the middle of the restore");
                    return Err(self.refuse(stmt.line, toc.as_deref(), &why));
                }
                self.dropped_db = Some(name);
                self.dropped_line = stmt.line;
                self.progress.count_skipped();
                Ok(())
            }
            Action::CreateDatabase {
                name,
                options,
                ignored,
            } => {
                let other = self
                    .dropped_db
                    .as_ref()
                    .is_some_and(|dropped| *dropped != name);
                if self.dumped_db.is_some() || self.control.is_some() || other {
                    let why = format!(
                        "creates database {name:?} besides the one restored: dumps of several \
                         databases (pg_dumpall) are not supported"
                    );
                    return Err(self.refuse(stmt.line, toc.as_deref(), &why));
                }
                self.dumped_db = Some(name);
                if !ignored.is_empty() {
                    self.progress.warn(format!(
                        "{}: CREATE DATABASE options left out: {}",
                        self.place(stmt.line, None),
                        ignored.join(", ")
                    ));
                }
                self.create_options = Some(options);
                self.progress.count_skipped();
                Ok(())
            }
            Action::DatabaseLevel { name, prefix, rest } => {
                self.drain().await?;
                self.database_level(&stmt, &name, &prefix, &rest).await
            }
        }
    }

    /// Follows the control connection in or out of a transaction block. A `BEGIN` the server
    /// refused (under `continue`) opened nothing; a block that ends in a rollback, asked for or
    /// forced by a failure inside it, takes its settings with it, as the server does.
    fn cross(&mut self, boundary: Transaction, stmt: &Statement, succeeded: bool) {
        match boundary {
            Transaction::Opens if succeeded && self.transaction.is_none() => {
                self.transaction = Some(OpenBlock {
                    line: stmt.line,
                    session: self.session.clone(),
                    errors_before: self.progress.error_count(),
                });
            }
            Transaction::Opens => {}
            Transaction::Commits | Transaction::RollsBack => {
                let Some(block) = self.transaction.take() else {
                    return;
                };
                let failed = self.progress.error_count() > block.errors_before;
                if failed || boundary == Transaction::RollsBack {
                    self.session.restore(block.session);
                }
            }
        }
    }

    async fn setting(&mut self, stmt: &Statement, name: &str, value: Option<String>) -> Result<()> {
        if name == "client_encoding" {
            let value = value.unwrap_or_else(|| "UTF8".into());
            self.session.set_encoding(&value).map_err(|err| {
                err.context(self.place(stmt.line, None))
                    .with_detail("line", stmt.line)
            })?;
            // Applied by the engine rather than sent, but applied all the same: the count
            // matches the statements `verify` finds in the dump.
            self.progress.count_statement();
            return Ok(());
        }
        let sql = self.text(stmt)?;
        if self.control.is_some() {
            self.barrier().await?;
            let control = self.control.as_ref().expect("connected");
            if let Err(err) = execute_one(control, &sql).await {
                let (message, sqlstate) = describe_db_error(&err);
                if sqlstate.as_deref() == Some("42704") {
                    // A parameter this server does not know (a newer pg_dump's setting): the
                    // restore does not depend on it.
                    self.progress.warn(format!(
                        "{}: setting skipped: {message}",
                        self.place(stmt.line, None)
                    ));
                    return Ok(());
                }
                return self.statement_failed(stmt.line, None, DbFailure { message, sqlstate });
            }
        }
        self.session.record(name, &sql);
        self.progress.count_statement();
        Ok(())
    }

    async fn database_level(
        &mut self,
        stmt: &Statement,
        name: &str,
        prefix: &str,
        rest: &str,
    ) -> Result<()> {
        let ours = self.dumped_db.as_deref().or(self.connected_db.as_deref()) == Some(name);
        if !ours {
            let why = format!("acts on database {name:?}, which is not the one restored");
            return Err(self.refuse(stmt.line, stmt.toc.as_deref(), &why));
        }
        let owner = rest.to_ascii_uppercase().contains("OWNER TO");
        if owner && self.settings.plan.no_owner {
            self.progress.count_skipped();
            return Ok(());
        }
        if prefix.to_ascii_uppercase().starts_with("COMMENT") {
            self.outcome
                .deferred_comments
                .push(format!("{prefix} {{target}}{rest}"));
            return Ok(());
        }
        self.ensure_staging().await?;
        let sql = format!("{prefix} {}{rest}", quote_ident(&self.settings.staging));
        if let Err(err) = execute_one(&self.admin, &sql).await {
            let (message, sqlstate) = describe_db_error(&err);
            let object = Some(format!("DATABASE {name}"));
            return self.statement_failed(stmt.line, object, DbFailure { message, sqlstate });
        }
        self.progress.count_statement();
        Ok(())
    }

    async fn meta(&mut self, meta: MetaCommand) -> Result<()> {
        let args = String::from_utf8_lossy(&meta.args).into_owned();
        match meta.name.as_str() {
            "restrict" | "unrestrict" => Ok(()),
            "encoding" => self.session.set_encoding(&args).map_err(|err| {
                err.context(self.place(meta.line, None))
                    .with_detail("line", meta.line)
            }),
            "connect" | "c" => {
                let Some(db) = connect_target(&args) else {
                    let why = "\\connect without a database name";
                    return Err(self.refuse(meta.line, meta.toc.as_deref(), why));
                };
                let expected = self.dumped_db.clone().or(self.connected_db.clone());
                if expected.as_ref().is_some_and(|expected| *expected != db) {
                    let why = format!(
                        "connects to database {db:?} as well: dumps of several databases \
                         (pg_dumpall) are not supported"
                    );
                    return Err(self.refuse(meta.line, meta.toc.as_deref(), &why));
                }
                if let Some(block) = &self.transaction {
                    let why = format!(
                        "\\connect inside the transaction block opened at line {}, which would \
                         be rolled back",
                        block.line
                    );
                    return Err(self.refuse(meta.line, meta.toc.as_deref(), &why));
                }
                self.barrier().await?;
                self.connected_db = Some(db);
                // A new psql connection starts with default settings; the dump sets them again.
                self.session = Session::default();
                if let Some(control) = &self.control {
                    control.batch_execute("RESET ALL").await.map_err(|err| {
                        RestoreError::failed(describe_db_error(&err).0)
                            .context(self.place(meta.line, None))
                    })?;
                }
                Ok(())
            }
            other => {
                let why = format!("the psql meta-command \\{other} is not allowed in a restore");
                Err(self.refuse(meta.line, meta.toc.as_deref(), &why))
            }
        }
    }

    async fn ensure_staging(&mut self) -> Result<()> {
        if self.outcome.staging_created {
            return Ok(());
        }
        self.check_dropped()?;
        self.progress.set_operation(Operation::CreatingDatabase);
        let options = self.create_options.as_deref();
        staging::create(
            &self.admin,
            &self.settings.staging,
            options,
            &self.settings.restore_id,
        )
        .await?;
        self.outcome.staging_created = true;
        Ok(())
    }

    async fn ensure_connected(&mut self) -> Result<()> {
        if self.control.is_some() {
            return Ok(());
        }
        self.ensure_staging().await?;
        let staging = self.settings.staging.clone();
        let superuser = is_superuser(&self.admin).await;
        let control = self.server.connect_for_load(&staging, superuser).await?;
        for sql in self.session.statements() {
            if let Err(err) = execute_one(&control, sql).await {
                let (message, _) = describe_db_error(&err);
                self.progress.warn(format!("setting skipped: {message}"));
            }
        }
        let mut workers = Vec::with_capacity(self.settings.workers);
        for id in 0..self.settings.workers {
            let client = self.server.connect_for_load(&staging, superuser).await?;
            let pool = self.settings.pool.clone();
            workers.push(worker::spawn(id, client, pool, self.copy_failed.clone()));
        }
        tracing::debug!(workers = workers.len(), database = %staging, "connected");
        self.control = Some(Arc::new(control));
        self.workers = workers;
        Ok(())
    }

    /// Runs a statement on the control connection; a `pipelined` one is sent without waiting
    /// for its answer.
    ///
    /// The server runs the statements of one connection one after another, each in its own
    /// transaction, as psql would send them; sending the next before the last has answered only
    /// saves the round trip, which is most of the time of a dump made of single-row `INSERT`s.
    /// Answers are read in order, so a failure is reported with its own line. Only statements
    /// whose answers hold no rows are pipelined: reading rows may need the client to look a type
    /// up with a query of its own, which would queue behind the statements sent after them.
    /// Every other statement, and anything that works on another connection, first waits for
    /// every answer ([`Loader::drain`]).
    async fn run_on_control(
        &mut self,
        sql: String,
        line: u64,
        toc: Option<&TocEntry>,
        pipelined: bool,
    ) -> Result<()> {
        let control = self
            .control
            .clone()
            .expect("connected before running statements");
        if !pipelined {
            return self.run_now(&sql, line, toc).await.map(|_| ());
        }
        let bytes = sql.len();
        let mut answer: Answer = Box::pin(async move { execute_one(&control, &sql).await });
        // One poll hands the statement to the connection, so statements leave in file order.
        let first = std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await;
        if let Poll::Ready(result) = first {
            return self.answered(line, object_of(toc), result);
        }
        let answer = InFlight {
            answer: Mutex::new(answer),
            line,
            object: object_of(toc),
            bytes,
        };
        self.in_flight_bytes += bytes;
        self.in_flight.push_back(answer);
        while self.in_flight.len() > PIPELINE_STATEMENTS || self.in_flight_bytes > PIPELINE_BYTES {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    /// Runs a statement on the control connection once every answer before it is in; returns
    /// whether the server took it (a failure recorded under `continue` is `false`).
    async fn run_now(&mut self, sql: &str, line: u64, toc: Option<&TocEntry>) -> Result<bool> {
        let control = self
            .control
            .clone()
            .expect("connected before running statements");
        self.drain().await?;
        let result = execute_one(&control, sql).await;
        let succeeded = result.is_ok();
        self.answered(line, object_of(toc), result)?;
        Ok(succeeded)
    }

    /// Waits for the answer of the oldest statement in flight on the control connection.
    async fn settle_oldest(&mut self) -> Result<()> {
        let Some(oldest) = self.in_flight.pop_front() else {
            return Ok(());
        };
        self.in_flight_bytes -= oldest.bytes;
        let answer = oldest
            .answer
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = answer.await;
        let answered = self.answered(oldest.line, oldest.object, result);
        if answered.is_err() {
            // The restore stops here; what was sent after it is not waited for.
            self.in_flight.clear();
            self.in_flight_bytes = 0;
        }
        answered
    }

    /// Waits for every statement in flight on the control connection, in order.
    async fn drain(&mut self) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    fn answered(
        &self,
        line: u64,
        object: Option<String>,
        result: std::result::Result<(), tokio_postgres::Error>,
    ) -> Result<()> {
        match result {
            Ok(()) => {
                self.progress.count_statement();
                Ok(())
            }
            Err(err) => {
                let (message, sqlstate) = describe_db_error(&err);
                self.statement_failed(line, object, DbFailure { message, sqlstate })
            }
        }
    }

    async fn begin_copy(&mut self, stmt: Statement) -> Result<()> {
        self.copy_table = copy_table_name(&stmt.sql);
        self.copy_bytes = 0;
        self.ensure_connected().await?;
        self.drain().await?;
        self.run_pending_builds().await?;
        self.progress.set_operation(Operation::RestoringData);
        let sql = self.text(&stmt)?;
        let (sql, switch_encoding) = self.copy_statement(&stmt, sql)?;
        if self.transaction.is_some() {
            return self.begin_control_copy(&stmt, &sql, switch_encoding).await;
        }
        // Rows checked by triggers (foreign keys of a hand-written schema, user triggers) may
        // depend on the rows of earlier blocks and of their own block: such a block waits for
        // everything before it and is loaded whole by one worker, as psql would.
        let serial = self.copy_serial || self.has_triggers(&stmt).await;
        if serial {
            self.end_open_copy().await?;
        }
        self.copy_serial = serial;
        let object =
            object_of(stmt.toc.as_deref()).unwrap_or_else(|| format!("COPY at line {}", stmt.line));
        let binary = match serial {
            false => self.binary_form(&stmt, &sql).await,
            // Triggers see what each COPY statement loads (transition tables, a foreign key to
            // the table itself checked at its end): the block stays one COPY, all text.
            true => None,
        };
        // A block may go in frozen when one worker loads it whole and no other block loads
        // meanwhile. The exclusive lock a frozen load holds on its table would otherwise stand
        // between the workers: another worker's open COPY may hold that table while its worker
        // waits for a task the loader cannot send, or the rows of each block may read the table
        // of the other, a deadlock the server ends by failing one of them.
        let alone = serial || self.workers.len() == 1;
        // With several workers, when a failure stops the restore, a block is loaded whole by
        // the first worker free, as pg_restore loads a table, while the loader reads on: the
        // next blocks go to the other workers, and the builds on a table start once its block
        // is in, beside the loads still running.
        let spooled = !serial && self.settings.on_error == OnError::Stop && self.workers.len() > 1;
        let freeze = match alone || spooled {
            true => frozen_form(&sql, binary.as_ref(), spooled),
            false => None,
        };
        tracing::debug!(line = stmt.line, binary = binary.is_some(), "COPY block");
        self.copy = Some(Arc::new(CopyBlock {
            sql,
            switch_encoding,
            line: stmt.line,
            object,
            binary,
            loaded: Default::default(),
            loaded_binary: Default::default(),
            failure: Mutex::new(None),
            freeze,
            spooled,
        }));
        self.copy_worker = (self.copy_worker + 1) % self.workers.len();
        if spooled {
            let spool = Arc::new(Spool::new(self.budget.clone()));
            self.spool = Some(spool.clone());
            self.waiting.push_back(WaitingLoad {
                block: self.copy.clone().expect("the block just made"),
                spool,
                session: self.session.snapshot(),
                table: self.copy_table.clone(),
            });
            self.start_loads().await?;
        }
        Ok(())
    }

    /// The COPY statement to send, and whether its rows need the session's client encoding
    /// switched to the dump's.
    ///
    /// Statement text goes to the server as UTF-8, but the rows of a dump in another encoding
    /// must be read in that one. Switching the session's encoding for the COPY does that, as
    /// long as the statement itself is ASCII, which reads the same either way. A statement with
    /// other characters (a table named `café`) is rebuilt with the `ENCODING` option instead,
    /// which works only on the rows; one whose options would have to be merged is refused.
    fn copy_statement(&self, stmt: &Statement, sql: String) -> Result<(String, bool)> {
        let Some(encoding) = self.session.encoding() else {
            return Ok((sql, false));
        };
        if sql.is_ascii() {
            return Ok((sql, true));
        }
        let Some(copy) = plain_copy(sql.as_bytes()) else {
            let why = format!(
                "a COPY with options naming non-ASCII identifiers in a {} dump",
                encoding.server_name
            );
            return Err(self.refuse(stmt.line, stmt.toc.as_deref(), &why));
        };
        let columns = match &copy.columns {
            Some(columns) => {
                let quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
                format!(" ({})", quoted.join(", "))
            }
            None => String::new(),
        };
        let rebuilt = format!(
            "COPY {}{columns} FROM stdin WITH (ENCODING {})",
            copy.table,
            quote_literal(&encoding.server_name)
        );
        Ok((rebuilt, false))
    }

    async fn copy_rows(&mut self, rows: Bytes) -> Result<()> {
        self.copy_bytes += rows.len() as u64;
        if self.control_copy.is_some() {
            return self.control_copy_rows(rows).await;
        }
        let Some(block) = self.copy.clone() else {
            return Ok(());
        };
        if let Some(spool) = self.spool.clone() {
            return self.spool_rows(&spool, rows).await;
        }
        if self.settings.on_error == OnError::Stop && self.copy_failed.load(Ordering::Acquire) {
            self.end_open_copy().await?;
            return self.check_failure(&block);
        }
        let task = Task::Batch {
            block,
            rows,
            session: self.session.snapshot(),
        };
        // A block not spooled goes whole to one worker: the only one, or under `continue` so
        // that a failure skips all of it, or a block whose rows fire triggers.
        self.send(self.copy_worker, task).await
    }

    /// How a COPY block's rows can go in the binary format: only for a plain `COPY … FROM
    /// stdin` in a UTF-8 dump, whose columns all have a binary codec, when a failure stops the
    /// restore. (Under `continue` a block is loaded in one COPY, so that a failure skips all of
    /// it; switching between binary and text batches would split it.)
    async fn binary_form(&self, stmt: &Statement, sql: &str) -> Option<BinaryCopy> {
        if !self.session.is_utf8() || self.settings.on_error == OnError::Continue {
            return None;
        }
        let copy = plain_copy(&stmt.sql)?;
        BinaryCopy::lookup(self.control.as_ref()?, sql, &copy).await
    }

    /// True when loading the table a COPY names (or any of its partitions) fires a trigger.
    async fn has_triggers(&self, stmt: &Statement) -> bool {
        let Some(table) = copy_target(&stmt.sql) else {
            return true;
        };
        let Some(control) = self.control.as_ref() else {
            return true;
        };
        // Bit 2 of tgtype marks triggers fired by INSERT: foreign-key checks and user
        // triggers; the referenced side's foreign-key triggers fire only on UPDATE and DELETE.
        let sql = "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgenabled <> 'D' \
                   AND (tgtype::int & 4) <> 0 AND (tgrelid = to_regclass($1) OR tgrelid IN \
                   (SELECT relid FROM pg_partition_tree(to_regclass($1)))))";
        match control.query_one(sql, &[&table]).await {
            Ok(row) => row.get(0),
            Err(_) => true,
        }
    }

    async fn end_copy(&mut self, rows: u64) -> Result<()> {
        self.count_sort(rows);
        if self.control_copy.is_some() {
            return self.end_control_copy(rows).await;
        }
        let Some(block) = self.copy.take() else {
            return Ok(());
        };
        if let Some(spool) = self.spool.take() {
            spool.finish();
            self.progress.count_copy(rows);
            self.unchecked.push((block, rows));
            return self.start_loads().await;
        }
        if rows == 0 {
            // A block without rows still goes to the server, which checks its statement: the
            // table and columns must exist, as they must for psql.
            let task = Task::Batch {
                block: block.clone(),
                rows: Bytes::new(),
                session: self.session.snapshot(),
            };
            self.send(self.copy_worker, task).await?;
        }
        if block.freeze.is_some() {
            let task = Task::EndBlock {
                block: block.clone(),
            };
            self.send(self.copy_worker, task).await?;
        }
        self.progress.count_copy(rows);
        self.unchecked.push((block, rows));
        Ok(())
    }

    async fn send(&self, worker: usize, task: Task) -> Result<()> {
        self.workers[worker]
            .tasks
            .send(task)
            .await
            .map_err(|_| self.worker_gone())
    }

    fn worker_gone(&self) -> RestoreError {
        RestoreError::failed("a worker connection ended unexpectedly")
    }

    /// Waits for every statement, COPY and build in flight, then checks what they loaded.
    async fn barrier(&mut self) -> Result<()> {
        self.drain().await?;
        self.settle_workers().await
    }

    /// Waits for the workers: runs the pending builds and closes the open COPY.
    async fn settle_workers(&mut self) -> Result<()> {
        self.run_pending_builds().await?;
        self.end_open_copy().await
    }

    /// Closes every worker's COPY and compares the rows the server counted with the dump's.
    async fn end_open_copy(&mut self) -> Result<()> {
        self.finish_loads().await?;
        if self.unchecked.is_empty() && self.copy.is_none() {
            return Ok(());
        }
        let mut answers = Vec::with_capacity(self.workers.len());
        for index in 0..self.workers.len() {
            let (done, answer) = oneshot::channel();
            self.send(index, Task::Flush { done }).await?;
            answers.push(answer);
        }
        for answer in answers {
            answer.await.map_err(|_| self.worker_gone())?;
        }
        self.copy_failed.store(false, Ordering::Release);
        for (block, expected) in std::mem::take(&mut self.unchecked) {
            self.check_block(&block, expected)?;
        }
        Ok(())
    }

    fn check_failure(&self, block: &CopyBlock) -> Result<()> {
        let failure = block.failure.lock().ok().and_then(|slot| slot.clone());
        match failure {
            Some(failure) => self.statement_failed(block.line, Some(block.object.clone()), failure),
            None => Ok(()),
        }
    }

    fn check_block(&self, block: &CopyBlock, expected: u64) -> Result<()> {
        if block.failure.lock().is_ok_and(|slot| slot.is_some()) {
            return self.check_failure(block);
        }
        let loaded = block.loaded.load(Ordering::Relaxed);
        if loaded != expected {
            return Err(self.rows_lost(block.line, &block.object, loaded, expected));
        }
        self.progress
            .count_binary_rows(block.loaded_binary.load(Ordering::Relaxed));
        Ok(())
    }

    fn rows_lost(&self, line: u64, object: &str, loaded: u64, expected: u64) -> RestoreError {
        let message =
            format!("the server stored {loaded} rows but the dump holds {expected} for this block");
        RestoreError::failed(message)
            .context(self.place(line, Some(object)))
            .with_detail("line", line)
            .with_detail("object", object.to_owned())
            .with_detail("rows_expected", expected)
            .with_detail("rows_loaded", loaded)
    }

    /// Opens a COPY on the control connection for a block inside the dump's transaction block.
    /// Its rows go as the dump has them, in the text format, in the dump's client encoding.
    async fn begin_control_copy(
        &mut self,
        stmt: &Statement,
        sql: &str,
        switch_encoding: bool,
    ) -> Result<()> {
        let control = self.control.clone().expect("connected before a COPY");
        let object =
            object_of(stmt.toc.as_deref()).unwrap_or_else(|| format!("COPY at line {}", stmt.line));
        tracing::debug!(line = stmt.line, "COPY block inside a transaction block");
        let mut copy = ControlCopy {
            sink: None,
            line: stmt.line,
            object,
            failure: None,
            converted: false,
        };
        let encoding = self
            .session
            .encoding()
            .filter(|_| switch_encoding)
            .map(|encoding| &encoding.server_name);
        let opened = async {
            if let Some(encoding) = encoding {
                let set = format!("SET client_encoding TO {}", quote_literal(encoding));
                control.batch_execute(&set).await?;
                copy.converted = true;
            }
            control.copy_in::<_, Bytes>(sql).await
        };
        match opened.await {
            Ok(sink) => copy.sink = Some(Box::pin(sink)),
            Err(err) => copy.failure = Some(DbFailure::from_pg(&err)),
        }
        self.control_copy = Some(copy);
        self.stop_on_control_copy_failure()
    }

    async fn control_copy_rows(&mut self, rows: Bytes) -> Result<()> {
        let copy = self
            .control_copy
            .as_mut()
            .expect("a COPY on the control connection");
        if let Some(sink) = copy.sink.as_mut() {
            if let Err(err) = sink.send(rows).await {
                copy.sink = None;
                copy.failure = Some(DbFailure::from_pg(&err));
            }
        }
        self.stop_on_control_copy_failure()
    }

    /// Under `stop`, a refused COPY ends the restore at once rather than after its last row.
    fn stop_on_control_copy_failure(&mut self) -> Result<()> {
        let failed = self
            .control_copy
            .as_ref()
            .is_some_and(|copy| copy.failure.is_some());
        if failed && self.settings.on_error == OnError::Stop {
            let copy = self
                .control_copy
                .take()
                .expect("a COPY on the control connection");
            let failure = copy.failure.expect("a failure");
            return self.statement_failed(copy.line, Some(copy.object), failure);
        }
        Ok(())
    }

    async fn end_control_copy(&mut self, expected: u64) -> Result<()> {
        let mut copy = self
            .control_copy
            .take()
            .expect("a COPY on the control connection");
        let control = self.control.clone().expect("connected before a COPY");
        let mut loaded = None;
        if let Some(mut sink) = copy.sink.take() {
            match sink.as_mut().finish().await {
                Ok(rows) => loaded = Some(rows),
                Err(err) => copy.failure = Some(DbFailure::from_pg(&err)),
            }
        }
        if copy.converted {
            // In a block the COPY aborted, this fails too; ending the block sets the encoding
            // back all the same, as the SET before the COPY is undone with it.
            if let Err(err) = control.batch_execute("SET client_encoding TO 'UTF8'").await {
                copy.failure.get_or_insert(DbFailure::from_pg(&err));
            }
        }
        self.progress.count_copy(expected);
        if let Some(failure) = copy.failure {
            return self.statement_failed(copy.line, Some(copy.object), failure);
        }
        match loaded {
            Some(loaded) if loaded != expected => {
                Err(self.rows_lost(copy.line, &copy.object, loaded, expected))
            }
            _ => Ok(()),
        }
    }

    /// Runs the buffered post-data builds over the workers, each starting as soon as a worker
    /// is free and its tables allow ([`schedule`]). Blocks waiting in spools go first to the
    /// workers that free up; a build waits for the blocks of its tables, not for the others.
    async fn run_pending_builds(&mut self) -> Result<()> {
        if self.run.is_empty() {
            return Ok(());
        }
        if !self.only_spooled() {
            self.end_open_copy().await?;
        }
        self.start_loads().await?;
        self.progress.set_operation(Operation::BuildingIndexes);
        let mut pending = std::mem::take(&mut self.run);
        let mut locks = TableLocks::default();
        let mut idle: Vec<usize> = (0..self.workers.len())
            .rev()
            .filter(|worker| !self.loads.iter().any(|load| load.worker == *worker))
            .collect();
        let mut running = FuturesUnordered::new();
        let snapshot = self.session.snapshot();
        let mut first_error = None;

        loop {
            if first_error.is_none() {
                while !idle.is_empty() && !self.waiting.is_empty() {
                    let worker = idle.pop().expect("an idle worker");
                    let load = self.waiting.pop_front().expect("a waiting block");
                    self.start_load(worker, load).await?;
                }
            }
            while first_error.is_none() && !idle.is_empty() {
                let free: Vec<usize> = (0..pending.len())
                    .filter(|&at| self.may_build(&pending[at].build))
                    .collect();
                let builds = free.iter().map(|&at| &pending[at].build);
                let Some(at) = next_startable(builds, &locks) else {
                    break;
                };
                let build = pending.remove(free[at]);
                let worker = idle.pop().expect("an idle worker");
                locks.take(&build.build);
                let pending_builds = pending.iter().map(|p| &p.build);
                let alone = self.loads.is_empty()
                    && runs_alone(pending_builds, &locks, running.len(), idle.len());
                let (done, answer) = oneshot::channel();
                let task = Task::Run {
                    sql: build.sql.clone(),
                    session: snapshot.clone(),
                    server_parallel: alone,
                    small_sort: sorts_small(&build.build, &self.sort_sizes),
                    done,
                };
                self.send(worker, task).await?;
                running.push(async move { (worker, build, answer.await) });
            }
            let loading = !self.loads.is_empty();
            if running.is_empty() && (pending.is_empty() || !loading || first_error.is_some()) {
                break;
            }
            let ended = tokio::select! {
                Some(build) = running.next(), if !running.is_empty() => Ended::Build(build),
                (at, answer) = std::future::poll_fn(|cx| poll_ended(&mut self.loads, cx)),
                    if loading => Ended::Load(at, answer.is_ok()),
            };
            match ended {
                Ended::Build((worker, build, answer)) => {
                    idle.push(worker);
                    locks.release(&build.build);
                    match answer {
                        Ok(Ok(())) => self.progress.count_statement(),
                        Ok(Err(failure)) => {
                            let failed = self.statement_failed(build.line, build.object, failure);
                            if let Err(err) = failed {
                                first_error.get_or_insert(err);
                            }
                        }
                        Err(_) => {
                            first_error.get_or_insert(self.worker_gone());
                        }
                    }
                }
                Ended::Load(at, answered) => {
                    let load = self.loads.swap_remove(at);
                    idle.push(load.worker);
                    let checked = match answered {
                        true => self.load_ended(&load.block),
                        false => Err(self.worker_gone()),
                    };
                    if let Err(err) = checked {
                        first_error.get_or_insert(err);
                    }
                }
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Adds the block just read, of `rows` rows, to its table's sort estimate.
    fn count_sort(&mut self, rows: u64) {
        if let Some(table) = self.copy_table.take() {
            let size = self.sort_sizes.entry(table).or_default();
            size.bytes += std::mem::take(&mut self.copy_bytes);
            size.rows += rows;
        }
    }

    /// True when every block still loading or unchecked came through a spool.
    fn only_spooled(&self) -> bool {
        self.unchecked.iter().all(|(block, _)| block.spooled)
    }

    /// Whether `build` may start beside the blocks still loading or waiting: none of them is
    /// of its tables. A block whose table is not known holds every build back.
    fn may_build(&self, build: &Build) -> bool {
        let loading = self.loads.iter().map(|load| &load.table);
        let waiting = self.waiting.iter().map(|load| &load.table);
        let tables = build.tables();
        loading.chain(waiting).all(|table| match table {
            Some(table) => !tables.contains(&table.as_str()),
            None => false,
        })
    }

    /// Puts rows of the block being read in its spool, first waiting for the workers while the
    /// spools hold all they may. Once a block has failed the restore stops: the block being
    /// read ends where it is and the failure is reported.
    async fn spool_rows(&mut self, spool: &Arc<Spool>, rows: Bytes) -> Result<()> {
        loop {
            if self.copy_failed.load(Ordering::Acquire) {
                spool.finish();
                self.spool = None;
                let block = self.copy.take().expect("a block being read");
                self.end_open_copy().await?;
                return self.check_failure(&block);
            }
            self.start_loads().await?;
            if !self.budget.is_full() {
                break;
            }
            let wait = std::time::Duration::from_millis(50);
            let _ = tokio::time::timeout(wait, self.budget.freed()).await;
        }
        spool.push(rows).map_err(|err| {
            let block = self.copy.as_ref().expect("a block being read");
            RestoreError::failed(format!("cannot set rows aside in a temporary file: {err}"))
                .context(self.place(block.line, Some(&block.object)))
        })
    }

    /// Notes the blocks that are in, then hands waiting blocks to the workers without one.
    /// Outside [`Loader::run_pending_builds`] no build runs, so a worker without a block is free.
    async fn start_loads(&mut self) -> Result<()> {
        let mut at = 0;
        while at < self.loads.len() {
            match self.loads[at].done.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => at += 1,
                Ok(()) => {
                    let load = self.loads.swap_remove(at);
                    self.load_ended(&load.block)?;
                }
                Err(oneshot::error::TryRecvError::Closed) => return Err(self.worker_gone()),
            }
        }
        while !self.waiting.is_empty() {
            let busy = |worker: &usize| self.loads.iter().any(|load| load.worker == *worker);
            let Some(worker) = (0..self.workers.len()).find(|worker| !busy(worker)) else {
                break;
            };
            let load = self.waiting.pop_front().expect("a waiting block");
            self.start_load(worker, load).await?;
        }
        Ok(())
    }

    async fn start_load(&mut self, worker: usize, load: WaitingLoad) -> Result<()> {
        let (done, answer) = oneshot::channel();
        let task = Task::Load {
            block: load.block.clone(),
            spool: load.spool,
            session: load.session,
            done,
        };
        self.send(worker, task).await?;
        self.loads.push(ActiveLoad {
            worker,
            block: load.block,
            table: load.table,
            done: answer,
        });
        Ok(())
    }

    /// Checks a block that is in, once its end has been read.
    fn load_ended(&mut self, block: &Arc<CopyBlock>) -> Result<()> {
        let Some(at) = self
            .unchecked
            .iter()
            .position(|(b, _)| Arc::ptr_eq(b, block))
        else {
            return Ok(());
        };
        let (block, expected) = self.unchecked.remove(at);
        self.check_block(&block, expected)
    }

    /// Once the restore has stopped, waits for the blocks already loading and returns the
    /// failure of the one earliest in the file, if any failed. The block being read ends where
    /// it is, and the blocks waiting for a worker are not loaded.
    async fn failed_load(&mut self) -> Option<RestoreError> {
        if let Some(spool) = self.spool.take() {
            spool.finish();
        }
        self.waiting.clear();
        let mut failed: Option<RestoreError> = None;
        while !self.loads.is_empty() {
            let (at, answer) = std::future::poll_fn(|cx| poll_ended(&mut self.loads, cx)).await;
            let load = self.loads.swap_remove(at);
            let checked = match answer {
                Ok(()) => self
                    .load_ended(&load.block)
                    .and_then(|()| self.check_failure(&load.block)),
                Err(_) => Err(self.worker_gone()),
            };
            if let Err(err) = checked {
                failed = Some(match failed {
                    Some(first) => earliest(first, err),
                    None => err,
                });
            }
        }
        failed
    }

    /// Waits for every block loading from a spool or waiting for a worker.
    async fn finish_loads(&mut self) -> Result<()> {
        loop {
            self.start_loads().await?;
            if self.loads.is_empty() {
                return Ok(());
            }
            let (at, answer) = std::future::poll_fn(|cx| poll_ended(&mut self.loads, cx)).await;
            let load = self.loads.swap_remove(at);
            if answer.is_err() {
                return Err(self.worker_gone());
            }
            self.load_ended(&load.block)?;
        }
    }
}

/// A plain COPY statement `sql` (and its binary form) with `FREEZE` added; `None` for any other
/// form, which is loaded only as written.
fn frozen_form(sql: &str, binary: Option<&BinaryCopy>, beside_others: bool) -> Option<Freeze> {
    let copy = plain_copy(sql.as_bytes())?;
    // As for the binary form: options go after `FROM stdin`, on a line of their own.
    let statement = sql.trim_end().strip_suffix(';').unwrap_or(sql).trim_end();
    Some(Freeze {
        table: copy.table,
        text_sql: format!("{statement}\n(FREEZE)"),
        binary_sql: binary.map(|form| form.frozen_sql.clone()),
        beside_others,
    })
}

/// Of two failures, the one about the earlier line of the dump; `first` on a tie. A failure
/// about no line (the dump could not be read) counts as after every line.
fn earliest(first: RestoreError, second: RestoreError) -> RestoreError {
    let line_of = |error: &RestoreError| {
        let line = error.details().get("line");
        line.and_then(|line| line.as_u64()).unwrap_or(u64::MAX)
    };
    match line_of(&second) < line_of(&first) {
        true => second,
        false => first,
    }
}

/// What the scheduler of builds waited for.
enum Ended<B> {
    Build(B),
    /// The load at this position in the loader's list, and whether its worker answered.
    Load(usize, bool),
}

/// The first of `loads` whose worker has answered.
fn poll_ended(
    loads: &mut [ActiveLoad],
    cx: &mut std::task::Context<'_>,
) -> Poll<(usize, std::result::Result<(), oneshot::error::RecvError>)> {
    for (at, load) in loads.iter_mut().enumerate() {
        if let Poll::Ready(answer) = Pin::new(&mut load.done).poll(cx) {
            return Poll::Ready((at, answer));
        }
    }
    Poll::Pending
}

/// The database a `\connect` names: `\connect db`, `\connect "My DB"` or pg_dump's
/// `\connect -reuse-previous=on "dbname='db'"`.
fn connect_target(args: &str) -> Option<String> {
    let arg = args
        .split_whitespace()
        .find(|word| !word.starts_with('-'))?;
    let rest = &args[args.find(arg)?..];
    let word = if let Some(quoted) = rest.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                } else {
                    break;
                }
            }
            name.push(c);
        }
        name
    } else {
        arg.to_owned()
    };
    if let Some(conninfo) = word.strip_prefix("dbname=") {
        let value = conninfo.trim();
        if let Some(quoted) = value.strip_prefix('\'') {
            let mut name = String::new();
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => name.extend(chars.next()),
                    '\'' => break,
                    c => name.push(c),
                }
            }
            return Some(name);
        }
        return value.split_whitespace().next().map(str::to_owned);
    }
    Some(word)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{connect_target, sorts_small, SortSize, SMALL_SORT_BYTES};
    use crate::plan::Build;

    #[test]
    fn only_b_trees_of_tables_loaded_by_copy_and_small_enough_sort_small() {
        let index = |table: &str, btree: bool| Build::Index {
            table: table.into(),
            shared: true,
            btree,
        };
        let mut sizes = HashMap::new();
        let rows = 1_200_000;
        sizes.insert(
            "events".to_owned(),
            SortSize {
                bytes: 330 << 20,
                rows,
            },
        );
        let big = SMALL_SORT_BYTES - rows * 64 + 1;
        sizes.insert("huge".to_owned(), SortSize { bytes: big, rows });
        sizes.insert("empty".to_owned(), SortSize::default());
        assert!(sorts_small(&index("events", true), &sizes));
        assert!(sorts_small(&index("empty", true), &sizes));
        assert!(!sorts_small(&index("events", false), &sizes));
        assert!(!sorts_small(&index("huge", true), &sizes));
        // Filled by INSERTs, or not at all: its size is not known.
        assert!(!sorts_small(&index("inserted", true), &sizes));
        let key = Build::ForeignKey {
            table: "events".into(),
            references: "empty".into(),
        };
        assert!(!sorts_small(&key, &sizes));
    }

    #[test]
    fn connect_targets_in_every_form_pg_dump_writes() {
        assert_eq!(connect_target("shop").as_deref(), Some("shop"));
        assert_eq!(
            connect_target("\"My \"\"DB\"\"\"").as_deref(),
            Some("My \"DB\"")
        );
        let reuse = "-reuse-previous=on \"dbname='sh\\'op'\"";
        assert_eq!(connect_target(reuse).as_deref(), Some("sh'op"));
        assert_eq!(connect_target("").as_deref(), None);
    }
}
