//! A validating JSON scanner (RFC 8259) that never allocates and reports byte positions.
//!
//! It is the single authority on *where* a JSON text is wrong: the fast paths (the object
//! builder of `pybuild` in Rust, `json.loads` in the pure-Python twin) decide quickly that a
//! text is fine, and when they fail, this scanner (and its line-for-line Python mirror in
//! `_pure/_json.py`) names the offending byte, so both implementations report the same
//! position.
//!
//! Rules beyond RFC 8259, shared with the object builder and the Python twin:
//! - a value nested deeper than [`MAX_DEPTH`] (the top-level value has depth 0) is an error;
//! - an integer part longer than [`MAX_INT_DIGITS`] digits is an error;
//! - `\u` escapes must form valid surrogate pairs (a lone surrogate is an error);
//! - the text must be valid UTF-8 (checked up front, so that error comes first).

use std::fmt;

/// Deepest nesting level a value may have (what jiter allows too).
pub const MAX_DEPTH: usize = 200;
/// Longest integer part of a number, in digits (CPython's and jiter's limit).
pub const MAX_INT_DIGITS: usize = 4300;

/// Why a JSON text was rejected; the message is shared with the Python twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonErrorKind {
    InvalidUtf8,
    UnexpectedEnd,
    ExpectedValue,
    ExpectedArray,
    ExpectedKey,
    ExpectedColon,
    ExpectedCommaOrBracket,
    ExpectedCommaOrBrace,
    InvalidEscape,
    InvalidHex,
    LoneSurrogate,
    ControlCharacter,
    InvalidNumber,
    NumberTooLong,
    TooDeep,
    TrailingData,
}

impl JsonErrorKind {
    pub fn message(self) -> &'static str {
        match self {
            Self::InvalidUtf8 => "invalid UTF-8",
            Self::UnexpectedEnd => "unexpected end of JSON input",
            Self::ExpectedValue => "expected a JSON value",
            Self::ExpectedArray => "expected a JSON array",
            Self::ExpectedKey => "expected a string key",
            Self::ExpectedColon => "expected ':'",
            Self::ExpectedCommaOrBracket => "expected ',' or ']'",
            Self::ExpectedCommaOrBrace => "expected ',' or '}'",
            Self::InvalidEscape => "invalid escape in JSON string",
            Self::InvalidHex => "invalid hex digit in \\u escape",
            Self::LoneSurrogate => "lone surrogate in \\u escape",
            Self::ControlCharacter => "control character in JSON string",
            Self::InvalidNumber => "invalid JSON number",
            Self::NumberTooLong => "integer part longer than 4300 digits",
            Self::TooDeep => "JSON nested deeper than 200 levels",
            Self::TrailingData => "trailing data after JSON value",
        }
    }
}

/// A rejected JSON text: what is wrong and at which byte (the input's length for a cut-off text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    pub kind: JsonErrorKind,
    pub position: usize,
}

impl JsonError {
    fn new(kind: JsonErrorKind, position: usize) -> Self {
        Self { kind, position }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind.message(), self.position)
    }
}

impl std::error::Error for JsonError {}

pub type JsonResult<T> = Result<T, JsonError>;

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Index of the first non-whitespace byte at or after `i`.
#[inline]
pub fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_ws(s[i]) {
        i += 1;
    }
    i
}

/// Checks the whole text is UTF-8; the error names the first byte of the first bad sequence.
pub fn check_utf8(s: &[u8]) -> JsonResult<&str> {
    std::str::from_utf8(s).map_err(|e| JsonError::new(JsonErrorKind::InvalidUtf8, e.valid_up_to()))
}

struct Scanner<'a> {
    s: &'a [u8],
}

