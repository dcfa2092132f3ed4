use std::sync::Arc;

use bytes::Bytes;

use super::*;

fn stmt(sql: &str) -> Statement {
    Statement {
        sql: Bytes::copy_from_slice(sql.as_bytes()),
        line: 1,
        toc: None,
    }
}

fn under(kind: &str, sql: &str) -> Statement {
    let toc = TocEntry {
        name: "x".into(),
        kind: kind.into(),
        schema: Some("public".into()),
        owner: None,
        line: 1,
    };
    Statement {
        toc: Some(Arc::new(toc)),
        ..stmt(sql)
    }
}

fn plain(sql: &str) -> Action {
    classify(&stmt(sql), PlanOptions::default())
}

#[test]
fn set_statements_are_session_settings() {
    assert_eq!(
        plain("SET search_path = public, pg_catalog;"),
        Action::Setting {
            name: "search_path".into(),
            value: Some("public".into())
        }
    );
    assert_eq!(
        plain("SET standard_conforming_strings TO off;"),
        Action::Setting {
            name: "standard_conforming_strings".into(),
            value: Some("off".into())
        }
    );
    assert_eq!(
        plain("SET client_encoding = 'LATIN1';"),
        Action::Setting {
            name: "client_encoding".into(),
            value: Some("LATIN1".into())
        }
    );
    assert_eq!(
        plain("SELECT pg_catalog.set_config('search_path', '', false);"),
        Action::Setting {
            name: "search_path".into(),
            value: Some(String::new())
        }
    );
}

#[test]
fn set_names_is_client_encoding() {
    for sql in ["SET NAMES 'SJIS';", "set session names sjis;"] {
        assert_eq!(
            plain(sql),
            Action::Setting {
                name: "client_encoding".into(),
                value: Some(if sql.contains('\'') { "SJIS" } else { "sjis" }.into())
            },
            "{sql}"
        );
    }
}

#[test]
fn transaction_scoped_settings_are_barriers() {
    assert_eq!(plain("SET LOCAL work_mem = '1GB';"), Action::Barrier);
    assert_eq!(
        plain("SELECT set_config('a.b', 'x', true);"),
        Action::Barrier
    );
}

#[test]
fn statements_beyond_the_database_are_refused() {
    for sql in [
        "ALTER SYSTEM SET work_mem = '1GB';",
        "CREATE ROLE intruder SUPERUSER;",
        "DROP USER someone;",
        "CREATE TABLESPACE t LOCATION '/tmp';",
        "GRANT pg_read_server_files TO someone;",
        "COPY t FROM '/etc/passwd';",
        "COPY t TO PROGRAM 'rm -rf /';",
    ] {
        assert!(
            matches!(plain(sql), Action::Refuse(_)),
            "{sql} must be refused"
        );
    }
}

#[test]
fn database_statements_name_their_database() {
    assert_eq!(
        plain("DROP DATABASE IF EXISTS shop;"),
        Action::DropDatabase {
            name: "shop".into()
        }
    );
    assert_eq!(
        plain("CREATE DATABASE shop WITH TEMPLATE = template0 ENCODING = 'UTF8';"),
        Action::CreateDatabase {
            name: "shop".into(),
            options: "WITH TEMPLATE = template0 ENCODING = 'UTF8'".into(),
            ignored: vec![],
        }
    );
    assert_eq!(
        plain("ALTER DATABASE \"Shop\" OWNER TO bob;"),
        Action::DatabaseLevel {
            name: "Shop".into(),
            prefix: "ALTER DATABASE".into(),
            rest: " OWNER TO bob;".into(),
        }
    );
    assert_eq!(
        plain("COMMENT ON DATABASE shop IS 'the shop';"),
        Action::DatabaseLevel {
            name: "shop".into(),
            prefix: "COMMENT ON DATABASE".into(),
            rest: " IS 'the shop';".into()
        }
    );
}

#[test]
fn no_owner_skips_ownership_changes_only() {
    let options = PlanOptions {
        no_owner: true,
        ..Default::default()
    };
    let long = "ALTER FUNCTION public.f(a integer, b integer, c integer, d integer, e integer, \
                f integer, g integer, h integer) OWNER TO postgres;";
    assert!(matches!(classify(&stmt(long), options), Action::Skip(_)));
    assert!(matches!(
        classify(&stmt("ALTER TABLE public.t OWNER TO postgres;"), options),
        Action::Skip(_)
    ));
    assert_eq!(
        classify(&stmt("ALTER TABLE t ADD COLUMN owner text;"), options),
        Action::Barrier
    );
    assert_eq!(
        plain("ALTER TABLE public.t OWNER TO postgres;"),
        Action::Barrier
    );
}

