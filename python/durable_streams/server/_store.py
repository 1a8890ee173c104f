"""The streams and every change to them, free of HTTP and of I/O.

All of it runs on the server's event-loop thread and no method awaits, so each operation is
atomic with respect to every other: that alone serializes an idempotent producer's
validation and append, as the protocol requires. A :class:`Journal` is told of each change
inside a batch (the SQLite data file, or nothing); when the journal fails, the change is
undone in memory too, so what readers saw never runs ahead of what survives a restart.
"""

from __future__ import annotations

import bisect
import contextlib
import enum
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from ._offsets import FRAME_BYTES

__all__ = [
    "OCTET_STREAM",
    "Batch",
    "ClosedConflict",
    "Conflict",
    "CreateSpec",
    "Gone",
    "Invalid",
    "Journal",
    "MemoryJournal",
    "NotFound",
    "Producer",
    "ProducerCheck",
    "ProducerState",
    "Store",
    "StoreError",
    "Stream",
    "Verdict",
    "WriteOutcome",
    "media_type",
    "parse_timestamp",
]

OCTET_STREAM = "application/octet-stream"


class StoreError(Exception):
    """A refused operation; ``status`` is the HTTP status the protocol gives it."""

    status = 500


class NotFound(StoreError):
    status = 404


class Gone(StoreError):
    status = 410


class Conflict(StoreError):
    status = 409


class Invalid(StoreError):
    status = 400


class ClosedConflict(Conflict):
    def __init__(self, tail: int) -> None:
        super().__init__("stream is closed")
        self.tail = tail


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def parse_timestamp(text: str) -> float | None:
    """Seconds since the epoch for an RFC 3339 timestamp (no zone means UTC), else None."""
    match = _TIMESTAMP.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    fraction = float(match[7]) if match[7] else 0.0
    zone = match[8]
    offset = timedelta(0)
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError:
        return None
    return moment.timestamp() + fraction


@dataclass(frozen=True)
class ProducerState:
    epoch: int
    last_seq: int


@dataclass
class Stream:
    path: str
    uid: str
    content_type: str
    created: float
    accessed: float
    ttl_seconds: int | None = None
    expires_at: str | None = None
    closed: bool = False
    closed_by: tuple[str, int, int] | None = None
    forked_from: str | None = None
    fork_offset: int | None = None
    fork_sub_offset: int = 0
    ref_count: int = 0
    soft_deleted: bool = False
    tail: int = 0
    last_seq: str | None = None
    producers: dict[str, ProducerState] = field(default_factory=dict)
    # Parallel lists: each stored message's end position (its offset) and its bytes. JSON
    # messages are stored as compact values each followed by a comma.
    ends: list[int] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)

    @property
    def is_json(self) -> bool:
        return media_type(self.content_type) == "application/json"

    @property
    def expires_ts(self) -> float | None:
        return None if self.expires_at is None else parse_timestamp(self.expires_at)

    def add_chunk(self, data: bytes) -> None:
        self.tail += len(data) + FRAME_BYTES
        self.ends.append(self.tail)
        self.chunks.append(data)


@dataclass(frozen=True)
class CreateSpec:
    content_type: str | None  # None: a fork inherits its source's
    ttl_seconds: int | None = None
    expires_at: str | None = None
    closed: bool = False
    forked_from: str | None = None
    fork_offset: int | None = None
    fork_sub_offset: int = 0


@dataclass(frozen=True)
class Producer:
    id: str
    epoch: int
    seq: int


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    STALE_EPOCH = "stale epoch"
    EPOCH_SEQ_NOT_ZERO = "new epoch must start at sequence 0"
    SEQ_GAP = "sequence gap"


@dataclass(frozen=True)
class ProducerCheck:
    verdict: Verdict
    epoch: int  # the request's, or the server's current one for STALE_EPOCH
    seq: int  # the request's; the highest accepted for DUPLICATE; the expected for SEQ_GAP