impl Scanner<'_> {
    #[inline]
    fn err<T>(&self, kind: JsonErrorKind, at: usize) -> JsonResult<T> {
        Err(JsonError::new(kind, at))
    }

    fn eof<T>(&self) -> JsonResult<T> {
        self.err(JsonErrorKind::UnexpectedEnd, self.s.len())
    }

    /// Scans the value starting exactly at `i`; returns the index just past it.
    fn value(&self, i: usize, depth: usize) -> JsonResult<usize> {
        let s = self.s;
        if i >= s.len() {
            return self.eof();
        }
        if depth > MAX_DEPTH {
            return self.err(JsonErrorKind::TooDeep, i);
        }
        match s[i] {
            b'{' => self.object(i, depth),
            b'[' => self.array(i, depth, |_, _| {}),
            b'"' => self.string(i),
            b'-' | b'0'..=b'9' => self.number(i),
            b't' => self.literal(i, b"true"),
            b'f' => self.literal(i, b"false"),
            b'n' => self.literal(i, b"null"),
            _ => self.err(JsonErrorKind::ExpectedValue, i),
        }
    }

    fn literal(&self, i: usize, lit: &[u8]) -> JsonResult<usize> {
        for (k, &want) in lit.iter().enumerate() {
            match self.s.get(i + k) {
                None => return self.eof(),
                Some(&got) if got != want => return self.err(JsonErrorKind::ExpectedValue, i + k),
                Some(_) => {}
            }
        }
        Ok(i + lit.len())
    }

    /// Scans an array at `i` (a `[`), calling `element(start, end)` for each element.
    fn array(
        &self,
        i: usize,
        depth: usize,
        mut element: impl FnMut(usize, usize),
    ) -> JsonResult<usize> {
        let s = self.s;
        let mut j = skip_ws(s, i + 1);
        if j >= s.len() {
            return self.eof();
        }
        if s[j] == b']' {
            return Ok(j + 1);
        }
        loop {
            let end = self.value(j, depth + 1)?;
            element(j, end);
            j = skip_ws(s, end);
            match s.get(j) {
                None => return self.eof(),
                Some(b',') => {
                    j = skip_ws(s, j + 1);
                }
                Some(b']') => return Ok(j + 1),
                Some(_) => return self.err(JsonErrorKind::ExpectedCommaOrBracket, j),
            }
        }
    }

    fn object(&self, i: usize, depth: usize) -> JsonResult<usize> {
        let s = self.s;
        let mut j = skip_ws(s, i + 1);
        match s.get(j) {
            None => return self.eof(),
            Some(b'}') => return Ok(j + 1),
            Some(_) => {}
        }
        loop {
            match s.get(j) {
                None => return self.eof(),
                Some(b'"') => {}
                Some(_) => return self.err(JsonErrorKind::ExpectedKey, j),
            }
            j = skip_ws(s, self.string(j)?);
            match s.get(j) {
                None => return self.eof(),
                Some(b':') => {}
                Some(_) => return self.err(JsonErrorKind::ExpectedColon, j),
            }
            j = skip_ws(s, j + 1);
            j = skip_ws(s, self.value(j, depth + 1)?);
            match s.get(j) {
                None => return self.eof(),
                Some(b',') => j = skip_ws(s, j + 1),
                Some(b'}') => return Ok(j + 1),
                Some(_) => return self.err(JsonErrorKind::ExpectedCommaOrBrace, j),
            }
        }
    }

    /// The code unit of the four hex digits at `at`.
    fn hex4(&self, at: usize) -> JsonResult<u32> {
        let mut v = 0u32;
        for k in at..at + 4 {
            let Some(&c) = self.s.get(k) else {
                return self.eof();
            };
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return self.err(JsonErrorKind::InvalidHex, k),
            };
            v = v * 16 + u32::from(d);
        }
        Ok(v)
    }

    fn string(&self, i: usize) -> JsonResult<usize> {
        let s = self.s;
        let mut j = i + 1;
        loop {
            let Some(&c) = s.get(j) else {
                return self.eof();
            };
            match c {
                b'"' => return Ok(j + 1),
                b'\\' => {
                    let Some(&e) = s.get(j + 1) else {
                        return self.eof();
                    };
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => j += 2,
                        b'u' => {
                            let cu = self.hex4(j + 2)?;
                            if (0xD800..0xDC00).contains(&cu) {
                                if s.get(j + 6) == Some(&b'\\') && s.get(j + 7) == Some(&b'u') {
                                    let low = self.hex4(j + 8)?;
                                    if !(0xDC00..0xE000).contains(&low) {
                                        return self.err(JsonErrorKind::LoneSurrogate, j);
                                    }
                                    j += 12;
                                } else {
                                    return self.err(JsonErrorKind::LoneSurrogate, j);
                                }
                            } else if (0xDC00..0xE000).contains(&cu) {
                                return self.err(JsonErrorKind::LoneSurrogate, j);
                            } else {
                                j += 6;
                            }
                        }
                        _ => return self.err(JsonErrorKind::InvalidEscape, j + 1),
                    }
                }
                0x00..=0x1f => return self.err(JsonErrorKind::ControlCharacter, j),
                _ => j += 1,
            }
        }
    }

    fn digits(&self, mut j: usize) -> usize {
        while j < self.s.len() && self.s[j].is_ascii_digit() {
            j += 1;
        }
        j
    }

    fn number(&self, i: usize) -> JsonResult<usize> {
        let s = self.s;
        let mut j = i;
        if s[j] == b'-' {
            j += 1;
        }
        let int_start = j;
        match s.get(j) {
            None => return self.eof(),
            Some(b'0') => j += 1,
            Some(b'1'..=b'9') => j = self.digits(j + 1),
            Some(_) => return self.err(JsonErrorKind::InvalidNumber, j),
        }
        if j - int_start > MAX_INT_DIGITS {
            return self.err(JsonErrorKind::NumberTooLong, int_start + MAX_INT_DIGITS);
        }
        if s.get(j) == Some(&b'.') {
            j += 1;
            match s.get(j) {
                None => return self.eof(),
                Some(b'0'..=b'9') => j = self.digits(j + 1),
                Some(_) => return self.err(JsonErrorKind::InvalidNumber, j),
            }
        }
        if matches!(s.get(j), Some(b'e' | b'E')) {
            j += 1;
            if matches!(s.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            match s.get(j) {
                None => return self.eof(),
                Some(b'0'..=b'9') => j = self.digits(j + 1),
                Some(_) => return self.err(JsonErrorKind::InvalidNumber, j),
            }
        }
        Ok(j)
    }
}

