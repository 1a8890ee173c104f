"""The async idempotent producer: a driver that sends what :class:`Sequencer` decides."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Generator, Iterable
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import httpx

from .. import _errors as errors
from .. import telemetry
from .._defaults import async_default_dispatcher
from .._dispatch_async import ANSWER_LIMIT, AsyncClientLike, AsyncDispatcher, dispatcher_for
from .._errors import FailedBatch
from .._flavours import resolve_async
from .._log import log, retrying
from .._options import Headers, make_timeout, with_dynamic
from .._protocol import ERROR_BODY_LIMIT, check_headers, check_url, encode_append_body
from .._retry import RetryPolicy, RetryState
from .._transport import AsyncTransport
from .._transport._request import Verify
from .._values import AppendResult, ProducerStats
from ._handle import HandleBase
from ._sequencer import Batch, ProducerSettings, Sequencer, Waiter, settle, undelivered
from ._state_file import StateFile

__all__ = ["Acknowledgement", "IdempotentProducer"]

ErrorHook = Callable[[errors.DurableStreamError], Any]

DEFAULT_CLOSE_TIMEOUT = 30.0


class Acknowledgement:
    """The acknowledgement of one message sent with :meth:`IdempotentProducer.append`.

    ``await`` it for the :class:`AppendResult` of the batch that carried the message (its
    ``offset`` is the tail after that batch; ``duplicate`` says a resend found it stored), or
    the typed error that batch failed with."""

    __slots__ = ("_event", "_outcome")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._outcome: AppendResult | BaseException | None = None

    def done(self) -> bool:
        return self._outcome is not None

    def set_result(self, result: AppendResult) -> None:
        self._outcome = result
        self._event.set()

    def set_exception(self, exception: BaseException) -> None:
        self._outcome = exception
        self._event.set()

    def result(self) -> AppendResult:
        """The result, once :meth:`done`; raises the batch's error if it failed."""
        outcome = self._outcome
        if outcome is None:
            raise errors.ProducerError("the message is not acknowledged yet")
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def wait(self) -> AppendResult:
        await self._event.wait()
        return self.result()

    def __await__(self) -> Generator[Any, None, AppendResult]:
        return self.wait().__await__()


def settings_from(
    stream: HandleBase | str,
    *,
    producer_id: str,
    epoch: int,
    auto_claim: bool,
    linger_ms: float,
    max_batch_bytes: int,
    max_in_flight: int,
    max_buffered_bytes: int,
    content_type: str | None,
    max_batch_items: int | None = None,
    replay: bool = False,
    gapless: bool = True,
) -> ProducerSettings:
    url = check_url(stream) if isinstance(stream, str) else stream.url
    if content_type is None and not isinstance(stream, str):
        content_type = stream.content_type
    if content_type is None:
        raise ValueError(
            "the stream's content type is unknown: pass content_type=, or a handle from "
            "create() or connect()"
        )
    if not isinstance(linger_ms, (int, float)) or not math.isfinite(linger_ms):
        raise ValueError(f"linger_ms must be a finite number, not {linger_ms!r}")
    return ProducerSettings(
        url=url,
        producer_id=producer_id,
        content_type=content_type,
        epoch=epoch,
        auto_claim=auto_claim,
        linger=linger_ms / 1000,
        max_batch_bytes=max_batch_bytes,
        max_in_flight=max_in_flight,
        max_buffered_bytes=max_buffered_bytes,
        max_batch_items=max_batch_items,
        replay=replay,
        gapless=gapless,
    )


def open_state_file(core: Sequencer, path: str | os.PathLike[str]) -> StateFile:
    """Open the producer's state file and resume ``core`` where the file's last session
    stopped (or record a new session's epoch); from then on ``core`` tracks changes."""
    settings = core.settings
    state_file = StateFile(
        path,
        url=settings.url,
        producer_id=settings.producer_id,
        json_mode=settings.json_mode,
        epoch=core.epoch,
    )
    if state_file.state is not None:
        state = state_file.state
        core.restore(state.epoch, state.next_seq, state.batches, state.taken)
    core.track_changes()
    return state_file


def abandoned_note(failures: list[FailedBatch]) -> str:
    """What an interrupted producer left undelivered, in words for the interrupt's note."""
    if not failures:
        return ""
    count = sum(f.count for f in failures)
    kept = (
        " (kept in the state file: the next producer on it resends them)"
        if failures[0].kept
        else ""
    )
    return f"the producer was stopped with {count} message(s) not delivered{kept}"


