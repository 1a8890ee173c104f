"""The sync idempotent producer: the async driver on a background thread, for threaded code."""

from __future__ import annotations

import atexit
import concurrent.futures
import logging
import os
import weakref
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

import httpx

from .. import _errors as errors
from .._errors import FailedBatch
from .._loop_thread import LoopThread
from .._options import Headers
from .._retry import RetryPolicy
from .._values import AppendResult, ProducerStats
from ._handle import HandleBase
from ._producer_async import (
    DEFAULT_CLOSE_TIMEOUT,
    ErrorHook,
    IdempotentProducer,
    abandoned_note,
    add_note,
)

__all__ = ["SyncIdempotentProducer"]

T = TypeVar("T")

# How long close() waits for the background thread once the producer has stopped.
_THREAD_JOIN_TIMEOUT = 5.0
# Producers still open when the interpreter exits get this long to deliver what they hold.
_EXIT_CLOSE_TIMEOUT = 10.0

_open_producers: weakref.WeakSet[SyncIdempotentProducer] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    """Deliver what unclosed producers hold before the interpreter (and their daemon thread)
    goes away, and say so: losing buffered messages silently at exit is not an option."""
    for producer in list(_open_producers):
        log = logging.getLogger("durable_streams")
        log.warning("%r was not closed; closing it at exit", producer)
        try:
            producer.close(_EXIT_CLOSE_TIMEOUT)
        except Exception:
            log.exception("closing %r at exit failed", producer)


