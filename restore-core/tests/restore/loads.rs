//! COPY blocks loaded whole, one per worker, while the loader reads on.
//!
//! With several workers a block goes to the first worker free and the loader reads past it,
//! its rows waiting in a spool (in memory, then in a temporary file), so the next blocks load
//! beside it and the builds of a table start once its own block is in.

use restore_core::{RestoreOptions, RestoreState, RestoreStatus};

use crate::harness::{assert_failed_at, query, unique, Fixture};
use crate::support;

fn restore(sql: &str) -> (String, RestoreStatus) {
    let fixture = Fixture::new();
    fixture.write("loads.sql", sql.as_bytes());
    let target = unique("loads");
    let status = fixture.restore("loads.sql", &target, RestoreOptions::default());
    (target, status)
}

fn header(name: &str, kind: &str) -> String {
    format!("--\n-- Name: {name}; Type: {kind}; Schema: public; Owner: -\n--\n\n")
}

/// Rows `from..=to` of a two-column COPY block (`id`, `note`), ended by `\.`.
fn rows(from: u32, to: u32, note: &str) -> String {
    let mut block: String = (from..=to).map(|n| format!("{n}\t{note}\n")).collect();
    block.push_str("\\.\n");
    block
}

/// Rows `1..=count` of a two-column block, then one its table refuses, ended by `\.`.
fn rows_failing_last(count: u32) -> String {
    let mut block = rows(1, count, "big");
    block.truncate(block.len() - "\\.\n".len());
    block + "not a number\tlast\n\\.\n"
}

#[test]
fn a_build_starts_while_another_table_still_loads() {
    // Each row of `slow` waits, for up to 10 s, until the index on `quick` exists: its block
    // ends only if that index is built while it loads rather than after every block.
    let sql = format!(
        "CREATE FUNCTION public.index_built() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$\n\
         BEGIN\n    FOR attempt IN 1..1000 LOOP\n\
         \x20       IF EXISTS (SELECT 1 FROM pg_class WHERE relname = 'quick_note') THEN\n\
         \x20           RETURN true;\n        END IF;\n        PERFORM pg_sleep(0.01);\n\
         \x20   END LOOP;\n    RAISE EXCEPTION 'the index on quick was not built meanwhile';\n\
         END\n$$;\n\
         CREATE TABLE public.quick (id integer, note text);\n\
         CREATE TABLE public.slow (id integer, note text CHECK (public.index_built()));\n\
         {}COPY public.quick (id, note) FROM stdin;\n{}\
         {}COPY public.slow (id, note) FROM stdin;\n{}\
         {}CREATE INDEX quick_note ON public.quick USING btree (note);\n",
        header("quick", "TABLE DATA"),
        rows(1, 100, "q"),
        header("slow", "TABLE DATA"),
        rows(1, 10, "s"),
        header("quick_note", "INDEX"),
    );
    let (target, status) = restore(&sql);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    let counts = "SELECT (SELECT count(*) FROM quick), (SELECT count(*) FROM slow)";
    assert_eq!(query(&target, counts), "100|10");
    support::drop_database(&target);
}

#[test]
fn rows_set_aside_in_a_file_load_intact() {
    // More rows than the spools keep in memory (32 MiB) wait in a file while the first block
    // loads, and come back in order: the sums of their ids and of their lengths match.
    let note = "x".repeat(200);
    let sql = format!(
        "CREATE TABLE public.first (id integer, note text);\n\
         CREATE TABLE public.second (id integer, note text);\n\
         COPY public.first (id, note) FROM stdin;\n{}\
         COPY public.second (id, note) FROM stdin;\n{}",
        rows(1, 200_000, &note),
        rows(1, 50_000, "y"),
    );
    let (target, status) = restore(&sql);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    let check = "SELECT count(*), sum(id), sum(length(note)), \
                 bool_and(id = lag_id + 1 OR lag_id IS NULL) \
                 FROM (SELECT id, note, lag(id) OVER (ORDER BY ctid) AS lag_id FROM first) rows";
    assert_eq!(query(&target, check), "200000|20000100000|40000000|t");
    assert_eq!(
        query(&target, "SELECT count(*), sum(id) FROM second"),
        "50000|1250025000"
    );
    support::drop_database(&target);
}

#[test]
fn a_failed_block_is_reported_while_later_blocks_are_read() {
    // The first block fails on its second row while the loader reads the next one.
    let sql = format!(
        "CREATE TABLE public.bad (id integer, note text);\n\
         CREATE TABLE public.later (id integer, note text);\n\
         COPY public.bad (id, note) FROM stdin;\n1\tone\nnot a number\ttwo\n\\.\n\
         COPY public.later (id, note) FROM stdin;\n{}",
        rows(1, 100_000, "later")
    );
    let (target, status) = restore(&sql);
    assert_failed_at(&target, &status, 3, "integer");
}

#[test]
fn a_setval_reading_a_table_waits_for_its_rows() {
    // The table holds a row before its block, so the block is not frozen and a query reading
    // the table does not wait on its lock: run beside the load, the setval finds only that row.
    let sql = format!(
        "CREATE TABLE public.counted (id integer, note text);\n\
         CREATE SEQUENCE public.counted_id_seq;\n\
         INSERT INTO public.counted VALUES (0, 'before');\n\
         COPY public.counted (id, note) FROM stdin;\n{}\
         SELECT pg_catalog.setval('public.counted_id_seq', \
         (SELECT max(id) FROM public.counted));\n",
        rows(1, 200_000, "c"),
    );
    let (target, status) = restore(&sql);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(
        query(&target, "SELECT last_value FROM counted_id_seq"),
        "200000"
    );
    support::drop_database(&target);
}

#[test]
fn a_failed_block_is_reported_before_a_later_failed_build() {
    // The unique index on `twice` fails at once, while the block before it, failing on its
    // last row, still loads: the block's failure comes first in the file.
    let big = rows_failing_last(200_000);
    let sql = format!(
        "CREATE TABLE public.big (id integer, note text);\n\
         CREATE TABLE public.twice (id integer);\n\
         COPY public.big (id, note) FROM stdin;\n{big}\
         COPY public.twice (id) FROM stdin;\n1\n1\n\\.\n\
         {}CREATE UNIQUE INDEX twice_id ON public.twice USING btree (id);\n",
        header("twice_id", "INDEX"),
    );
    let (target, status) = restore(&sql);
    assert_failed_at(&target, &status, 3, "integer");
}

#[test]
fn the_earliest_failed_block_is_reported_when_a_later_one_fails_first() {
    // The second block fails on its first row while the first, failing on its last, loads.
    let big = rows_failing_last(200_000);
    let sql = format!(
        "CREATE TABLE public.big (id integer, note text);\n\
         CREATE TABLE public.small (id integer, note text);\n\
         COPY public.big (id, note) FROM stdin;\n{big}\
         COPY public.small (id, note) FROM stdin;\nnot a number\tfirst\n\\.\n",
    );
    let (target, status) = restore(&sql);
    assert_failed_at(&target, &status, 3, "integer");
}
