"""A worker of a consumer group, for async code: the subscription consumer of every
partition of the set, run side by side, each competing with the group's other workers for
its partition."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import anyio
import httpx

from .._options import Headers
from .._subscriptions._client_async import AsyncSubscriptionConsumer, AsyncSubscriptions
from .._values import ConsumerStats, SubscriptionMessage
from ._layout import SetBase, check_group, group_subscription

__all__ = ["AsyncConsumerGroup"]


class AsyncConsumerGroup:
    """Worker ``worker`` of consumer group ``group`` of a partition set (made with
    :meth:`AsyncPartitionSet.create_group`), for asyncio and trio.

    :meth:`run` runs, side by side, the at-least-once subscription consumer of each of the
    group's subscriptions (one per partition). Every worker of the group (a process, or a
    task with another ``worker`` name) does the same, so each partition is worked by one
    worker at a time, whichever claimed its wake: the group shares the partitions, and a
    partition's messages are handled in order. A worker that dies (or stops acking) keeps its
    partitions until their lease runs out (the group's ``lease_ttl_ms``); then another worker
    takes them over from their last ack, and what the dead one had not acknowledged is
    handed out again. See :class:`AsyncSubscriptionConsumer` for the guarantees of each."""

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
        self.partition_set = partition_set
        self.group = check_group(group)
        self.worker = worker
        self._subs = AsyncSubscriptions(
            partition_set.root,
            headers=headers if headers is not None else partition_set._headers,
            params=params if params is not None else partition_set._params,
            timeout=timeout if timeout is not None else partition_set._timeout,
            verify=verify if verify is not None else partition_set._verify,
        )
        self.consumers: tuple[AsyncSubscriptionConsumer, ...] = tuple(
            self._subs.consumer(group_subscription(partition_set.name, group, p), worker=worker)
            for p in range(partition_set.partitions)
        )

    def __repr__(self) -> str:
        return (
            f"<AsyncConsumerGroup {self.group!r} of {self.partition_set.name!r} "
            f"worker={self.worker!r}>"
        )

    @property
    def stats(self) -> ConsumerStats:
        """What this worker has done, summed over its partitions' consumers."""
        total = ConsumerStats()
        for consumer in self.consumers:
            total.wakes += consumer.stats.wakes
            total.messages += consumer.stats.messages
            total.acks += consumer.stats.acks
            total.fenced += consumer.stats.fenced
            total.missing_streams.extend(consumer.stats.missing_streams)
        return total

    async def run(
        self, handler: Callable[[SubscriptionMessage], Any], *, until_idle: bool = False
    ) -> None:
        """Consume every partition this worker gets until cancelled, or with
        ``until_idle=True`` until none has pending work this worker can claim. ``handler``
        (plain or async) gets each :class:`SubscriptionMessage`; ``message.stream`` is the
        partition's path (:meth:`~AsyncPartitionSet.partition_of` gives its index). Calls
        for different partitions may overlap; those for one partition come one at a time,
        in order. A handler error stops every partition's consumer (each releasing its
        wake) and propagates."""
        # The first error is the one raised (not an exception group): it stops the other
        # partitions' consumers, which release their wakes as they are cancelled.
        failures: list[Exception] = []
        async with anyio.create_task_group() as group:
            for consumer in self.consumers:
                group.start_soon(
                    self._run_one, consumer, handler, until_idle, failures, group.cancel_scope
                )
        if failures:
            raise failures[0]

    @staticmethod
    async def _run_one(
        consumer: AsyncSubscriptionConsumer,
        handler: Callable[[SubscriptionMessage], Any],
        until_idle: bool,
        failures: list[Exception],
        scope: anyio.CancelScope,
    ) -> None:
        try:
            await consumer.run(handler, until_idle=until_idle)
        except Exception as exc:
            failures.append(exc)
            scope.cancel()
