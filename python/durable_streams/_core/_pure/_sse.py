"""The SSE decoder of the pure-Python core; mirrors ``rust/sse.rs``, ``rust/control.rs`` and
the event interpretation of ``rust/python/sse.rs`` rule for rule (see ``_core.pyi``)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Final, final

from ..._errors import (
    Base64DecodeError,
    EventTooLargeError,
    JSONParseError,
    ParseError,
    SSEParseError,
)
from . import _base64, _json

__all__ = ["Control", "SseDecoder"]

_BOM = b"\xef\xbb\xbf"
_MODES = ("json", "json-raw", "text", "base64")
_DATA, _CONTROL, _OTHER = 1, 2, 3


@final
@dataclass(frozen=True, slots=True)
class Control:
    """A Durable Streams SSE ``control`` event."""

    next_offset: str
    cursor: str | None = None
    up_to_date: bool = False
    closed: bool = False


def _parse_retry(value: bytes) -> int | None:
    if not value or not value.isdigit():
        return None
    digits = value.lstrip(b"0")
    if len(digits) > 19:
        return None
    n = int(digits or b"0")
    return n if n < 1 << 63 else None


def _parse_control(data: bytes) -> Control:
    """A control event's data text as a Control; raises SSEParseError-shaped tuples."""
    try:
        _json.validate_value(data)
    except _json.JsonScanError as e:
        raise _ControlError(f"control event is not valid JSON: {e.message}", e.position) from None
    start = _json._skip_ws(data, 0)
    obj = _json.loads_value(data)
    if type(obj) is not dict:
        raise _ControlError("control event is not a JSON object", start)
    next_offset = obj.get("streamNextOffset")
    if type(next_offset) is not str:
        raise _ControlError("control event without a string streamNextOffset", start)
    cursor = obj.get("streamCursor")
    if cursor is not None and type(cursor) is not str:
        raise _ControlError("control event streamCursor is not a string", start)
    flags = []
    for name in ("upToDate", "streamClosed"):
        v = obj.get(name)
        if v is None:
            v = False
        elif type(v) is not bool:
            raise _ControlError(f"control event {name} is not a boolean", start)
        flags.append(v)
    return Control(next_offset, cursor, flags[0], flags[1])


class _ControlError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message, offset)
        self.message = message
        self.offset = offset


