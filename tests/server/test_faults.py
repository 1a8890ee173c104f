"""POST/DELETE /_test/inject-error, as the reference server has it, behind fault_injection."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from durable_streams.server import Server

from .conftest import WAIT

pytestmark = pytest.mark.anyio

TEXT = {"content-type": "text/plain"}


async def _arm(client: httpx.AsyncClient, **fault: Any) -> None:
    response = await client.post("/_test/inject-error", json=fault)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True}


async def test_a_status_fault_counts_down(client: httpx.AsyncClient) -> None:
    await client.put("/f", headers=TEXT, content=b"data")
    await _arm(client, path="/f", status=503, retryAfter=7, count=2)
    for _ in range(2):
        failed = await client.get("/f")
        assert (failed.status_code, failed.headers["retry-after"]) == (503, "7")
    assert (await client.get("/f")).content == b"data"


async def test_a_fault_can_target_one_method(client: httpx.AsyncClient) -> None:
    await client.put("/m", headers=TEXT)
    await _arm(client, path="/m", status=500, method="post")
    assert (await client.get("/m")).status_code == 200
    assert (await client.post("/m", headers=TEXT, content=b"x")).status_code == 500
    assert (await client.post("/m", headers=TEXT, content=b"x")).status_code == 204


async def test_delete_clears_every_fault(client: httpx.AsyncClient) -> None:
    await client.put("/c", headers=TEXT)
    await _arm(client, path="/c", status=500, count=10)
    assert (await client.delete("/_test/inject-error")).status_code == 200
    assert (await client.get("/c")).status_code == 200


async def test_body_faults_truncate_and_corrupt_reads(client: httpx.AsyncClient) -> None:
    original = b"0123456789" * 10
    await client.put("/b", headers=TEXT, content=original)
    await _arm(client, path="/b", truncateBodyBytes=5)
    assert (await client.get("/b")).content == b"01234"
    await _arm(client, path="/b", corruptBody=True)
    corrupted = (await client.get("/b")).content
    assert len(corrupted) == len(original) and corrupted != original
    assert (await client.get("/b")).content == original


async def test_a_dropped_connection_gets_no_answer(client: httpx.AsyncClient) -> None:
    await client.put("/d", headers=TEXT)
    await _arm(client, path="/d", dropConnection=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get("/d")
    assert (await client.get("/d")).status_code == 200


async def test_a_delay_holds_the_answer_back(client: httpx.AsyncClient) -> None:
    await client.put("/slow", headers=TEXT)
    await _arm(client, path="/slow", delayMs=300)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await client.get("/slow")).status_code == 200
    assert loop.time() - started >= 0.3


async def test_an_sse_event_can_be_injected_first(client: httpx.AsyncClient) -> None:
    await client.put("/e", headers=TEXT, content=b"hi")
    await _arm(client, path="/e", injectSseEvent={"eventType": "bogus", "data": "{oops"})
    async with client.stream("GET", "/e?offset=-1&live=sse") as response:
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                assert line == "event: bogus"
                break


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"status": 500}',
        b'{"path": "/x"}',
        b'{"path": "/x", "status": "500"}',
        b'{"path": "/x", "status": 42}',
        b'{"path": "/x", "delayMs": -1}',
        b'{"path": "/x", "injectSseEvent": "control"}',
    ],
)
async def test_bad_fault_configurations_are_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/_test/inject-error", content=body)
    assert response.status_code == 400


async def test_without_fault_injection_the_path_is_an_ordinary_stream() -> None:
    async with (
        Server() as server,
        httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client,
    ):
        assert (await client.post("/_test/inject-error", json={"path": "/x"})).status_code == 404
