"""One contender running one workload of ``compare.py``, alone in its own process.

    python benches/_contender.py CONTENDER WORKLOAD --url URL [--messages N] [...]

``compare.py`` starts this file once per (contender, workload, repeat), with the interpreter
of the contender's environment: this repository's ``.venv`` for ``ours`` (the core chosen by
``DURABLE_STREAMS_PURE_PYTHON``) and the raw limits, ``benches/.venv-official`` for
``official``. Both environments import ``durable_streams``, meaning a different package in
each, so nothing here imports it at module level. ``benches/node/bench.mjs`` is the same
program for the TypeScript client.

Contenders: ``ours``, ``official``, ``httpx`` (raw httpx: the same requests, bytes streamed
and dropped), ``httpx+orjson`` (raw httpx and ``orjson`` with the least protocol handling a
client can get away with: the floor), ``orjson`` (``orjson.loads`` alone on the same
payload bytes, built locally: no HTTP at all) and ``core`` (this project's native decoder
alone on the same bytes), ``socket`` (the bare-socket floor of a live tail, from
``_floor.py``: a Python loop over a raw socket, ``orjson`` on each payload; and of one
request at a time: ``append-one``, ``head-one``, and ``many-streams-append`` on asyncio
streams). ``--async`` runs the live reads of ``ours``, ``official`` and ``socket`` on asyncio
(``astream``; asyncio streams for the floor); the workloads ``many-streams-append``,
``throughput-small`` and ``soak-many-streams`` are asyncio whatever it says. ``--gc-off``:
``gc.disable()`` first.

What is measured: client CPU (``time.process_time``: user and system time of every thread of
this process) and wall time (``time.perf_counter``) around the workload only; interpreter
start-up, imports and one warm-up HEAD request through the contender's own library come
before the clock starts. Resident memory: the current RSS just before the workload, the peak
(``VmHWM``) at the end, and the current RSS sampled every ``--sample-every`` messages.

Protocol with the parent: live workloads print ``ready`` once their reader is connected (the
parent then starts writing); every run ends by printing one JSON line with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _payloads as P

WORKLOADS = (
    "catch-up",
    "sse",
    "sse-small",
    "long-poll-small",
    "produce",
    "append-1mib",
    "latency-long-poll",
    "latency-sse",
    "append-one",
    "head-one",
    "many-streams-append",
    "throughput-small",
    "catchup-nested",
    "soak-many-streams",
)
# One request at a time, or many on asyncio (issue #28): see compare.py for what each does.
SYNC_REQUESTS = ("append-one", "head-one")
ASYNC_REQUESTS = ("many-streams-append", "throughput-small", "soak-many-streams")
MULTI_STREAM = ("many-streams-append", "soak-many-streams")  # --url is a prefix: URL-0, URL-1...
CATCH_UPS = ("catch-up", "catchup-nested")
OCTET_CT = "application/octet-stream"
POOL = 10_000  # producers cycle through this many distinct message objects
BIG_MESSAGE_BYTES = 1 << 20
JSON_CT = "application/json"


# ---- measuring ----------------------------------------------------------------------------


def current_rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def peak_rss_kib() -> int:
    """The peak RSS of this process's own memory (``VmHWM``). Not ``ru_maxrss``: Linux carries
    the parent's peak over fork and exec into that, so every child would report at least the
    size of the parent (which holds the writer's bodies)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Meter:
    """CPU, wall time and memory of one workload run, and the items it counted."""

    def __init__(self, sample_every: int) -> None:
        self.sample_every = sample_every
        self.samples: list[tuple[int, int]] = []
        self.latencies_ns: list[int] = []
        self.info: dict[str, Any] = {}
        self.rss_start = current_rss_kib()
        self.cpu0 = self.wall0 = 0.0
        self.cpu = self.wall = 0.0
        self.end_ns = 0

    def start(self) -> None:
        self.rss_start = current_rss_kib()
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()

    def stop(self) -> None:
        self.cpu = time.process_time() - self.cpu0
        self.wall = time.perf_counter() - self.wall0
        self.end_ns = time.monotonic_ns()

    def result(self, n: int) -> dict[str, Any]:
        return {
            "messages": n,
            "cpu_s": self.cpu,
            "wall_s": self.wall,
            "end_ns": self.end_ns,
            "rss_start_kib": self.rss_start,
            "rss_peak_kib": peak_rss_kib(),
            "rss_samples_kib": self.samples,
            "latencies_ns": self.latencies_ns,
            "info": self.info,
        }


def ready() -> None:
    """Tells the parent the reader is connected: it may start writing."""
    print("ready", flush=True)


class _Tally:
    """Counts items, noting the RSS every ``sample_every`` of them; ``add`` says when
    ``expected`` were counted (a live reader would go on waiting for more)."""

    def __init__(self, m: Meter, expected: int) -> None:
        self.n = 0
        self.every = m.sample_every
        self.mark = min(self.every, expected)
        self.expected = expected
        self.samples = m.samples

    def add(self) -> bool:
        self.n += 1
        if self.n < self.mark:
            return False
        self.samples.append((self.n, current_rss_kib()))
        self.mark = min(self.n + self.every, self.expected)
        return self.n >= self.expected


def count_items(items: Iterator[Any], m: Meter, expected: int) -> int:
    tally = _Tally(m, expected)
    for _ in items:
        if tally.add():
            break
    return tally.n


async def acount_items(items: AsyncIterator[Any], m: Meter, expected: int) -> int:
    tally = _Tally(m, expected)
    async for _ in items:
        if tally.add():
            break
    return tally.n


def timed_items(items: Iterator[Any], m: Meter, expected: int) -> int:
    """Latency: each item carries the writer's ``time.monotonic_ns()`` when it sent it."""
    now = time.monotonic_ns
    lat = m.latencies_ns
    for item in items:
        lat.append(now() - item["t"])
        if len(lat) >= expected:
            break
    return len(lat)


def big_message(i: int) -> dict[str, Any]:
    """A message of about 1 MiB once serialized (the blob is shared: built once)."""
    return {"i": i, "blob": _BLOB}


_BLOB = ("0123456789abcdefghijklmnopqrstuvwxyz" * (BIG_MESSAGE_BYTES // 36 + 1))[
    : BIG_MESSAGE_BYTES - 32
]


# ---- this project ---------------------------------------------------------------------------


def run_ours(args: argparse.Namespace, m: Meter) -> int:
    import durable_streams as ds

    m.info["implementation"] = ds.IMPLEMENTATION
    m.info["version"] = ds.__version__
    if args.expect_impl and args.expect_impl != ds.IMPLEMENTATION:
        raise SystemExit(f"expected the {args.expect_impl} core, got {ds.IMPLEMENTATION}")
    with ds.DurableStream(warm_url(args)) as warm:
        warm.head()
    w = args.workload
    n = args.messages

    if w in SYNC_REQUESTS or w in ASYNC_REQUESTS:
        return run_requests(ds.DurableStream, ds.AsyncDurableStream, ds.astream, {}, args, m)
    if args.use_async:
        return asyncio.run(_live_async(ds.astream, args, m, {}))
    if w in CATCH_UPS:
        m.start()
        with ds.stream(args.url) as res:
            got = count_items(res.iter_json(), m, n)
        m.stop()
        return got
    if w in LIVE_READS:
        m.start()
        with ds.stream(args.url, live=live_mode(w)) as res:
            ready()
            items = res.iter_json()
            got = timed_items(items, m, n) if w.startswith("latency") else count_items(items, m, n)
        m.stop()
        return got
    if w == "append-1mib":
        m.start()
        with ds.DurableStream(args.url, content_type=JSON_CT) as handle:
            for i in range(n):
                handle.append(big_message(i))
        m.stop()
        return n
    if w == "produce":
        pool = P.message_objects(POOL)
        if args.sync_producer:
            return _ours_sync_produce(ds, args, m, pool)
        return asyncio.run(_ours_produce(ds, args, m, pool))
    raise SystemExit(f"unknown workload {w}")


LIVE_READS = ("sse", "long-poll-small", "latency-sse", "latency-long-poll")


def stream_urls(args: argparse.Namespace) -> list[str]:
    """The streams of a many-stream workload: ``--url`` is their common prefix."""
    return [f"{args.url}-{k}" for k in range(args.streams)]


def warm_url(args: argparse.Namespace) -> str:
    """The stream the warm-up HEAD goes to."""
    return stream_urls(args)[0] if args.workload in MULTI_STREAM else args.url


def live_mode(workload: str) -> str:
    return "long-poll" if "long-poll" in workload else "sse"


async def _live_async(
    astream: Callable[..., Any], args: argparse.Namespace, m: Meter, extra: dict[str, Any]
) -> int:
    """A counted live read through a client's ``astream`` (ours and the official one have
    the same shape: an async context manager whose ``iter_json()`` is an async iterator)."""
    if args.workload not in ("sse", "long-poll-small"):
        raise SystemExit(f"no asyncio variant of {args.workload}")
    m.start()
    async with astream(args.url, live=live_mode(args.workload), **extra) as res:
        ready()
        got = await acount_items(res.iter_json(), m, args.messages)
    m.stop()
    return got


async def _ours_produce(ds: Any, args: argparse.Namespace, m: Meter, pool: list[Any]) -> int:
    """``append_nowait`` for every message, falling back to ``await append`` (which waits for
    room) when the buffer is full; then ``flush``; leaving the block closes the producer."""
    n = args.messages
    full = ds.BufferFullError
    waited = 0
    m.start()
    state_dir = tempfile.mkdtemp() if args.state_file else None
    state = None if state_dir is None else os.path.join(state_dir, "bench.producer")
    async with ds.IdempotentProducer(
        args.url, producer_id="bench", epoch=0, content_type=JSON_CT, state=state
    ) as producer:
        append_nowait = producer.append_nowait
        for i in range(n):
            msg = pool[i % POOL]
            try:
                append_nowait(msg)
            except full:
                await producer.append(msg)
                waited += 1
        await producer.flush()
    m.stop()
    m.info["waited_for_room"] = waited
    if state_dir is not None:
        shutil.rmtree(state_dir)
    return n


def _ours_sync_produce(ds: Any, args: argparse.Namespace, m: Meter, pool: list[Any]) -> int:
    """The threaded ``SyncIdempotentProducer``: the same calls, blocking."""
    n = args.messages
    full = ds.BufferFullError
    waited = 0
    m.start()
    with ds.SyncIdempotentProducer(
        args.url, producer_id="bench", epoch=0, content_type=JSON_CT
    ) as producer:
        append_nowait = producer.append_nowait
        for i in range(n):
            msg = pool[i % POOL]
            try:
                append_nowait(msg)
            except full:
                producer.append(msg)
                waited += 1
        producer.flush()
    m.stop()
    m.info["waited_for_room"] = waited
    return n


# ---- one request after another, or many at once (issue #28): ours and the official client --
#
# Both clients have the same shapes here: ``DurableStream(url, content_type=...)`` (a sync
# handle with ``append`` and ``head``, a context manager), ``AsyncDurableStream`` (its asyncio
# twin, an async context manager) and ``astream(url, live="sse")``; the official client's
# async ``append`` coalesces calls that overlap (the first caller sends, the others queue
# behind it and go in its next request), and so does this project's (``coalesce=True``).


def run_requests(
    handle_cls: Any,
    async_handle_cls: Any,
    astream: Callable[..., Any],
    read_extra: dict[str, Any],
    args: argparse.Namespace,
    m: Meter,
) -> int:
    w = args.workload
    if w in SYNC_REQUESTS:
        return _one_after_another(handle_cls, args, m)
    if w == "many-streams-append":
        return asyncio.run(_many_streams(async_handle_cls, args, m))
    if w == "throughput-small":
        return asyncio.run(_throughput_small(async_handle_cls, args, m))
    if w == "soak-many-streams":
        return asyncio.run(_soak(async_handle_cls, astream, read_extra, args, m))
    raise SystemExit(f"unknown workload {w}")


def _one_after_another(handle_cls: Any, args: argparse.Namespace, m: Meter) -> int:
    """``append-one``: ``handle.append(dict)`` N times (N distinct small messages);
    ``head-one``: ``handle.head()`` N times. One handle, made before the clock starts."""
    n = args.messages
    with handle_cls(args.url, content_type=JSON_CT) as handle:
        if args.workload == "append-one":
            pool = P.message_objects(n)
            append = handle.append
            m.start()
            for msg in pool:
                append(msg)
            m.stop()
        else:
            head = handle.head
            m.start()
            for _ in range(n):
                head()
            m.stop()
    return n


async def _many_streams(handle_cls: Any, args: argparse.Namespace, m: Meter) -> int:
    """``many-streams-append``: one handle per stream (made before the clock starts), one
    task per stream appending its ``--per-stream`` messages one after another; all the
    streams' tasks at once."""
    urls = stream_urls(args)
    per = args.per_stream
    pool = P.message_objects(len(urls) * per)
    handles = [handle_cls(url, content_type=JSON_CT) for url in urls]
    m.info["streams"] = len(urls)
    m.info["per_stream"] = per

    async def one(k: int) -> None:
        append = handles[k].append
        for j in range(k * per, (k + 1) * per):
            await append(pool[j])

    try:
        m.start()
        await asyncio.gather(*(one(k) for k in range(len(urls))))
        m.stop()
    finally:
        for handle in handles:
            await handle.aclose()
    return len(pool)


async def _throughput_small(handle_cls: Any, args: argparse.Namespace, m: Meter) -> int:
    """``throughput-small``, as the upstream suite's small-message scenario does it
    (``packages/benchmarks/src/index.ts``): one handle on one ``application/octet-stream``
    stream, the same 100-byte payload, waves of ``--concurrency`` concurrent appends, each
    wave awaited before the next (upstream: ``Promise.all`` of 75 ``stream.append``)."""
    n = args.messages
    conc = args.concurrency
    payload = P.throughput_payload(args.message_bytes)
    m.info["concurrency"] = conc
    m.info["message_bytes"] = len(payload)
    async with handle_cls(args.url, content_type=OCTET_CT) as handle:
        append = handle.append
        m.start()
        for start in range(0, n, conc):
            await asyncio.gather(*[append(payload) for _ in range(min(conc, n - start))])
        m.stop()
    return n


def fd_census() -> dict[str, int]:
    """This process's open descriptors (``/proc/self/fd``): sockets, files, the rest."""
    out = {"fds": 0, "sockets": 0, "files": 0}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
        if target.startswith("/proc/"):
            continue
        out["fds"] += 1
        if target.startswith("socket:"):
            out["sockets"] += 1
        elif target.startswith("/"):
            out["files"] += 1
    return out


async def _soak(
    handle_cls: Any,
    astream: Callable[..., Any],
    read_extra: dict[str, Any],
    args: argparse.Namespace,
    m: Meter,
) -> int:
    """``soak-many-streams``: for ``--soak-seconds``, every stream has a writer (its own
    handle, one append every ``--soak-interval`` seconds, the streams' schedules spread over
    the interval) and a live SSE reader (``astream``, from the start of the stream); every
    ``--soak-sample-every`` seconds a sample of the open sockets and files
    (``/proc/self/fd``) and the RSS. When the time is up the writers stop and close their
    handles, the readers get up to ``--soak-drain`` seconds to receive everything, then
    are cancelled; a last sample says what closing them released."""
    import random

    with contextlib.suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    urls = stream_urls(args)
    count = len(urls)
    interval = args.soak_interval
    appended = [0] * count
    received = [0] * count
    disorder = [0]
    failures: dict[str, int] = {}
    samples: list[dict[str, Any]] = []
    t0 = time.monotonic()

    def fail(where: str, exc: BaseException) -> None:
        key = f"{where}: {type(exc).__name__}"
        failures[key] = failures.get(key, 0) + 1

    def sample(tag: str) -> None:
        samples.append(
            {
                "t": round(time.monotonic() - t0, 1),
                "tag": tag,
                **fd_census(),
                "rss_kib": current_rss_kib(),
                "appended": sum(appended),
                "received": sum(received),
                "cpu_s": round(time.process_time() - m.cpu0, 3),
            }
        )

    async def read(k: int) -> None:
        expect = 0
        async with astream(urls[k], live="sse", **read_extra) as res:
            async for item in res.iter_json():
                if item["j"] != expect:
                    disorder[0] += 1
                expect = item["j"] + 1
                received[k] += 1

    async def write(k: int, deadline: float) -> None:
        rng = random.Random(k)
        due = time.monotonic() + rng.uniform(0, interval)
        j = 0
        async with handle_cls(urls[k], content_type=JSON_CT) as handle:
            while due < deadline:
                if (ahead := due - time.monotonic()) > 0:
                    await asyncio.sleep(ahead)
                try:
                    await handle.append({"k": k, "j": j, "t": time.time_ns()})
                    appended[k] += 1
                except Exception as exc:
                    fail("append", exc)
                j += 1
                due += interval

    stall = [0.0]

    async def sampler(due: float) -> None:
        while True:
            due += args.soak_sample_every
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            sample("run")

    async def watchdog() -> None:
        # started first, wakes every 0.1 s: how late it wakes is how long the event loop was
        # kept busy (the readers and writers starting up included)
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.1)
            stall[0] = max(stall[0], time.monotonic() - before - 0.1)

    m.start()
    sample("before")
    watching = asyncio.create_task(watchdog())
    sampling = asyncio.create_task(sampler(time.monotonic()))
    readers = [asyncio.create_task(read(k)) for k in range(count)]
    deadline = time.monotonic() + args.soak_seconds
    writers = [asyncio.create_task(write(k, deadline)) for k in range(count)]
    for outcome in await asyncio.gather(*writers, return_exceptions=True):
        if isinstance(outcome, BaseException):
            fail("writer", outcome)
    drain_until = time.monotonic() + args.soak_drain
    while time.monotonic() < drain_until and any(
        r < a for r, a in zip(received, appended, strict=True)
    ):
        await asyncio.sleep(0.25)
    sample("end")
    sampling.cancel()
    watching.cancel()
    for task in readers:
        if task.done() and not task.cancelled() and task.exception() is None:
            failures["reader ended early"] = failures.get("reader ended early", 0) + 1
        task.cancel()
    for outcome in await asyncio.gather(*readers, return_exceptions=True):
        if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
            fail("reader", outcome)
    await asyncio.sleep(1.0)  # let the transports finish closing
    sample("closed")
    m.stop()
    m.info.update(
        streams=count,
        seconds=args.soak_seconds,
        interval_s=interval,
        appended=sum(appended),
        received=sum(received),
        streams_short=sum(1 for r, a in zip(received, appended, strict=True) if r != a),
        out_of_order=disorder[0],
        max_loop_stall_s=round(stall[0], 2),
        failures=failures,
        samples=samples,
    )
    return sum(received)


# ---- the official Python client (durable-streams 0.1.0) ------------------------------------


def run_official(args: argparse.Namespace, m: Meter) -> int:
    from importlib.metadata import version

    import durable_streams as ds

    m.info["version"] = version("durable-streams")
    ds.DurableStream.head_static(warm_url(args))
    w = args.workload
    n = args.messages

    if w in SYNC_REQUESTS or w in ASYNC_REQUESTS:
        extra = {"offset": "-1"}
        return run_requests(ds.DurableStream, ds.AsyncDurableStream, ds.astream, extra, args, m)
    if args.use_async:
        return asyncio.run(_live_async(ds.astream, args, m, {"offset": "-1"}))
    if w in CATCH_UPS:
        m.start()
        with ds.stream(args.url, live=False) as res:
            got = count_items(res.iter_json(), m, n)
        m.stop()
        return got
    if w in LIVE_READS:
        m.start()
        # The official client's first request goes out in stream() (the SSE request itself).
        with ds.stream(args.url, offset="-1", live=live_mode(w)) as res:
            ready()
            items = res.iter_json()
            got = timed_items(items, m, n) if w.startswith("latency") else count_items(items, m, n)
        m.stop()
        return got
    if w == "append-1mib":
        m.start()
        with ds.DurableStream(args.url, content_type=JSON_CT) as handle:
            for i in range(n):
                handle.append(big_message(i))
        m.stop()
        return n
    if w == "produce":
        pool = P.message_objects(POOL)
        return asyncio.run(_official_produce(ds, args, m, pool))
    raise SystemExit(f"unknown workload {w}")


async def _official_produce(ds: Any, args: argparse.Namespace, m: Meter, pool: list[Any]) -> int:
    """Its batched path: concurrent ``append`` calls on one handle are sent together (the
    first caller sends, the others queue behind it). It has no fire-and-forget producer, so
    the messages go in windows of ``--window`` concurrent appends."""
    n = args.messages
    window = args.window
    m.info["window"] = window
    m.start()
    async with ds.AsyncDurableStream(args.url, content_type=JSON_CT) as handle:
        append = handle.append
        for start in range(0, n, window):
            stop = min(n, start + window)
            await asyncio.gather(*[append(pool[i % POOL]) for i in range(start, stop)])
    m.stop()
    return n


# ---- the raw limits -------------------------------------------------------------------------


def _sse_events(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Events of an SSE body, assuming what the reference server sends (``\\n`` line ends,
    one ``data:`` line per event): the least a client can do."""
    rest = b""
    for chunk in chunks:
        parts = (rest + chunk).split(b"\n\n")
        rest = parts.pop()
        yield from parts


DATA_PREFIX = b"event: data\ndata:"  # the reference server writes no space after "data:"


def run_raw(args: argparse.Namespace, m: Meter) -> int:
    import httpx
    import orjson

    m.info["httpx"] = httpx.__version__
    m.info["orjson"] = orjson.__version__
    parse = args.contender == "httpx+orjson"
    w = args.workload
    n = args.messages
    with httpx.Client(timeout=30.0) as warm:
        warm.head(args.url)
    timeout = httpx.Timeout(30.0, read=120.0)

    if w == "catch-up":
        m.start()
        got = 0
        with httpx.Client(timeout=timeout) as client:
            offset = "-1"
            while True:
                with client.stream("GET", args.url, params={"offset": offset}) as r:
                    r.raise_for_status()
                    if parse:
                        got += len(orjson.loads(r.read()))
                    else:
                        got += sum(len(c) for c in r.iter_bytes())
                offset = r.headers["stream-next-offset"]
                if r.headers.get("stream-up-to-date") == "true":
                    break
        m.stop()
        if not parse:
            m.info["bytes"] = got
            got = n
        return got
    if w in ("sse", "latency-sse"):
        m.start()
        got = 0
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("GET", args.url, params={"offset": "-1", "live": "sse"}) as r,
        ):
            r.raise_for_status()
            ready()
            if w == "latency-sse":
                got = timed_items(_raw_sse_items(r.iter_bytes(), orjson.loads), m, n)
            elif parse:
                got = count_items(_raw_sse_items(r.iter_bytes(), orjson.loads), m, n)
            else:
                # bytes only: read to the end of the response (the stream gets closed)
                m.info["bytes"] = sum(len(c) for c in r.iter_bytes())
                got = n
        m.stop()
        return got
    if w in ("latency-long-poll", "long-poll-small"):
        m.start()
        with httpx.Client(timeout=timeout) as client:
            ready()
            items = _raw_long_poll_items(client, args.url, orjson.loads)
            got = timed_items(items, m, n) if w.startswith("latency") else count_items(items, m, n)
        m.stop()
        return got
    if w == "append-1mib":
        bodies = [b"[" + orjson.dumps(big_message(i)) + b"]" for i in range(n)] if not parse else []
        m.start()
        with httpx.Client(timeout=timeout) as client:
            for i in range(n):
                body = b"[" + orjson.dumps(big_message(i)) + b"]" if parse else bodies[i]
                client.post(args.url, content=body, headers={"content-type": JSON_CT})
        m.stop()
        return n
    if w == "produce":
        # Sequential POSTs of ~1 MiB batches (what one producer request carries), serialized
        # with orjson.dumps in the loop (httpx+orjson) or all before the clock (httpx).
        pool = P.message_objects(POOL)
        per = (1 << 20) // (len(orjson.dumps(pool[0])) + 1)
        m.info["messages_per_request"] = per

        def body(start: int) -> bytes:
            return orjson.dumps([pool[i % POOL] for i in range(start, min(n, start + per))])

        starts = range(0, n, per)
        bodies = [] if parse else [body(s) for s in starts]
        m.start()
        with httpx.Client(timeout=timeout) as client:
            for k, s in enumerate(starts):
                r = client.post(
                    args.url,
                    content=body(s) if parse else bodies[k],
                    headers={"content-type": JSON_CT},
                )
                r.raise_for_status()
        m.stop()
        return n
    raise SystemExit(f"unknown workload {w}")


def _raw_sse_items(chunks: Iterator[bytes], loads: Callable[[bytes], Any]) -> Iterator[Any]:
    k = len(DATA_PREFIX)
    for event in _sse_events(chunks):
        if event.startswith(DATA_PREFIX):
            yield from loads(event[k:])


def _raw_long_poll_items(client: Any, url: str, loads: Callable[[bytes], Any]) -> Iterator[Any]:
    offset = "-1"
    cursor = None
    while True:
        params = {"offset": offset, "live": "long-poll"}
        if cursor:
            params["cursor"] = cursor
        r = client.get(url, params=params)
        r.raise_for_status()
        offset = r.headers.get("stream-next-offset", offset)
        cursor = r.headers.get("stream-cursor", cursor)
        if r.status_code == 200:
            yield from loads(r.content)


def _same_bytes(args: argparse.Namespace) -> tuple[bytes, list[bytes]]:
    """The payload bytes the server sends for this workload, built here byte for byte, and
    the JSON payloads within them: the whole body of a catch-up read (one array of every
    message); for SSE, the reference server's body of one data event per append (an array of
    ``--per-event`` messages) followed by a control event, and the array of each event."""
    n = args.messages
    if args.workload == "catch-up":
        body = P.array_body(n)
        return body, [body]
    if args.workload == "catchup-nested":  # what the server stores: 1,000-message arrays
        per = P.MSGS_PER_EVENT
        payloads = [P.nested_array_body(min(per, n - s), s) for s in range(0, n, per)]
        return b"", payloads
    per = args.per_event
    payloads = [P.array_body(min(per, n - s), s) for s in range(0, n, per)]
    events = [
        b"event: data\ndata:%s\n\nevent: control\ndata:"
        b'{"streamNextOffset":"0000000000000000_%016d","streamCursor":"1"}\n\n' % (p, i)
        for i, p in enumerate(payloads)
    ]
    return b"".join(events), payloads


def run_orjson(args: argparse.Namespace, m: Meter) -> int:
    """``orjson.loads`` alone on the same payload bytes (no HTTP, no SSE framing)."""
    import orjson

    m.info["orjson"] = orjson.__version__
    _, payloads = _same_bytes(args)
    loads = orjson.loads
    if args.workload == "catchup-nested":
        return _iterate_arrays(payloads, loads, m, args.messages)
    m.start()
    got = 0
    for p in payloads:
        got += len(loads(p))
    m.stop()
    return got


def _iterate_arrays(payloads: list[bytes], parse: Callable[[bytes], Any], m: Meter, n: int) -> int:
    """Parses each array and hands its items out one by one, counted as the clients' are
    (the same ``_Tally``), and dropped."""
    tally = _Tally(m, n)
    add = tally.add
    m.start()
    for p in payloads:
        for _ in parse(p):
            add()
    m.stop()
    return tally.n


def run_core(args: argparse.Namespace, m: Meter) -> int:
    """This project's native core alone on the same bytes: ``parse_json_array`` of the
    catch-up body; the SSE body (framing included) through ``SseDecoder("json")`` in 64 KiB
    chunks. What the client adds to this is HTTP and hand-out."""
    from durable_streams._core import _native as _core

    m.info["core"] = _core.__version__
    body, payloads = _same_bytes(args)
    if args.workload == "catchup-nested":
        return _iterate_arrays(payloads, _core.parse_json_array, m, args.messages)
    if args.workload == "catch-up":
        m.start()
        got = len(_core.parse_json_array(body))
        m.stop()
        return got
    chunks = P.chunks(body)
    del body
    m.start()
    decoder = _core.SseDecoder("json")
    got = 0
    for chunk in chunks:
        for item in decoder.feed(chunk):
            if type(item) is list:
                got += len(item)
    m.stop()
    return got


def run_socket(args: argparse.Namespace, m: Meter) -> int:
    """The bare-socket floor of ``transport_candidates.py`` (a blocking socket, or asyncio
    streams with ``--async``, HTTP/1.1 by hand, ``orjson``), on the small live workloads."""
    import orjson
    from transport_candidates import run_async, run_sync

    m.info["orjson"] = orjson.__version__
    if args.workload in SYNC_REQUESTS:
        return _socket_one_after_another(args, m)
    if args.workload == "many-streams-append":
        return asyncio.run(_socket_many_streams(args, m))
    if args.workload == "throughput-small":
        return asyncio.run(_socket_throughput_small(args, m))
    workload = {"sse": "sse-small", "long-poll-small": "long-poll-small"}.get(args.workload)
    if workload is None or args.per_event != 1:
        raise SystemExit(f"no bare-socket floor for {args.workload}")
    if args.use_async:
        out = asyncio.run(run_async("socket-floor-async", workload, args.url, args.messages, m))
    else:
        out = run_sync("socket-floor", workload, args.url, args.messages, m)
    got = int(out.pop("messages"))
    m.info.update(out)
    return got


def _answered(status: int, headers: dict[bytes, bytes], ok: tuple[int, ...]) -> bytes:
    """The answer's next offset (what a client hands back), or an error."""
    if status not in ok:
        raise RuntimeError(f"the server answered {status}")
    return headers[b"stream-next-offset"]


def _socket_one_after_another(args: argparse.Namespace, m: Meter) -> int:
    """The floor of ``append-one`` (``orjson.dumps`` of each message, a POST) and
    ``head-one`` (a HEAD): one blocking keep-alive socket, ``_floor.SocketFloor.request``."""
    import orjson
    from _floor import SocketFloor

    n = args.messages
    url = args.url
    floor = SocketFloor()
    request = floor.request
    floor.warm(url)
    if args.workload == "append-one":
        pool = P.message_objects(n)
        dumps = orjson.dumps
        m.start()
        for msg in pool:
            _answered(*request("POST", url, dumps(msg), JSON_CT)[:2], (200, 204))
        m.stop()
    else:
        m.start()
        for _ in range(n):
            _answered(*request("HEAD", url)[:2], (200,))
        m.stop()
    floor.close()
    return n


async def _socket_throughput_small(args: argparse.Namespace, m: Meter) -> int:
    """The floor of ``throughput-small``: the same waves of concurrent appends, joined the
    way the clients join them (the first waits one turn of the loop, then sends every append
    queued by then in one POST; the others wait on a bare future), on one asyncio
    connection (``_floor.SocketFloorAsync``)."""
    from _floor import SocketFloorAsync

    n = args.messages
    conc = args.concurrency
    url = args.url
    payload = P.throughput_payload(args.message_bytes)
    floor = SocketFloorAsync()
    request = floor.request
    loop = asyncio.get_running_loop()
    queue: list[tuple[bytes, asyncio.Future[None]]] = []
    sending = False

    async def append(body: bytes) -> None:
        nonlocal sending
        done = loop.create_future()
        queue.append((body, done))
        if sending:
            return await done
        sending = True
        await asyncio.sleep(0)
        while queue:
            batch = queue[:]
            del queue[:]
            status, headers, _ = await request("POST", url, b"".join(b for b, _ in batch), OCTET_CT)
            _answered(status, headers, (200, 204))
            for _, waiter in batch:
                if waiter is not done:
                    waiter.set_result(None)
        sending = False

    try:
        m.start()
        for start in range(0, n, conc):
            await asyncio.gather(*[append(payload) for _ in range(min(conc, n - start))])
        m.stop()
    finally:
        await floor.close()
    m.info["concurrency"] = conc
    return n


async def _socket_many_streams(args: argparse.Namespace, m: Meter) -> int:
    """The floor of ``many-streams-append``: one asyncio connection per stream
    (``_floor.SocketFloorAsync``), one task per stream, its POSTs one after another."""
    import orjson
    from _floor import SocketFloorAsync

    urls = stream_urls(args)
    per = args.per_stream
    pool = P.message_objects(len(urls) * per)
    floors = [SocketFloorAsync() for _ in urls]
    dumps = orjson.dumps

    async def one(k: int) -> None:
        request = floors[k].request
        url = urls[k]
        for j in range(k * per, (k + 1) * per):
            status, headers, _ = await request("POST", url, dumps(pool[j]), JSON_CT)
            _answered(status, headers, (200, 204))

    try:
        m.start()
        await asyncio.gather(*(one(k) for k in range(len(urls))))
        m.stop()
    finally:
        for floor in floors:
            await floor.close()
    return len(pool)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "contender",
        choices=("ours", "official", "httpx", "httpx+orjson", "orjson", "core", "socket"),
    )
    ap.add_argument("workload", choices=WORKLOADS)
    ap.add_argument("--url", default="")
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--sample-every", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=10_000, help="official: concurrent appends")
    ap.add_argument("--expect-impl", choices=("native", "pure"))
    ap.add_argument("--sync-producer", action="store_true")
    ap.add_argument("--state-file", action="store_true")
    ap.add_argument("--async", dest="use_async", action="store_true", help="live reads on asyncio")
    ap.add_argument("--gc-off", action="store_true", help="gc.disable() before the workload")
    ap.add_argument("--streams", type=int, default=200, help="many-stream workloads: streams")
    ap.add_argument("--per-stream", type=int, default=10, help="many-streams-append: appends")
    ap.add_argument("--concurrency", type=int, default=75, help="throughput-small: wave size")
    ap.add_argument("--message-bytes", type=int, default=100, help="throughput-small: bytes")
    ap.add_argument("--soak-seconds", type=float, default=600.0)
    ap.add_argument("--soak-interval", type=float, default=2.0, help="seconds between appends")
    ap.add_argument("--soak-sample-every", type=float, default=10.0)
    ap.add_argument("--soak-drain", type=float, default=60.0, help="seconds to receive the rest")
    args = ap.parse_args()
    if args.gc_off:
        gc.disable()
    # sse-small is the sse workload with one message per append (so per SSE data event)
    args.per_event = 1 if args.workload in ("sse-small", "long-poll-small") else P.LIVE_APPEND
    if args.workload == "sse-small":
        args.workload = "sse"
    m = Meter(args.sample_every)
    run = {
        "ours": run_ours,
        "official": run_official,
        "httpx": run_raw,
        "httpx+orjson": run_raw,
        "orjson": run_orjson,
        "core": run_core,
        "socket": run_socket,
    }[args.contender]
    got = run(args, m)
    out = m.result(got)
    out["python"] = sys.version.split()[0]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
