//! The dump's session state, replayed on every connection.
//!
//! pg_dump sets `search_path`, `standard_conforming_strings`, `check_function_bodies` and
//! friends at the top of the file and changes some of them along the way. Statements run on
//! the control connection see those settings directly; a worker that loads COPY batches or
//! builds an index must see the same ones, so every setting is remembered here and a worker
//! replays the current list whenever it is behind.

use std::borrow::Cow;
use std::sync::Arc;

use encoding_rs::Encoding;

use crate::error::{RestoreError, Result};

/// The settings in force, as the statements that made them, and the dump's client encoding.
#[derive(Debug, Clone, Default)]
pub(crate) struct Session {
    statements: Vec<(String, String)>,
    generation: u64,
    encoding: Option<ClientEncoding>,
}

/// A snapshot a worker compares with what it last applied.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionSnapshot {
    pub(crate) generation: u64,
    pub(crate) statements: Vec<String>,
    pub(crate) encoding: Option<ClientEncoding>,
    /// The dump itself sets `maintenance_work_mem`: the engine then leaves it as set.
    pub(crate) sets_sort_memory: bool,
}

/// A client encoding other than UTF-8: the server's name for it and the decoder for
/// statement text.
#[derive(Debug, Clone)]
pub(crate) struct ClientEncoding {
    pub(crate) server_name: String,
    decoder: Decoder,
}

#[derive(Debug, Clone, Copy)]
enum Decoder {
    /// ISO 8859-1, byte for code point. The WHATWG tables behind encoding_rs read the label
    /// `iso-8859-1` as windows-1252, which differs in 0x80–0x9F.
    Latin1,
    Table(&'static Encoding),
}

impl Session {
    /// Remembers a setting statement for `name`, replacing an earlier one of the same name.
    pub(crate) fn record(&mut self, name: &str, sql: &str) {
        if name == "all" && sql.trim_start().to_ascii_lowercase().starts_with("reset") {
            self.statements.clear();
        }
        self.statements.retain(|(known, _)| known != name);
        self.statements.push((name.to_owned(), sql.to_owned()));
        self.generation += 1;
    }

    /// Goes back to `earlier`, as a rolled-back transaction block takes its settings with it.
    /// The generation still moves on, so that no worker takes the old settings for current.
    pub(crate) fn restore(&mut self, earlier: Session) {
        let generation = self.generation.max(earlier.generation) + 1;
        *self = Session {
            generation,
            ..earlier
        };
    }

    /// Applies the dump's `client_encoding`. UTF-8 and SQL_ASCII need no conversion.
    pub(crate) fn set_encoding(&mut self, name: &str) -> Result<()> {
        let upper = name
            .trim()
            .trim_matches('\'')
            .to_ascii_uppercase()
            .replace(['-', '_'], "");
        self.encoding = match upper.as_str() {
            // DEFAULT is the server's encoding: the engine's own connections are UTF-8.
            "UTF8" | "UNICODE" | "SQLASCII" | "DEFAULT" => None,
            "LATIN1" => Some(ClientEncoding {
                server_name: "LATIN1".into(),
                decoder: Decoder::Latin1,
            }),
            other => {
                let label = encoding_label(other).ok_or_else(|| {
                    RestoreError::failed(format!("client_encoding {name} is not supported"))
                })?;
                let table = Encoding::for_label(label.as_bytes()).ok_or_else(|| {
                    RestoreError::failed(format!("client_encoding {name} is not supported"))
                })?;
                Some(ClientEncoding {
                    server_name: other.to_owned(),
                    decoder: Decoder::Table(table),
                })
            }
        };
        self.generation += 1;
        Ok(())
    }

    /// True while the dump's text is UTF-8 (or SQL_ASCII, which is taken as it is).
    pub(crate) fn is_utf8(&self) -> bool {
        self.encoding.is_none()
    }

    /// The dump's client encoding, when it is not UTF-8.
    pub(crate) fn encoding(&self) -> Option<&ClientEncoding> {
        self.encoding.as_ref()
    }

