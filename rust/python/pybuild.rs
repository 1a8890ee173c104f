//! Builds Python objects straight from JSON bytes, in one pass, with no tree in between.
//!
//! It accepts exactly what the scanner of [`crate::json`] accepts (RFC 8259, at most
//! [`MAX_DEPTH`] levels, integer parts of at most [`MAX_INT_DIGITS`] digits, no lone
//! surrogates, UTF-8 only) and gives the values `json.loads` gives. It does not say *why* a
//! text is wrong: on any failure it stops, and the caller asks the scanner for the kind and
//! the byte, so both cores report the same error.
//!
//! What makes it fast: ASCII strings without escapes are copied once into a new `str`;
//! object keys are looked up, by their raw bytes, in a small cache of `str` objects made
//! earlier in the same parse (so a body of a thousand messages with the same four keys makes
//! four key objects, each hashed once); list elements wait on one shared stack and go into a
//! list made at its final size; integers of up to 18 digits are read without a detour.
//!
//! Under the stable ABI (`abi3`, CPython's limited API) a `str` cannot be allocated and then
//! filled (`PyUnicode_New`, `PyUnicode_DATA`), a list item cannot be set without a call
//! (`PyList_SET_ITEM`), and reference counts change through calls; a build for one CPython
//! version (no `Py_LIMITED_API`) uses the direct forms.

use num_bigint::BigInt;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::json::{skip_ws, MAX_DEPTH, MAX_INT_DIGITS};

/// Why a build stopped: the text is not valid (the scanner says where), or Python raised
/// (out of memory).
pub enum Stop {
    Invalid,
    Raised(PyErr),
}

/// What the builder's steps return: `None` when the build stops. Python's error indicator
/// is set when Python raised, and clear when the text is invalid; [`build_array`] tells the
/// two apart once, at the end, so each step returns a single pointer.
type Built<T> = Option<T>;

/// Builds the array that starts at `s[start]` (a `[`); returns it and the index just past it.
pub fn build_array<'py>(
    py: Python<'py>,
    s: &[u8],
    start: usize,
) -> Result<(Bound<'py, PyList>, usize), Stop> {
    if s.get(start) != Some(&b'[') {
        return Err(Stop::Invalid);
    }
    let mut b = Builder::new(py, s, start);
    match b.array(0) {
        // SAFETY: `array` always returns a list.
        Some(list) => Ok((unsafe { list.cast_into_unchecked() }, b.pos)),
        None => Err(PyErr::take(py).map_or(Stop::Invalid, Stop::Raised)),
    }
}

/// An owned reference from a call that returns a new reference, or null with an exception
/// set (which stays set).
#[inline]
fn owned<'py>(py: Python<'py>, ptr: *mut ffi::PyObject) -> Built<Bound<'py, PyAny>> {
    // SAFETY: `ptr` is a new reference or null.
    unsafe { Bound::from_owned_ptr_or_opt(py, ptr) }
}

/// A string's raw bytes held a backslash.
const ESCAPED: u8 = 1;
/// A string's raw bytes held a byte of 0x80 or more.
const NON_ASCII: u8 = 2;

/// Bytes that end the fast loop of a string scan: the quote, the backslash, control
/// characters and every byte of a multi-byte UTF-8 sequence.
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = c < 0x20 || c == b'"' as usize || c == b'\\' as usize || c >= 0x80;
        c += 1;
    }
    t
};

/// In eight bytes read little-endian, a mask whose lowest set bit is the high bit of the
/// first byte that stops a string scan (see [`STRING_STOP`]); zero if none does. Bits above
/// the lowest may be false alarms (borrows), so only the lowest is used.
#[inline]
fn string_stops(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_byte(w ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    quote | backslash | control | (w & HIGH)
}

/// Keys cached per parse: a text gets about one slot per 16 bytes, from 2^3 to 2^8, so a
/// small body does not pay for a large table.
const KEY_BITS_MAX: u32 = 8;
const KEY_BITS_MIN: u32 = 3;
/// The longest raw key cached.
const KEY_MAX: usize = 64;

/// A key made earlier in this parse: its raw bytes are `s[start..start + len]`.
struct KeySlot<'py> {
    start: usize,
    len: usize,
    key: Bound<'py, PyAny>,
}