def add_note(exc: BaseException, note: str) -> None:
    add = getattr(exc, "add_note", None)  # Python 3.11+
    if add is not None:
        add(note)


# The metric attributes of a producer's batches.
PRODUCE = {"durable_streams.operation": "produce"}


class IdempotentProducer:
    """Exactly-once, batched, pipelined appends to one stream (async: asyncio or trio).

    Messages given to :meth:`append_nowait` (or :meth:`append`) are gathered into batches of
    up to ``max_batch_bytes``, sent after at most ``linger_ms``, with up to ``max_in_flight``
    requests on the way at once. Every batch carries ``Producer-Id``, ``Producer-Epoch`` and
    ``Producer-Seq``, so a batch resent after a network failure is stored once. Failed
    batches are reported to ``on_error`` as they fail and by :meth:`flush` / :meth:`close`,
    which raise :class:`UndeliveredError` listing them; nothing is dropped silently.

    The stream always holds a prefix of what was appended (gap-less): once a batch fails
    (its retries ran out, or the server refused it), nothing after it is stored; it and every
    later batch fail, and the producer takes no more messages. With ``state=``, a batch whose
    fate is unknown and those after it stay in the file for the next session to resend.
    ``gapless=False`` asks for fire-and-forget instead: a failed batch is reported and
    skipped, and later ones still go out (under a new epoch), leaving a hole in the stream.

    ``stream`` is an :class:`AsyncDurableStream` (its HTTP client is shared), a
    :class:`DurableStream` or a URL (then ``content_type`` is needed unless the handle knows
    it). A handle's headers, params, timeout and retry policy apply unless given here.

    The server deduplicates by ``producer_id`` (one logical writer), ``epoch`` (one session
    of it: a newer epoch fences the older ones, whose appends then get 403) and a sequence
    number per batch within the epoch. A session must not reuse an earlier session's epoch
    for other messages: the server would answer "duplicate" and store nothing. So:

    - ``auto_claim=True``: each session takes an epoch of its own (the clock in ms, or above
      the server's epoch when a 403 says it is higher) before its first batch is stored; it
      fences older sessions, and stops with :class:`StaleEpochError` once a newer one fences
      it. Exactly-once within a session; a batch in flight when a process dies is not resent.
    - ``state="worker-7.producer"``: a state file keeps the epoch, the next sequence number
      and every batch not yet acknowledged; a session started on it resends those under their
      own numbers and goes on, so the stream holds each message once across crashes and
      restarts. It costs one fsync per write before sending. A message is in the file once
      its batch is sealed (within ``linger_ms``, or when full) and the sender has run;
      after :meth:`flush` returns, everything appended before it is on the server.
    - Neither: the session runs at ``epoch`` (0 by default); a batch answered "duplicate"
      on its first send fails with :class:`SequenceReusedError`, and the producer stops.
    - ``replay=True``: this session re-sends an earlier session's messages under the same
      epoch and numbers on purpose (e.g. :meth:`append_many_nowait` of the same group), so
      "duplicate" means "already stored" and counts as delivered.

    To feed the same input again after a failure or a crash, open the producer on the same
    state file and skip the first :attr:`messages_taken` items of the input: the file's
    sessions took those, and each is stored or resent by this session.

    It starts sending on the first append, under asyncio or trio; ``async with
    IdempotentProducer(...) as producer:`` also closes it. Call :meth:`close` when done.
    """

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
        client: AsyncClientLike | httpx.AsyncClient | None = None,
    ) -> None:
        check_headers(headers)
        own_timeout = None if timeout is None else make_timeout(timeout)
        settings = settings_from(
            stream,
            producer_id=producer_id,
            epoch=epoch,
            auto_claim=auto_claim,
            linger_ms=linger_ms,
            max_batch_bytes=max_batch_bytes,
            max_in_flight=max_in_flight,
            max_buffered_bytes=max_buffered_bytes,
            content_type=content_type,
            max_batch_items=max_batch_items,
            replay=replay,
            gapless=gapless,
        )
        self._core = Sequencer(settings)
        # Each message goes straight into the core; Python runs only when there is more to do.
        self.append_nowait = self._core.intake(self._settle_nowait)  # type: ignore[method-assign,assignment]
        self._state_file: StateFile | None = None
        self._state_broken = False  # a write failed: the producer stopped, sends nothing more
        self._close_result: AppendResult | None = None
        self._on_error = on_error
        handle = stream if isinstance(stream, HandleBase) else None
        self._retry = retry or getattr(handle, "_retry", None) or RetryPolicy()
        self._headers = headers if headers is not None else getattr(handle, "_headers", None)
        self._params = params if params is not None else getattr(handle, "_params", None)
        if own_timeout is not None:
            self._timeout = own_timeout
        else:
            self._timeout = make_timeout(getattr(handle, "_timeout", None))
        self._verify: Verify = getattr(handle, "_verify", True)
        self._transport: AsyncTransport | None = None
        self._dispatcher = dispatcher_for(client, self._verify)
        # An async handle's pool is shared (not imported by name: the handle's append_stream
        # imports this module).
        handle_dispatcher = getattr(handle, "_dispatcher", None)
        if client is None and isinstance(handle_dispatcher, AsyncDispatcher):
            self._dispatcher = handle_dispatcher
        self._task_group: anyio.abc.TaskGroup | None = None
        self._entered_group: anyio.abc.TaskGroup | None = None
        self._asyncio_task: asyncio.Task[None] | None = None
        self._wake: anyio.Event | None = None
        self._progress: anyio.Event | None = None
        self._finished = False
        self._stopping = False
        self._runner_done: anyio.Event | None = None
        # How a thread other than the event loop's asks the sender to look again; the sync
        # producer replaces it.
        self._notify: Callable[[], None] = self._wake_up
        if state is not None:
            self._state_file = open_state_file(self._core, state)

    # -- facts ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._core.settings.url

    @property
    def producer_id(self) -> str:
        return self._core.settings.producer_id

    @property
    def epoch(self) -> int:
        """The epoch batches go out under now (it moves on with restart() or a claim)."""
        return self._core.epoch

    @property
    def next_seq(self) -> int:
        """The sequence number the next sealed batch gets."""
        return self._core.next_seq

    @property
    def buffered_bytes(self) -> int:
        """Bytes taken but not yet acknowledged or failed."""
        return self._core.buffered_bytes

    @property
    def messages_taken(self) -> int:
        """Messages this producer took and did not drop: each is acknowledged, on its way, or
        kept in the state file to be resent. With ``state=``, earlier sessions on the file
        count too: right after opening, it is how much of an input fed again to skip."""
        return self._core.messages_taken

    def stats(self) -> ProducerStats:
        """A snapshot of what this producer holds and has delivered; cheap, callable from any
        thread at any time."""
        return self._core.stats()

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None and not self._finished and not core.idle():
            warnings.warn(
                f"{self!r} was garbage-collected with {core.buffered_bytes} bytes not yet "
                "delivered; flush() or close() it before letting go",
                ResourceWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {errors.redact_url(self.url)} "
            f"producer_id={self.producer_id!r} epoch={self.epoch} next_seq={self.next_seq}>"
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> IdempotentProducer:
        group = anyio.create_task_group()
        await group.__aenter__()
        self._entered_group = group
        self._prepare()
        group.start_soon(self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group = self._entered_group
        try:
            if isinstance(exc, (KeyboardInterrupt, anyio.get_cancelled_exc_class())):
                # Leaving by cancellation or Ctrl+C: stop now rather than wait to deliver.
                with anyio.CancelScope(shield=True):
                    note = abandoned_note(await self.abandon(exc))
                if note:
                    add_note(exc, note)
            else:
                await self.close()
        finally:
            self._entered_group = None
            if group is not None:
                await group.__aexit__(None, None, None)

    def _prepare(self) -> None:
        if self._runner_done is None:
            self._runner_done = anyio.Event()
            self._wake = anyio.Event()
            self._progress = anyio.Event()
            self._core.sender_started()

    def _start(self) -> None:
        """Start sending in the background, when not entered as a context manager."""
        if self._runner_done is not None:
            return
        trio = sys.modules.get("trio")
        if trio is not None:
            try:
                trio.lowlevel.current_trio_token()
            except RuntimeError:
                pass
            else:
                self._prepare()
                trio.lowlevel.spawn_system_task(self._run)
                return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "IdempotentProducer needs a running event loop (asyncio or trio); in threaded "
                "code use SyncIdempotentProducer"
            ) from None
        self._prepare()
        self._asyncio_task = loop.create_task(self._run())

    def _wake_up(self) -> None:
        self._start()
        assert self._wake is not None
        self._wake.set()

    def _progressed(self) -> None:
        assert self._progress is not None
        self._progress.set()
        self._progress = anyio.Event()

    async def _run(self) -> None:
        try:
            async with anyio.create_task_group() as group:
                self._task_group = group
                while not self._stopping:
                    self._wake = anyio.Event()
                    now = time.monotonic()
                    transport = self._transport
                    saturated = transport is not None and transport.saturated(self.url)
                    batches, wake_at = self._core.due(now, hold_open=saturated)
                    if self._core.has_outcomes():  # due() failed batches it could not renumber
                        self._after_change()
                    if self._state_file is not None and not await self._record(batches):
                        batches = []
                    for batch in batches:
                        group.start_soon(self._deliver, batch)
                    with anyio.move_on_after(None if wake_at is None else wake_at - now):
                        await self._wake.wait()
                group.cancel_scope.cancel()
        finally:
            self._task_group = None
            assert self._runner_done is not None
            self._runner_done.set()

    async def _record(self, unsent: list[Batch]) -> bool:
        """Write what changed to the state file before ``unsent`` go out; if that fails,
        they and everything after them fail with the error, unsent."""
        assert self._state_file is not None
        if self._state_broken:
            return False
        changes = self._core.take_changes()
        if changes is None:
            return True
        try:
            # The changes are taken: cancelled before the write (Ctrl+C, abandon), they would
            # never reach the file, and the next session would not know these messages.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._state_file.write, changes)
        except errors.ProducerStateError as exc:
            self._state_broken = True
            self._core.abort(exc, unsent)
            self._after_change()
            return False
        return True

    def _close_state_file(self) -> None:
        state_file, self._state_file = self._state_file, None
        if state_file is None:
            return
        try:
            changes = self._core.take_changes()
            if changes is not None and not self._state_broken:
                state_file.write(changes)
        finally:
            state_file.close()

    async def _deliver(self, batch: Batch) -> None:
        core = self._core
        dispatcher = self._dispatcher
        if dispatcher is None:
            dispatcher = self._dispatcher = await async_default_dispatcher(self._verify)
        transport = self._transport
        if transport is None:  # chosen once, as a handle's: every batch goes to one origin
            transport = self._transport = dispatcher.transport_for(self.url)
        retry = RetryState(self._retry)
        otel = telemetry.active
        span = None
        if otel is not None:
            started = time.perf_counter()
            otel.batch_size.record(len(batch.body), PRODUCE)
            otel.batch_messages.record(batch.count, PRODUCE)
        try:
            while True:
                try:
                    headers = await resolve_async(self._headers, headers=True)
                    req = with_dynamic(
                        core.request(batch), headers, await resolve_async(self._params)
                    )
                    if otel is not None:
                        req, span = otel.request(
                            "produce", req, retry.attempts + 1, self._batch_attributes(batch)
                        )
                    reply = await transport.send(req, self._timeout)
                    status = reply.status_code
                    limit = ANSWER_LIMIT if status < 400 else ERROR_BODY_LIMIT
                    answer_body = await reply.aread(limit)
                except errors.TransportError as failure:
                    core.on_transport_error(batch, reached_server=failure.request_sent)
                    delay = retry.next_delay()
                    if span is not None:
                        span.failed(failure)
                        span = None
                    if delay is None or core.halted:
                        if not core.halted:
                            log.warning(
                                "producer %s gave up a batch: %s", self.producer_id, failure
                            )
                        core.give_up(batch, failure)
                        return
                    retrying("producing to", self.url, failure, retry.attempts, delay, "produce")
                    await anyio.sleep(delay)
                    continue
                except Exception as exc:  # e.g. a header callable failed: fail this batch only
                    if span is not None:
                        span.failed(exc)
                        span = None
                    error = errors.ProducerError(f"sending failed: {exc!r}", url=self.url)
                    error.__cause__ = exc
                    core.give_up(batch, error)
                    return
                answer_headers = reply.headers
                if span is not None:
                    span.answered(status, answer_headers)
                    span = None
                answer = core.on_answer(batch, status, answer_headers, answer_body)
                if answer is None:
                    return
                delay = retry.next_delay(answer.retry_after)
                if delay is None or core.halted:
                    if not core.halted:
                        log.warning(
                            "producer %s gave up a batch: %s", self.producer_id, answer.error
                        )
                    core.give_up(batch, answer.error)
                    return
                retrying("producing to", self.url, answer.error, retry.attempts, delay, "produce")
                await anyio.sleep(delay)
        except BaseException as exc:  # cancelled while sending
            if span is not None:
                span.failed(exc)
            raise
        finally:
            if otel is not None:
                elapsed = time.perf_counter() - started
                otel.append_duration.record(elapsed, PRODUCE)
            self._after_change()

    def _batch_attributes(self, batch: Batch) -> dict[str, Any]:
        return {
            "durable_streams.producer.id": self.producer_id,
            "durable_streams.producer.epoch": batch.epoch,
            "durable_streams.producer.seq": batch.seq,
            "durable_streams.batch.messages": batch.count,
            "durable_streams.batch.bytes": len(batch.body),
        }

    def _after_change(self) -> None:
        settle(*self._core.take_outcomes(), self._on_error)
        if self._wake is not None:
            self._wake.set()
        if self._progress is not None:
            self._progressed()

    # -- appending ------------------------------------------------------------------------------

    def append_nowait(self, data: Any) -> None:
        """Buffer one message and return at once. JSON streams take any JSON value (str and
        bytes are taken as serialized JSON and validated); other streams take str or bytes.
        Raises :class:`BufferFullError` when ``max_buffered_bytes`` are waiting (nothing is
        added), :class:`ProducerClosedError` after close or a fatal error."""
        if self._runner_done is None:
            self._start()  # before taking the message: without an event loop it is refused
        if self._core.add(data):
            self._notify()

    def _settle_nowait(self, data: Any, outcome: int) -> None:
        # What the core left to do for append_nowait (the instance's own, see __init__).
        if self._runner_done is None:
            self._start()  # no message is taken before: without an event loop it is refused
        if self._core.settle_offer(outcome, data):
            self._notify()

    def append_many_nowait(self, items: Iterable[Any]) -> None:
        """Buffer a group of messages at once; their batches do not depend on when the sender
        runs, so a later session replaying the same group under the same producer id and
        epoch is deduplicated message for message. Raises like :meth:`append_nowait`; the
        buffer limit is checked once, before the group."""
        if self._runner_done is None:
            self._start()
        if self._core.add_many(items):
            self._notify()

    async def append(self, data: Any) -> Acknowledgement:
        """Buffer one message, waiting for room when the buffer is full. Returns its
        :class:`Acknowledgement`; ``await`` that for the result."""
        ack = Acknowledgement()
        while not self.offer(data, ack):
            await self.room()
        return ack

    def offer(self, data: Any, waiter: Waiter) -> bool:
        """Buffer one message whose outcome goes to ``waiter`` (an :class:`Acknowledgement`,
        or a ``concurrent.futures.Future`` from another thread); False, taking nothing, when
        the buffer is full. Raises :class:`ProducerClosedError` after close or a fatal error."""
        self._core.check_open()
        if self._core.full():
            return False
        try:
            if self._core.add(data, waiter):
                self._notify()
        except errors.BufferFullError:
            return False
        return True

    async def room(self) -> None:
        """Wait until the buffer has room (or the producer stopped taking messages)."""
        self._start()
        while self._core.full() and not self._core.halted:
            assert self._progress is not None
            await self._progress.wait()

    def serve_other_threads(
        self, call_soon_threadsafe: Callable[[Callable[[], None]], object]
    ) -> None:
        """Messages will come from threads other than the event loop's (the threaded twin):
        each wakes the sender through ``call_soon_threadsafe``, and the sequencer takes its
        lock for them. Call it before the first message."""

        def notify() -> None:
            call_soon_threadsafe(self._wake_up)

        self._notify = notify
        self._core.share_between_threads()
        # The class's append_nowait again (the instance's own goes): the sequencer's add(),
        # which takes its lock.
        vars(self).pop("append_nowait", None)

    def start_sending(self) -> None:
        """Start the sender now, on the running event loop, rather than at the first message."""
        self._start()

    # -- waiting --------------------------------------------------------------------------------

    async def _wait_settled(self, below: int, timeout: float | None) -> bool:
        if self._runner_done is None and self._core.settled_below(below):
            return True
        self._notify()
        with anyio.move_on_after(timeout):
            while not self._core.settled_below(below):
                assert self._progress is not None
                await self._progress.wait()
            return True
        return False

    def _raise_failures(self) -> None:
        failures = self._core.take_failures()
        if failures:
            raise undelivered(failures, self.url)

    async def flush(self, timeout: float | None = None) -> None:
        """Send everything buffered and wait for the answers. Raises
        :class:`UndeliveredError` with the batches that failed since the last flush, and
        :class:`DeadlineExceededError` if ``timeout`` seconds pass first (nothing is lost:
        sending goes on)."""
        below = self._core.seal_all()
        if not await self._wait_settled(below, timeout):
            raise errors.DeadlineExceededError(
                f"flush did not finish within {timeout} s; "
                f"{self._core.buffered_bytes} bytes are still on their way",
                url=self.url,
            )
        self._raise_failures()

    async def close(self, timeout: float | None = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Flush within ``timeout`` seconds, then stop; the stream stays open. Whatever was
        not delivered by then is reported in the :class:`UndeliveredError` raised, never
        dropped silently. Closing twice is harmless."""
        if self._finished:
            return
        self._core.close()
        below = self._core.seal_all()
        try:
            if not await self._wait_settled(below, timeout):
                kept = self._state_file is not None
                where = (
                    f"; it stays in the state file {self._state_file.path!r}, and the next "
                    "producer opened on it resends it"
                    if self._state_file is not None
                    else ""
                )
                self._core.fail_unresolved(
                    errors.DeadlineExceededError(
                        f"close() gave up after {timeout} s; the batch may or may not be "
                        f"stored{where}",
                        url=self.url,
                    ),
                    kept=kept,
                )
                self._after_change()
        finally:
            self._finished = True
            try:
                await self._stop_sending()
            finally:
                self._close_state_file()
        self._raise_failures()

    async def abandon(self, reason: BaseException) -> list[FailedBatch]:
        """Stop at once without waiting for answers (cancellation, Ctrl+C): whatever is not
        settled fails, each flagged ``maybe_delivered`` if it was on its way, and with a state
        file stays in it for the next session. Returns every failure not yet reported; they
        stay in :attr:`failures` too."""
        if self._finished:
            return []
        self._core.close()
        where = (
            f"; it stays in the state file {self._state_file.path!r}, and the next producer "
            "opened on it resends it"
            if self._state_file is not None
            else ""
        )
        self._core.fail_unresolved(
            errors.ProducerClosedError(
                f"not delivered: the producer was stopped by {type(reason).__name__}{where}",
                url=self.url,
            ),
            kept=self._state_file is not None,
        )
        self._after_change()
        self._finished = True
        try:
            await self._stop_sending()
        finally:
            self._close_state_file()
        return self.failures

    async def _stop_sending(self) -> None:
        self._stopping = True
        if self._runner_done is not None:
            group = self._task_group
            if group is not None:
                group.cancel_scope.cancel()
            assert self._wake is not None
            self._wake.set()
            await self._runner_done.wait()
        self._asyncio_task = None

    async def close_stream(self, data: Any = None, timeout: float | None = None) -> AppendResult:
        """Deliver everything buffered, then close the stream through the producer (the
        close carries producer headers, so a resent close cannot close twice), optionally
        appending ``data`` as the final message. Returns the result with the final offset;
        the producer takes no more messages."""
        if self._close_result is not None:
            return self._close_result  # closing again is harmless, like any retried close
        await self.flush(timeout)
        json_mode = self._core.settings.json_mode
        body = b"" if data is None else encode_append_body(data, json_mode=json_mode)
        ack = Acknowledgement()
        self._core.add_close(body, ack)
        self._notify()
        with anyio.move_on_after(timeout):
            try:
                self._close_result = await ack
                return self._close_result
            finally:
                self._core.take_failures()  # the awaited error reports them
        raise errors.DeadlineExceededError(
            f"closing the stream did not finish within {timeout} s", url=self.url
        )

    async def restart(self, timeout: float | None = None) -> None:
        """Deliver what is buffered, then move to the next epoch (sequence numbers restart
        at 0). Use it when taking over from an earlier instance with the same producer id."""
        await self.flush(timeout)
        self._core.start_new_epoch()

    @property
    def failures(self) -> list[FailedBatch]:
        """Failed batches not yet reported by :meth:`flush` or :meth:`close`."""
        return list(self._core.failures)
