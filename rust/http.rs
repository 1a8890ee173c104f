//! A sans-IO HTTP/1.1 response decoder: bytes in as they come off a socket, the response head
//! and body slices out, with the body's framing (Content-Length, chunked, or read until the
//! connection closes) undone. No allocation per body byte: body slices borrow the input.
//!
//! The head is parsed by `httparse` once it is complete; it may not exceed `max_head_bytes`
//! (a server that sends headers without end is an error, not an allocation). Everything the
//! decoder rejects is an [`HttpError`] with the stream position of the element at fault: the
//! head's first byte for a malformed head, the chunk-size line's first byte for a bad chunk,
//! the end of input for a body cut short. `_pure/_http.py` mirrors this module line for line.
//!
//! Rules beyond RFC 9112 that the Python twin shares:
//! - head lines may end with LF alone (as `httparse` allows); chunked framing needs CRLF;
//! - obsolete line folding and NUL or other control bytes in headers are errors;
//! - a 1xx answer other than 101 is skipped; 101, `Transfer-Encoding` other than a lone
//!   `chunked`, and differing `Content-Length` values are errors;
//! - a chunk size has at most 15 hex digits and its line (with extensions) at most 4 KiB;
//! - 204 and 304 answers have no body, nor has any answer to a HEAD request (`no_body`).

use std::fmt;

use memchr::memchr;

/// Default cap on a response head: status line, headers and the blank line.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields a head may carry.
pub const MAX_HEADERS: usize = 128;
/// Longest chunk-size line, extensions included (without its CRLF).
pub const MAX_CHUNK_LINE: usize = 4096;
/// Most hex digits of a chunk size: 15 keep it below 2**60.
pub const MAX_CHUNK_SIZE_DIGITS: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpErrorKind {
    MalformedHead,
    HeadTooLarge,
    TooManyHeaders,
    SwitchingProtocols,
    BadContentLength,
    UnsupportedTransferEncoding,
    BadChunkSize,
    ChunkLineTooLong,
    BadChunkEnd,
    TrailersTooLarge,
    ClosedBeforeHead,
    TruncatedHead,
    TruncatedBody,
}

impl HttpErrorKind {
    pub fn message(self) -> &'static str {
        match self {
            Self::MalformedHead => "malformed HTTP response head",
            Self::HeadTooLarge => "HTTP response head larger than the limit",
            Self::TooManyHeaders => "HTTP response head with more than 128 header fields",
            Self::SwitchingProtocols => "unexpected 101 Switching Protocols",
            Self::BadContentLength => "invalid Content-Length",
            Self::UnsupportedTransferEncoding => "unsupported Transfer-Encoding",
            Self::BadChunkSize => "invalid chunk size",
            Self::ChunkLineTooLong => "chunk-size line longer than 4096 bytes",
            Self::BadChunkEnd => "chunk data not followed by CRLF",
            Self::TrailersTooLarge => "chunked trailer section larger than the head limit",
            Self::ClosedBeforeHead => "connection closed before a response",
            Self::TruncatedHead => "connection closed inside the response head",
            Self::TruncatedBody => "connection closed before the end of the response body",
        }
    }

    /// Whether the connection ended early, as opposed to sending bytes that break HTTP.
    pub fn is_truncation(self) -> bool {
        matches!(
            self,
            Self::ClosedBeforeHead | Self::TruncatedHead | Self::TruncatedBody
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    pub kind: HttpErrorKind,
    pub position: u64,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind.message(), self.position)
    }
}

impl std::error::Error for HttpError {}

pub type HttpResult<T> = Result<T, HttpError>;

/// A parsed response head: header names lower-cased, values as latin-1 text, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The values of every field named `name` (lower case), joined with ", ".
    pub fn get(&self, name: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for (key, value) in &self.headers {
            if key == name {
                match out.as_mut() {
                    Some(joined) => {
                        joined.push_str(", ");
                        joined.push_str(value);
                    }
                    None => out = Some(value.clone()),
                }
            }
        }
        out
    }
}

/// What [`ResponseDecoder::feed`] reports, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Part<'a> {
    Head(Head),
    Body(&'a [u8]),
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    Close,
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers,
    Done,
}

pub struct ResponseDecoder {
    max_head_bytes: usize,
    /// The request was a HEAD: whatever the head says, no body follows it.
    no_body: bool,
    state: State,
    /// Bytes of an unfinished head, chunk-size line, chunk-data CRLF or trailer section.
    carry: Vec<u8>,
    /// Stream position of the first byte in `carry` (or of the next input byte if empty).
    carry_start: u64,
    /// Stream position of the next input byte.
    position: u64,
    /// Stream position where the trailer section began.
    trailers_start: u64,
}

