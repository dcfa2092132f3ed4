//! The staging database: where a restore loads, and how it takes the target's place.
//!
//! A restore never writes into its target. It creates a database named after the target and
//! the restore id, marked by a comment that says which process made it, loads everything there,
//! and renames it to the target only after every check passed. On failure, cancellation or
//! timeout the staging database is dropped. With `force`, an existing target is renamed aside,
//! the staging database renamed in, and the old one dropped only after that.

use tokio_postgres::Client;

use crate::error::{ErrorCode, RestoreError, Result};
use crate::server::{describe_db_error, quote_ident, quote_literal};

/// Every staging database's name starts with this.
pub(crate) const STAGING_PREFIX: &str = "_srst_";

/// Every staging database's comment starts with this.
const MARK: &str = "securerestore staging database";

/// The longest database name PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_NAME_BYTES: usize = 63;

/// Checks a target database name before it reaches SQL.
pub(crate) fn validate_target(name: &str, maintenance_db: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(
            RestoreError::invalid(format!("target database {name:?} {why}"))
                .with_detail("target_database", name),
        )
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("is longer than 63 bytes");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("contains a control character");
    }
    if name.starts_with(STAGING_PREFIX) {
        return bad("uses the prefix reserved for staging databases");
    }
    if matches!(name, "template0" | "template1") || name == maintenance_db {
        return bad("is a database the server or the engine itself needs");
    }
    Ok(())
}

/// The staging database of restore `restore_id` into `target`.
pub(crate) fn staging_name(target: &str, restore_id: &str) -> String {
    let tag: String = target
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    let id = restore_id.trim_start_matches("rst_");
    format!("{STAGING_PREFIX}{tag}_{}", &id[..id.len().min(16)])
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

fn sql_error(what: &str, err: &tokio_postgres::Error) -> RestoreError {
    let (message, sqlstate) = describe_db_error(err);
    let mut error = RestoreError::failed(format!("{what}: {message}"));
    if let Some(code) = sqlstate {
        error = error.with_detail("sqlstate", code);
    }
    error
}

/// Claims `target` for this restore, against restores of other processes on the same server:
/// a session-level advisory lock held by the restore's administrative connection until it
/// closes (when the restore ends, or its process dies).
pub(crate) async fn claim_target(admin: &Client, target: &str) -> Result<()> {
    let key = format!("securerestore target {target}");
    let row = admin
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .map_err(|err| sql_error("cannot claim the target database", &err))?;
    if row.get::<_, bool>(0) {
        return Ok(());
    }
    Err(RestoreError::new(
        ErrorCode::DatabaseExists,
        format!("another restore is writing database {target:?}"),
    )
    .with_detail("target_database", target))
}

/// True when a database of that name exists.
pub(crate) async fn database_exists(admin: &Client, name: &str) -> Result<bool> {
    let row = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(|err| sql_error("cannot look up databases", &err))?;
    Ok(row.is_some())
}

/// Creates the staging database, with the options of the dump's own `CREATE DATABASE` when it
/// had one (encoding, locale), and marks it as this process's.
pub(crate) async fn create(
    admin: &Client,
    name: &str,
    dump_options: Option<&str>,
    restore_id: &str,
) -> Result<()> {
    let options = match dump_options {
        Some(options) => options.trim().trim_end_matches(';').to_owned(),
        None => "WITH TEMPLATE = template0".to_owned(),
    };
    let create = format!("CREATE DATABASE {} {options}", quote_ident(name));
    admin
        .batch_execute(&create)
        .await
        .map_err(|err| sql_error(&format!("cannot create staging database {name}"), &err))?;
    let mark = format!(
        "{MARK} for {restore_id}; pid {}; host {}",
        std::process::id(),
        this_host()
    );
    let comment = format!(
        "COMMENT ON DATABASE {} IS {}",
        quote_ident(name),
        quote_literal(&mark)
    );
    admin
        .batch_execute(&comment)
        .await
        .map_err(|err| sql_error(&format!("cannot mark staging database {name}"), &err))?;
    tracing::debug!(database = name, "staging database created");
    Ok(())
}

/// Drops a staging database, ending any session still in it.
pub(crate) async fn drop(admin: &Client, name: &str) -> Result<()> {
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
    admin
        .batch_execute(&sql)
        .await
        .map_err(|err| sql_error(&format!("cannot drop staging database {name}"), &err))?;
    tracing::debug!(database = name, "staging database dropped");
    Ok(())
}

/// Renames the staging database to the target. An existing target is `database_exists`
/// unless `force`, which renames it aside first and drops it once the new one is in place.
/// Returns warnings about anything left over.
pub(crate) async fn swap(
    admin: &Client,
    staging: &str,
    target: &str,
    force: bool,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let rename = |from: &str, to: &str| {
        format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(from),
            quote_ident(to)
        )
    };
    // The staging comment must not survive on the restored database.
    let uncomment = format!("COMMENT ON DATABASE {} IS NULL", quote_ident(staging));
    admin
        .batch_execute(&uncomment)
        .await
        .map_err(|err| sql_error("cannot clear the staging mark", &err))?;

    if !database_exists(admin, target).await? {
        admin
            .batch_execute(&rename(staging, target))
            .await
            .map_err(|err| {
                let (_, sqlstate) = describe_db_error(&err);
                if matches!(sqlstate.as_deref(), Some("42P04" | "23505")) {
                    // Someone created the target since it was checked.
                    return RestoreError::new(
                        ErrorCode::DatabaseExists,
                        format!("database {target:?} was created by someone else meanwhile"),
                    )
                    .with_detail("target_database", target);
                }
                sql_error(&format!("cannot rename {staging} to {target}"), &err)
            })?;
        return Ok(warnings);
    }
    if !force {
        return Err(RestoreError::new(
            ErrorCode::DatabaseExists,
            format!("database {target:?} exists; use force to replace it"),
        )
        .with_detail("target_database", target));
    }

    let aside = format!(
        "{STAGING_PREFIX}old_{}",
        &staging[staging.len().saturating_sub(16)..]
    );
    admin
        .batch_execute(&rename(target, &aside))
        .await
        .map_err(|err| {
            sql_error(
                &format!("cannot move the existing database {target:?} aside"),
                &err,
            )
        })?;
    if let Err(err) = admin.batch_execute(&rename(staging, target)).await {
        let error = sql_error(&format!("cannot rename {staging} to {target}"), &err);
        if let Err(back) = admin.batch_execute(&rename(&aside, target)).await {
            let (message, _) = describe_db_error(&back);
            return Err(error.with_detail(
                "recovery",
                format!("the previous database is now named {aside:?}: {message}"),
            ));
        }
        return Err(error);
    }
    let drop_old = format!("DROP DATABASE {} WITH (FORCE)", quote_ident(&aside));
    if let Err(err) = admin.batch_execute(&drop_old).await {
        let (message, _) = describe_db_error(&err);
        warnings.push(format!(
            "the replaced database was kept as {aside:?}: {message}"
        ));
    }
    Ok(warnings)
}

