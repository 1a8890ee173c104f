"""The protocol over HTTP: each request's headers and query checked, the store asked, and
the answer put in the reference server's status codes and headers.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from ._faults import FAULT_PATH, Fault, Faults
from ._http import Request, Response
from ._notify import Notifier
from ._offsets import format_offset, parse_offset, response_cursor
from ._sse import control_event, data_event, event
from ._store import (
    OCTET_STREAM,
    Batch,
    ClosedConflict,
    CreateSpec,
    Producer,
    Store,
    StoreError,
    Stream,
    Verdict,
    WriteOutcome,
    media_type,
    parse_timestamp,
)
from ._subscription_registry import SubscriptionRegistry
from ._subscription_routes import SubscriptionRoutes

__all__ = ["App", "Settings"]

_COMMON_HEADERS = [
    ("access-control-allow-origin", "*"),
    ("access-control-allow-methods", "GET, POST, PUT, DELETE, HEAD, OPTIONS"),
    (
        "access-control-allow-headers",
        "content-type, authorization, if-none-match, Stream-Seq, Stream-TTL, "
        "Stream-Expires-At, Stream-Closed, Producer-Id, Producer-Epoch, Producer-Seq, "
        "Stream-Forked-From, Stream-Fork-Offset, Stream-Fork-Sub-Offset",
    ),
    (
        "access-control-expose-headers",
        "Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, "
        "Stream-SSE-Data-Encoding, Producer-Epoch, Producer-Seq, Producer-Expected-Seq, "
        "Producer-Received-Seq, etag, content-type, content-encoding, vary",
    ),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-resource-policy", "cross-origin"),
]
_CACHEABLE = "public, max-age=60, stale-while-revalidate=300"
_MEDIA_TYPE = re.compile(r"[\w-]+/[\w-]+", re.ASCII)
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,15}")
_DIGITS = re.compile(r"[0-9]{1,16}")
_MAX_SAFE_INTEGER = 2**53 - 1
_COMPRESS_AT = 1024


@dataclass(frozen=True)
class Settings:
    long_poll_timeout: float = 30.0
    sse_reconnect_interval: float = 60.0
    max_read_bytes: int = 4 * 1024 * 1024
    sse_batch_bytes: int = 64 * 1024
    compression: bool = True
    fault_injection: bool = False
    webhooks: bool = False


def _text(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [("content-type", "text/plain"), *(headers or [])], message.encode())


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def _safe_int(text: str) -> int | None:
    if _DIGITS.fullmatch(text) is None or int(text) > _MAX_SAFE_INTEGER:
        return None
    return int(text)


class App:
    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        settings: Settings,
        base_url: Callable[[], str] = lambda: "",
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._settings = settings
        self._faults = Faults() if settings.fault_injection else None
        registry = SubscriptionRegistry(store, base_url, webhooks=settings.webhooks)
        self.subscription_registry = registry
        self._subscription_routes = SubscriptionRoutes(registry, base_url)
        self.closing = False

    async def __call__(self, request: Request) -> Response:
        response = await self._dispatch(request)
        response.headers[:0] = _COMMON_HEADERS
        return response

    async def _dispatch(self, request: Request) -> Response:
        method = request.method
        if method == "OPTIONS":
            return Response(204)
        fault = None
        if self._faults is not None:
            if request.path == FAULT_PATH:
                return self._fault_endpoint(request, self._faults)
            fault = self._faults.take(request.path, method)
            if fault is not None:
                if fault.delay > 0:
                    await asyncio.sleep(fault.delay)  # the fault is latency itself
                if fault.drop:
                    return Response(0, drop=True)
                if fault.status is not None:
                    extra = (
                        []
                        if fault.retry_after is None
                        else [("retry-after", str(fault.retry_after))]
                    )
                    return _text(fault.status, "injected error for testing", extra)
        if not request.path.startswith("/"):
            return _text(400, "the request target must be a path")
        if self._subscription_routes.handles(request.path):
            return await self._subscription_routes.dispatch(request)
        try:
            if method == "PUT":
                return self._create(request)
            if method == "HEAD":
                return self._head(request)
            if method == "GET":
                return await self._read(request, fault)
            if method == "POST":
                response = self._append(request)
                if request.body and response.status in (200, 204):
                    self.subscription_registry.on_append(request.path)
                return response
            if method == "DELETE":
                self._store.delete(request.path)
                self.subscription_registry.on_delete(request.path)
                return Response(204)
        except ClosedConflict as exc:
            closed = [("stream-closed", "true"), ("stream-next-offset", format_offset(exc.tail))]
            return _text(409, str(exc), closed)
        except StoreError as exc:
            return _text(exc.status, str(exc))
        return _text(
            405, "method not allowed", [("allow", "GET, HEAD, PUT, POST, DELETE, OPTIONS")]
        )

    # -- PUT: create or fork ------------------------------------------------------

    def _create(self, request: Request) -> Response:
        header = request.header
        forked_from = header("stream-forked-from") or None
        if forked_from is not None and forked_from.startswith(("http://", "https://")):
            forked_from = urlsplit(forked_from).path
        content_type = header("content-type")
        if not content_type or _MEDIA_TYPE.match(content_type) is None:
            content_type = None if forked_from is not None else OCTET_STREAM
        ttl_text, expires_at = header("stream-ttl") or None, header("stream-expires-at") or None
        if ttl_text is not None and expires_at is not None:
            return _text(400, "give Stream-TTL or Stream-Expires-At, not both")
        if ttl_text is not None and _DECIMAL.fullmatch(ttl_text) is None:
            return _text(400, "Stream-TTL must be a non-negative integer")
        if expires_at is not None and parse_timestamp(expires_at) is None:
            return _text(400, "Stream-Expires-At must be an RFC 3339 timestamp")
        fork_offset = None
        fork_offset_text = header("stream-fork-offset") or None
        if fork_offset_text is not None:
            fork_offset = parse_offset(fork_offset_text)
            if fork_offset is None:
                return _text(
                    400,
                    "invalid Stream-Fork-Offset: give an offset the server returned "
                    "(Stream-Next-Offset), not -1 or now; leave it out to fork at the tail",
                )
        sub_offset = 0
        sub_text = header("stream-fork-sub-offset")
        if sub_text is not None:
            if forked_from is None:
                return _text(400, "Stream-Fork-Sub-Offset needs Stream-Forked-From")
            if _DECIMAL.fullmatch(sub_text) is None:
                return _text(400, "Stream-Fork-Sub-Offset must be a non-negative integer")
            sub_offset = int(sub_text)
        spec = CreateSpec(
            content_type=content_type,
            ttl_seconds=None if ttl_text is None else int(ttl_text),
            expires_at=expires_at,
            closed=_is_true(header("stream-closed")),
            forked_from=forked_from,
            fork_offset=fork_offset,
            fork_sub_offset=sub_offset,
        )
        stream, created = self._store.create(request.path, spec, request.body)
        headers = [
            ("content-type", stream.content_type),
            ("stream-next-offset", format_offset(stream.tail)),
        ]
        if created:
            host = header("host")
            headers.append(("location", f"http://{host}{request.path}" if host else request.path))
        if stream.closed:
            headers.append(("stream-closed", "true"))
        if created and request.body:
            self.subscription_registry.on_append(request.path)
        return Response(201 if created else 200, headers)

    # -- HEAD -------------------------------------------------------------------

    def _head(self, request: Request) -> Response:
        stream = self._store.get(request.path)
        tail = format_offset(stream.tail)
        headers = [
            ("content-type", stream.content_type),
            ("stream-next-offset", tail),
            ("cache-control", "no-store"),
            ("etag", _etag(stream, "-1", tail, stream.closed)),
        ]
        if stream.closed:
            headers.append(("stream-closed", "true"))
        if stream.ttl_seconds is not None:
            headers.append(("stream-ttl", str(stream.ttl_seconds)))
        if stream.expires_at is not None:
            headers.append(("stream-expires-at", stream.expires_at))
        return Response(200, headers)

    # -- POST: append and close --------------------------------------------------

    def _append(self, request: Request) -> Response:
        header = request.header
        close = _is_true(header("stream-closed"))
        producer_headers = (header("producer-id"), header("producer-epoch"), header("producer-seq"))
        producer = None
        if producer_headers != (None, None, None):
            producer_id, epoch_text, seq_text = producer_headers
            if producer_id is None or epoch_text is None or seq_text is None:
                return _text(400, "Producer-Id, Producer-Epoch and Producer-Seq go together")
            if not producer_id:
                return _text(400, "Producer-Id must not be empty")
            epoch, seq = _safe_int(epoch_text), _safe_int(seq_text)
            if epoch is None:
                return _text(400, "Producer-Epoch must be an integer in 0..2^53-1")
            if seq is None:
                return _text(400, "Producer-Seq must be an integer in 0..2^53-1")
            producer = Producer(producer_id, epoch, seq)
        if not request.body:
            if not close:
                return _text(400, "an append needs a body (or Stream-Closed: true to close)")
            return _written(self._store.close(request.path, producer), producer, appended=False)
        content_type = header("content-type")
        if not content_type:
            return _text(400, "an append needs a Content-Type")
        outcome = self._store.append(
            request.path,
            request.body,
            content_type=content_type,
            seq=header("stream-seq"),
            producer=producer,
            close=close,
        )
        return _written(outcome, producer, appended=True)

    # -- GET: catch-up, long-poll, SSE ------------------------------------------

    async def _read(self, request: Request, fault: Fault | None) -> Response:
        stream = self._store.get(request.path)
        params = parse_qs(request.query, keep_blank_values=True)
        live = params.get("live", [None])[0]
        cursor = params.get("cursor", [None])[0]
        offsets = params.get("offset")
        offset_text = None
        if offsets is not None:
            if len(offsets) > 1:
                return _text(400, "give one offset parameter")
            offset_text = offsets[0]
            if offset_text not in ("-1", "now") and parse_offset(offset_text) is None:
                return _text(400, "invalid offset")
        if live in ("long-poll", "sse") and offset_text is None:
            return _text(400, f"live={live} needs an offset")
        if offset_text == "now":
            start = stream.tail
        elif offset_text is None or offset_text == "-1":
            start = 0
        else:
            start = parse_offset(offset_text) or 0
        self._store.touch(stream)
        if live == "sse":
            return self._sse(request.path, stream, start, cursor, fault)
        if live == "long-poll":
            return await self._long_poll(request, start, offset_text, cursor, fault)
        if offset_text == "now":
            headers = [
                ("content-type", stream.content_type),
                ("stream-next-offset", format_offset(stream.tail)),
                ("stream-up-to-date", "true"),
                ("cache-control", "no-store"),
            ]
            if stream.closed:
                headers.append(("stream-closed", "true"))
            return Response(200, headers, b"[]" if stream.is_json else b"")
        batch = self._store.read(stream, start, self._settings.max_read_bytes)
        return self._data(request, stream, batch, offset_text, None, fault)

    async def _long_poll(
        self,
        request: Request,
        start: int,
        offset_text: str | None,
        cursor: str | None,
        fault: Fault | None,
    ) -> Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.long_poll_timeout
        while True:
            stream = self._store.get(request.path)
            batch = self._store.read(stream, start, self._settings.max_read_bytes)
            if batch.chunks or start != stream.tail:
                next_cursor = response_cursor(cursor, _now())
                return self._data(request, stream, batch, offset_text, next_cursor, fault)
            headers = [("stream-next-offset", format_offset(start)), ("stream-up-to-date", "true")]
            if stream.closed:
                return Response(204, [*headers, ("stream-closed", "true")])
            woke = await self._notifier.wait(request.path, deadline - loop.time())
            if not woke or self.closing:
                stream = self._store.get(request.path)
                self._store.touch(stream)
                headers.append(("stream-cursor", response_cursor(cursor, _now())))
                if stream.closed:
                    headers.append(("stream-closed", "true"))
                return Response(204, headers)

    def _data(
        self,
        request: Request,
        stream: Stream,
        batch: Batch,
        offset_text: str | None,
        cursor: str | None,
        fault: Fault | None,
    ) -> Response:
        next_offset = format_offset(batch.next)
        eof = stream.closed and batch.complete
        etag = _etag(stream, offset_text or "-1", next_offset, eof)
        cache = _CACHEABLE if batch.chunks else "no-store"
        if _etag_matches(request.header("if-none-match"), etag):
            return Response(304, [("etag", etag), ("cache-control", cache)])
        headers = [
            ("content-type", stream.content_type),
            ("stream-next-offset", next_offset),
            ("etag", etag),
            ("cache-control", cache),
        ]
        if cursor is not None:
            headers.append(("stream-cursor", cursor))
        if batch.complete:
            headers.append(("stream-up-to-date", "true"))
        if eof:
            headers.append(("stream-closed", "true"))
        body = _json_array(batch.chunks) if stream.is_json else b"".join(batch.chunks)
        if self._settings.compression and len(body) >= _COMPRESS_AT:
            coding = _pick_encoding(request.header("accept-encoding"))
            if coding == "gzip":
                body = gzip.compress(body, compresslevel=6, mtime=0)
            elif coding == "deflate":
                body = zlib.compress(body, 6)
            if coding is not None:
                headers += [("content-encoding", coding), ("vary", "accept-encoding")]
        if fault is not None:
            body = fault.mangle(body)
        return Response(200, headers, body)

    def _sse(
        self, path: str, stream: Stream, start: int, cursor: str | None, fault: Fault | None
    ) -> Response:
        kind = media_type(stream.content_type)
        binary = not (kind.startswith("text/") or kind == "application/json")
        headers = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
        if binary:
            headers.append(("stream-sse-data-encoding", "base64"))
        return Response(200, headers, stream=self._sse_events(path, start, cursor, binary, fault))

    async def _sse_events(
        self, path: str, start: int, cursor: str | None, binary: bool, fault: Fault | None
    ) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        reconnect_at = loop.time() + self._settings.sse_reconnect_interval
        if fault is not None and fault.sse_event is not None:
            yield event(*fault.sse_event)
        position = start
        announce = True  # a control event is owed: at the start, after data, after a quiet wait
        while not self.closing:
            try:
                stream = self._store.get(path)
            except StoreError:
                return  # deleted: the reader's reconnect learns why
            self._store.touch(stream)
            batch = self._store.read(stream, position, self._settings.sse_batch_bytes)
            position = batch.next
            closed = stream.closed and batch.complete
            if batch.chunks or announce or closed:
                # Data and its control event go out in one write: a reader never sees the
                # one without the other.
                data = (
                    data_event(_sse_payload(stream, batch.chunks, binary)) if batch.chunks else b""
                )
                yield data + control_event(
                    format_offset(position),
                    response_cursor(cursor, _now()),
                    up_to_date=batch.complete,
                    closed=closed,
                )
                announce = False
                if closed or loop.time() >= reconnect_at:
                    return
            if not batch.complete:
                continue
            wait = min(self._settings.long_poll_timeout, reconnect_at - loop.time())
            if not await self._notifier.wait(path, wait):
                announce = True

    # -- the fault-injection endpoint -------------------------------------------

    def _fault_endpoint(self, request: Request, faults: Faults) -> Response:
        ok = Response(200, [("content-type", "application/json")], b'{"ok":true}')
        if request.method == "POST":
            try:
                faults.arm(request.body)
            except (ValueError, RecursionError) as exc:
                return _text(400, f"bad fault: {exc}")
            return ok
        if request.method == "DELETE":
            faults.clear()
            return ok
        return _text(405, "method not allowed", [("allow", "POST, DELETE")])


def _written(outcome: WriteOutcome, producer: Producer | None, *, appended: bool) -> Response:
    """The answer to an append or close, by the producer check's verdict."""
    tail = ("stream-next-offset", format_offset(outcome.tail))
    closed = [("stream-closed", "true")] if outcome.closed else []
    check = outcome.check
    if check is None or producer is None:
        return Response(204, [tail, *closed])
    epoch = ("producer-epoch", str(check.epoch))
    if check.verdict is Verdict.ACCEPTED:
        status = 200 if appended else 204
        return Response(status, [tail, epoch, ("producer-seq", str(check.seq)), *closed])
    if check.verdict is Verdict.DUPLICATE:
        headers = [epoch, ("producer-seq", str(check.seq))]
        return Response(204, [*headers, tail, *closed] if outcome.closed else headers)
    if check.verdict is Verdict.STALE_EPOCH:
        return _text(403, "stale producer epoch", [epoch])
    if check.verdict is Verdict.EPOCH_SEQ_NOT_ZERO:
        return _text(400, "a new producer epoch must start at sequence 0")
    gap = [("producer-expected-seq", str(check.seq)), ("producer-received-seq", str(producer.seq))]
    return _text(409, "producer sequence gap", gap)


def _etag(stream: Stream, start: str, end: str, closed: bool) -> str:
    return f'"{stream.uid}:{start}:{end}{":c" if closed else ""}"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {part.strip().removeprefix("W/") for part in header.split(",")}
    return "*" in candidates or etag in candidates


def _pick_encoding(accept: str | None) -> str | None:
    offered: dict[str, bool] = {}
    for item in (accept or "").lower().split(","):
        name, _, params = item.strip().partition(";")
        refused = params.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000")
        offered[name.strip()] = not refused
    for coding in ("gzip", "deflate"):
        if offered.get(coding):
            return coding
    return None


def _json_array(chunks: list[bytes]) -> bytes:
    if not chunks:
        return b"[]"
    return b"[" + b"".join(chunks)[:-1] + b"]"


def _sse_payload(stream: Stream, chunks: list[bytes], binary: bool) -> str:
    data = b"".join(chunks)
    if binary:
        return base64.b64encode(data).decode("ascii")
    if stream.is_json:
        return _json_array(chunks).decode("utf-8")
    return data.decode("utf-8", "replace")


def _now() -> float:
    return time.time()
