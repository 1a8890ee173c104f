"""The idempotent producer without I/O: buffering, batching, sequencing, and what answers mean.

:class:`Sequencer` owns everything a producer decides: which batch a message goes into,
when a batch is sealed and sent, the epoch and sequence number each batch carries, how many
are in flight, and what each answer from the server does to that state. The async driver
(``_producer_async``) only sends the requests it is handed and reports the answers back; the sync
producer (``_producer_threaded``) runs that same driver on a loop thread.

Sequencing rules, which make delivery exactly-once:

- A batch keeps its (epoch, seq) and its bytes across retries, so a resent batch that the
  server already stored is answered "duplicate" (204) instead of being stored twice.
- "Duplicate" counts as delivery only for a batch that may have been stored before: an
  earlier attempt reached the server, the batch was restored from a state file, or the
  session declared a replay. To a batch sent for the first time it means another session
  used these numbers and the batch was *not* stored: with ``auto_claim`` it moves to a fresh
  epoch, otherwise it fails with :class:`SequenceReusedError`.
- A batch is resent under a new number only when an answer proves it was not stored (403
  stale epoch to a first attempt of an ``auto_claim`` session, the duplicate above): then
  every unacknowledged batch moves to a new epoch, numbered from 0, once nothing is in flight
  under the old one. A batch that may be stored already is never renumbered: it fails with
  ``maybe_delivered``, as resending it under another number could store it twice.
- Gap-less: once a batch fails (its retries ran out, or the server refused it), nothing after
  it is stored in this session, so the stream always holds a prefix of what was appended.
  The batch and every later one fail; with a state file, a batch whose fate is unknown and
  those after it stay in the file, and the next session resends them under their numbers.
  Only ``gapless=False`` (fire-and-forget) skips a failed batch and sends the rest under a
  new epoch.
- At an epoch not yet acknowledged, one batch is in flight at a time: a new epoch must start
  at seq 0, and a later seq arriving first would be rejected outright.
- Sessions and fencing: with ``auto_claim`` a session starts at a fresh epoch (the wall clock
  in milliseconds, or above the server's when told so), so a newer session fences an older
  one. It claims above the server's epoch (403) only before its first acknowledgement: after
  that a 403 means a newer session took over, and this one stops, so two sessions never
  fence each other in turn."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .. import _core, telemetry
from .. import _errors as errors
from .. import _protocol as proto
from .._core import NOT_TAKEN, TAKEN
from .._errors import FailedBatch
from .._protocol import HttpRequest
from .._values import AppendResult, ProducerStats

# Producer-Epoch and Producer-Seq must stay within JavaScript's safe integers.
MAX_PRODUCER_NUMBER = (1 << 53) - 1


def fresh_epoch() -> int:
    """An epoch no earlier session on a clock that did not go back has used: milliseconds
    since 1970. Sessions that start later get higher epochs, so the newer fences the older."""
    return time.time_ns() // 1_000_000


class Waiter(Protocol):
    """Something awaiting one message's acknowledgement (a future of either flavour)."""

    def done(self) -> bool: ...
    def set_result(self, result: AppendResult) -> None: ...
    def set_exception(self, exception: BaseException) -> None: ...


