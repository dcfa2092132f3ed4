//! Building backups and engines for the restore tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use restore_core::{
    Engine, EngineConfig, LocalServer, RestoreOptions, RestoreRequest, RestoreState, RestoreStatus,
};

use crate::support;

/// A backup directory of its own and an engine over it, restoring into the test server.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with(|_| {})
    }

    /// A fixture whose engine's configuration `adjust` changed.
    pub fn with(adjust: impl FnOnce(&mut EngineConfig)) -> Fixture {
        let dir = tempfile::tempdir().expect("backup directory");
        let engine = engine_over(dir.path(), adjust);
        Fixture { dir, engine }
    }

    /// A second engine over the same backup directory, as another process would have.
    pub fn another_engine(&self) -> Engine {
        engine_over(self.dir.path(), |_| {})
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path(name), bytes).expect("write backup");
    }

    pub fn seal(&self, name: &str) {
        self.engine.seal(name).expect("seal");
    }

    /// Starts a restore and waits for it to end.
    pub fn restore(&self, name: &str, target: &str, options: RestoreOptions) -> RestoreStatus {
        let status = self.restore_within(name, target, options, Duration::from_secs(300));
        assert!(
            status.status.is_final(),
            "restore still running after 300 s: {status:?}"
        );
        status
    }

    /// Starts a restore and waits at most `limit` for it to end; one still running then is
    /// cancelled, and its status is returned as it was, not final.
    pub fn restore_within(
        &self,
        name: &str,
        target: &str,
        options: RestoreOptions,
        limit: Duration,
    ) -> RestoreStatus {
        let started = self
            .engine
            .create_restore(request(name, target, options))
            .expect("restore accepted");
        let status = self
            .engine
            .wait_restore(&started.restore_id, Some(limit))
            .expect("status");
        if !status.status.is_final() {
            self.engine
                .cancel_restore(&started.restore_id)
                .expect("cancel");
        }
        status
    }
}

/// A request to restore `name` into `target`.
pub fn request(name: &str, target: &str, options: RestoreOptions) -> RestoreRequest {
    RestoreRequest {
        backup_name: name.into(),
        target_database: target.into(),
        options,
    }
}

fn engine_over(dir: &Path, adjust: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut config = EngineConfig::new(dir).database_url(support::database_url());
    adjust(&mut config);
    Engine::new(config).expect("engine")
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

pub fn zstd_frame(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).expect("zstd")
}

/// A database name no other test uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Staging databases of this restore still on the server.
pub fn staging_left(status: &RestoreStatus) -> Vec<String> {
    let id = status.restore_id.trim_start_matches("rst_");
    let tag = &id[..16];
    support::list_databases()
        .into_iter()
        .filter(|db| db.starts_with("_srst_") && db.contains(tag))
        .collect()
}

/// Asserts that a restore into `target` failed on `line` of its dump, with `words` in its
/// message, and left neither the target nor a staging database behind.
pub fn assert_failed_at(target: &str, status: &RestoreStatus, line: u64, words: &str) {
    assert_eq!(status.status, RestoreState::Failed);
    let error = status.error.clone().expect("an error");
    assert_eq!(error.details()["line"], line, "{}", error.message());
    assert!(error.message().contains(words), "{}", error.message());
    assert!(!support::database_exists(target));
    assert!(staging_left(status).is_empty());
}

/// Runs one query in `db` and returns its output.
pub fn query(db: &str, sql: &str) -> String {
    support::psql(&support::database_url(), db, sql)
}

/// Restores `file` into a new database `db` with psql, as a person would.
pub fn psql_restore(db: &str, files: &[&Path]) {
    support::create_database(db);
    let bin = LocalServer::bin_dir().expect("psql");
    let url = support::with_database(&support::database_url(), db);
    for file in files {
        let out = Command::new(bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-f"])
            .arg(file)
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs pg_dump on `db` with `args`, returning the plain SQL.
pub fn pg_dump(db: &str, args: &[&str]) -> Vec<u8> {
    let bin = LocalServer::bin_dir().expect("pg_dump");
    let url = support::with_database(&support::database_url(), db);
    let out = Command::new(bin.join("pg_dump"))
        .args(args)
        .arg(&url)
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A small database with the objects pg_dump writes in every section.
pub fn make_source(db: &str) {
    support::create_database(db);
    query(
        db,
        r#"
        CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
        CREATE TABLE authors (id int PRIMARY KEY, name text NOT NULL UNIQUE, mood mood);
        CREATE TABLE books (
            id bigint PRIMARY KEY, author_id int NOT NULL REFERENCES authors(id),
            title text, body text, price numeric(10,2), published timestamptz,
            meta jsonb, cover bytea, CHECK (price >= 0));
        CREATE TABLE reviews (
            id serial PRIMARY KEY, book_id bigint REFERENCES books(id),
            author_id int REFERENCES authors(id), stars int);
        CREATE INDEX books_title ON books (title);
        CREATE INDEX books_author ON books (author_id, published);
        CREATE INDEX reviews_book ON reviews (book_id);
        CREATE VIEW cheap AS SELECT id, title FROM books WHERE price < 10;
        CREATE FUNCTION stars_of(b bigint) RETURNS numeric LANGUAGE plpgsql AS $body$
        BEGIN RETURN (SELECT avg(stars) FROM reviews WHERE book_id = b); END $body$;
        INSERT INTO authors SELECT i, 'author ' || i, (ARRAY['sad','ok','happy'])[1 + i % 3]::mood
            FROM generate_series(1, 200) i;
        INSERT INTO books SELECT i, 1 + i % 200, E'title\t' || i || ' ü',
            E'line one\nline two \\ backslash ' || repeat('x', i % 50), (i % 1000) / 7.0,
            '2024-01-01'::timestamptz + i * interval '1 hour',
            jsonb_build_object('i', i, 'tags', jsonb_build_array('a', 'b')),
            decode(md5(i::text), 'hex')
            FROM generate_series(1, 20000) i;
        INSERT INTO reviews (book_id, author_id, stars)
            SELECT 1 + i % 20000, 1 + i % 200, i % 5 FROM generate_series(1, 5000) i;
        COMMENT ON TABLE books IS 'the books';
        "#,
    );
}
