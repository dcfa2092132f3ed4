//! Whole-dump tests, and the helpers the per-file tests share.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use flate2::read::GzDecoder;

use super::{DumpLexer, Item, LexError};

/// Read sizes every lexing test is repeated with, so constructs are split across reads.
const SMALL_READS: [usize; 4] = [1, 2, 3, 7];

/// Lexes `input`, checks that tiny reads give the same items, and returns them.
pub(super) fn items(input: &[u8]) -> Vec<Item> {
    let whole = lex(input, None).unwrap_or_else(|err| panic!("lexing failed: {err}"));
    for read in SMALL_READS {
        let small = lex(input, Some(read)).unwrap_or_else(|err| panic!("lexing failed: {err}"));
        assert_eq!(small, whole, "items differ with reads of {read} bytes");
    }
    whole
}

/// Lexes `input`, which must fail, checks tiny reads fail alike, and returns the error.
pub(super) fn error(input: &[u8]) -> LexError {
    let Err(whole) = lex(input, None) else {
        panic!("lexing succeeded")
    };
    for read in SMALL_READS {
        let Err(small) = lex(input, Some(read)) else {
            panic!("lexing succeeded")
        };
        assert_eq!(small.to_string(), whole.to_string());
    }
    whole
}

fn lex(input: &[u8], read_block: Option<usize>) -> Result<Vec<Item>, LexError> {
    let mut lexer = DumpLexer::new(input);
    if let Some(bytes) = read_block {
        lexer = lexer.with_read_block(bytes);
    }
    lexer.collect()
}

/// The SQL of the statements (and COPY statements) among `items`, as text.
pub(super) fn statements(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| match item {
            Item::Statement(s) | Item::CopyStart(s) => Some(String::from_utf8_lossy(&s.sql).into()),
            _ => None,
        })
        .collect()
}

/// All COPY rows among `items`, concatenated.
pub(super) fn copy_rows(items: &[Item]) -> Vec<u8> {
    let mut rows = Vec::new();
    for item in items {
        if let Item::CopyData(data) = item {
            rows.extend_from_slice(data);
        }
    }
    rows
}

/// A one-letter outline of `items`: S statement, C copy start, D data, E copy end, M meta.
pub(super) fn outline(items: &[Item]) -> String {
    let letter = |item: &Item| match item {
        Item::Statement(_) => 'S',
        Item::CopyStart(_) => 'C',
        Item::CopyData(_) => 'D',
        Item::CopyEnd { .. } => 'E',
        Item::Meta(_) => 'M',
    };
    items.iter().map(letter).collect()
}

const FRAGMENT: &str = r#"--
-- PostgreSQL database dump
--

\restrict Zq9fKx3

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: last_updated(); Type: FUNCTION; Schema: public; Owner: postgres
--

CREATE FUNCTION public.last_updated() RETURNS trigger
    LANGUAGE plpgsql
    AS $_$
BEGIN
    NEW.last_update = CURRENT_TIMESTAMP; -- not the end
    RETURN NEW;
END $_$;

--
-- Name: actor; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.actor (
    actor_id integer NOT NULL,
    first_name text NOT NULL
);

--
-- Data for Name: actor; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public.actor (actor_id, first_name) FROM stdin;
1	PENELOPE
2	\N
3	back\\slash; DROP TABLE x;
\.

--
-- Name: actor_actor_id_seq; Type: SEQUENCE SET; Schema: public; Owner: postgres
--

SELECT pg_catalog.setval('public.actor_actor_id_seq', 3, true);

--
-- Name: actor actor_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.actor
    ADD CONSTRAINT actor_pkey PRIMARY KEY (actor_id);

--
-- PostgreSQL database dump complete
--

\unrestrict Zq9fKx3
"#;

#[test]
fn realistic_dump_fragment_yields_every_item_in_order() {
    let items = items(FRAGMENT.as_bytes());

    assert_eq!(outline(&items), "MSSSSSSCDESSM");
    let sql = statements(&items);
    assert_eq!(sql[0], "SET statement_timeout = 0;");
    assert!(sql[4].starts_with("CREATE FUNCTION public.last_updated()"));
    assert!(sql[4].ends_with("END $_$;"));
    assert!(sql[5].ends_with("first_name text NOT NULL\n);"));
    assert_eq!(
        sql[6],
        "COPY public.actor (actor_id, first_name) FROM stdin;"
    );
    assert_eq!(
        sql[7],
        "SELECT pg_catalog.setval('public.actor_actor_id_seq', 3, true);"
    );
    assert!(sql[8].starts_with("ALTER TABLE ONLY public.actor\n    ADD CONSTRAINT actor_pkey"));
    assert_eq!(
        copy_rows(&items),
        b"1\tPENELOPE\n2\t\\N\n3\tback\\\\slash; DROP TABLE x;\n"
    );

    let Item::Meta(restrict) = &items[0] else {
        panic!("not a meta-command")
    };
    assert_eq!(
        (restrict.name.as_str(), &restrict.args[..]),
        ("restrict", &b"Zq9fKx3"[..])
    );
    assert_eq!(restrict.line, 5);
    let Item::CopyEnd { rows, line } = items[9] else {
        panic!("not a COPY end")
    };
    assert_eq!((rows, line), (3, 41));
    let Item::Statement(constraint) = &items[11] else {
        panic!("not a statement")
    };
    let toc = constraint.toc.as_deref().expect("a header");
    assert_eq!(
        (toc.name.as_str(), toc.kind.as_str()),
        ("actor actor_pkey", "CONSTRAINT")
    );
    assert_eq!(constraint.line, 53);
}