struct Builder<'py, 'a> {
    py: Python<'py>,
    s: &'a [u8],
    /// Where the next step reads.
    pos: usize,
    /// Elements of the arrays being built, innermost last.
    stack: Vec<Bound<'py, PyAny>>,
    /// A string being unescaped.
    scratch: Vec<u8>,
    keys: Vec<Option<KeySlot<'py>>>,
    /// The cache has `1 << key_bits` slots.
    key_bits: u32,
}

impl<'py, 'a> Builder<'py, 'a> {
    fn new(py: Python<'py>, s: &'a [u8], pos: usize) -> Self {
        let key_bits = (s.len() / 16)
            .checked_ilog2()
            .unwrap_or(0)
            .clamp(KEY_BITS_MIN, KEY_BITS_MAX);
        Self {
            py,
            s,
            pos,
            stack: Vec::new(),
            scratch: Vec::new(),
            keys: (0..1usize << key_bits).map(|_| None).collect(),
            key_bits,
        }
    }

    #[inline]
    fn skip_ws(&mut self) {
        self.pos = skip_ws(self.s, self.pos);
    }

    /// The value that starts exactly at `pos`; `pos` moves past it.
    fn value(&mut self, depth: usize) -> Built<Bound<'py, PyAny>> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.s.get(self.pos) {
            Some(b'"') => {
                let a = self.pos + 1;
                let flags = self.scan_string()?;
                self.make_str(a, self.pos - 1, flags)
            }
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'-' | b'0'..=b'9') => self.number(),
            // SAFETY: the interpreter's singletons, never null.
            Some(b't') => self.literal(b"true", unsafe { ffi::Py_True() }),
            Some(b'f') => self.literal(b"false", unsafe { ffi::Py_False() }),
            Some(b'n') => self.literal(b"null", unsafe { ffi::Py_None() }),
            _ => None,
        }
    }

    fn literal(&mut self, lit: &[u8], obj: *mut ffi::PyObject) -> Built<Bound<'py, PyAny>> {
        if self.s.get(self.pos..self.pos + lit.len()) != Some(lit) {
            return None;
        }
        self.pos += lit.len();
        // SAFETY: `obj` is a live singleton; the new reference is ours.
        Some(unsafe { Bound::from_borrowed_ptr(self.py, obj) })
    }

    fn array(&mut self, depth: usize) -> Built<Bound<'py, PyAny>> {
        let s = self.s;
        let mark = self.stack.len();
        self.pos += 1;
        self.skip_ws();
        if s.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Some(PyList::empty(self.py).into_any());
        }
        loop {
            let v = self.value(depth + 1)?;
            self.stack.push(v);
            self.skip_ws();
            match s.get(self.pos) {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b']') => break,
                _ => return None,
            }
        }
        self.pos += 1;
        let n = self.stack.len() - mark;
        // SAFETY: a new list of `n` empty slots, each filled once below with a reference
        // it takes over (`PyList_SET_ITEM` and `PyList_SetItem` steal).
        let list = owned(self.py, unsafe { ffi::PyList_New(n as ffi::Py_ssize_t) })?;
        for (k, v) in self.stack.drain(mark..).enumerate() {
            #[cfg(not(Py_LIMITED_API))]
            unsafe {
                ffi::PyList_SET_ITEM(list.as_ptr(), k as ffi::Py_ssize_t, v.into_ptr());
            }
            #[cfg(Py_LIMITED_API)]
            unsafe {
                ffi::PyList_SetItem(list.as_ptr(), k as ffi::Py_ssize_t, v.into_ptr());
            }
        }
        Some(list)
    }

    fn object(&mut self, depth: usize) -> Built<Bound<'py, PyAny>> {
        let s = self.s;
        // SAFETY: a new reference or null.
        let dict = owned(self.py, unsafe { ffi::PyDict_New() })?;
        self.pos += 1;
        self.skip_ws();
        if s.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Some(dict);
        }
        loop {
            if s.get(self.pos) != Some(&b'"') {
                return None;
            }
            let key_at = self.pos + 1;
            let key_flags = self.scan_string()?;
            let key_end = self.pos - 1;
            self.skip_ws();
            if s.get(self.pos) != Some(&b':') {
                return None;
            }
            self.pos += 1;
            self.skip_ws();
            let v = self.value(depth + 1)?;
            // The key is looked up only now: the value's own keys may have taken its slot.
            self.set_item(&dict, key_at, key_end, key_flags, &v)?;
            self.skip_ws();
            match s.get(self.pos) {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Some(dict);
                }
                _ => return None,
            }
        }
    }

    /// Moves `pos` from the opening quote of a string past its closing quote; returns
    /// whether the string holds escapes or non-ASCII bytes. Control characters stop it;
    /// escapes and UTF-8 are checked when the string is made.
    #[inline]
    fn scan_string(&mut self) -> Built<u8> {
        let s = self.s;
        let mut j = self.pos + 1;
        let mut flags = 0;
        loop {
            // To the next byte that stops the scan: eight bytes at a time while eight
            // remain, then byte by byte.
            while let Some(w) = s.get(j..j + 8) {
                let m = string_stops(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
                if m != 0 {
                    j += m.trailing_zeros() as usize / 8;
                    break;
                }
                j += 8;
            }
            if j + 8 > s.len() {
                while let Some(&c) = s.get(j) {
                    if STRING_STOP[c as usize] {
                        break;
                    }
                    j += 1;
                }
            }
            match s.get(j) {
                Some(b'"') => {
                    self.pos = j + 1;
                    return Some(flags);
                }
                Some(b'\\') => {
                    flags |= ESCAPED;
                    // Whatever follows is checked when the string is unescaped; a quote
                    // after a backslash never ends the string.
                    j += 2;
                }
                Some(&c) if c >= 0x80 => {
                    flags |= NON_ASCII;
                    j += 1;
                }
                _ => return None,
            }
        }
    }

    /// The `str` of the raw string bytes `s[a..b]` (between the quotes).
    #[inline]
    fn make_str(&mut self, a: usize, b: usize, flags: u8) -> Built<Bound<'py, PyAny>> {
        if flags == 0 {
            return ascii_str(self.py, &self.s[a..b]);
        }
        self.make_str_slow(a, b, flags)
    }

    #[cold]
    fn make_str_slow(&mut self, a: usize, b: usize, flags: u8) -> Built<Bound<'py, PyAny>> {
        let raw = &self.s[a..b];
        if flags & ESCAPED == 0 {
            std::str::from_utf8(raw).ok()?;
            return utf8_str(self.py, raw);
        }
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let made = unescape(raw, &mut out).and_then(|ascii| {
            if ascii {
                ascii_str(self.py, &out)
            } else if flags & NON_ASCII != 0 && std::str::from_utf8(&out).is_err() {
                None
            } else {
                utf8_str(self.py, &out)
            }
        });
        self.scratch = out;
        made
    }

    /// `dict[key] = v`, the key's raw bytes being `s[a..b]`: its `str` comes from the cache,
    /// or is made and cached (hashed once, the hash kept in the object for every dict).
    #[inline]
    fn set_item(
        &mut self,
        dict: &Bound<'py, PyAny>,
        a: usize,
        b: usize,
        flags: u8,
        v: &Bound<'py, PyAny>,
    ) -> Built<()> {
        let len = b - a;
        let raw = &self.s[a..b];
        let slot = key_hash(raw, self.key_bits);
        if let Some(k) = &self.keys[slot] {
            if k.len == len && same_bytes(&self.s[k.start..k.start + len], raw) {
                return set(dict, &k.key, v);
            }
        }
        self.set_other_key(dict, a, b, flags, v, slot)
    }

    /// [`Builder::set_item`] for a key not in its first slot. Each hash has two slots, side
    /// by side, so two keys that collide do not evict each other.
    fn set_other_key(
        &mut self,
        dict: &Bound<'py, PyAny>,
        a: usize,
        b: usize,
        flags: u8,
        v: &Bound<'py, PyAny>,
        slot: usize,
    ) -> Built<()> {
        let len = b - a;
        if let Some(k) = &self.keys[slot ^ 1] {
            if k.len == len && same_bytes(&self.s[k.start..k.start + len], &self.s[a..b]) {
                return set(dict, &k.key, v);
            }
        }
        let key = self.make_str(a, b, flags)?;
        if len > KEY_MAX {
            return set(dict, &key, v);
        }
        // SAFETY: a live `str`.
        if unsafe { ffi::PyObject_Hash(key.as_ptr()) } == -1 {
            return None;
        }
        set(dict, &key, v)?;
        let slot = if self.keys[slot].is_some() && self.keys[slot ^ 1].is_none() {
            slot ^ 1
        } else {
            slot
        };
        self.keys[slot] = Some(KeySlot { start: a, len, key });
        Some(())
    }

    fn number(&mut self) -> Built<Bound<'py, PyAny>> {
        let s = self.s;
        let py = self.py;
        let i = self.pos;
        let digits_from = |mut j: usize| {
            while j < s.len() && s[j].is_ascii_digit() {
                j += 1;
            }
            j
        };
        let mut j = i;
        let negative = s[j] == b'-';
        if negative {
            j += 1;
        }
        let int_start = j;
        match s.get(j) {
            Some(b'0') => j += 1,
            Some(b'1'..=b'9') => j = digits_from(j + 1),
            _ => return None,
        }
        let int_end = j;
        if int_end - int_start > MAX_INT_DIGITS {
            return None;
        }
        let mut float = false;
        if s.get(j) == Some(&b'.') {
            float = true;
            if !s.get(j + 1).is_some_and(u8::is_ascii_digit) {
                return None;
            }
            j = digits_from(j + 2);
        }
        if matches!(s.get(j), Some(b'e' | b'E')) {
            float = true;
            j += 1;
            if matches!(s.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if !s.get(j).is_some_and(u8::is_ascii_digit) {
                return None;
            }
            j = digits_from(j + 1);
        }
        self.pos = j;
        if float {
            // SAFETY: sign, digits, '.', 'e', 'E' and '+' only, all ASCII.
            let text = unsafe { std::str::from_utf8_unchecked(&s[i..j]) };
            // Rust's parse is correctly rounded, as CPython's `float()` is; out of range
            // gives an infinity or zero, as there.
            let x: f64 = text.parse().ok()?;
            // SAFETY: a new reference or null.
            return owned(py, unsafe { ffi::PyFloat_FromDouble(x) });
        }
        let digits = &s[int_start..int_end];
        if digits.len() <= 18 {
            let mut v: i64 = 0;
            for &d in digits {
                v = v * 10 + i64::from(d - b'0');
            }
            if negative {
                v = -v;
            }
            // SAFETY: a new reference or null.
            return owned(py, unsafe { ffi::PyLong_FromLongLong(v) });
        }
        big_int(py, &s[i..int_end])
    }
}

