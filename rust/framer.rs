//! Cuts a JSON-mode body (one array) into groups of whole elements while it arrives, so a
//! long catch-up body is parsed a group at a time instead of being held whole.
//!
//! A group is handed out as bytes that form an array of their own: the body's `[` (or, for
//! later groups, a `[` written over the comma before them), whole elements, and a `]` written
//! over the comma after them (or the body's own closing bracket). Each group is then checked
//! by [`json::scan_group`], which reports byte positions relative to the group; adding the
//! group's `base` gives the position in the body. Cuts are found by tracking nesting depth
//! and strings only; the checking is left to the scanner, and a cut made in bytes that are
//! not valid JSON still ends in the scanner's error at the first bad byte.
//!
//! A group ends at the first comma between top-level elements at least `min_group_bytes`
//! after its start, so groups stay about that size however much arrives at once (a chunk of
//! a gzip body can inflate to megabytes): bytes are scanned only as far as the next cut, and
//! a chunk holding many groups hands them out one by one, each parsed while it is in cache
//! and dropped before the next is built.

use crate::json::{self, JsonError, JsonErrorKind, JsonResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Before,
    Inside,
    After,
}

/// Where a body stands; see the module documentation.
#[derive(Debug)]
pub struct ArrayFramer {
    /// Bytes of the array not handed out yet, from `buf[head]` (a `[`) on; the bytes before
    /// `head` were handed out and go at the next push.
    buf: Vec<u8>,
    /// Where the next group starts in `buf`.
    head: usize,
    /// Body position of `buf[0]`.
    base: usize,
    /// Bytes of the body seen so far.
    total: usize,
    /// How far `buf` has been scanned (positions in `buf`, as are `cut` and `close`).
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The comma that ends the next group.
    cut: Option<usize>,
    /// The array's closing bracket.
    close: Option<usize>,
    stage: Stage,
    /// Whether a group was taken before: the next one then follows a comma.
    taken: bool,
    /// A group of at least this many bytes is handed out before the body ends.
    min_group_bytes: usize,
    /// The group handed out by [`ArrayFramer::group`] and not consumed yet: its end + 1.
    lent: Option<usize>,
    /// The first byte after the array that is not whitespace: reported once the array
    /// itself is found valid, since an error inside it comes first.
    trailing_at: Option<usize>,
}

