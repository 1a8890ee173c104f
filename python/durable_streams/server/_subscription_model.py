"""What the embedded server knows of a subscription (PROTOCOL.md sections 6 and 7): its
configuration, its links to streams with their acknowledged offsets, the wake it is in; and
the refusals its routes answer with.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ._offsets import format_offset
from ._store import Store, StoreError

__all__ = [
    "PREFIX",
    "STREAM_ROOT",
    "ZERO",
    "Link",
    "Refusal",
    "Subscription",
    "glob_matches",
    "relative_path",
    "tail_offset",
]

STREAM_ROOT = "/v1/stream/"
PREFIX = "/v1/stream/__ds"
ZERO = format_offset(0)

_STATUS = {
    "INVALID_REQUEST": 400,
    "WEBHOOK_URL_REJECTED": 400,
    "TOKEN_INVALID": 401,
    "TOKEN_EXPIRED": 401,
    "SUBSCRIPTION_NOT_FOUND": 404,
    "SUBSCRIPTION_ALREADY_EXISTS": 409,
    "FENCED": 409,
    "ALREADY_CLAIMED": 409,
    "NO_PENDING_WORK": 409,
    "INVALID_OFFSET": 409,
}


class Refusal(Exception):
    """An error answer: ``{"error": {"code", "message", ...extra}}`` with the code's status."""

    def __init__(self, code: str, message: str | None, **extra: Any) -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message
        self.extra = extra

    @property
    def status(self) -> int:
        return _STATUS[self.code]


@dataclass
class Link:
    types: set[str]
    acked: str

    @property
    def link_type(self) -> str:
        return "explicit" if "explicit" in self.types else "glob"


@dataclass
class Subscription:
    id: str
    type: str
    pattern: str | None
    streams: list[str]
    webhook_url: str | None
    wake_stream: str | None
    lease_ttl_ms: int
    description: str | None
    config_hash: str
    created_at: str
    links: dict[str, Link] = field(default_factory=dict)
    generation: int = 0
    wake_id: str | None = None
    snapshot: dict[str, str] | None = None
    holder: str | None = None
    lease: asyncio.TimerHandle | None = None
    status: str = "active"
    retries: int = 0
    retry: asyncio.TimerHandle | None = None
    deleted: bool = False

    def cancel_timers(self) -> None:
        for handle in (self.lease, self.retry):
            if handle is not None:
                handle.cancel()
        self.lease = self.retry = None


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def glob_matches(pattern: str, path: str) -> bool:
    """``*`` is one whole segment, ``**`` any number (none included); ``%2A`` a literal star."""
    pat, segs = _segments(pattern), _segments(path)

    def match(i: int, j: int) -> bool:
        if i == len(pat):
            return j == len(segs)
        if pat[i] == "**":
            return any(match(i + 1, k) for k in range(j, len(segs) + 1))
        if j == len(segs):
            return False
        literal = pat[i].replace("%2A", "*").replace("%2a", "*")
        return (pat[i] == "*" or literal == segs[j]) and match(i + 1, j + 1)

    return match(0, 0)


def relative_path(path: str) -> str | None:
    """A stream's path under the stream root, or None outside it (and for ``__ds``)."""
    if not path.startswith(STREAM_ROOT):
        return None
    relative = path[len(STREAM_ROOT) :].strip("/")
    if not relative or relative == "__ds" or relative.startswith("__ds/"):
        return None
    return relative


def tail_offset(store: Store, path: str) -> str | None:
    """The tail of the stream at ``path`` (relative to the stream root); None if it cannot
    be read (it does not exist, yet or any more)."""
    try:
        return format_offset(store.get(STREAM_ROOT + path).tail)
    except StoreError:
        return None