/// `dict[key] = v`.
#[inline]
fn set(dict: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>) -> Built<()> {
    // SAFETY: live objects; `PyDict_SetItem` takes its own references.
    (unsafe { ffi::PyDict_SetItem(dict.as_ptr(), key.as_ptr(), v.as_ptr()) } == 0).then_some(())
}

/// An integer of 19 digits or more (`text` is its sign and digits).
#[cold]
fn big_int<'py>(py: Python<'py>, text: &[u8]) -> Built<Bound<'py, PyAny>> {
    let n = BigInt::parse_bytes(text, 10)?;
    match n.into_pyobject(py) {
        Ok(v) => Some(v.into_any()),
        Err(e) => {
            e.restore(py);
            None
        }
    }
}

/// Whether two slices of the same length are equal, eight bytes at a time (keys are too
/// short for a call to `memcmp` to pay).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let word = |s: &[u8], k: usize| u64::from_ne_bytes(s[k..k + 8].try_into().unwrap_or([0; 8]));
    let mut k = 0;
    while k + 8 <= a.len() {
        if word(a, k) != word(b, k) {
            return false;
        }
        k += 8;
    }
    a[k..].iter().zip(&b[k..]).all(|(x, y)| x == y)
}

/// A hash of a short key's bytes, `bits` (1 to 63) wide, for its cache slot: a few loads
/// and one multiplication (collisions only cost a miss).
#[inline]
fn key_hash(raw: &[u8], bits: u32) -> usize {
    let n = raw.len();
    let u32_at = |k: usize| {
        u64::from(u32::from_le_bytes(
            raw[k..k + 4].try_into().unwrap_or([0; 4]),
        ))
    };
    let u64_at = |k: usize| u64::from_le_bytes(raw[k..k + 8].try_into().unwrap_or([0; 8]));
    let w = if n >= 8 {
        u64_at(0) ^ u64_at(n - 8).rotate_left(32)
    } else if n >= 4 {
        u32_at(0) | (u32_at(n - 4) << 32)
    } else if n > 0 {
        u64::from(raw[0]) | (u64::from(raw[n / 2]) << 8) | (u64::from(raw[n - 1]) << 16)
    } else {
        0
    };
    let h = (w ^ (n as u64).wrapping_mul(0x9e37_79b9)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> (64 - bits)) as usize
}

