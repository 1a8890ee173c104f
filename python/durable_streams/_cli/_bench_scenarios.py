"""The load of ``durable-streams bench``: each scenario as one process runs its share of it.

A process sets its scenario up (streams created, live readers started, data written for a
catch-up), waits until every process is ready, measures, and tears down. Operations are sent
closed-loop (``concurrency`` workers, each sending when its previous operation is answered)
or, with a rate, open-loop: operation ``i`` is due at ``start + i / rate`` and its latency is
counted from then, so a server (or a client) that falls behind shows in the figures instead of
slowing the schedule down (no coordinated omission).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableSequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from .. import _errors as errors
from .._client_async import AsyncClient
from .._protocol import OFFSET_BEGINNING
from .._values import LiveMode
from .._writing._handle_async import AsyncDurableStream
from .._writing._producer_async import Acknowledgement, IdempotentProducer
from ._bench_stats import Histogram, Outcome

__all__ = ["SCENARIOS", "Plan", "run_plan"]

OCTET = "application/octet-stream"
JSON = "application/json"


@dataclass(frozen=True)
class Plan:
    """One process's share of a scenario (the command splits the totals)."""

    scenario: str
    url: str  # the server's base URL
    prefix: str  # streams go under it, one folder per run
    index: int  # this process, 0-based
    size: int
    count: int | None  # None: until the duration ends
    concurrency: int
    rate: float | None  # operations per second; None: closed-loop
    duration: float | None
    readers: int
    streams: int
    live: str
    timeout: float
    waves: bool = False  # closed-loop in waves of `concurrency`, as upstream's suite sends
    headers: dict[str, str] = field(default_factory=dict)
    shared: str | None = None  # fan-out: the path of the stream every process reads
    writer: bool = True  # fan-out: this process writes the shared stream


Ready = Callable[[], Awaitable[None]]


class _Run:
    """A scenario's measurements in one process."""

    def __init__(self, plan: Plan, counter: MutableSequence[int], ready: Ready) -> None:
        self.plan = plan
        self.outcome = Outcome()
        self.histograms: dict[str, Histogram] = {}
        self._counter = counter
        self._ready = ready
        self._start = 0.0
        self._cpu = 0.0
        self.stop_at = math.inf  # perf_counter time after which no operation starts

    async def ready(self) -> None:
        """Set up: wait for every process, then the measured part starts."""
        await self._ready()
        self._start = time.perf_counter()
        self._cpu = time.process_time()
        if self.plan.duration is not None:
            self.stop_at = self._start + self.plan.duration

    def finish(self) -> None:
        self.outcome.elapsed = time.perf_counter() - self._start
        self.outcome.cpu = time.process_time() - self._cpu

    def record(self, name: str, seconds: float) -> None:
        histogram = self.histograms.get(name)
        if histogram is None:
            histogram = self.histograms[name] = Histogram()
        histogram.record(seconds)

    def done(self, size: int) -> None:
        self.outcome.ops += 1
        self.outcome.bytes += size
        self._counter[self.plan.index] = self.outcome.ops

    def failed(self, exc: BaseException) -> None:
        self.outcome.errors += 1
        if self.outcome.first_error is None:
            self.outcome.first_error = f"{type(exc).__name__}: {exc}"


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _path(plan: Plan, *parts: object) -> str:
    return "/".join([plan.prefix, plan.scenario, str(plan.index), *map(str, parts)])


def _count(plan: Plan) -> int | None:
    """How many operations this process sends: ``count``, or what the rate sends in the
    duration; None: closed-loop until the duration ends."""
    if plan.count is not None:
        return plan.count
    if plan.rate is not None and plan.duration is not None:
        return math.ceil(plan.rate * plan.duration)
    return None


def _message(size: int, stamp: float) -> dict[str, Any]:
    """A JSON message of about ``size`` bytes carrying its due time (wall clock)."""
    base = len(json.dumps({"t": stamp, "p": ""}))
    return {"t": stamp, "p": "*" * max(0, size - base)}


