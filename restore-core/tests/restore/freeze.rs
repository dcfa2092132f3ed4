//! Blocks one worker loads whole, while no other block loads, go in with `COPY … FREEZE`, in a
//! transaction that empties the table first: only where emptying it loses nothing and sets
//! nothing off.
//!
//! Whether rows went in frozen shows in `relallvisible`: a frozen load marks every page
//! all-visible, and the primary key built after it counts them, where a plain load leaves none
//! marked until a vacuum.

use std::time::Duration;

use restore_core::{OnError, RestoreOptions, RestoreState, RestoreStatus};

use crate::harness::{assert_failed_at, query, unique, Fixture};
use crate::support;

fn restore(sql: &str, options: RestoreOptions) -> (String, RestoreStatus) {
    let fixture = Fixture::new();
    fixture.write("freeze.sql", sql.as_bytes());
    let target = unique("freeze");
    let status = fixture.restore("freeze.sql", &target, options);
    (target, status)
}

fn one_worker() -> RestoreOptions {
    RestoreOptions {
        parallel_workers: 1,
        ..Default::default()
    }
}

/// Rows `from..=to` of a one-column COPY block, one per line, ended by `\.`.
fn rows(from: u32, to: u32) -> String {
    let mut block: String = (from..=to).map(|n| format!("{n}\trow {n}\n")).collect();
    block.push_str("\\.\n");
    block
}

/// Rows `from..=to` padded to about 1 KiB each, so that a few thousand fill more of the loader's
/// 1 MiB batches than a worker's queue holds.
fn wide_rows(from: u32, to: u32) -> String {
    let pad = "x".repeat(1000);
    let mut block: String = (from..=to).map(|n| format!("{n}\t{pad}\n")).collect();
    block.push_str("\\.\n");
    block
}

/// Whether every page of `table` is marked all-visible, and it has pages.
fn all_visible(db: &str, table: &str) -> bool {
    let sql = format!(
        "SELECT relpages > 0 AND relallvisible = relpages FROM pg_class \
         WHERE oid = '{table}'::regclass"
    );
    query(db, &sql) == "t"
}

fn keyed_table(name: &str) -> String {
    format!(
        "CREATE TABLE public.{name} (id integer NOT NULL, note text);\n\
         COPY public.{name} (id, note) FROM stdin;\n{}\
         ALTER TABLE ONLY public.{name} ADD CONSTRAINT {name}_pkey PRIMARY KEY (id);\n",
        rows(1, 3000)
    )
}

#[test]
fn a_table_one_worker_loads_goes_in_frozen() {
    for options in [
        one_worker(),
        // Under `continue` too, where a failure rolls the frozen load back with its block.
        RestoreOptions {
            on_error: OnError::Continue,
            ..one_worker()
        },
    ] {
        let (target, status) = restore(&keyed_table("t"), options);
        assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
        assert_eq!(
            query(&target, "SELECT count(*), sum(id) FROM t"),
            "3000|4501500"
        );
        assert!(all_visible(&target, "t"), "the rows were not frozen");
        support::drop_database(&target);
    }
}

#[test]
fn blocks_loaded_beside_each_other_go_in_frozen() {
    // With two workers each block goes whole to one of them, in one transaction.
    let sql = format!("{}{}", keyed_table("t"), keyed_table("u"));
    let (target, status) = restore(&sql, RestoreOptions::default());
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    let counts = "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM u)";
    assert_eq!(query(&target, counts), "3000|3000");
    assert!(all_visible(&target, "t") && all_visible(&target, "u"));
    support::drop_database(&target);
}

#[test]
fn rows_a_table_holds_before_its_block_are_kept() {
    // Emptying the table for a frozen load would lose the rows the INSERT put there.
    let sql = format!(
        "CREATE TABLE public.t (id integer, note text);\n\
         INSERT INTO public.t VALUES (0, 'before');\n\
         COPY public.t (id, note) FROM stdin;\n{}\
         COPY public.t (id, note) FROM stdin;\n{}",
        rows(1, 500),
        rows(501, 1000)
    );
    let (target, status) = restore(&sql, one_worker());
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(
        query(&target, "SELECT count(*), sum(id) FROM t"),
        "1001|500500"
    );
    support::drop_database(&target);
}

