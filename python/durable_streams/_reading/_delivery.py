"""What a reader hands out, and where it stands: :class:`Delivery` gives a batch's items out
one by one so that a consumer who stops or fails part-way loses nothing, and
:class:`ResponseMetadata` is the read-only view (offset, cursor, flags, stats) that the sync and
async stream responses share."""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypedDict

import httpx

from .. import _core
from .. import _errors as errors
from .._options import Headers
from .._retry import RetryPolicy
from .._transport._request import native_enabled
from .._values import JsonBatch, LiveMode, ReaderStats, SseFallback, StreamEvent
from ._session import READ_AS, Batch, ConsumerKind, ReadSession


class ResponseArgs(TypedDict):
    """What a stream response is made of, apart from its transport."""

    session: ReadSession
    headers: Headers | None
    params: Headers | None
    timeout: httpx.Timeout
    live_read_timeout: float


def response_args(
    url: str,
    *,
    offset: str,
    live: LiveMode,
    cursor: str | None,
    headers: Headers | None,
    params: Headers | None,
    timeout: httpx.Timeout,
    live_read_timeout: float,
    retry: RetryPolicy | None,
    max_event_bytes: int,
    max_body_bytes: int,
    json: bool = False,
    sse_fallback: SseFallback | bool = True,
) -> ResponseArgs:
    """The arguments of a stream response, apart from its transport, from read options."""
    native_enabled()  # a wrong DURABLE_STREAMS_TRANSPORT is an error here, not later
    session = ReadSession(
        url,
        offset=offset,
        live=live,
        cursor=cursor,
        retry=retry,
        max_event_bytes=max_event_bytes,
        max_body_bytes=max_body_bytes,
        json=json,
        sse_fallback=sse_fallback,
    )
    return ResponseArgs(
        session=session,
        headers=headers,
        params=params,
        timeout=timeout,
        live_read_timeout=live_read_timeout,
    )