/// Validates that `s` is exactly one JSON value, optionally surrounded by whitespace;
/// returns the value's byte range (the text trimmed of whitespace).
pub fn validate_value(s: &[u8]) -> JsonResult<(usize, usize)> {
    check_utf8(s)?;
    let sc = Scanner { s };
    let start = skip_ws(s, 0);
    let end = sc.value(start, 0)?;
    let after = skip_ws(s, end);
    if after < s.len() {
        return Err(JsonError::new(JsonErrorKind::TrailingData, after));
    }
    Ok((start, end))
}

/// Scans a JSON-mode body: empty or whitespace-only, or exactly one array. Calls
/// `element(start, end)` with the byte range of each element, in order.
pub fn scan_array(s: &[u8], element: impl FnMut(usize, usize)) -> JsonResult<()> {
    check_utf8(s)?;
    let sc = Scanner { s };
    let start = skip_ws(s, 0);
    if start == s.len() {
        return Ok(());
    }
    if s[start] != b'[' {
        return Err(JsonError::new(JsonErrorKind::ExpectedArray, start));
    }
    let end = sc.array(start, 0, element)?;
    let after = skip_ws(s, end);
    if after < s.len() {
        return Err(JsonError::new(JsonErrorKind::TrailingData, after));
    }
    Ok(())
}

/// The byte range of each element of a JSON-mode body (see [`scan_array`]).
pub fn split_array(s: &[u8]) -> JsonResult<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    scan_array(s, |a, b| out.push((a, b)))?;
    Ok(out)
}

/// Scans one group of a body read in parts (see [`crate::framer`]): `s` starts with `[`
/// and ends with the group's last bracket. Unlike [`scan_array`], UTF-8 is not checked up
/// front: of a UTF-8 error and a syntax error, the one at the earlier byte is reported, so
/// the error a body gets does not depend on where it was cut into groups.
pub fn scan_group(s: &[u8], element: impl FnMut(usize, usize)) -> JsonResult<()> {
    let syntax = match (Scanner { s }).array(0, 0, element) {
        Ok(end) if end < s.len() => Some(JsonError::new(JsonErrorKind::TrailingData, end)),
        Ok(_) => None,
        Err(e) => Some(e),
    };
    let utf8 = check_utf8(s).err();
    match (utf8, syntax) {
        (Some(u), Some(x)) if x.position < u.position => Err(x),
        (Some(u), _) => Err(u),
        (None, Some(x)) => Err(x),
        (None, None) => Ok(()),
    }
}