#[test]
fn a_referenced_table_and_one_with_a_truncate_trigger_load_as_written() {
    // TRUNCATE would refuse the referenced table, and would fire the trigger, which records
    // that it ran.
    let sql = format!(
        "CREATE TABLE public.fired (at text);\n\
         CREATE FUNCTION public.note_truncate() RETURNS trigger LANGUAGE plpgsql AS $$\n\
         BEGIN\n    INSERT INTO public.fired VALUES (TG_TABLE_NAME);\n    RETURN NULL;\nEND\n$$;\n\
         CREATE TABLE public.watched (id integer, note text);\n\
         CREATE TRIGGER watch AFTER TRUNCATE ON public.watched\n\
         \x20   FOR EACH STATEMENT EXECUTE FUNCTION public.note_truncate();\n\
         CREATE TABLE public.parent (id integer PRIMARY KEY, note text);\n\
         CREATE TABLE public.child (parent_id integer REFERENCES public.parent);\n\
         COPY public.watched (id, note) FROM stdin;\n{}\
         COPY public.parent (id, note) FROM stdin;\n{}\
         COPY public.child (parent_id) FROM stdin;\n1\n2\n\\.\n",
        rows(1, 100),
        rows(1, 100)
    );
    let (target, status) = restore(&sql, one_worker());
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    let counts = "SELECT (SELECT count(*) FROM watched), (SELECT count(*) FROM parent), \
                  (SELECT count(*) FROM child), (SELECT count(*) FROM fired)";
    assert_eq!(query(&target, counts), "100|100|2|0");
    support::drop_database(&target);
}

#[test]
fn a_bad_row_in_a_frozen_block_fails_only_that_block() {
    let sql = format!(
        "CREATE TABLE public.t (id integer, note text);\n\
         CREATE TABLE public.u (id integer, note text);\n\
         COPY public.t (id, note) FROM stdin;\n1\tone\nnot a number\ttwo\n\\.\n\
         COPY public.u (id, note) FROM stdin;\n{}",
        rows(1, 10)
    );
    let options = RestoreOptions {
        on_error: OnError::Continue,
        ..one_worker()
    };
    let (target, status) = restore(&sql, options);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    let lines: Vec<u64> = status.errors.iter().map(|error| error.line).collect();
    assert_eq!(lines, [3]);
    let counts = "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM u)";
    assert_eq!(query(&target, counts), "0|10");
    support::drop_database(&target);

    let (target, status) = restore(&sql, one_worker());
    assert_failed_at(&target, &status, 3, "integer");
}

#[test]
fn a_block_loaded_as_written_does_not_hold_its_table_from_the_next_block() {
    // The first block has options of its own and goes in as written; its COPY stays open on
    // one worker until that worker's next task. A frozen load of the second block on the other
    // worker would wait for the table's lock, and the loader, that worker's queue full, would
    // wait for it. The first block is longer than a queue, so its COPY is open before the
    // second block starts.
    let sql = format!(
        "CREATE TABLE public.t (id integer, note text);\n\
         COPY public.t (id, note) FROM stdin WITH (FORMAT text);\n{}\
         COPY public.t (id, note) FROM stdin;\n{}",
        wide_rows(1, 6000),
        wide_rows(6001, 15000)
    );
    let fixture = Fixture::new();
    fixture.write("freeze.sql", sql.as_bytes());
    let target = unique("freeze");
    let options = RestoreOptions {
        on_error: OnError::Continue,
        ..Default::default()
    };
    let status = fixture.restore_within("freeze.sql", &target, options, Duration::from_secs(60));
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(
        query(&target, "SELECT count(*), sum(id) FROM t"),
        "15000|112507500"
    );
    support::drop_database(&target);
}

#[test]
fn blocks_whose_rows_read_each_other_load_side_by_side_without_deadlock() {
    // Each table's default reads the other table. Two workers load the blocks at once; had
    // each held its table's exclusive lock for a frozen load, the rows of each would wait for
    // the other's lock, and the server would end the deadlock by failing one of the blocks.
    let sql = format!(
        "CREATE TABLE public.a (id integer, note text);\n\
         CREATE TABLE public.b (id integer, note text);\n\
         CREATE FUNCTION public.rows_of_a() RETURNS bigint LANGUAGE sql\n\
         \x20   AS 'SELECT count(*) FROM public.a';\n\
         CREATE FUNCTION public.rows_of_b() RETURNS bigint LANGUAGE sql\n\
         \x20   AS 'SELECT count(*) FROM public.b';\n\
         ALTER TABLE public.a ADD COLUMN seen bigint DEFAULT public.rows_of_b();\n\
         ALTER TABLE public.b ADD COLUMN seen bigint DEFAULT public.rows_of_a();\n\
         COPY public.a (id, note) FROM stdin;\n{}\
         COPY public.b (id, note) FROM stdin;\n{}",
        rows(1, 3000),
        rows(1, 3000)
    );
    for on_error in [OnError::Continue, OnError::Stop] {
        let options = RestoreOptions {
            on_error,
            ..Default::default()
        };
        let (target, status) = restore(&sql, options);
        assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
        assert!(status.errors.is_empty(), "{:?}", status.errors);
        let counts = "SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b)";
        assert_eq!(query(&target, counts), "3000|3000");
        support::drop_database(&target);
    }
}