fn latin1(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(ascii) if bytes.is_ascii() => ascii.to_owned(),
        _ => bytes.iter().map(|&b| b as char).collect(),
    }
}

fn trim_ows(mut s: &str) -> &str {
    while let Some(rest) = s.strip_prefix([' ', '\t']) {
        s = rest;
    }
    while let Some(rest) = s.strip_suffix([' ', '\t']) {
        s = rest;
    }
    s
}

/// Where the head in `buf` ends (the index after its first blank line), looking only at
/// line ends from `from` on (the bytes before were searched already).
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut start = from;
    while let Some(i) = memchr(b'\n', &buf[start..]) {
        let nl = start + i;
        let blank = match nl {
            0 => true,
            1 => buf[0] == b'\r',
            _ => buf[nl - 1] == b'\n' || (buf[nl - 1] == b'\r' && buf[nl - 2] == b'\n'),
        };
        if blank {
            return Some(nl + 1);
        }
        start = nl + 1;
    }
    None
}

impl ResponseDecoder {
    pub fn new(max_head_bytes: usize) -> Self {
        Self::for_request(max_head_bytes, false)
    }

    /// A decoder for the answer to a request whose answers carry no body when `no_body`
    /// (HEAD): Content-Length there describes what a GET would get.
    pub fn for_request(max_head_bytes: usize, no_body: bool) -> Self {
        Self {
            max_head_bytes,
            no_body,
            state: State::Head,
            carry: Vec::new(),
            carry_start: 0,
            position: 0,
            trailers_start: 0,
        }
    }

    /// Whether the response ended (its whole body was read).
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the body runs until the connection closes (so the connection cannot be reused).
    pub fn close_delimited(&self) -> bool {
        self.state == State::Close
    }

    /// Whether nothing of this response has arrived yet.
    pub fn untouched(&self) -> bool {
        self.state == State::Head && self.carry.is_empty() && self.position == 0
    }

    fn error(kind: HttpErrorKind, position: u64) -> HttpError {
        HttpError { kind, position }
    }

    /// Take `data`, reporting the head, body slices and the end through `on_part`. Returns
    /// how many bytes were taken: all of them, unless the response ended before their end.
    pub fn feed<E: From<HttpError>>(
        &mut self,
        data: &[u8],
        mut on_part: impl FnMut(Part<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Done => break,
                State::Head => {
                    let took = self.take_head(&data[i..], &mut on_part)?;
                    i += took;
                }
                State::Length(left) => {
                    let n = (data.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    on_part(Part::Body(&data[i..i + n]))?;
                    i += n;
                    self.position += n as u64;
                    let left = left - n as u64;
                    if left == 0 {
                        self.state = State::Done;
                        on_part(Part::End)?;
                    } else {
                        self.state = State::Length(left);
                    }
                }
                State::Close => {
                    on_part(Part::Body(&data[i..]))?;
                    self.position += (data.len() - i) as u64;
                    i = data.len();
                }
                State::ChunkData(left) => {
                    let n = (data.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    on_part(Part::Body(&data[i..i + n]))?;
                    i += n;
                    self.position += n as u64;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        self.carry_start = self.position;
                        State::ChunkDataEnd
                    } else {
                        State::ChunkData(left)
                    };
                }
                State::ChunkSize => i += self.take_chunk_size(&data[i..])?,
                State::ChunkDataEnd => i += self.take_chunk_end(&data[i..])?,
                State::Trailers => {
                    let took = self.take_trailers(&data[i..])?;
                    i += took;
                    if self.state == State::Done {
                        on_part(Part::End)?;
                    }
                }
            }
        }
        Ok(i)
    }

    /// The connection closed: a close-delimited body ends here; anything else unfinished is
    /// an error. Returns whether the response had ended.
    pub fn finish(&mut self) -> HttpResult<()> {
        match self.state {
            State::Done => Ok(()),
            State::Close => {
                self.state = State::Done;
                Ok(())
            }
            State::Head if self.carry.is_empty() && self.position == self.carry_start => {
                Err(Self::error(HttpErrorKind::ClosedBeforeHead, self.position))
            }
            State::Head => Err(Self::error(
                HttpErrorKind::TruncatedHead,
                self.position + self.carry.len() as u64,
            )),
            _ => Err(Self::error(
                HttpErrorKind::TruncatedBody,
                self.position + self.carry.len() as u64,
            )),
        }
    }