#[test]
fn no_privileges_skips_grants_and_revokes() {
    let options = PlanOptions {
        no_privileges: true,
        ..Default::default()
    };
    assert!(matches!(
        classify(&stmt("GRANT SELECT ON TABLE t TO PUBLIC;"), options),
        Action::Skip(_)
    ));
    assert!(matches!(
        classify(&stmt("REVOKE ALL ON SCHEMA public FROM PUBLIC;"), options),
        Action::Skip(_)
    ));
    assert_eq!(plain("GRANT SELECT ON TABLE t TO PUBLIC;"), Action::Barrier);
}

#[test]
fn index_builds_under_index_headers_are_concurrent() {
    let sql = "CREATE UNIQUE INDEX idx ON ONLY public.\"Orders\" USING btree (id);";
    assert_eq!(
        classify(&under("INDEX", sql), PlanOptions::default()),
        Action::Concurrent(Build::Index {
            table: "Orders".into(),
            shared: true,
            btree: true,
        })
    );
    let pk = "ALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_pkey PRIMARY KEY (id);";
    assert_eq!(
        classify(&under("CONSTRAINT", pk), PlanOptions::default()),
        Action::Concurrent(Build::Index {
            table: "orders".into(),
            shared: false,
            btree: true,
        })
    );
}

#[test]
fn only_b_tree_builds_are_taken_for_sorts() {
    let btree = |kind: &str, sql: &str| match classify(&under(kind, sql), PlanOptions::default()) {
        Action::Concurrent(build) => build.is_btree(),
        other => panic!("not a build: {other:?}"),
    };
    assert!(btree(
        "INDEX",
        "CREATE INDEX i ON public.t USING btree (a, b);"
    ));
    assert!(btree("INDEX", "CREATE INDEX i ON t (lower(a));"));
    assert!(!btree(
        "INDEX",
        "CREATE INDEX i ON public.t USING gin (doc);"
    ));
    assert!(!btree(
        "INDEX",
        "CREATE INDEX i ON public.t USING hash (a);"
    ));
    let unique = "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_a_key UNIQUE (a);";
    assert!(btree("CONSTRAINT", unique));
    let check = "ALTER TABLE public.t\n    ADD CONSTRAINT t_a_check CHECK ((a > 0));";
    assert!(!btree("CHECK CONSTRAINT", check));
    let exclude =
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_x EXCLUDE USING gist (r WITH &&);";
    assert!(!btree("CONSTRAINT", exclude));
    let fk = "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_fk FOREIGN KEY (a) \
              REFERENCES public.u(a);";
    assert!(!btree("FK CONSTRAINT", fk));
}

#[test]
fn foreign_keys_name_both_tables() {
    let fk = "ALTER TABLE ONLY public.items\n    ADD CONSTRAINT items_order_fk FOREIGN KEY \
              (order_id) REFERENCES public.orders(id) ON DELETE CASCADE;";
    assert_eq!(
        classify(&under("FK CONSTRAINT", fk), PlanOptions::default()),
        Action::Concurrent(Build::ForeignKey {
            table: "items".into(),
            references: "orders".into()
        })
    );
}

#[test]
fn builds_without_a_header_are_barriers() {
    assert_eq!(plain("CREATE INDEX i ON t (a);"), Action::Barrier);
    let attach = "ALTER INDEX public.p_pkey ATTACH PARTITION public.p1_pkey;";
    assert_eq!(
        classify(&under("INDEX ATTACH", attach), PlanOptions::default()),
        Action::Barrier
    );
}

#[test]
fn copy_targets_are_quoted_as_the_server_folds_them() {
    assert_eq!(
        copy_target(b"COPY public.\"Big T\" (a) FROM stdin;").unwrap(),
        "\"public\".\"Big T\""
    );
    assert_eq!(
        copy_target(b"copy Actor (a) from stdin;").unwrap(),
        "\"actor\""
    );
    assert_eq!(copy_target(b"SELECT 1;"), None);
}

#[test]
fn plain_copies_give_their_table_and_columns() {
    let copy = plain_copy(b"COPY public.events (id, \"Kind\", Note) FROM stdin;").unwrap();
    assert_eq!(copy.table, "\"public\".\"events\"");
    assert_eq!(
        copy.columns.as_deref(),
        Some(&["id".to_owned(), "Kind".into(), "note".into()][..])
    );
    let quoted = plain_copy("COPY \"Äb\" (\"Äx\") FROM stdin;".as_bytes()).unwrap();
    assert_eq!(quoted.table, "\"Äb\"");
    let copy = plain_copy(b"copy t from STDIN").unwrap();
    assert_eq!((copy.table.as_str(), copy.columns), ("\"t\"", None));
}

