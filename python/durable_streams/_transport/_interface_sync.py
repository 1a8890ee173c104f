# Generated from _transport/_interface_async.py by scripts/unasync.py:
# edit that file, then run the script.
"""What every transport offers sync code: a
``send`` that returns an answer as it arrives, its failures already typed."""

from __future__ import annotations

from collections.abc import Generator
from typing import Protocol

import httpx

from .._protocol import HttpRequest
from ._interrupt import Interrupt

__all__ = ["Reply", "Transport"]


class Reply(Protocol):
    """An answer: its status, lower-cased headers, then its body; failures are typed."""

    status_code: int
    headers: dict[str, str]

    def iter_bytes(self) -> Generator[bytes, None, None]: ...
    def read(self, limit: int) -> bytes: ...
    def close(self) -> None: ...


class Transport(Protocol):
    def send(
        self,
        req: HttpRequest,
        timeout: httpx.Timeout,
        *,
        live: bool = False,
        interrupt: Interrupt | None = None,
    ) -> Reply: ...
    def saturated(self, url: str) -> bool:
        """Whether a request to ``url`` would now wait for a connection (every one the
        pool may open to its server is busy)."""
        ...

    def close(self) -> None: ...