    fn take_head<E: From<HttpError>>(
        &mut self,
        data: &[u8],
        on_part: &mut impl FnMut(Part<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let already = self.carry.len();
        let take = data.len().min(self.max_head_bytes - already);
        self.carry.extend_from_slice(&data[..take]);
        // A blank line may straddle the old and the new bytes: look again from a little
        // before the new ones, never from the start (a trickled head stays linear).
        let Some(end) = head_end(&self.carry, already.saturating_sub(2)) else {
            if self.carry.len() >= self.max_head_bytes {
                return Err(Self::error(HttpErrorKind::HeadTooLarge, self.carry_start).into());
            }
            return Ok(take);
        };
        let head_start = self.carry_start;
        let head = parse_head(&self.carry[..end], head_start)?;
        let used_of_data = end - already;
        self.carry.clear();
        self.position = head_start + end as u64;
        self.carry_start = self.position;
        if (100..200).contains(&head.status) {
            if head.status == 101 {
                return Err(Self::error(HttpErrorKind::SwitchingProtocols, head_start).into());
            }
            return Ok(used_of_data); // an interim answer: the real head follows
        }
        self.state = if self.no_body {
            State::Done
        } else {
            body_state(&head, head_start)?
        };
        on_part(Part::Head(head))?;
        if self.state == State::Done {
            on_part(Part::End)?;
        }
        Ok(used_of_data)
    }

    /// A chunk-size line: hex digits, optional extensions after ';', CRLF.
    fn take_chunk_size(&mut self, data: &[u8]) -> HttpResult<usize> {
        let Some(nl) = memchr(b'\n', data) else {
            self.carry.extend_from_slice(data);
            if self.carry.len() > MAX_CHUNK_LINE + 1 {
                return Err(Self::error(
                    HttpErrorKind::ChunkLineTooLong,
                    self.carry_start,
                ));
            }
            return Ok(data.len());
        };
        self.carry.extend_from_slice(&data[..nl]);
        let line_start = self.carry_start;
        let line = std::mem::take(&mut self.carry);
        let Some(line) = line.strip_suffix(b"\r") else {
            return Err(Self::error(HttpErrorKind::BadChunkSize, line_start));
        };
        if line.len() > MAX_CHUNK_LINE {
            return Err(Self::error(HttpErrorKind::ChunkLineTooLong, line_start));
        }
        let digits_end = line
            .iter()
            .position(|b| !b.is_ascii_hexdigit())
            .unwrap_or(line.len());
        let rest = &line[digits_end..];
        let extension_ok = rest.is_empty()
            || (rest[0] == b';'
                && rest
                    .iter()
                    .all(|&b| b == b'\t' || (b' '..=0x7e).contains(&b) || b >= 0x80));
        if digits_end == 0 || digits_end > MAX_CHUNK_SIZE_DIGITS || !extension_ok {
            return Err(Self::error(HttpErrorKind::BadChunkSize, line_start));
        }
        let size = line[..digits_end].iter().fold(0u64, |acc, &b| {
            (acc << 4) | u64::from((b as char).to_digit(16).unwrap_or(0))
        });
        self.position = line_start + line.len() as u64 + 2;
        self.carry_start = self.position;
        self.state = if size == 0 {
            self.trailers_start = self.position;
            State::Trailers
        } else {
            State::ChunkData(size)
        };
        Ok(nl + 1)
    }

    /// The CRLF after a chunk's data.
    fn take_chunk_end(&mut self, data: &[u8]) -> HttpResult<usize> {
        let need = 2 - self.carry.len();
        let n = need.min(data.len());
        self.carry.extend_from_slice(&data[..n]);
        if self.carry.len() < 2 {
            if self.carry[..] != b"\r"[..] {
                return Err(Self::error(HttpErrorKind::BadChunkEnd, self.carry_start));
            }
            return Ok(n);
        }
        if self.carry[..] != b"\r\n"[..] {
            return Err(Self::error(HttpErrorKind::BadChunkEnd, self.carry_start));
        }
        self.carry.clear();
        self.position = self.carry_start + 2;
        self.carry_start = self.position;
        self.state = State::ChunkSize;
        Ok(n)
    }

    /// Trailer fields after the last chunk, up to a blank line; they are read and dropped.
    fn take_trailers(&mut self, data: &[u8]) -> HttpResult<usize> {
        let mut i = 0;
        while let Some(nl) = memchr(b'\n', &data[i..]) {
            let line_end = i + nl;
            let partial = std::mem::take(&mut self.carry);
            let line_len = partial.len() + nl;
            let last_byte = if nl > 0 {
                data[line_end - 1]
            } else {
                partial.last().copied().unwrap_or(0)
            };
            let blank = line_len == 0 || (line_len == 1 && last_byte == b'\r');
            self.position += (line_len + 1) as u64;
            i = line_end + 1;
            if blank {
                self.carry_start = self.position;
                self.state = State::Done;
                return Ok(i);
            }
        }
        self.carry.extend_from_slice(&data[i..]);
        self.carry_start = self.position;
        if self.position - self.trailers_start + self.carry.len() as u64
            > self.max_head_bytes as u64
        {
            return Err(Self::error(
                HttpErrorKind::TrailersTooLarge,
                self.trailers_start,
            ));
        }
        Ok(data.len())
    }
}

fn parse_head(bytes: &[u8], position: u64) -> HttpResult<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ResponseDecoder::error(
                HttpErrorKind::TooManyHeaders,
                position,
            ))
        }
        _ => {
            return Err(ResponseDecoder::error(
                HttpErrorKind::MalformedHead,
                position,
            ))
        }
    }
    let status = response.code.unwrap_or(0);
    let reason = response.reason.unwrap_or("").to_owned();
    let headers = response
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), latin1(h.value)))
        .collect();
    Ok(Head {
        status,
        reason,
        headers,
    })
}

