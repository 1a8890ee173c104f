"""The partitioned producer for async code: an exactly-once :class:`IdempotentProducer` per
partition, and a :class:`Router` that picks the partition of each message."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import httpx

from .. import _errors as errors
from .._errors import FailedBatch
from .._options import Headers
from .._retry import RetryPolicy
from .._writing._producer_async import (
    DEFAULT_CLOSE_TIMEOUT,
    Acknowledgement,
    ErrorHook,
    IdempotentProducer,
)
from ._layout import Router, SetBase

__all__ = ["PartitionedProducer", "partition_producer_id", "state_path"]


def partition_producer_id(producer_id: str, partition: int) -> str:
    """The producer id of one partition's producer: ``{producer_id}-{partition}``."""
    if not isinstance(producer_id, str) or not producer_id:
        raise errors.UsageError(f"producer_id is a non-empty str, not {producer_id!r}")
    return f"{producer_id}-{partition}"


def state_path(
    state_dir: str | os.PathLike[str] | None, producer_id: str, partition: int
) -> Path | None:
    """The state file of one partition's producer, in ``state_dir``."""
    if state_dir is None:
        return None
    return Path(state_dir) / f"{partition_producer_id(producer_id, partition)}.producer"


class _Closable(Protocol):
    @property
    def url(self) -> str: ...


def undelivered_of_all(
    producers: Sequence[_Closable], failures: list[tuple[int, BaseException]]
) -> BaseException | None:
    """One error for the partitions whose producers failed to deliver or close: an
    :class:`UndeliveredError` listing every failed batch of them all, or the first other
    error."""
    if not failures:
        return None
    batches: list[FailedBatch] = []
    for _, exc in failures:
        if not isinstance(exc, errors.UndeliveredError):
            return exc
        batches.extend(exc.failures)
    partitions = ", ".join(str(p) for p, _ in failures)
    error = errors.UndeliveredError(
        f"{len(batches)} batches of partitions {partitions} were not delivered",
        batches,
        url=producers[failures[0][0]].url,
    )
    error.__cause__ = failures[0][1]
    return error


class PartitionedProducer:
    """Exactly-once appends to a partition set (async: asyncio or trio), routed by key.

    A message with a ``key`` goes to partition :func:`partition_for` ``(key, N)``: the same
    key always to the same partition, where its messages keep the order they were appended
    in. A message without one goes to the next partition in turn (round robin). Each
    partition has an :class:`IdempotentProducer` of its own, with producer id
    ``{producer_id}-{partition}`` (so two producers of one set need distinct
    ``producer_id``\\ s), and with ``state_dir`` a state file
    ``{producer_id}-{partition}.producer`` there (exactly once across crashes and restarts).
    The other settings are those of :class:`IdempotentProducer`, for every partition.

    ``async with PartitionedProducer(partition_set, producer_id="web-1") as producer:``
    closes it; :meth:`flush` and :meth:`close` raise one :class:`UndeliveredError` listing
    the failed batches of every partition."""

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
        self.producers = tuple(
            IdempotentProducer(
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
            for p in range(partition_set.partitions)
        )

    def __repr__(self) -> str:
        return f"<PartitionedProducer {self.partition_set!r}>"

    def partition(self, key: str | bytes | None) -> int:
        """The partition the next message with ``key`` goes to."""
        return self.router.route(key)

    def append_nowait(self, data: Any, *, key: str | bytes | None = None) -> int:
        """Buffer one message for its partition and return at once; returns the partition.
        Raises like :meth:`IdempotentProducer.append_nowait`."""
        partition = self.router.route(key)
        self.producers[partition].append_nowait(data)
        return partition

    async def append(self, data: Any, *, key: str | bytes | None = None) -> Acknowledgement:
        """Buffer one message, waiting for room; ``await`` the returned
        :class:`Acknowledgement` for its result."""
        return await self.producers[self.router.route(key)].append(data)

    async def flush(self, timeout: float | None = None) -> None:
        """Send what every partition's producer holds and wait for the answers."""
        failures: list[tuple[int, BaseException]] = []
        for partition, producer in enumerate(self.producers):
            try:
                await producer.flush(timeout)
            except errors.DurableStreamError as exc:
                failures.append((partition, exc))
        error = undelivered_of_all(self.producers, failures)
        if error is not None:
            raise error

    async def close(self, timeout: float | None = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Close every partition's producer (each flushing within ``timeout`` s); the
        streams stay open."""
        failures: list[tuple[int, BaseException]] = []
        for partition, producer in enumerate(self.producers):
            try:
                await producer.close(timeout)
            except errors.DurableStreamError as exc:
                failures.append((partition, exc))
        error = undelivered_of_all(self.producers, failures)
        if error is not None:
            raise error

    async def __aenter__(self) -> PartitionedProducer:
        # Each partition's producer sends from a task group of the caller's: entered in
        # order, so they are left in the reverse order.
        entered: list[IdempotentProducer] = []
        try:
            for producer in self.producers:
                await producer.__aenter__()
                entered.append(producer)
        except BaseException as exc:
            for producer in reversed(entered):
                await producer.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close every partition's producer; leaving by cancellation or Ctrl+C stops each at
        once instead (see :class:`IdempotentProducer`)."""
        failures: list[tuple[int, BaseException]] = []
        for partition in reversed(range(len(self.producers))):
            try:
                await self.producers[partition].__aexit__(exc_type, exc, tb)
            except errors.DurableStreamError as exc_of_one:
                failures.append((partition, exc_of_one))
        failures.reverse()
        error = undelivered_of_all(self.producers, failures)
        if error is not None:
            raise error