@dataclass(frozen=True)
class WriteOutcome:
    tail: int
    closed: bool
    check: ProducerCheck | None  # None when the request carried no producer headers


@dataclass(frozen=True)
class Batch:
    chunks: list[bytes]
    next: int  # the offset after the last chunk; the tail when there is none
    complete: bool  # nothing more to read at the time of reading


class Journal(Protocol):
    """Where changes go besides memory. ``save`` writes a stream's state and its last
    ``added`` chunks; calls inside one ``batch()`` commit together or not at all. The
    ``*_record`` calls keep other state by kind and key (subscriptions), ``secret`` a value
    made once and kept (signing keys)."""

    def batch(self) -> contextlib.AbstractContextManager[None]: ...

    def save(self, stream: Stream, added: int = 0) -> None: ...

    def remove(self, path: str) -> None: ...

    def load(self) -> Iterable[Stream]: ...

    def save_record(self, kind: str, key: str, value: str) -> None: ...

    def remove_record(self, kind: str, key: str) -> None: ...

    def records(self, kind: str) -> list[tuple[str, str]]: ...

    def secret(self, name: str, make: Callable[[], bytes]) -> bytes: ...

    def close(self) -> None: ...


class MemoryJournal:
    def batch(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def save(self, stream: Stream, added: int = 0) -> None:
        pass

    def remove(self, path: str) -> None:
        pass

    def load(self) -> Iterable[Stream]:
        return ()

    def save_record(self, kind: str, key: str, value: str) -> None:
        pass

    def remove_record(self, kind: str, key: str) -> None:
        pass

    def records(self, kind: str) -> list[tuple[str, str]]:
        return []

    def secret(self, name: str, make: Callable[[], bytes]) -> bytes:
        return make()

    def close(self) -> None:
        pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _compact(value: Any) -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: keep it escaped
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


def json_messages(body: bytes, *, allow_empty: bool) -> bytes:
    """The stored form of a JSON body: one level of a top-level array flattened."""
    try:
        text = body.decode("utf-8")
        value = _DECODER.decode(text.removeprefix("\ufeff"))
        values = value if isinstance(value, list) else [value]
        stored = b"".join(_compact(item) + b"," for item in values)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Invalid("invalid JSON") from exc
    if not values and not allow_empty:
        raise Invalid("empty JSON arrays are not allowed")
    return stored


def json_values(chunk: bytes) -> list[Any]:
    return list(_DECODER.decode("[" + chunk[:-1].decode("utf-8") + "]"))


class _Undo:
    """What an append or close may change, to put back when the journal fails."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.fields = (stream.tail, stream.closed, stream.closed_by, stream.last_seq)
        self.producers = dict(stream.producers)
        self.count = len(stream.ends)
        self.accessed = stream.accessed

    def restore(self) -> None:
        s = self.stream
        s.tail, s.closed, s.closed_by, s.last_seq = self.fields
        s.producers = self.producers
        del s.ends[self.count :], s.chunks[self.count :]
        s.accessed = self.accessed


class Store:
    def __init__(
        self,
        journal: Journal | None = None,
        *,
        on_change: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._journal: Journal = journal or MemoryJournal()
        self._on_change = on_change or (lambda path: None)
        self._clock = clock
        self._streams: dict[str, Stream] = {stream.path: stream for stream in self._journal.load()}

    def __len__(self) -> int:
        return len(self._streams)

    # -- lookup and expiry ---------------------------------------------------

    def _expired(self, stream: Stream, now: float) -> bool:
        deadline = stream.expires_ts
        if stream.expires_at is not None and (deadline is None or now >= deadline):
            return True
        return stream.ttl_seconds is not None and now >= stream.accessed + stream.ttl_seconds

    def _lookup(self, path: str) -> Stream | None:
        """The stream at ``path``, soft-deleted ones included; an expired one is removed
        (or soft-deleted while forks still read through it)."""
        stream = self._streams.get(path)
        if stream is None or stream.soft_deleted or not self._expired(stream, self._clock()):
            return stream
        if stream.ref_count == 0:
            self._remove(stream)
            return None
        self._soft_delete(stream)
        return stream

    def get(self, path: str) -> Stream:
        """The live stream at ``path``; NotFound or Gone otherwise."""
        stream = self._lookup(path)
        if stream is None:
            raise NotFound("stream not found")
        if stream.soft_deleted:
            raise Gone("stream was deleted")
        return stream

    def paths(self) -> list[str]:
        """Every stream's path, soft-deleted ones included (as the reference server lists them)."""
        return list(self._streams)

    def exists(self, path: str) -> bool:
        stream = self._lookup(path)
        return stream is not None and not stream.soft_deleted

    def expire_all(self) -> None:
        for path in list(self._streams):
            self._lookup(path)

    def touch(self, stream: Stream) -> None:
        stream.accessed = self._clock()

    # -- create -------------------------------------------------------------

    def create(self, path: str, spec: CreateSpec, body: bytes) -> tuple[Stream, bool]:
        """Create the stream, or return the existing one when its configuration matches.
        The boolean says whether it was created."""
        existing = self._lookup(path)
        if existing is not None:
            if existing.soft_deleted:
                raise Conflict("a deleted stream's forks still hold this path")
            if self._matches(existing, spec):
                return existing, False
            raise Conflict("stream already exists with a different configuration")

        now = self._clock()
        source = None
        content_type = spec.content_type or OCTET_STREAM
        ttl, expires_at = spec.ttl_seconds, spec.expires_at
        stream = Stream(path, secrets.token_hex(4), content_type, now, now)
        if spec.forked_from is not None:
            source = self._lookup(spec.forked_from)
            if source is None or self._expired(source, now):
                raise NotFound("source stream not found")
            if source.soft_deleted:
                raise Conflict("source stream was deleted")
            if spec.content_type and media_type(spec.content_type) != media_type(
                source.content_type
            ):
                raise Conflict("content type differs from the source stream's")
            stream.content_type = spec.content_type or source.content_type
            fork_offset = source.tail if spec.fork_offset is None else spec.fork_offset
            if fork_offset > source.tail:
                raise Invalid("fork offset is beyond the source stream's tail")
            if ttl is None and expires_at is None:
                ttl, expires_at = source.ttl_seconds, source.expires_at
            stream.forked_from, stream.fork_offset = spec.forked_from, fork_offset
            stream.tail = fork_offset
            if spec.fork_sub_offset:
                stream.add_chunk(self._sub_offset_prefix(source, fork_offset, spec.fork_sub_offset))
                stream.fork_sub_offset = spec.fork_sub_offset
        stream.ttl_seconds, stream.expires_at = ttl, expires_at
        data = json_messages(body, allow_empty=True) if body and stream.is_json else body
        if data:
            stream.add_chunk(data)
        stream.closed = spec.closed

        with self._journal.batch():
            self._journal.save(stream, added=len(stream.chunks))
            if source is not None:
                source.ref_count += 1
                try:
                    self._journal.save(source)
                except BaseException:
                    source.ref_count -= 1
                    raise
        self._streams[path] = stream
        self._on_change(path)
        return stream, True

    def _matches(self, stream: Stream, spec: CreateSpec) -> bool:
        if spec.forked_from is not None:
            inherited = spec.ttl_seconds is None and spec.expires_at is None
            fork_offset = spec.fork_offset
            if fork_offset is None:  # the source's tail, which moves on: compare with it now
                source = self._lookup(spec.forked_from)
                if source is None or source.soft_deleted:
                    return False
                fork_offset = source.tail
            return (
                spec.forked_from == stream.forked_from
                and (spec.content_type is None or _same_type(spec.content_type, stream))
                and (inherited or (spec.ttl_seconds, spec.expires_at) == _expiry(stream))
                and fork_offset == stream.fork_offset
                and spec.fork_sub_offset == stream.fork_sub_offset
                and spec.closed == stream.closed
            )
        return (
            stream.forked_from is None
            and _same_type(spec.content_type or OCTET_STREAM, stream)
            and (spec.ttl_seconds, spec.expires_at) == _expiry(stream)
            and spec.closed == stream.closed
        )

    def _sub_offset_prefix(self, source: Stream, fork_offset: int, sub_offset: int) -> bytes:
        """The part of the source's first message past ``fork_offset`` that a fork with
        this sub-offset inherits: whole JSON values, or bytes."""
        first = next(self._iter_after(source, fork_offset, None), None)
        if first is None:
            raise Invalid("no data past the fork offset for the sub-offset to address")
        chunk = first[1]
        if source.is_json:
            values = json_values(chunk)
            if sub_offset > len(values):
                raise Invalid("fork sub-offset is past the message's values")
            return b"".join(_compact(value) + b"," for value in values[:sub_offset])
        if sub_offset > len(chunk):
            raise Invalid("fork sub-offset is past the message's bytes")
        return chunk[:sub_offset]

    # -- append and close ---------------------------------------------------

    def _check_producer(self, stream: Stream, producer: Producer) -> ProducerCheck:
        state = stream.producers.get(producer.id)
        epoch, seq = producer.epoch, producer.seq
        if state is None:
            if seq != 0:
                return ProducerCheck(Verdict.SEQ_GAP, epoch, 0)
            return ProducerCheck(Verdict.ACCEPTED, epoch, seq)
        if epoch < state.epoch:
            return ProducerCheck(Verdict.STALE_EPOCH, state.epoch, seq)
        if epoch > state.epoch:
            verdict = Verdict.ACCEPTED if seq == 0 else Verdict.EPOCH_SEQ_NOT_ZERO
            return ProducerCheck(verdict, epoch, seq)
        if seq <= state.last_seq:
            return ProducerCheck(Verdict.DUPLICATE, epoch, state.last_seq)
        if seq == state.last_seq + 1:
            return ProducerCheck(Verdict.ACCEPTED, epoch, seq)
        return ProducerCheck(Verdict.SEQ_GAP, epoch, state.last_seq + 1)

    def _closed_outcome(self, stream: Stream, producer: Producer | None) -> WriteOutcome:
        if producer is not None and stream.closed_by == (producer.id, producer.epoch, producer.seq):
            check = ProducerCheck(Verdict.DUPLICATE, producer.epoch, producer.seq)
            return WriteOutcome(stream.tail, True, check)
        raise ClosedConflict(stream.tail)

    def append(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str,
        seq: str | None = None,
        producer: Producer | None = None,
        close: bool = False,
    ) -> WriteOutcome:
        stream = self.get(path)
        if stream.closed:
            return self._closed_outcome(stream, producer)
        if media_type(content_type) != media_type(stream.content_type):
            raise Conflict("content type does not match the stream's")
        check = None
        if producer is not None:
            check = self._check_producer(stream, producer)
            if check.verdict is not Verdict.ACCEPTED:
                return WriteOutcome(stream.tail, False, check)
        if seq is not None and stream.last_seq is not None and seq <= stream.last_seq:
            raise Conflict("Stream-Seq must increase")
        data = json_messages(body, allow_empty=False) if stream.is_json else body
        self._commit(stream, producer, data=data, seq=seq, close=close)
        return WriteOutcome(stream.tail, stream.closed, check)

    def close(self, path: str, producer: Producer | None = None) -> WriteOutcome:
        stream = self.get(path)
        if producer is None:
            if not stream.closed:
                self._commit(stream, None, close=True)
            self.touch(stream)
            return WriteOutcome(stream.tail, True, None)
        if stream.closed:
            return self._closed_outcome(stream, producer)
        check = self._check_producer(stream, producer)
        if check.verdict is Verdict.ACCEPTED:
            self._commit(stream, producer, close=True)
        return WriteOutcome(stream.tail, stream.closed, check)

    def _commit(
        self,
        stream: Stream,
        producer: Producer | None,
        *,
        data: bytes | None = None,
        seq: str | None = None,
        close: bool = False,
    ) -> None:
        undo = _Undo(stream)
        try:
            with self._journal.batch():
                if data is not None:
                    stream.add_chunk(data)
                if producer is not None:
                    stream.producers[producer.id] = ProducerState(producer.epoch, producer.seq)
                if seq is not None:
                    stream.last_seq = seq
                if close:
                    stream.closed = True
                    if producer is not None:
                        stream.closed_by = (producer.id, producer.epoch, producer.seq)
                stream.accessed = self._clock()
                self._journal.save(stream, added=0 if data is None else 1)
        except BaseException:
            undo.restore()
            raise
        self._on_change(stream.path)

    # -- delete -------------------------------------------------------------

    def delete(self, path: str) -> None:
        stream = self.get(path)
        if stream.ref_count > 0:
            self._soft_delete(stream)
        else:
            self._remove(stream)

    def _soft_delete(self, stream: Stream) -> None:
        """Hide the stream from clients; its forks keep reading through it."""
        with self._journal.batch():
            self._journal.save(replace(stream, soft_deleted=True))
        stream.soft_deleted = True
        self._on_change(stream.path)

    def _remove(self, stream: Stream) -> None:
        """Remove the stream, then every soft-deleted source its removal frees."""
        removed = [stream]
        parent_path = stream.forked_from
        while parent_path is not None and (parent := self._streams.get(parent_path)):
            if parent.ref_count <= 1 and parent.soft_deleted:
                removed.append(parent)
                parent_path = parent.forked_from
                continue
            with self._journal.batch():
                for gone in removed:
                    self._journal.remove(gone.path)
                self._journal.save(replace(parent, ref_count=max(0, parent.ref_count - 1)))
            parent.ref_count = max(0, parent.ref_count - 1)
            break
        else:
            with self._journal.batch():
                for gone in removed:
                    self._journal.remove(gone.path)
        for gone in removed:
            self._streams.pop(gone.path, None)
            self._on_change(gone.path)

    # -- read ---------------------------------------------------------------

    def _iter_after(
        self, stream: Stream, start: int, cap: int | None
    ) -> Iterator[tuple[int, bytes]]:
        """(end, chunk) for every message that ends after ``start`` and not after ``cap``,
        a fork's inherited ones first."""
        fork_offset = stream.fork_offset
        if stream.forked_from is not None and fork_offset is not None and start < fork_offset:
            source = self._streams.get(stream.forked_from)
            if source is not None:
                limit = fork_offset if cap is None else min(cap, fork_offset)
                yield from self._iter_after(source, start, limit)
        for index in range(bisect.bisect_right(stream.ends, start), len(stream.ends)):
            end = stream.ends[index]
            if cap is not None and end > cap:
                return
            yield end, stream.chunks[index]

    def read(self, stream: Stream, start: int, limit: int) -> Batch:
        """Whole messages after ``start``: at least one when there is any, and no more than
        ``limit`` bytes beyond the first."""
        chunks: list[bytes] = []
        size = 0
        end = stream.tail
        for chunk_end, chunk in self._iter_after(stream, start, None):
            if chunks and size + len(chunk) > limit:
                return Batch(chunks, end, False)
            chunks.append(chunk)
            size += len(chunk)
            end = chunk_end
        return Batch(chunks, end, True)

    @property
    def journal(self) -> Journal:
        return self._journal

    def close_journal(self) -> None:
        self._journal.close()


def _same_type(content_type: str, stream: Stream) -> bool:
    return media_type(content_type) == media_type(stream.content_type)


def _expiry(stream: Stream) -> tuple[int | None, str | None]:
    return stream.ttl_seconds, stream.expires_at
