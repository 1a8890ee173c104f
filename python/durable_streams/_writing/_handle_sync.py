# Generated from _writing/_handle_async.py by scripts/unasync.py:
# edit that file, then run the script.
"""The sync stream handle, :class:`DurableStream`: create, append, head, close, delete,
fork and read one stream."""

from __future__ import annotations

import datetime as _dt
import ssl
import uuid
from collections import deque
from collections.abc import Mapping
from contextlib import suppress
from types import TracebackType
from typing import Any, TypeVar

import httpx

from .. import _errors as errors
from .. import _protocol as proto
from .. import telemetry
from .._defaults import default_dispatcher
from .._dispatch_sync import ClientLike, dispatcher_for
from .._flavours import (
    Attempt,
    Signal,
    Source,
    decide_sync,
    each,
    guard,
    let_others_join,
    let_others_run,
    signal,
    sleep,
    wait_signal,
)
from .._log import retrying
from .._options import (
    DEFAULT_LIVE_READ_TIMEOUT,
    Headers,
    OnError,
    make_timeout,
    merge,
)
from .._protocol import OFFSET_BEGINNING, HttpRequest
from .._reading._delivery import response_args
from .._reading._response_sync import StreamResponse
from .._reading._session import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_EVENT_BYTES,
)
from .._retry import RetryPolicy, RetryState
from .._transport import Transport
from .._values import AppendResult, HeadResult, LiveMode, ProducerStats, SseFallback
from ._handle import HandleBase, check_own_headers

T = TypeVar("T")

# A request carrying several appends stays under this many bytes (one larger append goes
# alone).
COALESCE_BYTES = 1 << 20


class _Pending:
    """One append waiting for the request that carries it (appends made while another is in
    flight go out together)."""

    __slots__ = ("body", "lead", "outcome", "signal")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.signal: Signal | None = None  # made only by an append that must wait
        self.outcome: AppendResult | BaseException | None = None
        self.lead = False  # woken to send what is queued, itself first

    def result(self) -> AppendResult:
        outcome = self.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome


def _settled(waiting: deque[Any], last: AppendResult | None) -> AppendResult | None:
    """Take the settled acknowledgements off the front of ``waiting`` (batches settle in
    order); the result of the last one stored, else ``last``."""
    while waiting and waiting[0].done():
        try:
            last = waiting.popleft().result()
        except Exception:
            continue
    return last


def _stopped(
    stats: ProducerStats,
    cause: Exception,
    failed: Exception | None,
    source_failed: bool,
    last: AppendResult | None,
    url: str,
) -> errors.AppendStreamError:
    """The error of an ``append_stream`` that stopped, saying how far it got."""
    failures = failed.failures if isinstance(failed, errors.UndeliveredError) else []
    uncertain = sum(f.count for f in failures if f.maybe_delivered)
    written = stats.messages_acknowledged
    what = "the source failed" if source_failed else "writing failed"
    message = (
        f"append_stream stopped: {what} ({type(cause).__name__}: {cause}); the stream holds "
        f"the source's first {written} items ({stats.bytes_acknowledged} bytes)"
        + (f", and the next {uncertain} may or may not be stored" if uncertain else "")
        + "; it was left open"
    )
    return errors.AppendStreamError(
        message,
        written=written,
        written_bytes=stats.bytes_acknowledged,
        uncertain=uncertain,
        source_failed=source_failed,
        url=url,
        offset=None if last is None else last.offset,
    )


