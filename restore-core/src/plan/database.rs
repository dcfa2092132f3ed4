//! Statements about the database itself, in dumps made with `--create` or `--clean`.
//!
//! Such a dump drops, creates, alters and comments on the database it was taken from. A
//! restore aims them at its own staging database instead, and only in the forms pg_dump writes:
//! the options of `CREATE DATABASE` are rebuilt from a list that shapes the new database
//! (encoding, locale), never taken as written (`TEMPLATE = other_db` would copy another
//! database); `ALTER DATABASE` may change the owner and settings, never the name or the
//! tablespace; the statements are rebuilt from the parsed name, so a comment or quote cannot
//! make the rewrite land on another database.

use super::words::{leading_words_with_ends, Word};
use super::Action;
use crate::server::quote_literal;

/// `CREATE DATABASE` options that shape the new database and are kept.
const KEPT_OPTIONS: [&str; 8] = [
    "encoding",
    "locale",
    "lc_collate",
    "lc_ctype",
    "locale_provider",
    "icu_locale",
    "icu_rules",
    "builtin_locale",
];

/// Reads a statement about a database, or `None` when it is not one.
pub(super) fn classify(sql: &[u8]) -> Option<Action> {
    let words = leading_words_with_ends(sql, 64);
    let kw = |i: usize, k: &str| words.get(i).is_some_and(|(w, _)| w.is(k));
    let name_at = |i: usize| match words.get(i) {
        Some((Word::Ident { text, .. }, end)) => Some((text.clone(), *end)),
        _ => None,
    };
    let rest_after = |end: usize| String::from_utf8_lossy(&sql[end..]).into_owned();
    let unreadable = || {
        Some(Action::Refuse(
            "a database statement with an unreadable name".into(),
        ))
    };

    if kw(0, "drop") && kw(1, "database") {
        let at = if kw(2, "if") && kw(3, "exists") { 4 } else { 2 };
        return match name_at(at) {
            Some((name, _)) => Some(Action::DropDatabase { name }),
            None => unreadable(),
        };
    }
    if kw(0, "create") && kw(1, "database") {
        let Some((name, _)) = name_at(2) else {
            return unreadable();
        };
        let plain: Vec<&Word> = words.iter().map(|(word, _)| word).collect();
        let (options, ignored) = create_options(&plain[3..]);
        return Some(Action::CreateDatabase {
            name,
            options,
            ignored,
        });
    }
    if kw(0, "alter") && kw(1, "database") {
        let Some((name, end)) = name_at(2) else {
            return unreadable();
        };
        let allowed = (kw(3, "owner") && kw(4, "to"))
            || (kw(3, "set") && !kw(4, "tablespace"))
            || kw(3, "reset");
        if allowed {
            let prefix = "ALTER DATABASE".to_owned();
            return Some(Action::DatabaseLevel {
                name,
                prefix,
                rest: rest_after(end),
            });
        }
        let property = [
            "with",
            "connection",
            "is_template",
            "allow_connections",
            "refresh",
        ];
        if property.iter().any(|p| kw(3, p)) {
            return Some(Action::Skip(
                "a database property is not part of the restore",
            ));
        }
        return Some(Action::Refuse(format!(
            "ALTER DATABASE {name} may change only its owner and settings in a restore"
        )));
    }
    if kw(0, "comment") && kw(1, "on") && kw(2, "database") {
        let Some((name, end)) = name_at(3) else {
            return unreadable();
        };
        if !kw(4, "is") {
            return unreadable();
        }
        let prefix = "COMMENT ON DATABASE".to_owned();
        return Some(Action::DatabaseLevel {
            name,
            prefix,
            rest: rest_after(end),
        });
    }
    let on_database = words
        .windows(2)
        .any(|pair| pair[0].0.is("on") && pair[1].0.is("database"));
    if (kw(0, "grant") || kw(0, "revoke")) && on_database {
        return Some(Action::Skip(
            "privileges on a database are not part of the restore",
        ));
    }
    if kw(0, "security") && kw(1, "label") && on_database {
        return Some(Action::Skip(
            "a security label on a database is not part of the restore",
        ));
    }
    None
}

