//! What a dump may hold, restored through the engine into a real server.

use restore_core::{OnError, RestoreOptions, RestoreState, RestoreStatus};

use crate::harness::{
    assert_failed_at, make_source, pg_dump, query, staging_left, unique, Fixture,
};
use crate::support;

fn restore_sql(sql: &[u8], options: RestoreOptions) -> (String, RestoreStatus) {
    let fixture = Fixture::new();
    fixture.write("dump.sql", sql);
    let target = unique("dump");
    let status = fixture.restore("dump.sql", &target, options);
    (target, status)
}

fn completed(sql: &[u8]) -> String {
    let (target, status) = restore_sql(sql, RestoreOptions::default());
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    target
}

fn refused(sql: &[u8]) -> String {
    let (target, status) = restore_sql(sql, RestoreOptions::default());
    assert_eq!(status.status, RestoreState::Failed);
    assert!(!support::database_exists(&target));
    assert!(staging_left(&status).is_empty());
    status.error.clone().expect("error").message().to_owned()
}

#[test]
fn a_real_pg_dump_restores_with_the_same_content_and_objects() {
    let source = unique("source");
    make_source(&source);
    let expected = support::table_fingerprint(&support::database_url(), &source);

    for workers in [1, 3] {
        let dump = pg_dump(&source, &[]);
        let options = RestoreOptions {
            parallel_workers: workers,
            ..Default::default()
        };
        let fixture = Fixture::new();
        fixture.write("dump.sql", &dump);
        let target = unique("dump");
        let status = fixture.restore("dump.sql", &target, options);
        assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
        assert_eq!(
            support::table_fingerprint(&support::database_url(), &target),
            expected
        );
        // Every statement of the dump is either run or skipped, client_encoding included.
        let found = fixture.engine.verify_backup("dump.sql").expect("verify");
        assert_eq!(
            status.summary.statements + status.summary.skipped,
            found.statements
        );
        let objects = "SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'), \
                       (SELECT count(*) FROM pg_constraint WHERE contype = 'f'), \
                       stars_of(1) IS NOT NULL, (SELECT count(*) FROM cheap) > 0, \
                       obj_description('books'::regclass)";
        assert_eq!(query(&target, objects), query(&source, objects));
        assert_eq!(status.summary.tables, 3);
        assert_eq!(status.summary.rows, 25200);
        support::drop_database(&target);
    }
    support::drop_database(&source);
}

#[test]
fn a_create_dump_is_followed_into_the_target() {
    let source = unique("created");
    make_source(&source);
    query(
        &source,
        &format!("COMMENT ON DATABASE {source} IS 'from the dump'"),
    );
    let dump = pg_dump(&source, &["--create", "--clean", "--if-exists"]);
    let (target, status) = restore_sql(&dump, RestoreOptions::default());
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(query(&target, "SELECT count(*) FROM books"), "20000");
    let comment = "SELECT shobj_description(oid, 'pg_database') FROM pg_database \
                   WHERE datname = current_database()";
    assert_eq!(query(&target, comment), "from the dump");
    assert!(
        support::database_exists(&source),
        "the dumped database itself is untouched"
    );
    support::drop_database(&target);
    support::drop_database(&source);
}

#[test]
fn large_objects_restore_in_order_on_one_connection() {
    let source = unique("blobs");
    support::create_database(&source);
    query(
        &source,
        "CREATE TABLE docs (id int, body oid); \
         INSERT INTO docs SELECT i, lo_from_bytea(0, convert_to(repeat('blob', i), 'UTF8')) \
         FROM generate_series(1, 30) i;",
    );
    let dump = pg_dump(&source, &[]);
    let options = RestoreOptions {
        parallel_workers: 4,
        ..Default::default()
    };
    let (target, status) = restore_sql(&dump, options);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    let check = "SELECT sum(length(lo_get(body))) FROM docs";
    assert_eq!(query(&target, check), query(&source, check));
    support::drop_database(&target);
    support::drop_database(&source);
}

#[test]
fn restrict_lines_are_consumed_and_never_sent() {
    let target = completed(b"\\restrict AbC123\nCREATE TABLE t (x int);\n\\unrestrict AbC123\n");
    assert_eq!(query(&target, "SELECT count(*) FROM t"), "0");
    support::drop_database(&target);
}

#[test]
fn crlf_files_restore_like_lf_files() {
    let sql = "CREATE TABLE t (id int, v text);\r\nCOPY t (id, v) FROM stdin;\r\n\
               1\ta\r\n2\tb.\r\n\\.\r\nINSERT INTO t VALUES (3, 'c');\r\n";
    let target = completed(sql.as_bytes());
    assert_eq!(
        query(&target, "SELECT string_agg(v, ',' ORDER BY id) FROM t"),
        "a,b.,c"
    );
    support::drop_database(&target);
}

