"""The native read path's transport for threaded code: Python sockets, the core's HTTP/1.1
decoder, and nothing in between.

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

import os
import socket
import ssl
import time
import urllib.request
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

import httpx

from . import _errors as errors
from . import _impl
from ._protocol import HttpRequest
from ._shared import body_too_large

if TYPE_CHECKING:
    from ._core import HttpResponseDecoder

__all__ = ["WireReply", "WireTransport", "usable_for"]

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


def _failure(exc: BaseException, *, url: str, offset: str | None) -> errors.TransportError:
    kind = type(exc).__name__
    if isinstance(exc, TimeoutError):
        err: errors.TransportError = errors.DeadlineExceededError(
            f"request timed out ({kind})", url=url, offset=offset
        )
    else:
        err = errors.TransportError(
            f"request failed: {kind}: {exc or kind}", url=url, offset=offset
        )
    err.__cause__ = exc
    return err


Origin = tuple[str, str, int]


class _Connection:
    __slots__ = ("idle_since", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.idle_since = 0.0


class WireReply:
    """One response: its status and headers, then its body as it arrives."""

    def __init__(
        self,
        transport: WireTransport,
        origin: Origin,
        connection: _Connection,
        decoder: HttpResponseDecoder,
        status: int,
        headers: dict[str, str],
        first: bytes,
        *,
        url: str,
        offset: str | None,
    ) -> None:
        self.status_code = status
        self.headers = headers
        self._transport = transport
        self._origin = origin
        self._connection: _Connection | None = connection
        self._decoder = decoder
        self._url = url
        self._offset = offset
        # The server may send bytes after the body only if it is broken; then or when it
        # asks to close, the connection is not reused.
        self._reusable = "close" not in headers.get("connection", "").lower()
        self._inflate = _decompressor(headers.get("content-encoding"), url=url, offset=offset)
        self._received_body = bool(first)
        if self._inflate is not None and first:
            first = self._inflated(first)
        self._first = first

    def _inflated(self, data: bytes) -> bytes:
        assert self._inflate is not None
        try:
            return self._inflate.decompress(data)
        except zlib.error as exc:
            self.close()
            raise errors.TransportError(
                f"compressed body is corrupt: {exc}", url=self._url, offset=self._offset
            ) from exc

    def _check_compressed_end(self) -> None:
        """httpx's check too: a compressed body that stops before its compressed data did
        was cut short, even if the framing around it looked whole."""
        if self._inflate is not None and not self._inflate.eof:
            self.close()
            raise errors.TransportError(
                "compressed body ended early", url=self._url, offset=self._offset
            )

    def iter_bytes(self) -> Iterator[bytes]:
        """The body's bytes as they come; raises :class:`TransportError` (or
        :class:`HTTPParseError`) if the connection fails or ends early."""
        decoder = self._decoder
        first, self._first = self._first, b""
        if first:
            yield first
        connection = self._connection
        if connection is None:
            return
        inflate = self._inflate
        recv = connection.sock.recv
        feed = decoder.feed
        while not decoder.done:
            try:
                data = recv(RECV_BYTES)
            except OSError as exc:
                self.close()
                raise _failure(exc, url=self._url, offset=self._offset) from exc
            if not data:
                try:
                    decoder.finish()
                except errors.HTTPParseError as exc:
                    self.close()
                    raise exc.with_context(url=self._url, offset=self._offset) from None
                self._reusable = False
                break
            try:
                _, body, taken = feed(data)
            except errors.HTTPParseError as exc:
                self.close()
                raise exc.with_context(url=self._url, offset=self._offset) from None
            if taken < len(data):
                self._reusable = False
            if body:
                self._received_body = True
                if inflate is not None:
                    body = self._inflated(body)
                    if not body:
                        continue
                yield body
        if self._received_body:
            self._check_compressed_end()
        self.close()

    def read(self, limit: int) -> bytes:
        """The whole body, refusing one over ``limit`` bytes."""
        parts: list[bytes] = []
        size = 0
        for chunk in self.iter_bytes():
            size += len(chunk)
            if size > limit:
                self.close()
                raise body_too_large(limit, url=self._url, offset=self._offset)
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        """Done with the response: its connection goes back for the next request if the
        body ended cleanly, else (read only in part, or close-delimited) it is closed."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        decoder = self._decoder
        if self._reusable and decoder.done and not decoder.close_delimited:
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

    def _connect(self, scheme: str, host: str, port: int, timeout: httpx.Timeout) -> _Connection:
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
        parts = urlsplit(req.url)
        scheme = parts.scheme
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        origin = (scheme, host, port)
        target = parts.path or "/"
        query = parts.query
        if req.params:
            encoded = urlencode(list(req.params))
            query = f"{query}&{encoded}" if query else encoded
        if query:
            target = f"{target}?{query}"
        default_port = 443 if scheme == "https" else 80
        authority = host if ":" not in host else f"[{host}]"
        if port != default_port:
            authority = f"{authority}:{port}"
        lines = [f"GET {target} HTTP/1.1", f"Host: {authority}"]
        names = set()
        for name, value in req.headers.items():
            names.add(name.lower())
            lines.append(f"{name}: {value}")
        if "user-agent" not in names:
            lines.append(f"User-Agent: {USER_AGENT}")
        if "accept-encoding" not in names:
            lines.append("Accept-Encoding: gzip, deflate")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        offset = dict(req.params).get("offset")
        connection = self._idle.pop(origin, None)
        if connection is not None and time.monotonic() - connection.idle_since > KEEPALIVE_EXPIRY:
            connection.sock.close()
            connection = None
        while True:
            fresh = connection is None
            try:
                if connection is None:
                    connection = self._connect(scheme, host, port, timeout)
                return self._exchange(origin, connection, head, timeout, url=req.url, offset=offset)
            except (OSError, errors.HTTPParseError) as exc:
                if connection is not None:
                    connection.sock.close()
                stale = not fresh and _nothing_arrived(exc)
                connection = None
                if stale:
                    continue  # a kept connection the server had closed: once more, afresh
                if isinstance(exc, errors.HTTPParseError):
                    raise exc.with_context(url=req.url, offset=offset) from None
                raise _failure(exc, url=req.url, offset=offset) from exc

    def _exchange(
        self,
        origin: Origin,
        connection: _Connection,
        head: bytes,
        timeout: httpx.Timeout,
        *,
        url: str,
        offset: str | None,
    ) -> WireReply:
        sock = connection.sock
        sock.settimeout(timeout.write)
        sock.sendall(head)
        sock.settimeout(timeout.read)
        decoder: HttpResponseDecoder = _impl.core.HttpResponseDecoder(self._max_head_bytes)
        while True:
            data = sock.recv(RECV_BYTES)
            if not data:
                decoder.finish()  # raises: no response, or a head cut short
            got, body, taken = decoder.feed(data)
            if got is not None:
                status, headers = got
                reply = WireReply(
                    self, origin, connection, decoder, status, headers, body, url=url, offset=offset
                )
                if taken < len(data):
                    reply._reusable = False
                return reply


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
    if isinstance(exc, errors.HTTPParseError):
        return exc.message == CLOSED_BEFORE_A_RESPONSE
    return isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError))
