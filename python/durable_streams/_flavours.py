"""The few things async and sync code do differently, each under a pair of names that
``scripts/unasync.py`` maps onto each other when it generates an ``X_sync.py`` from its
``X_async.py``: ``async_x`` becomes ``x`` and ``AsyncX`` becomes ``X``. Everything else is
written once, in the async file."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any, Protocol, TypeAlias, TypeVar

import anyio
import anyio.lowlevel

from . import _errors as errors
from ._options import AsyncOnError, OnError
from ._protocol import HttpRequest, check_header
from ._values import ErrorDecision

__all__ = [
    "AsyncAttempt",
    "AsyncGuard",
    "AsyncItems",
    "AsyncSignal",
    "AsyncSource",
    "Attempt",
    "Beat",
    "Guard",
    "Items",
    "Signal",
    "Source",
    "async_call",
    "async_chunks",
    "async_closer",
    "async_each",
    "async_extend",
    "async_guard",
    "async_heartbeat",
    "async_let_others_join",
    "async_running",
    "async_shield",
    "async_signal",
    "async_sleep",
    "async_wait_signal",
    "call",
    "chunks",
    "closer",
    "each",
    "extend",
    "guard",
    "heartbeat",
    "let_others_join",
    "running",
    "shield",
    "signal",
    "sleep",
    "wait_signal",
]


class _Unguarded:
    """Async code changes shared bookkeeping between awaits, on one thread: nothing to lock."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_UNGUARDED = _Unguarded()

AsyncGuard = _Unguarded
Guard: TypeAlias = "threading.Lock"
T = TypeVar("T")

# One try of an operation sending a request, made again (maybe with other headers) when an
# on_error hook asks for it.
AsyncAttempt: TypeAlias = Callable[[HttpRequest], Awaitable[T]]
Attempt: TypeAlias = Callable[[HttpRequest], T]


class AsyncSignal:
    """A wake-up one task waits for and another gives (once; waiting again after it came
    returns at once). On asyncio a bare future of the running loop: an ``anyio.Event`` costs
    each of many coalesced appends a backend lookup and an ``asyncio.Event`` of its own."""

    __slots__ = ("_event", "_future", "_set")

    def __init__(self) -> None:
        self._set = False
        self._future: asyncio.Future[None] | None = None
        self._event: anyio.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        if self._set:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: trio
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
            return
        future = self._future
        if future is None or future.done():  # the first wait, or an earlier one gave up
            future = self._future = loop.create_future()
        await future


Signal = threading.Event


def async_guard() -> AsyncGuard:
    """What keeps bookkeeping shared by many callers consistent: nothing in async code."""
    return _UNGUARDED


def guard() -> Guard:
    """A lock: sync code may share the bookkeeping between threads."""
    return threading.Lock()


def async_signal() -> AsyncSignal:
    return AsyncSignal()


def signal() -> Signal:
    return threading.Event()


async def async_wait_signal(signal: AsyncSignal, timeout: float | None) -> bool:
    """Wait for ``signal`` at most ``timeout`` seconds; whether it came."""
    if timeout is None:  # a cancel scope costs each of many coalesced appends a few µs
        await signal.wait()
        return True
    with anyio.move_on_after(timeout):
        await signal.wait()
        return True
    return False


def wait_signal(signal: Signal, timeout: float | None) -> bool:
    return signal.wait(timeout)


