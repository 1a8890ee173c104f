"""How a sync reader sends its GETs: one interface, two transports.

The reader's driver sees a *reply* (``status_code``, lower-cased ``headers``, ``iter_bytes()``,
``read(limit)``, ``close()``) whose failures are already this package's typed errors. The
native transport (:mod:`._wire`: Python sockets and the core's HTTP/1.1 decoder) serves by
default; httpx serves where the native one does not reach: a caller's own ``httpx.Client``,
a proxy from the environment, a scheme other than http(s), or
``DURABLE_STREAMS_READ_TRANSPORT=httpx``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Generator
from contextlib import aclosing
from typing import Protocol

import httpx

from . import _errors as errors
from . import _wire
from ._protocol import HttpRequest
from ._shared import (
    CLIENT_LIMITS,
    agather_body,
    build_httpx_request,
    compressed_body_cut_short,
    gather_body,
    lower_headers,
    transport_error,
)

__all__ = [
    "AsyncHttpxTransport",
    "AsyncReply",
    "AsyncTransport",
    "HttpxTransport",
    "Reply",
    "Transport",
    "async_read_transport",
    "read_transport",
]


class Reply(Protocol):
    status_code: int
    headers: dict[str, str]

    def iter_bytes(self) -> Generator[bytes, None, None]: ...
    def read(self, limit: int) -> bytes: ...
    def close(self) -> None: ...


class Transport(Protocol):
    def send(self, req: HttpRequest, timeout: httpx.Timeout) -> Reply: ...
    def close(self) -> None: ...


class HttpxReply:
    """An httpx response, seen as a :class:`Reply`."""

    def __init__(self, http: httpx.Response, *, url: str, offset: str | None) -> None:
        self._http = http
        self.status_code = http.status_code
        self.headers = lower_headers(http.headers)
        self._url = url
        self._offset = offset

    def iter_bytes(self) -> Generator[bytes, None, None]:
        """The body as it arrives; one cut short (also inside its compression) raises
        :class:`TransportError`."""
        received = False
        try:
            for chunk in self._http.iter_bytes():
                received = received or bool(chunk)
                yield chunk
        except httpx.HTTPError as exc:
            self._http.close()
            raise transport_error(exc, url=self._url, offset=self._offset) from exc
        if compressed_body_cut_short(self._http, received):
            self._http.close()
            raise errors.TransportError(
                "compressed body ended early", url=self._url, offset=self._offset
            )

    def read(self, limit: int) -> bytes:
        try:
            return gather_body(self.iter_bytes(), limit, url=self._url, offset=self._offset)
        except errors.ProtocolError:
            self._http.close()
            raise

    def close(self) -> None:
        self._http.close()


class HttpxTransport:
    """GETs through an httpx client; ``owns``: closing the transport closes the client."""

    def __init__(self, client: httpx.Client, *, owns: bool) -> None:
        self.client = client
        self._owns = owns

    def send(self, req: HttpRequest, timeout: httpx.Timeout) -> HttpxReply:
        offset = dict(req.params).get("offset")
        try:
            http = self.client.send(build_httpx_request(self.client, req, timeout), stream=True)
        except httpx.HTTPError as exc:
            raise transport_error(exc, url=req.url, offset=offset) from exc
        return HttpxReply(http, url=req.url, offset=offset)

    def close(self) -> None:
        if self._owns:
            self.client.close()


def native_reads_enabled() -> bool:
    choice = os.environ.get("DURABLE_STREAMS_READ_TRANSPORT", "native")
    if choice not in ("native", "httpx"):
        raise ValueError(f"DURABLE_STREAMS_READ_TRANSPORT must be native or httpx, not {choice!r}")
    return choice == "native"


def read_transport(
    url: str,
    *,
    verify: _wire.Verify,
    user_client: httpx.Client | None,
    fallback_client: httpx.Client | None = None,
) -> tuple[Transport, bool]:
    """The transport a reader of ``url`` uses, and whether the reader owns it (closes it):
    the caller's own client if given, else the native one where it reaches, else
    ``fallback_client`` (a handle's) or an httpx client of the reader's own."""
    if user_client is not None:
        return HttpxTransport(user_client, owns=False), False
    if native_reads_enabled() and _wire.usable_for(url):
        return _wire.WireTransport(verify), True
    if fallback_client is not None:
        return HttpxTransport(fallback_client, owns=False), False
    return HttpxTransport(httpx.Client(verify=verify, limits=CLIENT_LIMITS), owns=True), True


# -- async ------------------------------------------------------------------------------------


class AsyncReply(Protocol):
    status_code: int
    headers: dict[str, str]

    def aiter_bytes(self) -> AsyncGenerator[bytes, None]: ...
    async def aread(self, limit: int) -> bytes: ...
    async def aclose(self) -> None: ...


class AsyncTransport(Protocol):
    async def send(self, req: HttpRequest, timeout: httpx.Timeout) -> AsyncReply: ...
    async def aclose(self) -> None: ...


class AsyncHttpxReply:
    """An httpx response, seen as an :class:`AsyncReply`."""

    def __init__(self, http: httpx.Response, *, url: str, offset: str | None) -> None:
        self._http = http
        self.status_code = http.status_code
        self.headers = lower_headers(http.headers)
        self._url = url
        self._offset = offset

    async def aiter_bytes(self) -> AsyncGenerator[bytes, None]:
        """:meth:`HttpxReply.iter_bytes` of an async response."""
        received = False
        try:
            async with aclosing(self._http.aiter_bytes()) as chunks:  # type: ignore[type-var]
                async for chunk in chunks:
                    received = received or bool(chunk)
                    yield chunk
        except httpx.HTTPError as exc:
            await self._http.aclose()
            raise transport_error(exc, url=self._url, offset=self._offset) from exc
        if compressed_body_cut_short(self._http, received):
            await self._http.aclose()
            raise errors.TransportError(
                "compressed body ended early", url=self._url, offset=self._offset
            )

    async def aread(self, limit: int) -> bytes:
        try:
            return await agather_body(self.aiter_bytes(), limit, url=self._url, offset=self._offset)
        except errors.ProtocolError:
            await self._http.aclose()
            raise

    async def aclose(self) -> None:
        await self._http.aclose()


class AsyncHttpxTransport:
    """GETs through an httpx async client; ``owns``: closing the transport closes it."""

    def __init__(self, client: httpx.AsyncClient, *, owns: bool) -> None:
        self.client = client
        self._owns = owns

    async def send(self, req: HttpRequest, timeout: httpx.Timeout) -> AsyncHttpxReply:
        offset = dict(req.params).get("offset")
        try:
            http = await self.client.send(
                build_httpx_request(self.client, req, timeout), stream=True
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, url=req.url, offset=offset) from exc
        return AsyncHttpxReply(http, url=req.url, offset=offset)

    async def aclose(self) -> None:
        if self._owns:
            await self.client.aclose()


def async_read_transport(
    url: str,
    *,
    verify: _wire.Verify,
    user_client: httpx.AsyncClient | None,
    fallback_client: httpx.AsyncClient | None = None,
) -> tuple[AsyncTransport, bool]:
    """:func:`read_transport` for async readers."""
    if user_client is not None:
        return AsyncHttpxTransport(user_client, owns=False), False
    if native_reads_enabled() and _wire.usable_for(url):
        return _wire.AsyncWireTransport(verify), True
    if fallback_client is not None:
        return AsyncHttpxTransport(fallback_client, owns=False), False
    client = httpx.AsyncClient(verify=verify, limits=CLIENT_LIMITS)
    return AsyncHttpxTransport(client, owns=True), True