/// Drops staging databases left behind by a process of this host that no longer runs; never
/// one without this engine's mark, one of another host, or one of a live process.
pub(crate) async fn drop_abandoned(admin: &Client) -> Result<Vec<String>> {
    let rows = admin
        .query(
            "SELECT d.datname, shobj_description(d.oid, 'pg_database') \
             FROM pg_database d WHERE starts_with(d.datname, $1)",
            &[&STAGING_PREFIX],
        )
        .await
        .map_err(|err| sql_error("cannot list staging databases", &err))?;
    let host = this_host();
    let mut dropped = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        let comment: Option<String> = row.get(1);
        let Some(owner) = comment.as_deref().and_then(parse_mark) else {
            continue;
        };
        let alive = std::path::Path::new(&format!("/proc/{}", owner.pid)).exists();
        if owner.host != host || alive {
            continue;
        }
        tracing::info!(database = %name, "dropping a staging database left by a dead process");
        drop(admin, &name).await?;
        dropped.push(name);
    }
    Ok(dropped)
}

struct MarkOwner {
    pid: u32,
    host: String,
}

fn parse_mark(comment: &str) -> Option<MarkOwner> {
    let rest = comment.strip_prefix(MARK)?;
    let pid = rest
        .split("; pid ")
        .nth(1)?
        .split(';')
        .next()?
        .trim()
        .parse()
        .ok()?;
    let host = rest.split("; host ").nth(1)?.trim().to_owned();
    Some(MarkOwner { pid, host })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_are_recognisable_and_fit_postgres_limits() {
        let name = staging_name(&"Ä".repeat(40), "rst_0123456789abcdef01234567");
        assert!(name.starts_with(STAGING_PREFIX));
        assert!(name.len() <= MAX_NAME_BYTES);
        assert!(name.ends_with("_0123456789abcdef"));
    }

    #[test]
    fn targets_that_would_harm_the_server_are_refused() {
        for name in [
            "",
            "template1",
            "postgres",
            "_srst_x",
            "a\nb",
            &"x".repeat(64),
        ] {
            assert!(validate_target(name, "postgres").is_err(), "{name:?}");
        }
        assert!(validate_target("Shop \"2024\"", "postgres").is_ok());
    }

    #[test]
    fn the_mark_names_its_process_and_host() {
        let owner = parse_mark(&format!("{MARK} for rst_1; pid 42; host box")).unwrap();
        assert_eq!(owner.pid, 42);
        assert_eq!(owner.host, "box");
        assert!(parse_mark("a comment someone wrote").is_none());
    }
}
