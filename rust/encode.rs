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
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 15)],
            ]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
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
