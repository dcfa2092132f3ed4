//! What each statement of a dump is, and how it may be scheduled.
//!
//! The lexer hands over statements as bytes; the planner reads their first words and decides
//! whether a statement is a session setting (replayed on every connection), a post-data build
//! that may run beside others (an index or constraint on a known table, a foreign key between
//! two known tables), something that touches the database itself (handled by the loader so a
//! restore never acts outside its target), something refused outright, or, by default, a
//! barrier run in file order on the control connection.

mod database;
mod words;

use crate::dump::{Statement, TocEntry};
use words::{leading_words, Word};

/// What the loader should do with one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// A session setting (`SET`, `RESET`, `set_config(…, false)`): run it and replay it on
    /// every worker. `name` is the parameter, lower case.
    Setting { name: String, value: Option<String> },
    /// A statement that may run concurrently with its neighbours of the same kind.
    Concurrent(Build),
    /// A statement run in file order on the control connection, after all earlier work.
    Barrier,
    /// Left out, with the reason (ownership, privileges).
    Skip(&'static str),
    /// Refused: running it would reach beyond the target database.
    Refuse(String),
    /// `DROP DATABASE name`.
    DropDatabase { name: String },
    /// `CREATE DATABASE name …`: the options kept (rebuilt, beginning `WITH`), and the names
    /// of those left out.
    CreateDatabase {
        name: String,
        options: String,
        ignored: Vec<String>,
    },
    /// `ALTER DATABASE name …` (owner and settings only) or `COMMENT ON DATABASE name IS …`;
    /// `prefix` is the statement's rebuilt start and `rest` the text after the name, so the
    /// loader can aim it at its own database.
    DatabaseLevel {
        name: String,
        prefix: String,
        rest: String,
    },
}

/// A post-data build that may run beside others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Build {
    /// An index, primary key, unique, check or exclusion constraint on one table. `shared`
    /// when it is a `CREATE INDEX`, whose SHARE lock lets other `CREATE INDEX` on the table run
    /// beside it; a constraint added by `ALTER TABLE` locks the table for itself. `btree` when
    /// it sorts the table's rows into a B-tree: an index of that method, a primary key or a
    /// unique constraint.
    Index {
        table: String,
        shared: bool,
        btree: bool,
    },
    /// A foreign key: the table it is on and the table it references.
    ForeignKey { table: String, references: String },
}

impl Build {
    /// The tables this build locks.
    pub(crate) fn tables(&self) -> Vec<&str> {
        match self {
            Build::Index { table, .. } => vec![table],
            Build::ForeignKey { table, references } => vec![table, references],
        }
    }

    /// True when the build leaves its tables open to other shared builds.
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self, Build::Index { shared: true, .. })
    }

    /// True when the build sorts rows into a B-tree.
    pub(crate) fn is_btree(&self) -> bool {
        matches!(self, Build::Index { btree: true, .. })
    }
}

/// The user's choices that change what runs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PlanOptions {
    /// Skip ownership changes, as `pg_restore -O` does.
    pub no_owner: bool,
    /// Skip privileges, as `pg_restore -x` does.
    pub no_privileges: bool,
}

/// Decides what to do with `stmt`.
pub(crate) fn classify(stmt: &Statement, options: PlanOptions) -> Action {
    let words = leading_words(&stmt.sql, 24);
    let kw = |i: usize, k: &str| words.get(i).is_some_and(|w| w.is(k));

    if let Some(action) = classify_setting(&words, options) {
        return action;
    }
    if kw(0, "alter") && kw(1, "system") {
        return Action::Refuse("ALTER SYSTEM changes the whole server".into());
    }
    let mapping = kw(1, "user") && kw(2, "mapping");
    if (kw(0, "create") || kw(0, "alter") || kw(0, "drop"))
        && (kw(1, "role") || kw(1, "user") || kw(1, "group"))
        && !mapping
    {
        if kw(0, "alter") && words.iter().any(|w| w.is("in")) {
            return Action::Skip("a role's per-database setting is not part of the restore");
        }
        return Action::Refuse("roles are shared by the whole server".into());
    }
    if (kw(0, "create") || kw(0, "alter") || kw(0, "drop")) && kw(1, "tablespace") {
        return Action::Refuse("tablespaces are shared by the whole server".into());
    }
    if let Some(action) = database::classify(&stmt.sql) {
        return action;
    }
    if kw(0, "copy") {
        return Action::Refuse("COPY to or from a server file or program".into());
    }
    if (kw(0, "prepare") && kw(1, "transaction"))
        || ((kw(0, "commit") || kw(0, "rollback")) && kw(1, "prepared"))
    {
        return Action::Refuse(
            "prepared transactions outlive the session and hold their locks on the server".into(),
        );
    }
    if options.no_owner && kw(0, "alter") && (owner_to(&words) || ends_with_owner_to(&stmt.sql)) {
        return Action::Skip("ownership (no_owner)");
    }
    if options.no_privileges
        && (kw(0, "grant")
            || kw(0, "revoke")
            || (kw(0, "alter") && kw(1, "default") && kw(2, "privileges")))
    {
        return Action::Skip("privileges (no_privileges)");
    }
    if (kw(0, "grant") || kw(0, "revoke")) && !words.iter().any(|w| w.is("on")) {
        return Action::Refuse("role memberships are shared by the whole server".into());
    }
    let on_shared = words.windows(2).any(|pair| {
        pair[0].is("on")
            && (pair[1].is("tablespace") || pair[1].is("role") || pair[1].is("parameter"))
    });
    let about_objects = kw(0, "grant") || kw(0, "revoke") || kw(0, "comment") || kw(0, "security");
    if about_objects && on_shared {
        return Action::Refuse(
            "roles, tablespaces and parameters are shared by the whole server".into(),
        );
    }
    if (kw(0, "drop") || kw(0, "reassign")) && kw(1, "owned") {
        return Action::Refuse(
            "DROP OWNED and REASSIGN OWNED reach objects shared by the server".into(),
        );
    }
    match classify_build(&words, stmt.toc.as_deref()) {
        Some(build) => Action::Concurrent(build),
        None => Action::Barrier,
    }
}