impl ArrayFramer {
    pub fn new(min_group_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            head: 0,
            base: 0,
            total: 0,
            scanned: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            cut: None,
            close: None,
            stage: Stage::Before,
            taken: false,
            min_group_bytes,
            lent: None,
            trailing_at: None,
        }
    }

    /// Whether the body's opening bracket has arrived.
    pub fn saw_array(&self) -> bool {
        self.stage != Stage::Before
    }

    /// Hands out later groups once they reach `bytes`.
    pub fn set_min_group_bytes(&mut self, bytes: usize) {
        self.min_group_bytes = bytes;
    }

    pub fn min_group_bytes(&self) -> usize {
        self.min_group_bytes
    }

    /// Bytes held for groups not handed out yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Takes the next bytes of the body.
    pub fn push(&mut self, chunk: &[u8]) -> JsonResult<()> {
        debug_assert!(self.lent.is_none(), "push before consume");
        let start = self.total;
        self.total += chunk.len();
        let mut rest = chunk;
        if self.stage == Stage::Before {
            let i = json::skip_ws(chunk, 0);
            if i == chunk.len() {
                return Ok(());
            }
            if chunk[i] != b'[' {
                return Err(error(JsonErrorKind::ExpectedArray, start + i));
            }
            self.stage = Stage::Inside;
            self.base = start + i;
            self.depth = 0;
            rest = &chunk[i..];
        }
        if self.stage == Stage::After {
            self.note_trailing(rest, start);
            return Ok(());
        }
        self.compact();
        self.buf.extend_from_slice(rest);
        Ok(())
    }

    /// Drops the bytes handed out, so `buf` holds about one chunk.
    fn compact(&mut self) {
        let h = self.head;
        if h == 0 {
            return;
        }
        self.buf.drain(..h);
        self.head = 0;
        self.base += h;
        self.scanned -= h;
        self.cut = self.cut.map(|c| c - h);
        self.close = self.close.map(|c| c - h);
    }

    fn note_trailing(&mut self, bytes: &[u8], at: usize) {
        let i = json::skip_ws(bytes, 0);
        if i < bytes.len() && self.trailing_at.is_none() {
            self.trailing_at = Some(at + i);
        }
    }

    /// Scans on to the next cut (`cuts`: a comma at least `min_group_bytes` after `head`),
    /// or to the array's closing bracket, or to the end of `buf`.
    fn scan(&mut self, cuts: bool) {
        let cut_from = if cuts {
            self.head.saturating_add(self.min_group_bytes)
        } else {
            usize::MAX
        };
        let buf = &self.buf;
        let mut i = self.scanned;
        let mut depth = self.depth;
        let mut in_string = self.in_string;
        let mut escaped = self.escaped;
        let mut close = None;
        while i < buf.len() {
            if in_string {
                if escaped {
                    escaped = false;
                    i += 1;
                    continue;
                }
                // Inside a string only a quote or a backslash matters.
                match memchr::memchr2(b'"', b'\\', &buf[i..]) {
                    None => {
                        i = buf.len();
                        break;
                    }
                    Some(k) => {
                        i += k;
                        if buf[i] == b'"' {
                            in_string = false;
                        } else {
                            escaped = true;
                        }
                    }
                }
            } else {
                match buf[i] {
                    b'"' => in_string = true,
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            close = Some(i);
                            i += 1;
                            break;
                        }
                    }
                    b',' if depth == 1 && i >= cut_from => {
                        self.cut = Some(i);
                        i += 1;
                        break;
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        self.scanned = i.min(self.buf.len());
        self.depth = depth;
        self.in_string = in_string;
        self.escaped = escaped;
        if let Some(close) = close {
            let i = json::skip_ws(&self.buf, close + 1);
            if i < self.buf.len() && self.trailing_at.is_none() {
                self.trailing_at = Some(self.base + i);
            }
            self.buf.truncate(close + 1);
            self.scanned = close + 1;
            self.close = Some(close);
            self.stage = Stage::After;
        }
    }

    /// The next group ready to be parsed, with the body position of its first byte: one
    /// that reached `min_group_bytes`, or, once `finished`, the rest of the array. `None`
    /// when there is nothing (yet). Call [`ArrayFramer::consume`] once the group is parsed.
    pub fn group(&mut self, finished: bool) -> JsonResult<Option<(&[u8], usize)>> {
        debug_assert!(self.lent.is_none(), "group before consume");
        if self.stage == Stage::Before {
            return Ok(None);
        }
        if finished {
            self.cut = None;
        }
        if self.cut.is_none() && self.close.is_none() {
            self.scan(!finished);
        }
        let head = self.head;
        let end = match (self.stage, self.close, self.cut) {
            (Stage::Inside, _, _) if finished => {
                let e = json::scan_group(&self.buf[head..], |_, _| {})
                    .err()
                    .unwrap_or(error(JsonErrorKind::UnexpectedEnd, self.buf.len() - head));
                return Err(error(e.kind, self.base + head + e.position));
            }
            (Stage::After, Some(close), _) if finished => close,
            (_, _, Some(cut)) if !finished => {
                if json::skip_ws(&self.buf, head + 1) == cut {
                    return Err(error(JsonErrorKind::ExpectedValue, self.base + cut));
                }
                self.buf[cut] = b']';
                cut
            }
            _ => return Ok(None),
        };
        if self.close == Some(end) {
            if self.taken && json::skip_ws(&self.buf, head + 1) == end {
                return Err(error(JsonErrorKind::ExpectedValue, self.base + end));
            }
            if let Some(at) = self.trailing_at {
                let e = json::scan_group(&self.buf[head..], |_, _| {})
                    .err()
                    .map_or(error(JsonErrorKind::TrailingData, at), |e| {
                        error(e.kind, self.base + head + e.position)
                    });
                return Err(e);
            }
        }
        self.lent = Some(end + 1);
        Ok(Some((&self.buf[head..=end], self.base + head)))
    }

    /// Drops the group [`ArrayFramer::group`] handed out.
    pub fn consume(&mut self) {
        let Some(len) = self.lent.take() else {
            return;
        };
        let end = len - 1;
        self.cut = None;
        if self.close == Some(end) {
            self.buf.clear();
            self.head = 0;
            self.close = None;
            self.scanned = 0;
            return;
        }
        // The comma after this group opens the next one.
        self.buf[end] = b'[';
        self.head = end;
        self.taken = true;
    }
}

fn error(kind: JsonErrorKind, position: usize) -> JsonError {
    JsonError { kind, position }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JsonErrorKind::*;

    /// The elements of `body` fed in pieces of `step` bytes, and the groups' sizes in
    /// bytes; after each piece every group ready is taken (`drain`), or only the first.
    fn frame_with(
        body: &[u8],
        step: usize,
        min: usize,
        drain: bool,
    ) -> JsonResult<(Vec<Vec<u8>>, Vec<usize>)> {
        let mut f = ArrayFramer::new(min);
        let mut out = Vec::new();
        let mut groups = Vec::new();
        let mut take = |f: &mut ArrayFramer, finished: bool| -> JsonResult<bool> {
            let Some((g, base)) = f.group(finished)? else {
                return Ok(false);
            };
            let g = g.to_vec();
            json::scan_group(&g, |a, b| out.push(g[a..b].to_vec()))
                .map_err(|e| error(e.kind, base + e.position))?;
            groups.push(g.len());
            f.consume();
            Ok(true)
        };
        for piece in body.chunks(step.max(1)) {
            f.push(piece)?;
            while take(&mut f, false)? && drain {}
        }
        take(&mut f, true)?;
        Ok((out, groups))
    }

    fn frame(body: &[u8], step: usize, min: usize) -> JsonResult<(Vec<Vec<u8>>, usize)> {
        let (out, groups) = frame_with(body, step, min, true)?;
        let undrained = frame_with(body, step, min, false);
        assert_eq!(undrained.as_ref().map(|r| &r.0), Ok(&out));
        Ok((out, groups.len()))
    }

    fn whole(body: &[u8]) -> JsonResult<Vec<Vec<u8>>> {
        Ok(json::split_array(body)?
            .into_iter()
            .map(|(a, b)| body[a..b].to_vec())
            .collect())
    }

    #[test]
    fn any_cut_gives_the_same_elements() {
        let body = br#" [ 1 , "a,]\"" ,{"k": [1, {}]},null, "\\" , [[]] ] "#;
        let expect = whole(body).unwrap();
        for step in 1..body.len() + 1 {
            for min in [0, 1, 5, 1000] {
                assert_eq!(
                    frame(body, step, min).unwrap().0,
                    expect,
                    "step {step} min {min}"
                );
            }
        }
    }

    #[test]
    fn small_bodies_are_one_group() {
        assert_eq!(frame(b"[1,2,3]", 1, 100).unwrap().1, 1);
        assert_eq!(frame(b"[1,2,3]", 1, 0).unwrap().1, 3);
        assert_eq!(frame(b"  ", 1, 0).unwrap(), (vec![], 0));
        assert_eq!(frame(b"[]", 1, 0).unwrap(), (vec![], 1));
    }

    #[test]
    fn errors_name_the_body_byte_for_any_cut() {
        let cases: &[(&[u8], JsonErrorKind, usize)] = &[
            (b"{}", ExpectedArray, 0),
            (b"  1", ExpectedArray, 2),
            (b"[", UnexpectedEnd, 1),
            (b"[1,2", UnexpectedEnd, 4),
            (b"[1,]", ExpectedValue, 3),
            (b"[,1]", ExpectedValue, 1),
            (b"[1,,2]", ExpectedValue, 3),
            (b"[1 2]", ExpectedCommaOrBracket, 3),
            (b"[1] x", TrailingData, 4),
            (b"[1]]", TrailingData, 3),
            (b"[1,{\"a\":1]]", ExpectedCommaOrBrace, 9),
            (b"[1,\"\xff\"]", InvalidUtf8, 4),
            (b"[1,\"\\ud800\"]", LoneSurrogate, 4),
            (b"[1,2}", ExpectedCommaOrBracket, 4),
            (b"[1,,] x", ExpectedValue, 3),
        ];
        for &(body, kind, position) in cases {
            for step in 1..body.len() + 1 {
                for min in [0, 2, 100] {
                    for drain in [true, false] {
                        let e = frame_with(body, step, min, drain).unwrap_err();
                        assert_eq!(
                            (e.kind, e.position),
                            (kind, position),
                            "{body:?} {step} {min} {drain}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_chunk_of_many_groups_hands_them_out_one_by_one() {
        let elements: Vec<String> = (0..2000)
            .map(|i| format!(r#"{{"i":{i},"s":"a,]{i}"}}"#))
            .collect();
        let body = format!("[{}] ", elements.join(","));
        let body = body.as_bytes();
        let longest = elements.iter().map(String::len).max().unwrap();
        for step in [body.len(), 4096, 1000, 7] {
            let (out, groups) = frame_with(body, step, 256, true).unwrap();
            assert_eq!(out, whole(body).unwrap(), "step {step}");
            let (last, full) = groups.split_last().unwrap();
            // Each group ends at the first comma at least 256 bytes after its start.
            assert!(
                full.iter().all(|&g| (257..=258 + longest).contains(&g)),
                "{full:?}"
            );
            assert!(*last <= 258 + longest);
            // Neighbours share a byte: the comma between them, `]` of one and `[` of the next.
            let shared = groups.len() - 1;
            assert_eq!(groups.iter().sum::<usize>(), body.len() - 1 + shared);
        }
    }
}