async def _drive(
    run: _Run,
    count: int | None,
    rate: float | None,
    concurrency: int,
    op: Callable[[int, float], Coroutine[Any, Any, None]],
) -> None:
    """Calls ``op(i, due)`` ``count`` times (or until the duration ends); ``due`` is the
    perf_counter time the operation was due: its slot in the open-loop schedule, or when a
    closed-loop worker took it."""
    taken = 0
    if rate is None and run.plan.waves:
        while (count is None or taken < count) and time.perf_counter() < run.stop_at:
            wave = concurrency if count is None else min(concurrency, count - taken)
            async with anyio.create_task_group() as group:
                for i in range(taken, taken + wave):
                    group.start_soon(op, i, time.perf_counter())
            taken += wave
        return
    if rate is None:

        async def worker() -> None:
            nonlocal taken
            while (count is None or taken < count) and time.perf_counter() < run.stop_at:
                i = taken
                taken += 1
                await op(i, time.perf_counter())

        async with anyio.create_task_group() as group:
            for _ in range(max(1, concurrency)):
                group.start_soon(worker)
        return
    slots = anyio.Semaphore(max(1, concurrency))

    async def one(i: int, due: float) -> None:
        try:
            await op(i, due)
        finally:
            slots.release()

    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        while count is None or taken < count:
            due = start + taken / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await anyio.sleep(delay)
            if due >= run.stop_at:
                break
            await slots.acquire()  # a wait here is counted: latency runs from `due`
            group.start_soon(one, taken, due)
            taken += 1


async def _guarded(run: _Run, action: Awaitable[Any]) -> bool:
    try:
        await action
    except errors.DurableStreamError as exc:
        run.failed(exc)
        return False
    return True


# -- the scenarios -----------------------------------------------------------------------------


async def roundtrip(run: _Run, client: AsyncClient) -> None:
    """Upstream's latency scenario: append ``size`` bytes and wait until a live long-poll
    reader of the stream has it (``rtt``); ``ping`` is a HEAD of the stream just before, and
    ``overhead`` the difference (0 when the HEAD took longer). One stream per loop
    (``concurrency`` loops), one append at a time each."""
    plan = run.plan
    loops = max(1, plan.concurrency)
    total = _count(plan)
    counts: list[int | None] = [None] * loops if total is None else [*_shares(total, loops)]
    message = b"*" * plan.size

    async def loop(k: int, count: int | None, ready: anyio.Event, measured: anyio.Event) -> None:
        handle = await client.create(_path(plan, k), content_type=OCTET)
        try:
            tail = (await handle.head()).offset or OFFSET_BEGINNING
            arrived, arrivals = anyio.create_memory_object_stream[int](math.inf)

            async def read() -> None:
                async with client.stream(_path(plan, k), offset=tail, live="long-poll") as reply:
                    async for chunk in reply.iter_bytes():
                        arrived.send_nowait(len(chunk))

            async def delivered() -> None:
                received = 0
                while received < len(message):
                    received += await arrivals.receive()

            async with anyio.create_task_group() as group:
                group.start_soon(read)
                await handle.append(message)  # warm-up: connections open, reader live
                await delivered()
                ready.set()
                await started.wait()
                taken = 0
                while (count is None or taken < count) and time.perf_counter() < run.stop_at:
                    taken += 1
                    try:
                        sent = time.perf_counter()
                        await handle.head()
                        ping = time.perf_counter() - sent
                        sent = time.perf_counter()
                        await handle.append(message)
                        await delivered()
                    except errors.DurableStreamError as exc:
                        run.failed(exc)
                        break
                    rtt = time.perf_counter() - sent
                    run.record("rtt", rtt)
                    run.record("ping", ping)
                    run.record("overhead", max(0.0, rtt - ping))
                    run.done(len(message))
                measured.set()
                group.cancel_scope.cancel()
        finally:
            measured.set()
            await _guarded(run, handle.delete())

    started = anyio.Event()
    async with anyio.create_task_group() as group:
        readies = [anyio.Event() for _ in range(loops)]
        ends = [anyio.Event() for _ in range(loops)]
        for k in range(loops):
            group.start_soon(loop, k, counts[k], readies[k], ends[k])
        for event in readies:
            await event.wait()
        await run.ready()
        started.set()
        for event in ends:
            await event.wait()
        run.finish()


