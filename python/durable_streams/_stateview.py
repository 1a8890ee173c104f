"""Live materialized views of state streams: :class:`AsyncStateView` keeps a :class:`State` up
to date while tailing its stream; :class:`StateView` is the same for threaded code (the async
view on a background thread with an event loop of its own, as the sync producer does).

What a view guarantees: it applies the stream's messages in stream order, one whole batch at
a time as far as readers can see (``offset`` moves, and ``wait_for`` returns, only once every
message of the batch ending there is applied); lookups see the state as of some batch
boundary or the message being applied; a message that is not a valid change or control stops
the view with :class:`StateMessageError` (``on_malformed="skip"`` counts it instead), which
``wait_for``, ``wait_current`` and the changes iterator then raise. Network failures are
retried as by every live reader, resuming after the last batch applied, so nothing is applied
twice or skipped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import math
import operator
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Literal, TypeVar

import anyio
import anyio.abc
import httpx

from . import _errors as errors
from ._async import astream
from ._protocol import OFFSET_BEGINNING, LiveMode
from ._retry import RetryPolicy
from ._shared import Headers
from ._statecore import Change, Control, State

__all__ = ["AsyncStateView", "StateView"]

T = TypeVar("T")
Applied = Change | Control
OnChange = Callable[[Applied], Any]
# A subscriber of changes() that falls this far behind holds the tail back until it catches up.
CHANGES_BUFFER = 4096


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
    JSON streams)."""

    def __init__(
        self,
        url: str,
        *,
        start: State | None = None,
        offset: str | None = None,
        live: LiveMode = True,
        on_change: OnChange | None = None,
        on_malformed: Literal["raise", "skip"] = "raise",
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
    ) -> None:
        if live is False:
            raise ValueError("a view tails its stream: live must be True, 'sse' or 'long-poll'")
        self.url = url
        self.state = start if start is not None else State(on_malformed=on_malformed)
        self._from = offset or (start.offset if start is not None else None) or OFFSET_BEGINNING
        self._live = live
        self._on_change = on_change
        self._read_options: dict[str, Any] = {
            "headers": headers,
            "params": params,
            "timeout": timeout,
            "retry": retry,
            "verify": verify,
        }
        # Guards the state against readers on other threads (StateView) mid-batch.
        self.lock = threading.Lock()
        self._moved = anyio.Event()
        self._current = False
        self._failure: BaseException | None = None
        self._subscribers: list[anyio.abc.ObjectSendStream[Applied]] = []
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
        """Stop tailing; the state stays as it is."""
        group, self._group = self._group, None
        if group is None:
            return
        group.cancel_scope.cancel()
        await group.__aexit__(None, None, None)
        for subscriber in self._subscribers:
            await subscriber.aclose()
        self._subscribers.clear()

    async def _run(self) -> None:
        try:
            # Catch up first (a read that ends up to date), then tail from where it ended.
            offset = await self._read(self._from, False)
            self._current = True
            self._notify()
            await self._read(offset, self._live)
        except Exception as exc:  # the view stops; waiters and subscribers see why
            self._failure = exc
            self._notify()
            for subscriber in self._subscribers:
                await subscriber.aclose()

    async def _read(self, offset: str, live: LiveMode) -> str:
        state = self.state
        async with astream(self.url, offset=offset, live=live, **self._read_options) as res:
            delivery = res._delivery
            async for event in res.iter_events():
                with self.lock:
                    applied = state.apply(event.data, event.offset)
                if applied is not None:
                    await self._announce(applied)
                # The batch is in once its own iterator is spent: only then does it show.
                if operator.length_hint(delivery.rest) == 0:
                    with self.lock:
                        state.offset = event.offset
                    self._notify()
            end = res.offset
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
            try:
                await subscriber.send(applied)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._subscribers.remove(subscriber)

    def _notify(self) -> None:
        moved, self._moved = self._moved, anyio.Event()
        moved.set()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._group is None:
            raise errors.DurableStreamError("the view is closed", url=self.url)

    # -- waiting ----------------------------------------------------------------------------

    async def _wait(self, reached: Callable[[], bool], timeout: float | None, what: str) -> None:
        with anyio.move_on_after(math.inf if timeout is None else timeout):
            while True:
                self._check()
                if reached():
                    return
                await self._moved.wait()
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

    def changes(self) -> AsyncIterator[Applied]:
        """Every message applied from now on, in order. A subscriber that falls far behind
        holds the tail back (nothing is dropped); close the iterator to unsubscribe."""
        self._check()
        send, receive = anyio.create_memory_object_stream[Applied](CHANGES_BUFFER)
        self._subscribers.append(send)
        return _Changes(receive, self)