class DurableStream(HandleBase):
    """A handle on one stream: create, append, read, close, delete and fork it.

    Requests go out over a connection pool shared by everything talking to the same server:
    the ``client``'s (an :class:`Client`, whose settings apply unless given here), else
    the running event loop's default one. A caller's own ``httpx.Client`` is used as it
    is. Closing the handle (or leaving its ``with`` block) ends it; the pool stays.

    Appends made while another is in flight on the same handle are sent together in the
    next request, as the official clients do (under an event loop an append with nothing in
    flight first lets the loop run once, so that appends started together go in one request;
    ``coalesce=False`` sends each alone): each
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
        client: ClientLike | httpx.Client | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
        coalesce: bool = True,
        on_error: OnError | None = None,
    ) -> None:
        self._configure(url, content_type, headers, params, timeout, retry)
        self._on_error = on_error
        self._verify = verify
        self._client = client
        self._dispatcher = dispatcher_for(client, verify)
        self._transport: Transport | None = None  # chosen at the first request
        self._coalesce = coalesce
        self._guard = guard()
        self._queue: list[_Pending] = []
        self._sending = False

    def __enter__(self) -> DurableStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the handle: it takes no more calls (:class:`HandleClosedError`). The stream
        itself stays open, and so do the pooled connections, shared with others."""
        self._closed = True

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def create(
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
        client: ClientLike | httpx.Client | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
        coalesce: bool = True,
        on_error: OnError | None = None,
    ) -> DurableStream:
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
            on_error=on_error,
        )
        req = handle._create_request(ttl_seconds, expires_at, data, closed)

        def attempt(req: HttpRequest) -> bool:
            return proto.create_result(*handle._send(req), url=url).created

        try:
            handle.created = handle._request(req, attempt)
        except BaseException:
            handle.close()
            raise
        return handle

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        headers: Headers | None = None,
        params: Headers | None = None,
        client: ClientLike | httpx.Client | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
        coalesce: bool = True,
        on_error: OnError | None = None,
    ) -> DurableStream:
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
            on_error=on_error,
        )
        try:
            handle.head()
        except BaseException:
            handle.close()
            raise
        return handle

    # -- operations ---------------------------------------------------------------------------

    def _send(
        self, req: HttpRequest, resent: list[bool] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        self._check_open()
        dispatcher = self._dispatcher
        if dispatcher is None:
            dispatcher = self._dispatcher = default_dispatcher(self._verify)
        transport = self._transport
        if transport is None:
            transport = self._transport = dispatcher.transport_for(self.url)
        return dispatcher.send(
            req,
            headers=self._headers,
            params=self._params,
            timeout=self._timeout,
            retry=self._retry,
            transport=transport,
            resent=resent,
        )

    def _request(self, req: HttpRequest, attempt: Attempt[T]) -> T:
        """``attempt()`` (which sends ``req`` and reads its answer), made again while the
        ``on_error`` hook asks for it and the rules allow (see :class:`RetryAction`)."""
        run: RetryState | None = None
        while True:
            try:
                return attempt(req)
            except errors.DurableStreamError as exc:
                if self._on_error is None or isinstance(exc, errors.UsageError):
                    raise
                run = run or RetryState(self._retry)
                decision = decide_sync(self._on_error, exc)
                again = self._requested_delay(exc, decision, req, run)
                if again is None:
                    raise
                delay, req = again
                failure = exc
            operation = telemetry.operation_of(req)
            retrying(req.method, self.url, failure, run.attempts, delay, operation)
            sleep(delay)

    def head(self) -> HeadResult:
        """The stream's metadata: tail offset, content type, TTL, expiry, closed, ETag."""
        req = HttpRequest("HEAD", self.url)

        def attempt(req: HttpRequest) -> HeadResult:
            status, headers, _ = self._send(req)
            return proto.head_result(status, headers, url=self.url)

        result = self._request(req, attempt)
        self._learn_content_type(result.content_type)
        return result

    def _know_content_type(self) -> None:
        if self.content_type is None:
            self.head()

    def append(
        self, data: Any, *, seq: str | None = None, headers: Mapping[str, str] | None = None
    ) -> AppendResult:
        """Append one message (JSON streams: any JSON value, a list stays one message; str or
        bytes are taken as serialized JSON) or raw bytes/str to other streams. Appends made
        while one is in flight go out together in the next request (see the class).

        ``headers`` are this append's own (an ``If-Match`` a gateway checks, a per-request
        token), over the handle's of the same names; such an append goes in a request of its
        own, never with others."""
        check_own_headers(headers)  # before anything is sent
        self._know_content_type()
        if seq is not None or headers or not self._coalesce:
            req = self._append_request(data, seq=seq, headers=headers)
            return self._append_alone(req, seq is not None)
        body = self._body(data)
        with self._guard:
            alone = not self._sending
            self._sending = True
        if alone:  # nothing in flight: this one goes next, with whatever joins it meanwhile
            try:
                let_others_join()
            except BaseException:
                with self._guard:
                    self._hand_over()
                raise
            with self._guard:
                joined = bool(self._queue)
                if joined:
                    pending = _Pending(body)
                    pending.lead = True
                    self._queue.insert(0, pending)
            if not joined:
                try:
                    return self._append_alone(self._batch_request([body]))
                finally:
                    with self._guard:
                        self._hand_over()
            lead = True
        else:
            pending = _Pending(body)
            with self._guard:
                self._queue.append(pending)
                lead = not self._sending
                self._sending = True
                if not lead:
                    pending.signal = wake = signal()
        if not lead:
            try:
                wait_signal(wake, None)
                if not pending.lead:
                    return pending.result()
                # The appends the last request carried are woken with this one: their callers'
                # next appends join this request instead of waiting out a request of their own.
                let_others_run()
            except BaseException:
                with self._guard:
                    self._withdraw(pending)
                raise
        with self._guard:
            batch = self._take_batch()
        outcome: AppendResult | BaseException
        try:
            outcome = self._append_alone(self._batch_request([p.body for p in batch]))
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

    def _append_alone(self, req: HttpRequest, seq: bool = False) -> AppendResult:
        """Send one append request (which may carry several appends) and read its answer."""

        def attempt(req: HttpRequest) -> AppendResult:
            return proto.append_result(*self._send(req), url=self.url, seq=seq)

        return self._request(req, attempt)

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

    def close_stream(
        self, data: Any = None, *, headers: Mapping[str, str] | None = None
    ) -> AppendResult:
        """Close the stream, optionally appending ``data`` as its final message, atomically.
        Closing a closed stream again (without data) succeeds. ``offset`` is the final offset.
        ``headers``: the request's own, as :meth:`append` takes them."""
        if data is not None:
            self._know_content_type()
        req = self._close_request(data, headers)

        def attempt(req: HttpRequest) -> AppendResult:
            return proto.append_result(*self._send(req), url=self.url, operation="close")

        return self._request(req, attempt)

    def append_stream(
        self,
        source: Source[Any],
        *,
        close: bool = False,
        producer_id: str | None = None,
    ) -> AppendResult:
        """Write every item of ``source`` to the stream as it is produced, in order, then close
        the stream if ``close`` is true; the result of the last write (with ``close``: the
        final offset). One call for what TypeScript's ``appendStream`` and ``writable()`` do.

        ``source`` is an iterable of what :meth:`append` takes:
        messages on a JSON stream, ``bytes`` or ``str`` chunks (UTF-8, nothing added between
        them) on others. Items go out through an :class:`SyncIdempotentProducer`
        (``producer_id``, default a new one per call, with ``auto_claim``): while one request
        is on its way the next items gather into one batch, and a batch resent after a cut
        connection is stored once. If the source raises, or a write fails for good, what was
        taken before is delivered, the stream is left open, and :class:`AppendStreamError`
        says how far it got (its cause is the source's exception or the write's error)."""
        from ._producer_threaded import SyncIdempotentProducer

        self._check_open()
        self._check_source(source)
        items = each(source)
        self._know_content_type()
        producer = SyncIdempotentProducer(
            self, producer_id=producer_id or f"append-stream-{uuid.uuid4().hex}", auto_claim=True
        )
        waiting: deque[Any] = deque()  # acknowledgements not yet settled, in order
        last: AppendResult | None = None
        stopped: Exception | None = None  # what the source raised
        failed: Exception | None = None  # what writing raised
        source_failed = False
        closed: AppendResult | None = None
        try:
            with producer:
                try:
                    while True:
                        try:
                            item = items.__next__()
                        except StopIteration:
                            break
                        except Exception as exc:
                            stopped, source_failed = exc, True
                            break
                        waiting.append(producer.append(item))
                        last = _settled(waiting, last)
                finally:
                    items.close()
                if stopped is None and close:
                    closed = producer.close_stream()
        except Exception as exc:  # a write failed (or the source gave what cannot be written)
            failed = exc
        last = _settled(waiting, last)
        cause = stopped or failed
        if cause is not None:
            stats = producer.stats()
            raise _stopped(stats, cause, failed, source_failed, last, self.url) from cause
        if closed is not None:
            return closed
        if last is None:  # nothing written
            head = self.head()
            return AppendResult(status=200, offset=head.offset, closed=head.closed)
        return last

    def delete(self) -> None:
        """Delete the stream and its data."""
        req = HttpRequest("DELETE", self.url)
        resent: list[bool] = []

        def attempt(req: HttpRequest) -> None:
            status, headers, body = self._send(req, resent)
            if status == 404 and resent:
                return  # an earlier attempt deleted it: its answer was lost on the way
            proto.delete_result(status, headers, body, url=self.url)

        self._request(req, attempt)

    def fork(
        self,
        url: str,
        *,
        offset: str | None = None,
        sub_offset: int | None = None,
        ttl_seconds: int | None = None,
        expires_at: _dt.datetime | str | None = None,
    ) -> DurableStream:
        """Create a stream at ``url`` that inherits this one's data up to ``offset`` (default:
        the tail), plus ``sub_offset`` messages (JSON) or bytes past it. Returns its handle,
        sharing this handle's HTTP client; ``fork.created`` says whether the fork is new
        (an identical fork was there already: False)."""
        self._check_open()
        fork = DurableStream(url, client=self._client, verify=self._verify, **self._fork_settings())
        fork._dispatcher = self._dispatcher
        req = self._fork_request(url, offset, sub_offset, ttl_seconds, expires_at)

        def attempt(req: HttpRequest) -> proto.CreateResult:
            status, headers, body = fork._send(req)
            source_status = None
            if status == 409:
                # Also the answer when the source was deleted: only the source can tell which.
                with suppress(errors.DurableStreamError):
                    source_status = (self._send(HttpRequest("HEAD", self.url)))[0]
            return proto.fork_result(
                status,
                headers,
                body,
                url=url,
                source=self.url,
                offset=offset,
                source_status=source_status,
            )

        result = fork._request(req, attempt)
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
        on_error: OnError | None = None,
    ) -> StreamResponse:
        """Read this stream; see :func:`stream`. Uses the handle's connection pool."""
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
        on_error = self._on_error if on_error is None else on_error
        return StreamResponse(
            dispatcher=self._dispatcher, verify=self._verify, on_error=on_error, **args
        )