#[test]
fn a_byte_order_mark_at_the_start_is_skipped() {
    let target = completed(b"\xef\xbb\xbfCREATE TABLE t (x int);\n");
    assert_eq!(query(&target, "SELECT count(*) FROM t"), "0");
    support::drop_database(&target);
}

#[test]
fn copy_rows_that_look_like_terminators_are_data() {
    let sql = "CREATE TABLE t (id int, v text);\nCOPY t (id, v) FROM stdin;\n\
               1\tends with a dot.\n2\t\\\\.\n3\t.\n\\.\n";
    let target = completed(sql.as_bytes());
    assert_eq!(
        query(&target, "SELECT string_agg(v, '|' ORDER BY id) FROM t"),
        "ends with a dot.|\\.|."
    );
    support::drop_database(&target);
}

#[test]
fn a_20_mb_row_and_a_300_kb_statement_restore_without_a_line_limit() {
    let long_value = "y".repeat(300_000);
    let sql = format!(
        "CREATE TABLE t (id int, v text);\nCOPY t (id, v) FROM stdin;\n1\t{}\n\\.\n\
         INSERT INTO t VALUES (2, '{long_value}');\n",
        "x".repeat(20 << 20)
    );
    let target = completed(sql.as_bytes());
    assert_eq!(
        query(
            &target,
            "SELECT string_agg(length(v)::text, ',' ORDER BY id) FROM t"
        ),
        "20971520,300000"
    );
    support::drop_database(&target);
}

#[test]
fn a_latin1_dump_is_read_in_its_encoding() {
    let mut sql = b"SET client_encoding = 'LATIN1';\nCREATE TABLE t (v text);\n\
                    INSERT INTO t VALUES ('caf\xe9');\nCOPY t (v) FROM stdin;\nna\xefve\n\\.\n"
        .to_vec();
    sql.extend_from_slice(b"COMMENT ON TABLE t IS 'd\xe9j\xe0';\n");
    let target = completed(&sql);
    assert_eq!(
        query(&target, "SELECT string_agg(v, ',' ORDER BY v) FROM t"),
        "café,naïve"
    );
    assert_eq!(
        query(&target, "SELECT obj_description('t'::regclass)"),
        "déjà"
    );
    support::drop_database(&target);
}

#[test]
fn a_setting_the_server_does_not_know_is_skipped_with_a_warning() {
    let (target, status) = restore_sql(
        b"SET transaction_timeout = 0;\nSET nonexistent_setting_xyz = 1;\n\
          CREATE TABLE t (x int);\n",
        RestoreOptions::default(),
    );
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert!(
        status
            .warnings
            .iter()
            .any(|w| w.contains("setting skipped")),
        "{:?}",
        status.warnings
    );
    support::drop_database(&target);
}

#[test]
fn session_settings_reach_every_worker() {
    let sql = "CREATE SCHEMA s;\nCREATE TABLE s.t (v text);\nSET search_path = s;\n\
               SET standard_conforming_strings = off;\nCOPY t (v) FROM stdin;\n"
        .to_owned()
        + &"row\n".repeat(5000)
        + "\\.\nINSERT INTO t VALUES ('a\\'b');\n";
    let fixture = Fixture::new();
    fixture.write("d.sql", sql.as_bytes());
    let target = unique("settings");
    let options = RestoreOptions {
        parallel_workers: 3,
        ..Default::default()
    };
    let status = fixture.restore("d.sql", &target, options);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(query(&target, "SELECT count(*) FROM s.t"), "5001");
    assert_eq!(
        query(&target, "SELECT count(*) FROM s.t WHERE v = 'a''b'"),
        "1"
    );
    support::drop_database(&target);
}

#[test]
fn on_error_continue_skips_and_reports_each_failure() {
    let sql = "-- Name: t; Type: TABLE; Schema: public; Owner: x\n\
               CREATE TABLE t (id int);\nCOPY t (id) FROM stdin;\n1\nnot a number\n\\.\n\
               SELECT 1/0;\nCREATE TABLE u (x int);\n";
    let options = RestoreOptions {
        on_error: OnError::Continue,
        ..Default::default()
    };
    let (target, status) = restore_sql(sql.as_bytes(), options);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(status.errors.len(), 2, "{:?}", status.errors);
    assert_eq!(status.errors[0].line, 3);
    assert_eq!(status.errors[0].object.as_deref(), Some("TABLE public.t"));
    assert_eq!(status.errors[1].line, 7);
    assert_eq!(
        query(&target, "SELECT count(*) FROM t"),
        "0",
        "the failed block is skipped whole"
    );
    assert_eq!(query(&target, "SELECT to_regclass('u') IS NOT NULL"), "t");
    support::drop_database(&target);
}

