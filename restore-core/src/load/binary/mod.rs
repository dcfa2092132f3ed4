//! COPY rows in PostgreSQL's binary format, for the server to take in at less cost.
//!
//! A dump's COPY rows are text. The server splits each line at tabs, undoes the backslash
//! escapes and runs every value through its type's input function; for timestamps, numbers,
//! uuids and bytea that parsing is a third of what loading a table costs it. In the binary
//! format the same values arrive ready to store. This module rewrites a batch of text rows in
//! that format when the result is the same row for certain, and declines otherwise:
//!
//! - a table is converted only when every column has a type whose binary input checks what its
//!   text input checks ([`ColumnCodec::for_type`]); any other table stays text;
//! - each value is converted only in the forms the server writes itself ([`values`]);
//! - anything the text reader treats specially — a literal carriage return, `\.`, a
//!   backslash before a tab or line end, an octal or hex escape that yields a byte the server
//!   would check against the encoding — leaves the batch as it is.
//!
//! A declined batch is loaded as text like any other, so whatever the server would have said
//! of it, it still says.

mod columns;
mod values;

use std::sync::Arc;

use bytes::Bytes;
use memchr::{memchr, memchr3};
use tokio::sync::oneshot;

pub(crate) use columns::BinaryCopy;

/// PostgreSQL's type OIDs, fixed for the built-in types.
mod oid {
    pub(super) const BOOL: u32 = 16;
    pub(super) const BYTEA: u32 = 17;
    pub(super) const INT8: u32 = 20;
    pub(super) const INT2: u32 = 21;
    pub(super) const INT4: u32 = 23;
    pub(super) const TEXT: u32 = 25;
    pub(super) const JSON: u32 = 114;
    pub(super) const FLOAT4: u32 = 700;
    pub(super) const FLOAT8: u32 = 701;
    pub(super) const BPCHAR: u32 = 1042;
    pub(super) const VARCHAR: u32 = 1043;
    pub(super) const DATE: u32 = 1082;
    pub(super) const TIMESTAMP: u32 = 1114;
    pub(super) const TIMESTAMPTZ: u32 = 1184;
    pub(super) const NUMERIC: u32 = 1700;
    pub(super) const UUID: u32 = 2950;
    pub(super) const JSONB: u32 = 3802;
}

/// How one column's values are written in the binary format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnCodec {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Date,
    Timestamp,
    TimestampTz,
    Uuid,
    Bytea,
    /// text, varchar, char(n), json and enum labels: the value's own bytes.
    Text,
    Jsonb,
}

impl ColumnCodec {
    /// The codec for a column of the built-in type `oid`, or of an enum (`is_enum`), or `None`
    /// when the table's rows must stay text. A domain column takes its base type's codec: its
    /// receive function checks the domain's constraints as its input function does.
    ///
    /// Left out on purpose: `name` (its text input truncates long values, its binary input
    /// refuses them), `oid` (its text input takes negative numbers), and every type whose
    /// binary form is more than a plain encoding of its text (arrays, ranges, composites,
    /// intervals, network addresses, geometric types, extensions' types).
    pub(crate) fn for_type(oid: u32, is_enum: bool) -> Option<ColumnCodec> {
        if is_enum {
            return Some(ColumnCodec::Text);
        }
        Some(match oid {
            oid::BOOL => ColumnCodec::Bool,
            oid::INT2 => ColumnCodec::Int2,
            oid::INT4 => ColumnCodec::Int4,
            oid::INT8 => ColumnCodec::Int8,
            oid::FLOAT4 => ColumnCodec::Float4,
            oid::FLOAT8 => ColumnCodec::Float8,
            oid::NUMERIC => ColumnCodec::Numeric,
            oid::DATE => ColumnCodec::Date,
            oid::TIMESTAMP => ColumnCodec::Timestamp,
            oid::TIMESTAMPTZ => ColumnCodec::TimestampTz,
            oid::UUID => ColumnCodec::Uuid,
            oid::BYTEA => ColumnCodec::Bytea,
            oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::JSON => ColumnCodec::Text,
            oid::JSONB => ColumnCodec::Jsonb,
            _ => return None,
        })
    }

