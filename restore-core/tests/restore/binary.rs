//! COPY rows sent in the binary format: the same rows as text would give, or text.

use restore_core::{RestoreOptions, RestoreState, RestoreStatus};

use crate::harness::{pg_dump, psql_restore, query, staging_left, unique, Fixture};
use crate::support;

fn restore(sql: &[u8], workers: usize) -> (String, RestoreStatus) {
    let fixture = Fixture::new();
    fixture.write("dump.sql", sql);
    let target = unique("binary");
    let options = RestoreOptions {
        parallel_workers: workers,
        ..Default::default()
    };
    let status = fixture.restore("dump.sql", &target, options);
    (target, status)
}

/// Restores `sql` with the engine and with psql; both must hold the same rows, compared by
/// text and, for the types whose text could hide a difference, by their binary send form.
fn restores_as_psql_does(sql: &[u8]) -> RestoreStatus {
    let (target, status) = restore(sql, 2);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    let by_psql = unique("binary_psql");
    let file = tempfile::NamedTempFile::new().expect("dump file");
    std::fs::write(file.path(), sql).expect("dump file");
    psql_restore(&by_psql, &[file.path()]);

    let url = support::database_url();
    assert_eq!(
        support::table_fingerprint(&url, &target),
        support::table_fingerprint(&url, &by_psql)
    );
    support::drop_database(&target);
    support::drop_database(&by_psql);
    status
}

/// A database holding every type the engine converts, at the edges of each.
fn make_typed_source(db: &str) {
    support::create_database(db);
    // Offsets with minutes and seconds come from the database's time zone, which pg_dump's
    // session takes: Kolkata is +05:30, and before 1941 it kept local mean time.
    query(
        "postgres",
        &format!("ALTER DATABASE {db} SET timezone = 'Asia/Kolkata'"),
    );
    query(
        db,
        r#"
        CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
        CREATE DOMAIN positive AS int CHECK (VALUE > 0);
        CREATE DOMAIN money2 AS numeric(8,2);
        CREATE DOMAIN positive_again AS positive;
        CREATE TABLE numbers (
            i2 smallint, i4 integer, i8 bigint, b boolean, f4 real, f8 double precision,
            n numeric, n2 numeric(12,2), p positive, m money2, pp positive_again);
        INSERT INTO numbers VALUES
            (-32768, -2147483648, -9223372036854775808, true, -3.4028235e38,
             -1.7976931348623157e308, -0.00, -9999999999.99, 1, -123456.78, 7),
            (32767, 2147483647, 9223372036854775807, false, 1.17549435e-38, 5e-324,
             123456789012345678901234567890.123456789012345678901234567890, 0.01, 2147483647,
             0, 1),
            (0, 0, 0, NULL, -0, -0, 0.0001, 1.5, NULL, NULL, NULL),
            (1, 7, 1000000000000, true, 0.1, 0.1, 1.500, 12.30, 3, 1.5, 2);
        -- Values the engine leaves to the server, so their tables go as text.
        CREATE TABLE special_numbers (f4 real, f8 double precision, n numeric);
        INSERT INTO special_numbers VALUES ('NaN', 'Infinity', 'NaN'), ('-Infinity', 'NaN', 1);
        CREATE TABLE moments (
            d date, ts timestamp, tz timestamptz, tz0 timestamptz(0), label text);
        INSERT INTO moments VALUES
            ('2000-01-01', '2000-01-01 00:00:00', '2000-01-01 00:00:00+00', now(), 'epoch'),
            ('1999-12-31', '1999-12-31 23:59:59.999999', '1999-12-31 23:59:59.999999+00',
             '1999-12-31 23:59:59.5+00', 'before'),
            ('0001-01-01', '0001-01-01 00:00:00', '1900-06-01 12:00:00+00',
             '1900-06-01 12:00:00+00', 'local mean time'),
            ('9999-12-31', '9999-12-31 23:59:59', '2024-02-29 18:30:00.000001+00',
             '2024-02-29 18:30:00.7+00', 'leap day'),
            (NULL, NULL, NULL, NULL, NULL);
        CREATE TABLE special_moments (d date, ts timestamp, tz timestamptz);
        INSERT INTO special_moments VALUES ('infinity', '-infinity', 'infinity'),
            ('0044-03-15 BC', '0044-03-15 12:00:00 BC', '0044-03-15 12:00:00+00 BC');
        CREATE TABLE words (
            id uuid, t text, v varchar(5), c char(3), j json, jb jsonb, bin bytea, mood mood,
            "Odd Name" text);
        INSERT INTO words VALUES
            ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '', 'a', 'x', '{}', '{}', '', 'sad', 'plain'),
            (gen_random_uuid(), E'tab\there\nnewline\\backslash\rcr', 'abcde', 'ab',
             '{"a": "\u00e9\\n", "b": [1, 2.50]}', '{"é": "\"quoted\"", "n": null}',
             '\x00ff0a5c', 'happy', E'\\N'),
            (NULL, E'\\.', NULL, NULL, NULL, NULL, NULL, NULL, '.'),
            (gen_random_uuid(), repeat('long ', 100000), 'ü', 'é', '[]', '[1e3]',
             decode(repeat('00ff', 100000), 'hex'), 'ok', '東京 🚚');
        ALTER TABLE words ADD COLUMN dropped int;
        ALTER TABLE words DROP COLUMN dropped;
        ALTER TABLE words ADD COLUMN shout text GENERATED ALWAYS AS (upper(t)) STORED;
        "#,
    );
}

