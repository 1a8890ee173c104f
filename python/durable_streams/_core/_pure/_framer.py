"""Reading a JSON-mode body as it arrives, for the pure-Python core; mirrors ``rust/framer.rs``.

The body is cut into groups of whole elements at commas between top-level elements; each group
is parsed as an array of its own (a ``[`` written over the comma before it, a ``]`` over the
comma after it) and its errors are moved to body positions. A group ends at the first such
comma at least ``min_group_bytes`` after its start, so groups stay about that size however much
arrives at once; bytes are scanned only as far as the next cut. Where the native framer walks
the bytes one by one, this one lets regular expressions jump over whole elements and strings,
and walks structural characters one by one only inside elements nested deeper than they cover.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

from ..._errors import JSONParseError
from ._json import JsonScanError, _skip_ws, loads_group, scan_group

__all__ = ["JsonArrayReader"]

_STRING = rb'"(?:[^"\\]++|\\.)*+"'
_FLAT = rb'[\[{](?:[^"\[\]{}]++|' + _STRING + rb")*+[\]}]"
_NESTED = rb'[\[{](?:[^"\[\]{}]++|' + _STRING + rb"|" + _FLAT + rb")*+[\]}]"
_NESTED_TWICE = rb'[\[{](?:[^"\[\]{}]++|' + _STRING + rb"|" + _NESTED + rb")*+[\]}]"
# A whole top-level element with the comma after it; a run of them.
_ELEMENT_BYTES = (
    rb"[ \t\n\r]*+(?:" + _STRING + rb"|" + _NESTED_TWICE + rb'|[^"\[\]{},]++)[ \t\n\r]*+,'
)
_ELEMENT = re.compile(_ELEMENT_BYTES)
_ELEMENTS = re.compile(rb"(?:" + _ELEMENT_BYTES + rb")*+")
_STRING_REST = re.compile(rb'(?:[^"\\]++|\\.)*+')
_TO_STRUCTURAL = re.compile(rb'[^"\[\]{},]*+')

_BEFORE, _INSIDE, _AFTER = 0, 1, 2


def _error(message: str, position: int) -> NoReturn:
    raise JSONParseError(message, position=position) from None


class JsonArrayReader:
    """Reads a JSON-mode body as it arrives: whole elements come out a group at a time, each
    of about ``min_group_bytes`` however much arrives at once."""

    def __init__(self, raw: bool = False, min_group_bytes: int = 1_048_576) -> None:
        if min_group_bytes < 0:
            raise ValueError("min_group_bytes must not be negative")
        self._raw = raw
        self._min = min_group_bytes
        # Bytes of the array not handed out yet, from _buf[_head] (a "[") on; the bytes
        # before _head were handed out and go at the next push.
        self._buf = bytearray()
        self._head = 0
        self._base = 0  # body position of _buf[0]
        self._total = 0
        # Positions in _buf: how far it was scanned, the comma that ends the next group,
        # the array's closing bracket.
        self._scanned = 0
        self._depth = 0
        self._in_string = False
        self._cut = -1
        self._close = -1
        self._stage = _BEFORE
        self._taken = False
        # The first byte after the array that is not whitespace: reported once the array
        # itself is found valid, since an error inside it comes first.
        self._trailing_at = -1

    @property
    def saw_array(self) -> bool:
        return self._stage != _BEFORE

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._head

    @property
    def min_group_bytes(self) -> int:
        return self._min

    @min_group_bytes.setter
    def min_group_bytes(self, value: int) -> None:
        if value < 0:
            raise ValueError("min_group_bytes must not be negative")
        self._min = value

    def feed(self, chunk: bytes) -> list[Any]:
        """The next bytes of the body; returns the elements of the first group they made
        ready (:meth:`next_group` gives the others)."""
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"chunk must be bytes, not {type(chunk).__name__}")
        self._push(bytes(chunk))
        return self._take(False)

    def next_group(self) -> list[Any]:
        """The elements of the next group ready in the bytes fed so far; ``[]`` when none is."""
        return self._take(False)

    def finish(self) -> list[Any]:
        """The body ended: the elements not returned yet; raises if the array is incomplete."""
        return self._take(True)

    def _push(self, chunk: bytes) -> None:
        start = self._total
        self._total += len(chunk)
        rest = chunk
        if self._stage == _BEFORE:
            i = _skip_ws(chunk, 0)
            if i == len(chunk):
                return
            if chunk[i] != 0x5B:
                _error("expected a JSON array", start + i)
            self._stage = _INSIDE
            self._base = start + i
            self._depth = 0
            rest = chunk[i:]
        if self._stage == _AFTER:
            self._note_trailing(rest, start)
            return
        self._compact()
        self._buf += rest

    def _compact(self) -> None:
        """Drops the bytes handed out, so the buffer holds about one chunk."""
        head = self._head
        if head == 0:
            return
        del self._buf[:head]
        self._head = 0
        self._base += head
        self._scanned -= head
        if self._cut >= 0:
            self._cut -= head
        if self._close >= 0:
            self._close -= head

    def _note_trailing(self, data: bytes | bytearray, at: int) -> None:
        i = _skip_ws(data, 0)
        if i < len(data) and self._trailing_at < 0:
            self._trailing_at = at + i

    def _scan(self, cuts: bool) -> None:
        """Scans on to the next cut (``cuts``: a comma at least ``min_group_bytes`` after the
        group's start), or to the array's closing bracket, or to the end of the buffer."""
        buf = self._buf
        n = len(buf)
        cut_from = self._head + self._min if cuts else n + 1
        i = self._scanned
        depth = self._depth
        in_string = self._in_string
        close = -1
        while i < n:
            if in_string:
                j = _STRING_REST.match(buf, i).end()  # type: ignore[union-attr]
                if j >= n or buf[j] != 0x22:
                    i = j  # a backslash last waits for the byte it escapes
                    break
                in_string = False
                i = j + 1
                continue
            if depth == 1:
                # Whole elements with their commas, as far as no cut may fall among them.
                j = _ELEMENTS.match(buf, i, cut_from).end()  # type: ignore[union-attr]
                if j > i:
                    i = j
                    continue
                if cuts:
                    element = _ELEMENT.match(buf, i)
                    if element is not None:
                        i = element.end()
                        if i - 1 >= cut_from:
                            self._cut = i - 1
                            break
                        continue
            j = _TO_STRUCTURAL.match(buf, i).end()  # type: ignore[union-attr]
            if j >= n:
                i = n
                break
            c = buf[j]
            i = j + 1
            if c == 0x22:
                in_string = True
            elif c == 0x5B or c == 0x7B:
                depth += 1
            elif c == 0x5D or c == 0x7D:
                depth -= 1
                if depth == 0:
                    close = j
                    break
            elif depth == 1 and j >= cut_from:
                self._cut = j
                break
        self._scanned = i
        self._depth = depth
        self._in_string = in_string
        if close >= 0:
            i = _skip_ws(buf, close + 1)
            if i < n and self._trailing_at < 0:
                self._trailing_at = self._base + i
            del buf[close + 1 :]
            self._scanned = close + 1
            self._close = close
            self._stage = _AFTER

    def _group_end(self, finished: bool) -> int | None:
        if self._stage == _BEFORE:
            return None
        if finished:
            self._cut = -1
        if self._cut < 0 and self._close < 0:
            self._scan(not finished)
        buf = self._buf
        head = self._head
        if self._stage == _INSIDE and finished:
            try:
                scan_group(bytes(buf[head:]))
            except JsonScanError as e:
                _error(e.message, self._base + head + e.position)
            _error("unexpected end of JSON input", self._base + len(buf))
        if self._stage == _AFTER and finished:
            end = self._close
        elif self._cut >= 0 and not finished:
            end = self._cut
            if _skip_ws(buf, head + 1) == end:
                _error("expected a JSON value", self._base + end)
            buf[end] = 0x5D
        else:
            return None
        if end == self._close:
            if self._taken and _skip_ws(buf, head + 1) == end:
                _error("expected a JSON value", self._base + end)
            if self._trailing_at >= 0:
                try:
                    scan_group(bytes(buf[head:]))
                except JsonScanError as e:
                    _error(e.message, self._base + head + e.position)
                _error("trailing data after JSON value", self._trailing_at)
        return end

    def _take(self, finished: bool) -> list[Any]:
        end = self._group_end(finished)
        if end is None:
            return []
        group = bytes(self._buf[self._head : end + 1])
        try:
            if self._raw:
                spans: list[tuple[int, int]] = []
                scan_group(group, spans)
                items: list[Any] = [group[a:b] for a, b in spans]
            else:
                items = loads_group(group)
        except JsonScanError as e:
            _error(e.message, self._base + self._head + e.position)
        self._consume(end)
        return items

    def _consume(self, end: int) -> None:
        self._cut = -1
        if end == self._close:
            self._buf.clear()
            self._head = 0
            self._close = -1
            self._scanned = 0
            return
        # The comma after this group opens the next one.
        self._buf[end] = 0x5B
        self._head = end
        self._taken = True
