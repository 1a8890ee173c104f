"""Live materialized views of state streams: :class:`AsyncStateView` keeps a :class:`State` up
to date while tailing its stream (:class:`StateView`, in ``_view_threaded``, runs it for
threaded code).

What a view guarantees: it applies the stream's messages in stream order, a whole batch at a
time under its lock, so lookups (from any thread) see the state at a batch boundary and
``offset`` is the boundary they see; ``wait_for`` returns once the batch ending at or past
its offset is in. A message that is not a valid change or control stops the view with
:class:`StateMessageError` (``on_malformed="skip"`` counts it instead), which ``wait_for``,
``wait_current`` and the changes iterators then raise; so do the end of a closed stream (for
offsets past it) and closing the view. Network failures are retried as by every live reader,
resuming after the last batch applied, so nothing is applied twice or skipped."""

from __future__ import annotations

import collections
import contextlib
import inspect
import math
import ssl
import threading
from collections.abc import AsyncGenerator, Callable, Mapping
from types import TracebackType
from typing import Any, Literal, TypedDict, TypeVar, cast

import anyio
import anyio.abc
import httpx

from .. import _errors as errors
from .. import _protocol as proto
from .._options import Headers, make_timeout
from .._protocol import OFFSET_BEGINNING
from .._reading._response_async import astream
from .._reading._session import Batch
from .._retry import RetryPolicy
from .._values import LiveMode
from .._writing._handle_async import AsyncDurableStream
from ._protocol import Change, Control, State
from ._schema import StateSchema

T = TypeVar("T")


Applied = Change | Control


OnChange = Callable[[Applied], Any]


# How far a subscriber of changes() may fall behind before it is cut off (with an error when
# it reaches the cut): the view itself never waits for a subscriber.
CHANGES_BUFFER = 65_536
# How long wait_for_txid waits by default: a txid that never comes (a write that failed, a
# typo) must not hang its caller.
TXID_TIMEOUT = 30.0


class ViewOptions(TypedDict):
    """The options of a view, passed on as they were given (to the threaded view's async one)."""

    start: State | None
    offset: str | None
    live: LiveMode
    on_change: OnChange | None
    on_malformed: Literal["raise", "skip"]
    schema: StateSchema | Mapping[str, type] | None
    headers: Headers | None
    params: Headers | None
    timeout: float | httpx.Timeout | None
    retry: RetryPolicy | None
    verify: bool | str | ssl.SSLContext