    /// What workers need to catch up.
    pub(crate) fn snapshot(&self) -> Arc<SessionSnapshot> {
        Arc::new(SessionSnapshot {
            generation: self.generation,
            statements: self.statements.iter().map(|(_, sql)| sql.clone()).collect(),
            encoding: self.encoding.clone(),
            sets_sort_memory: self
                .statements
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("maintenance_work_mem")),
        })
    }

    /// The setting statements in order, for a connection opened late.
    pub(crate) fn statements(&self) -> impl Iterator<Item = &str> {
        self.statements.iter().map(|(_, sql)| sql.as_str())
    }

    /// Statement bytes as text the server can be sent over a UTF-8 session.
    pub(crate) fn text<'a>(&self, sql: &'a [u8]) -> std::result::Result<Cow<'a, str>, String> {
        match &self.encoding {
            None => std::str::from_utf8(sql).map(Cow::Borrowed).map_err(|err| {
                format!(
                    "invalid UTF-8 at byte {} of the statement",
                    err.valid_up_to()
                )
            }),
            Some(ClientEncoding {
                decoder: Decoder::Latin1,
                ..
            }) => Ok(Cow::Owned(
                sql.iter().map(|&byte| char::from(byte)).collect(),
            )),
            Some(ClientEncoding {
                decoder: Decoder::Table(table),
                server_name,
            }) => table
                .decode_without_bom_handling_and_without_replacement(sql)
                .ok_or_else(|| format!("the statement is not valid {server_name}")),
        }
    }
}

/// Maps PostgreSQL's encoding names (upper case, without `_` and `-`) to WHATWG labels.
fn encoding_label(name: &str) -> Option<String> {
    let label = match name {
        "LATIN2" => "iso-8859-2",
        "LATIN3" => "iso-8859-3",
        "LATIN4" => "iso-8859-4",
        "LATIN5" => "iso-8859-9",
        "LATIN6" => "iso-8859-10",
        "LATIN7" => "iso-8859-13",
        "LATIN8" => "iso-8859-14",
        "LATIN9" => "iso-8859-15",
        "LATIN10" => "iso-8859-16",
        "KOI8R" | "KOI8" => "koi8-r",
        "KOI8U" => "koi8-u",
        "EUCJP" => "euc-jp",
        "EUCKR" => "euc-kr",
        "SJIS" | "SHIFTJIS" => "shift_jis",
        "GBK" => "gbk",
        "GB18030" => "gb18030",
        "BIG5" => "big5",
        "WIN866" => "ibm866",
        other => {
            if let Some(page) = other
                .strip_prefix("WIN")
                .or_else(|| other.strip_prefix("CP"))
            {
                return Some(format!("windows-{page}"));
            }
            if let Some(part) = other.strip_prefix("ISO8859") {
                return Some(format!("iso-8859-{part}"));
            }
            return None;
        }
    };
    Some(label.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_setting_replaces_an_earlier_one_of_the_same_name() {
        let mut session = Session::default();
        session.record("search_path", "SET search_path = a;");
        session.record("lock_timeout", "SET lock_timeout = 0;");
        session.record("search_path", "SET search_path = b;");
        let snapshot = session.snapshot();
        assert_eq!(
            snapshot.statements,
            ["SET lock_timeout = 0;", "SET search_path = b;"]
        );
        assert_eq!(snapshot.generation, 3);
    }

    #[test]
    fn latin1_statements_become_utf8_text() {
        let mut session = Session::default();
        session.set_encoding("'LATIN1'").unwrap();
        assert_eq!(
            session.text(b"SELECT '\xe9t\xe9';").unwrap(),
            "SELECT 'été';"
        );
        assert_eq!(
            session.snapshot().encoding.as_ref().unwrap().server_name,
            "LATIN1"
        );
    }

    #[test]
    fn latin1_is_iso_8859_1_not_windows_1252() {
        let mut session = Session::default();
        session.set_encoding("LATIN1").unwrap();
        assert_eq!(
            session.text(b"'\x80\x9f\xe9'").unwrap(),
            "'\u{80}\u{9f}\u{e9}'"
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_in_a_utf8_dump() {
        let session = Session::default();
        assert!(session.text(b"SELECT '\xff';").is_err());
    }

    #[test]
    fn unknown_encodings_are_refused() {
        assert!(Session::default().set_encoding("MULE_INTERNAL").is_err());
    }
}
