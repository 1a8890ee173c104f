"""The benchmark payloads, built the same way by every suite (stdlib only).

``compare_parsers.py`` imports this module both in this repository's virtualenv and in the
official client's, so both sides measure byte-identical inputs. Nothing here may import
``durable_streams``: the name means a different package in each environment.
"""

from __future__ import annotations

import base64
import random

__all__ = [
    "BINARY_EVENT_BYTES",
    "CHUNK",
    "LIVE_APPEND",
    "MSGS_PER_EVENT",
    "array_body",
    "base64_sse_body",
    "chunks",
    "control_event",
    "json_sse_body",
    "message",
    "message_objects",
    "message_strs",
    "messages",
    "nested_array_body",
    "nested_message",
    "throughput_payload",
]

CHUNK = 64 * 1024  # what an HTTP client typically hands over per read
MSGS_PER_EVENT = 1000
BINARY_EVENT_BYTES = 48 * 1024  # raw bytes per base64 data event (64 KiB once encoded)
LIVE_APPEND = 1000  # messages per append of compare.py's live (SSE) writer


def message(i: int) -> bytes:
    """One small event message, 51 bytes, e.g. ``{"type":"click","x":123,...}``."""
    return b'{"type":"click","x":%d,"y":456,"user":"u-%06d"}' % (100 + i % 900, i % 1_000_000)


def messages(n: int, start: int = 0) -> list[bytes]:
    return [message(i) for i in range(start, start + n)]


def message_strs(n: int) -> list[str]:
    """Pre-serialized messages, as a producer that encodes up front would push them."""
    return [m.decode() for m in messages(n)]


def message_objects(n: int) -> list[dict[str, object]]:
    """The same messages as Python values (what ``json.loads`` of each would give)."""
    return [
        {"type": "click", "x": 100 + i % 900, "y": 456, "user": f"u-{i % 1_000_000:06d}"}
        for i in range(n)
    ]


def nested_message(i: int) -> bytes:
    """One nested event message, about 83 bytes (``{"type","i","user","x","props":{"page",
    "ok"}}``), e.g. ``{"type":"view","i":123,"user":"u-0123","x":123,"props":{"page":"/p23",
    "ok":true}}``: the shape of ``compare.py``'s ``catchup-nested`` workload."""
    return b'{"type":"view","i":%d,"user":"u-%04d","x":%d,"props":{"page":"/p%d","ok":%s}}' % (
        i,
        i % 10_000,
        i % 1000,
        i % 100,
        b"true" if i % 3 else b"false",
    )


def nested_array_body(n: int = MSGS_PER_EVENT, start: int = 0) -> bytes:
    """``n`` nested messages as one JSON array (a catch-up body, or one append of them)."""
    return b"[" + b",".join(nested_message(i) for i in range(start, start + n)) + b"]"


def throughput_payload(size: int = 100) -> bytes:
    """The message of the upstream benchmark suite's small-message throughput scenario
    (``packages/benchmarks``): ``new Uint8Array(100).fill(42)``, so ``size`` bytes of ``*``,
    appended to an ``application/octet-stream`` stream."""
    return b"*" * size


def array_body(n: int = MSGS_PER_EVENT, start: int = 0) -> bytes:
    """A JSON-mode catch-up read body: one array of ``n`` messages."""
    return b"[" + b",".join(messages(n, start)) + b"]"


def control_event(next_offset: str, up_to_date: bool = True) -> bytes:
    flag = b',"upToDate":true' if up_to_date else b""
    return b'event: control\ndata: {"streamNextOffset":"%s","streamCursor":"c1"%s}\n\n' % (
        next_offset.encode(),
        flag,
    )


def json_sse_body(events: int, per_event: int = MSGS_PER_EVENT) -> bytes:
    """``events`` SSE data events, each a JSON array of ``per_event`` messages, then a control."""
    parts = [
        b"event: data\ndata: " + array_body(per_event, e * per_event) + b"\n\n"
        for e in range(events)
    ]
    parts.append(control_event(f"0000000000000001_{events * per_event:016d}"))
    return b"".join(parts)


def base64_sse_body(events: int, event_bytes: int = BINARY_EVENT_BYTES) -> tuple[bytes, int]:
    """An SSE body of a binary stream in base64 mode, and how many raw bytes it carries."""
    rng = random.Random(1234)
    parts = []
    for _ in range(events):
        raw = rng.randbytes(event_bytes)
        parts.append(b"event: data\ndata: " + base64.b64encode(raw) + b"\n\n")
    parts.append(control_event(f"0000000000000001_{events * event_bytes:016d}"))
    return b"".join(parts), events * event_bytes


def chunks(body: bytes, size: int = CHUNK) -> list[bytes]:
    """``body`` cut the way a socket would hand it over (boundaries fall mid-line)."""
    return [body[i : i + size] for i in range(0, len(body), size)]
