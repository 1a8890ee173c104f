"""The durable proxy as an ASGI application (PROXY_PROTOCOL.md): a ``POST`` fetches an
upstream URL and answers with a pre-signed read URL while the upstream body is written to a
Durable Streams stream in the background; ``GET``, ``HEAD``, ``PATCH`` (abort) and ``DELETE``
on that URL act on the stream."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import httpx

from .. import _errors as errors
from .. import _protocol as proto
from .._retry import RetryPolicy
from .._writing._handle_async import AsyncDurableStream
from ._rules import (
    ALLOWED_METHODS,
    Allowlist,
    error_body,
    sign,
    signature_problem,
    upstream_headers,
)

__all__ = ["ProxyApp"]

_log = logging.getLogger("durable_streams.proxy")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# What the pipe holds while the stream is slower than the upstream (then the upstream waits),
# and what one write carries at most.
_MAX_BUFFER = 8 * 1024 * 1024
_MAX_WRITE = 1024 * 1024
_SETTLE_SECONDS = 30.0
_MAX_KNOWN_TYPES = 100_000  # upstream content types remembered (in memory)
_STORAGE_TIMEOUT = 30.0
_STREAM_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_READ_PARAMS = ("cursor", "live", "offset")
_PASSED_BACK = frozenset(
    {
        "cache-control",
        "content-encoding",
        "content-length",
        "content-type",
        "etag",
        "vary",
    }
)
_EXPOSED = (
    "Location, Upstream-Content-Type, Upstream-Status, Stream-Next-Offset, Stream-Cursor, "
    "Stream-Up-To-Date, Stream-Closed, Stream-Total-Size, Stream-Write-Units, "
    "Stream-Expires-At, Stream-SSE-Data-Encoding, etag"
)
_CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, HEAD, PATCH, DELETE, OPTIONS"),
    (
        b"access-control-allow-headers",
        b"Upstream-URL, Upstream-Authorization, Upstream-Method, Content-Type, Authorization, "
        b"If-None-Match",
    ),
    (b"access-control-expose-headers", _EXPOSED.encode()),
]


@dataclass
class _Pipe:
    """One upstream body being written to its stream."""

    reader: asyncio.Task[str] | None = None
    stopped: str | None = None  # "abort" (asked for: the stream is closed) or "shutdown"
    done: asyncio.Event = field(default_factory=asyncio.Event)


class _Reply(Exception):
    """An error answer, raised from deep in a handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ProxyApp:
    """The durable proxy (PROXY_PROTOCOL.md), an ASGI 3 application for asyncio servers.

    ``streams_url`` is where its streams live on a Durable Streams server: the stream of
    proxy stream ``ID`` is ``{streams_url}/ID``. ``secret`` signs the read URLs
    (HMAC-SHA256) and is the service credential that ``POST``, ``HEAD``, ``DELETE`` and
    unsigned ``GET`` requests must present, as ``Authorization: Bearer SECRET`` or
    ``?secret=SECRET``. ``allowlist`` says which upstream URLs may be fetched (see
    :class:`Allowlist`; empty: none). Routes live under ``prefix``; ``public_url`` is the
    proxy's own base URL as clients see it (default: from the request's ``Host``).

    ``header_timeout`` bounds the wait for the upstream's response headers (``504
    UPSTREAM_TIMEOUT``), ``idle_timeout`` the wait for each next piece of its body; the read
    URLs expire after ``url_ttl`` seconds and the streams after ``stream_ttl``. Redirects are
    never followed. Streams hold the upstream's bytes as ``application/octet-stream``; the
    app keeps its upstream fetches and their content types in memory. ``aclose()`` (or the
    ASGI lifespan's shutdown) stops the fetches in flight. ``retry`` is the policy of its
    requests to the Durable Streams server (default: the package's bounded one).
    """

    def __init__(
        self,
        streams_url: str,
        *,
        secret: str | bytes,
        allowlist: Allowlist | Iterable[str],
        prefix: str = "/v1/proxy",
        public_url: str | None = None,
        url_ttl: int = 24 * 3600,
        stream_ttl: int = 24 * 3600,
        header_timeout: float = 60.0,
        idle_timeout: float = 600.0,
        max_error_bytes: int = 64 * 1024,
        max_request_bytes: int = 32 * 1024 * 1024,
        retry: RetryPolicy | None = None,
    ) -> None:
        proto.check_url(streams_url)
        if not secret:
            raise errors.UsageError("the proxy needs a non-empty secret")
        if isinstance(allowlist, str):
            raise errors.UsageError("allowlist is a list of entries, not one string")
        if header_timeout <= 0 or idle_timeout <= 0 or url_ttl <= 0 or stream_ttl <= 0:
            raise errors.UsageError("timeouts and lifetimes must be > 0")
        self.streams_url = streams_url.rstrip("/")
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self.allowlist = allowlist if isinstance(allowlist, Allowlist) else Allowlist(allowlist)
        self.prefix = "/" + prefix.strip("/")
        self.public_url = None if public_url is None else public_url.rstrip("/")
        self.url_ttl = url_ttl
        self.stream_ttl = stream_ttl
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.max_error_bytes = max_error_bytes
        self.max_request_bytes = max_request_bytes
        self.retry = retry
        self._pipes: dict[str, _Pipe] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._content_types: dict[str, str] = {}
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"<ProxyApp {self.prefix} -> {self.streams_url}>"

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                timeout=httpx.Timeout(30.0, read=self.idle_timeout),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            )
        return self._client

    async def aclose(self) -> None:
        """Stop every upstream fetch in flight and close the connections. Their streams keep
        what was written and stay open: unfinished, unlike an abort asked for."""
        for pipe in list(self._pipes.values()):
            self._abort(pipe, "shutdown")
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=10.0)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def stream_url(self, stream_id: str) -> str:
        """Where proxy stream ``stream_id`` lives on the Durable Streams server."""
        return f"{self.streams_url}/{stream_id}"

    def signed_url(self, base: str, stream_id: str, now: float | None = None) -> str:
        """The pre-signed read URL of ``stream_id`` under the proxy base URL ``base``."""
        expires = int(time.time() if now is None else now) + self.url_ttl
        signature = sign(self._secret, stream_id, expires)
        return f"{base}/{quote(stream_id)}?expires={expires}&signature={signature}"

    # -- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(f"the proxy serves http, not {scope['type']}")
        try:
            await self._route(scope, receive, send)
        except _Reply as reply:
            await _send_error(send, reply.status, reply.code, str(reply))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        path: str = scope["path"]
        if method == "OPTIONS":
            await _send(send, 204)
            return
        if path in (self.prefix, self.prefix + "/"):
            if method != "POST":
                raise _Reply(404, "NOT_FOUND", f"no route for {method} {self.prefix}")
            await self._create(scope, receive, send)
            return
        head, slash, stream_id = path.rpartition("/")
        if head != self.prefix or not slash or method not in ("GET", "HEAD", "PATCH", "DELETE"):
            raise _Reply(404, "NOT_FOUND", f"no route for {method} {path}")
        if _STREAM_ID.fullmatch(stream_id) is None:
            raise _Reply(404, "STREAM_NOT_FOUND", "no such stream")
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        headers = _headers(scope)
        if method == "GET":
            if "expires" in query or "signature" in query:
                self._check_signature(stream_id, query)
            else:
                self._check_service(query, headers)
            await self._read(stream_id, query, headers, receive, send)
        elif method == "HEAD":
            self._check_service(query, headers)
            await self._head(stream_id, send)
        elif method == "PATCH":
            self._check_signature(stream_id, query)  # never the service credential (4.3)
            if query.get("action") != "abort":
                raise _Reply(400, "INVALID_ACTION", "the only action is action=abort")
            pipe = self._pipes.get(stream_id)
            if pipe is not None:
                self._abort(pipe)
                await self._settled(pipe)  # flushed and closed when this answer goes out
            await _send(send, 204)
        else:
            self._check_service(query, headers)
            pipe = self._pipes.get(stream_id)
            if pipe is not None:
                self._abort(pipe)
                await self._settled(pipe)
            await self._delete(stream_id)
            await _send(send, 204)

    # -- authentication -----------------------------------------------------------------------

    def _check_service(self, query: dict[str, str], headers: dict[str, str]) -> None:
        token = query.get("secret")
        if token is None:
            scheme, _, value = headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
        if token is None:
            raise _Reply(401, "MISSING_SECRET", "service authentication required")
        if not hmac.compare_digest(token.encode(), self._secret):
            raise _Reply(401, "INVALID_SECRET", "invalid service credentials")

    def _check_signature(self, stream_id: str, query: dict[str, str]) -> None:
        problem = signature_problem(
            self._secret, stream_id, query.get("expires"), query.get("signature"), time.time()
        )
        if problem is not None:
            message = {
                "MISSING_SIGNATURE": "a pre-signed URL (expires and signature) is required",
                "SIGNATURE_EXPIRED": "the pre-signed URL has expired",
            }.get(problem, "the pre-signed URL's signature does not verify")
            raise _Reply(401, problem, message)

    # -- create -------------------------------------------------------------------------------

    async def _create(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        self._check_service(query, headers)
        url = headers.get("upstream-url")
        if not url:
            raise _Reply(400, "MISSING_UPSTREAM_URL", "the Upstream-URL header is required")
        method = headers.get("upstream-method")
        if not method:
            raise _Reply(400, "MISSING_UPSTREAM_METHOD", "the Upstream-Method header is required")
        method = method.upper()
        if method not in ALLOWED_METHODS:
            raise _Reply(
                400,
                "INVALID_UPSTREAM_METHOD",
                "Upstream-Method must be one of GET, POST, PUT, PATCH, DELETE",
            )
        if not self.allowlist.allows(url):
            raise _Reply(403, "UPSTREAM_NOT_ALLOWED", "the upstream URL is not allowed")
        body = await self._request_body(receive)
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        client = self._http()
        request = client.build_request(
            method, url, headers=upstream_headers(raw), content=body or None
        )
        try:
            upstream = await asyncio.wait_for(
                client.send(request, stream=True), self.header_timeout
            )
        except asyncio.TimeoutError:
            raise _Reply(504, "UPSTREAM_TIMEOUT", "the upstream did not answer in time") from None
        except httpx.HTTPError as exc:
            raise _Reply(502, "UPSTREAM_ERROR", f"the upstream failed: {exc}") from None
        try:
            await self._answer_upstream(scope, send, upstream)
        except BaseException:
            await upstream.aclose()
            raise

    async def _request_body(self, receive: Receive) -> bytes:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Reply(400, "BAD_REQUEST", "the client went away")
            body += message.get("body", b"")
            if len(body) > self.max_request_bytes:
                raise _Reply(413, "PAYLOAD_TOO_LARGE", "the request body is too large")
            if not message.get("more_body", False):
                return bytes(body)

    async def _answer_upstream(self, scope: Scope, send: Send, upstream: httpx.Response) -> None:
        status = upstream.status_code
        if 300 <= status < 400:
            await upstream.aclose()
            raise _Reply(400, "REDIRECT_NOT_ALLOWED", "the proxy does not follow redirects")
        content_type = upstream.headers.get("content-type", proto.DEFAULT_CONTENT_TYPE)
        if not 200 <= status < 300:
            detail = b""
            with contextlib.suppress(httpx.HTTPError, asyncio.TimeoutError):
                detail = await asyncio.wait_for(
                    _error_detail(upstream, self.max_error_bytes), self.header_timeout
                )
            await upstream.aclose()
            await _send(
                send,
                502,
                [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"upstream-status", str(status).encode()),
                    (b"upstream-content-type", content_type.encode("latin-1")),
                ],
                detail,
            )
            return
        stream_id = uuid.uuid4().hex
        try:
            handle = await AsyncDurableStream.create(
                self.stream_url(stream_id),
                # Bytes, whatever the upstream's type: an SSE or JSON body stored under its own
                # type would be taken for SSE framing or JSON messages by readers.
                content_type=proto.DEFAULT_CONTENT_TYPE,
                ttl_seconds=self.stream_ttl,
                client=self._http(),
                retry=self.retry,
                coalesce=False,
            )
        except errors.DurableStreamError as exc:
            raise _Reply(502, "STORAGE_ERROR", f"the stream could not be created: {exc}") from None
        self._content_types[stream_id] = content_type
        if len(self._content_types) > _MAX_KNOWN_TYPES:  # the oldest are forgotten first
            del self._content_types[next(iter(self._content_types))]
        pipe = _Pipe()
        self._pipes[stream_id] = pipe
        task = asyncio.get_running_loop().create_task(self._pipe(stream_id, pipe, handle, upstream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        base = self.public_url or _base_url(scope, self.prefix)
        await _send(
            send,
            201,
            [
                (b"location", self.signed_url(base, stream_id).encode("latin-1")),
                (b"upstream-content-type", content_type.encode("latin-1")),
            ],
        )

    # -- piping -------------------------------------------------------------------------------

    async def _settled(self, pipe: _Pipe) -> None:
        """Wait (boundedly) for an aborted pipe to have written what it had."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(pipe.done.wait(), _SETTLE_SECONDS)

    def _abort(self, pipe: _Pipe, reason: str = "abort") -> None:
        pipe.stopped = pipe.stopped or reason
        if pipe.reader is not None:
            pipe.reader.cancel()

    async def _pipe(
        self, stream_id: str, pipe: _Pipe, handle: AsyncDurableStream, upstream: httpx.Response
    ) -> None:
        """Upstream bytes go into ``buffer``; the writer sends what has gathered whenever its
        previous write is answered (so a fast upstream makes few, large appends and a slow one
        is relayed at once). The stream is closed with its last bytes at the upstream's end
        and on abort; after an upstream failure, silence, or the app's shutdown it is left
        open: unfinished."""
        buffer = bytearray()
        more = asyncio.Event()
        drained = asyncio.Event()
        ending: list[str] = []

        async def read() -> str:
            chunks = upstream.aiter_bytes()
            # The flag as well as the cancellation: Python 3.11's wait_for can swallow a
            # cancellation that arrives as a chunk does.
            while pipe.stopped is None:
                try:
                    chunk = await asyncio.wait_for(chunks.__anext__(), self.idle_timeout)
                except StopAsyncIteration:
                    return "complete"
                except asyncio.TimeoutError:
                    return "idle"
                except httpx.HTTPError:
                    return "error"
                buffer.extend(chunk)
                more.set()
                while len(buffer) >= _MAX_BUFFER:
                    drained.clear()
                    await drained.wait()
            return pipe.stopped

        async def write() -> None:
            while True:
                await more.wait()
                more.clear()
                end = ending[0] if ending else None  # once set, the buffer grows no more
                while True:
                    data = bytes(buffer[:_MAX_WRITE])
                    del buffer[:_MAX_WRITE]
                    drained.set()
                    last = not buffer
                    if last and end in ("complete", "abort"):
                        await handle.close_stream(data or None)
                        return
                    if data:
                        await handle.append(data)
                    if last:
                        break
                if end is not None:
                    return

        reader = pipe.reader = asyncio.get_running_loop().create_task(read())
        writer = asyncio.get_running_loop().create_task(write())
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if writer.done():  # the storage failed: stop fetching
                reader.cancel()
            try:
                outcome = await reader
            except asyncio.CancelledError:
                outcome = pipe.stopped or "error"
            if writer.done():
                writer.result()
            ending.append(pipe.stopped or outcome)
            more.set()
            await writer
            if outcome in ("error", "idle"):
                _log.warning("proxy stream %s: the upstream body %s", stream_id, outcome)
        except Exception:
            _log.exception("proxy stream %s: writing the upstream body failed", stream_id)
        finally:
            for task in (reader, writer):
                task.cancel()
            with contextlib.suppress(BaseException):
                await upstream.aclose()
            await handle.aclose()
            del self._pipes[stream_id]
            pipe.done.set()

    # -- read, head, delete -------------------------------------------------------------------

    async def _read(
        self,
        stream_id: str,
        query: dict[str, str],
        headers: dict[str, str],
        receive: Receive,
        send: Send,
    ) -> None:
        params = sorted((k, v) for k, v in query.items() if k in _READ_PARAMS)
        url = self.stream_url(stream_id) + (f"?{urlencode(params)}" if params else "")
        forwarded = {"accept-encoding": headers.get("accept-encoding", "identity")}
        for name in ("accept", "if-none-match"):
            if name in headers:
                forwarded[name] = headers[name]
        client = self._http()
        try:
            response = await client.send(
                client.build_request("GET", url, headers=forwarded), stream=True
            )
        except httpx.HTTPError as exc:
            raise _Reply(502, "STORAGE_ERROR", f"the stream could not be read: {exc}") from None
        try:
            if response.status_code == 404:
                raise _Reply(404, "STREAM_NOT_FOUND", "no such stream")
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [*_CORS, *self._stream_headers(stream_id, response.headers)],
                }
            )
            relay = asyncio.ensure_future(_relay(response, send))
            watch = asyncio.ensure_future(_disconnected(receive))
            try:
                await asyncio.wait({relay, watch}, return_when=asyncio.FIRST_COMPLETED)
                if relay.done():
                    relay.result()
            finally:
                for task in (relay, watch):
                    if not task.done():
                        task.cancel()
                        with contextlib.suppress(BaseException):
                            await task
        finally:
            await response.aclose()

    def _stream_headers(self, stream_id: str, headers: httpx.Headers) -> list[tuple[bytes, bytes]]:
        out = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.multi_items()
            if name in _PASSED_BACK or name.startswith("stream-")
        ]
        upstream_type = self._content_types.get(stream_id)
        if upstream_type is not None:
            out.append((b"upstream-content-type", upstream_type.encode("latin-1")))
        return out

    async def _head(self, stream_id: str, send: Send) -> None:
        try:
            response = await self._http().head(self.stream_url(stream_id), timeout=_STORAGE_TIMEOUT)
        except httpx.HTTPError as exc:
            raise _Reply(502, "STORAGE_ERROR", f"the stream could not be read: {exc}") from None
        if response.status_code == 404:
            await _send(send, 404)
            return
        headers = [
            (k, v)
            for k, v in self._stream_headers(stream_id, response.headers)
            if k != b"content-length"
        ]
        await _send(send, response.status_code, headers)

    async def _delete(self, stream_id: str) -> None:
        try:
            response = await self._http().delete(
                self.stream_url(stream_id), timeout=_STORAGE_TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise _Reply(502, "STORAGE_ERROR", f"the stream could not be deleted: {exc}") from None
        if response.status_code >= 300 and response.status_code != 404:
            raise _Reply(502, "STORAGE_ERROR", f"deleting the stream: {response.status_code}")
        self._content_types.pop(stream_id, None)


# -- helpers ------------------------------------------------------------------------------------


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        out.setdefault(raw_name.decode("latin-1").lower(), raw_value.decode("latin-1"))
    return out


def _base_url(scope: Scope, prefix: str) -> str:
    headers = _headers(scope)
    scheme = headers.get("x-forwarded-proto", scope.get("scheme", "http"))
    host = headers.get("host")
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}{scope.get('root_path', '')}{prefix}"


async def _send(
    send: Send, status: int, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b""
) -> None:
    all_headers = [*_CORS, *(headers or [])]
    if status not in (204, 304):
        all_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    await _send(send, status, [(b"content-type", b"application/json")], error_body(code, message))


async def _relay(response: httpx.Response, send: Send) -> None:
    async for chunk in response.aiter_raw():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _error_detail(upstream: httpx.Response, limit: int) -> bytes:
    detail = bytearray()
    async for chunk in upstream.aiter_bytes():
        detail += chunk
        if len(detail) >= limit:
            break
    return bytes(detail[:limit])


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
