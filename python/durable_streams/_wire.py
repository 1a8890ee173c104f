"""The native read path's transport, sync and async: Python sockets (blocking ones in sync
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
(proxies, HTTP/2, a user's own ``httpx.Client``) stays on httpx; :func:`usable_for` decides.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import re
import socket
import ssl
import struct
import sys
import time
import urllib.request
import zlib
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

import anyio
import anyio.abc
import httpx

from . import _errors as errors
from . import _impl
from ._protocol import HttpRequest
from ._shared import agather_body, gather_body, transport_error

if TYPE_CHECKING:
    from ._core import HttpResponseDecoder

__all__ = [
    "AsyncWireReply",
    "AsyncWireTransport",
    "Exchange",
    "WireReply",
    "WireTransport",
    "prepare",
    "usable_for",
]

RECV_BYTES = 256 * 1024
# Servers commonly drop idle keep-alive connections after 5 s (Node's default); one idle for
# longer than this is not reused, so a request never races that close.
KEEPALIVE_EXPIRY = 4.0
USER_AGENT = "durable-streams-rs"
# The decoder's message (both cores) when a connection ends before any byte of a response.
CLOSED_BEFORE_A_RESPONSE = "connection closed before a response"

Verify = bool | str | ssl.SSLContext


def usable_for(url: str) -> bool:
    """Whether the native transport can serve ``url``: http(s), and no proxy configured for
    it in the environment (httpx honours those; so must we, by leaving them to it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return True
    return bool(urllib.request.proxy_bypass(parts.hostname))


def ssl_context(verify: Verify) -> ssl.SSLContext:
    """The TLS context httpx would make for ``verify``."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    import certifi  # httpx's own default trust store

    return ssl.create_default_context(cafile=certifi.where())


Origin = tuple[str, str, int]


# Plain TCP sockets leave timeouts to the kernel (SO_RCVTIMEO) where its timeval is what
# struct "ll" packs: a Python socket timeout costs a poll() before every recv and send.
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")
_UNSET = -1.0


def _timeval(seconds: float | None) -> bytes:
    if seconds is None:
        return struct.pack("ll", 0, 0)  # no timeout
    micros = max(1, round(seconds * 1e6))  # 0 would mean none at all
    return struct.pack("ll", micros // 1_000_000, micros % 1_000_000)


class _Connection:
    __slots__ = ("_kernel_timeouts", "_timeouts", "_view", "idle_since", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.idle_since = 0.0
        self._view = memoryview(bytearray(RECV_BYTES))
        self._kernel_timeouts = _KERNEL_TIMEOUTS and not isinstance(sock, ssl.SSLSocket)
        # The timeout in force per direction (the kernel keeps one for each, Python's socket
        # one for both): only a change costs a system call.
        self._timeouts: dict[int, float | None] = {}
        if self._kernel_timeouts:
            sock.settimeout(None)

    def _use_timeout(self, option: int, seconds: float | None) -> None:
        if not self._kernel_timeouts:
            option = 0
        if self._timeouts.get(option, _UNSET) == seconds:
            return
        self._timeouts[option] = seconds
        if option:
            self.sock.setsockopt(socket.SOL_SOCKET, option, _timeval(seconds))
        else:
            self.sock.settimeout(seconds)

    def set_read_timeout(self, seconds: float | None) -> None:
        """The timeout of every later receive."""
        self._use_timeout(socket.SO_RCVTIMEO, seconds)

    def recv(self) -> bytes:
        """The next bytes (``b""`` at the end). Into one reused buffer, then copied out at
        their size: ``recv(RECV_BYTES)`` would make glibc map, shrink and unmap a fresh
        256 KiB block for every read, three system calls per small event."""
        view = self._view
        try:
            return view[: self.sock.recv_into(view)].tobytes()
        except BlockingIOError:  # what the kernel's receive timeout running out looks like
            raise TimeoutError("timed out") from None

    def send(self, data: bytes, timeout: float | None) -> None:
        self._use_timeout(socket.SO_SNDTIMEO, timeout)
        try:
            self.sock.sendall(data)
        except BlockingIOError:
            raise TimeoutError("timed out") from None


@dataclass(slots=True)
class Prepared:
    """A GET ready for the wire: where it goes and its request head."""

    origin: Origin
    head: bytes
    url: str
    offset: str | None


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE_BREAK = re.compile(r"[\r\n\x00]")


@functools.lru_cache(maxsize=256)
def _locate(url: str) -> tuple[Origin, str, str]:
    """Where ``url`` goes, its Host header, and its path and query as httpx encodes them
    (parsed once per URL: a reader sends many requests to one)."""
    parsed = httpx.URL(url)
    scheme = parsed.scheme
    host = parsed.host
    default_port = 443 if scheme == "https" else 80
    port = parsed.port or default_port
    authority = parsed.raw_host.decode("ascii")
    if ":" in authority:
        authority = f"[{authority}]"
    if port != default_port:
        authority = f"{authority}:{port}"
    return (scheme, host, port), authority, parsed.raw_path.decode("ascii")


# What form encoding leaves as it is, and the separators of a query.
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9_.~=&-]*")


def _query(params: list[tuple[str, str]]) -> str:
    """``urlencode(params)``, without its cost when nothing needs encoding (offsets, cursors
    and modes never do): then the names and values hold no "=" or "&" of their own, as
    counting them shows."""
    query = "&".join([f"{name}={value}" for name, value in params])
    if (
        _PLAIN_QUERY.fullmatch(query)
        and query.count("=") == len(params)
        and query.count("&") == len(params) - 1
    ):
        return query
    return urlencode(params)


@functools.lru_cache(maxsize=64)
def _header_lines(fields: tuple[tuple[str, str], ...]) -> str:
    """The header lines after Host, checked (once per distinct set of headers: a reader sends
    the same ones on every request)."""
    lines = []
    names = set()
    for name, value in fields:
        if not _HEADER_NAME.fullmatch(name) or _HEADER_VALUE_BREAK.search(value):
            raise errors.UsageError(f"header {name!r} cannot be sent as given")
        names.add(name.lower())
        lines.append(f"{name}: {value}\r\n")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}\r\n")
    if "accept-encoding" not in names:
        lines.append("Accept-Encoding: gzip, deflate\r\n")
    block = "".join(lines)
    try:
        block.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"a request header is not latin-1 text: {exc}") from None
    return block


def prepare(req: HttpRequest) -> Prepared:
    """The request head of ``req``, its target encoded as httpx would encode it. A header
    that could not travel as given (a line break or NUL in it, a name that is not a token,
    text beyond latin-1) is a ValueError, never sent."""
    origin, authority, target = _locate(req.url)
    params = req.params
    offset = None
    if params:
        if "?" in target:  # merged as the httpx path merges them (see build_httpx_request)
            merged = httpx.URL(req.url).copy_merge_params(tuple(params))
            target = merged.raw_path.decode("ascii")
        else:
            target = f"{target}?{_query(params)}"
        for name, value in params:
            if name == "offset":
                offset = value
    lines = _header_lines(tuple(req.headers.items()))
    head = f"GET {target} HTTP/1.1\r\nHost: {authority}\r\n{lines}\r\n".encode("latin-1")
    return Prepared(origin, head, req.url, offset)


class Exchange:
    """One response on a connection, without I/O: fed what the connection reads, it gives
    the head, then the body with framing and compression undone, and says whether the
    connection may serve another request. Every failure is a typed error naming the URL."""

    def __init__(self, url: str, offset: str | None, max_head_bytes: int) -> None:
        self.url = url
        self.offset = offset
        self.decoder: HttpResponseDecoder = _impl.core.HttpResponseDecoder(max_head_bytes)
        self.status = 0
        self.headers: dict[str, str] = {}
        self._inflate: zlib._Decompress | None = None
        self._reusable = True
        self._received_body = False

    @property
    def done(self) -> bool:
        return bool(self.decoder.done)

    @property
    def keep_alive(self) -> bool:
        """Whether the body ended cleanly on a connection the server keeps open."""
        decoder = self.decoder
        return self._reusable and decoder.done and not decoder.close_delimited

    def _context(self, exc: errors.DurableStreamError) -> errors.DurableStreamError:
        return exc.with_context(url=self.url, offset=self.offset)

    def on_head_data(self, data: bytes) -> bytes | None:
        """Bytes read before the head completed (``b""``: the connection closed). Returns
        the first body bytes once the head is complete (see ``status`` and ``headers``)."""
        decoder = self.decoder
        try:
            if not data:
                decoder.finish()  # raises: no response, or a head cut short
            got, body, taken = decoder.feed(data)
        except errors.HTTPParseError as exc:
            raise self._context(exc) from None
        if got is None:
            return None
        self.status, self.headers = got
        if taken < len(data):
            self._reusable = False  # bytes after the response: a broken server
        if "close" in self.headers.get("connection", "").lower():
            self._reusable = False
        self._inflate = _decompressor(
            self.headers.get("content-encoding"), url=self.url, offset=self.offset
        )
        return self._body(body)

    def on_data(self, data: bytes) -> bytes:
        """More body bytes read (``b""``: the connection closed); the body they carry."""
        decoder = self.decoder
        try:
            if not data:
                decoder.finish()
                self._reusable = False
                return self._body(b"")
            _, body, taken = decoder.feed(data)
        except errors.HTTPParseError as exc:
            raise self._context(exc) from None
        if taken < len(data):
            self._reusable = False
        return self._body(body)

    def _body(self, body: bytes) -> bytes:
        inflate = self._inflate
        if body:
            self._received_body = True
            if inflate is not None:
                try:
                    body = inflate.decompress(body)
                except zlib.error as exc:
                    raise errors.TransportError(
                        f"compressed body is corrupt: {exc}", url=self.url, offset=self.offset
                    ) from exc
        # httpx's check too: a compressed body that stops before its compressed data did
        # was cut short, even if the framing around it looked whole.
        if inflate is not None and self._received_body and self.decoder.done and not inflate.eof:
            raise errors.TransportError(
                "compressed body ended early", url=self.url, offset=self.offset
            )
        return body


class WireReply:
    """One response: its status and headers, then its body as it arrives."""

    def __init__(
        self,
        transport: WireTransport,
        origin: Origin,
        connection: _Connection,
        exchange: Exchange,
        first: bytes,
    ) -> None:
        self.status_code = exchange.status
        self.headers = exchange.headers
        self._transport = transport
        self._origin = origin
        self._connection: _Connection | None = connection
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
        try:
            return gather_body(
                self.iter_bytes(), limit, url=self._exchange.url, offset=self._exchange.offset
            )
        finally:
            self.close()

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


class WireTransport:
    """Sends GETs for one reader over one kept-alive connection per origin."""

    def __init__(self, verify: Verify = True, max_head_bytes: int = 65_536) -> None:
        self._verify = verify
        self._context: ssl.SSLContext | None = None
        self._max_head_bytes = max_head_bytes
        self._idle: dict[Origin, _Connection] = {}

    def keep(self, origin: Origin, connection: _Connection) -> None:
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

    def _connect(self, origin: Origin, timeout: httpx.Timeout) -> _Connection:
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
        return _Connection(sock)

    def send(self, req: HttpRequest, timeout: httpx.Timeout) -> WireReply:
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
                if not fresh and _nothing_arrived(exc):
                    continue  # a kept connection the server had closed: once more, afresh
                if isinstance(exc, errors.HTTPParseError):
                    raise
                raise transport_error(exc, url=prepared.url, offset=prepared.offset) from exc
            except BaseException:
                if connection is not None:
                    connection.sock.close()
                raise

    def _exchange(
        self, connection: _Connection, prepared: Prepared, timeout: httpx.Timeout
    ) -> WireReply:
        connection.send(prepared.head, timeout.write)
        connection.set_read_timeout(timeout.read)
        exchange = Exchange(prepared.url, prepared.offset, self._max_head_bytes)
        while True:
            first = exchange.on_head_data(connection.recv())
            if first is not None:
                return WireReply(self, prepared.origin, connection, exchange, first)


def _decompressor(encoding: str | None, *, url: str, offset: str | None) -> zlib._Decompress | None:
    """A zlib decompressor for the Content-Encoding answered, or None for identity."""
    if encoding is None:
        return None
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name == "gzip":
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if name == "deflate":
        return zlib.decompressobj()
    raise errors.ProtocolError(
        f"response compressed as {encoding!r}, which was not asked for", url=url, offset=offset
    )


def _nothing_arrived(exc: BaseException) -> bool:
    """Whether a kept connection failed before any byte of an answer: the server had closed
    it while idle, so the request never reached anything and may go again at once."""
    if isinstance(exc, errors.TransportError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, errors.HTTPParseError):
        return exc.message == CLOSED_BEFORE_A_RESPONSE
    return isinstance(
        exc,
        (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, anyio.BrokenResourceError),
    )


# -- the same for async code: asyncio directly, trio (and anything else) through anyio --------


class _AnyioConnection:
    """A connection through anyio's streams (trio)."""

    __slots__ = ("idle_since", "stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.idle_since = 0.0

    async def receive(self, timeout: float | None) -> bytes:
        try:
            with anyio.fail_after(timeout):
                return await self.stream.receive(RECV_BYTES)
        except anyio.EndOfStream:
            return b""

    async def send(self, data: bytes, timeout: float | None) -> None:
        with anyio.fail_after(timeout):
            await self.stream.send(data)

    async def abort(self) -> None:
        """Close without waiting on the peer (a TLS close_notify could block), even when the
        surrounding scope is being cancelled."""
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(self.stream)


# The asyncio connection stops reading from the socket while this much is received and not
# yet taken, and reads again once the reader has taken it below a quarter of that.
PAUSE_READING_BYTES = 4 * RECV_BYTES


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("timed out"))


class _AsyncioConnection(asyncio.BufferedProtocol):
    """A connection as an asyncio protocol, for code running on asyncio.

    anyio's asyncio streams cost a live reader about as much as the rest of its read path
    (per receive: a cancel scope for the timeout, and the socket taken out of and put back
    into epoll). Here the socket stays registered, the event loop reads into one reused
    buffer, and a receive that must wait costs one future. Its timeout is one timer per
    connection that is moved on lazily: when it fires before the current deadline (the
    reads since it was set were quicker), it sets itself for that deadline instead."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.idle_since = 0.0
        self._loop = loop
        self._view = memoryview(bytearray(RECV_BYTES))
        self._received: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._paused = False
        self._ended = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: float | None = None  # of the receive waiting now, if it has one
        self._timer: asyncio.TimerHandle | None = None

    # the protocol's side, called by the event loop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self._received.append(self._view[:nbytes].tobytes())
        self._queued += nbytes
        if self._queued >= PAUSE_READING_BYTES and not self._paused:
            self._paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake()
        return False  # close the transport: a response never continues after the peer's EOF

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        if exc is not None:
            self._error = exc
        self._wake()
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def pause_writing(self) -> None:
        self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # the reader's side

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return  # nothing waits now; the next wait sets a timer again
        # Within a millisecond counts as reached: the loop may fire a timer that much early.
        if self._loop.time() + 0.001 >= deadline:
            if self._waiter is not None:
                _expire(self._waiter)
        else:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    async def receive(self, timeout: float | None) -> bytes:
        if not self._received and not self._ended:
            loop = self._loop
            waiter = self._waiter = loop.create_future()
            if timeout is not None:
                deadline = self._deadline = loop.time() + timeout
                timer = self._timer
                if timer is not None and timer.when() > deadline:
                    timer.cancel()
                    timer = None
                if timer is None:
                    self._timer = loop.call_at(deadline, self._on_timer)
            try:
                await waiter
            finally:
                self._waiter = None
                self._deadline = None
        if self._received:
            data = self._received.popleft()
            self._queued -= len(data)
            if self._paused and self._queued < PAUSE_READING_BYTES // 4:
                self._paused = False
                assert self._transport is not None
                self._transport.resume_reading()
            return data
        if self._error is not None:
            raise self._error
        return b""

    async def send(self, data: bytes, timeout: float | None) -> None:
        transport = self._transport
        if transport is None or self._ended or transport.is_closing():
            raise self._error or ConnectionResetError("the connection is closed")
        transport.write(data)
        drained = self._drained
        if drained is not None:
            timer = None if timeout is None else self._loop.call_later(timeout, _expire, drained)
            try:
                await drained
            finally:
                if timer is not None:
                    timer.cancel()
            if self._ended:
                raise self._error or ConnectionResetError("the connection closed while sending")

    async def abort(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()
            # The loop closes the socket in its next round: let it, so that the connection
            # is gone when this returns (if cancelled here, it is gone a round later).
            await asyncio.sleep(0)


_AsyncConnection = _AnyioConnection | _AsyncioConnection


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop if this task runs on asyncio itself; None under trio."""
    try:
        import sniffio
    except ImportError:
        pass
    else:
        try:
            if sniffio.current_async_library() != "asyncio":
                return None
        except sniffio.AsyncLibraryNotFoundError:
            return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _receive(
    connection: _AsyncConnection, read_timeout: float | None, exchange: Exchange
) -> bytes:
    """The next bytes of the connection, ``b""`` at its end; failures typed."""
    try:
        return await connection.receive(read_timeout)
    except (OSError, TimeoutError, anyio.BrokenResourceError) as exc:
        raise transport_error(exc, url=exchange.url, offset=exchange.offset) from exc


class AsyncWireReply:
    """:class:`WireReply` for async code."""

    def __init__(
        self,
        transport: AsyncWireTransport,
        origin: Origin,
        connection: _AsyncConnection,
        exchange: Exchange,
        first: bytes,
        read_timeout: float | None,
    ) -> None:
        self.status_code = exchange.status
        self.headers = exchange.headers
        self._transport = transport
        self._origin = origin
        self._connection: _AsyncConnection | None = connection
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
        try:
            return await agather_body(
                self.aiter_bytes(), limit, url=self._exchange.url, offset=self._exchange.offset
            )
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._exchange.keep_alive:
            await self._transport.keep(self._origin, connection)
        else:
            await connection.abort()


class AsyncWireTransport:
    """:class:`WireTransport` for async code."""

    def __init__(self, verify: Verify = True, max_head_bytes: int = 65_536) -> None:
        self._verify = verify
        self._context: ssl.SSLContext | None = None
        self._max_head_bytes = max_head_bytes
        self._idle: dict[Origin, _AsyncConnection] = {}

    async def keep(self, origin: Origin, connection: _AsyncConnection) -> None:
        connection.idle_since = time.monotonic()
        old = self._idle.pop(origin, None)
        if old is not None:
            await old.abort()
        self._idle[origin] = connection

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for connection in idle.values():
            await connection.abort()

    async def _connect(self, origin: Origin, timeout: httpx.Timeout) -> _AsyncConnection:
        scheme, host, port = origin
        if scheme == "https" and self._context is None:
            self._context = ssl_context(self._verify)
        loop = _asyncio_loop()
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
        return _AnyioConnection(stream)

    async def _connect_asyncio(
        self, loop: asyncio.AbstractEventLoop, origin: Origin, timeout: float | None
    ) -> _AsyncioConnection:
        scheme, host, port = origin
        tls = self._context if scheme == "https" else None
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _AsyncioConnection(loop),
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

    async def send(self, req: HttpRequest, timeout: httpx.Timeout) -> AsyncWireReply:
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
                if not fresh and _nothing_arrived(exc):
                    continue  # a kept connection the server had closed: once more, afresh
                if isinstance(exc, errors.TransportError):
                    raise
                raise transport_error(exc, url=prepared.url, offset=prepared.offset) from exc
            except BaseException:
                if connection is not None:
                    await connection.abort()
                raise

    async def _exchange(
        self, connection: _AsyncConnection, prepared: Prepared, timeout: httpx.Timeout
    ) -> AsyncWireReply:
        await connection.send(prepared.head, timeout.write)
        exchange = Exchange(prepared.url, prepared.offset, self._max_head_bytes)
        while True:
            first = exchange.on_head_data(await _receive(connection, timeout.read, exchange))
            if first is not None:
                return AsyncWireReply(
                    self, prepared.origin, connection, exchange, first, timeout.read
                )
