//! Post-data builds: when each starts, and how the server is let to run it.
//!
//! The dumps carry pg_dump's headers, without which builds run in file order on one
//! connection. What a build sees is observed from inside it: a function its expression or check
//! calls raises an error, failing the restore, when the build runs otherwise than it should.

use restore_core::{RestoreOptions, RestoreState};

use crate::harness::{query, unique, Fixture};
use crate::support;

fn header(name: &str, kind: &str) -> String {
    format!("--\n-- Name: {name}; Type: {kind}; Schema: public; Owner: -\n--\n\n")
}

fn restore(sql: &str, workers: usize) -> String {
    let fixture = Fixture::new();
    fixture.write("builds.sql", sql.as_bytes());
    let target = unique("builds");
    let options = RestoreOptions {
        parallel_workers: workers,
        ..Default::default()
    };
    let status = fixture.restore("builds.sql", &target, options);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    target
}

#[test]
fn a_foreign_key_starts_while_another_table_is_still_indexed() {
    // The index on `big` is built by a function that waits, for up to 10 s, until the foreign
    // key between two other tables has been committed: it completes only if the key starts
    // beside it rather than after it. The check is a volatile PL/pgSQL function, so that each
    // call takes a new snapshot; an SQL function would be inlined into the immutable caller.
    let mut sql = String::from(
        "CREATE FUNCTION public.key_exists() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$\n\
         BEGIN\n    RETURN EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'items_order_fk');\n\
         END\n$$;\n\
         CREATE FUNCTION public.after_key(v integer) RETURNS integer LANGUAGE plpgsql\n\
         IMMUTABLE AS $$\nBEGIN\n    FOR attempt IN 1..1000 LOOP\n\
         \x20       IF public.key_exists() THEN\n            RETURN v;\n        END IF;\n\
         \x20       PERFORM pg_sleep(0.01);\n    END LOOP;\n\
         \x20   RAISE EXCEPTION 'the foreign key did not start beside this index';\nEND\n$$;\n\
         CREATE TABLE public.big (v integer);\n\
         CREATE TABLE public.orders (id integer PRIMARY KEY);\n\
         CREATE TABLE public.items (order_id integer);\n\
         COPY public.big (v) FROM stdin;\n1\n\\.\n\
         COPY public.orders (id) FROM stdin;\n1\n2\n\\.\n\
         COPY public.items (order_id) FROM stdin;\n2\n\\.\n",
    );
    sql += &header("big_after_key_idx", "INDEX");
    sql += "CREATE INDEX big_after_key_idx ON public.big USING btree (public.after_key(v));\n";
    sql += &header("items items_order_fk", "FK CONSTRAINT");
    sql += "ALTER TABLE ONLY public.items\n    ADD CONSTRAINT items_order_fk FOREIGN KEY \
            (order_id) REFERENCES public.orders(id);\n";

    let target = restore(&sql, 2);

    assert_eq!(
        query(
            &target,
            "SELECT count(*) FROM pg_class WHERE relname = 'big_after_key_idx'"
        ),
        "1"
    );
    support::drop_database(&target);
}

/// A dump whose check constraints assert the `max_parallel_maintenance_workers` of the build
/// that validates them: 0 for the `serial` ones, the server's default for the `parallel` ones.
fn checks_dump(serial: &[&str], parallel: &[&str]) -> String {
    let default = query("postgres", "SHOW max_parallel_maintenance_workers");
    let mut sql = String::from(
        "CREATE FUNCTION public.built_with(v integer, expected text) RETURNS boolean\n\
         LANGUAGE plpgsql IMMUTABLE AS $$\nBEGIN\n\
         \x20   IF current_setting('max_parallel_maintenance_workers') <> expected THEN\n\
         \x20       RAISE EXCEPTION 'built with max_parallel_maintenance_workers = %, not %',\n\
         \x20           current_setting('max_parallel_maintenance_workers'), expected;\n\
         \x20   END IF;\n    RETURN true;\nEND\n$$;\n",
    );
    for table in serial.iter().chain(parallel) {
        sql += &format!("CREATE TABLE public.{table} (v integer);\n");
        sql += &format!("COPY public.{table} (v) FROM stdin;\n1\n\\.\n");
    }
    for (names, expected) in [(serial, "0"), (parallel, default.as_str())] {
        for table in names {
            sql += &header(&format!("{table} {table}_check"), "CHECK CONSTRAINT");
            sql += &format!(
                "ALTER TABLE ONLY public.{table}\n    ADD CONSTRAINT {table}_check CHECK \
                 (public.built_with(v, '{expected}'));\n"
            );
        }
        // A statement the loader does not schedule ends the run of builds.
        sql += "COMMENT ON FUNCTION public.built_with(integer, text) IS 'run ends';\n";
    }
    sql
}

