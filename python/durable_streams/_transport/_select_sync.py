# Generated from _transport/_select_async.py by scripts/unasync.py:
# edit that file, then run the script.
"""Which transport serves a request, for sync code:
the interface every transport offers, and the choice between the native one and httpx."""

from __future__ import annotations

from collections.abc import Generator
from typing import Protocol

import httpx

from .._options import CLIENT_LIMITS
from .._protocol import HttpRequest
from ._httpx_sync import HttpxTransport
from ._native_sync import NativeTransport
from ._request import Verify, native_enabled, usable_for

__all__ = ["Reply", "Transport", "read_transport"]


class Reply(Protocol):
    """An answer: its status, lower-cased headers, then its body; failures are typed."""

    status_code: int
    headers: dict[str, str]

    def iter_bytes(self) -> Generator[bytes, None, None]: ...
    def read(self, limit: int) -> bytes: ...
    def close(self) -> None: ...


class Transport(Protocol):
    def send(self, req: HttpRequest, timeout: httpx.Timeout) -> Reply: ...
    def close(self) -> None: ...


def read_transport(
    url: str,
    *,
    verify: Verify,
    user_client: httpx.Client | None,
    fallback_client: httpx.Client | None = None,
) -> tuple[Transport, bool]:
    """The transport a reader of ``url`` uses, and whether the reader owns it (closes it):
    the caller's own client if given, else the native one where it reaches, else
    ``fallback_client`` (a handle's) or an httpx client of the reader's own."""
    if user_client is not None:
        return HttpxTransport(user_client, owns=False), False
    if native_enabled() and usable_for(url):
        return NativeTransport(verify), True
    if fallback_client is not None:
        return HttpxTransport(fallback_client, owns=False), False
    client = httpx.Client(verify=verify, limits=CLIENT_LIMITS)
    return HttpxTransport(client, owns=True), True