    /// Where the field starting `rest` stops: at its tab, its newline or its first backslash.
    /// Numbers, dates and uuids are a few bytes long, for which a plain loop beats `memchr`'s
    /// set-up; text is searched with it.
    fn field_stop(self, rest: &[u8]) -> Option<usize> {
        match self {
            ColumnCodec::Text | ColumnCodec::Jsonb | ColumnCodec::Bytea => {
                memchr3(b'\t', b'\n', b'\\', rest)
            }
            _ => rest
                .iter()
                .position(|&c| c == b'\t' || c == b'\n' || c == b'\\'),
        }
    }

    fn encode(self, text: &[u8], out: &mut Vec<u8>) -> Option<()> {
        match self {
            ColumnCodec::Bool => values::bool(text, out),
            ColumnCodec::Int2 => values::int2(text, out),
            ColumnCodec::Int4 => values::int4(text, out),
            ColumnCodec::Int8 => values::int8(text, out),
            ColumnCodec::Float4 => values::float4(text, out),
            ColumnCodec::Float8 => values::float8(text, out),
            ColumnCodec::Numeric => values::numeric(text, out),
            ColumnCodec::Date => values::date(text, out),
            ColumnCodec::Timestamp => values::timestamp(text, out),
            ColumnCodec::TimestampTz => values::timestamptz(text, out),
            ColumnCodec::Uuid => values::uuid(text, out),
            ColumnCodec::Bytea => values::bytea(text, out),
            ColumnCodec::Text => values::text(text, out),
            ColumnCodec::Jsonb => values::jsonb(text, out),
        }
    }
}

/// The start of a binary COPY stream: the signature, no flags, no header extension.
pub(crate) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The end of a binary COPY stream: a row of -1 fields.
pub(crate) const TRAILER: &[u8] = &[0xff, 0xff];

/// Converts `rows` on `pool`, off the runtime that drives the connections. The answer is the
/// rows in the binary format, or `None` when they are to be sent as text.
pub(crate) fn convert_on(
    pool: &rayon::ThreadPool,
    codec: Arc<RowCodec>,
    rows: Bytes,
) -> oneshot::Receiver<Option<Bytes>> {
    let (answer, converted) = oneshot::channel();
    pool.spawn(move || {
        // A fault in the conversion must not take the process down with it: the rows then
        // simply go as text.
        let binary = std::panic::catch_unwind(|| {
            let mut out = Vec::new();
            codec.convert(&rows, &mut out).map(|()| Bytes::from(out))
        });
        // The worker that asked may be gone with its restore; then nobody needs the rows.
        let _ = answer.send(binary.ok().flatten());
    });
    converted
}

/// The columns of one COPY block, in the order its rows hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowCodec {
    columns: Vec<ColumnCodec>,
}

impl RowCodec {
    /// A codec for rows of `columns`; `None` for none (a COPY with no columns stays text).
    pub(crate) fn new(columns: Vec<ColumnCodec>) -> Option<RowCodec> {
        let fits = !columns.is_empty() && i16::try_from(columns.len()).is_ok();
        fits.then_some(RowCodec { columns })
    }

    /// Appends `rows` (whole text rows, each ending in `\n`) to `out` in the binary format, or
    /// returns `None`, with `out` as it was, when any of them must be read by the server as
    /// text.
    pub(crate) fn convert(&self, rows: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let start = out.len();
        let converted = self.convert_rows(rows, out);
        if converted.is_none() {
            out.truncate(start);
        }
        converted
    }

