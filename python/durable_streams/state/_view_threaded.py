""":class:`StateView`: the live view of a state stream for threaded code, the
:class:`AsyncStateView` run on a loop thread (:class:`LoopThread`), with the same guarantees;
:class:`SyncChanges` iterates its changes from a thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, Literal

import httpx

from .. import _errors as errors
from .._loop_thread import LoopThread
from .._options import Headers
from .._retry import RetryPolicy
from .._values import LiveMode
from ._protocol import State
from ._schema import StateSchema
from ._view_async import (
    TXID_TIMEOUT,
    Applied,
    AsyncStateView,
    OnChange,
    T,
    ViewOptions,
    _Changes,
)

# How long closing a view waits for its background thread once the tail has stopped.
_THREAD_JOIN_TIMEOUT = 10.0


class StateView:
    """:class:`AsyncStateView` for threaded code: the tail runs on a background thread with
    an event loop of its own, lookups are safe from any thread, and ``wait_for`` and
    ``wait_current`` block (with a timeout). ``on_change`` runs on the background thread.
    Use it as a context manager, or call :meth:`close`."""

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
        """The same options as :class:`AsyncStateView`."""
        options = ViewOptions(
            start=start,
            offset=offset,
            live=live,
            on_change=on_change,
            on_malformed=on_malformed,
            schema=schema,
            headers=headers,
            params=params,
            timeout=timeout,
            retry=retry,
            verify=verify,
        )
        self._runner = LoopThread("durable-streams-state-view")
        self._closed = False
        opened: concurrent.futures.Future[AsyncStateView] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        # One task holds the view from start to close: its task group must be left by the
        # task that entered it.
        self._host = self._runner.submit(self._hold(url, options, opened))
        try:
            self._view = opened.result()
        except BaseException:
            self._runner.stop(_THREAD_JOIN_TIMEOUT)
            raise

    async def _hold(
        self,
        url: str,
        options: ViewOptions,
        opened: concurrent.futures.Future[AsyncStateView],
    ) -> None:
        self._stop = asyncio.Event()
        try:
            async with AsyncStateView(url, **options) as view:
                opened.set_result(view)
                await self._stop.wait()
        except BaseException as exc:
            if not opened.done():  # failed to open: the caller raises it
                opened.set_exception(exc)
                return
            raise

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        if self._closed:
            coro.close()
            raise errors.DurableStreamError("the view is closed", url=self._view.url)
        return self._runner.call(
            coro,
            timeout,
            lambda: errors.DeadlineExceededError(f"no answer within {timeout} s", url=self.url),
        )

    def __repr__(self) -> str:
        return f"<StateView {errors.redact_url(self.url)} at {self.offset}>"

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

    def wait_for_txid(self, txid: str, timeout: float | None = TXID_TIMEOUT) -> None:
        """Until the view has applied a change carrying ``txid``
        (:meth:`AsyncStateView.wait_for_txid`); :class:`TxidTimeoutError` past ``timeout``."""
        self._call(self._view.wait_for_txid(txid, timeout), None)

    def changes(self, timeout: float | None = None) -> SyncChanges:
        """Every message applied from now on (the subscription starts here); each wait for
        the next is bounded by ``timeout`` (:class:`DeadlineExceededError` past it, after
        which the iterator goes on). Close it (or use it in a ``with``) to unsubscribe."""
        return SyncChanges(self, self._call(self._subscribe(), None), timeout)

    async def _subscribe(self) -> _Changes:
        return self._view.changes()

    def close(self) -> None:
        """Stop tailing and the background thread; the state stays readable (not from
        ``on_change``, which runs on that thread)."""
        if self._closed:
            return
        self._closed = True
        stop = self._stop
        try:
            if stop is not None:
                self._runner.call_soon(stop.set)
            self._host.result(30.0)
        finally:
            self._runner.stop(_THREAD_JOIN_TIMEOUT)

    def __enter__(self) -> StateView:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncChanges:
    """The changes of a :class:`StateView`, as a blocking iterator that outlives timeouts."""

    def __init__(self, view: StateView, changes: _Changes, timeout: float | None) -> None:
        self._view = view
        self._changes = changes
        self._timeout = timeout
        self._closed = False

    def __iter__(self) -> SyncChanges:
        return self

    def __next__(self) -> Applied:
        if self._closed:
            raise StopIteration
        try:
            return self._view._call(self._changes.__anext__(), self._timeout)
        except StopAsyncIteration:
            self._closed = True
            raise StopIteration from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            # The subscriber belongs to the view's thread.
            self._view._runner.call_soon(self._changes._subscriber.end)

    def __enter__(self) -> SyncChanges:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