class SyncIdempotentProducer:
    """:class:`IdempotentProducer` for threaded code: the same batching, pipelining and
    exactly-once guarantees, with blocking methods. Sending happens on one background thread
    (an event loop of its own); :meth:`append_nowait` is cheap and thread-safe, so many
    worker threads may share one producer.

    ``auto_claim``, ``state`` (a file that makes exactly-once hold across restarts and
    crashes), ``replay`` and ``gapless`` mean what they mean there; see
    :class:`IdempotentProducer`.
    ``append`` returns a :class:`concurrent.futures.Future` of the message's
    :class:`AppendResult`. Every blocking call takes a ``timeout`` and can be interrupted
    with Ctrl+C. Use it as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        stream: HandleBase | str,
        *,
        producer_id: str,
        epoch: int = 0,
        auto_claim: bool = False,
        linger_ms: float = 5.0,
        max_batch_bytes: int = 1 << 20,
        max_in_flight: int = 5,
        max_buffered_bytes: int = 64 << 20,
        max_batch_items: int | None = None,
        retry: RetryPolicy | None = None,
        on_error: ErrorHook | None = None,
        state: str | os.PathLike[str] | None = None,
        replay: bool = False,
        gapless: bool = True,
        content_type: str | None = None,
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> None:
        self._producer = IdempotentProducer(
            stream.url if isinstance(stream, HandleBase) else stream,
            producer_id=producer_id,
            epoch=epoch,
            auto_claim=auto_claim,
            linger_ms=linger_ms,
            max_batch_bytes=max_batch_bytes,
            max_in_flight=max_in_flight,
            max_buffered_bytes=max_buffered_bytes,
            max_batch_items=max_batch_items,
            state=state,
            replay=replay,
            gapless=gapless,
            retry=retry if retry is not None else getattr(stream, "_retry", None),
            on_error=on_error,
            content_type=content_type if content_type is not None else _content_type(stream),
            headers=headers if headers is not None else getattr(stream, "_headers", None),
            params=params if params is not None else getattr(stream, "_params", None),
            timeout=timeout if timeout is not None else getattr(stream, "_timeout", None),
        )
        self._runner = LoopThread(f"durable-streams-producer-{producer_id}")
        self._producer.serve_other_threads(self._runner.loop.call_soon_threadsafe)
        self._closed = False
        self._call(self._started(), None)
        _open_producers.add(self)

    async def _started(self) -> None:
        self._producer.start_sending()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        if self._closed:
            coro.close()
            raise errors.ProducerClosedError("the producer is closed", url=self.url)
        return self._runner.call(coro, timeout, self._deadline_error(timeout))

    def _deadline_error(self, timeout: float | None) -> Callable[[], errors.DurableStreamError]:
        return lambda: errors.DeadlineExceededError(
            f"the producer did not finish within {timeout} s", url=self.url
        )

    # -- facts ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._producer.url

    @property
    def producer_id(self) -> str:
        return self._producer.producer_id

    @property
    def epoch(self) -> int:
        return self._producer.epoch

    @property
    def next_seq(self) -> int:
        return self._producer.next_seq

    @property
    def buffered_bytes(self) -> int:
        return self._producer.buffered_bytes

    @property
    def messages_taken(self) -> int:
        """See :attr:`IdempotentProducer.messages_taken`."""
        return self._producer.messages_taken

    @property
    def failures(self) -> list[FailedBatch]:
        return self._producer.failures

    def stats(self) -> ProducerStats:
        """A snapshot of what this producer holds and has delivered; see
        :class:`ProducerStats`."""
        return self._producer.stats()

    def __repr__(self) -> str:
        return (
            f"<SyncIdempotentProducer {errors.redact_url(self.url)} "
            f"producer_id={self.producer_id!r} epoch={self.epoch} next_seq={self.next_seq}>"
        )

    # -- appending ------------------------------------------------------------------------------

    def append_nowait(self, data: Any) -> None:
        """Buffer one message and return at once; see :meth:`IdempotentProducer.append_nowait`."""
        self._producer.append_nowait(data)

    def append_many_nowait(self, items: Iterable[Any]) -> None:
        """Buffer a group of messages at once; see :meth:`IdempotentProducer.append_many_nowait`."""
        self._producer.append_many_nowait(items)

    def append(
        self, data: Any, timeout: float | None = None
    ) -> concurrent.futures.Future[AppendResult]:
        """Buffer one message, blocking up to ``timeout`` seconds for room. Returns a future
        of its :class:`AppendResult` (or of the typed error its batch failed with)."""
        future: concurrent.futures.Future[AppendResult] = concurrent.futures.Future()
        while not self._producer.offer(data, future):
            self._call(self._producer.room(), timeout)
        return future

    def flush(self, timeout: float | None = None) -> None:
        """Send everything buffered and wait for the answers; raises
        :class:`UndeliveredError` listing what failed since the last flush. After
        :meth:`close` nothing is buffered, and it returns at once."""
        if self._closed:
            return
        self._call(self._producer.flush(timeout), None)

    def close_stream(self, data: Any = None, timeout: float | None = None) -> AppendResult:
        """Deliver what is buffered, then close the stream through the producer; see
        :meth:`IdempotentProducer.close_stream`."""
        return self._call(self._producer.close_stream(data, timeout), None)

    def restart(self, timeout: float | None = None) -> None:
        """Deliver what is buffered, then move to the next epoch."""
        self._call(self._producer.restart(timeout), None)

    def close(self, timeout: float | None = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Flush within ``timeout`` seconds, then stop the background thread; raises
        :class:`UndeliveredError` for whatever was not delivered. The stream stays open."""
        if self._closed:
            return
        _open_producers.discard(self)
        try:
            self._call(self._producer.close(timeout), None)
        finally:
            self._closed = True
            self._runner.stop(_THREAD_JOIN_TIMEOUT)

    def _interrupted(self, interrupt: BaseException) -> None:
        """Ctrl+C in the ``with`` block: stop at once instead of waiting to deliver, and say
        on the interrupt itself what was not delivered (kept in the state file, if any)."""
        if self._closed:
            return
        _open_producers.discard(self)
        try:
            failures = self._call(self._producer.abandon(interrupt), _THREAD_JOIN_TIMEOUT)
        except BaseException:
            failures = []
        finally:
            self._closed = True
            self._runner.stop(_THREAD_JOIN_TIMEOUT)
        note = abandoned_note(failures)
        if note:
            add_note(interrupt, note)

    def __enter__(self) -> SyncIdempotentProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, KeyboardInterrupt):
            self._interrupted(exc)
        else:
            self.close()


def _content_type(stream: HandleBase | str) -> str | None:
    return None if isinstance(stream, str) else stream.content_type
