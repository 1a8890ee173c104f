"""What every transport offers async code (``_interface_sync`` is generated from it): a
``send`` that returns an answer as it arrives, its failures already typed."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

import httpx

from .._protocol import HttpRequest
from ._interrupt import Interrupt

__all__ = ["AsyncReply", "AsyncTransport"]


class AsyncReply(Protocol):
    """An answer: its status, lower-cased headers, then its body; failures are typed."""

    status_code: int
    headers: dict[str, str]

    def aiter_bytes(self) -> AsyncGenerator[bytes, None]: ...
    async def aread(self, limit: int) -> bytes: ...
    async def aclose(self) -> None: ...


class AsyncTransport(Protocol):
    async def send(
        self,
        req: HttpRequest,
        timeout: httpx.Timeout,
        *,
        live: bool = False,
        interrupt: Interrupt | None = None,
    ) -> AsyncReply: ...
    def saturated(self, url: str) -> bool:
        """Whether a request to ``url`` would now wait for a connection (every one the
        pool may open to its server is busy)."""
        ...

    async def aclose(self) -> None: ...
