//! Worker connections: COPY batches and concurrent builds.
//!
//! Each worker owns one connection to the staging database and a small queue of tasks. A batch
//! of COPY rows is streamed into the COPY the worker has open for that block, opening one when
//! needed and closing the previous one when the block changes; a statement is run as it is.
//! A batch of a block that can go in the binary format is converted on the engine's pool when
//! the worker takes it up (so memory holds one converted batch per worker, whatever the queues
//! hold) and goes into a binary COPY of the block; one left as text goes into a text COPY, so a
//! block may take both.
//! Before any work the worker catches up with the dump's session settings. A flush closes the
//! open COPY so the loader can compare the rows the server counted with the rows in the dump.
//!
//! A block one worker loads whole, while no other block loads, may go in with `FREEZE`
//! ([`Freeze`]): its rows are stored already frozen and visible to all, so the index and
//! foreign-key builds that read the table next neither look each row's transaction up nor write
//! the page again to note the answer. PostgreSQL allows it only in the transaction that created
//! or emptied the table, so the worker opens one for the block, locks the table, and truncates
//! it when it is a plain table that holds no rows, that nothing references and that no truncate
//! trigger watches; otherwise the block is loaded as any other.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, CopyInSink, SimpleQueryMessage};

use super::binary::{self, BinaryCopy};
use super::session::SessionSnapshot;
use super::spool::Spool;
use crate::server::{describe_db_error, execute_one, quote_literal};

/// `maintenance_work_mem` of a B-tree build that runs beside other work, without the server's
/// parallel workers. A smaller sort is faster there: on 2 cores, building indexes of 1.2–2 M
/// rows (integer, enum, uuid and text keys) took 15–30% less time with 16 MB than with 256 MB
/// (the server then sorts small runs and merges them, which beat one large sort in memory), and
/// a restore of the benchmark's dump with 2 workers 0.2–0.6 s less. A build alone keeps the
/// connection's 256 MB, which lets the server sort with parallel workers (at 16 MB it would
/// not), and other methods (GIN above all) keep it too, as do the B-trees of tables too large
/// to sort in one merge pass in 16 MB.
const SIDE_BY_SIDE_SORT_MEMORY: &str = "16MB";

/// One `COPY … FROM stdin` block of the dump, loaded by one or more workers.
#[derive(Debug)]
pub(crate) struct CopyBlock {
    /// The COPY statement, as UTF-8 text.
    pub(crate) sql: String,
    /// The session's client encoding is switched to the dump's for the rows.
    pub(crate) switch_encoding: bool,
    /// Where the block starts in the dump.
    pub(crate) line: u64,
    /// The object it loads, for messages: `TABLE DATA public.rental`.
    pub(crate) object: String,
    /// How its rows go in the binary format, when they can.
    pub(crate) binary: Option<BinaryCopy>,
    /// Rows the server reported for this block so far.
    pub(crate) loaded: AtomicU64,
    /// Of those, the rows it took in the binary format.
    pub(crate) loaded_binary: AtomicU64,
    /// The first failure of this block.
    pub(crate) failure: Mutex<Option<DbFailure>>,
    /// How the block goes in frozen, when one worker loads all of it and nothing else loads
    /// meanwhile.
    pub(crate) freeze: Option<Freeze>,
    /// The block is loaded whole by one worker from its spool, in one transaction.
    pub(crate) spooled: bool,
}

/// A COPY block's statements with the `FREEZE` option, and the table they load.
#[derive(Debug)]
pub(crate) struct Freeze {
    /// The table, quoted for SQL as the statement names it.
    pub(crate) table: String,
    /// The text statement with `FREEZE` added.
    pub(crate) text_sql: String,
    /// The binary statement with `FREEZE` added, when the block has a binary form.
    pub(crate) binary_sql: Option<String>,
    /// Other blocks load at the same time, on other workers.
    pub(crate) beside_others: bool,
}

