"""Which transport serves a request, for async code (``_select_sync`` is generated from it):
the interface every transport offers, and the choice between the native one and httpx."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

import httpx

from .._options import CLIENT_LIMITS
from .._protocol import HttpRequest
from ._httpx_async import AsyncHttpxTransport
from ._native_async import AsyncNativeTransport
from ._request import Verify, native_enabled, usable_for

__all__ = ["AsyncReply", "AsyncTransport", "async_read_transport"]


class AsyncReply(Protocol):
    """An answer: its status, lower-cased headers, then its body; failures are typed."""

    status_code: int
    headers: dict[str, str]

    def aiter_bytes(self) -> AsyncGenerator[bytes, None]: ...
    async def aread(self, limit: int) -> bytes: ...
    async def aclose(self) -> None: ...


class AsyncTransport(Protocol):
    async def send(self, req: HttpRequest, timeout: httpx.Timeout) -> AsyncReply: ...
    async def aclose(self) -> None: ...


def async_read_transport(
    url: str,
    *,
    verify: Verify,
    user_client: httpx.AsyncClient | None,
    fallback_client: httpx.AsyncClient | None = None,
) -> tuple[AsyncTransport, bool]:
    """The transport a reader of ``url`` uses, and whether the reader owns it (closes it):
    the caller's own client if given, else the native one where it reaches, else
    ``fallback_client`` (a handle's) or an httpx client of the reader's own."""
    if user_client is not None:
        return AsyncHttpxTransport(user_client, owns=False), False
    if native_enabled() and usable_for(url):
        return AsyncNativeTransport(verify), True
    if fallback_client is not None:
        return AsyncHttpxTransport(fallback_client, owns=False), False
    client = httpx.AsyncClient(verify=verify, limits=CLIENT_LIMITS)
    return AsyncHttpxTransport(client, owns=True), True