fn owner_to(words: &[Word]) -> bool {
    words
        .windows(2)
        .any(|pair| pair[0].is("owner") && pair[1].is("to"))
}

/// pg_dump ends ownership changes with `OWNER TO role;`, however long the object's signature.
fn ends_with_owner_to(sql: &[u8]) -> bool {
    let tail = &sql[sql.len().saturating_sub(200)..];
    let tail = String::from_utf8_lossy(tail).to_ascii_uppercase();
    let Some(at) = tail.rfind(" OWNER TO ") else {
        return false;
    };
    let role = tail[at + 10..].trim_end().trim_end_matches(';');
    !role.is_empty() && !role.contains(char::is_whitespace)
}

fn classify_setting(words: &[Word], options: PlanOptions) -> Option<Action> {
    let kw = |i: usize, k: &str| words.get(i).is_some_and(|w| w.is(k));
    let name_at = |i: usize| words.get(i).and_then(Word::text).map(str::to_lowercase);

    if kw(0, "set") {
        if kw(1, "local") || kw(1, "transaction") || kw(1, "constraints") {
            return Some(Action::Barrier);
        }
        let first = if kw(1, "session") { 2 } else { 1 };
        if kw(first, "authorization") || kw(first, "role") {
            if options.no_owner {
                return Some(Action::Skip("session authorization (no_owner)"));
            }
            let name = if kw(first, "role") {
                "role"
            } else {
                "session_authorization"
            };
            return Some(Action::Setting {
                name: name.into(),
                value: None,
            });
        }
        if kw(first, "names") {
            // SET NAMES is client_encoding under another name; the engine applies it itself.
            let value = words.get(first + 1).and_then(Word::text).map(str::to_owned);
            return Some(Action::Setting {
                name: "client_encoding".into(),
                value,
            });
        }
        let name = name_at(first)?;
        let value = words.get(first + 2).and_then(Word::text).map(str::to_owned);
        return Some(Action::Setting { name, value });
    }
    if kw(0, "reset") {
        let name = name_at(1)?;
        return Some(Action::Setting { name, value: None });
    }
    // SELECT pg_catalog.set_config('name', 'value', false);
    let call = if kw(1, "pg_catalog") { 3 } else { 1 };
    if kw(0, "select") && kw(call, "set_config") {
        let args: Vec<&Word> = words[call + 1..].iter().collect();
        use Word::Symbol;
        if let [Symbol('('), Word::Literal(name), Symbol(','), value, Symbol(','), local, ..] =
            args.as_slice()
        {
            if local.is("false") {
                let value = value.text().map(str::to_owned);
                return Some(Action::Setting {
                    name: name.to_lowercase(),
                    value,
                });
            }
        }
        return Some(Action::Barrier);
    }
    None
}

