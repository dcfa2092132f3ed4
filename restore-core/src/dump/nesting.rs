//! The few statements whose own text holds a `;` that does not end them.
//!
//! Two things pg_dump writes have one. Since PostgreSQL 14 a function or procedure may have a
//! body written in SQL as `BEGIN ATOMIC … END`, whose statements end in `;` like any others;
//! and a rule with several actions lists them as `DO INSTEAD (INSERT …; INSERT …;)`. psql keeps
//! those `;` inside the statement with a heuristic rather than a parser, and the scanner follows
//! nearly the same one, so that it splits a dump where psql would:
//!
//! - a `;` inside parentheses does not end a statement;
//! - while a statement begins with `CREATE [OR REPLACE] {FUNCTION | PROCEDURE}`, `BEGIN ATOMIC`
//!   outside parentheses opens the body's block; inside it each `BEGIN` and `CASE` opens one
//!   more (a `CASE` ends in `END` too) and each `END` closes one; a `;` inside a block does not
//!   end the statement.
//!
//! psql counts any `BEGIN` of such a statement, so a function named `begin` (pg_dump writes
//! `CREATE FUNCTION public.begin() …`) holds its `;` and swallows the statements after it; only
//! `BEGIN ATOMIC` starts a body, so the scanner waits for both words.
//!
//! psql counts parentheses in every statement. In valid SQL a `;` stands inside them only in a
//! rule (`CREATE [OR REPLACE] RULE`), so the scanner counts them only in rules and routine
//! definitions, and most statements show by their first bytes that they are neither: the bulk
//! of a dump is scanned without being cut into words. Only unquoted words and parentheses count:
//! the scanner passes over strings, quoted identifiers, dollar quotes and comments, so a plpgsql
//! body in `$$ … $$` is never looked into.

use super::quote::is_ident_byte;

/// What the words and parentheses of the current statement so far say about where it may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nesting {
    /// No word read yet, and the statement may begin with `CREATE`.
    Start,
    /// The statement began with `CREATE`.
    Create,
    /// The statement began with `CREATE OR`.
    CreateOr,
    /// The statement began with `CREATE OR REPLACE`.
    CreateOrReplace,
    /// A function or procedure definition with `parens` parentheses and `blocks` body blocks
    /// open; `after_begin` when the last word, outside any block, was `BEGIN`.
    Routine {
        parens: u32,
        blocks: u32,
        after_begin: bool,
    },
    /// A rule definition with `parens` parentheses open.
    Rule { parens: u32 },
    /// Any other statement: every `;` outside quotes and comments ends it.
    Flat,
}

impl Nesting {
    /// The state for a statement whose bytes read so far are `text`, from its first byte on.
    ///
    /// Most statements show at once that they are neither routine nor rule definitions: their
    /// first word is not `CREATE`, or the next one, after a single blank, cannot be `OR`,
    /// `FUNCTION`, `PROCEDURE` or `RULE` by its first letter. They are spared having their
    /// words read one by one, which the scanner does only for what this cannot settle. This
    /// runs once per statement, so it looks at a few bytes and no more.
    #[inline]
    pub(super) fn at_start(text: &[u8]) -> Nesting {
        if text.first().is_some_and(|b| b | 0x20 != b'c') {
            return Nesting::Flat;
        }
        let Some(&[c, r, e, a, t, e2, blank, next]) = text.get(..8) else {
            return Nesting::Start;
        };
        // Setting bit 5 lowers the case of a letter and makes no other byte a letter.
        let create = [c, r, e, a, t, e2].map(|b| b | 0x20) == *b"create";
        let plain = create && matches!(blank, b' ' | b'\t' | b'\n' | b'\r') && is_word_start(next);
        if plain && !matches!(next | 0x20, b'o' | b'f' | b'p' | b'r') {
            Nesting::Flat
        } else {
            Nesting::Start
        }
    }

    /// Whether a `;` here ends the statement.
    pub(super) fn ends_at_semicolon(self) -> bool {
        match self {
            Nesting::Routine { parens, blocks, .. } => parens == 0 && blocks == 0,
            Nesting::Rule { parens } => parens == 0,
            _ => true,
        }
    }

    /// Takes a `(` outside quotes and comments.
    pub(super) fn open_paren(&mut self) {
        match self {
            Nesting::Routine {
                parens,
                after_begin,
                ..
            } => {
                *parens = parens.saturating_add(1);
                *after_begin = false;
            }
            Nesting::Rule { parens } => *parens = parens.saturating_add(1),
            Nesting::Flat => {}
            // A parenthesis among the opening words: no routine or rule definition.
            _ => *self = Nesting::Flat,
        }
    }

    /// Takes a `)` outside quotes and comments.
    pub(super) fn close_paren(&mut self) {
        match self {
            Nesting::Routine { parens, .. } | Nesting::Rule { parens } => {
                *parens = parens.saturating_sub(1);
            }
            Nesting::Flat => {}
            _ => *self = Nesting::Flat,
        }
    }