#[test]
fn no_owner_and_no_privileges_skip_what_they_name() {
    let sql = b"CREATE TABLE t (x int);\nALTER TABLE t OWNER TO role_that_does_not_exist;\n\
                GRANT SELECT ON t TO role_that_does_not_exist;\n";
    let options = RestoreOptions {
        no_owner: true,
        no_privileges: true,
        ..Default::default()
    };
    let (target, status) = restore_sql(sql, options);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(status.summary.skipped, 2);
    support::drop_database(&target);
    let (_, status) = restore_sql(sql, RestoreOptions::default());
    assert_eq!(
        status.status,
        RestoreState::Failed,
        "without the options the role is needed"
    );
}

#[test]
fn shell_and_file_meta_commands_are_refused_and_never_run() {
    let marker = std::env::temp_dir().join(format!("sr_marker_{}", std::process::id()));
    for meta in [
        format!("\\! touch {}", marker.display()),
        "\\o /tmp/out".into(),
        "\\i /etc/passwd".into(),
        "\\copy t from '/etc/passwd'".into(),
        "SELECT 1 \\gexec".into(),
    ] {
        let message = refused(format!("CREATE TABLE t (x int);\n{meta}\n").as_bytes());
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("not allowed"), "{message}");
    }
    assert!(!marker.exists(), "a shell command ran");
}

#[test]
fn statements_beyond_the_target_are_refused() {
    for sql in [
        "ALTER SYSTEM SET work_mem = '1GB';",
        "CREATE ROLE intruder;",
        "DROP DATABASE postgres;",
        "CREATE DATABASE other;\nCREATE DATABASE third;",
        "COMMENT ON DATABASE postgres IS 'x';",
    ] {
        let message = refused(format!("CREATE TABLE t (x int);\n{sql}\n").as_bytes());
        assert!(message.contains("refused"), "{sql}: {message}");
    }
}

#[test]
fn a_dump_of_several_databases_is_refused() {
    let sql = "CREATE DATABASE a;\n\\connect a\nCREATE TABLE t (x int);\n\
               CREATE DATABASE b;\n\\connect b\nCREATE TABLE u (x int);\n";
    let message = refused(sql.as_bytes());
    assert!(message.contains("pg_dumpall"), "{message}");
    let message = refused(b"\\connect a\nCREATE TABLE t (x int);\n\\connect b\n");
    assert!(message.contains("pg_dumpall"), "{message}");
}

#[test]
fn a_truncated_copy_block_fails_and_names_its_line() {
    let message = refused(b"CREATE TABLE t (x int);\nCOPY t (x) FROM stdin;\n1\n2\n");
    assert!(message.contains("line 2"), "{message}");
}

/// A restore that would wait for ever on a lock fails after this many seconds instead.
fn bounded() -> RestoreOptions {
    RestoreOptions {
        parallel_workers: 3,
        timeout_seconds: Some(60),
        ..Default::default()
    }
}

/// Restores `sql` under `continue`, bounded; it must complete. Returns the target and the lines
/// of the statements that failed.
fn continued(sql: &[u8]) -> (String, Vec<u64>) {
    let options = RestoreOptions {
        on_error: OnError::Continue,
        ..bounded()
    };
    let (target, status) = restore_sql(sql, options);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    (target, status.errors.iter().map(|e| e.line).collect())
}

#[test]
fn builds_inside_a_transaction_block_run_in_it() {
    // Under pg_dump's headers these builds would go to the workers, which cannot see a table
    // the block has not committed.
    let sql = b"BEGIN;\n\
        -- Name: t; Type: TABLE; Schema: public; Owner: -\n\
        CREATE TABLE public.t (x int, y int);\n\
        INSERT INTO public.t VALUES (1, 1), (2, 2);\n\
        -- Name: t_x; Type: INDEX; Schema: public; Owner: -\n\
        CREATE INDEX t_x ON public.t USING btree (x);\n\
        -- Name: t_y; Type: INDEX; Schema: public; Owner: -\n\
        CREATE INDEX t_y ON public.t USING btree (y);\n\
        -- Name: t t_pk; Type: CONSTRAINT; Schema: public; Owner: -\n\
        ALTER TABLE ONLY public.t ADD CONSTRAINT t_pk PRIMARY KEY (x);\n\
        COMMIT;\n";
    let (target, status) = restore_sql(sql, bounded());
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    let indexes = "SELECT count(*) FROM pg_indexes WHERE tablename = 't'";
    assert_eq!(query(&target, indexes), "3");
    support::drop_database(&target);
}

