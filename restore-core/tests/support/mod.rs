//! What the integration tests share: a server to restore into and ways to look inside it.
//!
//! Tests use `$SECURERESTORE_TEST_DATABASE_URL` when it is set. Otherwise the first call to
//! [`database_url`] starts one throwaway local cluster for the whole test binary; a watchdog stops
//! it and deletes its directory when the binary exits, even after a panic or a kill.
//!
//! Inspection goes through `psql` rather than the engine's own client so that a fault in the
//! engine cannot hide itself from the tests that check it.

// Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

use std::process::Command;
use std::sync::OnceLock;

use restore_core::local::LocalServer;

/// A superuser URL of the server the tests restore into.
pub fn database_url() -> String {
    if let Some(url) = std::env::var("SECURERESTORE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return url;
    }

    static LOCAL_URL: OnceLock<String> = OnceLock::new();
    LOCAL_URL.get_or_init(start_throwaway_cluster).clone()
}

fn start_throwaway_cluster() -> String {
    let dir = tempfile::Builder::new()
        .prefix("securerestore-test-")
        .tempdir()
        .expect("temporary directory for the test cluster")
        .keep();
    let server = LocalServer::new(dir).fast_for_tests();

    // The watchdog comes first so that even a start interrupted half-way is cleaned up.
    server.discard_when_process_exits().unwrap_or_else(|err| {
        panic!(
            "no test database: set SECURERESTORE_TEST_DATABASE_URL or install PostgreSQL ({err})"
        )
    });
    server
        .start()
        .unwrap_or_else(|err| panic!("cannot start the test cluster: {err} {:?}", err.details()));
    server.url().expect("url of the running test cluster")
}

/// Runs `sql` in database `db` of the server at `url`; returns psql's unaligned, tuples-only
/// output without the final newline. Panics with psql's message when a statement fails.
pub fn psql(url: &str, db: &str, sql: &str) -> String {
    psql_with(url, db, sql, &[])
}

fn psql_with(url: &str, db: &str, sql: &str, extra: &[&str]) -> String {
    let bin = LocalServer::bin_dir().expect("psql is needed to inspect databases");
    let out = Command::new(bin.join("psql"))
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1"])
        .args(extra)
        .arg("-d")
        .arg(with_database(url, db))
        .arg("-c")
        .arg(sql)
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql failed in database {db}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text = String::from_utf8(out.stdout).expect("psql prints UTF-8");
    if text.ends_with('\n') {
        text.pop();
    }
    text
}

/// `url` with its database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority_start..];
    let authority_end = rest
        .find(['/', '?'])
        .map_or(url.len(), |i| authority_start + i);
    let query = url[authority_end..]
        .find('?')
        .map_or("", |i| &url[authority_end + i..]);
    format!("{}/{}{query}", &url[..authority_end], percent_encode(db))
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `name` quoted as an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` quoted as an SQL string literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The database the server's URL names, used for statements about other databases.
fn maintenance_db() -> &'static str {
    "postgres"
}

/// Creates database `name` on the test server.
pub fn create_database(name: &str) {
    psql(
        &database_url(),
        maintenance_db(),
        &format!("CREATE DATABASE {}", quote_ident(name)),
    );
}

/// Drops database `name` on the test server if it exists, ending its sessions.
pub fn drop_database(name: &str) {
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
    psql(&database_url(), maintenance_db(), &sql);
}

/// Whether database `name` exists on the test server.
pub fn database_exists(name: &str) -> bool {
    let sql = format!(
        "SELECT count(*) FROM pg_database WHERE datname = {}",
        quote_literal(name)
    );
    psql(&database_url(), maintenance_db(), &sql) == "1"
}

/// The names of the test server's databases, templates excluded, sorted.
pub fn list_databases() -> Vec<String> {
    let sql = "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname";
    let out = psql(&database_url(), maintenance_db(), sql);
    out.lines().map(str::to_owned).collect()
}

/// For every user table of `db`, sorted by name: its qualified name, its row count and the md5
/// of its rows' text forms, sorted and joined by newlines. Two databases with equal
/// fingerprints hold the same rows, whatever their physical order.
pub fn table_fingerprint(url: &str, db: &str) -> Vec<(String, i64, String)> {
    let tables = psql(
        url,
        db,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
         ORDER BY 1",
    );
    if tables.is_empty() {
        return Vec::new();
    }

    let per_table: Vec<String> = tables
        .lines()
        .map(|table| {
            format!(
                "SELECT {name}, count(*), \
                 coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), md5('')) \
                 FROM {table} t",
                name = quote_literal(table),
            )
        })
        .collect();
    let sql = format!("{} ORDER BY 1", per_table.join(" UNION ALL "));
    let out = psql_with(url, db, &sql, &["-F", "\u{1f}"]);

    out.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\u{1f}').collect();
            assert_eq!(fields.len(), 3, "unexpected fingerprint line {line:?}");
            let rows = fields[1].parse().expect("row count");
            (fields[0].to_owned(), rows, fields[2].to_owned())
        })
        .collect()
}