#[test]
fn every_converted_type_restores_as_psql_restores_it() {
    let source = unique("binary_source");
    make_typed_source(&source);
    let dump = pg_dump(&source, &[]);

    let status = restores_as_psql_does(&dump);
    assert_eq!(status.summary.rows, 17);
    assert_eq!(
        status.summary.binary_rows, 13,
        "all but the four rows of NaN, infinity and BC: {:?}",
        status.summary
    );
    support::drop_database(&source);
}

#[test]
fn binary_values_are_bit_for_bit_those_of_text() {
    let source = unique("binary_bits");
    make_typed_source(&source);
    let dump = pg_dump(&source, &[]);
    let (target, status) = restore(&dump, 2);
    assert_eq!(status.status, RestoreState::Completed, "{:?}", status.error);
    assert_eq!(status.summary.binary_rows, 13);

    // The send functions show what is stored: the bits of a float, a numeric's digits and
    // display scale, a timestamp's microseconds, whatever the text output would round.
    let bits = "SELECT md5(string_agg(concat_ws(',', int2send(i2), int4send(i4), int8send(i8), \
                boolsend(b), float4send(f4), float8send(f8), numeric_send(n), \
                numeric_send(n2), int4send(p), numeric_send(m), int4send(pp)), ';' \
                ORDER BY i8 NULLS FIRST)) FROM numbers \
                UNION ALL SELECT md5(string_agg(concat_ws(',', date_send(d), \
                timestamp_send(ts), timestamptz_send(tz), timestamptz_send(tz0)), ';')) \
                FROM moments \
                UNION ALL SELECT md5(string_agg(concat_ws(',', uuid_send(id), textsend(t), \
                varcharsend(v), bpcharsend(c), jsonb_send(jb), bin, textsend(shout)), ';' \
                ORDER BY t)) FROM words";
    assert_eq!(query(&target, bits), query(&source, bits));
    support::drop_database(&target);
    support::drop_database(&source);
}

#[test]
fn forms_the_server_reads_its_own_way_are_left_to_it() {
    // Hand-written rows the text input accepts but the engine does not convert: spaces, signs,
    // exponents, other spellings. The restore must hold what psql makes of them.
    let uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    let sql = [
        "CREATE TABLE t (i int, n numeric, b bool, d date, tz timestamptz, u uuid);",
        "SET timezone = 'America/New_York';",
        "COPY t (i, n, b, d, tz, u) FROM stdin;",
        &format!("1\t1\tt\t2024-01-01\t2024-01-01 00:00:00+00\t{uuid}"),
        "\\N\t\\N\t\\N\t\\N\t\\N\t\\N",
        "\\.",
        "COPY t (i, n, b, d, tz, u) FROM stdin;",
        &format!(" 7\t1e3\tyes\t01/02/2024\t2024-01-01 00:00:00\t{{{uuid}}}"),
        "+8\t.5\ton\tJan 3 2024\t2024-01-01 00:00 EST\tA0EEBC999C0B4EF8BB6D6BB9BD380A11",
        "\\.",
        "",
    ]
    .join("\n");
    let status = restores_as_psql_does(sql.as_bytes());
    assert_eq!(status.summary.rows, 4);
    assert_eq!(
        status.summary.binary_rows, 2,
        "only the first block converts"
    );
}