fn body_state(head: &Head, position: u64) -> HttpResult<State> {
    if head.status == 204 || head.status == 304 {
        return Ok(State::Done);
    }
    if let Some(codings) = head.get("transfer-encoding") {
        let lone_chunked = codings
            .split(',')
            .map(trim_ows)
            .filter(|c| !c.is_empty())
            .map(str::to_ascii_lowercase)
            .eq(["chunked".to_owned()]);
        if !lone_chunked {
            return Err(ResponseDecoder::error(
                HttpErrorKind::UnsupportedTransferEncoding,
                position,
            ));
        }
        return Ok(State::ChunkSize);
    }
    if let Some(lengths) = head.get("content-length") {
        let mut length: Option<u64> = None;
        for part in lengths.split(',').map(trim_ows) {
            let valid =
                !part.is_empty() && part.len() <= 18 && part.bytes().all(|b| b.is_ascii_digit());
            let value = if valid {
                part.parse::<u64>().ok()
            } else {
                None
            };
            match (value, length) {
                (Some(v), None) => length = Some(v),
                (Some(v), Some(l)) if v == l => {}
                _ => {
                    return Err(ResponseDecoder::error(
                        HttpErrorKind::BadContentLength,
                        position,
                    ))
                }
            }
        }
        return Ok(match length {
            Some(0) => State::Done,
            Some(n) => State::Length(n),
            None => State::Done,
        });
    }
    Ok(State::Close)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Out {
        Head(u16, Vec<(String, String)>),
        Body(Vec<u8>),
        End,
    }

    fn run(chunks: &[&[u8]], eof: bool) -> (Vec<Out>, HttpResult<()>) {
        let mut decoder = ResponseDecoder::new(DEFAULT_MAX_HEAD_BYTES);
        let mut out = Vec::new();
        for chunk in chunks {
            let result = decoder.feed(chunk, |part| -> HttpResult<()> {
                out.push(match part {
                    Part::Head(h) => Out::Head(h.status, h.headers),
                    Part::Body(b) => Out::Body(b.to_vec()),
                    Part::End => Out::End,
                });
                Ok(())
            });
            if let Err(e) = result {
                return (out, Err(e));
            }
        }
        let end = if eof { decoder.finish() } else { Ok(()) };
        (out, end)
    }

    fn body(out: &[Out]) -> Vec<u8> {
        out.iter()
            .flat_map(|o| match o {
                Out::Body(b) => b.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn every_split(bytes: &[u8]) -> impl Iterator<Item = (Vec<Out>, HttpResult<()>)> + '_ {
        (0..=bytes.len()).map(move |at| run(&[&bytes[..at], &bytes[at..]], true))
    }

    #[test]
    fn content_length_body_at_every_split() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello";
        for (out, end) in every_split(wire) {
            end.unwrap();
            assert!(matches!(&out[0], Out::Head(200, h) if h.len() == 3));
            assert_eq!(body(&out), b"hello");
            assert_eq!(out.last(), Some(&Out::End));
        }
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers_at_every_split() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=v\r\nhello\r\n1\r\n!\r\n0\r\nTrailer: x\r\n\r\n";
        for (out, end) in every_split(wire) {
            end.unwrap();
            assert_eq!(body(&out), b"hello!");
            assert_eq!(out.last(), Some(&Out::End));
        }
    }

    #[test]
    fn close_delimited_body_ends_at_eof() {
        let (out, end) = run(&[b"HTTP/1.1 200 OK\r\n\r\nab", b"cd"], true);
        end.unwrap();
        assert_eq!(body(&out), b"abcd");
        assert_ne!(out.last(), Some(&Out::End));
    }

    #[test]
    fn no_body_for_204_and_interim_answers_are_skipped() {
        let (out, end) = run(
            &[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"],
            false,
        );
        end.unwrap();
        assert_eq!(out, vec![Out::Head(204, vec![]), Out::End]);
    }

    #[test]
    fn stops_at_the_end_of_the_response() {
        let mut decoder = ResponseDecoder::new(1024);
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA";
        let taken = decoder
            .feed(wire, |_| -> HttpResult<()> { Ok(()) })
            .unwrap();
        assert_eq!(&wire[taken..], b"EXTRA");
        assert!(decoder.done());
    }

    fn error_of(chunks: &[&[u8]]) -> HttpError {
        run(chunks, true).1.unwrap_err()
    }

    #[test]
    fn hostile_heads_are_errors_with_positions() {
        let kind = |w: &[u8]| error_of(&[w]).kind;
        assert_eq!(
            kind(b"HTTP/1.1 2000 OK\r\n\r\n"),
            HttpErrorKind::MalformedHead
        );
        assert_eq!(
            kind(b"HTTX/1.1 200 OK\r\n\r\n"),
            HttpErrorKind::MalformedHead
        );
        assert_eq!(
            kind(b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n"),
            HttpErrorKind::MalformedHead
        );
        assert_eq!(
            kind(b"HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n"),
            HttpErrorKind::MalformedHead
        );
        assert_eq!(
            kind(b"HTTP/1.1 101 Up\r\n\r\n"),
            HttpErrorKind::SwitchingProtocols
        );
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "A: b\r\n".repeat(129));
        assert_eq!(kind(many.as_bytes()), HttpErrorKind::TooManyHeaders);
        let huge = format!("HTTP/1.1 200 OK\r\nA: {}\r\n\r\n", "b".repeat(70_000));
        assert_eq!(kind(huge.as_bytes()), HttpErrorKind::HeadTooLarge);
        let second = error_of(&[b"HTTP/1.1 100 Continue\r\n\r\n", b"junk\r\n\r\n"]);
        assert_eq!(
            (second.kind, second.position),
            (HttpErrorKind::MalformedHead, 25)
        );
    }

    #[test]
    fn hostile_framing_is_an_error_with_a_position() {
        let te = |v: &str| format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {v}\r\n\r\n");
        assert_eq!(
            error_of(&[te("gzip, chunked").as_bytes()]).kind,
            HttpErrorKind::UnsupportedTransferEncoding
        );
        let cl = |v: &str| format!("HTTP/1.1 200 OK\r\nContent-Length: {v}\r\n\r\n");
        for bad in ["-1", "1x", "5, 6", "99999999999999999999", ""] {
            assert_eq!(
                error_of(&[cl(bad).as_bytes()]).kind,
                HttpErrorKind::BadContentLength,
                "{bad}"
            );
        }
        let chunked = te("chunked");
        let head_len = chunked.len() as u64;
        for (bad, kind) in [
            ("zz\r\n", HttpErrorKind::BadChunkSize),
            ("5 \r\n", HttpErrorKind::BadChunkSize),
            ("5\n", HttpErrorKind::BadChunkSize),
            ("1000000000000000\r\n", HttpErrorKind::BadChunkSize),
            ("2\r\nabXY", HttpErrorKind::BadChunkEnd),
        ] {
            let wire = format!("{chunked}{bad}");
            let err = error_of(&[wire.as_bytes()]);
            assert_eq!(err.kind, kind, "{bad:?}");
            let expected = if kind == HttpErrorKind::BadChunkEnd {
                head_len + 5
            } else {
                head_len
            };
            assert_eq!(err.position, expected, "{bad:?}");
        }
        let long = format!("{chunked}5;{}", "x".repeat(5000));
        assert_eq!(
            error_of(&[long.as_bytes()]).kind,
            HttpErrorKind::ChunkLineTooLong
        );
    }

    #[test]
    fn truncation_is_an_error_at_the_end_of_input() {
        let e = error_of(&[b""]);
        assert_eq!((e.kind, e.position), (HttpErrorKind::ClosedBeforeHead, 0));
        let e = error_of(&[b"HTTP/1.1 200"]);
        assert_eq!((e.kind, e.position), (HttpErrorKind::TruncatedHead, 12));
        let e = error_of(&[b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"]);
        assert_eq!((e.kind, e.position), (HttpErrorKind::TruncatedBody, 41));
        let e = error_of(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"]);
        assert_eq!(e.kind, HttpErrorKind::TruncatedBody);
        assert!(e.kind.is_truncation());
    }
}