    /// Takes the next unquoted word of the statement.
    pub(super) fn read(&mut self, word: &[u8]) {
        let is = |keyword: &[u8]| word.eq_ignore_ascii_case(keyword);
        *self = match *self {
            // A parameter or a default inside parentheses may be named `begin` or hold a CASE.
            Nesting::Routine { parens, .. } if parens > 0 => return,
            // Outside the body a lone `begin` is a name; the body opens with `BEGIN ATOMIC`.
            Nesting::Routine {
                parens,
                blocks: 0,
                after_begin,
            } => Nesting::Routine {
                parens,
                blocks: u32::from(after_begin && is(b"atomic")),
                after_begin: is(b"begin"),
            },
            Nesting::Routine { parens, blocks, .. } => {
                let blocks = if is(b"begin") || is(b"case") {
                    blocks.saturating_add(1)
                } else if is(b"end") {
                    blocks.saturating_sub(1)
                } else {
                    return;
                };
                Nesting::Routine {
                    parens,
                    blocks,
                    after_begin: false,
                }
            }
            Nesting::Start if is(b"create") => Nesting::Create,
            Nesting::Create if is(b"or") => Nesting::CreateOr,
            Nesting::CreateOr if is(b"replace") => Nesting::CreateOrReplace,
            Nesting::Create | Nesting::CreateOrReplace if is(b"function") || is(b"procedure") => {
                Nesting::Routine {
                    parens: 0,
                    blocks: 0,
                    after_begin: false,
                }
            }
            Nesting::Create | Nesting::CreateOrReplace if is(b"rule") => {
                Nesting::Rule { parens: 0 }
            }
            Nesting::Rule { .. } | Nesting::Flat => return,
            _ => Nesting::Flat,
        };
    }
}

/// Whether `byte` may begin an unquoted word: a letter, `_` or a non-ASCII byte.
fn is_word_start(byte: u8) -> bool {
    is_ident_byte(byte) && !byte.is_ascii_digit() && byte != b'$'
}

#[cfg(test)]
mod tests {
    use super::Nesting;

    fn after(text: &str) -> Nesting {
        let mut nesting = Nesting::Start;
        for word in text.split_whitespace() {
            match word {
                "(" => nesting.open_paren(),
                ")" => nesting.close_paren(),
                _ => nesting.read(word.as_bytes()),
            }
        }
        nesting
    }

    #[test]
    fn only_function_procedure_and_rule_definitions_nest() {
        for text in [
            "CREATE FUNCTION f",
            "create procedure p",
            "CREATE OR REPLACE FUNCTION f",
            "Create Or Replace Procedure p",
        ] {
            let routine = Nesting::Routine {
                parens: 0,
                blocks: 0,
                after_begin: false,
            };
            assert_eq!(after(text), routine, "{text}");
        }
        for text in ["CREATE RULE r", "CREATE OR REPLACE RULE r"] {
            assert_eq!(after(text), Nesting::Rule { parens: 0 }, "{text}");
        }
        for text in [
            "BEGIN",
            "CREATE TABLE begin_log",
            "CREATE OR REPLACE VIEW v",
            "CREATE AGGREGATE a",
            "ALTER FUNCTION f",
            "CREATE OR FUNCTION f",
            "CREATE ( FUNCTION f",
            "SELECT create function",
        ] {
            assert_eq!(after(text), Nesting::Flat, "{text}");
        }
    }

    #[test]
    fn most_statements_are_settled_by_their_first_bytes() {
        for text in [
            "INSERT INTO t",
            "CREATE TABLE t (",
            "create index i",
            "Create View v",
        ] {
            assert_eq!(Nesting::at_start(text.as_bytes()), Nesting::Flat, "{text}");
        }
        for text in [
            "CREATE FUNCTION f",
            "CREATE OR REPLACE",
            "CREATE RULE r",
            "CREATE FOREIGN TABLE",
            "CREATE  TABLE",
            "CREATE /* TABLE */ FUNCTION",
            "CREATED",
            "CREATE",
            "creat",
            "CREATEXTABLE",
        ] {
            assert_eq!(Nesting::at_start(text.as_bytes()), Nesting::Start, "{text}");
        }
    }

    #[test]
    fn case_opens_a_block_only_inside_one() {
        let nesting = after("CREATE FUNCTION f RETURN CASE WHEN x THEN 1 END");
        assert!(nesting.ends_at_semicolon());

        let nesting = after("CREATE FUNCTION f BEGIN ATOMIC SELECT CASE WHEN x THEN 1 END");
        assert!(!nesting.ends_at_semicolon());
        let nesting = after("CREATE FUNCTION f BEGIN ATOMIC SELECT CASE WHEN x THEN 1 END END");
        assert!(nesting.ends_at_semicolon());
    }

    #[test]
    fn only_begin_atomic_opens_a_body() {
        for text in [
            "CREATE FUNCTION public . begin ( ) RETURNS int LANGUAGE sql AS",
            "CREATE FUNCTION f ( ) RETURNS begin LANGUAGE sql RETURN 1",
            "CREATE PROCEDURE begin ( ) LANGUAGE sql BEGIN ATOMIC SELECT 1 ; END",
        ] {
            assert!(after(text).ends_at_semicolon(), "{text}");
        }
        assert!(!after("CREATE PROCEDURE begin ( ) BEGIN ATOMIC").ends_at_semicolon());
    }

    #[test]
    fn words_inside_parentheses_open_no_block() {
        let nesting = after("CREATE FUNCTION f ( begin int ) RETURN 1");
        assert!(nesting.ends_at_semicolon());
    }

    #[test]
    fn semicolon_ends_a_rule_only_outside_parentheses() {
        assert!(!after("CREATE RULE r AS ON INSERT TO t DO INSTEAD (").ends_at_semicolon());
        assert!(after("CREATE RULE r AS ON INSERT TO t DO INSTEAD ( )").ends_at_semicolon());
    }
}
