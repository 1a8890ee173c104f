//! Strict standard base64 (RFC 4648, alphabet `A-Z a-z 0-9 + /`, `=` padding) for SSE data
//! events of binary streams. CR and LF anywhere are skipped (the SSE line joins); anything
//! else outside the alphabet is an error naming its byte offset in the input.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64ErrorKind {
    InvalidCharacter,
    DataAfterPadding,
    BadLength,
    TooMuchPadding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Base64Error {
    pub kind: Base64ErrorKind,
    pub position: usize,
}

impl Base64ErrorKind {
    pub fn message(self) -> &'static str {
        match self {
            Self::InvalidCharacter => "invalid base64 character",
            Self::DataAfterPadding => "base64 data after padding",
            Self::BadLength => "base64 length is not a multiple of 4",
            Self::TooMuchPadding => "too much base64 padding",
        }
    }
}

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind.message(), self.position)
    }
}

impl std::error::Error for Base64Error {}

const INVALID: u8 = 0xFF;
const PAD: u8 = 0xFE;
const SKIP: u8 = 0xFD;

const TABLE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t[b'=' as usize] = PAD;
    t[b'\r' as usize] = SKIP;
    t[b'\n' as usize] = SKIP;
    t
};

/// Decodes `text`, ignoring CR and LF; empty (or only CR/LF) decodes to no bytes.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, Base64Error> {
    let err = |kind, position| Err(Base64Error { kind, position });
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut nsig = 0usize; // significant characters seen, padding included
    let mut pad_at: Option<(usize, usize)> = None; // (significant index, byte offset) of the first '='
    for (off, &c) in text.iter().enumerate() {
        let v = TABLE[c as usize];
        if v == SKIP {
            continue;
        }
        if v == PAD {
            if pad_at.is_none() {
                pad_at = Some((nsig, off));
            }
            nsig += 1;
            continue;
        }
        if v == INVALID {
            return err(Base64ErrorKind::InvalidCharacter, off);
        }
        if pad_at.is_some() {
            return err(Base64ErrorKind::DataAfterPadding, off);
        }
        acc = (acc << 6) | u32::from(v);
        nsig += 1;
        if nsig.is_multiple_of(4) {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
        }
    }
    if !nsig.is_multiple_of(4) {
        return err(Base64ErrorKind::BadLength, text.len());
    }
    if let Some((idx, off)) = pad_at {
        match nsig - idx {
            1 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
            2 => out.push((acc >> 4) as u8),
            _ => return err(Base64ErrorKind::TooMuchPadding, off),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(decode(b"").unwrap(), b"");
        assert_eq!(decode(b"\n").unwrap(), b"");
        assert_eq!(
            decode(b"AQIDBAUG\nBwgJCg==").unwrap(),
            (1..=10).collect::<Vec<u8>>()
        );
        assert_eq!(decode(b"YQ==").unwrap(), b"a");
        assert_eq!(decode(b"YWI=").unwrap(), b"ab");
        assert_eq!(decode(b"YW\r\nJj").unwrap(), b"abc");
    }

    #[test]
    fn rejects() {
        let e = |s: &[u8]| {
            let e = decode(s).unwrap_err();
            (e.kind, e.position)
        };
        assert_eq!(e(b"YQ="), (Base64ErrorKind::BadLength, 3));
        assert_eq!(e(b"Y-=="), (Base64ErrorKind::InvalidCharacter, 1));
        assert_eq!(e(b"Y=Q="), (Base64ErrorKind::DataAfterPadding, 2));
        assert_eq!(e(b"Y==="), (Base64ErrorKind::TooMuchPadding, 1));
        assert_eq!(e(b"===="), (Base64ErrorKind::TooMuchPadding, 0));
        assert_eq!(e(b"YQ== "), (Base64ErrorKind::InvalidCharacter, 4));
    }
}
