# Generated from _transport/_native_async.py by scripts/unasync.py:
# edit that file, then run the script.
"""The native transport, for sync code: Python
blocking sockets, the core's HTTP/1.1
decoder, and nothing in between; a pool of connections per origin.

httpx costs a request a few hundred microseconds in its pure-Python layers (httpcore, h11 and
their generators), and its pool grows quadratic with queued requests. Here a request is one
send of its head and body, and a response is one receive (usually) fed to the core's
:class:`HttpResponseDecoder`, which undoes the body's framing. Drivers see the same status,
lower-cased headers and body chunks as with httpx, and the same typed errors.

What it covers: every method over ``http://`` and ``https://`` (TLS through :mod:`ssl`,
honouring ``verify`` as httpx does), bodies of known length and streamed ones (chunked),
HTTP/1.1 keep-alive, connect, read, write and pool timeouts. An answer that arrives while a
long body is still going out (a server refusing it early, as with 413) is read and returned,
and the rest of the body is not sent. Every failure says whether the request was sent in full
(:attr:`TransportError.request_sent`): one that was not cannot have been applied. What it does
not cover (proxies, HTTP/2, a caller's own httpx client) stays on httpx; ``_select`` decides."""

from __future__ import annotations

import ssl
from collections.abc import Generator

import httpx

from .. import _errors as errors
from .._flavours import chunks
from .._protocol import HttpRequest
from ._connections import FAILURES, Connection, Origin
from ._exchange import Exchange, Gathered
from ._failures import nothing_arrived, transport_error
from ._interrupt import Interrupt
from ._pool_sync import ConnectionPool, PoolLimits
from ._request import Prepared, Verify, origin_of, prepare, ssl_context

__all__ = ["NativeReply", "NativeTransport"]

# A body up to this size goes out with its head in one send; a longer one in slices, with a
# look between them for an early answer.
ONE_SEND_BYTES = 64 * 1024
SLICE_BYTES = 256 * 1024


def _failure(exc: BaseException, prepared: Prepared, sent: bool) -> errors.TransportError:
    """``exc`` as the typed error of this request; ``sent``: all of it went out."""
    if isinstance(exc, errors.TransportError):
        failure = exc
    else:
        failure = transport_error(exc, url=prepared.url, offset=prepared.offset)
    failure.request_sent = sent
    return failure


class NativeReply:
    """One response: its status and headers, then its body as it arrives. Closing it gives
    the connection back to the pool (kept when the answer ended cleanly)."""

    def __init__(
        self,
        pool: ConnectionPool,
        connection: Connection | None,
        exchange: Exchange,
        first: bytes,
        read_timeout: float | None,
        *,
        live: bool,
        reusable: bool,
        interrupt: Interrupt | None = None,
    ) -> None:
        self.status_code = exchange.status
        self._interrupt = interrupt
        self.headers = exchange.headers
        self._pool = pool
        self._connection: Connection | None = connection
        self._exchange = exchange
        self._first = first
        self._read_timeout = read_timeout
        self._live = live
        self._reusable = reusable

    def iter_bytes(self) -> Generator[bytes, None, None]:
        """The body's bytes as they come; raises :class:`TransportError` (or
        :class:`HTTPParseError`) if the connection fails or ends early."""
        exchange = self._exchange
        body, self._first = self._first, b""
        # Each piece is let go of before the next is received: the reader keeps what it needs.
        while body:
            yield body
            body = exchange.more()
        connection = self._connection
        if connection is None:
            return
        try:
            while not exchange.done:
                try:
                    data = connection.receive(self._read_timeout)
                except FAILURES as exc:
                    raise transport_error(exc, url=exchange.url, offset=exchange.offset) from exc
                body = exchange.on_data(data)
                del data
                while body:
                    yield body
                    body = exchange.more()
        finally:
            self.close()

    def read(self, limit: int) -> bytes:
        """The whole body, refusing one over ``limit`` bytes."""
        exchange = self._exchange
        if self._connection is None:  # the whole answer came with its head
            body, self._first = self._first, b""
            more = exchange.more()
            if not more and len(body) <= limit:  # most answers: no gathering to do
                return body
            gathered = Gathered(limit, url=exchange.url, offset=exchange.offset)
            gathered.add(body)
            body = more
            while body:
                gathered.add(body)
                body = exchange.more()
            return gathered.body()
        gathered = Gathered(limit, url=exchange.url, offset=exchange.offset)
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
        if self._interrupt is not None:
            self._interrupt.unwatch()
        if connection is not None:
            reusable = self._reusable and self._exchange.keep_alive
            self._pool.release(connection, live=self._live, reusable=reusable)


