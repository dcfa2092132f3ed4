//! psql meta-commands: a backslash outside quotes and comments, up to the end of its line.
//!
//! The lexer never runs them; it hands them to the planner, which decides what a restore may
//! allow (`\restrict` and `\connect` are expected in a dump, `\!` never is).
//!
//! psql's `\copy … from stdin` reads rows from the script itself, like `COPY … FROM stdin`; the
//! lexer does not follow it there and reads any such rows as SQL. pg_dump never writes `\copy`,
//! so this matters only for hand-written scripts, which the planner should refuse.

use bytes::Bytes;

/// Splits the text after a meta-command's backslash (without the line end) into the command's
/// name and its trimmed arguments.
///
/// The name runs to the first whitespace or backslash; a command whose name starts with
/// punctuation (`\!`, `\?`) has a one-character name, since psql lets its arguments follow
/// without a space. Arguments run to the end of the line: a `\\` separator inside them is not
/// split off, which matters only to hand-written scripts.
pub(super) fn split_meta_command(text: &[u8]) -> (String, Bytes) {
    let name_len = match text.first() {
        Some(byte) if byte.is_ascii_punctuation() => 1,
        _ => text
            .iter()
            .take_while(|b| !b.is_ascii_whitespace() && **b != b'\\')
            .count(),
    };
    let name = String::from_utf8_lossy(&text[..name_len]).into_owned();
    let args = Bytes::copy_from_slice(text[name_len..].trim_ascii());
    (name, args)
}

#[cfg(test)]
mod tests {
    use crate::dump::tests::{items, outline, statements};
    use crate::dump::{Item, MetaCommand};

    fn metas(input: &str) -> Vec<MetaCommand> {
        let items = items(input.as_bytes());
        let meta = |item| {
            if let Item::Meta(meta) = item {
                Some(meta)
            } else {
                None
            }
        };
        items.into_iter().filter_map(meta).collect()
    }

    fn name_and_args(meta: &MetaCommand) -> (&str, &str) {
        (
            meta.name.as_str(),
            std::str::from_utf8(&meta.args).expect("UTF-8 arguments"),
        )
    }

    #[test]
    fn meta_command_at_statement_start_takes_its_line() {
        let input = "SELECT 1;\n\\connect -reuse-previous=on \"dbname='x'\"\nSELECT 2;\n";
        let all = items(input.as_bytes());
        assert_eq!(outline(&all), "SMS");
        let metas = metas(input);
        assert_eq!(
            name_and_args(&metas[0]),
            ("connect", "-reuse-previous=on \"dbname='x'\"")
        );
        assert_eq!(metas[0].line, 2);
    }

    #[test]
    fn shell_escape_is_named_bang() {
        let metas = metas("\\! rm -rf /\n\\!ls\n");
        assert_eq!(name_and_args(&metas[0]), ("!", "rm -rf /"));
        assert_eq!(name_and_args(&metas[1]), ("!", "ls"));
    }

    #[test]
    fn meta_command_arguments_are_trimmed() {
        let metas = metas("\\restrict   AbC123  \r\n\\unrestrict AbC123");
        assert_eq!(name_and_args(&metas[0]), ("restrict", "AbC123"));
        assert_eq!(name_and_args(&metas[1]), ("unrestrict", "AbC123"));
    }

    #[test]
    fn meta_command_mid_statement_leaves_the_statement_pending() {
        let all = items(b"SELECT 1,\n  \\set x 1\n2;\n");
        assert_eq!(outline(&all), "MS");
        assert_eq!(statements(&all), ["SELECT 1,\n  2;"]);
        let Item::Statement(statement) = &all[1] else {
            panic!("not a statement")
        };
        assert_eq!(statement.line, 1);
        let Item::Meta(meta) = &all[0] else {
            panic!("not a meta-command")
        };
        assert_eq!((name_and_args(meta), meta.line), (("set", "x 1"), 2));
    }

    #[test]
    fn backslash_in_quotes_or_comments_is_not_a_meta_command() {
        let input = "SELECT '\\c a', \"\\c b\", $$\\c c$$ /* \\c d */; -- \\c e\n";
        assert_eq!(outline(&items(input.as_bytes())), "S");
    }
}