#[test]
fn copies_with_options_are_not_plain() {
    for sql in [
        "COPY Äb (x) FROM stdin;",
        "COPY t (Äx) FROM stdin;",
        "COPY t (a) FROM stdin WITH (FORMAT csv);",
        "COPY t (a) FROM stdin CSV;",
        "COPY t (a) FROM stdin DELIMITER ',';",
        "COPY t FROM stdin WHERE a > 1;",
        "COPY t (a,) FROM stdin;",
        "COPY t () FROM stdin;",
        "COPY t (a) FROM '/etc/passwd';",
        "COPY t TO stdout;",
        "COPY (SELECT 1) TO stdout;",
        "SELECT 1;",
    ] {
        assert_eq!(plain_copy(sql.as_bytes()), None, "{sql}");
    }
}

#[test]
fn statements_on_shared_objects_are_refused() {
    for sql in [
        "REVOKE pg_monitor FROM someone;",
        "COMMENT ON TABLESPACE pg_default IS 'x';",
        "GRANT ALL ON TABLESPACE pg_default TO someone;",
        "GRANT SET ON PARAMETER work_mem TO someone;",
        "COMMENT ON ROLE postgres IS 'x';",
        "SECURITY LABEL FOR selinux ON ROLE postgres IS 'x';",
        "DROP OWNED BY someone;",
        "REASSIGN OWNED BY a TO b;",
    ] {
        assert!(
            matches!(plain(sql), Action::Refuse(_)),
            "{sql} must be refused"
        );
    }
}

#[test]
fn user_mappings_of_foreign_servers_are_not_roles() {
    assert_eq!(
        plain("CREATE USER MAPPING FOR postgres SERVER s OPTIONS (user 'u');"),
        Action::Barrier
    );
    assert_eq!(
        plain("ALTER USER MAPPING FOR current_user SERVER s OPTIONS (SET user 'v');"),
        Action::Barrier
    );
}

#[test]
fn only_inserts_without_returning_answer_without_rows() {
    assert!(answers_without_rows(b"INSERT INTO t VALUES (1, 'a');"));
    assert!(answers_without_rows(
        b"-- row 1\n  insert into t values (1);"
    ));
    assert!(!answers_without_rows(
        b"INSERT INTO t VALUES (1) RETURNING id;"
    ));
    assert!(!answers_without_rows(
        b"INSERT INTO t VALUES ('Returning soon');"
    ));
    assert!(!answers_without_rows(
        b"SELECT pg_catalog.setval('s', 1, true);"
    ));
    assert!(!answers_without_rows(
        b"WITH r AS (SELECT 1) INSERT INTO t SELECT * FROM r;"
    ));
    assert!(!answers_without_rows(b"\"insert\" ();"));
}

#[test]
fn transaction_blocks_open_and_close_as_the_server_reads_them() {
    use Transaction::{Commits, Opens, RollsBack};
    for (sql, expected) in [
        ("BEGIN;", Some(Opens)),
        ("begin work;", Some(Opens)),
        (
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE;",
            Some(Opens),
        ),
        ("COMMIT;", Some(Commits)),
        ("END TRANSACTION;", Some(Commits)),
        ("ROLLBACK;", Some(RollsBack)),
        ("abort;", Some(RollsBack)),
        ("COMMIT AND NO CHAIN;", Some(Commits)),
        ("COMMIT AND CHAIN;", None),
        ("ROLLBACK WORK AND CHAIN;", None),
        ("ROLLBACK TO SAVEPOINT a;", None),
        ("ROLLBACK TO a;", None),
        ("ROLLBACK WORK TO a;", None),
        ("SAVEPOINT a;", None),
        ("SELECT 'BEGIN';", None),
        ("\"begin\";", None),
    ] {
        assert_eq!(transaction_boundary(sql.as_bytes()), expected, "{sql}");
    }
}

#[test]
fn prepared_transactions_are_refused() {
    for sql in [
        "PREPARE TRANSACTION 'x';",
        "COMMIT PREPARED 'x';",
        "ROLLBACK PREPARED 'x';",
    ] {
        assert!(matches!(plain(sql), Action::Refuse(_)), "{sql}");
    }
    assert_eq!(plain("PREPARE q AS SELECT 1;"), Action::Barrier);
}

#[test]
fn only_setval_calls_of_literals_read_no_table() {
    let literal = |sql: &str| literal_setval(sql.as_bytes());
    assert!(literal(
        "SELECT pg_catalog.setval('public.t_id_seq', 200, true);"
    ));
    assert!(literal(
        "SELECT pg_catalog.setval('public.\"T\"', -5, false);"
    ));
    assert!(literal("SELECT pg_catalog.setval('s', 1)"));
    assert!(!literal(
        "SELECT pg_catalog.setval('s', (SELECT max(id) FROM t));"
    ));
    assert!(!literal(
        "SELECT pg_catalog.setval('s', 1, true), count(*) FROM t;"
    ));
    assert!(!literal("SELECT pg_catalog.setval('s', 1 + f());"));
    assert!(!literal("SELECT setval('s', 1);"));
}
