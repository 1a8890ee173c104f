"""The async stream handle, :class:`AsyncDurableStream`: create, append, head, close,
delete, fork and read one stream, for asyncio and trio alike."""

from __future__ import annotations

import datetime as _dt
import ssl
from contextlib import suppress
from types import TracebackType
from typing import Any

import httpx

from .. import _errors as errors
from .. import _protocol as proto
from .._defaults import async_default_dispatcher
from .._dispatch_async import AsyncClientLike, dispatcher_for
from .._flavours import (
    AsyncSignal,
    async_guard,
    async_let_others_run,
    async_signal,
    async_wait_signal,
)
from .._options import (
    DEFAULT_LIVE_READ_TIMEOUT,
    AsyncOnError,
    Headers,
    make_timeout,
    merge,
)
from .._protocol import OFFSET_BEGINNING, HttpRequest
from .._reading._delivery import response_args
from .._reading._response_async import AsyncStreamResponse
from .._reading._session import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_EVENT_BYTES,
)
from .._retry import RetryPolicy
from .._transport import AsyncTransport
from .._values import AppendResult, HeadResult, LiveMode, SseFallback
from ._handle import HandleBase

# A request carrying several appends stays under this many bytes (one larger append goes
# alone).
COALESCE_BYTES = 1 << 20


class _Pending:
    """One append waiting for the request that carries it (appends made while another is in
    flight go out together)."""

    __slots__ = ("body", "lead", "outcome", "signal")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.signal: AsyncSignal | None = None  # made only by an append that must wait
        self.outcome: AppendResult | BaseException | None = None
        self.lead = False  # woken to send what is queued, itself first

    def result(self) -> AppendResult:
        outcome = self.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome


