//! The Pagila sample database, as written by other people's tools, restored like psql does.

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use restore_core::{RestoreOptions, RestoreState};

use crate::harness::{gzip, psql_restore, query, unique, Fixture};
use crate::support;

fn fixture(name: &str) -> Option<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/real");
    let file = std::fs::File::open(dir.join(name)).ok()?;
    let mut sql = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut sql)
        .expect("fixture decodes");
    Some(sql)
}

/// Row counts and content per table, leaving out the columns Pagila fills with `now()` when a
/// row is loaded (its data dump sets `modified` for most tables, not for `payment`), which
/// differ between any two restores.
fn fingerprint(db: &str) -> Vec<(String, i64, String)> {
    let tables = query(
        db,
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
         WHERE schemaname = 'public' ORDER BY 1",
    );
    tables
        .lines()
        .map(|table| {
            let row = "(to_jsonb(t) - 'created' - 'modified' - 'last_update')::text";
            let sql = format!(
                "SELECT count(*), coalesce(md5(string_agg({row}, E'\\n' ORDER BY {row})), '') \
                 FROM {table} t"
            );
            let out = query(db, &sql);
            let (rows, digest) = out.split_once('|').expect("count|md5");
            (
                table.to_owned(),
                rows.parse().expect("count"),
                digest.to_owned(),
            )
        })
        .collect()
}

#[test]
fn pagila_restores_like_psql_with_one_and_four_workers() {
    let (Some(schema), Some(data)) = (
        fixture("pagila-schema.sql.gz"),
        fixture("pagila-data.sql.gz"),
    ) else {
        eprintln!("skipped: ../shared/fixtures/real is not beside the repository");
        return;
    };
    let work = tempfile::tempdir().expect("temp");
    let (schema_file, data_file) = (work.path().join("schema.sql"), work.path().join("data.sql"));
    std::fs::write(&schema_file, &schema).unwrap();
    std::fs::write(&data_file, &data).unwrap();
    let reference = unique("pagila_psql");
    let clock = Instant::now();
    psql_restore(&reference, &[&schema_file, &data_file]);
    eprintln!("psql: {:.2} s", clock.elapsed().as_secs_f64());
    let expected = fingerprint(&reference);
    let rental = expected
        .iter()
        .find(|(table, ..)| table == "public.rental")
        .expect("rental");
    assert_eq!(rental.1, 16044);

    let fixture = Fixture::new();
    let mut whole = schema;
    whole.extend_from_slice(&data);
    fixture.write("backup_20240101_120000.sql.gz", &gzip(&whole));
    fixture.seal("backup_20240101_120000.sql.gz");

    for workers in [1, 4] {
        let target = unique(&format!("pagila_{workers}"));
        let options = RestoreOptions {
            verify: true,
            parallel_workers: workers,
            ..Default::default()
        };
        let status = fixture.restore("backup_20240101_120000.sql.gz", &target, options);
        assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
        eprintln!(
            "engine, {workers} workers: {:.2} s",
            status.duration_seconds
        );
        assert_eq!(status.progress, 100);
        let restored = fingerprint(&target);
        assert_eq!(restored, expected, "{workers} workers");
        support::drop_database(&target);
    }
    support::drop_database(&reference);
}