class _Changes:
    __slots__ = ("_receive", "_view")

    def __init__(
        self, receive: anyio.abc.ObjectReceiveStream[Applied], view: AsyncStateView
    ) -> None:
        self._receive = receive
        self._view = view

    def __aiter__(self) -> _Changes:
        return self

    async def __anext__(self) -> Applied:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            failure = self._view._failure
            if failure is not None:
                raise failure from None
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._receive.aclose()


class StateView:
    """:class:`AsyncStateView` for threaded code: the tail runs on a background thread with
    an event loop of its own, lookups are safe from any thread, and ``wait_for`` and
    ``wait_current`` block (with a timeout). ``on_change`` runs on the background thread.
    Use it as a context manager, or call :meth:`close`."""

    def __init__(self, url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="durable-streams-state-view", daemon=True
        )
        self._thread.start()
        self._closed = False
        opened: concurrent.futures.Future[AsyncStateView] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        # One task holds the view from start to close: its task group must be left by the
        # task that entered it.
        self._host = asyncio.run_coroutine_threadsafe(self._hold(url, options, opened), self._loop)
        try:
            self._view = opened.result()
        except BaseException:
            self._stop_loop()
            raise

    async def _hold(
        self,
        url: str,
        options: dict[str, Any],
        opened: concurrent.futures.Future[AsyncStateView],
    ) -> None:
        self._stop = asyncio.Event()
        try:
            view = AsyncStateView(url, **options)
        except BaseException as exc:
            opened.set_exception(exc)
            return
        async with view:
            opened.set_result(view)
            await self._stop.wait()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise errors.DeadlineExceededError(f"no answer within {timeout} s") from None

    def __repr__(self) -> str:
        return repr(self._view).replace("AsyncStateView", "StateView", 1)

    @property
    def url(self) -> str:
        return self._view.url

    @property
    def state(self) -> State:
        return self._view.state

    @property
    def offset(self) -> str | None:
        return self._view.offset

    @property
    def current(self) -> bool:
        return self._view.current

    def get(self, type: str, key: str, default: Any = None) -> Any:
        return self._view.get(type, key, default)

    def items(self, type: str) -> dict[str, Any]:
        return self._view.items(type)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return self._view.snapshot()

    def wait_current(self, timeout: float | None = None) -> None:
        self._call(self._view.wait_current(timeout), None)

    def wait_for(self, offset: str, timeout: float | None = None) -> None:
        self._call(self._view.wait_for(offset, timeout), None)

    def changes(self, timeout: float | None = None) -> Iterator[Applied]:
        """Every message applied from now on (the subscription starts here, not at the
        first ``next``); each wait for the next is bounded by ``timeout``
        (``DeadlineExceededError`` past it)."""
        return self._drain(self._call(self._subscribe(), None), timeout)

    def _drain(self, changes: _Changes, timeout: float | None) -> Iterator[Applied]:
        try:
            while True:
                try:
                    yield self._call(changes.__anext__(), timeout)
                except StopAsyncIteration:
                    return
        finally:
            if not self._closed:
                self._call(changes.aclose(), None)

    async def _subscribe(self) -> _Changes:
        changes = self._view.changes()
        assert isinstance(changes, _Changes)
        return changes

    def close(self) -> None:
        """Stop tailing and the background thread; the state stays readable."""
        if self._closed:
            return
        self._closed = True
        stop = self._stop
        try:
            if stop is not None:
                self._loop.call_soon_threadsafe(stop.set)
            self._host.result(30.0)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10.0)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> StateView:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
