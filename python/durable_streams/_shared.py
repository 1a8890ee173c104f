"""What the sync and async drivers share: options, httpx plumbing, and delivery bookkeeping."""

from __future__ import annotations

import inspect
import math
import operator
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

import httpx

from . import _errors as errors
from . import _impl
from ._protocol import (
    HttpRequest,
    check_header,
    is_json_content_type,
    is_transient_status,
    retry_after_seconds,
)
from ._read import (
    READ_AS,
    Batch,
    ConsumerKind,
    ErrorDecision,
    ReaderStats,
    ReadSession,
    body_too_large,
)
from ._retry import RetryState

__all__ = [
    "CLIENT_LIMITS",
    "DEFAULT_TIMEOUT",
    "AsyncOnError",
    "Delivery",
    "HeaderValue",
    "Headers",
    "OnError",
    "ResponseMetadata",
    "StreamEvent",
    "make_timeout",
    "response_args",
    "transport_error",
]

HeaderValue = str | Callable[[], str] | Callable[[], Awaitable[str]]
Headers = Mapping[str, HeaderValue]
OnError = Callable[[errors.DurableStreamError], ErrorDecision]
AsyncOnError = Callable[[errors.DurableStreamError], ErrorDecision | Awaitable[ErrorDecision]]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# A live request may be held by the server for its whole long-poll window (30 s on the
# reference server) or SSE connection lifetime (~60 s); the socket read timeout must outlast it.
DEFAULT_LIVE_READ_TIMEOUT = 90.0


# Servers commonly drop idle keep-alive connections after 5 s (Node's default); closing ours a
# little sooner keeps a request from racing that close on a connection about to die.
CLIENT_LIMITS = httpx.Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=4.0
)


def make_timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if isinstance(timeout, bool) or not (timeout > 0 and math.isfinite(timeout)):
        # Zero would time every request out at once, which reads as an unreachable server.
        raise errors.UsageError(
            f"timeout must be a positive number of seconds (None: the default), not {timeout!r}"
        )
    return httpx.Timeout(timeout)


def request_timeout(base: httpx.Timeout, live_read_timeout: float, live: bool) -> httpx.Timeout:
    if not live:
        return base
    read = max(base.read or 0.0, live_read_timeout)
    return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)


def response_args(
    url: str,
    *,
    offset: str,
    live: Any,
    cursor: str | None,
    headers: Headers | None,
    params: Headers | None,
    timeout: httpx.Timeout,
    live_read_timeout: float,
    retry: Any,
    max_event_bytes: int,
    max_body_bytes: int,
    on_error: Any = None,
) -> dict[str, Any]:
    """The arguments of a stream response, apart from its HTTP client, from read options."""
    session = ReadSession(
        url,
        offset=offset,
        live=live,
        cursor=cursor,
        retry=retry,
        max_event_bytes=max_event_bytes,
        max_body_bytes=max_body_bytes,
    )
    return {
        "session": session,
        "headers": headers,
        "params": params,
        "timeout": timeout,
        "live_read_timeout": live_read_timeout,
        "on_error": on_error,
    }


def resolve_sync(values: Mapping[str, Any] | None, *, headers: bool = False) -> dict[str, str]:
    """Evaluate callable header/param values, once per request; with ``headers``, what a
    callable gave is checked as a header value (those given as text were checked already)."""
    if not values:
        return {}
    out: dict[str, str] = {}
    for name, value in values.items():
        if callable(value):
            value = value()
            if inspect.isawaitable(value):
                close = getattr(value, "close", None)
                if close is not None:
                    close()
                raise TypeError(f"header/param {name!r} is async; use the async API for it")
            value = str(value)
            if headers:
                check_header(name, value)
        out[name] = str(value)
    return out


async def resolve_async(
    values: Mapping[str, Any] | None, *, headers: bool = False
) -> dict[str, str]:
    if not values:
        return {}
    out: dict[str, str] = {}
    for name, value in values.items():
        if callable(value):
            value = value()
            if inspect.isawaitable(value):
                value = await value
            value = str(value)
            if headers:
                check_header(name, value)
        out[name] = str(value)
    return out


def decide_sync(hook: OnError | None, exc: errors.DurableStreamError) -> ErrorDecision:
    """What a reader's ``on_error`` hook says about ``exc`` (``None`` without a hook)."""
    if hook is None:
        return None
    try:
        decision = hook(exc)
    except Exception as failure:
        _chain(failure, exc)
        raise
    if inspect.isawaitable(decision):
        close = getattr(decision, "close", None)
        if close is not None:
            close()
        raise TypeError("on_error is async; use the async API (astream) for it") from exc
    return decision


