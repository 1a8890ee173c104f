"""The partitioned producer for threaded code: a :class:`SyncIdempotentProducer` per
partition, routed as :class:`PartitionedProducer` routes."""

from __future__ import annotations

import concurrent.futures
import os
import threading
from types import TracebackType
from typing import Any

import httpx

from .. import _errors as errors
from .._options import Headers
from .._retry import RetryPolicy
from .._values import AppendResult
from .._writing._producer_async import DEFAULT_CLOSE_TIMEOUT, ErrorHook
from .._writing._producer_threaded import SyncIdempotentProducer
from ._layout import Router, SetBase
from ._producer_async import partition_producer_id, state_path, undelivered_of_all

__all__ = ["SyncPartitionedProducer"]


class SyncPartitionedProducer:
    """:class:`PartitionedProducer` for threaded code: the same routing (by key, else round
    robin) onto a :class:`SyncIdempotentProducer` per partition, with blocking methods.
    :meth:`append_nowait` is thread-safe; each partition's producer sends on a thread of
    its own. Use it as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        partition_set: SetBase,
        *,
        producer_id: str,
        auto_claim: bool = False,
        epoch: int = 0,
        linger_ms: float = 5.0,
        max_batch_bytes: int = 1 << 20,
        max_in_flight: int = 5,
        max_buffered_bytes: int = 64 << 20,
        retry: RetryPolicy | None = None,
        on_error: ErrorHook | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> None:
        self.partition_set = partition_set
        self.router = Router(partition_set.partitions)
        content_type = partition_set.known_content_type()
        partition_producer_id(producer_id, 0)  # checked before any thread starts
        producers: list[SyncIdempotentProducer] = []
        try:
            for p in range(partition_set.partitions):
                producers.append(
                    SyncIdempotentProducer(
                        partition_set.url(p),
                        producer_id=partition_producer_id(producer_id, p),
                        auto_claim=auto_claim,
                        epoch=epoch,
                        linger_ms=linger_ms,
                        max_batch_bytes=max_batch_bytes,
                        max_in_flight=max_in_flight,
                        max_buffered_bytes=max_buffered_bytes,
                        retry=retry,
                        on_error=on_error,
                        state=state_path(state_dir, producer_id, p),
                        content_type=content_type,
                        headers=headers if headers is not None else partition_set._headers,
                        params=params if params is not None else partition_set._params,
                        timeout=timeout if timeout is not None else partition_set._timeout,
                    )
                )
        except BaseException:
            for producer in producers:  # nothing was appended: stop their threads
                producer.close()
            raise
        self.producers = tuple(producers)
        # Round robin is shared bookkeeping when many threads append.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SyncPartitionedProducer {self.partition_set!r}>"

    def partition(self, key: str | bytes | None) -> int:
        """The partition the next message with ``key`` goes to."""
        with self._lock:
            return self.router.route(key)

    def append_nowait(self, data: Any, *, key: str | bytes | None = None) -> int:
        """Buffer one message for its partition and return at once; returns the partition."""
        partition = self.partition(key)
        self.producers[partition].append_nowait(data)
        return partition

    def append(
        self, data: Any, *, key: str | bytes | None = None, timeout: float | None = None
    ) -> concurrent.futures.Future[AppendResult]:
        """Buffer one message, blocking up to ``timeout`` s for room; a future of its result."""
        return self.producers[self.partition(key)].append(data, timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Send what every partition's producer holds and wait for the answers."""
        failures: list[tuple[int, BaseException]] = []
        for partition, producer in enumerate(self.producers):
            try:
                producer.flush(timeout)
            except errors.DurableStreamError as exc:
                failures.append((partition, exc))
        error = undelivered_of_all(self.producers, failures)
        if error is not None:
            raise error

    def close(self, timeout: float | None = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Close every partition's producer (each flushing within ``timeout`` s)."""
        failures: list[tuple[int, BaseException]] = []
        for partition, producer in enumerate(self.producers):
            try:
                producer.close(timeout)
            except errors.DurableStreamError as exc:
                failures.append((partition, exc))
        error = undelivered_of_all(self.producers, failures)
        if error is not None:
            raise error

    def __enter__(self) -> SyncPartitionedProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close every partition's producer; Ctrl+C in the block stops each at once instead,
        noting on the interrupt what was not delivered (see :class:`SyncIdempotentProducer`)."""
        if not isinstance(exc, KeyboardInterrupt):
            self.close()
            return
        for producer in self.producers:
            producer.__exit__(exc_type, exc, tb)