#[test]
fn a_copy_inside_a_transaction_block_loads_in_it() {
    // The TRUNCATE holds the table's lock until COMMIT: a worker's COPY would wait for it.
    let rows: String = (1..=5000).map(|x| format!("{x}\n")).collect();
    let sql = format!(
        "CREATE TABLE t (x int);\nINSERT INTO t VALUES (0);\nBEGIN;\nTRUNCATE t;\n\
         COPY t (x) FROM stdin;\n{rows}\\.\nCOMMIT;\nCOPY t (x) FROM stdin;\n5001\n\\.\n"
    );
    let (target, status) = restore_sql(sql.as_bytes(), bounded());
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(query(&target, "SELECT count(*), min(x) FROM t"), "5001|1");
    assert_eq!(status.summary.rows, 5001);
    support::drop_database(&target);
}

#[test]
fn a_latin1_copy_inside_a_transaction_block_is_read_in_its_encoding() {
    let sql = b"SET client_encoding = 'LATIN1';\nBEGIN;\nCREATE TABLE t (v text);\n\
                COPY t (v) FROM stdin;\nna\xefve\n\\.\nCOMMIT;\n\
                INSERT INTO t VALUES ('caf\xe9');\n";
    let (target, status) = restore_sql(sql, bounded());
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(
        query(&target, "SELECT string_agg(v, ',' ORDER BY v) FROM t"),
        "café,naïve"
    );
    support::drop_database(&target);
}

#[test]
fn a_failing_copy_inside_a_transaction_block_names_its_line() {
    let sql = b"CREATE TABLE t (x int);\nBEGIN;\nCOPY t (x) FROM stdin;\n1\nnot a number\n\\.\n\
                COMMIT;\n";
    let (target, status) = restore_sql(sql, bounded());
    assert_failed_at(&target, &status, 3, "integer");

    // Under `continue`, as with psql, the block is rolled back and what follows it stays.
    let (target, lines) = continued(
        b"CREATE TABLE t (x int);\nBEGIN;\nINSERT INTO t VALUES (1);\n\
          COPY t (x) FROM stdin;\n2\nnot a number\n\\.\nCOMMIT;\nINSERT INTO t VALUES (3);\n",
    );
    assert_eq!(lines, [4]);
    assert_eq!(
        query(&target, "SELECT string_agg(x::text, ',') FROM t"),
        "3"
    );
    support::drop_database(&target);
}

#[test]
fn a_rolled_back_block_leaves_nothing_as_in_psql() {
    let sql = b"CREATE TABLE t (x int);\nBEGIN;\nCOPY t (x) FROM stdin;\n1\n\\.\n\
                INSERT INTO t VALUES (2);\nROLLBACK;\nINSERT INTO t VALUES (3);\n";
    let (target, status) = restore_sql(sql, bounded());
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(
        query(&target, "SELECT string_agg(x::text, ',') FROM t"),
        "3"
    );
    support::drop_database(&target);
}

#[test]
fn a_dump_ending_inside_a_transaction_block_is_refused() {
    // psql would end, its server roll the block back, and the restore look complete.
    let message = refused(b"CREATE TABLE t (x int);\nSTART TRANSACTION;\nDROP TABLE t;\n");
    assert!(message.contains("line 2"), "{message}");
    assert!(
        message.contains("ends inside this transaction block"),
        "{message}"
    );

    let message = refused(b"BEGIN;\nCREATE TABLE t (x int);\n\\connect other\nCOMMIT;\n");
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("opened at line 1"), "{message}");
}

#[test]
fn a_begin_the_server_refuses_opens_no_block() {
    let (target, lines) = continued(
        b"CREATE TABLE t (a int);\nBEGIN ISOLATION LEVEL bogus;\n\
          COPY t (a) FROM stdin;\n1\n\\.\n",
    );
    assert_eq!(lines, [2]);
    assert_eq!(
        query(&target, "SELECT string_agg(a::text, ',') FROM t"),
        "1"
    );
    support::drop_database(&target);
}

#[test]
fn settings_of_a_rolled_back_block_are_undone_on_every_worker() {
    // COPY rows after the block go to the workers, which must resolve `t` as psql's session
    // does once the block's SET is rolled back: to public.t.
    let rows: String = (1..=3000).map(|x| format!("{x}\n")).collect();
    for block in [
        "BEGIN;\nSET search_path = s;\nROLLBACK;\n",
        "BEGIN;\nSET search_path = s;\nSELECT 1/0;\nCOMMIT;\n",
    ] {
        let sql = format!(
            "CREATE SCHEMA s;\nCREATE TABLE public.t (a int);\nCREATE TABLE s.t (a int);\n\
             {block}COPY t (a) FROM stdin;\n{rows}\\.\n"
        );
        let (target, _) = continued(sql.as_bytes());
        let counts = "SELECT (SELECT count(*) FROM public.t), (SELECT count(*) FROM s.t)";
        assert_eq!(query(&target, counts), "3000|0", "{block}");
        support::drop_database(&target);
    }
}