async def decide_async(hook: AsyncOnError | None, exc: errors.DurableStreamError) -> ErrorDecision:
    if hook is None:
        return None
    try:
        decision = hook(exc)
        if inspect.isawaitable(decision):
            decision = await decision
    except Exception as failure:
        _chain(failure, exc)
        raise
    return decision


def _chain(failure: Exception, original: errors.DurableStreamError) -> None:
    """Give ``failure``, raised by an ``on_error`` hook, the error the hook was given as its
    cause (unless the hook chained one itself): the traceback then shows both."""
    if failure.__cause__ is None and failure is not original:
        failure.__cause__ = original


def compressed_body_cut_short(response: httpx.Response, received: bool) -> bool:
    """Whether a gzip or deflate body, read to its end (``received``: any bytes of it),
    stopped before its compressed data did.

    httpx's zlib decoders never check for the end, so a body truncated by the server or a
    middlebox would otherwise read as a shorter, valid one. No bytes at all is no body, not a
    cut one."""
    if not received and response.num_bytes_downloaded == 0:
        return False
    decompressor = getattr(getattr(response, "_decoder", None), "decompressor", None)
    return getattr(decompressor, "eof", True) is False


def gather_body(chunks: Iterator[bytes], limit: int, *, url: str, offset: str | None) -> bytes:
    """A whole body from ``chunks``; more than ``limit`` bytes is a :class:`ProtocolError`."""
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit, url=url, offset=offset)
        parts.append(chunk)
    return b"".join(parts)


async def agather_body(
    chunks: AsyncGenerator[bytes, None], limit: int, *, url: str, offset: str | None
) -> bytes:
    """:func:`gather_body` of an async body; closes ``chunks`` however it ends."""
    parts: list[bytes] = []
    size = 0
    async with aclosing(chunks):
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise body_too_large(limit, url=url, offset=offset)
            parts.append(chunk)
    return b"".join(parts)


def merge(base: Headers | None, extra: Headers | None) -> dict[str, HeaderValue]:
    out: dict[str, HeaderValue] = dict(base or {})
    out.update(extra or {})
    return out


def transport_error(
    exc: BaseException, *, url: str, offset: str | None = None
) -> errors.TransportError:
    """Our error for a failure of httpx or of a socket; the original exception stays
    reachable as ``__cause__``."""
    kind = type(exc).__name__
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        err: errors.TransportError = errors.DeadlineExceededError(
            f"request timed out ({kind})", url=url, offset=offset
        )
    else:
        reason = str(exc) or kind
        err = errors.TransportError(f"request failed: {kind}: {reason}", url=url, offset=offset)
    err.__cause__ = exc
    return err


def build_httpx_request(
    client: httpx.Client | httpx.AsyncClient, req: HttpRequest, timeout: httpx.Timeout
) -> httpx.Request:
    # httpx replaces a URL's own query with params= (a token in the URL would be lost), so
    # merge them here: the URL's parameters stay, ours are added (or replace same-named ones).
    url = httpx.URL(req.url)
    if req.params:
        url = url.copy_merge_params(tuple(req.params))
    return client.build_request(
        req.method,
        url,
        headers=req.headers,
        content=req.content,
        timeout=timeout,
    )


def delay_after_transport_error(
    retry: RetryState, req: HttpRequest, exc: httpx.HTTPError
) -> float | None:
    """How long to wait before resending ``req`` after ``exc``, or ``None`` to give up.

    A request that never reached the server is always safe to send again; one that may have
    been processed only when resending it cannot store anything twice."""
    safe = req.idempotent or isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
    return retry.next_delay() if safe else None


def delay_after_status(
    retry: RetryState, req: HttpRequest, status: int, headers: Mapping[str, str]
) -> float | None:
    """How long to wait before resending ``req`` after a transient status, or ``None``.

    An answer from the server itself (429, 500, 503) says the request was not applied, so even
    appends are resent; a gateway's 502/504 does not (the origin may have stored it)."""
    if not is_transient_status(status):
        return None
    if not (req.idempotent or status in (429, 500, 503)):
        return None
    return retry.next_delay(retry_after_seconds(headers))


