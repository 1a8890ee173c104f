"""Key-value state over streams (the State Protocol) for async code: read a state stream into
its entities, write changes, and compact a stream into a snapshot.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import ssl
import uuid
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any, Literal, cast

import httpx

from .. import _errors as errors
from .._options import Headers
from .._protocol import OFFSET_BEGINNING
from .._reading._response_async import astream
from .._reading._session import Batch
from .._retry import RetryPolicy
from .._writing._handle_async import AsyncDurableStream
from .._writing._producer_async import IdempotentProducer
from . import _protocol as core
from ._protocol import State
from ._schema import StateSchema, _as_schema

__all__ = ["AsyncStateWriter", "acompact", "aload_compacted", "aload_state", "amaterialize"]

JSON = "application/json"
MISSING: Any = core._MISSING


async def aload_state(
    url: str,
    *,
    start: State | None = None,
    offset: str | None = None,
    on_malformed: Literal["raise", "skip"] = "raise",
    schema: StateSchema | Mapping[str, type] | None = None,
    headers: Headers | None = None,
    params: Headers | None = None,
    timeout: float | httpx.Timeout | None = None,
    retry: RetryPolicy | None = None,
    verify: bool | str | ssl.SSLContext = True,
) -> State:
    """The :class:`State` of the stream at ``url`` up to its current tail.

    With ``start``, its messages are folded into that state instead of a new one, from
    ``offset`` (default: ``start.offset``, which must then be an offset of this stream);
    :func:`aload_compacted` does this for a compacted snapshot and its source. A malformed
    message raises :class:`StateMessageError` naming its offset (``on_malformed="skip"``
    counts it in ``state.skipped`` instead; with ``start``, that state's own choice holds).
    With a ``schema`` (:class:`StateSchema`), values of the types it names are checked and
    held as instances of their models (:class:`StateValueError` when one does not fit)."""
    state = start if start is not None else State(on_malformed=on_malformed, schema=schema)
    begin = offset or (start.offset if start is not None else None) or OFFSET_BEGINNING
    state.offset = begin  # until the read moves it: where this stream's state stands
    async with astream(
        url,
        offset=begin,
        headers=headers,
        params=params,
        timeout=timeout,
        retry=retry,
        verify=verify,
    ) as res:
        # Closed at once when a batch fails to apply (a malformed message, a value that does
        # not fit the schema), not left to the garbage collector.
        batches = cast(AsyncGenerator[Batch, None], res._whole_batches())
        async with contextlib.aclosing(batches):
            async for batch in batches:
                state.fold_batch(batch.data, batch.offset)
        state.offset = res.offset
    return state


async def amaterialize(
    url: str,
    *,
    on_malformed: Literal["raise", "skip"] = "raise",
    schema: StateSchema | Mapping[str, type] | None = None,
    headers: Headers | None = None,
    params: Headers | None = None,
    timeout: float | httpx.Timeout | None = None,
    retry: RetryPolicy | None = None,
    verify: bool | str | ssl.SSLContext = True,
) -> dict[str, dict[str, Any]]:
    """The entities of the state stream at ``url`` at its current tail, ``{type: {key:
    value}}``: every change folded in stream order (insert, update and upsert store the
    value, delete removes the key, ``reset`` clears all). With a ``schema``, values are
    instances of their types' models."""
    state = await aload_state(
        url,
        on_malformed=on_malformed,
        schema=schema,
        headers=headers,
        params=params,
        timeout=timeout,
        retry=retry,
        verify=verify,
    )
    return state.snapshot()


class AsyncStateWriter:
    """Writes change and control messages to a state stream, through a stream handle (each
    write is one append, answered with its :class:`AppendResult`) or an
    :class:`IdempotentProducer` (writes are buffered and batched, exactly once; the
    producer's ``flush`` or ``close`` delivers them, and writes return ``None``).

    ``txid`` groups changes: ``with writer.transaction() as txid:`` gives every write in the
    block one transaction id (readers see it in ``state.txids``; the protocol does not apply
    a transaction atomically). ``timestamps=True`` stamps every change with the time it is
    written, as JavaScript's ``Date.toISOString()`` writes it.

    With a ``schema`` (:class:`StateSchema`), the ``value`` and ``old_value`` of a type it
    names are checked against the type's model before anything is sent (an instance of the
    model, or JSON that fits it) and written as JSON; one that does not fit raises
    :class:`StateValueError`."""

    def __init__(
        self,
        target: AsyncDurableStream | IdempotentProducer,
        *,
        timestamps: bool = False,
        schema: StateSchema | Mapping[str, type] | None = None,
    ) -> None:
        self._target = target
        self._timestamps = timestamps
        self.schema = _as_schema(schema)
        # Per task (and thread): concurrent transactions on one writer do not mix.
        self._txid: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            "durable_streams_state_txid", default=None
        )

    @contextlib.contextmanager
    def transaction(self, txid: str | None = None) -> Iterator[str]:
        """Every change written in the block (by this task or thread) carries ``txid``
        (default: a new UUID)."""
        value = txid or str(uuid.uuid4())
        token = self._txid.set(value)
        try:
            yield value
        finally:
            self._txid.reset(token)

    async def _write(self, message: dict[str, Any]) -> Any:
        target = self._target
        if isinstance(target, IdempotentProducer):
            target.append_nowait(message)
            return None
        return await target.append(message)

    async def _change(
        self,
        operation: core.Operation,
        type: str,
        key: str,
        value: Any,
        old_value: Any,
        txid: str | None,
        timestamp: _dt.datetime | str | None,
        headers: Mapping[str, str] | None,
    ) -> Any:
        if timestamp is None and self._timestamps:
            timestamp = _dt.datetime.now(_dt.timezone.utc)
        schema = self.schema
        if schema is not None and type in schema:
            if value is not MISSING:
                value = schema.dump(type, key, value)
            if old_value is not MISSING:
                old_value = schema.dump(type, key, old_value)
        message = core.change_message(
            operation,
            type,
            key,
            value,
            old_value=old_value,
            txid=txid or self._txid.get(),
            timestamp=timestamp,
            headers=headers,
        )
        return await self._write(message)

    async def insert(
        self,
        type: str,
        key: str,
        value: Any,
        *,
        txid: str | None = None,
        timestamp: _dt.datetime | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """A new entity ``key`` of ``type`` with ``value``."""
        return await self._change("insert", type, key, value, MISSING, txid, timestamp, headers)

    async def update(
        self,
        type: str,
        key: str,
        value: Any,
        *,
        old_value: Any = MISSING,
        txid: str | None = None,
        timestamp: _dt.datetime | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """``value`` replaces the entity's value (``old_value``, if given, records the one
        it had)."""
        return await self._change("update", type, key, value, old_value, txid, timestamp, headers)

    async def upsert(
        self,
        type: str,
        key: str,
        value: Any,
        *,
        txid: str | None = None,
        timestamp: _dt.datetime | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Insert or replace, whichever applies."""
        return await self._change("upsert", type, key, value, MISSING, txid, timestamp, headers)

    async def delete(
        self,
        type: str,
        key: str,
        *,
        old_value: Any = MISSING,
        txid: str | None = None,
        timestamp: _dt.datetime | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Remove the entity (``old_value``, if given, records the value it had)."""
        return await self._change("delete", type, key, MISSING, old_value, txid, timestamp, headers)

    async def reset(self, at: str | None = None) -> Any:
        """A ``reset`` control: readers clear their state here."""
        return await self._write(core.control_message("reset", at))

    async def snapshot_start(self, at: str | None = None) -> Any:
        return await self._write(core.control_message("snapshot-start", at))

    async def snapshot_end(self, at: str | None = None) -> Any:
        return await self._write(core.control_message("snapshot-end", at))


async def acompact(
    source_url: str,
    target_url: str,
    *,
    producer_id: str | None = None,
    on_malformed: Literal["raise", "skip"] = "raise",
    headers: Headers | None = None,
    params: Headers | None = None,
    timeout: float | httpx.Timeout | None = None,
    retry: RetryPolicy | None = None,
    verify: bool | str | ssl.SSLContext = True,
) -> State:
    """Compaction by key: the latest value of every (type, key) of the state stream at
    ``source_url`` (deleted keys dropped) goes to a new JSON stream at ``target_url`` as a
    snapshot: ``snapshot-start``, one insert per entity, ``snapshot-end`` whose ``offset`` is
    the source offset the snapshot covers. Returns the source's :class:`State` (its
    ``offset`` is that offset). :func:`aload_compacted` reads the target and goes on with
    the source from there; it ends in the state of a reader of the whole source. The target
    must not exist yet (:class:`StreamExistsError`): a second snapshot appended to the first
    would bring back keys deleted in between."""
    options: dict[str, Any] = {"headers": headers, "params": params, "timeout": timeout}
    state = await aload_state(
        source_url, on_malformed=on_malformed, retry=retry, verify=verify, **options
    )
    covers = state.offset or OFFSET_BEGINNING
    async with (
        await AsyncDurableStream.create(
            target_url, content_type=JSON, retry=retry, verify=verify, **options
        ) as target,
        IdempotentProducer(
            target, producer_id=producer_id or f"compact-{uuid.uuid4().hex}"
        ) as producer,
    ):
        if not target.created:
            raise errors.StreamExistsError(
                "compact writes a new stream; one exists at the target", url=target_url
            )
        writer = AsyncStateWriter(producer)
        await writer.snapshot_start(OFFSET_BEGINNING)
        for message in state.changes():
            producer.append_nowait(message)
        await writer.snapshot_end(covers)
    return state


async def aload_compacted(
    target_url: str,
    source_url: str,
    *,
    on_malformed: Literal["raise", "skip"] = "raise",
    headers: Headers | None = None,
    params: Headers | None = None,
    timeout: float | httpx.Timeout | None = None,
    retry: RetryPolicy | None = None,
    verify: bool | str | ssl.SSLContext = True,
) -> State:
    """The source's state, read from its compacted snapshot at ``target_url`` and then from
    the source where the snapshot ends. A snapshot that is not finished (a compaction still
    running, or one that died) or names no source offset is not trusted: the source is then
    read from its beginning."""
    options: dict[str, Any] = {
        "headers": headers,
        "params": params,
        "timeout": timeout,
        "retry": retry,
        "verify": verify,
    }
    state = await aload_state(target_url, on_malformed=on_malformed, **options)
    covers = state.snapshot_covers
    if state.in_snapshot or covers is None:
        return await aload_state(source_url, on_malformed=on_malformed, **options)
    return await aload_state(source_url, start=state, offset=covers, **options)