@final
class SseDecoder:
    """Incremental SSE decoder that interprets Durable Streams ``data`` and ``control`` events."""

    __slots__ = (
        "_data",
        "_first_line",
        "_held",
        "_id_buffer",
        "_kind",
        "_last_event_id",
        "_lines",
        "_mode",
        "_partial",
        "_partial_start",
        "_pos",
        "_retry_ms",
        "_skip_lf",
        "max_event_bytes",
    )

    max_event_bytes: Final[int]

    def __init__(self, data_mode: str, max_event_bytes: int = 16_777_216) -> None:
        if not isinstance(data_mode, str):
            raise TypeError(f"data_mode must be a str, not {type(data_mode).__name__}")
        if data_mode not in _MODES:
            raise ValueError(
                f"data_mode must be 'json', 'json-raw', 'text' or 'base64', not {data_mode!r}"
            )
        cap = max_event_bytes.__index__()
        if cap <= 0:
            raise ValueError("max_event_bytes must be positive")
        if cap >= 1 << 63:
            raise OverflowError("max_event_bytes is too large")
        self._mode = data_mode
        self.max_event_bytes = cap
        self._last_event_id = ""
        self._retry_ms: int | None = None
        self._id_buffer: str | None = None
        self._held: ParseError | None = None
        self._reset()

    def _reset(self) -> None:
        self._pos = 0
        self._partial = b""
        self._partial_start = 0
        self._skip_lf = False
        self._first_line = True
        self._clear_event()

    def _clear_event(self) -> None:
        self._data = bytearray()
        self._lines: list[tuple[int, int]] = []  # (data-text offset, stream position)
        self._kind: int | None = None

    @property
    def last_event_id(self) -> str:
        return self._last_event_id

    @property
    def retry_ms(self) -> int | None:
        return self._retry_ms

    def _too_large(self, line_start: int) -> EventTooLargeError:
        cap = self.max_event_bytes
        position = line_start + max(cap - len(self._data), 0)
        return EventTooLargeError(
            f"SSE event larger than max_event_bytes ({cap})", position=position
        )

    def feed(self, chunk: bytes) -> list[Any]:
        """Every event the bytes so far complete, in order (see ``_core.pyi``)."""
        if not isinstance(chunk, bytes):
            raise TypeError(f"chunk must be bytes, not {type(chunk).__name__}")
        held, self._held = self._held, None
        if held is not None:
            raise held
        out: list[Any] = []
        try:
            self._feed(chunk, out)
        except ParseError as exc:
            if not out:
                raise
            self._held = exc  # the events before it go out first; see take_error
        return out

    def take_error(self) -> ParseError | None:
        """The error held back by the last ``feed``, which returned the events before it."""
        held, self._held = self._held, None
        return held

    def _feed(self, chunk: bytes, out: list[Any]) -> None:
        base = self._pos
        self._pos += len(chunk)
        i = 0
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                i = 1
        if self._partial:
            buf = self._partial + chunk[i:]
            start = self._partial_start
        else:
            buf = chunk[i:] if i else chunk
            start = base + i
        self._partial = b""
        lines = buf.splitlines(keepends=True)
        tail = lines.pop() if lines and lines[-1][-1:] not in (b"\n", b"\r") else b""
        for raw in lines:
            if raw[-1:] == b"\n":
                body_len = len(raw) - (2 if raw[-2:] == b"\r\n" else 1)
            else:
                body_len = len(raw) - 1
            self._line(raw[:body_len], start, out)
            start += len(raw)
        if buf[-1:] == b"\r":
            self._skip_lf = True
        if tail:
            self._partial = tail
            self._partial_start = start
            if len(self._data) + len(tail) > self.max_event_bytes:
                raise self._too_large(start)

    def flush(self) -> list[Any]:
        """End of the body: an unterminated event is discarded (so nothing is returned)."""
        self._reset()
        return []

    def _line(self, line: bytes, start: int, out: list[Any]) -> None:
        if len(self._data) + len(line) > self.max_event_bytes:
            raise self._too_large(start)
        if self._first_line:
            self._first_line = False
            if line.startswith(_BOM):
                line = line[3:]
                start += 3
        if not line:
            self._dispatch(out)
            return
        if line[0] == 0x3A:
            return
        c = line.find(b":")
        if c >= 0:
            v = c + 1
            if line[v : v + 1] == b" ":
                v += 1
            field = line[:c]
            value = line[v:]
        else:
            field = line
            value = b""
            v = len(line)
        if field == b"data":
            self._lines.append((len(self._data), start + v))
            self._data += value
            self._data.append(0x0A)
        elif field == b"event":
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as e:
                raise SSEParseError(
                    "invalid UTF-8 in SSE field", position=start + v + e.start
                ) from None
            self._kind = _DATA if value == b"data" else _CONTROL if value == b"control" else _OTHER
        elif field == b"id":
            if 0 not in value:
                try:
                    self._id_buffer = value.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise SSEParseError(
                        "invalid UTF-8 in SSE field", position=start + v + e.start
                    ) from None
        elif field == b"retry":
            ms = _parse_retry(value)
            if ms is not None:
                self._retry_ms = ms

    def _dispatch(self, out: list[Any]) -> None:
        if self._id_buffer is not None:
            self._last_event_id = self._id_buffer
            self._id_buffer = None
        if not self._data:
            self._kind = None
            return
        kind = self._kind if self._kind is not None else _OTHER
        if kind != _OTHER:
            out.append(self._interpret(kind, bytes(self._data[:-1])))
        self._clear_event()

    def _at(self, off: int) -> int:
        lines = self._lines
        idx = bisect.bisect_right(lines, off, key=lambda e: e[0]) - 1
        if idx < 0:
            return 0
        o, p = lines[idx]
        return p + (off - o)

    def _interpret(self, kind: int, data: bytes) -> Any:
        if kind == _CONTROL:
            try:
                return _parse_control(data)
            except _ControlError as e:
                raise SSEParseError(e.message, position=self._at(e.offset)) from None
        mode = self._mode
        try:
            if mode == "json":
                return _json.loads_array(data)
            if mode == "json-raw":
                return [data[a:b] for a, b in _json.scan_array(data)]
        except _json.JsonScanError as e:
            raise JSONParseError(e.message, position=self._at(e.position)) from None
        if mode == "text":
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise SSEParseError(
                    "invalid UTF-8 in SSE data", position=self._at(e.start)
                ) from None
        try:
            return _base64.decode(data)
        except _base64.Base64ScanError as e:
            raise Base64DecodeError(e.message, position=self._at(e.position)) from None
