"""The native transport, sync and async: Python sockets (blocking ones in sync
code, an asyncio protocol of our own on asyncio, anyio's streams under trio), the core's
HTTP/1.1 decoder, and nothing in between.

httpx costs a live reader about 150 µs per small SSE event in its pure-Python transport
(httpcore, h11 and their generator layers). Here a read is one ``recv``, one crossing into the
core's :class:`HttpResponseDecoder` (which undoes the body's framing) and one crossing into the
reader's decoder. The reader's session and drivers are unchanged: they see the same status,
lower-cased headers and body chunks as with httpx, and the same typed errors.

What it covers: GET over ``http://`` and ``https://`` (TLS through :mod:`ssl`, honouring
``verify`` as httpx does: a bool, a CA bundle path or an :class:`ssl.SSLContext`), HTTP/1.1
keep-alive with one idle connection per origin, connect and read timeouts. What it does not
(proxies, HTTP/2, a user's own ``httpx.Client``) stays on httpx; :func:`usable_for` decides."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import httpx

from .. import _errors as errors
from .._protocol import HttpRequest
from ._exchange import Gathered
from ._failures import transport_error

if TYPE_CHECKING:
    pass

from ._connections import (
    KEEPALIVE_EXPIRY,
    AnyioConnection,
    AsyncConnection,
    AsyncioConnection,
    BlockingConnection,
    asyncio_loop,
)
from ._exchange import Exchange
from ._failures import nothing_arrived
from ._request import Origin, Prepared, Verify, prepare, ssl_context


class NativeReply:
    """One response: its status and headers, then its body as it arrives."""

    def __init__(
        self,
        transport: NativeTransport,
        origin: Origin,
        connection: BlockingConnection,
        exchange: Exchange,
        first: bytes,
    ) -> None:
        self.status_code = exchange.status
        self.headers = exchange.headers
        self._transport = transport
        self._origin = origin
        self._connection: BlockingConnection | None = connection
        self._exchange = exchange
        self._first = first

    def iter_bytes(self) -> Generator[bytes, None, None]:
        """The body's bytes as they come; raises :class:`TransportError` (or
        :class:`HTTPParseError`) if the connection fails or ends early."""
        exchange = self._exchange
        first, self._first = self._first, b""
        if first:
            yield first
        connection = self._connection
        if connection is None:
            return
        recv = connection.recv
        on_data = exchange.on_data
        try:
            while not exchange.done:
                try:
                    data = recv()
                except OSError as exc:
                    raise transport_error(exc, url=exchange.url, offset=exchange.offset) from exc
                body = on_data(data)
                if body:
                    yield body
        finally:
            self.close()

    def read(self, limit: int) -> bytes:
        """The whole body, refusing one over ``limit`` bytes."""
        gathered = Gathered(limit, url=self._exchange.url, offset=self._exchange.offset)
        try:
            for chunk in self.iter_bytes():
                gathered.add(chunk)
        finally:
            self.close()
        return gathered.body()

    def close(self) -> None:
        """Done with the response: its connection goes back for the next request if the
        body ended cleanly, else (read only in part, or close-delimited) it is closed."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._exchange.keep_alive:
            self._transport.keep(self._origin, connection)
        else:
            connection.sock.close()


class NativeTransport:
    """Sends GETs for one reader over one kept-alive connection per origin."""

    def __init__(self, verify: Verify = True, max_head_bytes: int = 65_536) -> None:
        self._verify = verify
        self._context: ssl.SSLContext | None = None
        self._max_head_bytes = max_head_bytes
        self._idle: dict[Origin, BlockingConnection] = {}

    def keep(self, origin: Origin, connection: BlockingConnection) -> None:
        """Take back a connection whose response ended cleanly, for the next request."""
        connection.idle_since = time.monotonic()
        old = self._idle.pop(origin, None)
        if old is not None:
            old.sock.close()
        self._idle[origin] = connection

    def close(self) -> None:
        for connection in self._idle.values():
            connection.sock.close()
        self._idle.clear()

    def _connect(self, origin: Origin, timeout: httpx.Timeout) -> BlockingConnection:
        scheme, host, port = origin
        sock = socket.create_connection((host, port), timeout=timeout.connect)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                if self._context is None:
                    self._context = ssl_context(self._verify)
                sock = self._context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        return BlockingConnection(sock)

    def send(self, req: HttpRequest, timeout: httpx.Timeout) -> NativeReply:
        """Send ``req`` and read up to the end of the response head."""
        prepared = prepare(req)
        origin = prepared.origin
        connection = self._idle.pop(origin, None)
        if connection is not None and time.monotonic() - connection.idle_since > KEEPALIVE_EXPIRY:
            connection.sock.close()
            connection = None
        while True:
            fresh = connection is None
            try:
                if connection is None:
                    connection = self._connect(origin, timeout)
                return self._exchange(connection, prepared, timeout)
            except (OSError, errors.HTTPParseError) as exc:
                if connection is not None:
                    connection.sock.close()
                connection = None
                if not fresh and nothing_arrived(exc):
                    continue  # a kept connection the server had closed: once more, afresh
                if isinstance(exc, errors.HTTPParseError):
                    raise
                raise transport_error(exc, url=prepared.url, offset=prepared.offset) from exc
            except BaseException:
                if connection is not None:
                    connection.sock.close()
                raise

    def _exchange(
        self, connection: BlockingConnection, prepared: Prepared, timeout: httpx.Timeout
    ) -> NativeReply:
        connection.send(prepared.head, timeout.write)
        connection.set_read_timeout(timeout.read)
        exchange = Exchange(prepared.url, prepared.offset, self._max_head_bytes)
        while True:
            first = exchange.on_head_data(connection.recv())
            if first is not None:
                return NativeReply(self, prepared.origin, connection, exchange, first)