#[test]
fn statements_about_the_database_inside_a_block_are_refused() {
    // The server could not roll them back with the block: they are applied elsewhere.
    let message = refused(
        b"CREATE DATABASE src;\n\\connect src\nCREATE TABLE t (a int);\nBEGIN;\n\
          ALTER DATABASE src SET work_mem = '7MB';\nROLLBACK;\n",
    );
    assert!(message.contains("line 5"), "{message}");
    assert!(message.contains("opened at line 4"), "{message}");
}

#[test]
fn a_copy_naming_a_non_ascii_table_in_a_latin1_dump_loads() {
    // The names are sent as UTF-8 and the rows read as LATIN1, on the workers and in a block.
    for block in [("", ""), ("BEGIN;\n", "COMMIT;\n")] {
        let mut sql =
            b"SET client_encoding = 'LATIN1';\nCREATE TABLE \"caf\xe9\" (\"n\xe9\" text);\n"
                .to_vec();
        sql.extend_from_slice(block.0.as_bytes());
        sql.extend_from_slice(b"COPY \"caf\xe9\" (\"n\xe9\") FROM stdin;\n\xe9t\xe9\n\\.\n");
        sql.extend_from_slice(block.1.as_bytes());
        let (target, status) = restore_sql(&sql, bounded());
        assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
        assert_eq!(query(&target, "SELECT \"né\" FROM \"café\""), "été");
        support::drop_database(&target);
    }

    let message = refused(
        b"SET client_encoding = 'LATIN1';\nCREATE TABLE \"caf\xe9\" (n text);\n\
          COPY \"caf\xe9\" (n) FROM stdin WITH (FORMAT text);\n\xe9t\xe9\n\\.\n",
    );
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("non-ASCII"), "{message}");
}

#[test]
fn a_copy_row_the_server_would_join_to_the_next_names_its_line_once() {
    let message = refused(b"CREATE TABLE t (x text);\nCOPY t (x) FROM stdin;\n1\n2\\\n3\n\\.\n");
    assert!(
        message.starts_with("dump.sql, line 4: the COPY row ends in"),
        "{message}"
    );
}

#[test]
fn a_block_whose_rows_are_checked_by_triggers_is_loaded_whole_in_order() {
    // A hand-written schema with its foreign keys in place before the data: each row refers to
    // the one before it, so batches loaded side by side would fail the check.
    let mut sql = String::from(
        "CREATE TABLE chain (id int PRIMARY KEY, prev int REFERENCES chain(id), pad text);\n\
         CREATE TABLE child (id int REFERENCES chain(id));\n\
         COPY chain (id, prev, pad) FROM stdin;\n1\t\\N\tx\n",
    );
    for id in 2..=60_000 {
        sql.push_str(&format!("{id}\t{}\t{}\n", id - 1, "p".repeat(40)));
    }
    sql.push_str("\\.\nCOPY child (id) FROM stdin;\n1\n60000\n\\.\n");
    let options = RestoreOptions {
        parallel_workers: 4,
        ..Default::default()
    };
    let (target, status) = restore_sql(sql.as_bytes(), options);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(query(&target, "SELECT count(*) FROM chain"), "60000");
    support::drop_database(&target);
}

#[test]
fn the_encoding_meta_command_is_applied() {
    let target = completed(
        b"\\encoding LATIN1\nCREATE TABLE t (v text);\nINSERT INTO t VALUES ('\xe9t\xe9');\n",
    );
    assert_eq!(query(&target, "SELECT v FROM t"), "été");
    support::drop_database(&target);
}

#[test]
fn a_statement_hidden_where_lexer_and_server_split_differently_never_runs() {
    // SET LOCAL outside a transaction changes nothing on the server, but a lexer that believed
    // it would read the backslash as an escape and see one statement where the server sees
    // three. Each statement goes alone in an extended-protocol message, so the server refuses
    // the text instead of running what was hidden in it.
    let marker = std::env::temp_dir().join(format!("sr_hidden_{}", std::process::id()));
    let sql = format!(
        "SET LOCAL standard_conforming_strings = off;\n\
         SELECT 'x\\'; COPY (SELECT 1) TO PROGRAM 'touch {}'; --';\n",
        marker.display()
    );
    let (target, status) = restore_sql(sql.as_bytes(), RestoreOptions::default());
    assert_eq!(status.status, RestoreState::Failed);
    assert!(!marker.exists(), "the hidden statement ran");
    assert!(!support::database_exists(&target));
}