/// Whether the table named `table` (quoted) may be emptied for a frozen load, asked inside the
/// transaction that holds its lock: a plain table, not a partition, holding no rows, without
/// row security, which no foreign key references (TRUNCATE would refuse) and no truncate
/// trigger watches (it would fire), and which the session may truncate.
///
/// `beside_others`: other blocks load meanwhile. Then the table's rows must not be able to read
/// another table as they go in (a default or check calling a function of the dump's own, or a
/// domain, which may), since two frozen loads reading each other's tables would deadlock on
/// the locks they hold.
fn freeze_check_sql(table: &str, beside_others: bool) -> String {
    let reads_nothing = match beside_others {
        false => "",
        true => {
            " AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d \
               JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid \
               WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass \
               AND p.pronamespace <> 'pg_catalog'::pg_catalog.regnamespace \
               AND ((d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass \
                     AND d.objid IN (SELECT oid FROM pg_catalog.pg_attrdef \
                                     WHERE adrelid = c.oid)) \
                 OR (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass \
                     AND d.objid IN (SELECT oid FROM pg_catalog.pg_constraint \
                                     WHERE conrelid = c.oid)))) \
             AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a \
               JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
               WHERE a.attrelid = c.oid AND a.attnum > 0 AND t.typtype = 'd')"
        }
    };
    format!(
        "SELECT c.relkind = 'r' AND NOT c.relispartition AND NOT c.relrowsecurity \
         AND pg_catalog.has_table_privilege(c.oid, 'TRUNCATE') \
         AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint \
                         WHERE confrelid = c.oid AND contype = 'f') \
         AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger \
                         WHERE tgrelid = c.oid AND (tgtype::int & 32) <> 0) \
         AND NOT EXISTS (SELECT FROM ONLY {table}) \
         {reads_nothing} \
         FROM pg_catalog.pg_class c WHERE c.oid = {}::pg_catalog.regclass",
        quote_literal(table)
    )
}

/// A statement or COPY the server refused.
#[derive(Debug, Clone)]
pub(crate) struct DbFailure {
    pub(crate) message: String,
    pub(crate) sqlstate: Option<String>,
}

impl DbFailure {
    pub(crate) fn from_pg(err: &tokio_postgres::Error) -> Self {
        let (message, sqlstate) = describe_db_error(err);
        DbFailure { message, sqlstate }
    }
}

/// Work for a worker.
pub(crate) enum Task {
    /// Whole rows for `block`.
    Batch {
        block: Arc<CopyBlock>,
        rows: Bytes,
        session: Arc<SessionSnapshot>,
    },
    /// A statement to run, with where to send its outcome. `server_parallel` leaves the
    /// server free to add its own parallel workers to a build; otherwise the build runs in
    /// this worker's backend alone, and a B-tree build of a table small enough (`small_sort`)
    /// sorts in [`SIDE_BY_SIDE_SORT_MEMORY`].
    Run {
        sql: String,
        session: Arc<SessionSnapshot>,
        server_parallel: bool,
        small_sort: bool,
        done: oneshot::Sender<Result<(), DbFailure>>,
    },
    /// All of `block`, its rows taken from `spool` as they arrive, in one COPY; answers once
    /// the COPY is closed.
    Load {
        block: Arc<CopyBlock>,
        spool: Arc<Spool>,
        session: Arc<SessionSnapshot>,
        done: oneshot::Sender<()>,
    },
    /// Close the open COPY, then answer.
    Flush { done: oneshot::Sender<()> },
    /// The last rows of `block` were sent: close its COPY and commit its transaction, so that
    /// the table's lock goes before the worker's next task.
    EndBlock { block: Arc<CopyBlock> },
}

