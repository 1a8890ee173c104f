"""Offsets and cursors as this server mints them.

An offset is ``<read-seq>_<position>``, both zero-padded to 16 digits so that offsets sort as
strings. The read sequence is always 0 here; the position counts stored bytes plus a fixed
frame per message, the reference server's arithmetic, so offsets from both look alike.
"""

from __future__ import annotations

import math
import random
import re

__all__ = [
    "BEYOND_ANY",
    "FRAME_BYTES",
    "format_offset",
    "parse_offset",
    "response_cursor",
]

FRAME_BYTES = 5

# A client may send an offset with another read sequence; it sorts after every position
# minted here, so it reads as "beyond the tail".
BEYOND_ANY = 1 << 128

_OFFSET = re.compile(r"([0-9]{1,40})_([0-9]{1,40})")

_CURSOR_EPOCH = 1728432000.0  # 2024-10-09T00:00:00Z, the protocol's default
_CURSOR_INTERVAL = 20
_JITTER_MAX = 3600


def format_offset(position: int) -> str:
    return f"{0:016d}_{position:016d}"


def parse_offset(text: str) -> int | None:
    """The position an offset names, or None when it is not ``digits_digits``."""
    match = _OFFSET.fullmatch(text)
    if match is None:
        return None
    if int(match[1]) != 0:
        return BEYOND_ANY
    return int(match[2])


def response_cursor(client_cursor: str | None, now: float) -> str:
    """The cursor for a live response: the current 20 s interval, or, when the client's
    cursor is already there or ahead, its cursor plus a random jump, so cursors never
    repeat and a CDN cannot loop clients on one cached response."""
    current = int((now - _CURSOR_EPOCH) // _CURSOR_INTERVAL)
    if not client_cursor or len(client_cursor) > 40 or not client_cursor.isascii():
        return str(current)
    digits = re.match(r"[0-9]+", client_cursor)
    if digits is None:
        return str(current)
    theirs = int(digits[0])
    if theirs < current:
        return str(current)
    jitter = random.randint(1, _JITTER_MAX)
    return str(theirs + max(1, math.ceil(jitter / _CURSOR_INTERVAL)))
