//! The SSE line protocol (WHATWG "event stream interpretation"), incremental and bounded.
//!
//! [`Decoder::feed`] takes any slice of the body and hands every event it completes to a
//! callback as an [`Event`]: its type (only `data` and `control` matter to Durable Streams),
//! its data text (the `data:` lines joined by LF) and a map from data-text offsets back to
//! byte positions in the whole stream, so payload errors can name the stream byte.
//!
//! Rules: lines end at CR, LF or CRLF (a CR ending one chunk pairs with an LF starting the
//! next); one leading UTF-8 BOM is dropped; `:` starts a comment; one space after the colon is
//! dropped; `id` containing NUL is ignored, otherwise it becomes `last_event_id` when the next
//! blank line arrives; `retry` counts only when all ASCII digits (and below 2^63); an event
//! without `data` lines is never dispatched. An event whose raw lines (data buffer plus the
//! current line) exceed `max_event_bytes` is an error, so memory stays below the cap plus
//! one chunk.

use std::fmt;

/// What went wrong in the line protocol; `position` is a byte offset in the whole stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// The event being accumulated grew past `max_event_bytes`.
    TooLarge { position: u64, limit: usize },
    /// An `event` or `id` value is not UTF-8.
    InvalidUtf8 { position: u64 },
}

impl SseError {
    pub fn position(&self) -> u64 {
        match *self {
            Self::TooLarge { position, .. } | Self::InvalidUtf8 { position } => position,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::TooLarge { limit, .. } => {
                format!("SSE event larger than max_event_bytes ({limit})")
            }
            Self::InvalidUtf8 { .. } => "invalid UTF-8 in SSE field".to_owned(),
        }
    }
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message(), self.position())
    }
}

impl std::error::Error for SseError {}

/// The event types Durable Streams acts on; everything else is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Data,
    Control,
    Other,
}

/// Maps offsets in an event's data text to byte positions in the stream.
#[derive(Debug, Default, Clone)]
pub struct PositionMap {
    /// (offset of a data line's value in the data text, its stream position), in order.
    lines: Vec<(usize, u64)>,
}

impl PositionMap {
    /// The stream position of data-text offset `off` (offsets past a line's value fall on the
    /// line terminator that follows it).
    pub fn stream_position(&self, off: usize) -> u64 {
        let idx = self.lines.partition_point(|&(o, _)| o <= off);
        match idx.checked_sub(1).and_then(|i| self.lines.get(i)) {
            Some(&(o, p)) => p + (off - o) as u64,
            None => 0,
        }
    }
}

/// A dispatched event.
pub struct Event<'a> {
    pub kind: EventKind,
    /// The data lines joined by LF (no trailing LF).
    pub data: &'a [u8],
    pub positions: &'a PositionMap,
}

impl Event<'_> {
    pub fn stream_position(&self, off: usize) -> u64 {
        self.positions.stream_position(off)
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug)]
pub struct Decoder {
    max_event_bytes: usize,
    /// Bytes fed since the start (or the last reset).
    pos: u64,
    /// The unterminated line carried over from previous chunks, and where it starts.
    partial: Vec<u8>,
    partial_start: u64,
    /// The previous chunk ended with CR: an LF starting the next chunk belongs to it.
    skip_lf: bool,
    /// No line has been completed yet (the BOM may still be there).
    first_line: bool,
    data: Vec<u8>,
    positions: PositionMap,
    kind: Option<EventKind>,
    id_buffer: Option<String>,
    last_event_id: String,
    retry_ms: Option<u64>,
}

/// The position of the first invalid UTF-8 byte of `s`, if any.
fn utf8_error(s: &[u8]) -> Option<usize> {
    std::str::from_utf8(s).err().map(|e| e.valid_up_to())
}

#[inline]
fn find_eol(s: &[u8]) -> Option<usize> {
    memchr::memchr2(b'\n', b'\r', s)
}

