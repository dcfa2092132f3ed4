//! One value's text, as COPY reads it, in PostgreSQL's binary form.
//!
//! Each encoder accepts only the text that the server's input function reads one way whatever
//! the session's settings, and only forms the server writes itself (`COPY … TO`, which pg_dump
//! uses; for floats, any plain spelling `strtod` reads): `-12`, `3.50`,
//! `2024-01-31 12:00:00.5+01`, `\x0aff`. Anything else — surrounding
//! spaces, `+7`, `1e3` for a numeric, `infinity`, a date before year 1 — returns `None`, and the
//! rows holding it are sent as text, for the server to read or refuse as it always would. The
//! binary form leaves what the text input does after parsing to the server as well: a typmod
//! (`numeric(12,2)`, `varchar(20)`, `timestamptz(0)`) is applied by the type's receive
//! function exactly as by its input function, and text is checked against the encoding.

/// Days from 4714-11-24 BC (the Julian day origin) to 2000-01-01, PostgreSQL's epoch.
const POSTGRES_EPOCH_JDATE: i64 = 2_451_545;
const USECS_PER_SEC: i64 = 1_000_000;
const USECS_PER_DAY: i64 = 86_400 * USECS_PER_SEC;
/// The largest time zone offset the server accepts, in hours.
const MAX_OFFSET_HOURS: i64 = 15;
/// Decimal digits above which a numeric is left to the server: far beyond any declared
/// precision (1000), well inside what the binary form can carry.
const MAX_NUMERIC_DIGITS: usize = 4000;