/// A `str` of ASCII bytes.
#[inline]
fn ascii_str<'py>(py: Python<'py>, raw: &[u8]) -> Built<Bound<'py, PyAny>> {
    #[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy)))]
    {
        // SAFETY: `PyUnicode_New` with a maximum character of 127 allocates a one-byte
        // (compact ASCII) string of `raw.len()` characters and its terminating NUL; every
        // byte is written before the object is used.
        unsafe {
            let obj = owned(py, ffi::PyUnicode_New(raw.len() as ffi::Py_ssize_t, 127))?;
            let data = ffi::PyUnicode_DATA(obj.as_ptr()).cast::<u8>();
            std::ptr::copy_nonoverlapping(raw.as_ptr(), data, raw.len());
            *data.add(raw.len()) = 0;
            Some(obj)
        }
    }
    #[cfg(any(Py_LIMITED_API, PyPy, GraalPy))]
    {
        utf8_str(py, raw)
    }
}

/// A `str` of valid UTF-8 bytes.
#[inline]
fn utf8_str<'py>(py: Python<'py>, raw: &[u8]) -> Built<Bound<'py, PyAny>> {
    // SAFETY: a new reference or null.
    owned(py, unsafe {
        ffi::PyUnicode_FromStringAndSize(raw.as_ptr().cast(), raw.len() as ffi::Py_ssize_t)
    })
}