/// Where the array scan of `s` fails, if it does: the authoritative error for a body the
/// fast parser rejected.
pub fn array_error(s: &[u8]) -> Option<JsonError> {
    scan_array(s, |_, _| {}).err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use JsonErrorKind::*;

    fn err(s: &str) -> (JsonErrorKind, usize) {
        let e = split_array(s.as_bytes()).unwrap_err();
        (e.kind, e.position)
    }

    fn ranges(s: &str) -> Vec<&str> {
        split_array(s.as_bytes())
            .unwrap()
            .into_iter()
            .map(|(a, b)| &s[a..b])
            .collect()
    }

    #[test]
    fn splits_elements_exactly() {
        assert_eq!(ranges(""), Vec::<&str>::new());
        assert_eq!(ranges(" \n\t\r"), Vec::<&str>::new());
        assert_eq!(ranges("[]"), Vec::<&str>::new());
        assert_eq!(
            ranges(" [ 1 , \"a,]\" ,{\"k\": [1, {}]},null ] "),
            vec!["1", "\"a,]\"", "{\"k\": [1, {}]}", "null"]
        );
        assert_eq!(
            ranges("[-0.5e+10,true,false]"),
            vec!["-0.5e+10", "true", "false"]
        );
        assert_eq!(
            ranges("[\"\\ud83d\\ude00\\u00e9\\n\"]"),
            vec!["\"\\ud83d\\ude00\\u00e9\\n\""]
        );
    }

    #[test]
    fn errors_name_the_byte() {
        assert_eq!(err("{}"), (ExpectedArray, 0));
        assert_eq!(err("  1"), (ExpectedArray, 2));
        assert_eq!(err("["), (UnexpectedEnd, 1));
        assert_eq!(err("[1,]"), (ExpectedValue, 3));
        assert_eq!(err("[1 2]"), (ExpectedCommaOrBracket, 3));
        assert_eq!(err("[1] x"), (TrailingData, 4));
        assert_eq!(err("[NaN]"), (ExpectedValue, 1));
        assert_eq!(err("[-Infinity]"), (InvalidNumber, 2));
        assert_eq!(err("[01]"), (ExpectedCommaOrBracket, 2));
        assert_eq!(err("[1.]"), (InvalidNumber, 3));
        assert_eq!(err("[1e]"), (InvalidNumber, 3));
        assert_eq!(err("[tru]"), (ExpectedValue, 4));
        assert_eq!(err("[nul"), (UnexpectedEnd, 4));
        assert_eq!(err("[\"\\x\"]"), (InvalidEscape, 3));
        assert_eq!(err("[\"\\u12g4\"]"), (InvalidHex, 6));
        assert_eq!(err("[\"\\ud800\"]"), (LoneSurrogate, 2));
        assert_eq!(err("[\"\\udc00\"]"), (LoneSurrogate, 2));
        assert_eq!(err("[\"\\ud800\\u0041\"]"), (LoneSurrogate, 2));
        assert_eq!(err("[\"a\u{1}\"]"), (ControlCharacter, 3));
        assert_eq!(err("[{\"a\" 1}]"), (ExpectedColon, 6));
        assert_eq!(err("[{1:1}]"), (ExpectedKey, 2));
        assert_eq!(err("[{\"a\":1,}]"), (ExpectedKey, 8));
        assert_eq!(err("[{\"a\":1]"), (ExpectedCommaOrBrace, 7));
        let e = split_array(b"[1,\xff]").unwrap_err();
        assert_eq!((e.kind, e.position), (InvalidUtf8, 3));
    }

    #[test]
    fn limits() {
        let ok = format!("{}1{}", "[".repeat(201), "]".repeat(201));
        assert_eq!(err(&ok), (TooDeep, 201));
        let ok = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(split_array(ok.as_bytes()).is_ok());
        let long = format!("[{}]", "1".repeat(4301));
        assert_eq!(err(&long), (NumberTooLong, 4301));
        let long = format!("[-{}.5]", "1".repeat(4300));
        assert!(split_array(long.as_bytes()).is_ok());
    }

    #[test]
    fn single_values() {
        assert_eq!(validate_value(b" {\"a\":1}\n"), Ok((1, 8)));
        assert_eq!(validate_value(b"  ").unwrap_err().kind, UnexpectedEnd);
        assert_eq!(
            validate_value(b"1 2").unwrap_err(),
            JsonError::new(TrailingData, 2)
        );
    }
}