#[test]
fn a_table_with_a_column_of_another_type_stays_text() {
    let sql = "CREATE TABLE t (id int, span interval, tags text[]);\n\
               COPY t (id, span, tags) FROM stdin;\n1\t1 day\t{a,b}\n2\t\\N\t{}\n\\.\n";
    let status = restores_as_psql_does(sql.as_bytes());
    assert_eq!((status.summary.rows, status.summary.binary_rows), (2, 0));
}

#[test]
fn what_the_server_refuses_in_binary_fails_the_restore_and_names_the_block() {
    for (schema, row, expected) in [
        (
            "v varchar(3)",
            "abcd",
            "value too long for type character varying(3)",
        ),
        ("c char(2)", "abc", "value too long for type character(2)"),
        ("n numeric(4,2)", "123.45", "numeric field overflow"),
        ("e mood", "angry", "invalid input value for enum mood"),
        ("p positive", "-1", "violates check constraint"),
        ("j jsonb", "{oops", "invalid input syntax for type json"),
    ] {
        let sql = format!(
            "CREATE TYPE mood AS ENUM ('sad');\n\
             CREATE DOMAIN positive AS int CHECK (VALUE > 0);\n\
             CREATE TABLE t (id int, {schema});\n\
             COPY t FROM stdin;\n1\t{row}\n\\.\n"
        );
        let (target, status) = restore(sql.as_bytes(), 2);
        assert_eq!(status.status, RestoreState::Failed, "{schema}");
        let error = status.error.as_ref().expect("an error");
        assert!(
            error.message().contains(expected),
            "{schema}: {}",
            error.message()
        );
        assert!(error.message().contains("line 4"), "{}", error.message());
        assert!(!support::database_exists(&target));
        assert!(staging_left(&status).is_empty());
    }
}

/// `count` rows of exactly 1024 bytes (`id`, then padding), so a block spans several of the
/// loader's 1 MiB batches; `odd` rows have their id in a form the engine leaves as text.
fn padded_rows(count: usize, odd: &[usize], row: impl Fn(usize) -> String) -> String {
    let mut rows = String::new();
    for id in 1..=count {
        let mut line = row(id);
        if odd.contains(&id) {
            line = format!(" {line}");
        }
        let pad = 1023usize.saturating_sub(line.len() + 1);
        rows.push_str(&format!("{line}\t{}\n", "x".repeat(pad)));
    }
    rows
}

#[test]
fn a_statement_trigger_sees_each_block_as_one_copy_as_in_psql() {
    let rows = padded_rows(3072, &[1500], |id| id.to_string());
    let sql = format!(
        "CREATE TABLE loads (rows bigint);\n\
         CREATE TABLE t (i int, pad text);\n\
         CREATE FUNCTION count_load() RETURNS trigger LANGUAGE plpgsql AS $$\n\
         BEGIN INSERT INTO loads SELECT count(*) FROM new_rows; RETURN NULL; END $$;\n\
         CREATE TRIGGER counted AFTER INSERT ON t REFERENCING NEW TABLE AS new_rows \
         FOR EACH STATEMENT EXECUTE FUNCTION count_load();\n\
         COPY t (i, pad) FROM stdin;\n{rows}\\.\n"
    );
    let status = restores_as_psql_does(sql.as_bytes());
    assert_eq!(
        status.summary.binary_rows, 0,
        "a block with triggers stays text"
    );
}

#[test]
fn a_foreign_key_to_its_own_table_is_checked_after_the_whole_block_as_in_psql() {
    // Each row refers to the next one, which the server finds only at the end of the COPY.
    let rows = padded_rows(3072, &[1500], |id| format!("{id}\t{}", id % 3072 + 1));
    let sql = format!(
        "CREATE TABLE emp (id int PRIMARY KEY, boss int REFERENCES emp (id), pad text);\n\
         COPY emp (id, boss, pad) FROM stdin;\n{rows}\\.\n"
    );
    restores_as_psql_does(sql.as_bytes());
}

