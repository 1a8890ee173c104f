"""pytest-benchmark suites of the client end to end, against the reference server, native
against pure: append, producer, catch-up read, SSE read, and long-poll / SSE round trips.

Not part of the test run (``testpaths = ["tests"]``). Run them with::

    .venv/bin/python -m pytest benches --benchmark-only

The server is the pinned reference server (``refserver/``), in-memory, compression off, one
for the session. The core is switched per test with ``durable_streams._core.use`` (the
API looks the core up on every use). Reads are driven through the public API only; the
writers of the read benchmarks are plain httpx, so the two implementations differ in the
reader alone. Figures are wall time per round; ``extra_info`` has the per-message cost.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _payloads as P
import httpx
import pytest

import durable_streams as ds
from durable_streams import _core

REPO = Path(__file__).resolve().parent.parent
CATCH_UP_MESSAGES = 20_000
PRODUCE_MESSAGES = 20_000
LIVE_BATCH = 1_000  # messages per append of the SSE read benchmark (one SSE data event)
JSON_CT = {"content-type": "application/json"}


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    import sys

    sys.path.insert(0, str(REPO / "refserver"))
    from launch import ReferenceServer

    with ReferenceServer(compression=False) as server:
        yield server.url


@pytest.fixture(scope="session")
def writer() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0) as client:
        yield client


@pytest.fixture(params=["native", "pure"])
def impl(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = _core.IMPLEMENTATION
    _core.use(request.param)
    yield request.param
    _core.use(previous)


def new_stream(writer: httpx.Client, server_url: str, tag: str) -> str:
    url = f"{server_url}/bench/{tag}-{uuid.uuid4().hex[:12]}"
    writer.put(url, headers=JSON_CT).raise_for_status()
    return url


def _per_message(benchmark: Any, n: int) -> None:
    best = benchmark.stats.stats.min
    benchmark.extra_info["messages"] = n
    benchmark.extra_info["us_per_message_min"] = round(best / n * 1e6, 3)
    benchmark.extra_info["messages_per_s_max"] = round(n / best)


# ---- writing --------------------------------------------------------------------------------


def test_append(benchmark: Any, impl: str, writer: httpx.Client, server_url: str) -> None:
    """One small message per ``DurableStream.append``: a whole request/response round trip."""
    benchmark.group = "append"
    url = new_stream(writer, server_url, "append")
    msg = P.message_objects(1)[0]
    with ds.DurableStream(url, content_type="application/json") as handle:
        result = benchmark(handle.append, msg)
    assert result.offset
    _per_message(benchmark, 1)


def test_produce(benchmark: Any, impl: str, writer: httpx.Client, server_url: str) -> None:
    """20,000 small messages through a ``SyncIdempotentProducer`` (``append_nowait``, then
    ``flush``); a new producer id per round, so every round starts at sequence 0."""
    benchmark.group = "produce"
    url = new_stream(writer, server_url, "produce")
    pool = P.message_objects(PRODUCE_MESSAGES)

    def produce() -> None:
        with ds.SyncIdempotentProducer(
            url, producer_id=uuid.uuid4().hex, content_type="application/json"
        ) as producer:
            for msg in pool:
                producer.append_nowait(msg)
            producer.flush()

    benchmark(produce)
    _per_message(benchmark, PRODUCE_MESSAGES)


# ---- reading --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catch_up_url(writer: httpx.Client, server_url: str) -> str:
    url = new_stream(writer, server_url, "catch-up")
    for start in range(0, CATCH_UP_MESSAGES, 10_000):
        body = P.array_body(min(10_000, CATCH_UP_MESSAGES - start), start)
        writer.post(url, content=body, headers=JSON_CT).raise_for_status()
    writer.post(url, headers={**JSON_CT, "Stream-Closed": "true"}).raise_for_status()
    return url


def test_catch_up_read(benchmark: Any, impl: str, catch_up_url: str) -> None:
    """A closed stream of 20,000 messages read from the start (one response), item by item."""
    benchmark.group = "catch-up-read"

    def read() -> int:
        n = 0
        with ds.stream(catch_up_url) as res:
            for _ in res.iter_json():
                n += 1
        return n

    assert benchmark(read) == CATCH_UP_MESSAGES
    _per_message(benchmark, CATCH_UP_MESSAGES)


class Tail:
    """A live reader on its own thread, counting items; ``expect(k)`` arms an event that fires
    once ``k`` more items have arrived."""

    def __init__(self, url: str, live: ds.LiveMode) -> None:
        self.url = url
        self.live = live
        self.seen = 0
        self.target = 0
        self.arrived = threading.Event()
        self.failure: BaseException | None = None
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.connected.wait(10):
            raise TimeoutError("the reader did not connect within 10 s")
        if self.failure is not None:
            raise self.failure

    def _run(self) -> None:
        try:
            with ds.stream(self.url, live=self.live) as res:
                self.connected.set()
                for _ in res.iter_json():
                    self.seen += 1
                    if self.seen >= self.target:
                        self.arrived.set()
        except BaseException as exc:  # reported by wait() / stop() / the constructor
            self.failure = exc
            self.arrived.set()
            self.connected.set()

    def expect(self, k: int) -> None:
        self.arrived.clear()
        self.target = self.seen + k

    def wait(self) -> None:
        if not self.arrived.wait(30):
            raise TimeoutError(f"the reader saw {self.seen} items, waiting for {self.target}")
        if self.failure is not None:
            raise self.failure

    def stop(self, writer: httpx.Client) -> None:
        writer.post(self.url, headers={**JSON_CT, "Stream-Closed": "true"})
        self.thread.join(30)
        if self.failure is not None:
            raise self.failure


@pytest.fixture
def tail_factory(writer: httpx.Client, server_url: str) -> Iterator[Any]:
    tails: list[Tail] = []

    def make(live: ds.LiveMode) -> Tail:
        tail = Tail(new_stream(writer, server_url, "tail"), live)
        # one message through first, so the reader is past its catch-up and on its live
        # connection before anything is timed
        tail.expect(1)
        writer.post(tail.url, content=b'[{"warm":1}]', headers=JSON_CT).raise_for_status()
        tail.wait()
        tails.append(tail)
        return tail

    yield make
    for tail in tails:
        tail.stop(writer)


def test_sse_read(benchmark: Any, impl: str, writer: httpx.Client, tail_factory: Any) -> None:
    """A live SSE reader receives 1,000 messages appended in one request (one data event):
    from the append until the reader has handed out the last of them."""
    benchmark.group = "sse-read"
    tail = tail_factory("sse")
    body = P.array_body(LIVE_BATCH)

    def round_trip() -> None:
        tail.expect(LIVE_BATCH)
        writer.post(tail.url, content=body, headers=JSON_CT).raise_for_status()
        tail.wait()

    benchmark(round_trip)
    _per_message(benchmark, LIVE_BATCH)


@pytest.mark.parametrize("live", ["long-poll", "sse"])
def test_round_trip(
    benchmark: Any, impl: str, live: ds.LiveMode, writer: httpx.Client, tail_factory: Any
) -> None:
    """Append one message, wait until the live reader (waiting already) hands it out."""
    benchmark.group = f"round-trip-{live}"
    tail = tail_factory(live)
    body = P.array_body(1)

    def round_trip() -> None:
        tail.expect(1)
        writer.post(tail.url, content=body, headers=JSON_CT).raise_for_status()
        tail.wait()

    benchmark(round_trip)