class Delivery:
    """Hands out a batch's items one by one, so that a consumer who stops or fails part-way
    (``break``, an exception in a ``decode=`` hook) loses nothing: the rest of the batch is
    kept and the next iteration starts with it, and so are the batches one read delivered
    with it.

    ``offset``, ``cursor`` and the flags move on as the last item of a batch goes out, before
    the consumer has it: one that stops right after it resumes behind the batch, one that
    stops earlier resumes before it, and never skips an item. The last item is split off the
    batch's list when the batch starts, so the others go out straight from the list's
    iterator, with no Python code per item."""

    __slots__ = (
        "carried",
        "carried_kind",
        "current",
        "cursor",
        "has_last",
        "items",
        "kind",
        "last",
        "offset",
        "queued",
        "queued_at",
        "queued_kind",
        "rest",
        "stream_closed",
        "up_to_date",
        "url",
    )

    def __init__(self, url: str, offset: str, cursor: str | None) -> None:
        self.url = url
        self.carried: deque[Any] = deque()
        self.carried_kind: ConsumerKind | None = None
        self.current: Batch | None = None  # the batch handed out last, or being handed out
        self.kind: ConsumerKind | None = None
        self.items: Sequence[Any] = ()  # the current batch's items before its last one
        self.rest: Iterator[Any] = iter(())  # where in ``items`` the handing out is
        self.has_last = False  # whether the current batch's last item is still to go out
        self.last: Any = None
        self.queued: list[Batch] = []
        self.queued_at = 0
        self.queued_kind: ConsumerKind | None = None
        self.offset = offset
        self.cursor = cursor
        self.up_to_date = False
        self.stream_closed = False

    def _check_kind(self, held: ConsumerKind | None, kind: ConsumerKind) -> None:
        if held != kind:
            raise errors.DurableStreamError(
                f"items read for {READ_AS[held]} are still to be handed out; read them that way "
                f"before reading with {READ_AS[kind]}",
                url=self.url,
                offset=self.offset,
            )

    def _as_kind(self, items: list[Any], held: ConsumerKind | None, kind: ConsumerKind) -> Any:
        """Items read as ``held`` for a consumer of ``kind``: messages kept raw for a decode=
        hook are decoded by the core; other kinds cannot be turned into one another."""
        if held == "json-raw" and kind == "json":
            return _core.impl.parse_json_array(b"[" + b",".join(items) + b"]")
        self._check_kind(held, kind)
        return items

    def carry(self, kind: ConsumerKind, items: list[Any]) -> None:
        """Keep items a ``read_*`` call had taken when it failed; the next read returns them."""
        self.carried = deque(items)
        self.carried_kind = kind if items else None

    def drain_carried(self, kind: ConsumerKind) -> Iterator[Any]:
        """The carried items; each leaves the queue only as it is handed out."""
        if self.carried:
            self._check_kind(self.carried_kind, kind)
        while self.carried:
            yield self.carried.popleft()

    def part_way(self, kind: ConsumerKind) -> bool:
        """Whether a previous iteration stopped in the middle of the current batch; its items
        not handed out yet are then made ``kind`` items."""
        if not self.has_last:
            return False
        if self.kind != kind:
            items = self.items
            left = list(items[len(items) - operator.length_hint(self.rest) :])
            converted = self._as_kind([*left, self.last], self.kind, kind)
            self.last = converted.pop()
            self.items = converted
            self.rest = iter(converted)
            self.kind = kind
        return True

    def leftover(self, kind: ConsumerKind) -> list[Any] | None:
        """What item-by-item reading left for a batch reader: the carried items, then the rest
        of the batch it stopped in (which then counts as handed out); ``None`` if nothing."""
        items = list(self.drain_carried(kind))
        if self.part_way(kind):
            taken = len(self.items) - operator.length_hint(self.rest)
            items.extend(self.items[taken:])
            items.append(self.last)
            self.has_last = False
            self.last = None
            self.items = ()
            self.rest = iter(())
            self.commit()
        elif not items:
            return None
        return items

    def queue(self, batches: list[Batch], kind: ConsumerKind) -> None:
        """The batches of one read after its first, which is being handed out."""
        self.queued = batches
        self.queued_at = 1
        self.queued_kind = kind

    def take_queued(self, kind: ConsumerKind) -> Batch | None:
        queued = self.queued
        if not queued:
            return None
        batch = queued[self.queued_at]
        if self.queued_kind != kind:
            batch.data = self._as_kind(batch.data, self.queued_kind, kind)
        self.queued_at += 1
        if self.queued_at == len(queued):
            self.queued = []
        return batch

    def start(self, batch: Batch, kind: ConsumerKind) -> None:
        """Hand ``batch`` out next; a list of messages gives up its last one to ``last``.

        The items move out of the batch: from here on only ``items`` and ``last`` hold them,
        and they let go once the last one is out, so a batch's messages are gone before the
        next batch is built (the batch itself stays ``current``, for its offset)."""
        self.current = batch
        self.kind = kind
        data = batch.data
        batch.data = None
        if kind in ("json", "json-raw"):
            self.has_last = bool(data)
            self.last = data.pop() if data else None
            self.items = data
        else:  # bytes or text: the whole batch is one item
            self.has_last = bool(data)
            self.last = data
            self.items = ()
        self.rest = iter(self.items)

    def drain(self, transform: Callable[[Any], Any] | None) -> Iterator[Any]:
        """The current batch's items not handed out yet, but its last; each counts as handed
        out when yielded (``rest`` itself, when there is no ``transform``: the list iterator
        is the position, so items cost no Python code each)."""
        if transform is None:
            return self.rest
        return map(transform, self.rest)

    def put_back(self) -> None:
        """``drain``'s transform (a decode= hook) raised: ``map`` had taken the item it failed
        on from ``rest``, so it goes back, to come first next time."""
        items = self.items
        failed = len(items) - operator.length_hint(self.rest) - 1
        self.items = items[failed:]
        self.rest = iter(self.items)

    def take_last(self, transform: Callable[[Any], Any] | None) -> Any:
        """The current batch's last item, through ``transform``. The batch counts as handed
        out with it, so ``offset`` moves on before the consumer has it; a transform that
        raises leaves it for the next iteration."""
        item = self.last if transform is None else transform(self.last)
        self.has_last = False
        self.last = None
        self.items = ()
        self.commit()
        return item

    def commit(self) -> None:
        """The current batch is handed out: move the offset on."""
        batch = self.current
        assert batch is not None
        self.offset = batch.offset
        self.cursor = batch.cursor
        self.up_to_date = batch.up_to_date
        self.stream_closed = batch.closed

    def position(self) -> tuple[str, bool, bool]:
        return (self.offset, self.up_to_date, self.stream_closed)

    def json_batch(self, messages: list[Any]) -> JsonBatch:
        """``messages``, handed out, with where the stream stands after them."""
        return JsonBatch(messages, self.offset, self.cursor, self.up_to_date, self.stream_closed)

    def stops(self, until_up_to_date: bool) -> bool:
        """Whether the reader stops after the batch handed out last: at the end of a closed
        stream, or up to date when that was asked for."""
        return self.stream_closed or (until_up_to_date and self.up_to_date)

    def event(self, item: Any) -> StreamEvent:
        """``item`` of the current batch, with where the stream stands after that batch."""
        batch = self.current
        assert batch is not None
        return StreamEvent(item, batch.offset, batch.cursor, batch.up_to_date, batch.closed)


class ResponseMetadata:
    """Read-only facts about a stream read, shared by the sync and async responses."""

    _session: ReadSession
    _delivery: Delivery

    @property
    def url(self) -> str:
        return self._session.url

    @property
    def offset(self) -> str:
        """The offset to resume from: after the last batch handed out in full."""
        return self._delivery.offset

    @property
    def cursor(self) -> str | None:
        return self._delivery.cursor

    @property
    def up_to_date(self) -> bool:
        return self._delivery.up_to_date

    @property
    def stream_closed(self) -> bool:
        """True once the reader has reached the end of a closed stream (EOF)."""
        return self._delivery.stream_closed

    @property
    def content_type(self) -> str | None:
        return self._session.content_type

    @property
    def status(self) -> int | None:
        return self._session.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._session.headers

    @property
    def live(self) -> Any:
        return self._session.live

    def stats(self) -> ReaderStats:
        """A snapshot of this reader's position and counters; cheap, callable at any time."""
        return replace(self._session.stats(), offset=self._delivery.offset)

    def _event_kind(self, raw_json: bool = False) -> ConsumerKind:
        """What items of this stream are: messages (raw bytes each with ``raw_json``) for JSON
        streams, byte chunks otherwise."""
        if not self._session.is_json:
            return "bytes"
        return "json-raw" if raw_json else "json"

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {errors.redact_url(self.url)} offset={self.offset!r} "
            f"up_to_date={self.up_to_date} stream_closed={self.stream_closed}>"
        )
