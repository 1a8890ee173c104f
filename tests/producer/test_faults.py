"""Exactly-once through a hostile network: the producer talks to the reference server through
the fault proxy, which fragments answers and cuts connections (also after the server stored a
batch, before the client heard so). The stream must hold every message once, in order."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from durable_streams import (
    AsyncDurableStream,
    DurableStream,
    IdempotentProducer,
    RetryPolicy,
    SyncIdempotentProducer,
    stream,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faultproxy import FaultProxy

MESSAGES = 3000
# A fresh connection per request, so that every request meets the proxy's per-connection faults.
ONE_REQUEST_PER_CONNECTION = {"connection": "close"}
RETRY = RetryPolicy(max_retries=200, initial_delay=0.005, max_delay=0.05, deadline=60)
FAULTS: dict[str, Any] = {
    "cut_mid_response": 0.25,
    "cut_after_request": 0.25,
    "cut_mid_request": 0.1,
    "fragment": True,
}


def messages() -> list[dict[str, int]]:
    return [{"n": n} for n in range(MESSAGES)]


def stored(url: str) -> list[Any]:
    with stream(url) as response:
        return response.read_json()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("in_flight", [1, 4])
@pytest.mark.anyio
async def test_async_producer_through_cut_connections(
    server_url: str, stream_url: str, in_flight: int
) -> None:
    path = stream_url.removeprefix(server_url)
    async with await AsyncDurableStream.create(stream_url, content_type="application/json"):
        pass
    with FaultProxy(server_url, seed=in_flight, **FAULTS) as proxy:
        async with IdempotentProducer(
            proxy.url + path,
            producer_id="p",
            content_type="application/json",
            max_batch_bytes=700,
            max_in_flight=in_flight,
            linger_ms=1,
            retry=RETRY,
            headers=ONE_REQUEST_PER_CONNECTION,
        ) as producer:
            for message in messages():
                producer.append_nowait(message)
            await producer.flush()
        cuts = (
            proxy.stats["cuts_after_request"]
            + proxy.stats["cuts_mid_response"]
            + proxy.stats["cuts_mid_request"]
        )
    assert proxy.stats["cuts_after_request"] > 0 and cuts > 5, proxy.stats
    assert stored(stream_url) == messages()


@pytest.mark.timeout(60)
def test_sync_producer_from_threads_through_cut_connections(
    server_url: str, stream_url: str
) -> None:
    path = stream_url.removeprefix(server_url)
    with DurableStream.create(stream_url, content_type="application/json"):
        pass
    with (
        FaultProxy(server_url, seed=11, **FAULTS) as proxy,
        SyncIdempotentProducer(
            proxy.url + path,
            producer_id="p",
            content_type="application/json",
            max_batch_bytes=700,
            max_in_flight=3,
            retry=RETRY,
            headers=ONE_REQUEST_PER_CONNECTION,
        ) as producer,
    ):

        def work(worker: int) -> None:
            for n in range(MESSAGES // 3):
                producer.append_nowait({"w": worker, "n": n})

        threads = [threading.Thread(target=work, args=(w,)) for w in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        producer.flush()
    assert proxy.stats["cuts_after_request"] > 0
    got = stored(stream_url)
    assert len(got) == MESSAGES - MESSAGES % 3
    for worker in range(3):
        assert [m["n"] for m in got if m["w"] == worker] == list(range(MESSAGES // 3))
