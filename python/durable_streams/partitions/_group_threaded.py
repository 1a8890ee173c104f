"""A worker of a consumer group for threaded code: :class:`AsyncConsumerGroup` on a loop
thread, with the handler called on worker threads so the loop stays free to renew leases."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import httpx

from .. import _errors as errors
from .._loop_thread import LoopThread
from .._options import Headers
from .._subscriptions._client_async import AsyncSubscriptionConsumer
from .._values import ConsumerStats, SubscriptionMessage
from ._group_async import AsyncConsumerGroup
from ._layout import SetBase

__all__ = ["ConsumerGroup"]

# How long stopping waits for the partitions' consumers to release their wakes.
_STOP_TIMEOUT = 10.0


class ConsumerGroup:
    """:class:`AsyncConsumerGroup` for threaded code: worker ``worker`` of consumer group
    ``group`` of a partition set. :meth:`run` blocks; the partitions' consumers run on a
    loop thread of their own, and ``handler`` is called on worker threads, one call at a
    time per partition (so it must be thread-safe across partitions), while the leases are
    renewed in the background. Ctrl+C stops it, releasing the wakes it holds."""

    def __init__(
        self,
        partition_set: SetBase,
        group: str,
        *,
        worker: str,
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
        verify: bool | str | ssl.SSLContext | None = None,
    ) -> None:
        self._group = AsyncConsumerGroup(
            partition_set,
            group,
            worker=worker,
            headers=headers,
            params=params,
            timeout=timeout,
            verify=verify,
        )
        self.partition_set = partition_set
        self.group = group
        self.worker = worker

    def __repr__(self) -> str:
        return (
            f"<ConsumerGroup {self.group!r} of {self.partition_set.name!r} worker={self.worker!r}>"
        )

    @property
    def consumers(self) -> tuple[AsyncSubscriptionConsumer, ...]:
        return self._group.consumers

    @property
    def stats(self) -> ConsumerStats:
        """What this worker has done, summed over its partitions' consumers."""
        return self._group.stats

    def run(
        self, handler: Callable[[SubscriptionMessage], Any], *, until_idle: bool = False
    ) -> None:
        """Consume until interrupted (Ctrl+C) or, with ``until_idle=True``, until no
        partition has pending work this worker can claim; see
        :meth:`AsyncConsumerGroup.run`. A handler error stops it and propagates."""
        if not callable(handler):
            raise TypeError(f"handler is a callable, not {type(handler).__name__}")

        async def on_a_thread(message: SubscriptionMessage) -> None:
            # Ctrl+C must not wait for a handler that may never return: its call is left to
            # finish on its thread while the wakes are released.
            await anyio.to_thread.run_sync(handler, message, abandon_on_cancel=True)

        runner = LoopThread(f"durable-streams-group-{self.group}-{self.worker}")
        try:
            runner.call(
                self._group.run(on_a_thread, until_idle=until_idle),
                None,
                lambda: errors.DeadlineExceededError("the consumer group did not stop"),
            )
        finally:
            runner.stop(_STOP_TIMEOUT)
