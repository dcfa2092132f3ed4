//! The command as a person runs it: output, JSON, and the documented exit statuses.

#[path = "../../restore-core/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};

fn securerestore(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_securerestore"))
        .arg("--backup-dir")
        .arg(dir)
        .arg("--database-url")
        .arg(support::database_url())
        .args(args)
        .env_remove("SECURERESTORE_BACKUP_DIR")
        .output()
        .expect("securerestore runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

const DUMP: &str = "CREATE TABLE t (id int);\nCOPY t (id) FROM stdin;\n1\n2\n3\n\\.\n";

#[test]
fn backups_are_listed_sorted_and_paged_as_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("backup_20240101_120000.sql"), DUMP).unwrap();
    std::fs::write(dir.path().join("backup_20230601_000000.sql"), "SELECT 1;\n").unwrap();
    let out = securerestore(
        dir.path(),
        &["backups", "--json", "--order", "asc", "--limit", "1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let page: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(page["total"], 2);
    assert_eq!(page["limit"], 1);
    assert_eq!(page["backups"][0]["name"], "backup_20230601_000000.sql");
    assert_eq!(page["backups"][0]["created_at"], "2023-06-01T00:00:00Z");
    assert_eq!(page["backups"][0]["status"], "available");

    let out = securerestore(dir.path(), &["backups"]);
    assert!(stdout(&out).contains("backup_20240101_120000.sql"));
    assert!(stdout(&out).contains("2 of 2 backups"));
}

#[test]
fn seal_writes_a_sidecar_and_verify_catches_a_changed_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.sql");
    std::fs::write(&file, DUMP).unwrap();
    let out = securerestore(dir.path(), &["seal", "b.sql"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("sha256:"));
    assert!(dir.path().join("b.sql.sha256").exists());

    let out = securerestore(dir.path(), &["verify", "b.sql", "--json"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["checksum_matches"], true);
    assert_eq!(report["rows"], 3);

    let out = securerestore(dir.path(), &["verify", "b.sql"]);
    let text = stdout(&out);
    assert!(text.contains("  checksum: sha256:"), "{text}");
    assert!(!text.contains("sha256:   sha256:"), "{text}");

    std::fs::write(&file, format!("{DUMP}-- edited\n")).unwrap();
    let out = securerestore(dir.path(), &["verify", "b.sql"]);
    assert_eq!(out.status.code(), Some(7));
    assert!(stdout(&out).contains("DOES NOT MATCH"));
}

#[test]
fn restore_prints_the_final_status_as_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.sql"), DUMP).unwrap();
    let target = unique("cli");
    let out = securerestore(
        dir.path(),
        &["restore", "b.sql", "--target", &target, "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status["status"], "completed");
    assert_eq!(status["progress"], 100);
    assert_eq!(status["summary"]["rows"], 3);
    assert!(status["restore_id"].as_str().unwrap().starts_with("rst_"));

    let out = securerestore(dir.path(), &["restore", "b.sql", "--target", &target]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "an existing target: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("database_exists"));
    assert!(
        stderr(&out).contains("hint: --force replaces it"),
        "{}",
        stderr(&out)
    );

    let out = securerestore(
        dir.path(),
        &["restore", "b.sql", "--target", &target, "--force"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("3 rows"));
    support::drop_database(&target);
}

#[test]
fn each_error_class_has_its_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.sql"), "SELECT 1/0;\n").unwrap();
    let target = unique("cli_exit");
    let cases: [(&[&str], i32); 4] = [
        (&["restore", "../etc/passwd", "--target", &target], 3),
        (&["restore", "missing.sql", "--target", &target], 4),
        (&["restore", "bad.sql", "--target", &target], 7),
        (
            &["restore", "bad.sql", "--target", &target, "--jobs", "0"],
            3,
        ),
    ];
    for (args, code) in cases {
        let out = securerestore(dir.path(), args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("req_"),
            "{args:?}: the request id is shown"
        );
    }
    let out = securerestore(dir.path(), &["restore", "bad.sql", "--target", &target]);
    assert!(stderr(&out).contains("bad.sql, line 1"), "{}", stderr(&out));
    let out = securerestore(dir.path(), &["pack", "/nonexistent/dump.sql"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no file /nonexistent/dump.sql"),
        "{}",
        stderr(&out)
    );
    assert!(!support::database_exists(&target));
}

#[test]
fn local_status_of_a_missing_server_says_so() {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_securerestore"))
        .args(["local", "status"])
        .env("SECURERESTORE_STATE_DIR", state.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status["running"], false);
}

#[test]
fn pack_writes_a_sealed_multi_member_backup_that_restores_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    let mut dump = String::from("CREATE TABLE t (id int);\nCOPY t (id) FROM stdin;\n");
    for id in 0..300_000 {
        dump.push_str(&format!("{id}\n"));
    }
    dump.push_str("\\.\n");
    std::fs::write(source.path().join("big.sql"), &dump).unwrap();

    let file = source.path().join("big.sql");
    let args = ["pack", file.to_str().unwrap(), "--piece-mib", "1"];
    let out = securerestore(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let packed = std::fs::read(dir.path().join("big.sql.gz")).unwrap();
    let members = packed.windows(3).filter(|w| w == &[0x1f, 0x8b, 8]).count();
    assert!(members >= 2, "{members} gzip members");
    assert!(dir.path().join("big.sql.gz.sha256").exists());

    let target = unique("packed");
    let args = [
        "restore",
        "big.sql.gz",
        "--target",
        &target,
        "--verify",
        "--json",
    ];
    let out = securerestore(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status["summary"]["rows"], 300_000);
    assert_eq!(status["verification_status"], "verified");
    support::drop_database(&target);

    let out = securerestore(
        dir.path(),
        &["verify", "big.sql.gz", "--decode-only", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["decoded_bytes"], dump.len());
}

#[test]
fn neither_row_data_nor_the_password_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let dump = "CREATE TABLE cards (n text);\nINSERT INTO cards VALUES ('4111-1111-1111-1111');\n\
                COPY cards (n) FROM stdin;\n5500-0000-0000-0004\n\\.\nSELECT 1/0;\n";
    std::fs::write(dir.path().join("cards.sql"), dump).unwrap();
    let url = support::database_url().replacen(
        "postgresql://postgres@",
        "postgresql://postgres:hunter2secret@",
        1,
    );
    let target = unique("cards");
    let out = Command::new(env!("CARGO_BIN_EXE_securerestore"))
        .args([
            "--backup-dir",
            dir.path().to_str().unwrap(),
            "--database-url",
            &url,
            "-vvv",
        ])
        .args(["restore", "cards.sql", "--target", &target, "--json"])
        .env_remove("SECURERESTORE_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    let everything = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        everything.contains("DEBUG"),
        "-vvv shows the engine's detail"
    );
    for secret in ["4111-1111", "5500-0000", "hunter2secret"] {
        assert!(
            !everything.contains(secret),
            "{secret} appears in the output"
        );
    }
}
