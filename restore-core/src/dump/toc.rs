//! The table-of-contents headers pg_dump writes before each object.
//!
//! A plain dump carries no separate table of contents; instead each object's statements follow
//! a comment such as `-- Name: actor; Type: TABLE; Schema: public; Owner: postgres`. The lexer
//! reads these headers only between statements, so text inside a string or a COPY block cannot
//! pass for one, and attaches the latest to the items that follow. The planner uses them to
//! tell sections and objects apart.

/// One table-of-contents header: which object the following statements belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    /// The object's name as pg_dump wrote it, e.g. `actor` or `FUNCTION f(a integer, b text)`.
    pub name: String,
    /// The entry's type: `TABLE`, `TABLE DATA`, `FK CONSTRAINT`, `ACL` …
    pub kind: String,
    /// The schema, or `None` where pg_dump wrote `-`.
    pub schema: Option<String>,
    /// The owner, or `None` where pg_dump wrote `-` or no owner at all.
    pub owner: Option<String>,
    /// 1-based line of the header comment.
    pub line: u64,
}

impl TocEntry {
    /// Parses a header comment line (starting with `--`, with or without its line end).
    /// Returns `None` for any other comment.
    ///
    /// Names may themselves contain `; `, so the line is split at the last occurrence of each
    /// field marker, working from the right. Bytes that are not UTF-8 are replaced.
    pub fn parse(comment_line: &[u8], line: u64) -> Option<TocEntry> {
        let text = String::from_utf8_lossy(comment_line.strip_prefix(b"--")?);
        let text = text.trim();
        let rest = text
            .strip_prefix("Name: ")
            .or_else(|| text.strip_prefix("Data for Name: "))?;

        let rest = match rest.rsplit_once("; Tablespace: ") {
            Some((before, _)) => before,
            None => rest,
        };
        let (rest, owner) = match rest.rsplit_once("; Owner: ") {
            Some((before, owner)) => (before, optional(owner)),
            None => (rest, None),
        };
        let (rest, schema) = rest.rsplit_once("; Schema: ")?;
        let (name, kind) = rest.rsplit_once("; Type: ")?;

        Some(TocEntry {
            name: name.to_owned(),
            kind: kind.to_owned(),
            schema: optional(schema),
            owner,
            line,
        })
    }
}

/// pg_dump writes `-` for a field that does not apply.
fn optional(field: &str) -> Option<String> {
    let field = field.trim();
    (field != "-" && !field.is_empty()).then(|| field.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toc_header_fields_are_parsed() {
        let entry = TocEntry::parse(
            b"-- Name: actor; Type: TABLE; Schema: public; Owner: postgres",
            7,
        );
        let expected = TocEntry {
            name: "actor".into(),
            kind: "TABLE".into(),
            schema: Some("public".into()),
            owner: Some("postgres".into()),
            line: 7,
        };
        assert_eq!(entry, Some(expected));
    }

    #[test]
    fn toc_data_header_is_parsed() {
        let line =
            b"-- Data for Name: actor; Type: TABLE DATA; Schema: public; Owner: postgres\r\n";
        let entry = TocEntry::parse(line, 1).expect("a data header");
        assert_eq!(
            (entry.name.as_str(), entry.kind.as_str()),
            ("actor", "TABLE DATA")
        );
        assert_eq!(entry.owner.as_deref(), Some("postgres"));
    }

    #[test]
    fn toc_tablespace_after_owner_is_ignored() {
        let line = b"-- Name: t; Type: TABLE; Schema: s; Owner: bob; Tablespace: fast";
        let entry = TocEntry::parse(line, 1).expect("a header");
        assert_eq!(entry.owner.as_deref(), Some("bob"));
        assert_eq!(entry.schema.as_deref(), Some("s"));
    }

    #[test]
    fn toc_dash_fields_are_none() {
        let line = b"-- Name: plpgsql; Type: EXTENSION; Schema: -; Owner: -";
        let entry = TocEntry::parse(line, 1).expect("a header");
        assert_eq!((entry.schema, entry.owner), (None, None));
    }

    #[test]
    fn toc_name_containing_semicolons_is_kept_whole() {
        let line =
            b"-- Name: FUNCTION f(a integer, b text); Type: ACL; Schema: public; Owner: postgres";
        let entry = TocEntry::parse(line, 1).expect("a header");
        assert_eq!(entry.name, "FUNCTION f(a integer, b text)");
        assert_eq!(entry.kind, "ACL");
    }

    #[test]
    fn toc_name_containing_a_marker_splits_at_the_last_one() {
        let line = b"-- Name: odd; Type: x; Type: TABLE; Schema: public; Owner: me";
        let entry = TocEntry::parse(line, 1).expect("a header");
        assert_eq!(
            (entry.name.as_str(), entry.kind.as_str()),
            ("odd; Type: x", "TABLE")
        );
    }

    #[test]
    fn ordinary_comment_is_not_a_toc_header() {
        assert_eq!(TocEntry::parse(b"-- PostgreSQL database dump", 1), None);
        assert_eq!(TocEntry::parse(b"-- Name: incomplete", 1), None);
    }
}

#[cfg(test)]
mod lexer_tests {
    use crate::dump::tests::items;
    use crate::dump::Item;

    /// The TOC name attached to each item, `-` where none is.
    fn toc_names(input: &str) -> Vec<String> {
        let name = |item: &Item| {
            let toc = match item {
                Item::Statement(s) | Item::CopyStart(s) => s.toc.clone(),
                Item::Meta(meta) => meta.toc.clone(),
                _ => return None,
            };
            Some(toc.map_or("-".to_owned(), |entry| entry.name.clone()))
        };
        items(input.as_bytes()).iter().filter_map(name).collect()
    }

    #[test]
    fn items_carry_the_latest_toc_header() {
        let input = "SELECT 0;\n\
            --\n-- Name: a; Type: TABLE; Schema: public; Owner: me\n--\n\nCREATE TABLE a ();\n\
            -- Data for Name: b; Type: TABLE DATA; Schema: public; Owner: me\n\
            COPY b FROM stdin;\n\\.\n\\connect x\n";
        assert_eq!(toc_names(input), ["-", "a", "b", "b"]);
    }

    #[test]
    fn toc_header_lookalikes_in_strings_rows_and_statements_are_ignored() {
        let fake = "-- Name: fake; Type: TABLE; Schema: s; Owner: o";
        let input = format!(
            "-- Name: a; Type: TABLE; Schema: public; Owner: me\n\
             SELECT '\n{fake}\n';\nCOPY t FROM stdin;\n{fake}\n\\.\nSELECT 1\n{fake}\n;\nSELECT 2;"
        );
        assert_eq!(toc_names(&input), ["a", "a", "a", "a"]);
    }

    #[test]
    fn toc_header_records_its_line() {
        let items = items(b"\n-- Name: a; Type: TABLE; Schema: public; Owner: me\nSELECT 1;");
        let Item::Statement(statement) = &items[0] else {
            panic!("not a statement")
        };
        assert_eq!(statement.toc.as_ref().map(|entry| entry.line), Some(2));
    }
}
