//! How quoted text opens: string prefixes and dollar-quote delimiters.
//!
//! Both the scanner, which finds where statements end, and the classifier, which reads a few
//! complete statements, must agree on where a quote begins and whether backslashes escape in
//! it; these rules live here once.

/// Whether `byte` can continue an unquoted identifier (PostgreSQL allows `$` after the first).
pub(super) fn is_ident_byte(byte: u8) -> bool {
    // A table: the scanner asks this of every byte of the words it reads.
    IDENT_BYTES[usize::from(byte)]
}

static IDENT_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
        byte += 1;
    }
    table
};

/// Whether a `'` preceded by `before` opens a string whose backslashes escape: `E'…'` always,
/// `U&'…'`, `B'…'` and `X'…'` never, other strings when `standard_conforming_strings` is off.
pub(super) fn string_escapes(before: &[u8], conforming: bool) -> bool {
    let standalone =
        |prefix: usize| before.len() == prefix || !is_ident_byte(before[before.len() - prefix - 1]);
    match before {
        [.., b'E' | b'e'] if standalone(1) => true,
        [.., b'B' | b'b' | b'X' | b'x'] if standalone(1) => false,
        [.., b'U' | b'u', b'&'] if standalone(2) => false,
        _ => !conforming,
    }
}

/// The outcome of looking for a dollar-quote delimiter at a `$`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Delimiter {
    /// Not a dollar quote: a parameter such as `$1`, or a `$` inside an identifier.
    None,
    /// A delimiter `$tag$` ending before this offset.
    Found(usize),
    /// The buffer ends before the tag does.
    Undecided,
}

/// Looks for a dollar-quote delimiter at `buf[at]`, which holds a `$`.
pub(super) fn dollar_delimiter(buf: &[u8], at: usize, eof: bool) -> Delimiter {
    if at > 0 && is_ident_byte(buf[at - 1]) {
        return Delimiter::None;
    }
    let tag = &buf[at + 1..];
    if tag.first().is_some_and(u8::is_ascii_digit) {
        return Delimiter::None;
    }
    let len = tag.iter().position(|&b| b == b'$' || !is_ident_byte(b));
    match len {
        Some(len) if tag[len] == b'$' => Delimiter::Found(at + len + 2),
        Some(_) => Delimiter::None,
        None if eof => Delimiter::None,
        None => Delimiter::Undecided,
    }
}
