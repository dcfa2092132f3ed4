//! Where the restored databases live: the PostgreSQL server and how to reach it.
//!
//! The engine is given one server (a URL, the `PG*` variables, or the managed local server) and
//! opens every connection through here: an administrative one to the maintenance database for
//! creating, renaming and dropping databases, and the control and worker connections of a
//! restore to its staging database.

use std::str::FromStr;

use tokio_postgres::config::Host;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, NoTls};

use crate::error::{RestoreError, Result};

/// Startup options of the connections that load a restore.
const LOAD_SESSION_OPTIONS: &str = "-c synchronous_commit=off -c maintenance_work_mem=256MB";

/// Startup options of the loading connections that only a superuser may set. Autovacuum starts
/// on tables as soon as their rows are committed; a build that then waits for its lock has the
/// server cancel the autovacuum after `deadlock_timeout`, by default a whole second.
const SUPERUSER_LOAD_OPTIONS: &str = "-c deadlock_timeout=100ms";

/// A PostgreSQL server the engine restores into.
#[derive(Clone)]
pub struct Server {
    config: Config,
    maintenance_db: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration may hold a password: show only where the server is.
        f.debug_struct("Server")
            .field("address", &self.address())
            .finish()
    }
}

impl Server {
    /// A server from a `postgresql://` URL or a `key=value` connection string. The database
    /// it names (default `postgres`) is the maintenance database.
    pub fn from_url(url: &str) -> Result<Server> {
        let mut config = Config::from_str(url).map_err(|err| {
            RestoreError::invalid(format!("the database URL cannot be read: {err}"))
        })?;
        if config.get_user().is_none() {
            config.user(std::env::var("PGUSER").unwrap_or_else(|_| current_user()));
        }
        let maintenance_db = config.get_dbname().unwrap_or("postgres").to_owned();
        config.application_name("securerestore");
        Ok(Server {
            config,
            maintenance_db,
        })
    }

    /// A server described by the libpq variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
    /// `PGDATABASE`), or `None` when none of them is set.
    pub fn from_pg_env() -> Option<Result<Server>> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let names = ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"];
        if names.iter().all(|name| get(name).is_none()) {
            return None;
        }
        let mut config = Config::new();
        let host = get("PGHOST").unwrap_or_else(|| "localhost".into());
        for part in host.split(',') {
            config.host(part);
        }
        if let Some(port) = get("PGPORT") {
            match port.parse::<u16>() {
                Ok(port) => config.port(port),
                Err(_) => return Some(Err(RestoreError::invalid(format!("PGPORT {port:?}")))),
            };
        } else {
            config.port(5432);
        }
        config.user(get("PGUSER").unwrap_or_else(current_user));
        if let Some(password) = get("PGPASSWORD") {
            config.password(password);
        }
        let maintenance_db = get("PGDATABASE").unwrap_or_else(|| "postgres".into());
        config.application_name("securerestore");
        Some(Ok(Server {
            config,
            maintenance_db,
        }))
    }

    /// `host:port`, for messages; never includes credentials.
    pub fn address(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(name)) => name.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    /// True when the server runs on this machine, so its data directory can be inspected.
    pub fn is_on_this_host(&self) -> bool {
        self.config.get_hosts().iter().all(|host| match host {
            Host::Tcp(name) => matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1"),
            Host::Unix(_) => true,
        })
    }

    /// The maintenance database administrative connections use.
    pub fn maintenance_db(&self) -> &str {
        &self.maintenance_db
    }

    /// Opens a connection to `dbname`, its connection task spawned on the current runtime.
    pub async fn connect(&self, dbname: &str) -> Result<Client> {
        let mut config = self.config.clone();
        config.dbname(dbname);
        let (client, connection) = config.connect(NoTls).await.map_err(|err| {
            let reason = match err.as_db_error() {
                Some(_) => describe_db_error(&err).0,
                None => err.to_string(),
            };
            RestoreError::failed(format!(
                "cannot connect to database {dbname:?} on {}: {reason}",
                self.address()
            ))
            .with_detail("transient", is_transient(&err))
        })?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
        Ok(client)
    }

    /// Opens a connection that loads into `dbname`, with session defaults that speed a restore
    /// without changing what it restores: commits do not wait for the WAL flush (a crash
    /// mid-restore loses only the staging database, which is dropped anyway), index builds
    /// get more memory, and, for a `superuser`, a build held up by autovacuum waits a tenth of
    /// a second for it to be cancelled. A dump's `RESET ALL` returns to these, not to the
    /// server's defaults.
    pub(crate) async fn connect_for_load(&self, dbname: &str, superuser: bool) -> Result<Client> {
        let mut config = self.config.clone();
        let mut options = config.get_options().map(str::to_owned).unwrap_or_default();
        options = format!("{options} {LOAD_SESSION_OPTIONS}");
        if superuser {
            options = format!("{options} {SUPERUSER_LOAD_OPTIONS}");
        }
        config.options(options.trim());
        config.dbname(dbname);
        let server = Server {
            config,
            maintenance_db: self.maintenance_db.clone(),
        };
        server.connect(dbname).await
    }

    /// Opens an administrative connection to the maintenance database.
    pub async fn connect_admin(&self) -> Result<Client> {
        self.connect(&self.maintenance_db).await
    }
}

/// True when the connection's role is a superuser; false when that cannot be told.
pub(crate) async fn is_superuser(client: &Client) -> bool {
    let sql = "SELECT current_setting('is_superuser') = 'on'";
    match client.query_one(sql, &[]).await {
        Ok(row) => row.get(0),
        Err(_) => false,
    }
}

fn is_transient(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_none()
}

fn current_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "postgres".into())
}

/// Runs one statement taken from a dump, with the extended query protocol: the server accepts
/// exactly one statement per message, so text the lexer took for one statement can never run
/// as two. (The simple protocol would run every statement in the text it is sent, and a dump
/// crafted so that the lexer and the server disagree on where a statement ends would then slip
/// a statement past the planner.) One round trip, as with the simple protocol.
pub(crate) async fn execute_one(client: &Client, sql: &str) -> Result<(), tokio_postgres::Error> {
    let no_parameters: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 0] = [];
    let rows = client.query_typed_raw(sql, no_parameters).await?;
    let mut rows = std::pin::pin!(rows);
    while futures_util::TryStreamExt::try_next(&mut rows)
        .await?
        .is_some()
    {}
    Ok(())
}

/// Quotes an identifier for SQL: `"name"` with inner quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for SQL: `'text'` with inner quotes doubled.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The server's message for a failed statement, with its SQLSTATE, never with the statement
/// or row data it was given.
pub(crate) fn describe_db_error(err: &tokio_postgres::Error) -> (String, Option<String>) {
    match err.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_owned();
            if let Some(detail) = db.detail() {
                message.push_str(&format!(" ({detail})"));
            }
            (message, Some(db.code().code().to_owned()))
        }
        None => (err.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let server = Server::from_url("postgresql://bob:secret@db.example:6543/app").unwrap();
        let shown = format!("{server:?}");
        assert!(!shown.contains("secret"));
        assert!(shown.contains("db.example:6543"));
        assert_eq!(server.maintenance_db(), "app");
        assert!(!server.is_on_this_host());
    }
}