    fn convert_rows(&self, rows: &[u8], out: &mut Vec<u8>) -> Option<()> {
        // A carriage return is either a line end other than `\n` or data the server refuses.
        if memchr(b'\r', rows).is_some() || rows.last().is_some_and(|&c| c != b'\n') {
            return None;
        }
        out.reserve(rows.len() + rows.len() / 4);
        let field_count = (self.columns.len() as i16).to_be_bytes();
        let mut unescaped = Vec::new();
        let mut at = 0;
        while at < rows.len() {
            out.extend_from_slice(&field_count);
            for (index, codec) in self.columns.iter().enumerate() {
                let rest = &rows[at..];
                let stop = codec.field_stop(rest)?;
                let end = if rest[stop] != b'\\' {
                    codec.encode(&rest[..stop], out)?;
                    stop
                } else if stop == 0 && rest.starts_with(b"\\N") && is_delimiter(rest.get(2)) {
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                    2
                } else if let Some(end) = (*codec == ColumnCodec::Bytea && stop == 0)
                    .then(|| values::bytea_field(rest, out))
                    .flatten()
                {
                    end
                } else {
                    let end = unescape(rest, stop, &mut unescaped)?;
                    codec.encode(&unescaped, out)?;
                    end
                };
                let last = index + 1 == self.columns.len();
                if rest[end] != if last { b'\n' } else { b'\t' } {
                    return None;
                }
                at += end + 1;
            }
        }
        Some(())
    }
}

fn is_delimiter(c: Option<&u8>) -> bool {
    matches!(c, Some(b'\t' | b'\n'))
}

/// Undoes COPY's escapes in the field starting `rest`, whose first backslash is at `first`,
/// into `value`. Returns where the field ends (its tab or newline), or `None` for anything the
/// server's text reader treats as more than an escape.
fn unescape(rest: &[u8], first: usize, value: &mut Vec<u8>) -> Option<usize> {
    value.clear();
    value.extend_from_slice(&rest[..first]);
    let mut at = first;
    loop {
        let stop = at + memchr3(b'\t', b'\n', b'\\', &rest[at..])?;
        value.extend_from_slice(&rest[at..stop]);
        if rest[stop] != b'\\' {
            return Some(stop);
        }
        let escaped = *rest.get(stop + 1)?;
        at = stop + 2;
        let byte = match escaped {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            // Octal and hex escapes can make any byte, which the server checks against the
            // encoding; only plain ASCII is taken here.
            b'0'..=b'7' => {
                let digits = rest[stop + 1..]
                    .iter()
                    .take(3)
                    .take_while(|c| matches!(c, b'0'..=b'7'))
                    .count();
                at = stop + 1 + digits;
                let value = rest[stop + 1..at]
                    .iter()
                    .fold(0u32, |value, &c| value * 8 + u32::from(c - b'0'));
                ascii((value & 0xff) as u8)?
            }
            b'x' if rest.get(stop + 2).is_some_and(u8::is_ascii_hexdigit) => {
                let digits = rest[stop + 2..]
                    .iter()
                    .take(2)
                    .take_while(|c| c.is_ascii_hexdigit())
                    .count();
                at = stop + 2 + digits;
                let text = std::str::from_utf8(&rest[stop + 2..at]).ok()?;
                ascii(u8::from_str_radix(text, 16).ok()?)?
            }
            // `\.` may end the data, and a backslash before a line end continues the line.
            b'.' | b'\t' | b'\n' => return None,
            other => other,
        };
        value.push(byte);
    }
}