/// The code unit of the four hex digits `h`, if they are hex digits.
#[inline]
fn hex4(h: &[u8]) -> Option<u32> {
    let mut v = 0;
    for &c in h {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        v = v * 16 + u32::from(d);
    }
    Some(v)
}

/// Unescapes the raw bytes of a string into `out`; whether the result is all ASCII.
/// Bytes that are not escapes are copied as they are (the caller checks their UTF-8).
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Built<bool> {
    let mut ascii = true;
    let mut j = 0;
    while j < raw.len() {
        let Some(k) = memchr::memchr(b'\\', &raw[j..]) else {
            out.extend_from_slice(&raw[j..]);
            ascii &= raw[j..].is_ascii();
            break;
        };
        out.extend_from_slice(&raw[j..j + k]);
        ascii &= raw[j..j + k].is_ascii();
        j += k;
        let c = match raw.get(j + 1) {
            Some(b'"') => b'"',
            Some(b'\\') => b'\\',
            Some(b'/') => b'/',
            Some(b'b') => 0x08,
            Some(b'f') => 0x0c,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'u') => {
                let cu = raw.get(j + 2..j + 6).and_then(hex4)?;
                j += 6;
                let ch = match cu {
                    0xD800..=0xDBFF => {
                        if raw.get(j..j + 2) != Some(b"\\u") {
                            return None;
                        }
                        let low = raw.get(j + 2..j + 6).and_then(hex4)?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return None;
                        }
                        j += 6;
                        0x10000 + ((cu - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => cu,
                };
                let ch = char::from_u32(ch)?;
                ascii &= ch.is_ascii();
                let mut buf = [0; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            _ => return None,
        };
        out.push(c);
        j += 2;
    }
    Some(ascii)
}
