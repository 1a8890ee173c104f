//! The State Protocol's checks that the fast fold of change messages needs, free of Python.

/// Whether `s` is an RFC 3339 date-time as the protocol's readers accept it:
/// `YYYY-MM-DD`, `T` (or `t` or a space), `hh:mm:ss`, optional `.` and fraction digits, then
/// `Z` (or `z`) or `+hh:mm` / `-hh:mm`. (The same rule as `_statecore._RFC3339`.)
pub fn is_rfc3339(s: &[u8]) -> bool {
    fn digits(s: &[u8], at: usize, n: usize) -> bool {
        s.len() >= at + n && s[at..at + n].iter().all(u8::is_ascii_digit)
    }
    if !(digits(s, 0, 4)
        && s.get(4) == Some(&b'-')
        && digits(s, 5, 2)
        && s.get(7) == Some(&b'-')
        && digits(s, 8, 2)
        && matches!(s.get(10), Some(b'T' | b't' | b' '))
        && digits(s, 11, 2)
        && s.get(13) == Some(&b':')
        && digits(s, 14, 2)
        && s.get(16) == Some(&b':')
        && digits(s, 17, 2))
    {
        return false;
    }
    let mut i = 19;
    if s.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match s.get(i) {
        Some(b'Z' | b'z') => i + 1 == s.len(),
        Some(b'+' | b'-') => {
            s.len() == i + 6 && digits(s, i + 1, 2) && s[i + 3] == b':' && digits(s, i + 4, 2)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_rfc3339;

    #[test]
    fn accepts_what_the_protocol_allows() {
        for ok in [
            "2025-01-15T10:30:00Z",
            "2025-01-15T10:30:00.123Z",
            "2025-01-15t10:30:00z",
            "2025-01-15 10:30:00+02:00",
            "2025-01-15T10:30:00.1-05:30",
        ] {
            assert!(is_rfc3339(ok.as_bytes()), "{ok}");
        }
    }

    #[test]
    fn refuses_the_rest() {
        for bad in [
            "",
            "yesterday",
            "2025-01-15",
            "2025-01-15T10:30:00",
            "2025-01-15T10:30:00.Z",
            "2025-01-15T10:30:00+0200",
            "2025-01-15T10:30:00Zx",
            "2025-1-15T10:30:00Z",
            "2025-01-15T10:30:00+02:00 ",
        ] {
            assert!(!is_rfc3339(bad.as_bytes()), "{bad}");
        }
    }
}