async def async_chunks(source: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The chunks of a body sent as it is produced: from an iterable or an async one."""
    if isinstance(source, AsyncIterable):
        async for chunk in source:
            yield chunk
    else:
        for chunk in source:
            yield chunk


def chunks(source: Iterable[bytes] | AsyncIterable[bytes]) -> Iterator[bytes]:
    if isinstance(source, AsyncIterable):
        raise TypeError("an async iterable of chunks needs the async API")
    yield from source


# What a source piped into a stream may be: async code takes an iterable or an async one.
AsyncSource: TypeAlias = "Iterable[T] | AsyncIterable[T]"
Source: TypeAlias = "Iterable[T]"


def async_each(source: AsyncSource[T]) -> AsyncGenerator[T, None]:
    """The items of ``source``, an iterable or an async one, as one async generator."""

    async def items() -> AsyncGenerator[T, None]:
        if isinstance(source, AsyncIterable):
            async for item in source:
                yield item
        else:
            for item in source:
                yield item

    return items()


def each(source: Source[T]) -> Generator[T, None, None]:
    if isinstance(source, AsyncIterable):
        raise TypeError("an async iterable needs the async API (AsyncDurableStream)")

    def items() -> Generator[T, None, None]:
        yield from source

    return items()


async def async_let_others_run() -> None:
    """Let the tasks woken with this one run before it goes on."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio
        await anyio.lowlevel.checkpoint()
        return
    # What anyio's checkpoint does on asyncio, without its backend lookup each time (and
    # the import of that backend, 40 ms, inside an application's first burst of appends).
    await asyncio.sleep(0)


async def async_let_others_join() -> None:
    """One turn of the event loop before a request goes, so that appends made at the same
    time (tasks started together) join it rather than wait for a request of their own."""
    await async_let_others_run()


def let_others_join() -> None:
    """Nothing: a thread's lone append goes at once (threads that append meanwhile join the
    next request)."""


def let_others_run() -> None:
    """Let the threads woken with this one run before it goes on (the interpreter lock)."""
    time.sleep(0)


def async_running(gen: AsyncIterator[Any] | None) -> bool:
    """Whether ``gen`` (an async generator) is running now: awaiting in another task."""
    return bool(getattr(gen, "ag_running", False))


def running(gen: Iterator[Any] | None) -> bool:
    """Whether ``gen`` (a generator) is running now: in another thread."""
    return bool(getattr(gen, "gi_running", False))


async def async_sleep(seconds: float) -> None:
    await anyio.sleep(seconds)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def async_shield(seconds: float | None = None) -> anyio.CancelScope:
    """A scope that cancellation from outside does not reach, so cleanup (closing a
    connection, releasing a wake) finishes even when the block around it is cancelled; with
    ``seconds``, it is cancelled itself after that long."""
    scope = anyio.CancelScope(shield=True)
    if seconds is not None:
        scope.deadline = anyio.current_time() + seconds
    return scope


def shield(seconds: float | None = None) -> contextlib.nullcontext[None]:
    """Sync code is not cancelled from outside: nothing to shield (requests have timeouts)."""
    return contextlib.nullcontext()


class _AsyncClosable(Protocol):
    async def aclose(self) -> None: ...


class _Closable(Protocol):
    def close(self) -> None: ...


def async_closer(owner: object, held: _AsyncClosable) -> Callable[[], Awaitable[None]]:
    """What releases ``held`` when ``owner`` is closed. Async code cannot also release it when
    ``owner`` is collected unclosed: closing needs the event loop, which a collector lacks."""
    return held.aclose


def closer(owner: object, held: _Closable) -> Callable[[], None]:
    """What releases ``held`` when ``owner`` is closed, or else when it is garbage collected.
    The finalizer holds ``held``, never ``owner``, so it does not keep ``owner`` alive."""
    return weakref.finalize(owner, held.close)


async def async_extend(items: list[Any], source: AsyncIterator[Any]) -> None:
    async for item in source:
        items.append(item)


def extend(items: list[Any], source: Iterable[Any]) -> None:
    # Items appended before ``source`` fails stay in ``items``: read_* keeps them.
    items.extend(source)


class AsyncItems:
    """The iterator handed to callers. Not an async generator itself, so one a caller drops
    half-way is no unfinished generator for the event loop to warn about: the response owns
    the generator underneath and closes it.

    While the generator hands out a batch, ``_ready`` is the batch's own iterator and items
    come straight from it: an async generator costs a frame resumption and an awaitable per
    item, which a bulk read pays per message. Both take from the one iterator, so an item
    counts as handed out once, whichever gave it."""

    __slots__ = ("_gen", "_ready", "_wrap")

    def __init__(self, wrap: Callable[[Any], Any] | None) -> None:
        self._gen: AsyncIterator[Any]  # set by the response, which makes the generator for it
        self._ready: Iterator[Any] | None = None
        self._wrap = wrap

    def __aiter__(self) -> AsyncItems:
        return self

    async def __anext__(self) -> Any:
        ready = self._ready
        if ready is not None:
            for item in ready:
                return item if self._wrap is None else self._wrap(item)
        item = await self._gen.__anext__()
        return item if self._wrap is None else self._wrap(item)

    async def aclose(self) -> None:
        await self._gen.aclose()  # type: ignore[attr-defined]


class Items:
    """The iterator handed to callers, over the response's generator. A ``for`` loop runs the
    generator itself (a plain generator hands items out at C speed); ``next()`` on this object
    takes from the batch's own iterator while one is being handed out, as the async twin does."""

    __slots__ = ("_gen", "_ready", "_wrap")

    def __init__(self, wrap: Callable[[Any], Any] | None) -> None:
        self._gen: Iterator[Any]  # set by the response, which makes the generator for it
        self._ready: Iterator[Any] | None = None
        self._wrap = wrap

    def __iter__(self) -> Iterator[Any]:
        return self._gen if self._wrap is None else map(self._wrap, self._gen)

    def __next__(self) -> Any:
        ready = self._ready
        if ready is not None:
            for item in ready:
                return item if self._wrap is None else self._wrap(item)
        item = next(self._gen)
        return item if self._wrap is None else self._wrap(item)

    def close(self) -> None:
        self._gen.close()  # type: ignore[attr-defined]


async def async_call(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, awaited when it is async (a handler may be either)."""
    result = function(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def call(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


class Beat:
    """What a heartbeat found: ``lost`` is the error that ended it when the server refused a
    beat (the lease is gone: fenced, or the token no longer valid); ``None`` while it holds."""

    __slots__ = ("lost",)

    def __init__(self) -> None:
        self.lost: errors.SubscriptionError | None = None


async def _beat_until_lost(
    interval: float, beat: Callable[[], Awaitable[Any]], state: Beat
) -> None:
    while True:
        await anyio.sleep(interval)
        try:
            await beat()
        except errors.SubscriptionError as exc:
            state.lost = exc
            return
        except errors.DurableStreamError:
            pass  # a network failure: the next beat may get through before the lease ends


@contextlib.asynccontextmanager
async def async_heartbeat(
    interval: float, beat: Callable[[], Awaitable[Any]]
) -> AsyncIterator[Beat]:
    """Runs ``beat`` every ``interval`` seconds in a background task while the block runs."""
    state = Beat()
    failure: BaseException | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(_beat_until_lost, interval, beat, state)
        try:
            yield state
        except BaseException as exc:  # the block's own error, not wrapped in a group
            failure = exc
        finally:
            group.cancel_scope.cancel()
    if failure is not None:
        raise failure


@contextlib.contextmanager
def heartbeat(interval: float, beat: Callable[[], Any]) -> Iterator[Beat]:
    """Runs ``beat`` every ``interval`` seconds on a background thread while the block runs."""
    state = Beat()
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval):
            try:
                beat()
            except errors.SubscriptionError as exc:
                state.lost = exc
                return
            except errors.DurableStreamError:
                pass  # a network failure: the next beat may get through before the lease ends

    thread = threading.Thread(target=run, name="durable-streams-heartbeat", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        # A beat in flight ends within the client's timeout; the thread is a daemon either way.
        thread.join(timeout=interval)


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