/// Appends a value's length and bytes.
fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Parses `-?[0-9]+` without overflow.
fn integer(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut value: i64 = 0;
    if digits.len() < 19 {
        // Eighteen digits cannot overflow.
        for &digit in digits {
            let digit = digit.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            value = value * 10 + i64::from(digit);
        }
        return Some(if negative { -value } else { value });
    }
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        // Accumulating downwards reaches i64::MIN, which has no positive twin.
        value = value
            .checked_mul(10)?
            .checked_sub(i64::from(digit - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

pub(super) fn int2(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let value = i16::try_from(integer(text)?).ok()?;
    put(out, &value.to_be_bytes());
    Some(())
}

pub(super) fn int4(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let value = i32::try_from(integer(text)?).ok()?;
    put(out, &value.to_be_bytes());
    Some(())
}

pub(super) fn int8(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    put(out, &integer(text)?.to_be_bytes());
    Some(())
}

pub(super) fn bool(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let value = match text {
        b"t" => 1,
        b"f" => 0,
        _ => return None,
    };
    put(out, &[value]);
    Some(())
}

/// A float's text when it is plain decimal or exponent notation (`0.1`, `-1e+300`, and also
/// `+1`, `.5` and `5.`, which the server reads alike though it does not write them). The server
/// reads it with `strtod`/`strtof`, which round correctly, as Rust's parser does, so both give
/// the same bits. The server refuses a value that overflows, or that underflows to zero; so is
/// it here.
fn float_text(text: &[u8]) -> Option<&str> {
    let plain = !text.is_empty()
        && text
            .iter()
            .all(|&c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'));
    if !plain {
        return None;
    }
    std::str::from_utf8(text).ok()
}

/// True when a float that parsed to zero was written as zero (`0`, `-0.0`, `0e5`).
fn written_as_zero(text: &str) -> bool {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    mantissa.bytes().all(|c| !c.is_ascii_digit() || c == b'0')
}

pub(super) fn float4(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let text = float_text(text)?;
    let value: f32 = text.parse().ok()?;
    if !value.is_finite() || (value == 0.0 && !written_as_zero(text)) {
        return None;
    }
    put(out, &value.to_bits().to_be_bytes());
    Some(())
}

pub(super) fn float8(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let text = float_text(text)?;
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() || (value == 0.0 && !written_as_zero(text)) {
        return None;
    }
    put(out, &value.to_bits().to_be_bytes());
    Some(())
}

/// `-?[0-9]+(\.[0-9]+)?` as the binary numeric: base-10000 digits aligned on the decimal
/// point, the weight of the first, the sign and the display scale (the digits written after the
/// point). The server strips zero digits and applies the column's typmod, as for text.
pub(super) fn numeric(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let (negative, unsigned) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (whole, fraction) = match memchr::memchr(b'.', unsigned) {
        Some(point) => (&unsigned[..point], &unsigned[point + 1..]),
        None => (unsigned, &[][..]),
    };
    let written_point = whole.len() < unsigned.len();
    let all_digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    if whole.is_empty()
        || (written_point && fraction.is_empty())
        || !all_digits(whole)
        || !all_digits(fraction)
        || whole.len() + fraction.len() > MAX_NUMERIC_DIGITS
    {
        return None;
    }

    // Groups of four decimal digits: the whole part is padded on the left to a multiple of
    // four, the fraction on the right.
    let whole_groups = whole.len().div_ceil(4);
    let ndigits = whole_groups + fraction.len().div_ceil(4);
    let length = 8 + 2 * ndigits;
    out.reserve(4 + length);
    out.extend_from_slice(&(length as i32).to_be_bytes());
    out.extend_from_slice(&(ndigits as u16).to_be_bytes());
    out.extend_from_slice(&((whole_groups as i16) - 1).to_be_bytes());
    let sign: u16 = if negative { 0x4000 } else { 0 };
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(fraction.len() as u16).to_be_bytes());
    let mut group = 0u16;
    let mut in_group = whole_groups * 4 - whole.len();
    for &digit in whole.iter().chain(fraction) {
        group = group * 10 + u16::from(digit - b'0');
        in_group += 1;
        if in_group == 4 {
            out.extend_from_slice(&group.to_be_bytes());
            (group, in_group) = (0, 0);
        }
    }
    if in_group > 0 {
        group *= 10u16.pow(4 - in_group as u32);
        out.extend_from_slice(&group.to_be_bytes());
    }
    Some(())
}

/// Reads exactly `N` ASCII digits at the start of `text`.
fn digits<const N: usize>(text: &[u8]) -> Option<i64> {
    let part = text.get(..N)?;
    part.iter().try_fold(0i64, |value, &c| {
        c.is_ascii_digit().then(|| value * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The Julian day of a Gregorian date, as the server computes it.
fn julian_day(year: i64, month: i64, day: i64) -> i64 {
    let (month, year) = if month > 2 {
        (month + 1, year + 4800)
    } else {
        (month + 13, year + 4799)
    };
    let century = year / 100;
    year * 365 - 32167 + year / 4 - century + century / 4 + 7834 * month / 256 + day
}

/// `YYYY-MM-DD` with a year from 1 to 9999: days since 2000-01-01, and the rest of the text.
fn date_part(text: &[u8]) -> Option<(i64, &[u8])> {
    let year = digits::<4>(text)?;
    let month = digits::<2>(text.get(5..)?)?;
    let day = digits::<2>(text.get(8..)?)?;
    if text[4] != b'-' || text[7] != b'-' || year == 0 || !(1..=12).contains(&month) {
        return None;
    }
    let month_days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month as usize - 1];
    let month_days = month_days + i64::from(month == 2 && is_leap(year));
    if day == 0 || day > month_days {
        return None;
    }
    Some((
        julian_day(year, month, day) - POSTGRES_EPOCH_JDATE,
        &text[10..],
    ))
}

/// ` HH:MM:SS` with an optional fraction of one to six digits: microseconds since midnight,
/// and the rest of the text.
fn time_part(text: &[u8]) -> Option<(i64, &[u8])> {
    let hour = digits::<2>(text.get(1..)?)?;
    let minute = digits::<2>(text.get(4..)?)?;
    let second = digits::<2>(text.get(7..)?)?;
    if text[0] != b' ' || text[3] != b':' || text[6] != b':' {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut micros = ((hour * 60 + minute) * 60 + second) * USECS_PER_SEC;
    let mut rest = &text[9..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let count = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if count == 0 || count > 6 {
            return None;
        }
        let mut value = 0;
        for &c in &fraction[..count] {
            value = value * 10 + i64::from(c - b'0');
        }
        micros += value * 10i64.pow(6 - count as u32);
        rest = &fraction[count..];
    }
    Some((micros, rest))
}

pub(super) fn date(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let (days, rest) = date_part(text)?;
    if !rest.is_empty() {
        return None;
    }
    put(out, &(days as i32).to_be_bytes());
    Some(())
}

pub(super) fn timestamp(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let (days, rest) = date_part(text)?;
    let (micros, rest) = time_part(rest)?;
    if !rest.is_empty() {
        return None;
    }
    put(out, &(days * USECS_PER_DAY + micros).to_be_bytes());
    Some(())
}

/// A timestamp with its offset east of UTC, `+HH`, `+HH:MM` or `+HH:MM:SS`: microseconds
/// since 2000-01-01 00:00 UTC, whatever the session's time zone.
pub(super) fn timestamptz(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let (days, rest) = date_part(text)?;
    let (micros, rest) = time_part(rest)?;
    let (sign, rest) = match rest.split_first()? {
        (b'+', rest) => (1, rest),
        (b'-', rest) => (-1, rest),
        _ => return None,
    };
    let hours = digits::<2>(rest)?;
    let (minutes, seconds) = match &rest[2..] {
        [] => (0, 0),
        [b':', m1, m2] => (digits::<2>(&[*m1, *m2])?, 0),
        [b':', m1, m2, b':', s1, s2] => (digits::<2>(&[*m1, *m2])?, digits::<2>(&[*s1, *s2])?),
        _ => return None,
    };
    if hours > MAX_OFFSET_HOURS || minutes > 59 || seconds > 59 {
        return None;
    }
    let offset = sign * ((hours * 60 + minutes) * 60 + seconds) * USECS_PER_SEC;
    put(out, &(days * USECS_PER_DAY + micros - offset).to_be_bytes());
    Some(())
}

/// Each byte's value as a hex digit, or `NOT_HEX`.
const HEX: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut c = 0;
    while c < 10 {
        table[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        table[b'a' as usize + c] = 10 + c as u8;
        table[b'A' as usize + c] = 10 + c as u8;
        c += 1;
    }
    table
};
const NOT_HEX: u8 = 0xff;

fn hex_value(c: u8) -> Option<u8> {
    let value = HEX[usize::from(c)];
    (value != NOT_HEX).then_some(value)
}

/// Decodes pairs of hex digits onto `out`; false, with `out` as it was, at the first byte that
/// is not one.
fn decode_hex(hex: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    out.resize(start + hex.len() / 2, 0);
    let mut bad = 0;
    for (byte, pair) in out[start..].iter_mut().zip(hex.chunks_exact(2)) {
        let (high, low) = (HEX[usize::from(pair[0])], HEX[usize::from(pair[1])]);
        bad |= high | low;
        *byte = high << 4 | low;
    }
    // Digits are below 16; NOT_HEX has its high bits set.
    if bad > 15 {
        out.truncate(start);
        return false;
    }
    true
}

/// The canonical `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, in either case.
pub(super) fn uuid(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if text.len() != 36 || [8, 13, 18, 23].iter().any(|&at| text[at] != b'-') {
        return None;
    }
    let mut bytes = [0u8; 16];
    let mut hex = text.iter().filter(|&&c| c != b'-');
    for byte in &mut bytes {
        let high = hex_value(*hex.next()?)?;
        let low = hex_value(*hex.next()?)?;
        *byte = high << 4 | low;
    }
    put(out, &bytes);
    Some(())
}

/// bytea in the hex format, `\x` and an even number of hex digits.
pub(super) fn bytea(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let hex = text.strip_prefix(b"\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let start = out.len();
    out.extend_from_slice(&((hex.len() / 2) as i32).to_be_bytes());
    if !decode_hex(hex, out) {
        out.truncate(start);
        return None;
    }
    Some(())
}

/// A bytea field as COPY writes it, `\\x` and hex digits up to the tab or newline, decoded
/// without undoing the escapes first. Returns where the field ends; `None` when it holds
/// anything else, for the general path to look at.
pub(super) fn bytea_field(rest: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let hex = rest.strip_prefix(b"\\\\x")?;
    let length = hex.iter().position(|&c| HEX[usize::from(c)] == NOT_HEX)?;
    if !matches!(hex[length], b'\t' | b'\n') || length % 2 != 0 {
        return None;
    }
    let start = out.len();
    out.extend_from_slice(&((length / 2) as i32).to_be_bytes());
    if !decode_hex(&hex[..length], out) {
        out.truncate(start);
        return None;
    }
    Some(3 + length)
}

/// text, varchar, char(n), json and enum labels: the bytes themselves.
pub(super) fn text(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    put(out, text);
    Some(())
}

/// jsonb: format version 1, then the JSON text, which the server parses as for text input.
pub(super) fn jsonb(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.extend_from_slice(&(text.len() as i32 + 1).to_be_bytes());
    out.push(1);
    out.extend_from_slice(text);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value bytes an encoder writes after the length, or `None` when it declines.
    fn encoded(encode: fn(&[u8], &mut Vec<u8>) -> Option<()>, text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        encode(text.as_bytes(), &mut out)?;
        let length = i32::from_be_bytes(out[..4].try_into().unwrap());
        assert_eq!(length as usize, out.len() - 4, "length prefix of {text:?}");
        Some(out[4..].to_vec())
    }

    fn be_i64(bytes: Option<Vec<u8>>) -> i64 {
        i64::from_be_bytes(bytes.expect("encoded").try_into().unwrap())
    }

    #[test]
    fn integers_take_only_plain_decimal_in_range() {
        assert_eq!(encoded(int2, "-32768"), Some(vec![0x80, 0]));
        assert_eq!(encoded(int4, "007"), Some(7i32.to_be_bytes().to_vec()));
        assert_eq!(be_i64(encoded(int8, "-9223372036854775808")), i64::MIN);
        assert_eq!(be_i64(encoded(int8, "9223372036854775807")), i64::MAX);
        for text in ["32768", "", "-", "+1", " 1", "1 ", "1_000", "0x10", "1.0"] {
            assert_eq!(encoded(int2, text), None, "{text:?}");
        }
        assert_eq!(encoded(int8, "9223372036854775808"), None);
        assert_eq!(encoded(int4, "2147483648"), None);
    }

    #[test]
    fn booleans_are_the_letters_copy_writes() {
        assert_eq!(encoded(bool, "t"), Some(vec![1]));
        assert_eq!(encoded(bool, "f"), Some(vec![0]));
        for text in ["true", "T", "1", "yes", " t"] {
            assert_eq!(encoded(bool, text), None, "{text:?}");
        }
    }

    #[test]
    fn floats_keep_their_exact_bits() {
        let bits = |text| u64::from_be_bytes(encoded(float8, text).unwrap().try_into().unwrap());
        assert_eq!(bits("0.1"), 0.1f64.to_bits());
        assert_eq!(bits("-0"), (-0.0f64).to_bits());
        assert_eq!(bits("1.7976931348623157e+308"), f64::MAX.to_bits());
        assert_eq!(
            bits("5e-324"),
            4.9e-324f64.to_bits(),
            "subnormals are accepted"
        );
        let bits4 = |text| u32::from_be_bytes(encoded(float4, text).unwrap().try_into().unwrap());
        assert_eq!(bits4("3.4028235e+38"), f32::MAX.to_bits());
        for text in [
            "1e400",
            "1e-400",
            "NaN",
            "Infinity",
            "-Infinity",
            "inf",
            "1e",
            "",
            " 1",
        ] {
            assert_eq!(encoded(float8, text), None, "{text:?}");
        }
        assert_eq!(encoded(float4, "1e39"), None, "overflows a float4");
    }

    /// Decodes the binary numeric back to its parts.
    fn numeric_parts(text: &str) -> Option<(u16, i16, u16, u16, Vec<u16>)> {
        let bytes = encoded(numeric, text)?;
        let word = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
        let ndigits = word(0);
        let digits = (0..ndigits as usize).map(|i| word(8 + 2 * i)).collect();
        Some((ndigits, word(2) as i16, word(4), word(6), digits))
    }

    #[test]
    fn numerics_are_base_10000_digits_aligned_on_the_point() {
        assert_eq!(numeric_parts("0"), Some((1, 0, 0, 0, vec![0])));
        assert_eq!(
            numeric_parts("12345.678"),
            Some((3, 1, 0, 3, vec![1, 2345, 6780]))
        );
        assert_eq!(
            numeric_parts("-0.00012"),
            Some((3, 0, 0x4000, 5, vec![0, 1, 2000]))
        );
        assert_eq!(numeric_parts("10000"), Some((2, 1, 0, 0, vec![1, 0])));
        assert_eq!(numeric_parts("1.50"), Some((2, 0, 0, 2, vec![1, 5000])));
        for text in [
            "", "-", ".5", "5.", "1e3", "+1", " 1", "NaN", "Infinity", "1,5", "--1",
        ] {
            assert_eq!(numeric_parts(text), None, "{text:?}");
        }
    }

    #[test]
    fn dates_count_days_from_2000() {
        let days = |text| i32::from_be_bytes(encoded(date, text).unwrap().try_into().unwrap());
        assert_eq!(days("2000-01-01"), 0);
        assert_eq!(days("1999-12-31"), -1);
        assert_eq!(days("2024-02-29"), 8825);
        assert_eq!(days("0001-01-01"), -730119);
        assert_eq!(days("9999-12-31"), 2921939);
        for text in [
            "2023-02-29",
            "1900-02-29",
            "2024-13-01",
            "2024-00-10",
            "0000-01-01",
        ] {
            assert_eq!(encoded(date, text), None, "{text:?}");
        }
        for text in [
            "2024-1-01",
            "24-01-01",
            "infinity",
            "2024-01-01 BC",
            "20240101",
        ] {
            assert_eq!(encoded(date, text), None, "{text:?}");
        }
    }

    #[test]
    fn timestamps_count_microseconds_from_2000() {
        assert_eq!(be_i64(encoded(timestamp, "2000-01-01 00:00:00")), 0);
        assert_eq!(
            be_i64(encoded(timestamp, "2000-01-02 01:02:03.5")),
            USECS_PER_DAY + 3_723_500_000
        );
        assert_eq!(be_i64(encoded(timestamp, "1999-12-31 23:59:59.999999")), -1);
        for text in [
            "2000-01-01 24:00:00",
            "2000-01-01 23:60:00",
            "2000-01-01 23:59:60",
            "2000-01-01 00:00:00.1234567",
            "2000-01-01 00:00:00.",
            "2000-01-01T00:00:00",
            "2000-01-01 00:00",
            "2000-01-01 00:00:00+00",
        ] {
            assert_eq!(encoded(timestamp, text), None, "{text:?}");
        }
    }

    #[test]
    fn timestamps_with_time_zone_are_moved_to_utc_by_their_offset() {
        assert_eq!(be_i64(encoded(timestamptz, "2000-01-01 00:00:00+00")), 0);
        assert_eq!(
            be_i64(encoded(timestamptz, "2000-01-01 05:30:00+05:30")),
            0,
            "India is 5:30 east"
        );
        assert_eq!(
            be_i64(encoded(timestamptz, "1999-12-31 20:00:00-04")),
            0,
            "four hours west"
        );
        assert_eq!(
            be_i64(encoded(timestamptz, "2000-01-01 00:53:28+00:53:28")),
            0,
            "local mean time offsets have seconds"
        );
        for text in [
            "2000-01-01 00:00:00",
            "2000-01-01 00:00:00+16",
            "2000-01-01 00:00:00+0530",
            "2000-01-01 00:00:00+5",
            "2000-01-01 00:00:00 UTC",
            "2000-01-01 00:00:00+00 BC",
            "infinity",
        ] {
            assert_eq!(encoded(timestamptz, text), None, "{text:?}");
        }
    }

    #[test]
    fn uuids_are_sixteen_bytes() {
        let bytes = encoded(uuid, "A0EEBC99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        assert_eq!(hex::encode(bytes), "a0eebc999c0b4ef8bb6d6bb9bd380a11");
        for text in [
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
        ] {
            assert_eq!(encoded(uuid, text), None, "{text:?}");
        }
    }

    #[test]
    fn bytea_takes_the_hex_format_only() {
        assert_eq!(encoded(bytea, "\\x00fFa0"), Some(vec![0, 0xff, 0xa0]));
        assert_eq!(encoded(bytea, "\\x"), Some(vec![]));
        let mut out = b"kept".to_vec();
        assert_eq!(bytea(b"\\x0g", &mut out), None);
        assert_eq!(out, b"kept", "a refused value leaves nothing behind");
        for text in ["\\x0", "abc", "\\000", "\\x 00", "\\X00"] {
            assert_eq!(encoded(bytea, text), None, "{text:?}");
        }
    }

    #[test]
    fn jsonb_is_version_one_then_the_text() {
        assert_eq!(encoded(jsonb, "{}"), Some(b"\x01{}".to_vec()));
        assert_eq!(encoded(text, "día"), Some("día".as_bytes().to_vec()));
    }
}