class AsyncStateView:
    """The state of the stream at ``url``, kept up to date while tailing it::

        async with AsyncStateView(url) as view:
            await view.wait_current()          # caught up with the stream once
            view.get("user", "1")
            async for change in view.changes():  # each message applied from now on
                ...

    ``start`` and ``offset`` begin from a state already loaded (a compacted snapshot:
    ``offset=start.snapshot_covers``). ``on_change(message)`` (plain or async) is called
    after each message is applied. ``live`` is the live mode of the tail (``True``: SSE for
    JSON streams). ``schema`` (:class:`StateSchema`) checks each value of the types it names
    and holds it as an instance of its model; a value that does not fit stops the view with
    :class:`StateValueError` (counted instead under ``on_malformed="skip"``).

    Entering the view checks that the stream exists with one HEAD request, bounded by
    ``timeout`` and retried only under an explicit ``retry``: a missing stream or an
    unreachable server fails it at once. The tail then retries as every live reader does."""

    def __init__(
        self,
        url: str,
        *,
        start: State | None = None,
        offset: str | None = None,
        live: LiveMode = True,
        on_change: OnChange | None = None,
        on_malformed: Literal["raise", "skip"] = "raise",
        schema: StateSchema | Mapping[str, type] | None = None,
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
    ) -> None:
        if live is False:
            raise ValueError("a view tails its stream: live must be True, 'sse' or 'long-poll'")
        self.url = proto.check_url(url)
        proto.check_headers(headers)
        self.state = start if start is not None else State(on_malformed=on_malformed, schema=schema)
        self._from = offset or (start.offset if start is not None else None) or OFFSET_BEGINNING
        self._live = live
        self._on_change = on_change
        self._handle_options: dict[str, Any] = {
            "headers": headers,
            "params": params,
            "timeout": make_timeout(timeout),
            "retry": retry,
            "verify": verify,
        }
        self._read_options = dict(self._handle_options)
        self._opening_options = {**self._handle_options, "retry": retry or RetryPolicy.never()}
        # Guards the state against readers on other threads (StateView) mid-batch.
        self.lock = threading.Lock()
        if offset is not None:  # a stream other than start's: its offset means nothing here
            self.state.offset = offset
        self._moved = anyio.Event()
        self._current = False
        self._ended = False
        self._closed = False
        self._failure: BaseException | None = None
        self._subscribers: list[_Subscriber] = []
        self._group: anyio.abc.TaskGroup | None = None

    def __repr__(self) -> str:
        return f"<AsyncStateView {errors.redact_url(self.url)} at {self.offset}>"

    # -- what the view holds ----------------------------------------------------------------

    @property
    def offset(self) -> str | None:
        """Where the stream stands after the last batch applied in full."""
        return self.state.offset

    @property
    def current(self) -> bool:
        """Whether the view has caught up with the stream (it may have moved on since)."""
        return self._current

    def get(self, type: str, key: str, default: Any = None) -> Any:
        with self.lock:
            return self.state.get(type, key, default)

    def items(self, type: str) -> dict[str, Any]:
        """A copy of the entities of ``type``, by key."""
        with self.lock:
            return dict(self.state.types.get(type, {}))

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A copy of the whole state, ``{type: {key: value}}``."""
        with self.lock:
            return self.state.snapshot()

    # -- the tail ---------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncStateView:
        # A missing stream fails here, not at the first wait.
        async with AsyncDurableStream(self.url, **self._opening_options) as handle:
            await handle.head()
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        group.start_soon(self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop tailing; the state stays as it is, waits and changes iterators end. Call it
        from the task that entered the view (its task group needs that)."""
        group, self._group = self._group, None
        if group is None:
            return
        self._closed = True
        group.cancel_scope.cancel()
        await group.__aexit__(None, None, None)
        self._end_subscribers()
        self._notify()

    async def _run(self) -> None:
        try:
            # Catch up first (a read that ends up to date), then tail from where it ended.
            offset = await self._read(self._from, False)
            self._current = True
            self._notify()
            if not self._ended:
                await self._read(offset, self._live)
        except Exception as exc:  # the view stops; waiters and subscribers see why
            self._failure = exc
        finally:
            self._end_subscribers()
            self._notify()

    async def _read(self, offset: str, live: LiveMode) -> str:
        state = self.state
        async with (
            astream(self.url, offset=offset, live=live, **self._read_options) as res,
            # Closed here when a batch fails to apply, not left to the garbage collector.
            contextlib.aclosing(
                cast(
                    AsyncGenerator[Batch, None],
                    res._whole_batches(until_up_to_date=live is False),
                )
            ) as batches,
        ):
            async for batch in batches:
                if self._on_change is None and not self._subscribers:
                    with self.lock:
                        state.fold_batch(batch.data, batch.offset)
                else:
                    with self.lock:
                        applied = state.apply_batch(batch.data, batch.offset)
                    for message in applied:
                        await self._announce(message)
                self._notify()
            end = res.offset
            self._ended = res.stream_closed
        with self.lock:
            state.offset = end
        self._notify()
        return end

    async def _announce(self, applied: Applied) -> None:
        if self._on_change is not None:
            result = self._on_change(applied)
            if inspect.isawaitable(result):
                await result
        for subscriber in list(self._subscribers):
            if not subscriber.offer(applied):
                self._subscribers.remove(subscriber)

    def _end_subscribers(self) -> None:
        for subscriber in self._subscribers:
            subscriber.end()
        self._subscribers.clear()

    def _notify(self) -> None:
        moved, self._moved = self._moved, anyio.Event()
        moved.set()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed or self._group is None:
            raise errors.DurableStreamError("the view is closed", url=self.url)

    # -- waiting ----------------------------------------------------------------------------

    async def _wait(
        self,
        reached: Callable[[], bool],
        timeout: float | None,
        what: str,
        late: Callable[[], errors.DeadlineExceededError] | None = None,
    ) -> None:
        with anyio.move_on_after(math.inf if timeout is None else timeout):
            while True:
                if reached():
                    return
                self._check()
                if self._ended and self._current:
                    raise errors.StreamClosedError(
                        f"the stream is closed at {self.offset}: the view cannot {what}",
                        url=self.url,
                        final_offset=self.offset,
                    )
                await self._moved.wait()
        if late is not None:
            raise late()
        raise errors.DeadlineExceededError(f"the view did not {what} within {timeout} s")

    async def wait_current(self, timeout: float | None = None) -> None:
        """Until the view has caught up with the stream (once)."""
        await self._wait(lambda: self._current, timeout, "catch up")

    async def wait_for(self, offset: str, timeout: float | None = None) -> None:
        """Until the view reflects the stream up to ``offset`` (e.g. an append's result)."""
        await self._wait(
            lambda: self.state.offset is not None and self.state.offset >= offset,
            timeout,
            f"reach offset {offset}",
        )

    async def wait_for_txid(self, txid: str, timeout: float | None = TXID_TIMEOUT) -> None:
        """Until the view has applied a change carrying ``txid`` (a
        :meth:`AsyncStateWriter.transaction`'s id, written by anyone): that transaction's
        changes up to there are then visible. Txids the view has seen already, its ``start``
        included, return at once. Past ``timeout`` seconds (default 30; ``None``: no limit)
        it raises :class:`TxidTimeoutError`; at the end of a closed stream that lacks it,
        :class:`StreamClosedError`."""
        if not isinstance(txid, str) or not txid:
            raise ValueError(f"txid is a non-empty string, not {txid!r}")
        await self._wait(
            lambda: txid in self.state.txids,
            timeout,
            f"see transaction {txid!r}",
            lambda: errors.TxidTimeoutError(
                f"the view did not see transaction {txid!r} within {timeout} s (it stands at "
                f"{self.offset})",
                txid=txid,
                url=self.url,
                offset=self.offset,
            ),
        )

    def changes(self, max_behind: int = CHANGES_BUFFER) -> _Changes:
        """Every message applied from now on, in order. The view does not wait for its
        subscribers: one that falls more than ``max_behind`` messages behind is cut off, and
        raises :class:`DurableStreamError` once it has taken what it had (nothing goes
        missing unannounced). The iterator ends with the view (raising what stopped it, if
        anything); close it, or drop it, to unsubscribe."""
        self._check()
        subscriber = _Subscriber(max_behind)
        self._subscribers.append(subscriber)
        return _Changes(subscriber, self)