/// Rebuilds `CREATE DATABASE` options from the kept ones; returns the options and the names of
/// those left out.
fn create_options(words: &[&Word]) -> (String, Vec<String>) {
    let mut kept = vec!["WITH TEMPLATE = template0".to_owned()];
    let mut ignored = Vec::new();
    let mut i = usize::from(words.first().is_some_and(|w| w.is("with")));

    while let Some(Word::Ident {
        text: option,
        quoted: false,
    }) = words.get(i)
    {
        let mut option = option.clone();
        i += 1;
        if option == "connection" && words.get(i).is_some_and(|w| w.is("limit")) {
            option.push_str(" limit");
            i += 1;
        }
        if words.get(i) == Some(&&Word::Symbol('=')) {
            i += 1;
        }
        let value = match words.get(i) {
            Some(Word::Ident { text, .. } | Word::Literal(text)) => {
                i += 1;
                Some(text.clone())
            }
            _ => {
                // A number such as -1: symbols up to the next word or the end.
                while matches!(words.get(i), Some(Word::Symbol(c)) if *c != ';') {
                    i += 1;
                }
                None
            }
        };
        match value {
            Some(value) if KEPT_OPTIONS.contains(&option.as_str()) => {
                kept.push(format!(
                    "{} = {}",
                    option.to_uppercase(),
                    quote_literal(&value)
                ));
            }
            Some(value) if option == "template" && value == "template0" => {}
            _ => ignored.push(option),
        }
    }
    (kept.join(" "), ignored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_keeps_only_options_that_shape_the_database() {
        let sql = b"CREATE DATABASE shop WITH TEMPLATE = other OWNER = evil \
                    ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'en_US.UTF-8' \
                    CONNECTION LIMIT = -1 TABLESPACE = ts;";
        let Some(Action::CreateDatabase {
            name,
            options,
            ignored,
        }) = classify(sql)
        else {
            panic!("not a CREATE DATABASE");
        };
        assert_eq!(name, "shop");
        assert_eq!(
            options,
            "WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = 'libc' \
             LOCALE = 'en_US.UTF-8'"
        );
        assert_eq!(
            ignored,
            ["template", "owner", "connection limit", "tablespace"]
        );
    }

    #[test]
    fn alter_is_rebuilt_after_the_parsed_name_whatever_comments_hide() {
        let Some(Action::DatabaseLevel { name, prefix, rest }) =
            classify(b"ALTER /* x */ DATABASE victim /* y */ OWNER TO bob;")
        else {
            panic!("not an ALTER DATABASE");
        };
        assert_eq!(
            (name.as_str(), prefix.as_str()),
            ("victim", "ALTER DATABASE")
        );
        assert_eq!(rest, " /* y */ OWNER TO bob;");
    }

    #[test]
    fn alter_may_not_rename_or_move_the_database() {
        for sql in [
            "ALTER DATABASE victim RENAME TO other;",
            "ALTER DATABASE victim SET TABLESPACE ts;",
        ] {
            assert!(
                matches!(classify(sql.as_bytes()), Some(Action::Refuse(_))),
                "{sql}"
            );
        }
        let property = b"ALTER DATABASE shop WITH IS_TEMPLATE = true;";
        assert!(matches!(classify(property), Some(Action::Skip(_))));
    }

    #[test]
    fn comments_need_their_is() {
        let Some(Action::DatabaseLevel { rest, .. }) =
            classify(b"COMMENT ON DATABASE \"Shop\" IS 'the shop';")
        else {
            panic!("not a COMMENT ON DATABASE");
        };
        assert_eq!(rest, " IS 'the shop';");
    }
}