impl Decoder {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            pos: 0,
            partial: Vec::new(),
            partial_start: 0,
            skip_lf: false,
            first_line: true,
            data: Vec::new(),
            positions: PositionMap::default(),
            kind: None,
            id_buffer: None,
            last_event_id: String::new(),
            retry_ms: None,
        }
    }

    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Forgets the partial event and the stream position (end of one body); the last event
    /// id and retry survive, as they do across SSE reconnections.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.partial.clear();
        self.skip_lf = false;
        self.first_line = true;
        self.clear_event();
    }

    fn clear_event(&mut self) {
        self.data.clear();
        self.positions.lines.clear();
        self.kind = None;
    }

    fn too_large(&self, line_start: u64) -> SseError {
        SseError::TooLarge {
            position: line_start + self.max_event_bytes.saturating_sub(self.data.len()) as u64,
            limit: self.max_event_bytes,
        }
    }

    /// Feeds the next bytes of the body; `on_event` sees every event they complete, in order.
    pub fn feed<E: From<SseError>>(
        &mut self,
        chunk: &[u8],
        mut on_event: impl FnMut(Event<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let base = self.pos;
        self.pos += chunk.len() as u64;
        let mut i = 0;
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if chunk[0] == b'\n' {
                i = 1;
            }
        }
        while let Some(k) = find_eol(&chunk[i..]) {
            let j = i + k;
            let next = if chunk[j] == b'\r' {
                match chunk.get(j + 1) {
                    Some(b'\n') => j + 2,
                    Some(_) => j + 1,
                    None => {
                        self.skip_lf = true;
                        j + 1
                    }
                }
            } else {
                j + 1
            };
            if self.partial.is_empty() {
                self.line(&chunk[i..j], base + i as u64, &mut on_event)?;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&chunk[i..j]);
                let r = self.line(&line, self.partial_start, &mut on_event);
                line.clear();
                self.partial = line;
                r?;
            }
            i = next;
        }
        if i < chunk.len() {
            if self.partial.is_empty() {
                self.partial_start = base + i as u64;
            }
            self.partial.extend_from_slice(&chunk[i..]);
            if self.data.len() + self.partial.len() > self.max_event_bytes {
                return Err(self.too_large(self.partial_start).into());
            }
        }
        Ok(())
    }

    /// Processes one complete line (without its terminator) that starts at stream byte `start`.
    fn line<E: From<SseError>>(
        &mut self,
        mut line: &[u8],
        mut start: u64,
        on_event: &mut impl FnMut(Event<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.data.len() + line.len() > self.max_event_bytes {
            return Err(self.too_large(start).into());
        }
        if self.first_line {
            self.first_line = false;
            if line.starts_with(BOM) {
                line = &line[3..];
                start += 3;
            }
        }
        if line.is_empty() {
            return self.dispatch(on_event);
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value, value_at) = match memchr::memchr(b':', line) {
            Some(c) => {
                let v = c + 1 + usize::from(line.get(c + 1) == Some(&b' '));
                (&line[..c], &line[v..], v)
            }
            None => (line, &line[line.len()..], line.len()),
        };
        match field {
            b"data" => {
                self.positions
                    .lines
                    .push((self.data.len(), start + value_at as u64));
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => {
                if let Some(bad) = utf8_error(value) {
                    return Err(SseError::InvalidUtf8 {
                        position: start + (value_at + bad) as u64,
                    }
                    .into());
                }
                self.kind = Some(match value {
                    b"data" => EventKind::Data,
                    b"control" => EventKind::Control,
                    _ => EventKind::Other,
                });
            }
            b"id" if !value.contains(&0) => match std::str::from_utf8(value) {
                Ok(s) => self.id_buffer = Some(s.to_owned()),
                Err(e) => {
                    let position = start + (value_at + e.valid_up_to()) as u64;
                    return Err(SseError::InvalidUtf8 { position }.into());
                }
            },
            b"retry" => {
                if let Some(ms) = parse_retry(value) {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch<E>(
        &mut self,
        on_event: &mut impl FnMut(Event<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(id) = self.id_buffer.take() {
            self.last_event_id = id;
        }
        if self.data.is_empty() {
            self.kind = None;
            return Ok(());
        }
        let kind = self.kind.unwrap_or(EventKind::Other);
        let r = if kind == EventKind::Other {
            Ok(())
        } else {
            let text = &self.data[..self.data.len() - 1];
            on_event(Event {
                kind,
                data: text,
                positions: &self.positions,
            })
        };
        self.clear_event();
        r
    }
}

/// `retry` values: one or more ASCII digits, below 2^63.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in value {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    (n < 1 << 63).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Ev(EventKind, String, Vec<u64>);

    fn run(dec: &mut Decoder, chunks: &[&[u8]]) -> Result<Vec<Ev>, SseError> {
        let mut out = Vec::new();
        for c in chunks {
            dec.feed(c, |e: Event<'_>| {
                let pos = (0..=e.data.len()).map(|o| e.stream_position(o)).collect();
                out.push(Ev(e.kind, String::from_utf8(e.data.to_vec()).unwrap(), pos));
                Ok::<(), SseError>(())
            })?;
        }
        Ok(out)
    }

    fn texts(chunks: &[&[u8]]) -> Vec<(EventKind, String)> {
        run(&mut Decoder::new(1 << 20), chunks)
            .unwrap()
            .into_iter()
            .map(|e| (e.0, e.1))
            .collect()
    }

    #[test]
    fn line_endings_and_chunking() {
        let want = vec![
            (EventKind::Data, "a\nb".to_owned()),
            (EventKind::Control, "c".to_owned()),
        ];
        assert_eq!(
            texts(&[b"event: data\r\ndata: a\rdata:b\n\nevent:control\ndata: c\r\r"]),
            want
        );
        assert_eq!(
            texts(&[
                b"event: data\r",
                b"\ndata: a\r",
                b"data:b\r",
                b"\n\r",
                b"\nevent:control\ndata: c\n\n"
            ]),
            want
        );
        let bytes =
            b"\xEF\xBB\xBFevent: data\r\ndata: a\r\ndata:b\r\n\r\nevent:control\ndata: c\n\n";
        for split in 0..bytes.len() {
            let (x, y) = bytes.split_at(split);
            assert_eq!(texts(&[x, y]), want, "split at {split}");
        }
    }

    #[test]
    fn fields() {
        let mut d = Decoder::new(100);
        let evs = run(
            &mut d,
            &[b": hi\nid: 7\n\nevent: data\ndata\nretry: 12x\nretry: 15\nid: a\0b\n\n"],
        )
        .unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].1, "");
        assert_eq!(d.last_event_id(), "7");
        assert_eq!(d.retry_ms(), Some(15));
        // Unknown event types, and the default "message", are skipped.
        assert!(texts(&[b"data: x\n\nevent: other\ndata: y\n\n"]).is_empty());
    }

    #[test]
    fn positions_map_back_to_the_stream() {
        let evs = run(
            &mut Decoder::new(100),
            &[b"event: data\ndata: ab\ndata:c\n\n"],
        )
        .unwrap();
        assert_eq!(evs[0].2, vec![18, 19, 20, 26, 27]);
    }

    #[test]
    fn caps_events() {
        let mut d = Decoder::new(10);
        let e = run(&mut d, &[b"data: 1234", b"56789\n"]).unwrap_err();
        assert_eq!(
            e,
            SseError::TooLarge {
                position: 10,
                limit: 10
            }
        );
        let mut d = Decoder::new(10);
        let e = run(&mut d, &[b"data: 123\ndata: 45\n"]).unwrap_err();
        assert_eq!(
            e,
            SseError::TooLarge {
                position: 10 + 6,
                limit: 10
            }
        );
        let mut d = Decoder::new(10);
        assert!(run(&mut d, &[b"data: 1234\n\n"]).is_ok());
    }

    #[test]
    fn invalid_utf8_in_fields() {
        let e = run(&mut Decoder::new(100), &[b"event: d\xffx\n"]).unwrap_err();
        assert_eq!(e, SseError::InvalidUtf8 { position: 8 });
    }
}
