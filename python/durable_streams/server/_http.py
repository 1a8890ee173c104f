"""HTTP/1.1 on asyncio streams, with h11 doing the parsing and framing.

One task per connection: keep-alive, pipelining, chunked bodies both ways. Everything a
client controls is bounded: the request head's size (431), the body's (413), the time to
send a request, and the time to take each piece of a response, so a slow or vanished
reader costs one idle task and never holds up anyone else. While a GET is being answered
the connection is watched, so a reader that hangs up ends its long-poll or SSE at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import h11

__all__ = ["Connection", "Handler", "Limits", "Request", "Response"]

_log = logging.getLogger("durable_streams.server")

_READ_SIZE = 64 * 1024
_WRITE_SLICE = 256 * 1024
# Repeated headers are joined with ", ", as Node does, except these, where the first wins.
_FIRST_WINS = frozenset({"content-type", "content-length", "host", "authorization"})
_NO_BODY = frozenset({204, 304})
# After answering a request whose body was not read (413, 400), how long and how much of what
# the client still sends is read and dropped: closing with unread input would send a reset,
# which can destroy the answer before the client reads it. A body declared too large is read
# to its end within bounds, so that a client sending it whole still gets to see the 413.
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 4 * 1024 * 1024
_LINGER_TOO_LARGE_SECONDS = 10.0
_LINGER_TOO_LARGE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_head_bytes: int = 64 * 1024
    max_body_bytes: int = 32 * 1024 * 1024
    idle_timeout: float = 60.0  # for the next request on a kept-alive connection
    request_timeout: float = 30.0  # for a request's head once it has begun, and between body reads
    write_timeout: float = 30.0  # for a reader to take each piece of a response


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    drop: bool = False  # close the connection without answering (fault injection)


Handler = Callable[[Request], Awaitable[Response]]


class _Hangup(Exception):
    """The client went away, or stopped taking what we send."""


def _text(status: int, message: str) -> Response:
    return Response(status, [("content-type", "text/plain")], message.encode())


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: Handler,
        limits: Limits,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._limits = limits
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_bytes)
        self.busy = False  # a request is being answered
        self._stopping = False

    def stop(self) -> None:
        """Close now if idle, else once the answer in flight is sent."""
        self._stopping = True
        if not self.busy:
            self._writer.transport.abort()

    async def run(self) -> None:
        try:
            while await self._cycle() and not self._stopping:
                self._h11.start_next_cycle()
        except (_Hangup, ConnectionError, asyncio.TimeoutError, h11.ProtocolError):
            self._writer.transport.abort()
        except Exception:
            _log.exception("durable_streams.server: connection failed")
            self._writer.transport.abort()
        finally:
            self.busy = False
            self._writer.close()

    # -- one request/response cycle -------------------------------------------

    async def _cycle(self) -> bool:
        """Answer one request; False when the connection should close."""
        try:
            request = await self._receive_request()
        except h11.RemoteProtocolError as exc:
            if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await self._send_response(_text(exc.error_status_hint, str(exc)), "GET")
                await self._linger()
            return False
        if request is None:
            return False
        self.busy = True
        if request.method == "GET":
            await self._watched(self._answer(request))
        else:
            await self._answer(request)
        self.busy = False
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    async def _receive_request(self) -> Request | None:
        event = await self._next_event(self._limits.idle_timeout, head=True)
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
        # h11 bounds only a head still arriving; one that came whole in a read is measured here.
        size = len(event.target) + sum(len(name) + len(value) + 4 for name, value in event.headers)
        if size > self._limits.max_head_bytes:
            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        headers: dict[str, str] = {}
        for raw_name, raw_value in event.headers:
            name, value = raw_name.decode("ascii"), raw_value.decode("latin-1")
            if name not in headers:
                headers[name] = value
            elif name not in _FIRST_WINS:
                headers[name] += ", " + value
        method = event.method.decode("ascii").upper()
        path, query = _split_target(event.target.decode("latin-1"))
        request = Request(method, path, query, headers)
        length = headers.get("content-length")
        if length is not None and int(length) > self._limits.max_body_bytes:
            await self._too_large(method, int(length))
            return None
        if self._h11.they_are_waiting_for_100_continue:
            self._write(self._h11.send(h11.InformationalResponse(status_code=100, headers=[])))
        body = bytearray()
        while True:
            event = await self._next_event(self._limits.request_timeout)
            if isinstance(event, h11.EndOfMessage):
                break
            if not isinstance(event, h11.Data):
                raise h11.RemoteProtocolError("request body ended early")
            body += event.data
            if len(body) > self._limits.max_body_bytes:
                await self._too_large(method, 0)
                return None
        request.body = bytes(body)
        return request

    async def _too_large(self, method: str, declared: int) -> None:
        limit = self._limits.max_body_bytes
        await self._send_response(_text(413, f"request body over {limit} bytes"), method)
        if declared <= _LINGER_TOO_LARGE_BYTES:
            await self._linger(_LINGER_TOO_LARGE_SECONDS, max(declared, _LINGER_BYTES))
        else:
            await self._linger()

    async def _linger(self, seconds: float = _LINGER_SECONDS, budget: int = _LINGER_BYTES) -> None:
        with contextlib.suppress(OSError, RuntimeError, asyncio.TimeoutError, _Hangup):
            await self._flush()
            if self._writer.can_write_eof():
                self._writer.write_eof()
            deadline = time.monotonic() + seconds
            while budget > 0:
                remaining = max(0.0, deadline - time.monotonic())
                data = await asyncio.wait_for(self._reader.read(_READ_SIZE), remaining)
                if not data:
                    break
                budget -= len(data)

    async def _next_event(self, timeout: float, *, head: bool = False) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise asyncio.TimeoutError
            data = await asyncio.wait_for(self._reader.read(_READ_SIZE), remaining)
            self._h11.receive_data(data)
            if head and data:
                # The request has begun: the rest of its head must follow promptly.
                deadline = min(deadline, time.monotonic() + self._limits.request_timeout)

    async def _answer(self, request: Request) -> None:
        try:
            response = await self._handler(request)
        except Exception:
            _log.exception("durable_streams.server: %s %s failed", request.method, request.path)
            response = _text(500, "internal server error")
        if response.drop:
            raise _Hangup
        await self._send_response(response, request.method)

    async def _watched(self, work: Awaitable[None]) -> None:
        """Run ``work``; end it early if the client hangs up. Bytes that arrive meanwhile
        are a pipelined request: h11 keeps them for the next cycle."""
        task = asyncio.ensure_future(work)
        watch: asyncio.Future[bytes] | None = asyncio.ensure_future(self._reader.read(_READ_SIZE))
        budget = self._limits.max_head_bytes + self._limits.max_body_bytes
        try:
            while watch is not None:
                racing: set[asyncio.Future[Any]] = {task, watch}
                done, _ = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
                if task in done:
                    break
                data = watch.result()
                if not data:
                    raise _Hangup
                self._h11.receive_data(data)
                budget -= len(data)
                watch = asyncio.ensure_future(self._reader.read(_READ_SIZE)) if budget > 0 else None
            await task
        finally:
            for pending in (task, watch):
                if pending is not None and not pending.done():
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await pending
            if watch is not None and watch.done() and not watch.cancelled():
                # The answer and the next request (or the hang-up) arrived together.
                with contextlib.suppress(Exception):
                    self._h11.receive_data(watch.result())

    # -- sending --------------------------------------------------------------

    def _write(self, data: bytes | None) -> None:
        if data:
            self._writer.write(data)

    async def _flush(self) -> None:
        try:
            await asyncio.wait_for(self._writer.drain(), self._limits.write_timeout)
        except (asyncio.TimeoutError, ConnectionError) as exc:
            raise _Hangup from exc

    async def _send_response(self, response: Response, method: str) -> None:
        status = response.status
        headers = [("date", email.utils.formatdate(usegmt=True)), *response.headers]
        bodiless = method == "HEAD" or status in _NO_BODY
        if response.stream is None and not bodiless:
            headers.append(("content-length", str(len(response.body))))
        try:
            self._write(
                self._h11.send(
                    h11.Response(
                        status_code=status,
                        headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
                        reason=_reason(status),
                    )
                )
            )
            if response.body and not bodiless:
                # In slices, so the write timeout bounds a reader's pauses, not its speed.
                body = response.body
                for start in range(0, len(body), _WRITE_SLICE):
                    self._write(self._h11.send(h11.Data(data=body[start : start + _WRITE_SLICE])))
                    if start + _WRITE_SLICE < len(body):
                        await self._flush()
            if response.stream is not None:
                await self._flush()
                async for piece in response.stream:
                    self._write(self._h11.send(h11.Data(data=piece)))
                    await self._flush()
            self._write(self._h11.send(h11.EndOfMessage()))
            await self._flush()
        finally:
            if response.stream is not None:
                aclose = getattr(response.stream, "aclose", None)
                if aclose is not None:
                    await aclose()


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _split_target(target: str) -> tuple[str, str]:
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return _normalize(parts.path or "/"), parts.query
    path, _, query = target.partition("?")
    return _normalize(path.partition("#")[0]), query


def _normalize(path: str) -> str:
    """Remove ``.`` and ``..`` segments (RFC 3986), as a URL parser would."""
    if "/." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/".join(out) or "/"
