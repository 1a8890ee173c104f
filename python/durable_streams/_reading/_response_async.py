"""The async stream response: ``astream()`` and :class:`AsyncStreamResponse`, a loop around
a :class:`ReadSession` and a transport, for asyncio and trio alike (through anyio)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from types import TracebackType
from typing import Any

import httpx

from .. import _errors as errors
from .. import _protocol as proto
from .. import telemetry
from .._defaults import async_default_dispatcher
from .._dispatch_async import AsyncClientLike, AsyncDispatcher, dispatcher_for
from .._flavours import (
    AsyncItems,
    AsyncSignal,
    async_closer,
    async_extend,
    async_running,
    async_shield,
    async_signal,
    async_wait_signal,
    decide_async,
    resolve_async,
)
from .._log import retrying
from .._options import (
    DEFAULT_LIVE_READ_TIMEOUT,
    AsyncOnError,
    Headers,
    make_timeout,
    request_timeout,
)
from .._protocol import OFFSET_BEGINNING
from .._retry import RetryPolicy
from .._transport import AsyncReply, AsyncTransport
from .._transport._interrupt import Interrupt
from .._transport._request import Verify
from .._values import JsonBatch, LiveMode, SseFallback, StreamEvent
from ._delivery import Delivery, ResponseMetadata, response_args
from ._session import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_EVENT_BYTES,
    Batch,
    ConsumerKind,
    ReadSession,
)


class _Interrupted(Exception):
    """The response was closed while an iterator was reading it (from another thread or
    task): the iterator ends."""


class _Held:
    """What a response must release: the reply in flight (its connection goes back to the
    pool). The response's closer holds this, not the response, so that in sync code a
    response dropped unclosed is closed by the garbage collector without the response being
    kept alive."""

    __slots__ = ("http",)

    def __init__(self) -> None:
        self.http: AsyncReply | None = None

    async def aclose(self) -> None:
        http, self.http = self.http, None
        if http is not None:
            await http.aclose()


class AsyncStreamResponse(ResponseMetadata):
    """A read of one stream: iterate it with ``iter_json``/``iter_text``/``iter_bytes``/
    ``iter_events``, or take everything up to the tail with the ``read_*`` methods.

    Use it as a context manager; leaving the block gives its connection back to the pool.
    Closing an iterator early (``aclose()``) gives it back as well; the next iterator resumes
    where that one stopped.

    The block closes the connection even when it is left by cancellation. An async response
    must be closed: one dropped unclosed is left to the garbage collector and the event loop's
    warnings."""

    def __init__(
        self,
        session: ReadSession,
        dispatcher: AsyncDispatcher | None,
        *,
        verify: Verify,
        headers: Headers | None,
        params: Headers | None,
        timeout: httpx.Timeout,
        live_read_timeout: float,
        on_error: AsyncOnError | None = None,
    ) -> None:
        self._session = session
        self._dispatcher = dispatcher
        # Chosen at the first request and kept, as a handle keeps its own: every request of
        # a read goes to the same origin.
        self._transport: AsyncTransport | None = None
        self._verify = verify
        self._headers = headers
        self._params = params
        self._timeout = timeout
        self._live_read_timeout = live_read_timeout
        self._live_timeout = request_timeout(timeout, live_read_timeout, True)
        self._on_error = on_error
        self._delivery = Delivery(session.url, session.offset, session.cursor)
        self._held = _Held()
        self._release = async_closer(self, self._held)
        self._kind: str | None = None
        self._source: AsyncIterator[list[Batch]] | None = None
        self._consumer: AsyncIterator[Any] | None = None
        self._handing_over = False
        self._closed = False
        self._interrupt = Interrupt()
        self._woken: AsyncSignal | None = None  # wakes a retry's wait when closed
        self._opening = False  # a request is on its way (``with`` opening the response too)

    @property
    def _http(self) -> AsyncReply | None:
        return self._held.http

    @_http.setter
    def _http(self, http: AsyncReply | None) -> None:
        self._held.http = http

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncStreamResponse:
        try:
            await self._open()
        except _Interrupted:  # closed from elsewhere while it opened: its iterators end
            await self.aclose()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Give the connection back (closed, if the answer was not read to its end).

        Called while an iterator of this response is reading in another thread (or task),
        it wakes that read at once, even one blocked on a long-poll or an SSE connection:
        the iterator ends as if the stream had (``is_closed`` tells), at ``offset`` after
        what it handed out, and closes the connection itself. An iterator that waits for
        its next step there (its loop is handling an item) is closed from here: its next
        step ends the loop."""
        if self._closed and not self._interrupt.fired:
            return
        self._closed = True
        if self._opening or async_running(self._consumer):
            self._wake_reader()
            return
        # A block left by cancellation must still give its connection back.
        with async_shield():
            try:
                await self._drop_source()
            except (RuntimeError, ValueError):  # the reader went on meanwhile: wake it
                self._wake_reader()
                return
            await self._release()

    def _wake_reader(self) -> None:
        self._interrupt.fire()
        woken = self._woken
        if woken is not None:
            woken.set()

    @property
    def is_closed(self) -> bool:
        """Whether the response was closed (its iterators then end)."""
        return self._closed

    async def _end_interrupted(self) -> None:
        """An iterator woken by a close from elsewhere lets go of what the close left; reads
        after it are refused, as on any closed response."""
        self._interrupt = Interrupt()
        with async_shield():
            await self._drop_connection()
            await self._release()

    async def _drop_source(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.aclose()  # type: ignore[attr-defined]
        await self._drop_connection()

    async def _drop_connection(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            await source.aclose()  # type: ignore[attr-defined]
        await self._close_http()

    async def _close_http(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    # -- the loop around the session ----------------------------------------------------------

    async def _open(self) -> None:
        """Send requests until one is answered with data to read (retrying what may be)."""
        if self._closed:
            if self._interrupt.fired:
                raise _Interrupted
            raise errors.DurableStreamError("the response is closed", url=self.url)
        self._opening = True
        try:
            await self._send_until_answered()
        finally:
            self._opening = False

    async def _send_until_answered(self) -> None:
        session = self._session
        dispatcher = self._dispatcher
        if dispatcher is None:
            dispatcher = self._dispatcher = await async_default_dispatcher(self._verify)
        while True:
            req = session.request(
                await resolve_async(self._headers, headers=True),
                await resolve_async(self._params),
            )
            timeout = self._live_timeout if session.live_request else self._timeout
            otel = telemetry.active
            span = None
            if otel is not None:
                req, span = otel.request("read", req, session.attempts + 1)
            transport = self._transport
            try:
                if transport is None:
                    transport = self._transport = dispatcher.transport_for(req.url)
                http = await transport.send(
                    req, timeout, live=session.live_request, interrupt=self._interrupt
                )
            except errors.TransportError as exc:
                if span is not None:
                    span.failed(exc)
                await self._wait_or_raise(exc)
                continue
            except BaseException as exc:  # cancelled, or a bug: the span still ends
                if span is not None:
                    span.failed(exc)
                raise
            if span is not None:
                span.answered(http.status_code, http.headers)
            try:
                kind = session.on_response(http.status_code, http.headers)
                if kind == "error":
                    body = await http.aread(proto.ERROR_BODY_LIMIT)
            except errors.TransportError as exc:
                await http.aclose()
                await self._wait_or_raise(exc)
                continue
            except BaseException:
                await http.aclose()
                raise
            if kind == "error":
                await http.aclose()
                await self._wait_or_raise(session.error(http.status_code, http.headers, body))
                continue
            self._http, self._kind = http, kind
            return

    async def _ensure_open(self) -> None:
        if self._session.status is None and self._http is None:
            await self._open()

    async def _wait_or_raise(self, exc: errors.DurableStreamError) -> None:
        if self._interrupt.fired:  # what failed is the read the close woke
            raise _Interrupted from exc
        session = self._session
        delay = session.retry_delay(exc, await decide_async(self._on_error, exc))
        if delay is None:
            raise exc
        retrying("reading", session.url, exc, session.attempts, delay, "read")
        if self._woken is None:
            self._woken = async_signal()
        if self._interrupt.fired:
            raise _Interrupted from exc
        if await async_wait_signal(self._woken, delay):
            raise _Interrupted from exc

    async def _batches(self) -> AsyncIterator[list[Batch]]:
        """The batches of each read, never an empty list: one chunk of SSE may carry several,
        and the session is past all of them once it returns them."""
        session = self._session
        while not session.done:
            if self._http is None:
                await self._open()
            http = self._http
            assert http is not None
            try:
                if self._kind == "sse":
                    # The batch that ends a closed stream is complete with its control event:
                    # nothing after it is read, so a connection that fails or stalls
                    # afterwards can neither delay it nor lose it.
                    final = None
                    chunks = http.aiter_bytes()
                    try:
                        async for chunk in chunks:
                            batches = session.feed(chunk)
                            if batches:
                                if batches[-1].closed:
                                    final = batches
                                    break
                                yield batches
                            session.raise_held()
                    finally:
                        # Shielded: once the session holds the closing batch, a cancellation
                        # here would leave the reader done without having handed it out.
                        with async_shield():
                            await chunks.aclose()
                            if final is not None:
                                await self._close_http()
                    session.on_sse_end()
                    if final is not None:
                        yield final
                elif self._kind == "body":
                    async with aclosing(http.aiter_bytes()) as chunks:
                        async for chunk in chunks:
                            # A chunk can hold many batches: each is built once the one
                            # before is handed out, so their messages are never alive at once.
                            part = session.on_body_chunk(chunk)
                            while part is not None:
                                yield [part]
                                part = session.next_body_part()
                    await self._close_http()
                    yield [session.on_body_end()]
                else:
                    await self._close_http()
                    yield [session.on_empty()]
            except errors.TransportError as exc:
                await self._close_http()
                await self._wait_or_raise(exc)
            finally:
                if self._http is http:
                    await self._close_http()

    async def _next_batch(self, kind: ConsumerKind) -> Batch | None:
        if self._interrupt.fired:
            raise _Interrupted
        delivery = self._delivery
        # Batches read together with the last one go first: the session is past them, and
        # stays so when this connection is dropped (an iterator closed, another kind wanted).
        batch = delivery.take_queued(kind)
        if batch is not None:
            return batch
        session = self._session
        if session.needs_new_connection(kind):
            await self._drop_connection()
        session.consumer = kind
        if self._source is None:
            if session.done:
                return None
            self._source = self._batches()
        try:
            batches = await self._source.__anext__()
        except StopAsyncIteration:
            self._source = None
            return None
        except BaseException:
            self._source = None
            await self._close_http()
            raise
        if len(batches) > 1:
            delivery.queue(batches, kind)
        return batches[0]

    async def _items(
        self,
        kind: ConsumerKind | None,
        until_up_to_date: bool,
        transform: Callable[[Any], Any] | None,
        previous: AsyncIterator[Any] | None,
        out: AsyncItems,
    ) -> AsyncIterator[Any]:
        await self._take_over_from(previous)
        delivery = self._delivery
        try:
            await self._ensure_open()
            if kind is None:  # iterating the response itself, or iter_events
                kind = self._event_kind(raw_json=transform is not None)
            for item in delivery.drain_carried(kind):
                yield item
            while True:
                if not delivery.part_way(kind):
                    batch = await self._next_batch(kind)
                    if batch is None:
                        return
                    delivery.start(batch, kind)
                draining = delivery.drain(transform)
                if transform is None:
                    out._ready = draining
                try:
                    for item in draining:
                        yield item
                except Exception:
                    # Nothing but the decode hook runs in the loop: it failed on an item it had
                    # been handed, which is not handed out then.
                    if transform is not None:
                        delivery.put_back()
                    raise
                finally:
                    out._ready = None
                if delivery.has_last:
                    yield delivery.take_last(transform)
                else:  # a batch without items
                    delivery.commit()
                if delivery.stops(until_up_to_date):
                    return
        except _Interrupted:
            await self._end_interrupted()
        except GeneratorExit:
            if not self._handing_over:
                with async_shield():
                    await self._drop_connection()
            raise

    def _iterate(
        self,
        kind: ConsumerKind | None,
        until_up_to_date: bool = False,
        transform: Callable[[Any], Any] | None = None,
        wrap: Callable[[Any], Any] | None = None,
    ) -> AsyncItems:
        items = AsyncItems(wrap)
        gen = self._items(kind, until_up_to_date, transform, self._consumer, items)
        self._consumer = items._gen = gen
        return items

    # -- public iteration ---------------------------------------------------------------------

    def iter_json(self, decode: Callable[[bytes], Any] | None = None) -> AsyncIterator[Any]:
        """Each message of a JSON stream, decoded by the core, or by ``decode`` from its raw
        bytes when given (e.g. ``orjson.loads`` or a model's ``model_validate_json``)."""
        if decode is None:
            return self._iterate("json")
        return self._iterate("json-raw", transform=decode)

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """The stream's bytes, chunk by chunk (base64 over SSE is decoded)."""
        return self._iterate("bytes")

    def iter_text(self, encoding: str = "utf-8") -> AsyncIterator[str]:
        """The stream's data as text, decoded with ``encoding`` across chunk boundaries (a
        character split between chunks comes out whole). Bytes that are not valid in that
        encoding raise :class:`ParseError`; an unknown encoding raises :class:`UsageError`."""
        self._session.use_text_encoding(encoding)
        return self._iterate("text")

    def iter_events(
        self, decode: Callable[[bytes], Any] | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Items with their offset: messages for JSON streams, byte chunks otherwise."""
        return self._iterate(None, transform=decode, wrap=self._delivery.event)

    async def _read_all(
        self, kind: ConsumerKind, transform: Callable[[Any], Any] | None = None
    ) -> list[Any]:
        """Everything up to the tail. If a later batch fails, what was read before it is kept
        for the next read instead of vanishing with the exception."""
        items: list[Any] = []
        try:
            await async_extend(items, self._iterate(kind, True, transform))
        except BaseException:
            self._delivery.carry(kind, items)
            raise
        return items

    async def read_json(self, decode: Callable[[bytes], Any] | None = None) -> list[Any]:
        """Every message until the reader is up to date (or the stream ended)."""
        if decode is None:
            return await self._read_all("json")
        return await self._read_all("json-raw", decode)

    async def read_bytes(self) -> bytes:
        """All bytes until the reader is up to date (or the stream ended)."""
        return b"".join(await self._read_all("bytes"))

    async def read_text(self, encoding: str = "utf-8") -> str:
        """All text until the reader is up to date (or the stream ended), decoded with
        ``encoding``."""
        self._session.use_text_encoding(encoding)
        return "".join(await self._read_all("text"))

    async def _whole_batches(self, until_up_to_date: bool = True) -> AsyncIterator[Batch]:
        """JSON batches, each counted as handed out once the caller asks for the next (for
        consumers in this package that take a batch at a time: folding state). Ends at the
        end of a closed stream and, with ``until_up_to_date``, when up to date."""
        delivery = self._delivery
        try:
            await self._ensure_open()
            while True:
                batch = await self._next_batch("json")
                if batch is None:
                    return
                delivery.current = batch
                yield batch
                delivery.commit()
                if delivery.stops(until_up_to_date):
                    return
        except _Interrupted:
            await self._end_interrupted()

    def iter_json_batches(self) -> AsyncIterator[JsonBatch]:
        """The messages of a JSON stream a batch at a time, each :class:`JsonBatch` with the
        offset after it: save ``batch.offset`` once per batch to resume behind it.

        A batch is what one answer carried (a long body's parts are put back together, so a
        batch can be as large as ``max_body_bytes``). It counts as handed out when it is
        yielded, and ``res.offset`` is its offset from then on. Answers that change nothing
        (a long-poll that timed out) are left out; one that only moves the offset or the
        flags on is an empty batch. Ends at the end of a closed stream, and when up to date
        if the read is not live."""
        return self._iterate_batches(until_up_to_date=False)

    async def read_json_batches(self) -> list[JsonBatch]:
        """Every batch until the reader is up to date (or the stream ended)."""
        batches: list[JsonBatch] = []
        try:
            await async_extend(batches, self._iterate_batches(until_up_to_date=True))
        except BaseException:
            # Handed out but not returned: the next read hands their messages out again.
            self._delivery.carry("json", [m for batch in batches for m in batch.messages])
            raise
        return batches

    def _iterate_batches(self, until_up_to_date: bool) -> AsyncItems:
        items = AsyncItems(None)
        gen = self._json_batches(until_up_to_date, self._consumer)
        self._consumer = items._gen = gen
        return items

    async def _take_over_from(self, previous: AsyncIterator[Any] | None) -> None:
        """A new iterator goes on where ``previous`` stopped, on the same connection."""
        if previous is None:
            return
        self._handing_over = True
        try:
            await previous.aclose()  # type: ignore[attr-defined]
        finally:
            self._handing_over = False

    async def _json_batches(
        self, until_up_to_date: bool, previous: AsyncIterator[Any] | None
    ) -> AsyncIterator[JsonBatch]:
        await self._take_over_from(previous)
        delivery = self._delivery
        try:
            await self._ensure_open()
            left = delivery.leftover("json")
            if left is not None:
                yield delivery.json_batch(left)
                if delivery.stops(until_up_to_date):
                    return
            while True:
                batch = await self._next_batch("json")
                if batch is None:
                    return
                messages = batch.data
                if batch.partial:
                    # A long body's parts share the offset before it: only the whole body
                    # has an offset after it, so its parts are handed out together.
                    messages = list(messages)
                    try:
                        while batch is not None and batch.partial:
                            batch = await self._next_batch("json")
                            if batch is not None:
                                messages.extend(batch.data)
                    except BaseException:
                        # The session is past these messages: the next read hands them out.
                        delivery.carry("json", messages)
                        raise
                    if batch is None:  # pragma: no cover - a body ends in a whole batch
                        delivery.carry("json", messages)
                        return
                batch.data = None
                before = delivery.position()
                delivery.current = batch
                delivery.commit()
                if messages or delivery.position() != before:
                    yield delivery.json_batch(messages)
                if delivery.stops(until_up_to_date):
                    return
        except _Interrupted:
            await self._end_interrupted()
        except GeneratorExit:
            if not self._handing_over:
                with async_shield():
                    await self._drop_connection()
            raise

    def __aiter__(self) -> AsyncIterator[Any]:
        """Iterating the response itself: messages for JSON streams, byte chunks otherwise."""
        return self._iterate(None)


def astream(
    url: str,
    *,
    offset: str = OFFSET_BEGINNING,
    live: LiveMode = False,
    cursor: str | None = None,
    headers: Headers | None = None,
    params: Headers | None = None,
    client: AsyncClientLike | httpx.AsyncClient | None = None,
    timeout: float | httpx.Timeout | None = None,
    live_read_timeout: float = DEFAULT_LIVE_READ_TIMEOUT,
    retry: RetryPolicy | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    json: bool = False,
    sse_fallback: SseFallback | bool = True,
    verify: bool | str | ssl.SSLContext = True,
    on_error: AsyncOnError | None = None,
) -> AsyncStreamResponse:
    """Read the stream at ``url`` from ``offset``.

    ``live``: ``False`` reads what is there and stops when up to date; ``"long-poll"`` and
    ``"sse"`` then keep tailing; ``True`` picks SSE for JSON and text streams, long-poll for
    binary ones. Iteration ends at the end of a closed stream in every mode. ``headers`` and
    ``params`` values may be callables, evaluated for every request.

    Failed requests and dropped connections are retried under ``retry`` (default: a bounded
    policy; unbounded with a 30 s cap between tries for live reads) from the last offset handed
    out, so no item is lost or repeated. ``on_error(error)`` is called with the typed error
    before each retry decision, transport errors and error statuses alike. It returns ``None``
    for the default decision, a :class:`RetryAction` to retry whatever the error, with new
    headers or params or the same ones (a token refreshed after a 401, a stream not created
    yet; at most ``retry.max_requested_retries`` times in a row), or :data:`STOP` to raise the
    error at once; an exception it raises propagates instead.

    In async code, ``on_error`` may also be an async function, and ``headers`` and ``params``
    values async callables.

    ``sse_fallback``: an SSE reader whose SSE answers keep ending within a second (a proxy
    that buffers or cuts event streams) goes on by long-poll after three of them in a row,
    with a warning in the log and ``stats().sse_fell_back``; an :class:`SseFallback` sets
    other limits, ``False`` keeps to SSE.

    ``json=True`` reads the stream as JSON messages whatever content type the server gives
    it (a server that sends JSON arrays under ``text/plain`` or a type of its own).

    A ``url`` that is not http(s) with a host, or a header that cannot be sent, raises
    :class:`UsageError` here.
    """
    proto.check_url(url)
    proto.check_headers(headers)
    args = response_args(
        url,
        offset=offset,
        live=live,
        cursor=cursor,
        headers=headers,
        params=params,
        timeout=make_timeout(timeout),
        live_read_timeout=live_read_timeout,
        retry=retry,
        max_event_bytes=max_event_bytes,
        max_body_bytes=max_body_bytes,
        json=json,
        sse_fallback=sse_fallback,
    )
    return AsyncStreamResponse(
        dispatcher=dispatcher_for(client, verify), verify=verify, on_error=on_error, **args
    )