class AsyncDurableStream(HandleBase):
    """A handle on one stream: create, append, read, close, delete and fork it.

    Requests go out over a connection pool shared by everything talking to the same server:
    the ``client``'s (an :class:`AsyncClient`, whose settings apply unless given here), else
    the running event loop's default one. A caller's own ``httpx.AsyncClient`` is used as it
    is. Closing the handle (or leaving its ``async with`` block) ends it; the pool stays.

    Appends made while another is in flight on the same handle are sent together in the
    next request, as the official clients do (``coalesce=False`` sends each alone): each
    returns once that request is answered, with its result (the offset after the whole
    request), or raises its error. Such a request is never resent once it may have been
    stored, so every append it carried fails alike with ``request_sent`` True, or none is
    stored.
    """

    def __init__(
        self,
        url: str,
        *,
        content_type: str | None = None,
        headers: Headers | None = None,
        params: Headers | None = None,
        client: AsyncClientLike | httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
        coalesce: bool = True,
    ) -> None:
        self._configure(url, content_type, headers, params, timeout, retry)
        self._verify = verify
        self._client = client
        self._dispatcher = dispatcher_for(client, verify)
        self._transport: AsyncTransport | None = None  # chosen at the first request
        self._coalesce = coalesce
        self._guard = async_guard()
        self._queue: list[_Pending] = []
        self._sending = False

    async def __aenter__(self) -> AsyncDurableStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """End the handle: it takes no more calls (:class:`HandleClosedError`). The stream
        itself stays open, and so do the pooled connections, shared with others."""
        self._closed = True

    # -- construction -------------------------------------------------------------------------

    @classmethod
    async def create(
        cls,
        url: str,
        *,
        content_type: str = proto.DEFAULT_CONTENT_TYPE,
        ttl_seconds: int | None = None,
        expires_at: _dt.datetime | str | None = None,
        data: Any = None,
        closed: bool = False,
        headers: Headers | None = None,
        params: Headers | None = None,
        client: AsyncClientLike | httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
        coalesce: bool = True,
    ) -> AsyncDurableStream:
        """Create the stream (or accept an identical existing one) and return its handle.

        ``data`` is an optional first message (JSON streams) or first bytes; ``closed=True``
        creates it already closed. A stream with another configuration raises
        :class:`StreamExistsError`. ``handle.created`` says whether the stream is new."""
        handle = cls(
            url,
            content_type=content_type,
            headers=headers,
            params=params,
            client=client,
            timeout=timeout,
            retry=retry,
            verify=verify,
            coalesce=coalesce,
        )
        try:
            req = handle._create_request(ttl_seconds, expires_at, data, closed)
            handle.created = proto.create_result(*await handle._send(req), url=url).created
        except BaseException:
            await handle.aclose()
            raise
        return handle

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        headers: Headers | None = None,
        params: Headers | None = None,
        client: AsyncClientLike | httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
        coalesce: bool = True,
    ) -> AsyncDurableStream:
        """A handle on an existing stream; raises :class:`StreamNotFoundError` if there is none."""
        handle = cls(
            url,
            headers=headers,
            params=params,
            client=client,
            timeout=timeout,
            retry=retry,
            verify=verify,
            coalesce=coalesce,
        )
        try:
            await handle.head()
        except BaseException:
            await handle.aclose()
            raise
        return handle

    # -- operations ---------------------------------------------------------------------------

    async def _send(
        self, req: HttpRequest, resent: list[bool] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        self._check_open()
        dispatcher = self._dispatcher
        if dispatcher is None:
            dispatcher = self._dispatcher = await async_default_dispatcher(self._verify)
        transport = self._transport
        if transport is None:
            transport = self._transport = dispatcher.transport_for(self.url)
        return await dispatcher.send(
            req,
            headers=self._headers,
            params=self._params,
            timeout=self._timeout,
            retry=self._retry,
            transport=transport,
            resent=resent,
        )

    async def head(self) -> HeadResult:
        """The stream's metadata: tail offset, content type, TTL, expiry, closed, ETag."""
        status, headers, _ = await self._send(HttpRequest("HEAD", self.url))
        result = proto.head_result(status, headers, url=self.url)
        self._learn_content_type(result.content_type)
        return result

    async def _know_content_type(self) -> None:
        if self.content_type is None:
            await self.head()

    async def append(self, data: Any, *, seq: str | None = None) -> AppendResult:
        """Append one message (JSON streams: any JSON value, a list stays one message; str or
        bytes are taken as serialized JSON) or raw bytes/str to other streams. Appends made
        while one is in flight go out together in the next request (see the class)."""
        await self._know_content_type()
        if seq is not None or not self._coalesce:
            answer = await self._send(self._append_request(data, seq=seq))
            return proto.append_result(*answer, url=self.url, seq=seq is not None)
        body = self._body(data)
        with self._guard:
            alone = not self._sending
            self._sending = True
        if alone:  # nothing in flight: this one goes now, by itself
            try:
                answer = await self._send(self._batch_request([body]))
            finally:
                with self._guard:
                    self._hand_over()
            return proto.append_result(*answer, url=self.url)
        pending = _Pending(body)
        with self._guard:
            self._queue.append(pending)
            lead = not self._sending
            self._sending = True
            if not lead:
                pending.signal = wake = async_signal()
        if not lead:
            try:
                await async_wait_signal(wake, None)
                if not pending.lead:
                    return pending.result()
                # The appends the last request carried are woken with this one: their callers'
                # next appends join this request instead of waiting out a request of their own.
                await async_let_others_run()
            except BaseException:
                with self._guard:
                    self._withdraw(pending)
                raise
        with self._guard:
            batch = self._take_batch()
        outcome: AppendResult | BaseException
        try:
            answer = await self._send(self._batch_request([p.body for p in batch]))
            outcome = proto.append_result(*answer, url=self.url)
        except Exception as exc:
            outcome = exc
        except BaseException:
            outcome = errors.TransportError(
                "the request carrying this append was interrupted before its answer came; it "
                "may have been stored",
                url=self.url,
            )
            raise
        finally:
            with self._guard:
                self._hand_over()
            for other in batch:
                if other is not pending:
                    other.outcome = outcome
                    assert other.signal is not None
                    other.signal.set()
        pending.outcome = outcome
        return pending.result()

    def _hand_over(self) -> None:
        """A request is done (under the guard): the first append waiting sends what is
        queued, or nothing is in flight any more."""
        if self._queue:
            following = self._queue[0]
            following.lead = True
            if following.signal is not None:
                following.signal.set()
        else:
            self._sending = False

    def _withdraw(self, pending: _Pending) -> None:
        """An append waiting in the queue was cancelled (under the guard): it is not sent, and
        when it was the one to send next, the next in line sends instead."""
        if pending in self._queue:
            self._queue.remove(pending)
            if pending.lead:
                self._hand_over()

    def _take_batch(self) -> list[_Pending]:
        """What the next request carries: the queue's head, up to COALESCE_BYTES."""
        queue = self._queue
        size = len(queue[0].body)
        count = 1
        while count < len(queue) and size + len(queue[count].body) <= COALESCE_BYTES:
            size += len(queue[count].body)
            count += 1
        batch = queue[:count]
        del queue[:count]
        return batch

    async def close_stream(self, data: Any = None) -> AppendResult:
        """Close the stream, optionally appending ``data`` as its final message, atomically.
        Closing a closed stream again (without data) succeeds. ``offset`` is the final offset."""
        if data is not None:
            await self._know_content_type()
        answer = await self._send(self._close_request(data))
        return proto.append_result(*answer, url=self.url, operation="close")

    async def delete(self) -> None:
        """Delete the stream and its data."""
        resent: list[bool] = []
        status, headers, body = await self._send(HttpRequest("DELETE", self.url), resent)
        if status == 404 and resent:
            return  # an earlier attempt deleted it: its answer was lost on the way
        proto.delete_result(status, headers, body, url=self.url)

    async def fork(
        self,
        url: str,
        *,
        offset: str | None = None,
        sub_offset: int | None = None,
        ttl_seconds: int | None = None,
        expires_at: _dt.datetime | str | None = None,
    ) -> AsyncDurableStream:
        """Create a stream at ``url`` that inherits this one's data up to ``offset`` (default:
        the tail), plus ``sub_offset`` messages (JSON) or bytes past it. Returns its handle,
        sharing this handle's HTTP client; ``fork.created`` says whether the fork is new
        (an identical fork was there already: False)."""
        self._check_open()
        fork = AsyncDurableStream(
            url, client=self._client, verify=self._verify, **self._fork_settings()
        )
        fork._dispatcher = self._dispatcher
        req = self._fork_request(url, offset, sub_offset, ttl_seconds, expires_at)
        status, headers, body = await fork._send(req)
        source_status = None
        if status == 409:
            # Also the answer when the source was deleted: only the source can tell which.
            with suppress(errors.DurableStreamError):
                source_status = (await self._send(HttpRequest("HEAD", self.url)))[0]
        result = proto.fork_result(
            status,
            headers,
            body,
            url=url,
            source=self.url,
            offset=offset,
            source_status=source_status,
        )
        fork.created = result.created
        fork._learn_content_type(result.content_type)
        return fork

    def stream(
        self,
        *,
        offset: str = OFFSET_BEGINNING,
        live: LiveMode = False,
        cursor: str | None = None,
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
        live_read_timeout: float = DEFAULT_LIVE_READ_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        json: bool = False,
        sse_fallback: SseFallback | bool = True,
        on_error: AsyncOnError | None = None,
    ) -> AsyncStreamResponse:
        """Read this stream; see :func:`astream`. Uses the handle's connection pool."""
        self._check_open()
        proto.check_headers(headers)
        args = response_args(
            self.url,
            offset=offset,
            live=live,
            cursor=cursor,
            headers=merge(self._headers, headers),
            params=merge(self._params, params),
            timeout=make_timeout(timeout) if timeout is not None else self._timeout,
            live_read_timeout=live_read_timeout,
            retry=retry,
            max_event_bytes=max_event_bytes,
            max_body_bytes=max_body_bytes,
            json=json,
            sse_fallback=sse_fallback,
        )
        return AsyncStreamResponse(
            dispatcher=self._dispatcher, verify=self._verify, on_error=on_error, **args
        )
