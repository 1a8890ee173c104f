//! Append-body assembly: a JSON array of messages for JSON streams, plain concatenation
//! otherwise, never growing past `max_batch_bytes` unless a single message alone does.

use crate::json::{self, JsonResult};

#[derive(Debug)]
pub struct Batch {
    json_mode: bool,
    max_bytes: usize,
    /// The body so far; in JSON mode without its closing `]`.
    buf: Vec<u8>,
    count: usize,
}

impl Batch {
    pub fn new(json_mode: bool, max_bytes: usize) -> Self {
        Self {
            json_mode,
            max_bytes,
            buf: Vec::new(),
            count: 0,
        }
    }

    pub fn json_mode(&self) -> bool {
        self.json_mode
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The exact length of the body [`Batch::take`] would return now.
    pub fn nbytes(&self) -> usize {
        if self.json_mode && self.count > 0 {
            self.buf.len() + 1
        } else {
            self.buf.len()
        }
    }

    /// The body length with one more message of `len` bytes.
    fn nbytes_with(&self, len: usize) -> usize {
        match (self.json_mode, self.count) {
            (false, _) => self.buf.len() + len,
            (true, 0) => len + 2,
            (true, _) => self.buf.len() + len + 2,
        }
    }

    fn fits(&self, len: usize) -> bool {
        self.count == 0 || self.nbytes_with(len) <= self.max_bytes
    }

    /// Adds one message that is already bytes of the right kind: a single, trimmed JSON value
    /// in JSON mode, raw bytes otherwise. False (and nothing added) if it does not fit.
    pub fn push_encoded(&mut self, msg: &[u8]) -> bool {
        if !self.fits(msg.len()) {
            return false;
        }
        if self.json_mode {
            self.buf.push(if self.count == 0 { b'[' } else { b',' });
        }
        self.buf.extend_from_slice(msg);
        self.count += 1;
        true
    }

    /// Adds one message written straight into the body by `write` (a single JSON value in
    /// JSON mode), saving the copy [`Batch::push_encoded`] makes. False (and nothing added) if
    /// it does not fit; an error from `write` leaves the batch as it was.
    pub fn push_written<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<bool, E> {
        let mark = self.buf.len();
        if self.json_mode {
            self.buf.push(if self.count == 0 { b'[' } else { b',' });
        }
        if let Err(e) = write(&mut self.buf) {
            self.buf.truncate(mark);
            return Err(e);
        }
        let closing = usize::from(self.json_mode);
        if self.count > 0 && self.buf.len() + closing > self.max_bytes {
            self.buf.truncate(mark);
            return Ok(false);
        }
        self.count += 1;
        Ok(true)
    }

    /// Adds one pre-serialized JSON text (JSON mode), validated and trimmed of whitespace.
    pub fn push_json_text(&mut self, text: &[u8]) -> JsonResult<bool> {
        let (a, b) = json::validate_value(text)?;
        Ok(self.push_encoded(&text[a..b]))
    }

    /// The body (empty when there are no messages); the batch starts over.
    pub fn take(&mut self) -> Vec<u8> {
        if self.json_mode && self.count > 0 {
            self.buf.push(b']');
        }
        self.count = 0;
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_batches() {
        let mut b = Batch::new(true, 10);
        assert_eq!(b.take(), b"");
        assert!(b.push_json_text(b" 123 ").unwrap());
        assert_eq!(b.nbytes(), 5);
        assert!(b.push_json_text(b"\"ab\"").unwrap());
        assert_eq!(b.nbytes(), 10);
        assert!(!b.push_json_text(b"1").unwrap());
        assert_eq!(b.len(), 2);
        assert_eq!(b.take(), b"[123,\"ab\"]");
        assert!(b.push_json_text(b"[1,2,3,4,5,6]").unwrap());
        assert_eq!(b.take(), b"[[1,2,3,4,5,6]]");
        assert!(b.push_json_text(b"[1,").is_err());
        assert!(b.is_empty());
    }

    #[test]
    fn written_messages_count_as_pushed_ones() {
        let mut b = Batch::new(true, 10);
        let write = |text: &'static [u8]| {
            move |buf: &mut Vec<u8>| -> Result<(), ()> {
                buf.extend_from_slice(text);
                Ok(())
            }
        };
        assert_eq!(b.push_written(write(b"123")), Ok(true));
        assert_eq!(b.push_written(write(b"\"ab\"")), Ok(true));
        assert_eq!(b.nbytes(), 10);
        assert_eq!(b.push_written(write(b"1")), Ok(false));
        let failing = |buf: &mut Vec<u8>| -> Result<(), ()> {
            buf.extend_from_slice(b"{\"half");
            Err(())
        };
        assert_eq!(b.push_written(failing), Err(()));
        assert_eq!(b.len(), 2);
        assert_eq!(b.take(), b"[123,\"ab\"]");
        assert_eq!(b.push_written(failing), Err(()));
        assert_eq!(b.push_written(write(b"[1,2,3,4,5,6]")), Ok(true));
        assert_eq!(b.take(), b"[[1,2,3,4,5,6]]");
        let mut raw = Batch::new(false, 4);
        assert_eq!(raw.push_written(write(b"ab")), Ok(true));
        assert_eq!(raw.push_written(write(b"cde")), Ok(false));
        assert_eq!(raw.take(), b"ab");
    }

    #[test]
    fn raw_batches() {
        let mut b = Batch::new(false, 4);
        assert!(b.push_encoded(b"ab"));
        assert!(b.push_encoded(b"cd"));
        assert!(!b.push_encoded(b"e"));
        assert_eq!(b.nbytes(), 4);
        assert_eq!(b.take(), b"abcd");
        assert!(b.push_encoded(b"toolong"));
        assert_eq!(b.take(), b"toolong");
    }
}
