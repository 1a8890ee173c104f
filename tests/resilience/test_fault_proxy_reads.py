"""Readers against the real server through a faulty network (tests/faultproxy.py), and against
the server's own injected faults: every message arrives exactly once, in order, and the read
ends at the end of the closed stream; or it stops with a typed error. Never a hang, never a
duplicate.

Each test runs on both cores (tests/resilience/conftest.py); async ones under asyncio and trio.
"""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

import durable_streams as ds
from durable_streams import RetryPolicy
from durable_streams._reading import _session as _read
from faultproxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

N_MESSAGES = 3000
BATCH = 100
LIVE_BATCH = 50
WINDOW = 2  # batches the live writer may run ahead of the reader
# Consecutive failures are bounded in time, not in number: under LIVE_CUTS a long-poll
# answer needs a few attempts on average.
RETRY = RetryPolicy(max_retries=None, initial_delay=0.002, max_delay=0.02, deadline=10)
CUTS: dict[str, Any] = {"cut_mid_response": 0.4, "cut_after_request": 0.15, "cut_mid_request": 0.15}
# A live reader keeps one connection while it is whole (SSE holds it for the whole tail), so
# here every connection is cut somewhere.
LIVE_CUTS: dict[str, Any] = {
    "cut_mid_response": 0.6,
    "cut_after_request": 0.2,
    "cut_mid_request": 0.2,
}
MIN_CUTS = 3
MAX_READS = 12


def message(i: int) -> Any:
    """Messages of varied shape and size, some with text that looks like SSE or HTTP framing."""
    if i % 11 == 0:
        return {"i": i, "text": "event: control\ndata: {}\r\n\r\n", "u": "é€😀"}
    if i % 7 == 0:
        return [i, None, True, {"nested": {"deep": [i] * (i % 5)}}]
    return {"i": i, "pad": "x" * (i % 97)}


EXPECTED = [message(i) for i in range(N_MESSAGES)]


def _create(url: str) -> None:
    answer = httpx.put(url, headers={"content-type": "application/json"})
    assert answer.status_code == 201, answer.text


def _append(client: httpx.Client, url: str, messages: list[Any]) -> None:
    answer = client.post(url, json=messages)
    assert answer.status_code == 204, answer.text


def _close(client: httpx.Client, url: str) -> None:
    answer = client.post(url, headers={"stream-closed": "true"})
    assert answer.status_code in (200, 204), answer.text


@pytest.fixture(scope="module")
def closed_stream(server_url: str) -> str:
    """A closed JSON stream of ``EXPECTED``, written directly to the server in batches."""
    url = f"{server_url}/test/closed-{uuid.uuid4().hex}"
    _create(url)
    with httpx.Client() as client:
        for start in range(0, N_MESSAGES, BATCH):
            _append(client, url, EXPECTED[start : start + BATCH])
        _close(client, url)
    return url


