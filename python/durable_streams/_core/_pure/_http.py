"""The HTTP/1.1 response decoder of the pure-Python core; mirrors ``rust/http.rs`` rule for
rule, and the head grammar of the ``httparse`` crate that module uses (see ``_core.pyi``)."""

from __future__ import annotations

import re
from typing import Final, final

from ..._errors import HTTPParseError

__all__ = ["HttpResponseDecoder"]

MAX_HEADERS: Final = 128
MAX_CHUNK_LINE: Final = 4096
MAX_CHUNK_SIZE_DIGITS: Final = 15

_MALFORMED = "malformed HTTP response head"
_HEAD_TOO_LARGE = "HTTP response head larger than the limit"
_TOO_MANY_HEADERS = "HTTP response head with more than 128 header fields"
_SWITCHING = "unexpected 101 Switching Protocols"
_BAD_LENGTH = "invalid Content-Length"
_BAD_CODING = "unsupported Transfer-Encoding"
_BAD_CHUNK_SIZE = "invalid chunk size"
_CHUNK_LINE_TOO_LONG = "chunk-size line longer than 4096 bytes"
_BAD_CHUNK_END = "chunk data not followed by CRLF"
_TRAILERS_TOO_LARGE = "chunked trailer section larger than the head limit"
_CLOSED_BEFORE_HEAD = "connection closed before a response"
_TRUNCATED_HEAD = "connection closed inside the response head"
_TRUNCATED_BODY = "connection closed before the end of the response body"

# httparse's grammar: exactly "HTTP/1.0" or "HTTP/1.1", one space, three digits, then a
# reason phrase after one space, or the line end; lines end with CRLF or a lone LF.
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [\t\x20-\x7e\x80-\xff]*)?\r?\n")
_HEADER_LINE = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*\r?\n"
)
_BLANK_LINE = re.compile(rb"\r?\n")
_EXTENSION = re.compile(rb";[\t\x20-\x7e\x80-\xff]*")
_HEX = b"0123456789abcdefABCDEF"

_HEAD, _LENGTH, _CLOSE, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_DATA_END, _TRAILERS, _DONE = range(8)

Head = tuple[int, dict[str, str]]


def _head_end(buf: bytes | bytearray, start: int) -> int | None:
    """The index after the first blank line, looking at line ends from ``start`` on."""
    while True:
        nl = buf.find(b"\n", start)
        if nl < 0:
            return None
        if nl == 0:
            blank = True
        elif nl == 1:
            blank = buf[0] == 0x0D
        else:
            blank = buf[nl - 1] == 0x0A or (buf[nl - 1] == 0x0D and buf[nl - 2] == 0x0A)
        if blank:
            return nl + 1
        start = nl + 1


def _parse_head(head: bytes, position: int) -> tuple[int, list[tuple[str, str]]]:
    status_line = _STATUS_LINE.match(head)
    if status_line is None:
        raise HTTPParseError(_MALFORMED, position=position)
    fields: list[tuple[str, str]] = []
    at = status_line.end()
    while True:
        blank = _BLANK_LINE.match(head, at)
        if blank is not None:
            if blank.end() != len(head):
                raise HTTPParseError(_MALFORMED, position=position)
            break
        line = _HEADER_LINE.match(head, at)
        if line is None:
            raise HTTPParseError(_MALFORMED, position=position)
        if len(fields) == MAX_HEADERS:
            raise HTTPParseError(_TOO_MANY_HEADERS, position=position)
        fields.append((line[1].decode("ascii").lower(), line[2].decode("latin-1")))
        at = line.end()
    return int(status_line[1]), fields


def _get(fields: list[tuple[str, str]], name: str) -> str | None:
    values = [value for key, value in fields if key == name]
    return ", ".join(values) if values else None


def _body_state(status: int, fields: list[tuple[str, str]], position: int) -> tuple[int, int]:
    if status in (204, 304):
        return _DONE, 0
    codings = _get(fields, "transfer-encoding")
    if codings is not None:
        parts = [c.strip(" \t").lower() for c in codings.split(",")]
        if [c for c in parts if c] != ["chunked"]:
            raise HTTPParseError(_BAD_CODING, position=position)
        return _CHUNK_SIZE, 0
    lengths = _get(fields, "content-length")
    if lengths is not None:
        length: int | None = None
        for part in (p.strip(" \t") for p in lengths.split(",")):
            valid = part != "" and len(part) <= 18 and part.isascii() and part.isdigit()
            value = int(part) if valid else None
            if value is None or (length is not None and value != length):
                raise HTTPParseError(_BAD_LENGTH, position=position)
            length = value
        if not length:
            return _DONE, 0
        return _LENGTH, length
    return _CLOSE, 0