#[test]
fn database_statements_land_on_the_restored_database_only() {
    let victim = unique("victim");
    support::create_database(&victim);
    query(
        &victim,
        "CREATE TABLE secret (x int); INSERT INTO secret VALUES (1);",
    );

    let rename = format!("\\connect {victim}\nALTER /* x */ DATABASE {victim} RENAME TO stolen;\n");
    let message = refused(rename.as_bytes());
    assert!(message.contains("owner and settings"), "{message}");

    let hidden = format!(
        "\\connect {victim}\nALTER /* x */ DATABASE {victim} /* y */ SET work_mem = '7MB';\n\
         CREATE TABLE t (x int);\n"
    );
    let target = completed(hidden.as_bytes());
    let setting = "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s \
                   JOIN pg_database d ON d.oid = s.setdatabase \
                   WHERE d.datname = current_database()";
    assert_eq!(query(&target, setting), "work_mem=7MB");
    assert_eq!(
        query(&victim, setting),
        "",
        "the named database is untouched"
    );
    support::drop_database(&target);

    let clone = format!(
        "CREATE DATABASE copied WITH TEMPLATE = {victim} ENCODING = 'UTF8';\n\\connect copied\n\
         CREATE TABLE t (x int);\n"
    );
    let (target, status) = restore_sql(clone.as_bytes(), RestoreOptions::default());
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(
        query(&target, "SELECT to_regclass('secret') IS NULL"),
        "t",
        "no copy of another database"
    );
    assert!(
        status.warnings.iter().any(|w| w.contains("template")),
        "{:?}",
        status.warnings
    );
    assert_eq!(query(&victim, "SELECT count(*) FROM secret"), "1");
    support::drop_database(&target);
    support::drop_database(&victim);
}

#[test]
fn a_row_ending_in_backslash_dot_fails_the_restore_before_rows_are_lost() {
    // PostgreSQL 15 reads `x\.` as data followed by its end-of-copy marker and silently drops
    // the rows after it; psql reports success. Loaded in pieces, the rows after it would be
    // stored instead: the engine refuses the dump.
    let message = refused(b"CREATE TABLE t (a text);\nCOPY t (a) FROM stdin;\n1\nx\\.\n2\n\\.\n");
    assert!(message.contains("line 4"), "{message}");
    assert!(
        message.contains("takes as the end of the data"),
        "{message}"
    );
}

#[test]
fn copy_rows_the_server_would_read_across_pieces_fail_the_restore() {
    for (rows, line, expected) in [
        ("1\n2\r\n", 4, "line end"),
        ("1\\\n2\n", 3, "read it together with the next line"),
    ] {
        let sql = format!("CREATE TABLE t (a text);\nCOPY t (a) FROM stdin;\n{rows}\\.\n");
        let message = refused(sql.as_bytes());
        assert!(
            message.contains(&format!("line {line}")),
            "{rows:?}: {message}"
        );
        assert!(message.contains(expected), "{rows:?}: {message}");
    }
}

#[test]
fn an_empty_block_naming_a_missing_column_fails_as_in_psql() {
    let message = refused(b"CREATE TABLE t (a text);\nCOPY t (nope) FROM stdin;\n\\.\n");
    assert!(message.contains("column \"nope\""), "{message}");
}

/// `CREATE TABLE t`, then one single-row `INSERT` per line from line 2 on; the rows whose
/// numbers are in `bad` get a value the column refuses.
fn insert_dump(rows: usize, bad: &[usize]) -> String {
    let mut sql = String::from("CREATE TABLE t (id int PRIMARY KEY, v text);\n");
    for id in 1..=rows {
        if bad.contains(&id) {
            sql.push_str(&format!(
                "INSERT INTO t VALUES ('not a number {id}', 'v');\n"
            ));
        } else {
            sql.push_str(&format!("INSERT INTO t VALUES ({id}, 'v{id}');\n"));
        }
    }
    sql
}