/// The loader's side of a worker.
pub(crate) struct WorkerHandle {
    pub(crate) tasks: mpsc::Sender<Task>,
    task: JoinHandle<()>,
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a worker on `client`, converting rows to the binary format on `pool`. `copy_failed`
/// is raised when any COPY it runs fails.
pub(crate) fn spawn(
    id: usize,
    client: Client,
    pool: Arc<rayon::ThreadPool>,
    copy_failed: Arc<AtomicBool>,
) -> WorkerHandle {
    let (tasks, queue) = mpsc::channel(4);
    let worker = Worker {
        id,
        client,
        pool,
        applied: None,
        serial_builds: false,
        small_sorts: false,
        open: None,
        frozen: None,
        unfrozen: None,
        binary_checked: None,
        copy_failed,
    };
    let task = tokio::spawn(worker.run(queue));
    WorkerHandle { tasks, task }
}

struct Worker {
    id: usize,
    client: Client,
    pool: Arc<rayon::ThreadPool>,
    applied: Option<u64>,
    /// The session holds `max_parallel_maintenance_workers = 0`.
    serial_builds: bool,
    /// The session holds `maintenance_work_mem` at [`SIDE_BY_SIDE_SORT_MEMORY`].
    small_sorts: bool,
    open: Option<OpenCopy>,
    /// The block whose frozen load holds a transaction open on this connection.
    frozen: Option<Arc<CopyBlock>>,
    /// The last block that could not go in frozen.
    unfrozen: Option<Arc<CopyBlock>>,
    /// The last block asked about, and whether this connection may load it in binary.
    binary_checked: Option<(Arc<CopyBlock>, bool)>,
    copy_failed: Arc<AtomicBool>,
}

struct OpenCopy {
    block: Arc<CopyBlock>,
    sink: Pin<Box<CopyInSink<Bytes>>>,
    /// The rows go in the binary format.
    binary: bool,
    /// The session's client encoding was changed for this COPY.
    converted: bool,
}

impl Worker {
    async fn run(mut self, mut queue: mpsc::Receiver<Task>) {
        while let Some(task) = queue.recv().await {
            match task {
                Task::Batch {
                    block,
                    rows,
                    session,
                } => self.load(block, rows, &session).await,
                Task::Run {
                    sql,
                    session,
                    server_parallel,
                    small_sort,
                    done,
                } => {
                    self.close_copy().await;
                    let prepared = self
                        .prepare_run(&session, server_parallel, small_sort)
                        .await;
                    let outcome = match prepared {
                        Ok(()) => execute_one(&self.client, &sql).await,
                        Err(err) => Err(err),
                    };
                    let _ = done.send(outcome.map_err(|err| DbFailure::from_pg(&err)));
                }
                Task::Load {
                    block,
                    spool,
                    session,
                    done,
                } => {
                    // One transaction for the block: a build that would lock its table waits
                    // for all of its rows, however many COPYs take them.
                    let begun = async {
                        self.catch_up(&session).await?;
                        if !self.begin_frozen(&block).await? {
                            self.client.batch_execute("BEGIN").await?;
                        }
                        Ok::<_, tokio_postgres::Error>(())
                    };
                    if let Err(err) = begun.await {
                        self.fail(&block, DbFailure::from_pg(&err));
                    }
                    while let Some(rows) = spool.next().await {
                        match rows {
                            Ok(rows) => self.load(block.clone(), rows, &session).await,
                            Err(err) => {
                                let message = format!("cannot read the rows set aside: {err}");
                                let failure = DbFailure {
                                    message,
                                    sqlstate: None,
                                };
                                self.fail(&block, failure);
                                break;
                            }
                        }
                    }
                    if block.loaded.load(Ordering::Relaxed) == 0 && self.open.is_none() {
                        // A block without rows still goes to the server, which checks its
                        // statement, as it does for psql.
                        self.load(block.clone(), Bytes::new(), &session).await;
                    }
                    // A frozen load commits as it closes; after a failure the transaction is
                    // aborted and COMMIT rolls it back.
                    let frozen = self.frozen.is_some();
                    self.close_copy().await;
                    if !frozen {
                        if let Err(err) = self.client.batch_execute("COMMIT").await {
                            self.fail(&block, DbFailure::from_pg(&err));
                        }
                    }
                    let _ = done.send(());
                }
                Task::Flush { done } => {
                    self.close_copy().await;
                    let _ = done.send(());
                }
                Task::EndBlock { block } => {
                    let open = self.open.as_ref().map(|open| &open.block);
                    let frozen = self.frozen.as_ref();
                    if open
                        .or(frozen)
                        .is_some_and(|open| Arc::ptr_eq(open, &block))
                    {
                        self.close_copy().await;
                    }
                }
            }
        }
        self.close_copy().await;
    }

    /// Replays the session settings when they changed since this worker last applied them.
    async fn catch_up(&mut self, session: &SessionSnapshot) -> Result<(), tokio_postgres::Error> {
        if self.applied == Some(session.generation) {
            return Ok(());
        }
        self.client.batch_execute("RESET ALL").await?;
        self.serial_builds = false;
        self.small_sorts = false;
        for sql in &session.statements {
            execute_one(&self.client, sql).await?;
        }
        self.applied = Some(session.generation);
        Ok(())
    }