@dataclass(frozen=True)
class ProducerSettings:
    """A producer's configuration, validated on construction."""

    url: str
    producer_id: str
    content_type: str
    epoch: int = 0
    auto_claim: bool = False
    linger: float = 0.005
    max_batch_bytes: int = 1 << 20
    max_in_flight: int = 5
    max_buffered_bytes: int = 64 << 20
    max_batch_items: int | None = None
    replay: bool = False
    gapless: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.producer_id, str) or not self.producer_id:
            raise ValueError("producer_id must be a non-empty string")
        proto.check_header("Producer-Id", self.producer_id)  # it travels as one
        epoch = self.epoch
        if (
            isinstance(epoch, bool)
            or not isinstance(epoch, int)
            or not 0 <= epoch <= MAX_PRODUCER_NUMBER
        ):
            raise ValueError(f"epoch must be an integer from 0 to 2**53-1, not {epoch!r}")
        if not self.linger >= 0:
            raise ValueError(f"linger_ms must be >= 0, not {self.linger * 1000!r}")
        for name in ("max_batch_bytes", "max_in_flight", "max_buffered_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        items = self.max_batch_items
        if items is not None and (
            isinstance(items, bool) or not isinstance(items, int) or items <= 0
        ):
            raise ValueError(f"max_batch_items must be a positive integer or None, not {items!r}")

    @property
    def json_mode(self) -> bool:
        return proto.is_json_content_type(self.content_type)


@dataclass(eq=False, slots=True)
class Batch:
    """One append request's worth of messages, with the number it travels under."""

    id: int
    body: bytes
    count: int
    waiters: list[Waiter] | None
    seq: int
    epoch: int
    close: bool = False
    # Some attempt may have reached the server and been stored, though no answer said so.
    maybe_stored: bool = False
    # Resend only once no batch with a lower seq is in flight (it arrived before them).
    after_predecessors: bool = False
    # The seq the server expected when it last answered this batch with a gap.
    gap_expected: int | None = None
    attempts: int = 0


@dataclass(frozen=True)
class StoredBatch:
    """A batch as a state file keeps it: enough to resend it under the same number."""

    id: int
    epoch: int
    seq: int
    count: int
    close: bool
    body: bytes


@dataclass(frozen=True)
class StoreChanges:
    """What a state file must record before the batches now due are sent: the producer's
    epoch and next seq, batches sealed or renumbered since the last write, and the ids of
    batches settled since (acknowledged or failed); ``taken`` is
    :attr:`Sequencer.messages_taken` without the open batch."""

    epoch: int
    next_seq: int
    taken: int
    upserts: list[StoredBatch]
    deletes: list[int]


@dataclass(frozen=True)
class Retry:
    """An answer worth resending the same batch after: the error, and the server's wait hint."""

    error: errors.DurableStreamError
    retry_after: float | None


class Sequencer:
    """The producer's state; every method is safe to call from any thread."""

    def __init__(self, settings: ProducerSettings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self._json = settings.json_mode
        self._builder = _core.impl.BatchBuilder(self._json, settings.max_batch_bytes)
        self._builder.max_items = settings.max_batch_items or 0
        # Nothing is taken before the sender is there to send it (see sender_started).
        self._builder.accepting = False
        self._open_waiters: list[Waiter] = []
        self._open_since = 0.0
        self._next_id = 0
        self.epoch = max(settings.epoch, fresh_epoch()) if settings.auto_claim else settings.epoch
        self.next_seq = 0
        self._epoch_confirmed = False
        # Whether this session has had any batch acknowledged: before that, a 403 may be an
        # earlier session's epoch, worth claiming above; after it, a newer session's fence.
        self._acknowledged_any = False
        self._ready: deque[Batch] = deque()
        self._in_flight: dict[int, Batch] = {}
        self._unresolved: dict[int, Batch] = {}  # by id; ids only grow, so the first is the oldest
        self._sealed_bytes = 0
        self._max_buffered = settings.max_buffered_bytes
        self._builder.room = self._max_buffered
        self._new_epoch_at_least: int | None = None
        self._fatal: errors.DurableStreamError | None = None
        # Set when a batch failed in a gap-less session: the error every batch after it fails
        # with, and whether those stay in the state file for the next session.
        self._halted: errors.ProducerClosedError | None = None
        self._halt_keeps = False
        self._closed = False
        # Messages taken and not dropped (sealed ones; the open batch's are in the builder).
        self._taken_sealed = 0
        self.failures: list[FailedBatch] = []
        # Outcomes to hand to user code outside the lock: (waiter, result-or-error) pairs and
        # failures for the on_error hook.
        self._settle: list[tuple[Waiter, AppendResult | BaseException]] = []
        self._report: list[FailedBatch] = []
        # Changes a state file has yet to record (see track_changes).
        self._tracking = False
        self._dirty: dict[int, Batch] = {}
        self._gone: list[int] = []
        self._stored_meta: tuple[int, int, int] | None = None
        # For stats(): counted per batch, never per message.
        self._acked_messages = self._acked_bytes = self._acked_batches = 0
        self._failed_messages = self._failed_batches = 0
        self._attempts_failed = 0
        self._epoch_changes = 0
        telemetry.producers.add(self)

    # -- taking messages ------------------------------------------------------------------------

    @property
    def buffered_bytes(self) -> int:
        open_bytes: int = self._builder.nbytes
        return self._sealed_bytes + open_bytes

    @property
    def batches_in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def messages_taken(self) -> int:
        """Messages taken and not dropped: each is acknowledged, on its way, or kept in the
        state file for the next session. With a state file, earlier sessions' count too."""
        return self._taken_sealed + len(self._builder)

    @property
    def halted(self) -> bool:
        """A batch failed in a gap-less session: nothing after it goes out."""
        return self._halted is not None

    def stats(self) -> ProducerStats:
        with self.lock:
            unresolved = self._unresolved.values()
            return ProducerStats(
                epoch=self.epoch,
                next_seq=self.next_seq,
                messages_acknowledged=self._acked_messages,
                bytes_acknowledged=self._acked_bytes,
                batches_acknowledged=self._acked_batches,
                messages_failed=self._failed_messages,
                batches_failed=self._failed_batches,
                batches_in_flight=len(self._in_flight),
                batches_queued=len(self._ready),
                buffered_messages=sum(b.count for b in unresolved) + len(self._builder),
                buffered_bytes=self.buffered_bytes,
                attempts_failed=self._attempts_failed,
                epoch_changes=self._epoch_changes,
            )

    def full(self) -> bool:
        return self.buffered_bytes >= self.settings.max_buffered_bytes

    def check_open(self) -> None:
        if self._fatal is not None:
            raise errors.ProducerClosedError(
                f"the producer stopped: {self._fatal.message}", url=self.settings.url
            ) from self._fatal
        if self._closed:
            raise errors.ProducerClosedError("the producer is closed", url=self.settings.url)

    def add(self, data: Any, waiter: Waiter | None = None) -> bool:
        """Buffer one message. Returns whether the sender should wake up (a batch was sealed,
        or a linger period starts). Raises :class:`BufferFullError` and leaves nothing behind
        when the buffer is full (it may exceed ``max_buffered_bytes`` by one message)."""
        outcome = self._builder.offer(data)
        if outcome == TAKEN and waiter is None:
            return False
        return self.settle_offer(outcome, data, waiter)

    def intake(self, on_outcome: Callable[[Any, int], object]) -> Callable[[Any], None]:
        """:meth:`add` in one native call, for a caller on the sender's thread: the builder
        offers the message and calls ``on_outcome(data, outcome)`` only when that leaves
        something to do, which passes it to :meth:`settle_offer`."""
        self._builder.on_outcome = on_outcome
        add: Callable[[Any], None] = self._builder.add
        return add

    def sender_started(self) -> None:
        """The sender runs: messages are taken from now on (unless closed or stopped)."""
        with self.lock:
            if not self._closed and self._fatal is None:
                self._builder.accepting = True

    def settle_offer(self, outcome: int, data: Any, waiter: Waiter | None = None) -> bool:
        """The rest of :meth:`add` after the builder's ``offer(data)`` answered ``outcome``
        (what a producer calls itself when the builder's answer leaves something to do)."""
        builder = self._builder
        if outcome == NOT_TAKEN:
            if not builder.accepting:
                self.check_open()
            if self._sealed_bytes + builder.nbytes >= self._max_buffered:
                raise errors.BufferFullError(
                    f"the producer's buffer holds {self.buffered_bytes} bytes, its limit is "
                    f"{self._max_buffered} (max_buffered_bytes)",
                    url=self.settings.url,
                )
            if not builder.push(data):
                self._seal()
                builder.push(data)
        if waiter is not None:
            self._open_waiters.append(waiter)
        return self._took()

    def _took(self) -> bool:
        """A message went into the open batch: seal the batch if that filled it, start its
        linger if that opened it. Whether the sender should wake up."""
        count = len(self._builder)
        if count == self._builder.max_items:
            self._seal()
            return True
        if count == 1:
            self._open_since = time.monotonic()
            return True
        return False

    def add_many(self, items: Iterable[Any]) -> bool:
        """Buffer a group of messages at once: the sender cannot seal a batch part-way through
        the group, so its batches are the same whatever the threads' timing (what a replay
        deduplicated by sequence number needs). The buffer limit is checked once, before the
        group. If a message is refused (e.g. invalid JSON), those before it stay buffered and
        the error says how many."""
        if not self._builder.accepting:
            self.check_open()
        if self.full():
            raise errors.BufferFullError(
                f"the producer's buffer holds {self.buffered_bytes} bytes, its limit is "
                f"{self._max_buffered} (max_buffered_bytes)",
                url=self.settings.url,
            )
        builder = self._builder
        wake = False
        taken = 0
        try:
            for item in items:
                if not builder.push(item):
                    self._seal()
                    builder.push(item)
                taken += 1
                wake = self._took() or wake
        except Exception as exc:
            add_note = getattr(exc, "add_note", None)  # Python 3.11+
            if add_note is not None:
                add_note(f"the {taken} message(s) before it in the group were taken")
            raise
        return wake

    def _add_locked(self, data: Any, waiter: Waiter | None = None) -> bool:
        with self.lock:
            return Sequencer.add(self, data, waiter)

    def _add_many_locked(self, items: Iterable[Any]) -> bool:
        with self.lock:
            return Sequencer.add_many(self, items)

    def share_between_threads(self) -> None:
        """Appends will come from other threads than the sender's: take the lock for them."""
        self.add = self._add_locked  # type: ignore[method-assign]
        self.add_many = self._add_many_locked  # type: ignore[method-assign]

    def _refuse(self, *, closed: bool = False) -> None:
        """Take no more messages (check_open says why: closed, or a fatal error)."""
        if closed:
            self._closed = True
        self._builder.accepting = False

    def _count_sealed(self, nbytes: int) -> None:
        self._sealed_bytes += nbytes
        self._builder.room = self._max_buffered - self._sealed_bytes

    def _seal(self, *, close: bool = False) -> Batch:
        count = len(self._builder)
        body = self._builder.take()
        batch = Batch(
            id=self._next_id,
            body=body,
            count=count,
            waiters=self._open_waiters or None,
            seq=self.next_seq,
            epoch=self.epoch,
            close=close,
        )
        self._next_id += 1
        self.next_seq += 1
        self._open_waiters = []
        self._ready.append(batch)
        self._unresolved[batch.id] = batch
        self._count_sealed(len(body))
        self._taken_sealed += batch.count
        if self._tracking:
            self._dirty[batch.id] = batch
        return batch

    def seal_all(self) -> int:
        """Seal the open batch now (flush); returns the id every earlier batch is below."""
        with self.lock:
            if len(self._builder):
                self._seal()
            return self._next_id

    def add_close(self, body: bytes, waiter: Waiter) -> None:
        """Queue the request that closes the stream, after everything buffered."""
        with self.lock:
            self.check_open()
            if len(self._builder):
                self._seal()
            batch = self._seal(close=True)
            batch.body = body
            batch.count = 1 if body else 0
            self._taken_sealed += batch.count
            batch.waiters = [waiter]
            self._count_sealed(len(body))
            self._refuse(closed=True)

    def close(self) -> None:
        with self.lock:
            self._refuse(closed=True)

    # -- what to send -------------------------------------------------------------------------

    def due(self, now: float, *, hold_open: bool = False) -> tuple[list[Batch], float | None]:
        """The batches to send now, and when to look again if nothing else happens first
        (``None``: only when woken). ``hold_open``: a request now would wait for a connection,
        so while one of this producer's is on its way the open batch keeps growing (sealed
        when that one is answered) rather than queue as one more small request."""
        with self.lock:
            if self._new_epoch_at_least is not None:
                if self._in_flight:
                    return [], None
                self._start_epoch(self._new_epoch_at_least)
            window = self.settings.max_in_flight if self._epoch_confirmed else 1
            out: list[Batch] = []
            ready = self._ready
            in_flight = self._in_flight
            while ready and len(in_flight) < window:
                batch = ready[0]
                if batch.after_predecessors and any(seq < batch.seq for seq in in_flight):
                    break
                ready.popleft()
                batch.after_predecessors = False
                in_flight[batch.seq] = batch
                out.append(batch)
            wake_at = None
            if len(self._builder) and not ready and len(in_flight) < window:
                if hold_open and in_flight:
                    return out, None  # woken when an answer comes
                deadline = self._open_since + self.settings.linger
                if now >= deadline or self._closed:
                    batch = self._seal()
                    ready.popleft()
                    in_flight[batch.seq] = batch
                    out.append(batch)
                else:
                    wake_at = deadline
            return out, wake_at

    def request(self, batch: Batch) -> HttpRequest:
        s = self.settings
        return proto.append_request(
            s.url,
            batch.body,
            content_type=s.content_type,
            headers={},
            close=batch.close,
            producer=(s.producer_id, batch.epoch, batch.seq),
        )

    # -- what answers mean --------------------------------------------------------------------

    def on_answer(
        self, batch: Batch, status: int, headers: Mapping[str, str], body: bytes
    ) -> Retry | None:
        """Apply the server's answer to ``batch``; a :class:`Retry` means "send it again, same
        number", ``None`` that the batch is settled (acknowledged, failed or requeued)."""
        with self.lock:
            batch.attempts += 1
            url = self.settings.url
            if self._halted is not None and status not in (200, 204):
                # An earlier batch failed: whatever this answer says, nothing more is stored.
                self._fail(batch, self._halted, kept=self._halt_keeps)
                return None
            if status in (200, 204):
                result = proto.append_result(status, headers, body, url=url, producer=True)
                if batch.close and not batch.body and result.duplicate:
                    # A close without data is answered 204 when it closes the stream, too: it
                    # says nothing of a duplicate (PROTOCOL.md 5.6).
                    result = replace(result, duplicate=False)
                if (
                    status == 204
                    and not batch.maybe_stored
                    and not batch.close
                    and not self.settings.replay
                ):
                    # Nothing of ours can have stored this batch: another session used these
                    # numbers, and the server kept its messages, not these.
                    self._sequence_reused(batch, result)
                    return None
                self._acknowledge(batch, result)
                return None
            error = proto.error_for_status(
                status, headers, body, url=url, operation="append", producer=True
            )
            if proto.is_transient_status(status):
                self._attempts_failed += 1
                if status != 503 and status != 429:
                    batch.maybe_stored = True
                return Retry(error, proto.retry_after_seconds(headers))
            if isinstance(error, errors.SequenceGapError):
                if self._has_predecessors(batch):
                    self._requeue(batch, after_predecessors=True)
                    return None
                if batch.gap_expected != error.expected_seq:
                    # The server answered before an earlier batch that has been acknowledged
                    # since; the same number fits now.
                    batch.gap_expected = error.expected_seq
                    self._requeue(batch, after_predecessors=False)
                    return None
                # The same gap twice with nothing before it on the way: the server lost this
                # producer's state. The batch was not stored, and a later session has to
                # start a new epoch to store anything.
                self._failed(batch, error, keep=False, resume=(batch.epoch + 1, 0))
                return None
            if isinstance(error, errors.StaleEpochError):
                if self.settings.auto_claim and not self._acknowledged_any:
                    if batch.maybe_stored:
                        # An earlier attempt (or session) may have stored it before the fence.
                        self._failed(batch, error, keep=False)
                    else:
                        self._requeue(batch, after_predecessors=False)
                    self._want_new_epoch(max(self.epoch, error.current_epoch or 0) + 1)
                    return None
                self._stop(error, batch)
                return None
            if isinstance(error, errors.StreamClosedError) and batch.close and batch.maybe_stored:
                # Our own earlier attempt closed it; the answer to that attempt was lost.
                self._acknowledge(batch, AppendResult(status, error.final_offset, closed=True))
                return None
            if isinstance(
                error,
                (errors.StreamClosedError, errors.StreamNotFoundError, errors.RetentionGoneError),
            ):
                self._stop(error, batch)
                return None
            # This batch is refused (bad JSON, too large, wrong content type...). The server's
            # sequence did not advance: a later session goes on from this very number.
            self._failed(batch, error, keep=False, resume=(batch.epoch, batch.seq))
            return None

    def on_transport_error(self, batch: Batch, *, reached_server: bool) -> None:
        with self.lock:
            batch.attempts += 1
            self._attempts_failed += 1
            if reached_server:
                batch.maybe_stored = True

    def give_up(self, batch: Batch, error: errors.DurableStreamError) -> None:
        """Retries for ``batch`` ran out (or were cut short): its fate is unknown. It fails,
        and so does everything after it (see :meth:`_failed`); with a state file they stay
        in it, for the next session to resend under their numbers."""
        with self.lock:
            if batch.id not in self._unresolved:
                return
            if self._halted is not None:
                self._fail(batch, self._halted, kept=self._halt_keeps)
                return
            self._failed(batch, error, keep=self._tracking and self._fatal is None)

    def fail_unresolved(self, error: errors.DurableStreamError, *, kept: bool = False) -> None:
        """Fail everything not yet settled (close() ran out of time); ``kept``: they stay in
        the state file, for the next session on it to resend."""
        with self.lock:
            if len(self._builder):
                self._seal()
            for batch in list(self._unresolved.values()):
                if batch.seq in self._in_flight and self._in_flight[batch.seq] is batch:
                    batch.maybe_stored = True  # its request may still reach the server
                self._fail(batch, error, kept=kept)
            self._ready.clear()
            self._refuse(closed=True)

    def _failed(
        self,
        batch: Batch,
        error: errors.DurableStreamError,
        *,
        keep: bool,
        resume: tuple[int, int] | None = None,
    ) -> None:
        """``batch`` will not be delivered in this session.

        Gap-less (the default): nothing after it is sent either, so the stream holds a prefix
        of what was appended; every later batch fails too. ``keep``: they all stay in the
        state file and the next session resends them under their numbers (the batch's fate is
        unknown). Else they are dropped, and ``resume`` is the (epoch, seq) the next session
        on the state file starts from. ``gapless=False``: only this batch fails; the rest go
        out under a new epoch, leaving a hole in the stream."""
        if not self.settings.gapless:
            self._fail(batch, error)
            self._want_new_epoch(self.epoch + 1)
            return
        self._fail(batch, error, kept=keep)
        if self._fatal is not None:
            return
        where = (
            "; it and the batch before it stay in the state file, and the next producer opened "
            "on it resends them"
            if keep
            else ""
        )
        halted = errors.ProducerClosedError(
            f"not sent: the batch before it (epoch {batch.epoch}, seq {batch.seq}) failed, and "
            f"a gap-less producer sends nothing after a failed batch{where}",
            url=self.settings.url,
        )
        halted.__cause__ = error
        self._halted = halted
        self._halt_keeps = keep
        self._fatal = error
        self._refuse()
        if len(self._builder):
            self._seal()
        while self._ready:
            self._fail(self._ready.popleft(), halted, kept=keep)
        if resume is not None:
            self.epoch, self.next_seq = resume

    def _sequence_reused(self, batch: Batch, result: AppendResult) -> None:
        if self.settings.auto_claim:
            self._requeue(batch, after_predecessors=False)
            self._want_new_epoch(max(self.epoch + 1, fresh_epoch()))
            return
        error = errors.SequenceReusedError(
            f"producer {self.settings.producer_id!r}: epoch {batch.epoch} seq {batch.seq} was "
            f"already used by an earlier session (the server is at seq {result.producer_seq}), "
            f"so this batch of {batch.count} message(s) was not stored. Start each session at "
            "an epoch of its own (auto_claim=True, or state= to resume where the last one "
            "stopped), or pass replay=True if you are re-sending that session's messages",
            url=self.settings.url,
        )
        self._stop(error, batch)

    # -- state changes ------------------------------------------------------------------------

    def _resolve(self, batch: Batch, *, kept: bool = False) -> None:
        del self._unresolved[batch.id]
        self._in_flight.pop(batch.seq, None)
        self._count_sealed(-len(batch.body))
        if self._tracking and not kept:
            self._dirty.pop(batch.id, None)
            self._gone.append(batch.id)

    def _acknowledge(self, batch: Batch, result: AppendResult) -> None:
        self._resolve(batch)
        self._acked_messages += batch.count
        self._acked_bytes += len(batch.body)
        self._acked_batches += 1
        self._acknowledged_any = True
        if batch.epoch == self.epoch:
            self._epoch_confirmed = True
        for waiter in batch.waiters or ():
            self._settle.append((waiter, result))

    def _fail(self, batch: Batch, error: errors.DurableStreamError, *, kept: bool = False) -> None:
        if batch.id not in self._unresolved:
            return
        self._resolve(batch, kept=kept)
        if not kept:
            self._taken_sealed -= batch.count
        self._failed_messages += batch.count
        self._failed_batches += 1
        failed = FailedBatch(
            batch.seq,
            batch.epoch,
            batch.count,
            batch.body,
            error,
            batch.maybe_stored,
            self._json,
            kept,
        )
        self.failures.append(failed)
        self._report.append(failed)
        for waiter in batch.waiters or ():
            self._settle.append((waiter, error))

    def _has_predecessors(self, batch: Batch) -> bool:
        """Whether a batch numbered before ``batch`` is in flight or waiting to be resent."""
        if self._ready and self._ready[0].seq < batch.seq:
            return True
        return any(seq < batch.seq for seq in self._in_flight)

    def _requeue(self, batch: Batch, *, after_predecessors: bool) -> None:
        """Queue ``batch`` to be sent again: only after an answer proved it is not stored."""
        del self._in_flight[batch.seq]
        batch.maybe_stored = False
        batch.after_predecessors = after_predecessors
        ready = self._ready
        index = 0
        while index < len(ready) and ready[index].seq < batch.seq:
            index += 1
        ready.insert(index, batch)

    def _want_new_epoch(self, at_least: int) -> None:
        if self._halted is not None:
            return
        current = self._new_epoch_at_least
        self._new_epoch_at_least = at_least if current is None else max(current, at_least)

    def _start_epoch(self, at_least: int) -> None:
        epoch = max(self.epoch + 1, at_least)
        if epoch > MAX_PRODUCER_NUMBER:
            error = errors.ProducerError(
                f"producer {self.settings.producer_id!r} cannot move past epoch {self.epoch}: "
                "epochs stop at 2**53-1",
                url=self.settings.url,
            )
            self._stop(error)
            return
        for batch in [b for b in self._ready if b.maybe_stored]:
            # Restored from a state file and perhaps stored by the session that wrote it.
            self._ready.remove(batch)
            self._failed(
                batch,
                errors.ProducerError(
                    f"producer {self.settings.producer_id!r}: epoch {batch.epoch} seq "
                    f"{batch.seq} may already be stored by an earlier session; it is not "
                    f"resent under epoch {epoch}, where it could be stored twice",
                    url=self.settings.url,
                ),
                keep=False,
            )
            if self._halted is not None:
                return
        logging.getLogger("durable_streams").warning(
            "producer %s of %s moves from epoch %d to %d",
            self.settings.producer_id,
            errors.redact_url(self.settings.url),
            self.epoch,
            epoch,
        )
        self.epoch = epoch
        self._epoch_changes += 1
        self._new_epoch_at_least = None
        self._epoch_confirmed = False
        for seq, batch in enumerate(self._ready):
            batch.seq = seq
            batch.epoch = epoch
            batch.after_predecessors = False
            batch.gap_expected = None
            if self._tracking:
                self._dirty[batch.id] = batch
        self.next_seq = len(self._ready)

    def _stop(self, error: errors.DurableStreamError, *batches: Batch) -> None:
        """A fatal error: ``batches`` and everything not yet sent fail with it, and the
        producer takes no more messages; batches in flight settle by their own answers."""
        self._fatal = error
        self._refuse()
        for batch in batches:
            self._fail(batch, error)
        if len(self._builder):
            self._seal()
        while self._ready:
            self._fail(self._ready.popleft(), error)

    def abort(self, error: errors.DurableStreamError, unsent: Iterable[Batch]) -> None:
        """A fatal error before ``unsent`` (taken from :meth:`due`) went out: see _stop."""
        with self.lock:
            self._stop(error, *unsent)

    # -- a state file ---------------------------------------------------------------------------

    def restore(
        self, epoch: int, next_seq: int, batches: Iterable[StoredBatch], taken: int
    ) -> None:
        """Resume where a state file says an earlier session stopped: at its epoch and next
        seq, with its unsettled batches queued first under their own numbers. Each may have
        been stored already, so "duplicate" counts as its delivery. ``taken``: the messages
        earlier sessions took and did not drop (the restored batches' among them)."""
        with self.lock:
            self.epoch = epoch
            self.next_seq = next_seq
            self._taken_sealed = taken
            for stored in sorted(batches, key=lambda b: b.seq):
                batch = Batch(
                    id=stored.id,
                    body=stored.body,
                    count=stored.count,
                    waiters=None,
                    seq=stored.seq,
                    epoch=stored.epoch,
                    close=stored.close,
                    maybe_stored=True,
                )
                self._ready.append(batch)
                self._unresolved[batch.id] = batch
                self._count_sealed(len(batch.body))
                self._next_id = max(self._next_id, batch.id + 1)
            if any(b.close for b in self._ready):
                self._refuse(closed=True)

    def track_changes(self) -> None:
        """Keep what :meth:`take_changes` returns, for a state file."""
        with self.lock:
            self._tracking = True
            self._stored_meta = (self.epoch, self.next_seq, self._taken_sealed)

    def take_changes(self) -> StoreChanges | None:
        """What changed since the last call, or None; call it before sending what
        :meth:`due` returned, and record it durably first."""
        with self.lock:
            meta = (self.epoch, self.next_seq, self._taken_sealed)
            if not self._dirty and not self._gone and meta == self._stored_meta:
                return None
            upserts = [
                StoredBatch(b.id, b.epoch, b.seq, b.count, b.close, b.body)
                for b in self._dirty.values()
            ]
            changes = StoreChanges(*meta, upserts, self._gone)
            self._dirty = {}
            self._gone = []
            self._stored_meta = meta
            return changes

    def start_new_epoch(self) -> None:
        """``restart()``: what follows goes out under the next epoch, from seq 0."""
        with self.lock:
            self._want_new_epoch(self.epoch + 1)
            if not self._in_flight:
                self._start_epoch(self.epoch + 1)

    # -- progress -----------------------------------------------------------------------------

    def settled_below(self, batch_id: int) -> bool:
        """Whether every batch sealed before ``batch_id`` is acknowledged or failed."""
        with self.lock:
            oldest = next(iter(self._unresolved), None)
            return oldest is None or oldest >= batch_id

    def idle(self) -> bool:
        with self.lock:
            return not self._unresolved and not len(self._builder)

    def has_outcomes(self) -> bool:
        return bool(self._settle or self._report)

    def take_outcomes(
        self,
    ) -> tuple[list[tuple[Waiter, AppendResult | BaseException]], list[FailedBatch]]:
        with self.lock:
            settle, self._settle = self._settle, []
            report, self._report = self._report, []
            return settle, report

    def take_failures(self) -> list[FailedBatch]:
        with self.lock:
            failures, self.failures = self.failures, []
            return failures


def settle(
    outcomes: list[tuple[Waiter, AppendResult | BaseException]],
    report: list[FailedBatch],
    on_error: Callable[[errors.DurableStreamError], Any] | None,
) -> None:
    """Hand outcomes to user code: futures first, then the ``on_error`` hook per failure."""
    for waiter, outcome in outcomes:
        if waiter.done():
            continue
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
    if on_error is not None:
        for failed in report:
            try:
                on_error(failed.error)
            except Exception:  # a broken hook must not stop delivery of everything else
                logging.getLogger("durable_streams").exception("on_error hook raised")


def undelivered(failures: list[FailedBatch], url: str) -> errors.UndeliveredError:
    count = sum(f.count for f in failures)
    first = failures[0].error
    err = errors.UndeliveredError(
        f"{len(failures)} batch(es) with {count} message(s) were not delivered; first: "
        f"{first._describe(with_url=False)}",
        failures,
        url=url,
    )
    err.__cause__ = first
    return err