async def appends(run: _Run, client: AsyncClient) -> None:
    """Upstream's throughput scenarios: ``count`` appends of ``size`` bytes to one stream,
    ``concurrency`` at a time (or at ``rate``); the handle joins appends that overlap into one
    request, as upstream's TypeScript client does. Latency: each append's answer."""
    plan = run.plan
    message = b"*" * plan.size
    handle = await client.create(_path(plan), content_type=OCTET)
    try:

        async def append(i: int, due: float) -> None:
            if await _guarded(run, handle.append(message)):
                run.record("append", time.perf_counter() - due)
                run.done(len(message))

        await run.ready()
        await _drive(run, _count(plan), plan.rate, plan.concurrency, append)
        run.finish()
    finally:
        await _guarded(run, handle.delete())


async def producer(run: _Run, client: AsyncClient) -> None:
    """An idempotent producer's throughput: ``count`` messages of ``size`` bytes through
    :class:`IdempotentProducer` (its own batching and pipelining), as fast as it takes them or
    at ``rate``. Latency: from the append (or its due time) to the batch's acknowledgement."""
    plan = run.plan
    message = b"*" * plan.size
    handle = await client.create(_path(plan), content_type=OCTET)
    try:
        sending = IdempotentProducer(handle, producer_id=f"bench-{plan.index}", auto_claim=True)
        queued, acks = anyio.create_memory_object_stream[tuple[float, Acknowledgement]](math.inf)

        async def settle() -> None:
            async for due, ack in acks:  # acknowledged in order: waiting in order costs nothing
                if await _guarded(run, ack.wait()):
                    run.record("ack", time.perf_counter() - due)
                    run.done(len(message))

        async def append(i: int, due: float) -> None:
            queued.send_nowait((due, await sending.append(message)))

        async with anyio.create_task_group() as group:
            group.start_soon(settle)
            await run.ready()
            try:
                await _drive(run, _count(plan), plan.rate, 1, append)
                await _guarded(run, sending.flush())
            finally:
                queued.close()
        run.finish()
        await _guarded(run, sending.close())
    finally:
        await _guarded(run, handle.delete())


async def catch_up(run: _Run, client: AsyncClient) -> None:
    """Catch-up read throughput: a JSON stream of ``count`` messages of about ``size`` bytes
    (written before the measurement) read whole by ``readers`` readers at once, every message
    decoded. Latency: each whole read."""
    plan = run.plan
    count = plan.count or 0
    item = _message(plan.size, 0.0)
    size = len(json.dumps(item))
    path = _path(plan)
    handle = await client.create(path, content_type=JSON)
    try:
        async with IdempotentProducer(handle, producer_id="bench", auto_claim=True) as filling:
            for _ in range(count):
                await filling.append(item)
            await filling.flush()

        async def read(k: int, due: float) -> None:
            seen = 0
            try:
                async with client.stream(path) as reply:
                    async for _ in reply.iter_json():
                        seen += 1
                        run.done(size)
            except errors.DurableStreamError as exc:
                run.failed(exc)
                return
            if seen != count:
                run.failed(AssertionError(f"read {seen} messages of {count}"))
            run.record("read", time.perf_counter() - due)

        await run.ready()
        await _drive(run, plan.readers, None, plan.readers, read)
        run.finish()
    finally:
        await _guarded(run, handle.delete())


async def _follow(
    run: _Run, client: AsyncClient, path: str, expected: int, started: anyio.Event
) -> None:
    """A live reader until the stream closes: each message's delivery latency, from its due
    time (wall clock, so readers in other processes measure it too)."""
    seen = 0
    live: LiveMode = "long-poll" if run.plan.live == "long-poll" else "sse"
    try:
        async with client.stream(path, live=live) as reply:
            started.set()
            async for message in reply.iter_json():
                run.record("delivery", time.time() - message["t"])
                run.done(run.plan.size)
                seen += 1
    except errors.DurableStreamError as exc:
        run.failed(exc)
        return
    if seen != expected:
        run.failed(AssertionError(f"a reader got {seen} messages of {expected}"))