def with_dynamic(
    req: HttpRequest, headers: Mapping[str, str], params: Mapping[str, str]
) -> HttpRequest:
    """``req`` with the handle's evaluated headers and params under its own (a header of the
    request's own replaces the handle's of the same name, whatever their case)."""
    own = {name.lower() for name in req.headers}
    return HttpRequest(
        req.method,
        req.url,
        {**{k: v for k, v in headers.items() if k.lower() not in own}, **req.headers},
        sorted({**params, **dict(req.params)}.items()),
        req.content,
        req.idempotent,
    )


def lower_headers(headers: httpx.Headers) -> dict[str, str]:
    """httpx headers as a plain dict with lower-case names; repeated names joined by ``, ``."""
    out: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One item read from a stream with the offset to resume from after its batch.

    Items of one batch share the offset: the protocol marks positions between batches only.
    """

    data: Any
    offset: str
    cursor: str | None
    up_to_date: bool
    stream_closed: bool


class Delivery:
    """Hands out a batch's items one by one, so that a consumer who stops or fails part-way
    (``break``, an exception in a ``decode=`` hook) loses nothing: the rest of the batch is
    kept and the next iteration starts with it, and so are the batches one read delivered
    with it.

    ``offset``, ``cursor`` and the flags move on as the last item of a batch goes out, before
    the consumer has it: one that stops right after it resumes behind the batch, one that
    stops earlier resumes before it, and never skips an item. The last item is split off the
    batch's list when the batch starts, so the others go out straight from the list's
    iterator, with no Python code per item."""

    __slots__ = (
        "carried",
        "carried_kind",
        "current",
        "cursor",
        "has_last",
        "items",
        "kind",
        "last",
        "offset",
        "queued",
        "queued_at",
        "queued_kind",
        "rest",
        "stream_closed",
        "up_to_date",
        "url",
    )

    def __init__(self, url: str, offset: str, cursor: str | None) -> None:
        self.url = url
        self.carried: deque[Any] = deque()
        self.carried_kind: ConsumerKind | None = None
        self.current: Batch | None = None  # the batch handed out last, or being handed out
        self.kind: ConsumerKind | None = None
        self.items: Sequence[Any] = ()  # the current batch's items before its last one
        self.rest: Iterator[Any] = iter(())  # where in ``items`` the handing out is
        self.has_last = False  # whether the current batch's last item is still to go out
        self.last: Any = None
        self.queued: list[Batch] = []
        self.queued_at = 0
        self.queued_kind: ConsumerKind | None = None
        self.offset = offset
        self.cursor = cursor
        self.up_to_date = False
        self.stream_closed = False

    def _check_kind(self, held: ConsumerKind | None, kind: ConsumerKind) -> None:
        if held != kind:
            raise errors.DurableStreamError(
                f"items read for {READ_AS[held]} are still to be handed out; read them that way "
                f"before reading with {READ_AS[kind]}",
                url=self.url,
                offset=self.offset,
            )

    def _as_kind(self, items: list[Any], held: ConsumerKind | None, kind: ConsumerKind) -> Any:
        """Items read as ``held`` for a consumer of ``kind``: messages kept raw for a decode=
        hook are decoded by the core; other kinds cannot be turned into one another."""
        if held == "json-raw" and kind == "json":
            return _impl.core.parse_json_array(b"[" + b",".join(items) + b"]")
        self._check_kind(held, kind)
        return items

    def carry(self, kind: ConsumerKind, items: list[Any]) -> None:
        """Keep items a ``read_*`` call had taken when it failed; the next read returns them."""
        self.carried = deque(items)
        self.carried_kind = kind if items else None

    def drain_carried(self, kind: ConsumerKind) -> Iterator[Any]:
        """The carried items; each leaves the queue only as it is handed out."""
        if self.carried:
            self._check_kind(self.carried_kind, kind)
        while self.carried:
            yield self.carried.popleft()

    def part_way(self, kind: ConsumerKind) -> bool:
        """Whether a previous iteration stopped in the middle of the current batch; its items
        not handed out yet are then made ``kind`` items."""
        if not self.has_last:
            return False
        if self.kind != kind:
            items = self.items
            left = list(items[len(items) - operator.length_hint(self.rest) :])
            converted = self._as_kind([*left, self.last], self.kind, kind)
            self.last = converted.pop()
            self.items = converted
            self.rest = iter(converted)
            self.kind = kind
        return True

    def queue(self, batches: list[Batch], kind: ConsumerKind) -> None:
        """The batches of one read after its first, which is being handed out."""
        self.queued = batches
        self.queued_at = 1
        self.queued_kind = kind

    def take_queued(self, kind: ConsumerKind) -> Batch | None:
        queued = self.queued
        if not queued:
            return None
        batch = queued[self.queued_at]
        if self.queued_kind != kind:
            batch.data = self._as_kind(batch.data, self.queued_kind, kind)
        self.queued_at += 1
        if self.queued_at == len(queued):
            self.queued = []
        return batch

    def start(self, batch: Batch, kind: ConsumerKind) -> None:
        """Hand ``batch`` out next; a list of messages gives up its last one to ``last``."""
        self.current = batch
        self.kind = kind
        data = batch.data
        if kind in ("json", "json-raw"):
            self.has_last = bool(data)
            self.last = data.pop() if data else None
            self.items = data
        else:  # bytes or text: the whole batch is one item
            self.has_last = bool(data)
            self.last = data
            self.items = ()
        self.rest = iter(self.items)

    def drain(self, transform: Callable[[Any], Any] | None) -> Iterator[Any]:
        """The current batch's items not handed out yet, but its last; each counts as handed
        out when yielded (``rest`` itself, when there is no ``transform``: the list iterator
        is the position, so items cost no Python code each)."""
        if transform is None:
            return self.rest
        return map(transform, self.rest)

    def put_back(self) -> None:
        """``drain``'s transform (a decode= hook) raised: ``map`` had taken the item it failed
        on from ``rest``, so it goes back, to come first next time."""
        items = self.items
        failed = len(items) - operator.length_hint(self.rest) - 1
        self.items = items[failed:]
        self.rest = iter(self.items)

    def take_last(self, transform: Callable[[Any], Any] | None) -> Any:
        """The current batch's last item, through ``transform``. The batch counts as handed
        out with it, so ``offset`` moves on before the consumer has it; a transform that
        raises leaves it for the next iteration."""
        item = self.last if transform is None else transform(self.last)
        self.has_last = False
        self.last = None
        self.commit()
        return item

    def commit(self) -> None:
        """The current batch is handed out: move the offset on."""
        batch = self.current
        assert batch is not None
        self.offset = batch.offset
        self.cursor = batch.cursor
        self.up_to_date = batch.up_to_date
        self.stream_closed = batch.closed

    def stops(self, until_up_to_date: bool) -> bool:
        """Whether the reader stops after the batch handed out last: at the end of a closed
        stream, or up to date when that was asked for."""
        return self.stream_closed or (until_up_to_date and self.up_to_date)

    def event(self, item: Any) -> StreamEvent:
        """``item`` of the current batch, with where the stream stands after that batch."""
        batch = self.current
        assert batch is not None
        return StreamEvent(item, batch.offset, batch.cursor, batch.up_to_date, batch.closed)


class ResponseMetadata:
    """Read-only facts about a stream read, shared by the sync and async responses."""

    _session: ReadSession
    _delivery: Delivery

    @property
    def url(self) -> str:
        return self._session.url

    @property
    def offset(self) -> str:
        """The offset to resume from: after the last batch handed out in full."""
        return self._delivery.offset

    @property
    def cursor(self) -> str | None:
        return self._delivery.cursor

    @property
    def up_to_date(self) -> bool:
        return self._delivery.up_to_date

    @property
    def stream_closed(self) -> bool:
        """True once the reader has reached the end of a closed stream (EOF)."""
        return self._delivery.stream_closed

    @property
    def content_type(self) -> str | None:
        return self._session.content_type

    @property
    def status(self) -> int | None:
        return self._session.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._session.headers

    @property
    def live(self) -> Any:
        return self._session.live

    def stats(self) -> ReaderStats:
        """A snapshot of this reader's position and counters; cheap, callable at any time."""
        return replace(self._session.stats(), offset=self._delivery.offset)

    def _event_kind(self, raw_json: bool = False) -> ConsumerKind:
        """What items of this stream are: messages (raw bytes each with ``raw_json``) for JSON
        streams, byte chunks otherwise."""
        if not is_json_content_type(self._session.content_type):
            return "bytes"
        return "json-raw" if raw_json else "json"

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {errors.redact_url(self.url)} offset={self.offset!r} "
            f"up_to_date={self.up_to_date} stream_closed={self.stream_closed}>"
        )