@pytest.fixture(params=["whole-bodies", "bodies-in-parts"])
def body_batches(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Catch-up and long-poll bodies as one batch each, or handed out in 2 KiB parts before
    they end, so that a cut in the middle of a body resumes behind what was handed out."""
    if request.param == "bodies-in-parts":
        monkeypatch.setattr(_read, "BODY_BATCH_BYTES", 2048)
    return str(request.param)


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """A per-test seed: reruns of one test meet the same faults."""
    return zlib.crc32(request.node.nodeid.encode())


def _cuts(proxy: FaultProxy) -> int:
    stats = proxy.stats
    return stats["cuts_mid_response"] + stats["cuts_after_request"] + stats["cuts_mid_request"]


def _through(proxy: FaultProxy, server_url: str, url: str) -> str:
    return proxy.url + url.removeprefix(server_url)


# -- a closed stream, read again and again until the proxy has cut several reads -------------

LIVE_MODES = [False, "long-poll", "sse"]


def _read_sync(url: str, live: ds.LiveMode) -> list[Any]:
    # A client of its own per read: its connections are new, so each read meets the faults
    # the proxy draws per connection (a shared pool would reuse one connection for all).
    with ds.Client() as client, client.stream(url, live=live, retry=RETRY, timeout=10) as res:
        items = list(res.iter_json())
        assert res.stream_closed
        assert res.up_to_date
    return items


@pytest.mark.parametrize("live", LIVE_MODES)
def test_closed_stream_sync(
    closed_stream: str, server_url: str, seed: int, live: ds.LiveMode, body_batches: str
) -> None:
    with FaultProxy(server_url, seed=seed, max_delay=0.0003, **CUTS) as proxy:
        url = _through(proxy, server_url, closed_stream)
        reads = 0
        while _cuts(proxy) < MIN_CUTS and reads < MAX_READS:
            assert _read_sync(url, live) == EXPECTED
            reads += 1
        assert _cuts(proxy) >= MIN_CUTS, proxy.stats
        assert proxy.stats["fragments"] > 0


async def _read_async(url: str, live: ds.LiveMode) -> list[Any]:
    async with (
        ds.AsyncClient() as client,
        client.stream(url, live=live, retry=RETRY, timeout=10) as res,
    ):
        items = [item async for item in res.iter_json()]
        assert res.stream_closed
        assert res.up_to_date
    return items


@pytest.mark.anyio
@pytest.mark.parametrize("live", LIVE_MODES)
async def test_closed_stream_async(
    closed_stream: str, server_url: str, seed: int, live: ds.LiveMode, body_batches: str
) -> None:
    with FaultProxy(server_url, seed=seed, max_delay=0.0003, **CUTS) as proxy:
        url = _through(proxy, server_url, closed_stream)
        reads = 0
        while _cuts(proxy) < MIN_CUTS and reads < MAX_READS:
            assert await _read_async(url, live) == EXPECTED
            reads += 1
        assert _cuts(proxy) >= MIN_CUTS, proxy.stats
        assert proxy.stats["fragments"] > 0


# -- the same, a batch at a time: each batch once, with an offset that resumes behind it ------


def _check_batches(url: str, batches: list[ds.JsonBatch]) -> list[Any]:
    """The batches' messages, after checking that each batch's offset resumes right behind it
    (read again without faults: what follows the offset is the rest of the stream)."""
    assert batches[-1].stream_closed
    messages = [m for batch in batches for m in batch.messages]
    middle = len(batches) // 2
    seen = sum(len(batch.messages) for batch in batches[: middle + 1])
    with ds.stream(url, offset=batches[middle].offset) as res:
        assert res.read_json() == messages[seen:]
    return messages


@pytest.mark.parametrize("live", LIVE_MODES)
def test_closed_stream_in_batches_sync(
    closed_stream: str, server_url: str, seed: int, live: ds.LiveMode, body_batches: str
) -> None:
    with FaultProxy(server_url, seed=seed, max_delay=0.0003, **CUTS) as proxy:
        url = _through(proxy, server_url, closed_stream)
        reads = 0
        while _cuts(proxy) < MIN_CUTS and reads < MAX_READS:
            with ds.Client() as client, client.stream(url, live=live, retry=RETRY) as res:
                batches = list(res.iter_json_batches())
                assert res.offset == batches[-1].offset
            assert _check_batches(closed_stream, batches) == EXPECTED
            reads += 1
        assert _cuts(proxy) >= MIN_CUTS, proxy.stats


@pytest.mark.anyio
@pytest.mark.parametrize("live", LIVE_MODES)
async def test_closed_stream_in_batches_async(
    closed_stream: str, server_url: str, seed: int, live: ds.LiveMode, body_batches: str
) -> None:
    with FaultProxy(server_url, seed=seed, max_delay=0.0003, **CUTS) as proxy:
        url = _through(proxy, server_url, closed_stream)
        reads = 0
        while _cuts(proxy) < MIN_CUTS and reads < MAX_READS:
            async with (
                ds.AsyncClient() as client,
                client.stream(url, live=live, retry=RETRY) as res,
            ):
                batches = [batch async for batch in res.iter_json_batches()]
                assert res.offset == batches[-1].offset
            assert _check_batches(closed_stream, batches) == EXPECTED
            reads += 1
        assert _cuts(proxy) >= MIN_CUTS, proxy.stats


# -- a live tail: the writer appends while the reader follows through the faulty proxy -------


class Writer(threading.Thread):
    """Appends ``EXPECTED`` from ``first`` on in batches directly to the server, at most
    ``ahead`` messages ahead of what the reader has reported, then closes the stream."""

    def __init__(self, url: str, first: int = 0, ahead: int = WINDOW * LIVE_BATCH) -> None:
        super().__init__(name="live-writer", daemon=True)
        self.url = url
        self.first = first
        self.ahead = ahead
        self.error: BaseException | None = None
        self._read = 0
        self._stopped = False
        self._changed = threading.Condition()

    def advance(self) -> None:
        with self._changed:
            self._read += 1
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def _wait_for_reader(self, count: int) -> bool:
        """Wait until the reader has ``count`` items; False once stopped."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._stopped or self._read >= count, 20):
                raise TimeoutError(f"the reader stalled at {self._read}")
            return not self._stopped

    def run(self) -> None:
        try:
            with httpx.Client(timeout=10) as client:
                for start in range(self.first, N_MESSAGES, LIVE_BATCH):
                    if not self._wait_for_reader(start - self.ahead):
                        return
                    _append(client, self.url, EXPECTED[start : start + LIVE_BATCH])
                _close(client, self.url)
        except BaseException as exc:
            self.error = exc


@pytest.fixture
def writer(stream_url: str) -> Iterator[Writer]:
    _create(stream_url)
    thread = Writer(stream_url)
    yield thread
    thread.stop()
    thread.join(10)
    assert not thread.is_alive()


@pytest.mark.parametrize("live", ["long-poll", "sse"])
def test_live_tail_sync(
    writer: Writer, stream_url: str, server_url: str, seed: int, live: ds.LiveMode
) -> None:
    items = []
    with FaultProxy(server_url, seed=seed, max_delay=0.0003, **LIVE_CUTS) as proxy:
        writer.start()
        url = _through(proxy, server_url, stream_url)
        with ds.stream(url, live=live, retry=RETRY, timeout=10) as res:
            for item in res.iter_json():
                items.append(item)
                writer.advance()
            assert res.stream_closed
        writer.join(10)
        assert writer.error is None, writer.error
        assert items == EXPECTED
        assert _cuts(proxy) >= MIN_CUTS, proxy.stats


@pytest.mark.anyio
@pytest.mark.parametrize("live", ["long-poll", "sse"])
async def test_live_tail_async(
    writer: Writer, stream_url: str, server_url: str, seed: int, live: ds.LiveMode
) -> None:
    items = []
    with FaultProxy(server_url, seed=seed, max_delay=0.0003, **LIVE_CUTS) as proxy:
        writer.start()
        url = _through(proxy, server_url, stream_url)
        async with ds.astream(url, live=live, retry=RETRY, timeout=10) as res:
            async for item in res.iter_json():
                items.append(item)
                writer.advance()
            assert res.stream_closed
        await anyio.to_thread.run_sync(writer.join, 10)
        assert writer.error is None, writer.error
        assert items == EXPECTED
        assert _cuts(proxy) >= MIN_CUTS, proxy.stats


@pytest.mark.parametrize("live", ["long-poll", "sse"])
def test_live_tail_in_batches_sync(
    writer: Writer, stream_url: str, server_url: str, seed: int, live: ds.LiveMode
) -> None:
    batches = []
    with FaultProxy(server_url, seed=seed, max_delay=0.0003, **LIVE_CUTS) as proxy:
        writer.start()
        url = _through(proxy, server_url, stream_url)
        with ds.stream(url, live=live, retry=RETRY, timeout=10) as res:
            for batch in res.iter_json_batches():
                batches.append(batch)
                for _ in batch.messages:
                    writer.advance()
        writer.join(10)
        assert writer.error is None, writer.error
        assert _check_batches(stream_url, batches) == EXPECTED
        assert _cuts(proxy) >= MIN_CUTS, proxy.stats


@pytest.mark.anyio
@pytest.mark.parametrize("live", ["long-poll", "sse"])
async def test_live_tail_in_batches_async(
    writer: Writer, stream_url: str, server_url: str, seed: int, live: ds.LiveMode
) -> None:
    batches = []
    with FaultProxy(server_url, seed=seed, max_delay=0.0003, **LIVE_CUTS) as proxy:
        writer.start()
        url = _through(proxy, server_url, stream_url)
        async with ds.astream(url, live=live, retry=RETRY, timeout=10) as res:
            async for batch in res.iter_json_batches():
                batches.append(batch)
                for _ in batch.messages:
                    writer.advance()
        await anyio.to_thread.run_sync(writer.join, 10)
        assert writer.error is None, writer.error
        assert _check_batches(stream_url, batches) == EXPECTED
        assert _cuts(proxy) >= MIN_CUTS, proxy.stats


# -- far behind a writer, through a proxy that cuts every SSE answer after a few KB -----------

# A catch-up burst over SSE carries one control event, at its end: cut anywhere, it commits
# nothing, and the next one (the writer went on meanwhile) is longer still.
BEHIND = N_MESSAGES // 2
SSE_CUT = 4096


@pytest.fixture
def behind(stream_url: str) -> Iterator[Writer]:
    """A stream with ``BEHIND`` messages, and a writer that keeps the reader that far behind."""
    _create(stream_url)
    with httpx.Client() as client:
        for start in range(0, BEHIND, BATCH):
            _append(client, stream_url, EXPECTED[start : start + BATCH])
    thread = Writer(stream_url, first=BEHIND, ahead=BEHIND)
    yield thread
    thread.stop()
    thread.join(10)
    assert not thread.is_alive()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("live", ["sse", "long-poll"])
def test_far_behind_sync(
    behind: Writer, stream_url: str, server_url: str, live: ds.LiveMode
) -> None:
    items = []
    with FaultProxy(server_url, fragment=False, cut_sse_after=SSE_CUT) as proxy:
        behind.start()
        with ds.stream(_through(proxy, server_url, stream_url), live=live) as res:
            for item in res.iter_json():
                items.append(item)
                behind.advance()
            assert res.stream_closed
        behind.join(10)
        assert behind.error is None, behind.error
        assert items == EXPECTED
        if live == "sse":
            assert proxy.stats["cuts_sse"] > 0


@pytest.mark.anyio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("live", ["sse", "long-poll"])
async def test_far_behind_async(
    behind: Writer, stream_url: str, server_url: str, live: ds.LiveMode
) -> None:
    items = []
    with FaultProxy(server_url, fragment=False, cut_sse_after=SSE_CUT) as proxy:
        behind.start()
        # pytest-timeout's signal does not stop a trio run that is waiting to retry.
        with anyio.fail_after(45):
            async with ds.astream(_through(proxy, server_url, stream_url), live=live) as res:
                async for item in res.iter_json():
                    items.append(item)
                    behind.advance()
                assert res.stream_closed
        await anyio.to_thread.run_sync(behind.join, 10)
        assert behind.error is None, behind.error
        assert items == EXPECTED
        if live == "sse":
            assert proxy.stats["cuts_sse"] > 0


# -- SSE answers cut short every time (a buffering proxy): the reader goes on by long-poll ----


def _check_fallback(
    proxy: FaultProxy, stats: ds.ReaderStats, fallback: bool, caplog: pytest.LogCaptureFixture
) -> None:
    warned = [r for r in caplog.records if "by long-poll from now on" in r.getMessage()]
    assert stats.sse_fell_back is fallback
    if fallback:
        assert stats.mode == "long-poll"
        assert len(warned) == 1
        assert warned[0].levelname == "WARNING"
        # Three short SSE answers, then no more SSE: every later cut would be another one.
        assert proxy.stats["cuts_sse"] == ds.SseFallback().max_short_connections
    else:
        assert warned == []
        assert proxy.stats["cuts_sse"] > ds.SseFallback().max_short_connections


@pytest.mark.parametrize("fallback", [True, False])
def test_sse_cut_short_falls_back_to_long_poll_sync(
    writer: Writer,
    stream_url: str,
    server_url: str,
    fallback: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = []
    caplog.set_level("WARNING", logger="durable_streams")
    with FaultProxy(server_url, fragment=False, cut_sse_after=SSE_CUT) as proxy:
        writer.start()
        url = _through(proxy, server_url, stream_url)
        with ds.stream(url, live="sse", retry=RETRY, sse_fallback=fallback) as res:
            for item in res.iter_json():
                items.append(item)
                writer.advance()
            assert res.stream_closed
            stats = res.stats()
        writer.join(10)
        assert writer.error is None, writer.error
        assert items == EXPECTED
        _check_fallback(proxy, stats, fallback, caplog)


@pytest.mark.anyio
@pytest.mark.parametrize("fallback", [True, False])
async def test_sse_cut_short_falls_back_to_long_poll_async(
    writer: Writer,
    stream_url: str,
    server_url: str,
    fallback: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = []
    caplog.set_level("WARNING", logger="durable_streams")
    with FaultProxy(server_url, fragment=False, cut_sse_after=SSE_CUT) as proxy:
        writer.start()
        url = _through(proxy, server_url, stream_url)
        with anyio.fail_after(45):
            async with ds.astream(url, live="sse", retry=RETRY, sse_fallback=fallback) as res:
                async for item in res.iter_json():
                    items.append(item)
                    writer.advance()
                assert res.stream_closed
                stats = res.stats()
        await anyio.to_thread.run_sync(writer.join, 10)
        assert writer.error is None, writer.error
        assert items == EXPECTED
        _check_fallback(proxy, stats, fallback, caplog)


# -- the server's own injected faults (POST /_test/inject-error) --------------------------------

FIRST, LIVE = "first", "live"
HEAD_COUNT, TAIL_COUNT = 200, 100


class Injected:
    """One fault the server injects into a read: on its first request (``FIRST``), or on the
    first live request after the catch-up (``LIVE``); and what the read must end with."""

    def __init__(
        self,
        name: str,
        fault: dict[str, Any],
        *,
        live: ds.LiveMode,
        phase: str,
        raises: type[ds.DurableStreamError] | None = None,
        min_seconds: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.fault = {"method": "GET", **fault}
        self.live = live
        self.phase = phase
        self.raises = raises
        self.min_seconds = min_seconds
        self.headers = headers

    def __repr__(self) -> str:
        return self.name


BOGUS_CONTROL = {"eventType": "control", "data": "{not json"}
IDENTITY = {"accept-encoding": "identity"}
INJECTED = [
    Injected("503-retry-after", {"status": 503, "retryAfter": 1}, live=False, phase=FIRST,
             min_seconds=1.0),
    Injected("429-retry-after", {"status": 429, "retryAfter": 1}, live="sse", phase=LIVE,
             min_seconds=1.0),
    Injected("500-twice", {"status": 500, "count": 2}, live="long-poll", phase=LIVE),
    Injected("502-sse", {"status": 502}, live="sse", phase=LIVE),
    Injected("drop-catch-up", {"dropConnection": True, "count": 3}, live=False, phase=FIRST),
    Injected("drop-long-poll", {"dropConnection": True, "count": 2}, live="long-poll",
             phase=LIVE),
    Injected("drop-sse", {"dropConnection": True, "count": 2}, live="sse", phase=LIVE),
    Injected("delay", {"delayMs": 300}, live=False, phase=FIRST, min_seconds=0.3),
    Injected("delay-sse", {"delayMs": 300}, live="sse", phase=LIVE, min_seconds=0.3),
    # A gzip body cut short is a transfer failure: retried.
    Injected("truncate-gzip", {"truncateBodyBytes": 100}, live=False, phase=FIRST),
    Injected("truncate-gzip-long-poll", {"truncateBodyBytes": 60}, live="long-poll",
             phase=LIVE),
    # Cut short without compression, only the JSON framing shows it: a typed error.
    Injected("truncate-identity", {"truncateBodyBytes": 100}, live=False, phase=FIRST,
             raises=ds.JSONParseError, headers=IDENTITY),
    Injected("truncate-to-nothing", {"truncateBodyBytes": 0}, live="long-poll", phase=LIVE,
             raises=ds.ProtocolError),
    Injected("corrupt-gzip", {"corruptBody": True}, live=False, phase=FIRST),
    Injected("corrupt-identity", {"corruptBody": True}, live="long-poll", phase=LIVE,
             raises=ds.JSONParseError, headers=IDENTITY),
    Injected("sse-bogus-control", {"injectSseEvent": BOGUS_CONTROL}, live="sse", phase=LIVE,
             raises=ds.SSEParseError),
    Injected("sse-unknown-event", {"injectSseEvent": {"eventType": "ping", "data": "x"}},
             live="sse", phase=LIVE),
    Injected("404", {"status": 404}, live="long-poll", phase=LIVE,
             raises=ds.StreamNotFoundError),
]  # fmt: skip


def _inject(server_url: str, url: str, fault: dict[str, Any]) -> None:
    path = url.removeprefix(server_url)
    answer = httpx.post(f"{server_url}/_test/inject-error", json={"path": path, **fault})
    assert answer.status_code == 200, answer.text


def _prepare(server_url: str, url: str, case: Injected) -> None:
    """The stream's head part; for ``FIRST`` the tail and the close too, and the fault."""
    _create(url)
    with httpx.Client() as client:
        _append(client, url, EXPECTED[:HEAD_COUNT])
        if case.phase == FIRST:
            _append(client, url, EXPECTED[HEAD_COUNT : HEAD_COUNT + TAIL_COUNT])
            _close(client, url)
            _inject(server_url, url, case.fault)


def _finish(server_url: str, url: str, case: Injected) -> None:
    """Once the reader has caught up: the tail, the close, then the fault for what it asks next."""
    with httpx.Client() as client:
        _append(client, url, EXPECTED[HEAD_COUNT : HEAD_COUNT + TAIL_COUNT])
        _close(client, url)
    _inject(server_url, url, case.fault)


def _check_injected(case: Injected, items: list[Any], error: BaseException | None) -> None:
    expected = EXPECTED[: HEAD_COUNT + TAIL_COUNT]
    if case.raises is None:
        assert error is None, repr(error)
    else:
        assert type(error) is case.raises, repr(error)
    assert items == expected


@pytest.mark.parametrize("case", INJECTED, ids=repr)
def test_injected_fault_sync(server_url: str, stream_url: str, case: Injected) -> None:
    _prepare(server_url, stream_url, case)
    items: list[Any] = []
    error: BaseException | None = None
    started = time.monotonic()
    with ds.stream(
        stream_url, live=case.live, retry=RETRY, timeout=10, headers=case.headers
    ) as res:
        iterator = res.iter_json()
        if case.phase == LIVE:
            items.extend(next(iterator) for _ in range(HEAD_COUNT))
            _finish(server_url, stream_url, case)
        try:
            items.extend(iterator)
        except ds.DurableStreamError as exc:
            error = exc
            assert items == EXPECTED[: len(items)]  # what came before the error, once
            items.extend(res.iter_json())  # a new iteration resumes where it stood
        assert res.stream_closed
    assert time.monotonic() - started >= case.min_seconds
    _check_injected(case, items, error)


# The drivers share every decision; one slow Retry-After case is enough for the async one.
ASYNC_INJECTED = [case for case in INJECTED if case.name != "429-retry-after"]


@pytest.mark.anyio
@pytest.mark.parametrize("case", ASYNC_INJECTED, ids=repr)
async def test_injected_fault_async(server_url: str, stream_url: str, case: Injected) -> None:
    _prepare(server_url, stream_url, case)
    items: list[Any] = []
    error: BaseException | None = None
    started = time.monotonic()
    async with ds.astream(
        stream_url, live=case.live, retry=RETRY, timeout=10, headers=case.headers
    ) as res:
        iterator = res.iter_json()
        if case.phase == LIVE:
            while len(items) < HEAD_COUNT:
                items.append(await iterator.__anext__())
            _finish(server_url, stream_url, case)
        try:
            async for item in iterator:
                items.append(item)
        except ds.DurableStreamError as exc:
            error = exc
            assert items == EXPECTED[: len(items)]
            items.extend([item async for item in res.iter_json()])
        assert res.stream_closed
    assert time.monotonic() - started >= case.min_seconds
    _check_injected(case, items, error)