class NativeTransport:
    """Requests over pooled connections, one pool per origin."""

    def __init__(
        self,
        verify: Verify = True,
        limits: PoolLimits | None = None,
        max_head_bytes: int = 65_536,
    ) -> None:
        self._verify = verify
        self._tls: ssl.SSLContext | None = None
        self._limits = limits or PoolLimits()
        self._max_head_bytes = max_head_bytes
        self._pools: dict[Origin, ConnectionPool] = {}
        self.closed = False

    def _pool(self, origin: Origin) -> ConnectionPool:
        pool = self._pools.get(origin)
        if pool is None:
            if self.closed:
                raise errors.HandleClosedError("the client is closed")
            if origin[0] == "https" and self._tls is None:
                self._tls = ssl_context(self._verify)
            pool = self._pools[origin] = ConnectionPool(origin, self._limits, self._tls)
        return pool

    def pools(self) -> list[ConnectionPool]:
        return list(self._pools.values())

    def saturated(self, url: str) -> bool:
        pool = self._pools.get(origin_of(url))
        return pool is not None and pool.saturated

    def close(self) -> None:
        self.closed = True
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()

    def send(
        self,
        req: HttpRequest,
        timeout: httpx.Timeout,
        *,
        live: bool = False,
        interrupt: Interrupt | None = None,
    ) -> NativeReply:
        """Send ``req`` and read up to the end of the answer's head. ``live``: the server may
        hold the answer open (long-poll, SSE), so its connection is not counted by the pool's
        bound. ``interrupt``: what may wake the request, while it waits and while its answer
        is read (the reply lets go of it when closed)."""
        prepared = prepare(req)
        pool = self._pool(prepared.origin)
        # A connection kept from an earlier request may have been closed by the server just
        # before this one reached it: then nothing comes back, and the request goes again
        # once on a new connection, if it went out whole only when resending is harmless.
        retry_stale = req.stream is None
        while True:
            try:
                connection, reused = pool.acquire(timeout.connect, timeout.pool, live=live)
            except errors.DurableStreamError:
                raise
            except FAILURES as exc:
                raise _failure(exc, prepared, sent=False) from exc
            complete = False
            if interrupt is not None:
                interrupt.watch(connection.interrupt)
            try:
                complete = self._send_request(connection, prepared, timeout)
                exchange = Exchange(
                    prepared.url, prepared.offset, self._max_head_bytes, prepared.no_body
                )
                first = self._read_head(connection, exchange, timeout.read)
            except FAILURES as exc:
                sent = complete and connection.unsent() == 0
                if interrupt is not None:
                    interrupt.unwatch()
                pool.release(connection, live=live, reusable=False)
                if interrupt is not None and interrupt.fired:
                    raise _failure(exc, prepared, sent) from exc
                if retry_stale and reused and nothing_arrived(exc) and (req.idempotent or not sent):
                    retry_stale = False
                    continue
                raise _failure(exc, prepared, sent) from exc
            except BaseException:
                if interrupt is not None:
                    interrupt.unwatch()
                pool.release(connection, live=live, reusable=False)
                raise
            if exchange.done:  # the whole answer came with its head: the connection is free
                if interrupt is not None:
                    interrupt.unwatch()
                reusable = complete and exchange.keep_alive
                pool.release(connection, live=live, reusable=reusable)
                return NativeReply(
                    pool, None, exchange, first, timeout.read, live=live, reusable=complete
                )
            return NativeReply(
                pool,
                connection,
                exchange,
                first,
                timeout.read,
                live=live,
                reusable=complete,
                interrupt=interrupt,
            )

    def _send_request(
        self, connection: Connection, prepared: Prepared, timeout: httpx.Timeout
    ) -> bool:
        """Send the head and body; False when the server answered before all of the body
        went out (the rest is not sent, and the connection cannot serve again)."""
        write = timeout.write
        body = prepared.body
        stream = prepared.stream
        if stream is not None:
            connection.send(prepared.head, write)
            for chunk in chunks(stream):
                if chunk:
                    connection.send(b"%x\r\n%b\r\n" % (len(chunk), chunk), write)
                    if connection.answered():
                        return False
            connection.send(b"0\r\n\r\n", write)
            return True
        if body is None or len(body) <= ONE_SEND_BYTES:
            connection.send(prepared.head + body if body else prepared.head, write)
            return True
        connection.send(prepared.head, write)
        view = memoryview(body)
        for start in range(0, len(body), SLICE_BYTES):
            if connection.answered():
                return False
            try:
                connection.send(view[start : start + SLICE_BYTES], write)
            except FAILURES:
                if connection.answered():
                    return False  # it stopped reading because it answered: read that
                raise
        return True

    def _read_head(
        self, connection: Connection, exchange: Exchange, read_timeout: float | None
    ) -> bytes:
        while True:
            first = exchange.on_head_data(connection.receive(read_timeout))
            if first is not None:
                return first