/// Recognises post-data builds, only under a pg_dump header that agrees with the SQL: a file
/// without headers is restored in file order.
fn classify_build(words: &[Word], toc: Option<&TocEntry>) -> Option<Build> {
    let kind = toc?.kind.as_str();
    let kw = |i: usize, k: &str| words.get(i).is_some_and(|w| w.is(k));

    if kind == "INDEX" && kw(0, "create") {
        let mut i = 1;
        if kw(i, "unique") {
            i += 1;
        }
        if !kw(i, "index") {
            return None;
        }
        let on = words.iter().position(|w| w.is("on"))?;
        let mut at = on + 1;
        if kw(at, "only") {
            at += 1;
        }
        let (table, next) = qualified_name(words, at)?;
        // pg_dump names the method; without one the index is a B-tree.
        let btree = (kw(next, "using") && kw(next + 1, "btree"))
            || words.get(next) == Some(&Word::Symbol('('));
        return Some(Build::Index {
            table,
            shared: true,
            btree,
        });
    }
    let constraint = matches!(kind, "CONSTRAINT" | "CHECK CONSTRAINT" | "FK CONSTRAINT");
    if constraint && kw(0, "alter") && kw(1, "table") {
        let mut at = 2;
        if kw(at, "only") {
            at += 1;
        }
        if kw(at, "if") && kw(at + 1, "exists") {
            at += 2;
        }
        if kw(at, "only") {
            at += 1;
        }
        let (table, next) = qualified_name(words, at)?;
        if !(kw(next, "add") && kw(next + 1, "constraint")) {
            return None;
        }
        let what = next + 3;
        if kw(what, "foreign") && kind == "FK CONSTRAINT" {
            let refs = words.iter().position(|w| w.is("references"))?;
            let mut at = refs + 1;
            if kw(at, "only") {
                at += 1;
            }
            let (references, _) = qualified_name(words, at)?;
            return Some(Build::ForeignKey { table, references });
        }
        let index_like =
            kw(what, "primary") || kw(what, "unique") || kw(what, "check") || kw(what, "exclude");
        if index_like && kind != "FK CONSTRAINT" {
            return Some(Build::Index {
                table,
                shared: false,
                btree: kw(what, "primary") || kw(what, "unique"),
            });
        }
    }
    None
}

/// How a statement moves the control connection in and out of a transaction block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transaction {
    /// `BEGIN`, `START TRANSACTION`.
    Opens,
    /// `COMMIT`, `END`, without `AND CHAIN`, which opens the next block at once.
    Commits,
    /// `ROLLBACK`, `ABORT`, without `AND CHAIN`.
    RollsBack,
}

/// Whether `sql` opens or closes a transaction block. `ROLLBACK TO` a savepoint does neither.
pub(crate) fn transaction_boundary(sql: &[u8]) -> Option<Transaction> {
    let words = leading_words(sql, 8);
    let kw = |i: usize, k: &str| words.get(i).is_some_and(|w| w.is(k));

    if kw(0, "begin") || (kw(0, "start") && kw(1, "transaction")) {
        return Some(Transaction::Opens);
    }
    let closing = if kw(0, "commit") || kw(0, "end") {
        Transaction::Commits
    } else if kw(0, "rollback") || kw(0, "abort") {
        Transaction::RollsBack
    } else {
        return None;
    };
    if kw(1, "to") || kw(2, "to") || kw(1, "prepared") {
        return None;
    }
    let chained = words
        .windows(2)
        .any(|pair| pair[0].is("and") && pair[1].is("chain"));
    (!chained).then_some(closing)
}

/// True for an `INSERT` without `RETURNING`: its answer holds no rows, so reading it needs
/// nothing more from the server, and the loader may send it before the statements ahead of it
/// have answered. The word `returning` anywhere in the text, a value's included, counts.
pub(crate) fn answers_without_rows(sql: &[u8]) -> bool {
    let words = leading_words(sql, 1);
    words.first().is_some_and(|word| word.is("insert"))
        && !sql
            .windows(b"returning".len())
            .any(|window| window.eq_ignore_ascii_case(b"returning"))
}

/// True for a `setval` call in the form pg_dump writes, `SELECT pg_catalog.setval('seq', 42,
/// true);`: literals only, so it reads no table and need not wait for the blocks loading. A
/// call whose value is an expression (`(SELECT max(id) FROM t)`) may read a table still loading.
pub(crate) fn literal_setval(sql: &[u8]) -> bool {
    const MAX_WORDS: usize = 48;
    let words = leading_words(sql, MAX_WORDS);
    if words.len() >= MAX_WORDS {
        return false;
    }
    let kw = |i: usize, k: &str| words.get(i).is_some_and(|w| w.is(k));
    let symbol = |i: usize, c: char| words.get(i) == Some(&Word::Symbol(c));

    let call = kw(0, "select") && kw(1, "pg_catalog") && symbol(2, '.') && kw(3, "setval");
    let sequence = symbol(4, '(') && matches!(words.get(5), Some(Word::Literal(_)));
    if !(call && sequence && symbol(6, ',')) {
        return false;
    }
    // The value: digits, maybe signed, each one symbol.
    let number = |word: &Word| matches!(word, Word::Symbol(c) if c.is_ascii_digit() || *c == '-');
    let digits = words[7..].iter().take_while(|word| number(word)).count();
    let mut at = 7 + digits;
    if digits > 0 && symbol(at, ',') && (kw(at + 1, "true") || kw(at + 1, "false")) {
        at += 2;
    }
    let end = matches!(
        &words[at..],
        [Word::Symbol(')')] | [Word::Symbol(')'), Word::Symbol(';')]
    );
    digits > 0 && end
}