#[test]
fn single_row_inserts_run_in_file_order_before_anything_that_follows() {
    // Every statement after the inserts depends on all of them having run, in order: the
    // column added after row 1000 has its default in those rows and an index built on another
    // connection right after finds it, the update and the table made from a query see every
    // row, and the COPY, on another connection too, loads a table created just before.
    let mut sql = insert_dump(1000, &[]);
    sql.push_str(
        "ALTER TABLE t ADD COLUMN w int DEFAULT 7;\n\
         INSERT INTO t VALUES (1001, 'last', 8);\n\
         -- Name: t_w_idx; Type: INDEX; Schema: public; Owner: x\n\
         CREATE INDEX t_w_idx ON public.t USING btree (w);\n\
         UPDATE t SET v = v || '!' WHERE id <= 10;\n\
         CREATE TABLE counted AS SELECT count(*) AS n, sum(w) AS w FROM t;\n\
         CREATE TABLE copied (id int);\n\
         COPY copied (id) FROM stdin;\n1\n2\n\\.\n",
    );
    let target = completed(sql.as_bytes());
    assert_eq!(
        query(&target, "SELECT n || ' ' || w FROM counted"),
        "1001 7008"
    );
    assert_eq!(
        query(&target, "SELECT count(*) FROM t WHERE v LIKE '%!'"),
        "10"
    );
    assert_eq!(query(&target, "SELECT count(*) FROM copied"), "2");
    assert_eq!(
        query(
            &target,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 't_w_idx'"
        ),
        "1"
    );
    support::drop_database(&target);
}

#[test]
fn a_failing_insert_among_hundreds_fails_the_restore_with_its_own_line() {
    let sql = insert_dump(600, &[400]);
    let (target, status) = restore_sql(sql.as_bytes(), RestoreOptions::default());
    assert_eq!(status.status, RestoreState::Failed);
    let error = status.error.clone().expect("error");
    assert!(
        error.message().contains("dump.sql, line 401"),
        "{}",
        error.message()
    );
    assert!(
        error.message().contains("invalid input syntax"),
        "{}",
        error.message()
    );
    assert_eq!(error.details()["line"], 401);
    assert!(!support::database_exists(&target));
    assert!(staging_left(&status).is_empty());
}

#[test]
fn on_error_continue_reports_each_failing_insert_and_keeps_the_others() {
    let sql = insert_dump(600, &[17, 523]);
    let options = RestoreOptions {
        on_error: OnError::Continue,
        ..Default::default()
    };
    let (target, status) = restore_sql(sql.as_bytes(), options);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    let lines: Vec<u64> = status.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [18, 524], "{:?}", status.errors);
    assert_eq!(query(&target, "SELECT count(*) FROM t"), "598");
    support::drop_database(&target);
}

/// A duplicate insert on line 3, then on line 4 something that stops the restore before any
/// statement runs: a refused meta-command, an invalid byte, a quote never closed.
fn failing_insert_then(line_4: &[u8]) -> Vec<u8> {
    let mut sql = b"CREATE TABLE t (id int PRIMARY KEY, v text);\n\
INSERT INTO t VALUES (1, 'a');\n\
INSERT INTO t VALUES (1, 'b');\n"
        .to_vec();
    sql.extend_from_slice(line_4);
    sql
}

#[test]
fn a_failing_insert_in_flight_is_reported_before_what_stops_the_restore_after_it() {
    let stoppers: [&[u8]; 3] = [
        b"\\! echo hi\n",
        b"INSERT INTO t VALUES (2, '\xff');\n",
        b"INSERT INTO t VALUES (2, 'never closed\n",
    ];
    for line_4 in stoppers {
        let sql = failing_insert_then(line_4);
        let (target, status) = restore_sql(&sql, RestoreOptions::default());
        assert_eq!(status.status, RestoreState::Failed);
        let error = status.error.clone().expect("error");
        assert_eq!(error.details()["line"], 3, "{}", error.message());
        assert!(
            error.message().contains("duplicate key"),
            "{}",
            error.message()
        );
        assert!(!support::database_exists(&target));
        assert!(staging_left(&status).is_empty());
    }
    // Under `continue` the insert's failure is recorded, and the refusal still fails the restore.
    let options = RestoreOptions {
        on_error: OnError::Continue,
        ..Default::default()
    };
    let (target, status) = restore_sql(&failing_insert_then(b"\\! echo hi\n"), options);
    assert_eq!(status.status, RestoreState::Failed);
    let lines: Vec<u64> = status.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3], "{:?}", status.errors);
    assert!(!support::database_exists(&target));
}

#[test]
fn inserts_in_a_transaction_fail_as_psql_runs_them() {
    // psql: the duplicate aborts the transaction, the next insert is refused in it, COMMIT rolls
    // it back, and only the insert after it stays.
    let sql = b"CREATE TABLE t (id int PRIMARY KEY);\n\
BEGIN;\n\
INSERT INTO t VALUES (1);\n\
INSERT INTO t VALUES (1);\n\
INSERT INTO t VALUES (2);\n\
COMMIT;\n\
INSERT INTO t VALUES (3);\n";
    let options = RestoreOptions {
        on_error: OnError::Continue,
        ..Default::default()
    };
    let (target, status) = restore_sql(sql, options);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    let states: Vec<(u64, Option<&str>)> = status
        .errors
        .iter()
        .map(|e| (e.line, e.sqlstate.as_deref()))
        .collect();
    assert_eq!(states, [(4, Some("23505")), (5, Some("25P02"))]);
    assert_eq!(
        query(
            &target,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM t"
        ),
        "3"
    );
    support::drop_database(&target);
}

