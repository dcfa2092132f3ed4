//! Backups are recognised by their bytes, decoded whole, and refused with a reason when not.

use restore_core::{ErrorCode, RestoreOptions, RestoreState};

use crate::harness::{
    gzip, make_source, pg_dump, query, request, staging_left, unique, zstd_frame, Fixture,
};
use crate::support;

fn rows_sql(from: usize, to: usize) -> String {
    let mut sql = String::from("COPY t (id, v) FROM stdin;\n");
    for i in from..to {
        sql.push_str(&format!("{i}\tvalue {i}\n"));
    }
    sql + "\\.\n"
}

fn pieces() -> Vec<String> {
    let mut pieces = vec!["CREATE TABLE t (id int PRIMARY KEY, v text);\n".to_owned()];
    for chunk in 0..6 {
        pieces.push(rows_sql(chunk * 10_000, (chunk + 1) * 10_000));
    }
    pieces
}

fn restore_file(fixture: &Fixture, name: &str) -> (String, restore_core::RestoreStatus) {
    let target = unique("format");
    let options = RestoreOptions {
        parallel_workers: 2,
        ..Default::default()
    };
    let status = fixture.restore(name, &target, options);
    (target, status)
}

fn assert_all_rows(fixture: &Fixture, name: &str) {
    let (target, status) = restore_file(fixture, name);
    assert_eq!(
        status.status,
        RestoreState::Completed,
        "{name}: {:?}",
        status.error
    );
    assert_eq!(
        query(&target, "SELECT count(*), sum(id) FROM t"),
        "60000|1799970000"
    );
    support::drop_database(&target);
}

#[test]
fn a_multi_member_gzip_restores_as_one_stream() {
    let fixture = Fixture::new();
    let file: Vec<u8> = pieces()
        .iter()
        .flat_map(|piece| gzip(piece.as_bytes()))
        .collect();
    fixture.write("members.sql.gz", &file);
    assert_all_rows(&fixture, "members.sql.gz");
}

#[test]
fn a_multi_frame_zstd_with_skippable_frames_restores_as_one_stream() {
    let fixture = Fixture::new();
    let mut file = Vec::new();
    for piece in pieces() {
        file.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]);
        file.extend(zstd_frame(piece.as_bytes()));
    }
    fixture.write("frames.sql.zst", &file);
    assert_all_rows(&fixture, "frames.sql.zst");
}

#[test]
fn formats_are_recognised_by_their_bytes_not_their_names() {
    let fixture = Fixture::new();
    let sql: String = pieces().concat();
    fixture.write("plain.gz", sql.as_bytes());
    assert_all_rows(&fixture, "plain.gz");
    fixture.write("actually_gzip.sql", &gzip(sql.as_bytes()));
    assert_all_rows(&fixture, "actually_gzip.sql");
    fixture.write("actually_zstd.txt", &zstd_frame(sql.as_bytes()));
    assert_all_rows(&fixture, "actually_zstd.txt");
}

#[test]
fn a_truncated_gzip_fails_with_the_byte_offset() {
    let fixture = Fixture::new();
    let file = gzip(pieces().concat().as_bytes());
    fixture.write("cut.sql.gz", &file[..file.len() * 2 / 3]);
    let (target, status) = restore_file(&fixture, "cut.sql.gz");
    assert_eq!(status.status, RestoreState::Failed);
    let error = status.error.clone().expect("error");
    assert!(
        error.message().contains("cut.sql.gz"),
        "{}",
        error.message()
    );
    assert!(error.message().contains("byte"), "{}", error.message());
    assert!(!support::database_exists(&target));
    assert!(staging_left(&status).is_empty());
}

#[test]
fn bytes_after_the_last_member_fail_the_restore() {
    let fixture = Fixture::new();
    let mut file = gzip(pieces().concat().as_bytes());
    let end = file.len();
    file.extend_from_slice(b"garbage after the end");
    fixture.write("trailing.sql.gz", &file);
    let (_, status) = restore_file(&fixture, "trailing.sql.gz");
    assert_eq!(status.status, RestoreState::Failed);
    let error = status.error.clone().expect("error");
    assert_eq!(error.details()["offset"], end, "{}", error.message());
}

#[test]
fn a_custom_archive_is_refused_with_what_it_is() {
    let source = unique("custom");
    make_source(&source);
    let fixture = Fixture::new();
    fixture.write("custom.dump", &pg_dump(&source, &["-Fc"]));
    fixture.write("archive.tar", &pg_dump(&source, &["-Ft"]));
    for (name, what) in [("custom.dump", "custom"), ("archive.tar", "tar")] {
        let request = request(name, &unique("refused"), RestoreOptions::default());
        let err = fixture.engine.create_restore(request).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert!(err.message().contains(what), "{}", err.message());
    }
    support::drop_database(&source);
}

#[test]
fn names_outside_the_backup_directory_are_invalid_and_missing_ones_not_found() {
    let fixture = Fixture::new();
    for name in ["../etc/passwd", "/etc/passwd", "a/b.sql", "x\0y"] {
        let request = request(name, &unique("bad_name"), RestoreOptions::default());
        let err = fixture.engine.create_restore(request).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest, "{name}");
    }
    let request = request(
        "missing.sql.gz",
        &unique("missing"),
        RestoreOptions::default(),
    );
    let err = fixture.engine.create_restore(request).unwrap_err();
    assert_eq!(err.code(), ErrorCode::BackupNotFound);
    assert_eq!(err.http_status(), 404);
}