/// The table a `COPY … FROM stdin` loads, quoted for SQL (`"public"."t"`), as the session's
/// search path resolves it.
pub(crate) fn copy_target(sql: &[u8]) -> Option<String> {
    let words = leading_words(sql, 4);
    if !words.first()?.is("copy") {
        return None;
    }
    let part = |word: &Word| match word {
        Word::Ident { text, .. } => Some(crate::server::quote_ident(text)),
        _ => None,
    };
    let first = part(words.get(1)?)?;
    if words.get(2) == Some(&Word::Symbol('.')) {
        return Some(format!("{first}.{}", part(words.get(3)?)?));
    }
    Some(first)
}

/// The name of the table a `COPY … FROM stdin` loads, without its schema, as the builds name
/// their tables ([`Build::tables`]).
pub(crate) fn copy_table_name(sql: &[u8]) -> Option<String> {
    let words = leading_words(sql, 4);
    if !words.first()?.is("copy") {
        return None;
    }
    qualified_name(&words, 1).map(|(name, _)| name)
}

/// A `COPY … FROM stdin` in the plain form pg_dump writes, without options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlainCopy {
    /// The table, quoted for SQL (`"public"."t"`), as the session's search path resolves it.
    pub(crate) table: String,
    /// The columns the statement names, as the server folds them; `None` when it names none
    /// and so loads every column.
    pub(crate) columns: Option<Vec<String>>,
}

/// Reads `COPY name [(column, …)] FROM stdin[;]`; `None` for any other form of COPY (options,
/// `WITH`, a `WHERE` clause), which is loaded only as written. The names are read as the server
/// reads them only as far as the server agrees that the statement is valid: the loader sends
/// the statement itself, which the server may still refuse (a reserved word as a name).
pub(crate) fn plain_copy(sql: &[u8]) -> Option<PlainCopy> {
    // Enough for the most columns a table may have (1600), each with its comma.
    const MAX_WORDS: usize = 3300;
    let words = leading_words(sql, MAX_WORDS);
    if words.len() >= MAX_WORDS || !words.first()?.is("copy") {
        return None;
    }
    // An unquoted name with letters beyond ASCII is folded by the database's locale when its
    // encoding has one byte per character: such a statement is loaded only as written.
    let ident = |word: Option<&Word>| match word {
        Some(Word::Ident { text, quoted }) if *quoted || text.is_ascii() => Some(text.clone()),
        _ => None,
    };
    let mut at = 1;
    let mut table = crate::server::quote_ident(&ident(words.get(at))?);
    at += 1;
    if words.get(at) == Some(&Word::Symbol('.')) {
        table = format!(
            "{table}.{}",
            crate::server::quote_ident(&ident(words.get(at + 1))?)
        );
        at += 2;
    }
    let mut columns = None;
    if words.get(at) == Some(&Word::Symbol('(')) {
        let mut names = Vec::new();
        loop {
            names.push(ident(words.get(at + 1))?);
            at += 2;
            match words.get(at) {
                Some(Word::Symbol(',')) => continue,
                Some(Word::Symbol(')')) => break,
                _ => return None,
            }
        }
        columns = Some(names);
        at += 1;
    }
    let rest = &words[at..];
    let plain = matches!(rest, [from, stdin] | [from, stdin, Word::Symbol(';')]
        if from.is("from") && stdin.is("stdin"));
    plain.then_some(PlainCopy { table, columns })
}

/// Reads `name` or `schema.name` at `at`; returns the relation's own name (the schema is
/// dropped, so two tables of one name in different schemas count as one: that only makes the
/// schedule more careful) and the index after it.
fn qualified_name(words: &[Word], at: usize) -> Option<(String, usize)> {
    let first = match words.get(at)? {
        Word::Ident { text, .. } => text.clone(),
        _ => return None,
    };
    if words.get(at + 1) == Some(&Word::Symbol('.')) {
        if let Some(Word::Ident { text, .. }) = words.get(at + 2) {
            return Some((text.clone(), at + 3));
        }
        return None;
    }
    Some((first, at + 1))
}

#[cfg(test)]
mod tests;