#[test]
fn builds_beside_others_run_in_one_backend_and_a_lone_one_may_go_parallel() {
    // The first two checks run side by side; the third runs alone, on a worker whose session
    // forbade parallel workers for the build before.
    let target = restore(&checks_dump(&["a", "b"], &["c"]), 2);
    assert_eq!(
        query(
            &target,
            "SELECT count(*) FROM pg_constraint WHERE contype = 'c' \
             AND connamespace = 'public'::regnamespace"
        ),
        "3"
    );
    support::drop_database(&target);
}

#[test]
fn a_single_worker_leaves_every_build_to_the_server() {
    let target = restore(&checks_dump(&[], &["a", "b", "c"]), 1);
    support::drop_database(&target);
}

/// A dump of one-row tables whose indexes assert, each for its own table, the
/// `maintenance_work_mem` they are built with. `runs` are lists of (table, method, expected),
/// each list ended by a statement the loader does not schedule. The tables named in `inserted`
/// get their row from an `INSERT`, the others from a COPY block.
fn sort_memory_dump(preamble: &str, inserted: &[&str], runs: &[&[(&str, &str, &str)]]) -> String {
    let mut sql = format!(
        "{preamble}CREATE FUNCTION public.sorts_in(v integer, expected text) RETURNS integer\n\
         LANGUAGE plpgsql IMMUTABLE AS $$\nBEGIN\n\
         \x20   IF current_setting('maintenance_work_mem') <> expected THEN\n\
         \x20       RAISE EXCEPTION 'built with maintenance_work_mem = %, not %',\n\
         \x20           current_setting('maintenance_work_mem'), expected;\n\
         \x20   END IF;\n    RETURN v;\nEND\n$$;\n",
    );
    for (table, _, _) in runs.iter().copied().flatten() {
        sql += &format!("CREATE TABLE public.{table} (v integer);\n");
        if inserted.contains(table) {
            sql += &format!("INSERT INTO public.{table} VALUES (1);\n");
        } else {
            sql += &format!("COPY public.{table} (v) FROM stdin;\n1\n\\.\n");
        }
    }
    // A statement the loader does not schedule waits for every block: the first builds start
    // with all rows in, side by side.
    sql += "COMMENT ON FUNCTION public.sorts_in(integer, text) IS 'rows in';\n";
    for run in runs {
        for (table, method, expected) in run.iter() {
            sql += &header(&format!("{table}_sorted"), "INDEX");
            sql += &format!(
                "CREATE INDEX {table}_sorted ON public.{table} USING {method} \
                 (public.sorts_in(v, '{expected}'));\n"
            );
        }
        sql += "COMMENT ON FUNCTION public.sorts_in(integer, text) IS 'run ends';\n";
    }
    sql
}

#[test]
fn b_tree_builds_beside_others_sort_in_less_memory() {
    // Side by side, B-trees sort in 16 MB; alone, a B-tree keeps the connection's 256 MB (and
    // with it the server's parallel workers); hash indexes keep it beside each other, also on
    // a worker that sorted in 16 MB before.
    let dump = sort_memory_dump(
        "",
        &[],
        &[
            &[("a", "btree", "16MB"), ("b", "btree", "16MB")],
            &[("c", "btree", "256MB")],
            &[("d", "hash", "256MB"), ("e", "hash", "256MB")],
            &[("f", "btree", "16MB"), ("g", "btree", "16MB")],
        ],
    );
    let target = restore(&dump, 2);
    let indexes = "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                   WHERE c.relname LIKE '%\\_sorted'";
    assert_eq!(query(&target, indexes), "7");
    support::drop_database(&target);
}

#[test]
fn the_dumps_own_sort_memory_is_kept() {
    let dump = sort_memory_dump(
        "SET maintenance_work_mem = '100MB';\n",
        &[],
        &[&[("a", "btree", "100MB"), ("b", "btree", "100MB")]],
    );
    let target = restore(&dump, 2);
    support::drop_database(&target);
}

#[test]
fn a_table_filled_by_inserts_keeps_the_sort_memory() {
    // Its size is not known from COPY blocks: it might be too large for a small sort.
    let dump = sort_memory_dump(
        "",
        &["filled"],
        &[&[("filled", "btree", "256MB"), ("copied", "btree", "16MB")]],
    );
    let target = restore(&dump, 2);
    support::drop_database(&target);
}