    /// Catches up with the session, allows or forbids the server's parallel workers, and sets
    /// the sort memory of a B-tree build that runs beside others.
    ///
    /// Forbidding and the smaller memory are `SET`s; going back replays the session from
    /// scratch, which restores the connection's own settings and whatever the dump had set.
    async fn prepare_run(
        &mut self,
        session: &SessionSnapshot,
        server_parallel: bool,
        small_sort: bool,
    ) -> Result<(), tokio_postgres::Error> {
        let small_sorts = !server_parallel && small_sort && !session.sets_sort_memory;
        if (server_parallel && self.serial_builds) || (!small_sorts && self.small_sorts) {
            self.applied = None;
        }
        self.catch_up(session).await?;
        if !server_parallel && !self.serial_builds {
            self.client
                .batch_execute("SET max_parallel_maintenance_workers = 0")
                .await?;
            self.serial_builds = true;
        }
        if small_sorts && !self.small_sorts {
            let set = format!("SET maintenance_work_mem = '{SIDE_BY_SIDE_SORT_MEMORY}'");
            self.client.batch_execute(&set).await?;
            self.small_sorts = true;
        }
        Ok(())
    }

    /// Sends `rows` of `block` into the COPY open for them, in the binary format when the block
    /// can take it, this connection may load it and the rows convert, opening the COPY first
    /// when the block or the format changed.
    async fn load(&mut self, block: Arc<CopyBlock>, rows: Bytes, session: &SessionSnapshot) {
        if block.failure.lock().is_ok_and(|failure| failure.is_some()) {
            return;
        }
        let converted = match &block.binary {
            Some(form) if !rows.is_empty() => match self.loads_binary(&block, session).await {
                Ok(true) => binary::convert_on(&self.pool, form.rows.clone(), rows.clone())
                    .await
                    .ok()
                    .flatten(),
                Ok(false) => None,
                Err(err) => {
                    self.fail(&block, DbFailure::from_pg(&err));
                    return;
                }
            },
            _ => None,
        };
        let (rows, binary) = match converted {
            Some(converted) => (converted, true),
            None => (rows, false),
        };
        let same_copy = self
            .open
            .as_ref()
            .is_some_and(|open| Arc::ptr_eq(&open.block, &block) && open.binary == binary);
        if !same_copy {
            let same_block = self
                .frozen
                .as_ref()
                .is_some_and(|frozen| Arc::ptr_eq(frozen, &block));
            match same_block {
                // A frozen block switching format stays in its transaction.
                true => self.finish_copy().await,
                false => self.close_copy().await,
            }
            if let Err(err) = self.open_copy(&block, session, binary).await {
                self.fail(&block, DbFailure::from_pg(&err));
                return;
            }
        }
        let Some(open) = self.open.as_mut() else {
            return;
        };
        if rows.is_empty() {
            return;
        }
        if let Err(err) = open.sink.send(rows).await {
            let failure = DbFailure::from_pg(&err);
            self.open = None;
            self.fail(&block, failure);
        }
    }

    /// Whether this connection may load `block` in the binary format: its session resolves the
    /// table to the relation whose column types the rows were converted for. Asked of the
    /// server once per block, with the session caught up and no COPY open.
    async fn loads_binary(
        &mut self,
        block: &Arc<CopyBlock>,
        session: &SessionSnapshot,
    ) -> Result<bool, tokio_postgres::Error> {
        if let Some((checked, answer)) = &self.binary_checked {
            if Arc::ptr_eq(checked, block) {
                return Ok(*answer);
            }
        }
        self.close_copy().await;
        self.catch_up(session).await?;
        let answer = match &block.binary {
            Some(form) => form.resolves_alike(&self.client).await,
            None => false,
        };
        if !answer {
            tracing::debug!(
                worker = self.id,
                line = block.line,
                "COPY block left as text here"
            );
        }
        self.binary_checked = Some((block.clone(), answer));
        Ok(answer)
    }

    async fn open_copy(
        &mut self,
        block: &Arc<CopyBlock>,
        session: &SessionSnapshot,
        binary: bool,
    ) -> Result<(), tokio_postgres::Error> {
        self.catch_up(session).await?;
        let frozen = self.begin_frozen(block).await?;
        let freeze = block.freeze.as_ref().filter(|_| frozen);
        if let (true, Some(form)) = (binary, &block.binary) {
            tracing::trace!(
                worker = self.id,
                line = block.line,
                frozen,
                "binary COPY opened"
            );
            let sql = freeze
                .and_then(|freeze| freeze.binary_sql.as_deref())
                .unwrap_or(&form.sql);
            let mut sink = Box::pin(self.client.copy_in::<_, Bytes>(sql).await?);
            sink.send(Bytes::from_static(binary::HEADER)).await?;
            self.open = Some(OpenCopy {
                block: block.clone(),
                sink,
                binary: true,
                converted: false,
            });
            return Ok(());
        }
        // COPY rows are passed through as bytes: in a dump that is not UTF-8 the server must
        // read them in the dump's encoding, and only for the COPY, since statement text is
        // converted to UTF-8 before it is sent.
        let converted = match &session.encoding {
            Some(encoding) if block.switch_encoding => {
                let sql = format!(
                    "SET client_encoding TO {}",
                    quote_literal(&encoding.server_name)
                );
                self.client.batch_execute(&sql).await?;
                true
            }
            _ => false,
        };
        tracing::trace!(worker = self.id, line = block.line, frozen, "COPY opened");
        let sql = freeze.map_or(block.sql.as_str(), |freeze| freeze.text_sql.as_str());
        let sink = self.client.copy_in::<_, Bytes>(sql).await?;
        self.open = Some(OpenCopy {
            block: block.clone(),
            sink: Box::pin(sink),
            binary: false,
            converted,
        });
        Ok(())
    }