async def _receive(
    connection: AsyncConnection, read_timeout: float | None, exchange: Exchange
) -> bytes:
    """The next bytes of the connection, ``b""`` at its end; failures typed."""
    try:
        return await connection.receive(read_timeout)
    except (OSError, TimeoutError, anyio.BrokenResourceError) as exc:
        raise transport_error(exc, url=exchange.url, offset=exchange.offset) from exc


class AsyncNativeReply:
    """:class:`NativeReply` for async code."""

    def __init__(
        self,
        transport: AsyncNativeTransport,
        origin: Origin,
        connection: AsyncConnection,
        exchange: Exchange,
        first: bytes,
        read_timeout: float | None,
    ) -> None:
        self.status_code = exchange.status
        self.headers = exchange.headers
        self._transport = transport
        self._origin = origin
        self._connection: AsyncConnection | None = connection
        self._exchange = exchange
        self._first = first
        self._read_timeout = read_timeout

    async def aiter_bytes(self) -> AsyncGenerator[bytes, None]:
        exchange = self._exchange
        first, self._first = self._first, b""
        if first:
            yield first
        connection = self._connection
        if connection is None:
            return
        try:
            while not exchange.done:
                body = exchange.on_data(await _receive(connection, self._read_timeout, exchange))
                if body:
                    yield body
        finally:
            await self.aclose()

    async def aread(self, limit: int) -> bytes:
        gathered = Gathered(limit, url=self._exchange.url, offset=self._exchange.offset)
        try:
            async for chunk in self.aiter_bytes():
                gathered.add(chunk)
        finally:
            await self.aclose()
        return gathered.body()

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._exchange.keep_alive:
            await self._transport.keep(self._origin, connection)
        else:
            await connection.abort()


class AsyncNativeTransport:
    """:class:`NativeTransport` for async code."""

    def __init__(self, verify: Verify = True, max_head_bytes: int = 65_536) -> None:
        self._verify = verify
        self._context: ssl.SSLContext | None = None
        self._max_head_bytes = max_head_bytes
        self._idle: dict[Origin, AsyncConnection] = {}

    async def keep(self, origin: Origin, connection: AsyncConnection) -> None:
        connection.idle_since = time.monotonic()
        old = self._idle.pop(origin, None)
        if old is not None:
            await old.abort()
        self._idle[origin] = connection

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for connection in idle.values():
            await connection.abort()

    async def _connect(self, origin: Origin, timeout: httpx.Timeout) -> AsyncConnection:
        scheme, host, port = origin
        if scheme == "https" and self._context is None:
            self._context = ssl_context(self._verify)
        loop = asyncio_loop()
        if loop is not None:
            return await self._connect_asyncio(loop, origin, timeout.connect)
        with anyio.fail_after(timeout.connect):
            if scheme == "https":
                stream: anyio.abc.ByteStream = await anyio.connect_tcp(
                    host,
                    port,
                    ssl_context=self._context,
                    tls_hostname=host,
                    tls_standard_compatible=False,
                )
            else:
                stream = await anyio.connect_tcp(host, port)
        return AnyioConnection(stream)

    async def _connect_asyncio(
        self, loop: asyncio.AbstractEventLoop, origin: Origin, timeout: float | None
    ) -> AsyncioConnection:
        scheme, host, port = origin
        tls = self._context if scheme == "https" else None
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: AsyncioConnection(loop),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                ),
                timeout,
            )
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            raise TimeoutError(f"connecting to {host}:{port} timed out") from None
        return connection

    async def send(self, req: HttpRequest, timeout: httpx.Timeout) -> AsyncNativeReply:
        prepared = prepare(req)
        origin = prepared.origin
        connection = self._idle.pop(origin, None)
        if connection is not None and time.monotonic() - connection.idle_since > KEEPALIVE_EXPIRY:
            await connection.abort()
            connection = None
        while True:
            fresh = connection is None
            try:
                if connection is None:
                    connection = await self._connect(origin, timeout)
                return await self._exchange(connection, prepared, timeout)
            except (OSError, TimeoutError, anyio.BrokenResourceError, errors.TransportError) as exc:
                if connection is not None:
                    await connection.abort()
                connection = None
                if not fresh and nothing_arrived(exc):
                    continue  # a kept connection the server had closed: once more, afresh
                if isinstance(exc, errors.TransportError):
                    raise
                raise transport_error(exc, url=prepared.url, offset=prepared.offset) from exc
            except BaseException:
                if connection is not None:
                    await connection.abort()
                raise

    async def _exchange(
        self, connection: AsyncConnection, prepared: Prepared, timeout: httpx.Timeout
    ) -> AsyncNativeReply:
        await connection.send(prepared.head, timeout.write)
        exchange = Exchange(prepared.url, prepared.offset, self._max_head_bytes)
        while True:
            first = exchange.on_head_data(await _receive(connection, timeout.read, exchange))
            if first is not None:
                return AsyncNativeReply(
                    self, prepared.origin, connection, exchange, first, timeout.read
                )
