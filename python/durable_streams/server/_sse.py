"""Server-Sent Events framing for ``live=sse`` reads."""

from __future__ import annotations

import json
import re

__all__ = ["control_event", "data_event", "event"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def event(kind: str, payload: str) -> bytes:
    """One event. Each line of the payload gets its own ``data:`` field (a bare CR counts as
    a line break, so a payload cannot smuggle in a field of its own). No space follows the
    colon: readers strip exactly one, which would eat a payload's own leading space."""
    lines = "".join(f"data:{line}\n" for line in _LINE_BREAK.split(payload))
    return f"event: {kind}\n{lines}\n".encode()


def data_event(payload: str) -> bytes:
    return event("data", payload)


def control_event(next_offset: str, cursor: str | None, *, up_to_date: bool, closed: bool) -> bytes:
    fields: dict[str, object] = {"streamNextOffset": next_offset}
    if cursor is not None and not closed:
        fields["streamCursor"] = cursor
    if up_to_date or closed:
        fields["upToDate"] = True
    if closed:
        fields["streamClosed"] = True
    return event("control", json.dumps(fields, separators=(",", ":")))