    /// Opens the transaction of a frozen load of `block`, unless one is open already; true when
    /// the block goes in frozen. Any refusal along the way (the table is gone, the session may
    /// not lock it) leaves the block to load as any other, where the COPY itself reports what
    /// is wrong.
    async fn begin_frozen(
        &mut self,
        block: &Arc<CopyBlock>,
    ) -> Result<bool, tokio_postgres::Error> {
        if let Some(frozen) = &self.frozen {
            return Ok(Arc::ptr_eq(frozen, block));
        }
        let declined = self.unfrozen.as_ref();
        if declined.is_some_and(|declined| Arc::ptr_eq(declined, block)) {
            return Ok(false);
        }
        let Some(freeze) = &block.freeze else {
            return Ok(false);
        };
        let lock = format!(
            "BEGIN; LOCK TABLE ONLY {} IN ACCESS EXCLUSIVE MODE",
            freeze.table
        );
        let emptied = async {
            self.client.batch_execute(&lock).await?;
            // The simple protocol leaves no portal open, which FREEZE would refuse.
            let answer = self
                .client
                .simple_query(&freeze_check_sql(&freeze.table, freeze.beside_others))
                .await?;
            let empty = answer.iter().any(|message| match message {
                SimpleQueryMessage::Row(row) => row.get(0) == Some("t"),
                _ => false,
            });
            if !empty {
                return Ok(false);
            }
            let truncate = format!("TRUNCATE ONLY {}", freeze.table);
            self.client.batch_execute(&truncate).await?;
            Ok::<_, tokio_postgres::Error>(true)
        };
        match emptied.await {
            Ok(true) => {
                self.frozen = Some(block.clone());
                Ok(true)
            }
            Ok(false) | Err(_) => {
                tracing::debug!(worker = self.id, line = block.line, "COPY block not frozen");
                self.unfrozen = Some(block.clone());
                self.client.batch_execute("ROLLBACK").await?;
                Ok(false)
            }
        }
    }

    /// Closes the open COPY and commits the transaction of a frozen load.
    async fn close_copy(&mut self) {
        self.finish_copy().await;
        let Some(block) = self.frozen.take() else {
            return;
        };
        // After a failure the transaction is aborted and COMMIT rolls it back; the block has
        // its failure already.
        if let Err(err) = self.client.batch_execute("COMMIT").await {
            self.fail(&block, DbFailure::from_pg(&err));
        }
    }

    /// Closes the open COPY, adding the rows the server counted to its block.
    async fn finish_copy(&mut self) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        let trailer = if open.binary {
            open.sink.send(Bytes::from_static(binary::TRAILER)).await
        } else {
            Ok(())
        };
        let finished = match trailer {
            Ok(()) => open.sink.as_mut().finish().await,
            Err(err) => Err(err),
        };
        match finished {
            Ok(rows) => {
                open.block.loaded.fetch_add(rows, Ordering::Relaxed);
                if open.binary {
                    open.block.loaded_binary.fetch_add(rows, Ordering::Relaxed);
                }
            }
            Err(err) => self.fail(&open.block, DbFailure::from_pg(&err)),
        }
        if open.converted {
            if let Err(err) = self
                .client
                .batch_execute("SET client_encoding TO 'UTF8'")
                .await
            {
                self.fail(&open.block, DbFailure::from_pg(&err));
            }
        }
    }

    fn fail(&self, block: &CopyBlock, failure: DbFailure) {
        tracing::debug!(worker = self.id, line = block.line, "COPY failed");
        if let Ok(mut slot) = block.failure.lock() {
            slot.get_or_insert(failure);
        }
        self.copy_failed.store(true, Ordering::Release);
    }
}
