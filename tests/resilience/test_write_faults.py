"""Writes through a hostile network, on both transports (native and httpx), sync and async:
the fault proxy cuts requests on the way in, after they went out, and answers mid-way. The
write rules hold: an append is resent only when it cannot have been stored, so a stream holds
every append that succeeded exactly once, and an append that failed at most once (once only if
its error said it may have been stored). The producer's batches carry producer headers, so
it delivers everything exactly once whatever is cut."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

import durable_streams as ds

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faultproxy import FaultProxy

JSON = "application/json"
CUTS: dict[str, Any] = {
    "cut_mid_request": 0.15,
    "cut_after_request": 0.15,
    "cut_mid_response": 0.15,
    "fragment": True,
    "max_delay": 0.0002,
}
RETRY = ds.RetryPolicy(max_retries=50, initial_delay=0.002, max_delay=0.02, deadline=30)
# A fresh connection per request, so that every request meets the proxy's per-connection faults.
ONE_REQUEST_PER_CONNECTION = {"connection": "close"}
APPENDS = 120


@pytest.fixture(params=["native", "httpx"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DURABLE_STREAMS_TRANSPORT", request.param)
    return str(request.param)


def stored(url: str) -> list[Any]:
    with ds.stream(url) as res:
        return res.read_json()


def check(url: str, outcomes: dict[int, BaseException | None]) -> None:
    counts = Counter(m["n"] for m in stored(url))
    for n, outcome in outcomes.items():
        if outcome is None:
            assert counts[n] == 1, (n, counts[n])  # acknowledged: stored exactly once
        elif isinstance(outcome, ds.TransportError) and outcome.request_sent:
            assert counts[n] <= 1, (n, counts[n])  # may have been stored: never twice
        else:
            assert counts[n] == 0, (n, outcome)  # cannot have been stored
    assert set(counts) <= set(outcomes)


@pytest.mark.timeout(120)
def test_sync_appends_through_cuts(server_url: str, stream_url: str, transport: str) -> None:
    ds.DurableStream.create(stream_url, content_type=JSON).close()
    outcomes: dict[int, BaseException | None] = {}
    with FaultProxy(server_url, seed=3, **CUTS) as proxy:
        url = proxy.url + stream_url.removeprefix(server_url)
        with ds.Client(headers=ONE_REQUEST_PER_CONNECTION, retry=RETRY) as client:
            handle = client.handle(url, content_type=JSON)
            lock = threading.Lock()

            def work(worker: int) -> None:
                for n in range(worker, APPENDS, 4):
                    try:
                        handle.append({"n": n})
                        outcome: BaseException | None = None
                    except ds.DurableStreamError as exc:
                        outcome = exc
                    with lock:
                        outcomes[n] = outcome

            threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        cuts = sum(proxy.stats[k] for k in ("cuts_mid_request", "cuts_after_request"))
    assert len(outcomes) == APPENDS and cuts > 5, proxy.stats
    check(stream_url, outcomes)


@pytest.mark.timeout(120)
@pytest.mark.anyio
async def test_async_appends_through_cuts(server_url: str, stream_url: str, transport: str) -> None:
    async with await ds.AsyncDurableStream.create(stream_url, content_type=JSON):
        pass
    outcomes: dict[int, BaseException | None] = {}
    with FaultProxy(server_url, seed=4, **CUTS) as proxy:
        url = proxy.url + stream_url.removeprefix(server_url)
        async with ds.AsyncClient(headers=ONE_REQUEST_PER_CONNECTION, retry=RETRY) as client:
            handle = client.handle(url, content_type=JSON)

            async def work(worker: int) -> None:
                for n in range(worker, APPENDS, 4):
                    try:
                        await handle.append({"n": n})
                        outcomes[n] = None
                    except ds.DurableStreamError as exc:
                        outcomes[n] = exc

            async with anyio.create_task_group() as group:  # four at a time: coalesced
                for worker in range(4):
                    group.start_soon(work, worker)
        cuts = sum(proxy.stats[k] for k in ("cuts_mid_request", "cuts_after_request"))
    assert len(outcomes) == APPENDS and cuts > 2, proxy.stats
    check(stream_url, outcomes)


@pytest.mark.timeout(120)
@pytest.mark.anyio
async def test_producer_delivers_everything_once_through_cuts(
    server_url: str, stream_url: str, transport: str
) -> None:
    async with await ds.AsyncDurableStream.create(stream_url, content_type=JSON):
        pass
    messages = [{"n": n} for n in range(1000)]
    with FaultProxy(server_url, seed=5, **CUTS) as proxy:
        url = proxy.url + stream_url.removeprefix(server_url)
        async with ds.IdempotentProducer(
            url,
            producer_id="p",
            content_type=JSON,
            max_batch_bytes=600,
            max_in_flight=3,
            retry=RETRY,
            headers=ONE_REQUEST_PER_CONNECTION,
        ) as producer:
            for message in messages:
                producer.append_nowait(message)
            await producer.flush()
    assert stored(stream_url) == messages


@pytest.mark.timeout(120)
def test_control_calls_through_cuts(server_url: str, stream_url: str, transport: str) -> None:
    """Create, head, close and delete are idempotent: resent through any cut, they end as if
    sent once."""
    with FaultProxy(server_url, seed=6, **CUTS) as proxy:
        url = proxy.url + stream_url.removeprefix(server_url)
        with ds.Client(headers=ONE_REQUEST_PER_CONNECTION, retry=RETRY) as client:
            for n in range(10):
                handle = client.create(f"{url}-{n}", content_type=JSON)
                assert handle.head().closed is False
                assert handle.close_stream().closed
                assert handle.head().closed is True
                handle.delete()
                with pytest.raises(ds.StreamNotFoundError):
                    handle.head()
