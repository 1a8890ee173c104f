//! Compact JSON output that matches CPython's
//! `json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False)` byte for byte.

use std::io::Write as _;

/// Appends `s` as a JSON string literal, escaped as CPython's `json` does with
/// `ensure_ascii=False`: `"` `\` and the C0 controls only (`\n \r \t \b \f` by name, the rest
/// as lowercase `\u00xx`).
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        // Clean runs are copied whole: skip eight bytes at a time while none needs escaping.
        if i + 8 <= b.len() && !word_needs_escape(&b[i..i + 8]) {
            i += 8;
            continue;
        }
        let c = b[i];
        if needs_escape(c) {
            out.extend_from_slice(&b[start..i]);
            push_escape(out, c);
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

fn needs_escape(c: u8) -> bool {
    c < 0x20 || c == b'"' || c == b'\\'
}

/// Whether any of eight bytes is a control character, `"` or `\` (SWAR: a byte of `x` is
/// zero exactly where the high bit of `(x - 0x01..) & !x & 0x80..` is set).
fn word_needs_escape(chunk: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
    (below_space | zero_in(x ^ (ONES * u64::from(b'"'))) | zero_in(x ^ (ONES * u64::from(b'\\'))))
        != 0
}

fn push_escape(out: &mut Vec<u8>, c: u8) {
    let named: &[u8] = match c {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0x08 => b"\\b",
        0x0c => b"\\f",
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 15)],
            ]);
            return;
        }
    };
    out.extend_from_slice(named);
}

pub fn push_i64(out: &mut Vec<u8>, v: i64) {
    let mut digits = [0u8; 20];
    let mut rest = v.unsigned_abs();
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[start..]);
}

/// When the shortest digits are not unique and `v` lies exactly halfway between two
/// candidates, CPython (David Gay's dtoa) takes the one ending in an even digit, where Rust's
/// formatter may take the other: "562949953421312.2", not ".3". Both read back as `v`; the
/// bytes must still be CPython's.
fn prefer_even_on_tie(digits: &mut [u8], exp: i32, v: f64) {
    let n = digits.len();
    let last = digits[n - 1];
    if n < 2 || last.is_multiple_of(2) {
        return; // already even, or a single digit whose neighbour changes the exponent
    }
    let mut text = [0u8; 48];
    let candidate = |digits: &[u8], text: &mut [u8; 48]| -> Option<f64> {
        let mut cursor = &mut text[..];
        let _ = write!(
            cursor,
            "0.{}e{}",
            std::str::from_utf8(digits).ok()?,
            exp + 1
        );
        let len = 48 - cursor.len();
        std::str::from_utf8(&text[..len]).ok()?.parse::<f64>().ok()
    };
    for neighbour in [last - 1, last + 1] {
        if neighbour > b'9' {
            continue;
        }
        digits[n - 1] = neighbour;
        let reads_back = candidate(digits, &mut text) == Some(v.abs());
        digits[n - 1] = last;
        if !reads_back {
            continue;
        }
        // Both read back as v: the tie is real only if v is exactly their midpoint.
        let low = last.min(neighbour);
        let exact = format!("{:.800e}", v.abs());
        let (mantissa, exact_exp) = exact.split_once('e').expect("LowerExp has an exponent");
        if exact_exp.parse::<i32>().ok() != Some(exp) {
            continue;
        }
        let exact_digits: Vec<u8> = mantissa.bytes().filter(|&c| c != b'.').collect();
        let exact_digits = match exact_digits.iter().rposition(|&c| c != b'0') {
            Some(end) => &exact_digits[..=end],
            None => &exact_digits[..1],
        };
        let midpoint_matches = exact_digits.len() == n + 1
            && exact_digits[..n - 1] == digits[..n - 1]
            && exact_digits[n - 1] == low
            && exact_digits[n] == b'5';
        if midpoint_matches {
            digits[n - 1] = neighbour; // the even one of the two
        }
        return;
    }
}

/// Appends a finite float as CPython's `repr(float)` spells it (shortest round-trip digits,
/// fixed notation for decimal exponents -4..16, otherwise `d.ddde+XX`). Returns false for
/// NaN and infinities, which JSON cannot carry.
pub fn push_f64(out: &mut Vec<u8>, v: f64) -> bool {
    if !v.is_finite() {
        return false;
    }
    // Rust's `{:e}` gives the shortest round-trip digits too: "-1.2345e-7", "1e16", "0e0".
    // Written to the stack: the longest is 17 digits, a point, a sign and "e-324".
    let mut sci = [0u8; 32];
    let len = {
        let mut cursor = &mut sci[..];
        let _ = write!(cursor, "{v:e}");
        32 - cursor.len()
    };
    let sci = &sci[..len];
    let e_at = sci
        .iter()
        .position(|&c| c == b'e')
        .expect("LowerExp always has an exponent");
    let exp: i32 = std::str::from_utf8(&sci[e_at + 1..])
        .ok()
        .and_then(|e| e.parse().ok())
        .expect("LowerExp exponent is an integer");
    let (negative, mantissa) = match sci[..e_at].strip_prefix(b"-") {
        Some(m) => (true, m),
        None => (false, &sci[..e_at]),
    };
    let mut digit_buf = [0u8; 20];
    let mut n_digits = 0;
    for &c in mantissa {
        if c != b'.' {
            digit_buf[n_digits] = c;
            n_digits += 1;
        }
    }
    prefer_even_on_tie(&mut digit_buf[..n_digits], exp, v);
    let digits = &digit_buf[..n_digits];
    if negative {
        out.push(b'-');
    }
    if (-4..16).contains(&exp) {
        let decpt = exp + 1; // digits before the decimal point
        if decpt <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-decpt) as usize));
            out.extend_from_slice(digits);
        } else {
            let decpt = decpt as usize;
            if decpt >= digits.len() {
                out.extend_from_slice(digits);
                out.extend(std::iter::repeat_n(b'0', decpt - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..decpt]);
                out.push(b'.');
                out.extend_from_slice(&digits[decpt..]);
            }
        }
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut out = Vec::new();
        assert!(push_f64(&mut out, v));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_like_python_repr() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-1.25e-7, "-1.25e-07"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (123.456, "123.456"),
            (562949953421312.2, "562949953421312.2"),
            (-562949953421312.2, "-562949953421312.2"),
        ];
        for (v, want) in cases {
            assert_eq!(f(v), want, "{v}");
        }
        assert!(!push_f64(&mut Vec::new(), f64::NAN));
        assert!(!push_f64(&mut Vec::new(), f64::NEG_INFINITY));
    }

    #[test]
    fn strings_like_python() {
        let mut out = Vec::new();
        push_str(&mut out, "a\"\\\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é\u{2028}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001f\u{7f}é\u{2028}\""
        );
    }
}

#[cfg(test)]
mod string_tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_at_every_position_of_a_word() {
        for len in 0..20 {
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{1}', '\u{1f}'] {
                    let mut s: String = "a".repeat(len);
                    s.replace_range(at..at + 1, &special.to_string());
                    let expected = serde_like(&s);
                    assert_eq!(escaped(&s), expected, "len {len} at {at} {special:?}");
                }
            }
        }
        assert_eq!(
            escaped("héllo wörld ✓ 0123456789"),
            "\"héllo wörld ✓ 0123456789\""
        );
        assert_eq!(escaped(" !#~\u{7f}"), "\" !#~\u{7f}\"");
    }

    fn serde_like(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
}