async def _write(
    run: _Run, handle: AsyncDurableStream, count: int, rate: float | None, offset: float
) -> None:
    """Appends ``count`` stamped messages at ``rate`` (per stream), then closes the stream
    so its readers end."""
    wall = time.time() - time.perf_counter()

    async def append(i: int, due: float) -> None:
        if await _guarded(run, handle.append(_message(run.plan.size, wall + due))):
            run.record("append", time.perf_counter() - due)

    if offset:
        await anyio.sleep(offset)  # spreads the streams' schedules over one interval
    await _drive(run, count, rate, run.plan.concurrency, append)
    await _guarded(run, handle.close_stream())


def _deadline(plan: Plan, count: int) -> float:
    """How long readers may wait for the end of the writes before it is an error."""
    expected = count / plan.rate if plan.rate else 0.0
    return expected * 2 + plan.timeout * 2 + 10


async def fan_out(run: _Run, client: AsyncClient) -> None:
    """Fan-out: one stream written at ``rate`` (by the first process), ``readers`` live
    readers of it in every process sharing the run. Latency: each delivery to each reader,
    from the message's due time; ``append``: the writer's."""
    plan = run.plan
    assert plan.shared is not None
    count = _count(plan) or 0
    handle = client.handle(plan.shared, content_type=JSON)
    with anyio.fail_after(_deadline(plan, count)):
        async with anyio.create_task_group() as group:
            started = [anyio.Event() for _ in range(plan.readers)]
            for event in started:
                group.start_soon(_follow, run, client, plan.shared, count, event)
            for event in started:
                await event.wait()
            await run.ready()
            if plan.writer:
                await _write(run, handle, count, plan.rate, 0.0)
        run.finish()


async def many_streams(run: _Run, client: AsyncClient) -> None:
    """Many streams: ``streams`` JSON streams, each with a writer (its share of ``count`` at
    its share of ``rate``) and a live reader. Latency: each delivery, from its due time."""
    plan = run.plan
    streams = max(1, plan.streams)
    counts = _shares(_count(plan) or 0, streams)
    rate = plan.rate / streams if plan.rate else None
    handles = []
    try:
        for k in range(streams):
            handles.append(await client.create(_path(plan, k), content_type=JSON))
        with anyio.fail_after(_deadline(plan, max(counts))):
            async with anyio.create_task_group() as group:
                started = [anyio.Event() for _ in handles]
                for k, event in enumerate(started):
                    group.start_soon(_follow, run, client, _path(plan, k), counts[k], event)
                for event in started:
                    await event.wait()
                await run.ready()
                for k, handle in enumerate(handles):
                    offset = k / plan.rate if plan.rate else 0.0
                    group.start_soon(_write, run, handle, counts[k], rate, offset)
            run.finish()
    finally:
        for handle in handles:
            await _guarded(run, handle.delete())


SCENARIOS: dict[str, Callable[[_Run, AsyncClient], Awaitable[None]]] = {
    "roundtrip": roundtrip,
    "append-small": appends,
    "append-large": appends,
    "producer": producer,
    "catch-up": catch_up,
    "fan-out": fan_out,
    "many-streams": many_streams,
}


async def run_plan(plan: Plan, counter: MutableSequence[int], ready: Ready) -> Outcome:
    """Runs one process's share of a scenario; a failure that stops it is in ``failed``."""
    run = _Run(plan, counter, ready)
    try:
        async with AsyncClient(plan.url, headers=plan.headers, timeout=plan.timeout) as client:
            await SCENARIOS[plan.scenario](run, client)
    except Exception as exc:  # the scenario stops; the report says why
        while isinstance(getattr(exc, "exceptions", None), tuple) and exc.exceptions:  # type: ignore[attr-defined]
            exc = exc.exceptions[0]  # type: ignore[attr-defined]
        run.outcome.failed = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    run.outcome.histograms = {name: h.encode() for name, h in run.histograms.items()}
    return run.outcome