#[test]
fn byte_order_mark_at_start_is_skipped() {
    let items = items("\u{FEFF}SELECT 1;".as_bytes());
    assert_eq!(statements(&items), ["SELECT 1;"]);
}

#[test]
fn crlf_dump_gives_the_items_of_its_lf_twin() {
    let lf = items(FRAGMENT.as_bytes());
    let crlf = items(FRAGMENT.replace('\n', "\r\n").as_bytes());

    assert_eq!(outline(&crlf), outline(&lf));
    let lines = |items: &[Item]| -> Vec<u64> {
        let line = |item: &Item| match item {
            Item::Statement(s) | Item::CopyStart(s) => s.line,
            Item::Meta(meta) => meta.line,
            Item::CopyEnd { line, .. } => *line,
            Item::CopyData(_) => 0,
        };
        items.iter().map(line).collect()
    };
    assert_eq!(lines(&crlf), lines(&lf));
    let unix: Vec<String> = statements(&crlf)
        .iter()
        .map(|s| s.replace("\r\n", "\n"))
        .collect();
    assert_eq!(unix, statements(&lf));
    assert_eq!(
        copy_rows(&crlf),
        b"1\tPENELOPE\r\n2\t\\N\r\n3\tback\\\\slash; DROP TABLE x;\r\n"
    );
    let Item::Meta(restrict) = &crlf[0] else {
        panic!("not a meta-command")
    };
    assert_eq!(&restrict.args[..], b"Zq9fKx3");
}

#[test]
fn statement_starts_at_its_first_significant_character() {
    let items = items(b"  \n-- note\n/* block */\n  SELECT 1 /* kept */;");
    assert_eq!(statements(&items), ["SELECT 1 /* kept */;"]);
    let Item::Statement(statement) = &items[0] else {
        panic!("not a statement")
    };
    assert_eq!(statement.line, 4);
}

#[test]
fn final_statement_without_semicolon_is_emitted() {
    let items = items(b"SELECT 1;\nSELECT\n2\n\n");
    assert_eq!(statements(&items), ["SELECT 1;", "SELECT\n2"]);
}

#[test]
fn whitespace_and_comments_at_the_end_emit_nothing() {
    let items = items(b"SELECT 1;\n -- the end\n/* really */\n\n-- no newline");
    assert_eq!(outline(&items), "S");
}

#[test]
fn long_statement_line_and_huge_copy_row_pass_whole() {
    let long_value = "x".repeat(300 << 10);
    let huge_row = "y".repeat(20 << 20);
    let input = format!(
        "INSERT INTO t VALUES ('{long_value}');\nCOPY t FROM stdin;\n{huge_row}\n\\.\nSELECT 1;\n"
    );

    let items: Vec<Item> = DumpLexer::new(input.as_bytes())
        .collect::<Result<_, _>>()
        .expect("lexes");

    assert_eq!(outline(&items), "SCDES");
    assert_eq!(statements(&items)[0].len(), long_value.len() + 26);
    assert_eq!(copy_rows(&items).len(), huge_row.len() + 1);
    assert_eq!(items[3], Item::CopyEnd { rows: 1, line: 4 });
}

#[test]
fn arbitrary_input_never_panics_and_reads_split_anywhere_agree() {
    const PIECES: [&str; 31] = [
        ";",
        "'",
        "\"",
        "$",
        "$a$",
        "$$",
        "-",
        "--",
        "/*",
        "*/",
        "/",
        "*",
        "\\",
        "\\.",
        "\n",
        "\r\n",
        " ",
        "E",
        "U&",
        "x",
        "1",
        "COPY t FROM stdin;\n",
        "\u{FEFF}",
        "SET standard_conforming_strings = off;",
        "CREATE FUNCTION ",
        " BEGIN",
        " END",
        "case",
        "CREATE RULE ",
        "(",
        ")",
    ];
    // A fixed xorshift sequence: the same inputs on every run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };

    for _ in 0..2000 {
        let len = next() % 24;
        let input: String = (0..len)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        let outcome = |read_block| match lex(input.as_bytes(), read_block) {
            Ok(items) => format!("{items:?}"),
            Err(err) => err.to_string(),
        };
        let whole = outcome(None);
        for read in SMALL_READS {
            assert_eq!(
                outcome(Some(read)),
                whole,
                "input {input:?}, reads of {read}"
            );
        }
    }
}