class _Subscriber:
    """A subscriber's queue: the view puts in, never waiting; the subscriber takes out."""

    __slots__ = ("__weakref__", "_cut", "_ended", "_items", "_limit", "_ready")

    def __init__(self, limit: int) -> None:
        self._items: collections.deque[Applied] = collections.deque()
        self._limit = limit
        self._ready = anyio.Event()
        self._ended = False
        self._cut = False

    def offer(self, item: Applied) -> bool:
        """Queues ``item``; False when the subscriber is gone or was cut off just now."""
        if self._ended:
            return False
        if len(self._items) >= self._limit:
            self._cut = True
            self.end()
            return False
        self._items.append(item)
        self._ready.set()
        return True

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    async def take(self) -> Applied | None:
        while not self._items:
            if self._ended:
                return None
            self._ready = anyio.Event()
            await self._ready.wait()
        return self._items.popleft()


class _Changes:
    __slots__ = ("_subscriber", "_view")

    def __init__(self, subscriber: _Subscriber, view: AsyncStateView) -> None:
        self._subscriber = subscriber
        self._view = view

    def __aiter__(self) -> _Changes:
        return self

    async def __anext__(self) -> Applied:
        item = await self._subscriber.take()
        if item is not None:
            return item
        if self._subscriber._cut:
            raise errors.DurableStreamError(
                "this changes iterator fell too far behind the view and was cut off; "
                "take a new one (and the view's state) to go on",
                url=self._view.url,
            )
        failure = self._view._failure
        if failure is not None:
            raise failure
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._subscriber.end()
