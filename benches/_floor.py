"""The bare-socket floor: the least a Python client can do per event, answer or request.

A blocking ``socket`` (or asyncio streams) with a hand-written HTTP/1.1 request, status line
and header parsing and incremental chunked decoding; SSE split on blank lines, ``orjson``
on each data payload. No retries, no offsets checks, no framing beyond what the reference
server sends. ``transport_candidates.py`` and ``_contender.py`` read through it.

``request()`` is the floor of one request on a keep-alive connection (``compare.py``'s
``append-one``, ``head-one`` and ``many-streams-append``): the request head written by hand
(method, target, ``Host``, ``Content-Type``, ``Content-Length``), the body sent with it in
one ``sendall``, then the response head parsed (status and every header) and its body read
(``Content-Length`` or chunked; none for HEAD, 204 and 304).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

RECV_SIZE = 65536


class SseCounter:
    """The least SSE handling a client can get away with against the reference server:
    split on blank lines, keep ``event: data`` events, ``orjson.loads`` their one ``data:``
    line (the server writes one per event, ``\\n`` line ends), count the messages."""

    __slots__ = ("events", "loads", "messages", "pieces", "rest", "target")

    def __init__(self, target: int, loads: Callable[[bytes], Any]) -> None:
        self.target = target
        self.loads = loads
        self.rest = b""
        self.messages = 0
        self.events = 0
        self.pieces = 0

    def feed(self, piece: bytes) -> bool:
        """Takes the next body bytes; True once ``target`` messages arrived."""
        self.pieces += 1
        if self.rest:
            piece = self.rest + piece
        parts = piece.split(b"\n\n")
        self.rest = parts.pop()
        for event in parts:
            if event.startswith(b"event: data\n"):
                self.events += 1
                data = event[12:]
                if data.startswith(b"data:"):
                    self.messages += len(self.loads(data[5:]))
        return self.messages >= self.target


class ChunkedDecoder:
    """Incremental ``Transfer-Encoding: chunked`` decoding: ``feed`` returns the payload of
    every chunk completed so far, joined. No chunk extensions, no trailers."""

    __slots__ = ("buf", "finished")

    def __init__(self, initial: bytes = b"") -> None:
        self.buf = initial
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        out = self.feed_parts(data)
        if not out:
            return b""
        return out[0] if len(out) == 1 else b"".join(out)

    def feed_parts(self, data: bytes) -> list[bytes]:
        """The payloads of the chunks completed so far, one by one."""
        buf = self.buf + data if self.buf else data
        pos = 0
        out: list[bytes] = []
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(buf[pos:eol], 16)
            start = eol + 2
            end = start + size
            if len(buf) < end + 2:
                break
            if size == 0:  # the last chunk, then an empty trailer section
                self.finished = True
                pos = end + 2
                break
            out.append(buf[start:end])
            pos = end + 2
        self.buf = buf[pos:]
        return out


def parse_head(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    """Status code and lower-cased headers of a response head (without its blank line)."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def split_url(url: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port, parts.path


def _request_bytes(method: str, host: str, port: int, target: str) -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n\r\n".encode()


def _request_with_body(
    method: str, url: str, body: bytes, content_type: str | None
) -> tuple[str, int, bytes]:
    """Host, port and the bytes of a request with an optional body (one buffer)."""
    host, port, path = split_url(url)
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    if body or method in ("POST", "PUT"):
        head += f"Content-Length: {len(body)}\r\n"
    return host, port, head.encode() + b"\r\n" + body


def _has_body(method: str, status: int) -> bool:
    return method != "HEAD" and status not in (204, 304) and status >= 200


