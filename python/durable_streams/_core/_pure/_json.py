"""JSON for the pure-Python core: parsing, splitting, validating and encoding.

Mirrors ``rust/json.rs`` (the scanner that names the offending byte) and ``rust/encode.rs``.
The fast path is :func:`json.loads`; whenever it fails, or a cheap pre-check says it might
accept something the native core rejects (lone surrogate escapes, over-long integers, deep
nesting), the scanner decides, so both cores report the same errors at the same positions.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

from ..._errors import JSONParseError

__all__ = [
    "MAX_DEPTH",
    "JsonScanError",
    "encode_into",
    "encode_json",
    "loads_array",
    "loads_group",
    "loads_value",
    "parse_json_array",
    "scan_array",
    "scan_group",
    "split_json_array",
    "validate_value",
]

MAX_DEPTH = 200
MAX_INT_DIGITS = 4300
MAX_ENCODE_DEPTH = 500
_WS = b" \t\n\r"

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONG_DIGITS = re.compile(rb"[0-9]{4301}")


class JsonScanError(Exception):
    """A rejected JSON text: the shared message and the offending byte offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message, position)
        self.message = message
        self.position = position


def _fail(message: str, position: int) -> NoReturn:
    raise JsonScanError(message, position)


def _skip_ws(s: bytes | bytearray, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return i


def _check_utf8(s: bytes) -> str:
    try:
        return s.decode("utf-8")
    except UnicodeDecodeError as e:
        _fail("invalid UTF-8", e.start)


class _Scanner:
    __slots__ = ("n", "s")

    def __init__(self, s: bytes) -> None:
        self.s = s
        self.n = len(s)

    def eof(self) -> NoReturn:
        _fail("unexpected end of JSON input", self.n)

    def value(self, i: int, depth: int) -> int:
        s = self.s
        if i >= self.n:
            self.eof()
        if depth > MAX_DEPTH:
            _fail("JSON nested deeper than 200 levels", i)
        c = s[i]
        if c == 0x7B:  # {
            return self.obj(i, depth)
        if c == 0x5B:  # [
            return self.array(i, depth, None)
        if c == 0x22:  # "
            return self.string(i)
        if c == 0x2D or 0x30 <= c <= 0x39:
            return self.number(i)
        if c == 0x74:
            return self.literal(i, b"true")
        if c == 0x66:
            return self.literal(i, b"false")
        if c == 0x6E:
            return self.literal(i, b"null")
        _fail("expected a JSON value", i)

    def literal(self, i: int, lit: bytes) -> int:
        for k, want in enumerate(lit):
            if i + k >= self.n:
                self.eof()
            if self.s[i + k] != want:
                _fail("expected a JSON value", i + k)
        return i + len(lit)

    def array(self, i: int, depth: int, elements: list[tuple[int, int]] | None) -> int:
        s = self.s
        j = _skip_ws(s, i + 1)
        if j >= self.n:
            self.eof()
        if s[j] == 0x5D:
            return j + 1
        while True:
            end = self.value(j, depth + 1)
            if elements is not None:
                elements.append((j, end))
            j = _skip_ws(s, end)
            if j >= self.n:
                self.eof()
            c = s[j]
            if c == 0x2C:
                j = _skip_ws(s, j + 1)
            elif c == 0x5D:
                return j + 1
            else:
                _fail("expected ',' or ']'", j)

    def obj(self, i: int, depth: int) -> int:
        s = self.s
        j = _skip_ws(s, i + 1)
        if j >= self.n:
            self.eof()
        if s[j] == 0x7D:
            return j + 1
        while True:
            if j >= self.n:
                self.eof()
            if s[j] != 0x22:
                _fail("expected a string key", j)
            j = _skip_ws(s, self.string(j))
            if j >= self.n:
                self.eof()
            if s[j] != 0x3A:
                _fail("expected ':'", j)
            j = _skip_ws(s, j + 1)
            j = _skip_ws(s, self.value(j, depth + 1))
            if j >= self.n:
                self.eof()
            c = s[j]
            if c == 0x2C:
                j = _skip_ws(s, j + 1)
            elif c == 0x7D:
                return j + 1
            else:
                _fail("expected ',' or '}'", j)

    def hex4(self, at: int) -> int:
        v = 0
        for k in range(at, at + 4):
            if k >= self.n:
                self.eof()
            c = self.s[k]
            if 0x30 <= c <= 0x39:
                d = c - 0x30
            elif 0x61 <= c <= 0x66:
                d = c - 0x61 + 10
            elif 0x41 <= c <= 0x46:
                d = c - 0x41 + 10
            else:
                _fail("invalid hex digit in \\u escape", k)
            v = v * 16 + d
        return v

    def string(self, i: int) -> int:
        s = self.s
        n = self.n
        j = i + 1
        while True:
            if j >= n:
                self.eof()
            c = s[j]
            if c == 0x22:
                return j + 1
            if c == 0x5C:
                if j + 1 >= n:
                    self.eof()
                e = s[j + 1]
                if e in b'"\\/bfnrt':
                    j += 2
                elif e == 0x75:
                    cu = self.hex4(j + 2)
                    if 0xD800 <= cu < 0xDC00:
                        if s[j + 6 : j + 8] == b"\\u":
                            low = self.hex4(j + 8)
                            if not 0xDC00 <= low < 0xE000:
                                _fail("lone surrogate in \\u escape", j)
                            j += 12
                        else:
                            _fail("lone surrogate in \\u escape", j)
                    elif 0xDC00 <= cu < 0xE000:
                        _fail("lone surrogate in \\u escape", j)
                    else:
                        j += 6
                else:
                    _fail("invalid escape in JSON string", j + 1)
            elif c < 0x20:
                _fail("control character in JSON string", j)
            else:
                j += 1

    def digits(self, j: int) -> int:
        s = self.s
        n = self.n
        while j < n and 0x30 <= s[j] <= 0x39:
            j += 1
        return j

    def number(self, i: int) -> int:
        s = self.s
        n = self.n
        j = i
        if s[j] == 0x2D:
            j += 1
        int_start = j
        if j >= n:
            self.eof()
        if s[j] == 0x30:
            j += 1
        elif 0x31 <= s[j] <= 0x39:
            j = self.digits(j + 1)
        else:
            _fail("invalid JSON number", j)
        if j - int_start > MAX_INT_DIGITS:
            _fail("integer part longer than 4300 digits", int_start + MAX_INT_DIGITS)
        if j < n and s[j] == 0x2E:
            j += 1
            if j >= n:
                self.eof()
            if not 0x30 <= s[j] <= 0x39:
                _fail("invalid JSON number", j)
            j = self.digits(j + 1)
        if j < n and s[j] in b"eE":
            j += 1
            if j < n and s[j] in b"+-":
                j += 1
            if j >= n:
                self.eof()
            if not 0x30 <= s[j] <= 0x39:
                _fail("invalid JSON number", j)
            j = self.digits(j + 1)
        return j


def validate_value(s: bytes) -> tuple[int, int]:
    """The byte range of the single JSON value ``s`` holds (whitespace around it allowed)."""
    _check_utf8(s)
    start = _skip_ws(s, 0)
    end = _Scanner(s).value(start, 0)
    after = _skip_ws(s, end)
    if after < len(s):
        _fail("trailing data after JSON value", after)
    return start, end


def scan_array(s: bytes) -> list[tuple[int, int]]:
    """The byte range of each element of a JSON-mode body (empty, or exactly one array)."""
    _check_utf8(s)
    start = _skip_ws(s, 0)
    elements: list[tuple[int, int]] = []
    if start == len(s):
        return elements
    if s[start] != 0x5B:
        _fail("expected a JSON array", start)
    end = _Scanner(s).array(start, 0, elements)
    after = _skip_ws(s, end)
    if after < len(s):
        _fail("trailing data after JSON value", after)
    return elements


def scan_group(s: bytes, elements: list[tuple[int, int]] | None = None) -> None:
    """Checks one group of a body read in parts (``[``, whole elements, the group's last
    bracket): of a UTF-8 error and a syntax error, the one at the earlier byte is raised."""
    syntax: JsonScanError | None = None
    try:
        end = _Scanner(s).array(0, 0, elements)
        if end < len(s):
            syntax = JsonScanError("trailing data after JSON value", end)
    except JsonScanError as e:
        syntax = e
    try:
        s.decode("utf-8")
    except UnicodeDecodeError as e:
        if syntax is None or e.start <= syntax.position:
            _fail("invalid UTF-8", e.start)
    if syntax is not None:
        raise syntax


def loads_group(s: bytes) -> list[Any]:
    """A group (see :func:`scan_group`) as Python objects; raises :class:`JsonScanError`."""
    value = _fast_loads(s, scan_group)
    assert type(value) is list
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _too_deep(value: Any) -> bool:
    """Whether a parsed value holds anything deeper than MAX_DEPTH (the top level is depth 0)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if not v:
            continue
        if depth + 1 > MAX_DEPTH:
            return True
        for c in v.values() if type(v) is dict else v:
            if type(c) is dict or type(c) is list:
                stack.append((c, depth + 1))
    return False


def _fast_loads(s: bytes, scan: Any) -> Any:
    """``json.loads`` guarded so it accepts exactly what the scanner ``scan`` accepts."""
    try:
        text = s.decode("utf-8")
    except UnicodeDecodeError as e:
        scan(s)
        _fail("invalid UTF-8", e.start)
    suspicious = _SURROGATE_ESCAPE.search(s) is not None or (
        len(s) > MAX_INT_DIGITS and _LONG_DIGITS.search(s) is not None
    )
    if suspicious:
        scan(s)
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        scan(s)
        _fail("invalid JSON", 0)  # json.loads and the scanner disagree: never expected
    if (
        (s.count(b"[") + s.count(b"{")) > MAX_DEPTH
        and type(value) in (list, dict)
        and _too_deep(value)
    ):
        scan(s)
    return value


def loads_array(s: bytes) -> list[Any]:
    """A JSON-mode body as Python objects; raises :class:`JsonScanError`."""
    start = _skip_ws(s, 0)
    if start == len(s):
        _check_utf8(s)
        return []
    if s[start] != 0x5B:
        _check_utf8(s)
        _fail("expected a JSON array", start)
    value = _fast_loads(s, scan_array)
    assert type(value) is list
    return value


def loads_value(s: bytes) -> Any:
    """The one JSON value ``s`` holds; raises :class:`JsonScanError`."""
    return _fast_loads(s, validate_value)


def _raise_parse_error(e: JsonScanError) -> NoReturn:
    raise JSONParseError(e.message, position=e.position) from None


def parse_json_array(body: bytes) -> list[Any]:
    """The messages of a JSON-mode read body (a JSON array), as Python objects."""
    if not isinstance(body, bytes):
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    try:
        return loads_array(body)
    except JsonScanError as e:
        _raise_parse_error(e)


def split_json_array(body: bytes) -> list[bytes]:
    """The raw bytes of each message of a JSON-mode read body."""
    if not isinstance(body, bytes):
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    try:
        return [body[a:b] for a, b in scan_array(body)]
    except JsonScanError as e:
        _raise_parse_error(e)


_encode_str = json.encoder.encode_basestring


def encode_into(parts: list[str], value: Any, depth: int) -> None:
    """Appends the compact JSON text of ``value`` to ``parts``, as the native encoder does."""
    if isinstance(value, str):
        parts.append(_encode_str(value))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        parts.append(int.__repr__(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"Out of range float values are not JSON compliant: {float.__repr__(value)}"
            )
        parts.append(float.__repr__(value))
    elif isinstance(value, dict):
        _enter(depth)
        parts.append("{")
        first = True
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"keys must be str, not {type(k).__name__}")
            if not first:
                parts.append(",")
            first = False
            parts.append(_encode_str(k))
            parts.append(":")
            encode_into(parts, v, depth + 1)
        parts.append("}")
    elif isinstance(value, (list, tuple)):
        _enter(depth)
        parts.append("[")
        for n, item in enumerate(value):
            if n:
                parts.append(",")
            encode_into(parts, item, depth + 1)
        parts.append("]")
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _enter(depth: int) -> None:
    if depth >= MAX_ENCODE_DEPTH:
        raise ValueError("JSON nesting deeper than 500 levels (or a reference cycle)")


def encode_json(value: Any) -> bytes:
    """``value`` as compact JSON (``json.dumps`` with separators ``,`` and ``:``, UTF-8)."""
    parts: list[str] = []
    encode_into(parts, value, 0)
    return "".join(parts).encode("utf-8")