fn fixture(name: &str) -> Option<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/real");
    let path = Path::new(dir).join(name);
    let Ok(file) = File::open(&path) else {
        eprintln!("skipping: fixture {} is absent", path.display());
        return None;
    };
    let mut dump = Vec::new();
    GzDecoder::new(file)
        .read_to_end(&mut dump)
        .expect("fixture decompresses");
    Some(dump)
}

#[test]
fn pagila_data_copy_blocks_and_rows_are_all_found() {
    let Some(dump) = fixture("pagila-data.sql.gz") else {
        return;
    };
    let items: Vec<Item> = DumpLexer::new(&dump[..])
        .collect::<Result<_, _>>()
        .expect("lexes");

    // `zcat pagila-data.sql.gz | grep -c '^COPY '` says 15; awk counted the rows per block.
    let copies = items
        .iter()
        .filter(|item| matches!(item, Item::CopyStart(_)))
        .count();
    assert_eq!(copies, 15);
    let rows: u64 = items
        .iter()
        .map(|item| {
            if let Item::CopyEnd { rows, .. } = item {
                *rows
            } else {
                0
            }
        })
        .sum();
    assert_eq!(rows, 46273);
    let rental = items
        .iter()
        .position(|item| matches!(item, Item::CopyStart(s) if s.sql.starts_with(b"COPY rental ")));
    let rental_end = items[rental.expect("a rental COPY")..]
        .iter()
        .find_map(|item| {
            if let Item::CopyEnd { rows, .. } = item {
                Some(*rows)
            } else {
                None
            }
        });
    assert_eq!(rental_end, Some(16044));
    // Outside comments and rows, 22 lines end with `;`: 9 SETs and 13 setval calls.
    assert_eq!(
        items
            .iter()
            .filter(|item| matches!(item, Item::Statement(_)))
            .count(),
        22
    );
}

#[test]
fn pagila_schema_splits_into_its_statements() {
    let Some(dump) = fixture("pagila-schema.sql.gz") else {
        return;
    };
    let items: Vec<Item> = DumpLexer::new(&dump[..])
        .collect::<Result<_, _>>()
        .expect("lexes");

    // A hand-written script: no COPY blocks, no meta-commands. Each statement begins a line with
    // its keyword (`create`, `set`), which `grep -ci` counts as 106 lines; 10 are functions
    // whose dollar-quoted bodies hold many `;`.
    assert_eq!(outline(&items), "S".repeat(106));
    let sql = statements(&items);
    assert_eq!(
        sql.iter()
            .filter(|s| s.starts_with("create function"))
            .count(),
        10
    );
    assert!(sql.iter().all(|s| s.ends_with(';')));
}

#[test]
#[ignore = "measures throughput; run with --release --ignored --nocapture"]
fn copy_and_statement_throughput() {
    let row = b"12345\tsome text of a row\t2020-02-15 09:34:33\t\\N\t3.14159\n";
    let mut copy = b"COPY t (a, b, c, d, e) FROM stdin;\n".to_vec();
    while copy.len() < 512 << 20 {
        copy.extend_from_slice(row);
    }
    copy.extend_from_slice(b"\\.\n");
    let statement = b"INSERT INTO t VALUES (1, 'text; with semicolon', $$body$$, \"col\"); -- c\n";
    let mut statements = Vec::new();
    while statements.len() < 128 << 20 {
        statements.extend_from_slice(statement);
    }

    let schema = fixture("pagila-schema.sql.gz").unwrap_or_default();
    let schemas = schema.repeat((256 << 20) / schema.len().max(1));

    let inputs = [
        ("COPY data", &copy),
        ("short statements", &statements),
        ("schema", &schemas),
    ];
    for (what, input) in inputs {
        let start = Instant::now();
        let mut count = 0;
        for item in DumpLexer::new(&input[..]) {
            item.expect("lexes");
            count += 1;
        }
        let seconds = start.elapsed().as_secs_f64();
        let rate = input.len() as f64 / seconds / 1e6;
        eprintln!("{what}: {count} items, {rate:.0} MB/s");
    }
}

#[test]
fn statements_and_rows_longer_than_the_limit_fail_with_their_line() {
    let lex_limited = |input: &[u8]| -> Result<Vec<Item>, LexError> {
        DumpLexer::new(input).with_max_item_size(64 << 10).collect()
    };
    let statement = format!("SELECT 1;\nSELECT '{}';\n", "x".repeat(3 << 20));
    let err = lex_limited(statement.as_bytes()).unwrap_err();
    assert!(
        matches!(err.kind(), super::LexErrorKind::TooLong { .. }),
        "{err}"
    );
    assert_eq!(err.line(), 2);

    let row = format!(
        "COPY t (v) FROM stdin;\nshort\n{}\n\\.\n",
        "y".repeat(3 << 20)
    );
    let err = lex_limited(row.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("longer than"), "{err}");

    let fits = format!("SELECT '{}';\n", "z".repeat(1000));
    assert_eq!(lex_limited(fits.as_bytes()).unwrap().len(), 1);
}