#[test]
fn a_query_answering_with_a_type_of_the_dump_between_inserts_completes() {
    // Reading the answer of `SELECT 'happy'::mood` makes the client look the type up with a
    // query of its own, which would wait behind any statement sent after the select.
    let mut sql = String::from("CREATE TYPE mood AS ENUM ('happy');\n");
    sql.push_str(&insert_dump(300, &[]));
    sql.push_str("SELECT 'happy'::mood;\n");
    for id in 301..=600 {
        sql.push_str(&format!("INSERT INTO t VALUES ({id}, 'v{id}');\n"));
    }
    let options = RestoreOptions {
        timeout_seconds: Some(60),
        ..Default::default()
    };
    let (target, status) = restore_sql(sql.as_bytes(), options);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(query(&target, "SELECT count(*) FROM t"), "600");
    support::drop_database(&target);
}

/// A dump that records the settings its session holds, before and after a `RESET ALL`.
const SETTINGS_DUMP: &[u8] = b"CREATE TABLE settings AS \
    SELECT current_setting('deadlock_timeout') AS deadlock, \
    current_setting('synchronous_commit') AS sync;\n\
    RESET ALL;\n\
    INSERT INTO settings \
    SELECT current_setting('deadlock_timeout'), current_setting('synchronous_commit');\n";

#[test]
fn a_superusers_loading_sessions_wait_a_tenth_of_a_second_for_autovacuum() {
    let target = completed(SETTINGS_DUMP);
    assert_eq!(
        query(
            &target,
            "SELECT string_agg(deadlock || ' ' || sync, ',') FROM settings"
        ),
        "100ms off,100ms off",
        "startup options, which RESET ALL returns to"
    );
    support::drop_database(&target);
}

#[test]
fn a_role_that_is_not_a_superuser_restores_with_the_servers_deadlock_timeout() {
    let role = unique("restorer");
    let password = "restorer-secret";
    query(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{password}'"),
    );
    let url = support::database_url();
    let authority = url.find("://").expect("a URL") + 3;
    let host = authority + url[authority..].find('@').map_or(0, |at| at + 1);
    let url = format!("{}{role}:{password}@{}", &url[..authority], &url[host..]);

    let fixture = Fixture::with(|config| *config = config.clone().database_url(url));
    fixture.write("dump.sql", SETTINGS_DUMP);
    let target = unique("unprivileged");
    let status = fixture.restore("dump.sql", &target, RestoreOptions::default());
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(
        query(
            &target,
            "SELECT string_agg(deadlock || ' ' || sync, ',') FROM settings"
        ),
        "1s off,1s off"
    );
    support::drop_database(&target);
    query("postgres", &format!("DROP ROLE {role}"));
}

#[test]
fn sql_standard_function_and_procedure_bodies_restore_whole() {
    let source = unique("atomic");
    support::create_database(&source);
    query(
        &source,
        "CREATE TABLE log (n int); \
         CREATE FUNCTION add_one(x integer) RETURNS integer LANGUAGE sql \
         BEGIN ATOMIC SELECT x + 1; END; \
         CREATE PROCEDURE fill(n integer) LANGUAGE sql BEGIN ATOMIC \
         INSERT INTO log VALUES (add_one(n)); \
         INSERT INTO log SELECT CASE WHEN n > 1 THEN 20 ELSE 30 END; \
         END; \
         CREATE FUNCTION begin() RETURNS integer LANGUAGE sql AS $$ SELECT 7 $$;",
    );
    let dump = pg_dump(&source, &[]);
    let text = String::from_utf8_lossy(&dump);
    assert_eq!(text.matches("BEGIN ATOMIC").count(), 2, "{text}");

    let fixture = Fixture::new();
    fixture.write("dump.sql", &dump);
    let target = unique("dump");
    let status = fixture.restore("dump.sql", &target, RestoreOptions::default());
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(query(&target, "SELECT add_one(41)"), "42");
    assert_eq!(query(&target, "SELECT public.begin()"), "7");
    query(&target, "CALL fill(2)");
    assert_eq!(
        query(
            &target,
            "SELECT string_agg(n::text, ',' ORDER BY n) FROM log"
        ),
        "3,20"
    );
    let found = fixture.engine.verify_backup("dump.sql").expect("verify");
    assert_eq!(
        status.summary.statements + status.summary.skipped,
        found.statements
    );
    support::drop_database(&target);
    support::drop_database(&source);
}