@final
class HttpResponseDecoder:
    """Incremental HTTP/1.1 response decoder; see ``durable_streams._core._native``."""

    __slots__ = (
        "_carry",
        "_carry_start",
        "_left",
        "_max_head",
        "_no_body",
        "_position",
        "_state",
        "_trailers_start",
    )

    def __init__(self, max_head_bytes: int = 65_536, no_body: bool = False) -> None:
        if max_head_bytes <= 0:
            raise ValueError("max_head_bytes must be positive")
        self._max_head = max_head_bytes
        self._no_body = no_body
        self._state = _HEAD
        self._left = 0
        self._carry = bytearray()
        self._carry_start = 0
        self._position = 0
        self._trailers_start = 0

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def close_delimited(self) -> bool:
        return self._state == _CLOSE

    def feed(self, data: bytes) -> tuple[Head | None, bytes, int]:
        head: Head | None = None
        body: list[bytes] = []
        i = 0
        n = len(data)
        while i < n:
            state = self._state
            if state == _DONE:
                break
            if state == _HEAD:
                took, head = self._take_head(data, i)
                i += took
            elif state in (_LENGTH, _CHUNK_DATA):
                take = min(n - i, self._left)
                body.append(data[i : i + take])
                i += take
                self._position += take
                self._left -= take
                if self._left == 0:
                    if state == _LENGTH:
                        self._state = _DONE
                    else:
                        self._carry_start = self._position
                        self._state = _CHUNK_DATA_END
            elif state == _CLOSE:
                body.append(data[i:])
                self._position += n - i
                i = n
            elif state == _CHUNK_SIZE:
                i += self._take_chunk_size(data, i)
            elif state == _CHUNK_DATA_END:
                i += self._take_chunk_end(data, i)
            else:
                i += self._take_trailers(data, i)
        if len(body) == 1 and len(body[0]) == n:
            return head, data, i
        return head, b"".join(body), i

    def finish(self) -> None:
        state = self._state
        if state == _DONE:
            return
        if state == _CLOSE:
            self._state = _DONE
            return
        if state == _HEAD and not self._carry and self._position == self._carry_start:
            raise HTTPParseError(_CLOSED_BEFORE_HEAD, position=self._position)
        message = _TRUNCATED_HEAD if state == _HEAD else _TRUNCATED_BODY
        raise HTTPParseError(message, position=self._position + len(self._carry))

    def _take_head(self, data: bytes, i: int) -> tuple[int, Head | None]:
        carry = self._carry
        already = len(carry)
        take = min(len(data) - i, self._max_head - already)
        carry += data[i : i + take]
        end = _head_end(carry, max(already - 2, 0))
        if end is None:
            if len(carry) >= self._max_head:
                raise HTTPParseError(_HEAD_TOO_LARGE, position=self._carry_start)
            return take, None
        head_start = self._carry_start
        status, fields = _parse_head(bytes(carry[:end]), head_start)
        used = end - already
        carry.clear()
        self._position = head_start + end
        self._carry_start = self._position
        if 100 <= status < 200:
            if status == 101:
                raise HTTPParseError(_SWITCHING, position=head_start)
            return used, None
        if self._no_body:
            self._state, self._left = _DONE, 0
        else:
            self._state, self._left = _body_state(status, fields, head_start)
        headers: dict[str, str] = {}
        for name, value in fields:
            old = headers.get(name)
            headers[name] = value if old is None else f"{old}, {value}"
        return used, (status, headers)

    def _take_chunk_size(self, data: bytes, i: int) -> int:
        nl = data.find(b"\n", i)
        if nl < 0:
            self._carry += data[i:]
            if len(self._carry) > MAX_CHUNK_LINE + 1:
                raise HTTPParseError(_CHUNK_LINE_TOO_LONG, position=self._carry_start)
            return len(data) - i
        self._carry += data[i:nl]
        line_start = self._carry_start
        line = bytes(self._carry)
        self._carry.clear()
        if not line.endswith(b"\r"):
            raise HTTPParseError(_BAD_CHUNK_SIZE, position=line_start)
        line = line[:-1]
        if len(line) > MAX_CHUNK_LINE:
            raise HTTPParseError(_CHUNK_LINE_TOO_LONG, position=line_start)
        digits = 0
        while digits < len(line) and line[digits] in _HEX:
            digits += 1
        rest = line[digits:]
        extension_ok = not rest or _EXTENSION.fullmatch(rest) is not None
        if digits == 0 or digits > MAX_CHUNK_SIZE_DIGITS or not extension_ok:
            raise HTTPParseError(_BAD_CHUNK_SIZE, position=line_start)
        size = int(line[:digits], 16)
        self._position = line_start + len(line) + 2
        self._carry_start = self._position
        if size == 0:
            self._trailers_start = self._position
            self._state = _TRAILERS
        else:
            self._state = _CHUNK_DATA
            self._left = size
        return nl + 1 - i

    def _take_chunk_end(self, data: bytes, i: int) -> int:
        carry = self._carry
        take = min(2 - len(carry), len(data) - i)
        carry += data[i : i + take]
        if len(carry) < 2:
            if carry != b"\r":
                raise HTTPParseError(_BAD_CHUNK_END, position=self._carry_start)
            return take
        if carry != b"\r\n":
            raise HTTPParseError(_BAD_CHUNK_END, position=self._carry_start)
        carry.clear()
        self._position = self._carry_start + 2
        self._carry_start = self._position
        self._state = _CHUNK_SIZE
        return take

    def _take_trailers(self, data: bytes, i: int) -> int:
        start = i
        while True:
            nl = data.find(b"\n", i)
            if nl < 0:
                break
            partial = bytes(self._carry)
            self._carry.clear()
            line_len = len(partial) + (nl - i)
            last = data[nl - 1] if nl > i else (partial[-1] if partial else 0)
            blank = line_len == 0 or (line_len == 1 and last == 0x0D)
            self._position += line_len + 1
            i = nl + 1
            if blank:
                self._carry_start = self._position
                self._state = _DONE
                return i - start
        self._carry += data[i:]
        self._carry_start = self._position
        if self._position - self._trailers_start + len(self._carry) > self._max_head:
            raise HTTPParseError(_TRAILERS_TOO_LARGE, position=self._trailers_start)
        return len(data) - start