/// A byte made by an escape, when it needs no encoding check: ASCII other than NUL.
fn ascii(byte: u8) -> Option<u8> {
    (byte != 0 && byte.is_ascii()).then_some(byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(columns: &[ColumnCodec]) -> RowCodec {
        RowCodec::new(columns.to_vec()).expect("columns")
    }

    fn convert(columns: &[ColumnCodec], rows: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        codec(columns).convert(rows.as_bytes(), &mut out)?;
        Some(out)
    }

    /// A binary row built by hand: its fields, `None` for NULL.
    fn row(fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = (fields.len() as i16).to_be_bytes().to_vec();
        for field in fields {
            match field {
                Some(bytes) => {
                    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                    out.extend_from_slice(bytes);
                }
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        out
    }

    use ColumnCodec::{Int4, Text};

    #[test]
    fn rows_become_field_counts_lengths_and_values() {
        let out = convert(&[Int4, Text], "1\tone\n2\t\n").unwrap();
        let mut expected = row(&[Some(&1i32.to_be_bytes()), Some(b"one")]);
        expected.extend(row(&[Some(&2i32.to_be_bytes()), Some(b"")]));
        assert_eq!(out, expected);
    }

    #[test]
    fn backslash_n_alone_is_null_and_inside_a_value_is_n() {
        let out = convert(&[Text, Text, Text], "\\N\ta\\Nb\t\\N\n").unwrap();
        assert_eq!(out, row(&[None, Some(b"aNb"), None]));
        assert_eq!(
            convert(&[Text], "\\\\N\n").unwrap(),
            row(&[Some(b"\\N")]),
            "an escaped backslash then N is text"
        );
    }

    #[test]
    fn escapes_are_undone_as_the_server_undoes_them() {
        let rows = "a\\tb\\nc\\\\d\\re\\bf\\fg\\vh\\qi\\101\\x41\\x4g\\xz\\7\n";
        let out = convert(&[Text], rows).unwrap();
        let expected = b"a\tb\nc\\d\re\x08f\x0cg\x0bhqiAA\x04gxz\x07";
        assert_eq!(out, row(&[Some(expected)]));
    }

    #[test]
    fn what_the_text_reader_treats_specially_is_left_to_it() {
        for rows in [
            "a\r\n",    // a line end other than \n
            "a\\.\n",   // may end the data
            "a\\\tb\n", // a backslash before the delimiter
            "a\\\nb\n", // a backslash before the line end
            "\\0\n",    // makes a NUL byte
            "\\351\n",  // makes a byte above ASCII
            "\\xe9\n",  // likewise in hex
            "a",        // no line end
        ] {
            assert_eq!(convert(&[Text], rows), None, "{rows:?}");
        }
    }

    #[test]
    fn a_row_with_the_wrong_number_of_fields_is_left_to_the_server() {
        assert_eq!(convert(&[Int4, Text], "1\n"), None);
        assert_eq!(convert(&[Int4, Text], "1\ta\tb\n"), None);
        assert_eq!(convert(&[Int4], "1\ta\n"), None);
    }

    #[test]
    fn a_declined_batch_leaves_the_output_as_it_was() {
        let mut out = b"earlier".to_vec();
        let rows = b"1\n2\nthree\n";
        assert_eq!(codec(&[Int4]).convert(rows, &mut out), None);
        assert_eq!(out, b"earlier");
    }

    #[test]
    fn escaped_values_reach_their_codec_unescaped() {
        let out = convert(
            &[ColumnCodec::Bytea, ColumnCodec::Jsonb],
            "\\\\x0aff\t{\"a\":\"\\\\\"}\n",
        );
        let expected = row(&[Some(&[0x0a, 0xff]), Some(b"\x01{\"a\":\"\\\"}")]);
        assert_eq!(out.unwrap(), expected);
    }

    #[test]
    fn bytea_as_copy_writes_it_is_decoded_in_place_and_anything_else_unescaped_first() {
        use ColumnCodec::Bytea;
        let expected = row(&[Some(&[0xde, 0xad]), None]);
        assert_eq!(
            convert(&[Bytea, Bytea], "\\\\xDEad\t\\N\n").unwrap(),
            expected
        );
        assert_eq!(
            convert(&[Bytea], "\\\\x0\n"),
            None,
            "an odd number of digits"
        );
        assert_eq!(
            convert(&[Bytea], "\\\\x0\\x41\n"),
            Some(row(&[Some(&[0x0a])])),
            "an escape among the digits: \\x0 then \\x41, which is A"
        );
        assert_eq!(convert(&[Bytea], "\\\\000\n"), None, "the escape format");
    }

    #[test]
    fn only_types_read_alike_in_both_forms_have_a_codec() {
        assert_eq!(
            ColumnCodec::for_type(oid::TIMESTAMPTZ, false),
            Some(ColumnCodec::TimestampTz)
        );
        assert_eq!(ColumnCodec::for_type(12345, true), Some(Text), "an enum");
        for excluded in [19, 26, 1186, 869, 1007, 3904] {
            assert_eq!(
                ColumnCodec::for_type(excluded, false),
                None,
                "oid {excluded}"
            );
        }
        assert_eq!(RowCodec::new(vec![]), None);
    }
}