#[test]
fn rows_go_in_binary_only_where_the_name_resolves_to_the_table_looked_up() {
    // The control connection sees the temporary table, which the workers cannot: binary values
    // of its types must not reach the permanent table of the same name.
    let temporary = "CREATE TABLE t (x real, y bigint);\n\
                     CREATE TEMP TABLE t (x int, y double precision);\n\
                     COPY t FROM stdin;\n1065353216\t1.5\n\\.\n";
    // A search path set inside a DO block reaches the control connection only.
    let do_block = "CREATE SCHEMA a; CREATE SCHEMA b;\n\
                    CREATE TABLE a.t (x real, y bigint);\n\
                    CREATE TABLE b.t (x int, y double precision);\n\
                    SET search_path = a;\n\
                    DO $$BEGIN PERFORM set_config('search_path', 'b', false); END$$;\n\
                    COPY t FROM stdin;\n1065353216\t1.5\n\\.\n";
    for sql in [temporary, do_block] {
        let (target, status) = restore(sql.as_bytes(), 2);
        assert_eq!(status.status, RestoreState::Failed, "{sql}");
        let error = status.error.expect("an error");
        assert!(
            error
                .message()
                .contains("invalid input syntax for type bigint"),
            "the text COPY's own complaint: {}",
            error.message()
        );
        assert!(!support::database_exists(&target));
    }
}

#[test]
fn unquoted_names_beyond_ascii_reach_the_table_the_server_folds_them_to() {
    let sql = "CREATE TABLE \"Äb\" (\"Äx\" text, \"äx\" text);\n\
               CREATE TABLE \"äb\" (\"Äx\" text, \"äx\" text);\n\
               COPY Äb (Äx) FROM stdin;\none\n\\.\n";
    restores_as_psql_does(sql.as_bytes());
}

#[test]
fn a_copy_statement_the_server_cannot_parse_fails_the_restore() {
    for copy in ["COPY kw (order) FROM stdin;", "COPY select FROM stdin;"] {
        let sql = format!("CREATE TABLE kw (\"order\" int);\n{copy}\n1\n\\.\n");
        let (target, status) = restore(sql.as_bytes(), 2);
        assert_eq!(status.status, RestoreState::Failed, "{copy}");
        let message = status.error.expect("an error").message().to_owned();
        assert!(message.contains("syntax error"), "{copy}: {message}");
        assert!(!support::database_exists(&target));
    }
}

#[test]
fn a_dump_in_an_encoding_whose_characters_hold_a_backslash_byte_restores_as_psql_does() {
    // In SJIS 表 is 0x95 0x5C and ソ 0x83 0x5C: `pg_dump -E SJIS` writes the second byte bare,
    // and a row may end in it, or in it and a dot.
    let source = unique("sjis_source");
    support::create_database(&source);
    query(
        &source,
        "CREATE TABLE words (id int PRIMARY KEY, word text); \
         INSERT INTO words VALUES (1, '表'), (2, 'ソ.'), (3, '能\\q'), (4, 'x表x41');",
    );
    let dump = pg_dump(&source, &["-E", "SJIS"]);
    assert!(
        dump.windows(3).any(|w| w == b"\x95\x5c\n"),
        "the dump holds 表 at a row end"
    );
    let status = restores_as_psql_does(&dump);
    assert_eq!(status.summary.rows, 4);
    assert_eq!(status.summary.binary_rows, 0, "rows in SJIS go as text");

    // SET NAMES is client_encoding too: 0x5C after 0x95 is no escape, here or in psql.
    let by_hand = b"SET NAMES 'SJIS';\nCREATE TABLE public.t (a integer, b text);\n\
        COPY public.t (a, b) FROM stdin;\n1\t\x95\x5cx41\n2\t\x94\x5cq\n\\.\n"
        .to_vec();
    let status = restores_as_psql_does(&by_hand);
    assert_eq!(status.summary.binary_rows, 0);
    support::drop_database(&source);
}