class SocketFloor:
    """One blocking socket, HTTP/1.1 keep-alive, by hand."""

    def __init__(self, join: bool = True) -> None:
        self.sock: socket.socket | None = None
        self.buf = b""
        self.join = join  # False: hand over each HTTP chunk apart, as httpx and hyper do

    def _connect(self, url: str) -> socket.socket:
        if self.sock is None:
            host, port, _ = split_url(url)
            self.sock = socket.create_connection((host, port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.sock

    def _send(self, method: str, url: str, query: str) -> socket.socket:
        sock = self._connect(url)
        host, port, path = split_url(url)
        sock.sendall(_request_bytes(method, host, port, f"{path}?{query}" if query else path))
        return sock

    def _read_head(self, sock: socket.socket) -> tuple[int, dict[bytes, bytes]]:
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            data = sock.recv(RECV_SIZE)
            if not data:
                raise ConnectionError("the server closed the connection")
            buf += data
        self.buf = buf[end + 4 :]
        return parse_head(buf[:end])

    def _read_body(self, sock: socket.socket, headers: dict[bytes, bytes]) -> bytes:
        if headers.get(b"transfer-encoding") == b"chunked":
            decoder = ChunkedDecoder()
            out = [decoder.feed(self.buf)]
            while not decoder.finished:
                data = sock.recv(RECV_SIZE)
                if not data:
                    raise ConnectionError("the body ended early")
                out.append(decoder.feed(data))
            self.buf = decoder.buf
            return b"".join(out)
        length = int(headers.get(b"content-length", b"0"))
        buf = self.buf
        while len(buf) < length:
            data = sock.recv(RECV_SIZE)
            if not data:
                raise ConnectionError("the body ended early")
            buf += data
        self.buf = buf[length:]
        return buf[:length]

    def warm(self, url: str) -> None:
        sock = self._send("HEAD", url, "")
        self._read_head(sock)  # a HEAD answer has no body

    def request(
        self, method: str, url: str, body: bytes = b"", content_type: str | None = None
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        """One request on the kept-alive connection: status, headers and body of the answer."""
        sock = self._connect(url)
        sock.sendall(_request_with_body(method, url, body, content_type)[2])
        status, headers = self._read_head(sock)
        return status, headers, self._read_body(sock, headers) if _has_body(method, status) else b""

    @contextlib.contextmanager
    def sse(self, url: str) -> Iterator[Iterator[bytes]]:
        sock = self._send("GET", url, "offset=-1&live=sse")
        status, headers = self._read_head(sock)
        if status != 200 or headers.get(b"transfer-encoding") != b"chunked":
            raise RuntimeError(f"SSE GET answered {status} {headers}")
        decoder = ChunkedDecoder(self.buf)
        self.buf = b""

        def pieces() -> Iterator[bytes]:
            recv = sock.recv
            feed = decoder.feed
            if piece := feed(b""):
                yield piece
            while not decoder.finished:
                data = recv(RECV_SIZE)
                if not data:
                    return
                if piece := feed(data):
                    yield piece

        def chunks() -> Iterator[bytes]:
            recv = sock.recv
            feed_parts = decoder.feed_parts
            yield from feed_parts(b"")
            while not decoder.finished:
                data = recv(RECV_SIZE)
                if not data:
                    return
                yield from feed_parts(data)

        try:
            yield pieces() if self.join else chunks()
        finally:
            self.close()

    def get(self, url: str, offset: str, live: bool) -> tuple[int, str, bytes]:
        query = f"offset={offset}&live=long-poll" if live else f"offset={offset}"
        sock = self._send("GET", url, query)
        status, headers = self._read_head(sock)
        body = b"" if status == 204 else self._read_body(sock, headers)
        return status, headers[b"stream-next-offset"].decode(), body

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class SocketFloorAsync:
    """The same on asyncio streams."""

    def __init__(self) -> None:
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.buf = b""

    async def _send(
        self, method: str, url: str, query: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port, path = split_url(url)
        if self.streams is None:
            self.streams = await asyncio.open_connection(host, port)
        reader, writer = self.streams
        writer.write(_request_bytes(method, host, port, f"{path}?{query}" if query else path))
        await writer.drain()
        return reader, writer

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            data = await reader.read(RECV_SIZE)
            if not data:
                raise ConnectionError("the server closed the connection")
            buf += data
        self.buf = buf[end + 4 :]
        return parse_head(buf[:end])

    async def _read_body(self, reader: asyncio.StreamReader, headers: dict[bytes, bytes]) -> bytes:
        if headers.get(b"transfer-encoding") == b"chunked":
            decoder = ChunkedDecoder()
            out = [decoder.feed(self.buf)]
            while not decoder.finished:
                data = await reader.read(RECV_SIZE)
                if not data:
                    raise ConnectionError("the body ended early")
                out.append(decoder.feed(data))
            self.buf = decoder.buf
            return b"".join(out)
        length = int(headers.get(b"content-length", b"0"))
        buf = self.buf
        while len(buf) < length:
            data = await reader.read(RECV_SIZE)
            if not data:
                raise ConnectionError("the body ended early")
            buf += data
        self.buf = buf[length:]
        return buf[:length]

    async def warm(self, url: str) -> None:
        reader, _ = await self._send("HEAD", url, "")
        await self._read_head(reader)

    async def request(
        self, method: str, url: str, body: bytes = b"", content_type: str | None = None
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        """One request on the kept-alive connection: status, headers and body of the answer."""
        host, port, data = _request_with_body(method, url, body, content_type)
        if self.streams is None:
            self.streams = await asyncio.open_connection(host, port)
        reader, writer = self.streams
        writer.write(data)
        await writer.drain()
        status, headers = await self._read_head(reader)
        if not _has_body(method, status):
            return status, headers, b""
        return status, headers, await self._read_body(reader, headers)

    @contextlib.asynccontextmanager
    async def sse(self, url: str) -> AsyncIterator[AsyncIterator[bytes]]:
        reader, _ = await self._send("GET", url, "offset=-1&live=sse")
        status, headers = await self._read_head(reader)
        if status != 200 or headers.get(b"transfer-encoding") != b"chunked":
            raise RuntimeError(f"SSE GET answered {status} {headers}")
        decoder = ChunkedDecoder(self.buf)
        self.buf = b""

        async def pieces() -> AsyncIterator[bytes]:
            read = reader.read
            feed = decoder.feed
            if piece := feed(b""):
                yield piece
            while not decoder.finished:
                data = await read(RECV_SIZE)
                if not data:
                    return
                if piece := feed(data):
                    yield piece

        try:
            yield pieces()
        finally:
            await self.close()

    async def get(self, url: str, offset: str, live: bool) -> tuple[int, str, bytes]:
        query = f"offset={offset}&live=long-poll" if live else f"offset={offset}"
        reader, _ = await self._send("GET", url, query)
        status, headers = await self._read_head(reader)
        body = b"" if status == 204 else await self._read_body(reader, headers)
        return status, headers[b"stream-next-offset"].decode(), body

    async def close(self) -> None:
        if self.streams is not None:
            _, writer = self.streams
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            self.streams = None
