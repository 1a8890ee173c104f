"""A partition set's handle: create, connect to, inspect and delete the set, and create or
delete its consumer groups (each a pull-wake subscription per partition)."""

from __future__ import annotations

import ssl

import httpx

from .. import _errors as errors
from .._options import Headers
from .._reading._response_async import astream
from .._subscriptions._client_async import AsyncSubscriptions
from .._writing._handle_async import AsyncDurableStream
from ._layout import (
    PartitionInfo,
    PartitionSetInfo,
    SetBase,
    check_group,
    check_name,
    check_partitions,
    group_subscription,
    meta_from,
    meta_message,
    wake_path,
)

__all__ = ["AsyncPartitionSet"]


class AsyncPartitionSet(SetBase):
    """A named set of ``partitions`` streams under the server's stream ``root`` (the URL
    stream paths are relative to, e.g. ``http://host/v1/stream``): ``name/0`` ..
    ``name/N-1``, with the set's size recorded in the JSON stream ``name`` itself.

    :meth:`create` makes one, :meth:`connect` opens one (reading its size), :meth:`info`
    reads every partition's tail, :meth:`delete` removes it. Write to it with a
    :class:`PartitionedProducer`; consume it with a group (:meth:`create_group`, then a
    :class:`ConsumerGroup` per worker)."""

    def __init__(
        self,
        root: str,
        name: str,
        partitions: int,
        *,
        content_type: str | None = None,
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
        verify: bool | str | ssl.SSLContext = True,
    ) -> None:
        super().__init__(
            root,
            name,
            partitions,
            content_type=content_type,
            headers=headers,
            params=params,
            timeout=timeout,
            verify=verify,
        )

    @classmethod
    async def create(
        cls,
        root: str,
        name: str,
        partitions: int,
        *,
        content_type: str = "application/json",
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
        verify: bool | str | ssl.SSLContext = True,
    ) -> AsyncPartitionSet:
        """Create the set's partitions (JSON streams unless ``content_type`` says otherwise),
        then its metadata stream (so a set that can be
        connected to is complete), and return its handle. Creating a set that exists as
        it is is harmless; with another number of partitions or content type it raises
        :class:`StreamExistsError` and creates nothing."""
        check_name(name)
        check_partitions(partitions)
        found = await cls._existing(
            root, name, headers=headers, params=params, timeout=timeout, verify=verify
        )
        if found is not None and (found[0], found[1] or content_type) != (partitions, content_type):
            raise errors.StreamExistsError(
                f"the partition set {name!r} exists with {found[0]} partitions of "
                f"{found[1]}, not {partitions} of {content_type}",
                url=f"{root.rstrip('/')}/{name}",
                status=409,
            )
        made = cls(
            root,
            name,
            partitions,
            content_type=content_type,
            headers=headers,
            params=params,
            timeout=timeout,
            verify=verify,
        )
        if found is None:
            for partition in range(partitions):
                await (await made._create(made.url(partition), content_type)).aclose()
            await (
                await made._create(
                    made.meta_url, "application/json", meta_message(partitions, content_type)
                )
            ).aclose()
        return made

    @classmethod
    async def connect(
        cls,
        root: str,
        name: str,
        *,
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
        verify: bool | str | ssl.SSLContext = True,
    ) -> AsyncPartitionSet:
        """The handle of an existing set, its size read from its metadata stream (one
        request); :class:`StreamNotFoundError` if there is no such set."""
        found = await cls._existing(
            root, check_name(name), headers=headers, params=params, timeout=timeout, verify=verify
        )
        if found is None:
            raise errors.StreamNotFoundError(
                f"there is no partition set {name!r}",
                url=f"{root.rstrip('/')}/{name}",
                status=404,
            )
        partitions, content_type = found
        return cls(
            root,
            name,
            partitions,
            content_type=content_type,
            headers=headers,
            params=params,
            timeout=timeout,
            verify=verify,
        )

    @classmethod
    async def _existing(
        cls,
        root: str,
        name: str,
        *,
        headers: Headers | None,
        params: Headers | None,
        timeout: float | httpx.Timeout | None,
        verify: bool | str | ssl.SSLContext,
    ) -> tuple[int, str | None] | None:
        """The size and content type the set's metadata stream records; None if there is
        no such stream."""
        url = f"{root.rstrip('/')}/{name}"
        try:
            async with astream(
                url, headers=headers, params=params, timeout=timeout, verify=verify
            ) as res:
                messages = await res.read_json()
        except errors.StreamNotFoundError:
            return None
        except errors.ContentTypeError:
            raise errors.UsageError(
                "this stream is not a partition set's metadata stream", url=url
            ) from None
        return meta_from(messages, url=url)

    async def _create(self, url: str, content_type: str, data: object = None) -> AsyncDurableStream:
        return await AsyncDurableStream.create(
            url,
            content_type=content_type,
            data=data,
            headers=self._headers,
            params=self._params,
            timeout=self._timeout,
            verify=self._verify,
        )

    def _handle(self, url: str) -> AsyncDurableStream:
        return AsyncDurableStream(
            url,
            headers=self._headers,
            params=self._params,
            timeout=self._timeout,
            verify=self._verify,
        )

    async def info(self) -> PartitionSetInfo:
        """Every partition's tail and closure, from a ``HEAD`` of each."""
        found = []
        for partition in range(self.partitions):
            url = self.url(partition)
            async with self._handle(url) as handle:
                head = await handle.head()
            found.append(
                PartitionInfo(partition, self.path(partition), url, head.offset, head.closed)
            )
        return PartitionSetInfo(self.name, tuple(found))

    async def delete(self) -> None:
        """Delete the set: its metadata stream first (the set is gone for :meth:`connect`
        from then on), then every partition. Partitions already gone are no error, so a
        delete cut short can be run again."""
        for url in [self.meta_url, *(self.url(p) for p in range(self.partitions))]:
            await self._delete_quietly(url)

    async def _delete_quietly(self, url: str) -> None:
        handle = self._handle(url)
        try:
            await handle.delete()
        except errors.StreamNotFoundError:
            return  # gone already: what a delete is for
        finally:
            await handle.aclose()

    def _subscriptions(self) -> AsyncSubscriptions:
        return AsyncSubscriptions(
            self.root,
            headers=self._headers,
            params=self._params,
            timeout=self._timeout,
            verify=self._verify,
        )

    async def create_group(self, group: str, *, lease_ttl_ms: int = 30_000) -> None:
        """Create consumer group ``group``: a pull-wake subscription per partition (id
        ``group@name/N``, pattern the partition's path) with a wake stream of its own
        (``name/groups/group/wake-N``). A new group starts at each partition's current
        tail: it sees what is appended from now on. Creating it again as it is is harmless.
        ``lease_ttl_ms`` is how long a partition stays with a worker that stopped acking
        (crashed) before another worker takes it over."""
        check_group(group)
        async with self._subscriptions() as subs:
            for partition in range(self.partitions):
                wake = wake_path(self.name, group, partition)
                await (await self._create(f"{self.root}/{wake}", "application/json")).aclose()
                await subs.create(
                    group_subscription(self.name, group, partition),
                    type="pull-wake",
                    pattern=self.path(partition),
                    wake_stream=wake,
                    lease_ttl_ms=lease_ttl_ms,
                    description=f"consumer group {group} of partition set {self.name}",
                )

    async def delete_group(self, group: str) -> None:
        """Delete consumer group ``group``: its subscriptions and wake streams."""
        check_group(group)
        async with self._subscriptions() as subs:
            for partition in range(self.partitions):
                await subs.delete(group_subscription(self.name, group, partition))
                await self._delete_quietly(f"{self.root}/{wake_path(self.name, group, partition)}")
