"""Malformed, oversized, stalled and otherwise hostile requests get protocol status codes, and
the server goes on serving."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from durable_streams.server import Server
from durable_streams.server._http import Connection
from durable_streams.server._store import Store

from .conftest import WAIT, raw_exchange, status_of

pytestmark = pytest.mark.anyio


async def _still_serving(client: httpx.AsyncClient) -> None:
    response = await client.put("/after/bad", headers={"content-type": "text/plain"})
    assert response.status_code in (200, 201)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
        (b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999\r\n\r\n", 413),
        (b"GET * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 400),
    ],
)
async def test_malformed_http_is_refused_and_the_server_survives(
    server: Server, client: httpx.AsyncClient, request_bytes: bytes, status: int
) -> None:
    response = await raw_exchange(server.url, request_bytes)
    assert status_of(response) == status
    await _still_serving(client)


async def test_a_chunked_body_over_the_limit_is_refused(
    server: Server, client: httpx.AsyncClient
) -> None:
    await client.put("/big", headers={"content-type": "application/octet-stream"})
    chunk = b"a" * 65536
    head = b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20))
    response = await raw_exchange(server.url, head + b"Transfer-Encoding: chunked\r\n\r\n" + body)
    assert status_of(response) == 413
    assert (await client.head("/big")).headers["stream-next-offset"].endswith("_0000000000000000")


async def test_a_stalled_request_is_dropped(server: Server, client: httpx.AsyncClient) -> None:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /slow HTTP/1.1\r\nHost: a\r\n")  # and never the blank line
    await writer.drain()
    # request_timeout is 2 s in these tests: the server hangs up well within WAIT.
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    writer.close()
    await _still_serving(client)


async def test_a_client_gone_mid_body_costs_nothing(
    server: Server, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.put("/half", headers={"content-type": "text/plain"})
    ended = asyncio.Event()
    run = Connection.run

    async def run_and_tell(self: Connection) -> None:
        await run(self)
        ended.set()

    monkeypatch.setattr(Connection, "run", run_and_tell)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /half HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n")
    writer.write(b"Content-Length: 100\r\n\r\nonly some")
    await writer.drain()
    writer.close()
    await asyncio.wait_for(ended.wait(), WAIT)  # its connection is gone, not parked
    read = await client.get("/half")
    assert read.status_code == 200 and read.content == b""


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("offset=bogus", 400),
        ("offset=", 400),
        ("offset=-2", 400),
        ("offset=1_2_3", 400),
        ("offset=-1&offset=now", 400),
        ("live=long-poll", 400),
        ("live=sse", 400),
        ("offset=-1", 200),
        ("offset=now", 200),
        ("offset=0000000000000000_0000000000000000", 200),
    ],
)
async def test_read_parameters_are_validated(
    client: httpx.AsyncClient, query: str, status: int
) -> None:
    await client.put("/read", headers={"content-type": "text/plain"})
    assert (await client.get(f"/read?{query}")).status_code == status


@pytest.mark.parametrize(
    "headers",
    [
        {"Producer-Id": "p"},
        {"Producer-Id": "p", "Producer-Epoch": "0"},
        {"Producer-Id": "", "Producer-Epoch": "0", "Producer-Seq": "0"},
        {"Producer-Id": "p", "Producer-Epoch": "x", "Producer-Seq": "0"},
        {"Producer-Id": "p", "Producer-Epoch": "-1", "Producer-Seq": "0"},
        {"Producer-Id": "p", "Producer-Epoch": "0", "Producer-Seq": "1.5"},
        {"Producer-Id": "p", "Producer-Epoch": str(2**53), "Producer-Seq": "0"},
    ],
)
async def test_bad_producer_headers_are_400(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await client.put("/producer", headers={"content-type": "text/plain"})
    response = await client.post(
        "/producer", content=b"x", headers={"content-type": "text/plain", **headers}
    )
    assert response.status_code == 400
    assert (await client.get("/producer")).content == b""


@pytest.mark.parametrize(
    "headers",
    [
        {"Stream-TTL": "+3600"},
        {"Stream-TTL": "03600"},
        {"Stream-TTL": "3600.0"},
        {"Stream-TTL": "3.6e3"},
        {"Stream-TTL": "-1"},
        {"Stream-Expires-At": "tomorrow"},
        {"Stream-Expires-At": "2030-02-30T00:00:00Z"},
        {"Stream-TTL": "60", "Stream-Expires-At": "2030-01-01T00:00:00Z"},
        {"Stream-Forked-From": "/src", "Stream-Fork-Offset": "nope"},
        {"Stream-Fork-Sub-Offset": "1"},
        {"Stream-Forked-From": "/src", "Stream-Fork-Sub-Offset": "-1"},
    ],
)
async def test_bad_create_headers_are_400(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await client.put("/src", headers={"content-type": "text/plain"}, content=b"abc")
    response = await client.put("/new", headers={"content-type": "text/plain", **headers})
    assert response.status_code == 400
    assert (await client.head("/new")).status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"[]", 400), (b"{", 400), (b"NaN", 400), (b"[1,]", 400), (b"\xff", 400), (b"[1]", 204)],
)
async def test_json_appends_are_validated(
    client: httpx.AsyncClient, body: bytes, status: int
) -> None:
    await client.put("/json", headers={"content-type": "application/json"})
    response = await client.post(
        "/json", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status


async def test_appends_without_body_or_content_type_are_400(client: httpx.AsyncClient) -> None:
    await client.put("/empty", headers={"content-type": "text/plain"})
    assert (await client.post("/empty", headers={"content-type": "text/plain"})).status_code == 400
    assert (await client.post("/empty", content=b"x")).status_code == 400


async def test_unknown_methods_are_405(client: httpx.AsyncClient) -> None:
    response = await client.request("PATCH", "/anything")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]


async def test_a_failing_handler_answers_500_and_the_server_goes_on(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.put("/boom", headers={"content-type": "text/plain"})

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Store, "read", explode)
    assert (await client.get("/boom")).status_code == 500
    monkeypatch.undo()
    assert (await client.get("/boom")).status_code == 200


async def test_the_server_stops_promptly_with_requests_in_flight(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = asyncio.Event()
    notifier_wait = server._notifier.wait

    async def wait_and_tell(path: str, timeout: float) -> bool:
        waiting.set()
        return await notifier_wait(path, timeout)

    monkeypatch.setattr(server._notifier, "wait", wait_and_tell)
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        await http.put("/held", headers={"content-type": "text/plain"})
        long_poll = asyncio.ensure_future(http.get("/held?offset=now&live=long-poll"))
        await asyncio.wait_for(waiting.wait(), WAIT)
        async with http.stream("GET", "/held?offset=-1&live=sse") as sse:
            await asyncio.wait_for(server.aclose(), WAIT)
            body = await asyncio.wait_for(sse.aread(), WAIT)
        answered = await asyncio.wait_for(long_poll, WAIT)
    # Both were answered in full, not cut off: the long-poll as a timeout, the SSE response
    # with its terminating chunk (aread raises on a cut chunked body).
    assert answered.status_code == 204
    assert answered.headers["stream-up-to-date"] == "true"
    assert body.count(b"event: data") == 0


_SEEDS = [
    b"PUT /f/s HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nStream-TTL: 60\r\n"
    b"Content-Length: 7\r\n\r\n[1,2,3]",
    b"POST /f/s HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nProducer-Id: p\r\n"
    b"Producer-Epoch: 0\r\nProducer-Seq: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\n[4]\r\n0\r\n\r\n",
    b"GET /f/s?offset=0000000000000000_0000000000000000&live=long-poll&cursor=1 HTTP/1.1\r\n"
    b'Host: a\r\nIf-None-Match: "x"\r\n\r\n',
    b"PUT /f/k HTTP/1.1\r\nHost: a\r\nStream-Forked-From: /f/s\r\n"
    b"Stream-Fork-Offset: 0000000000000000_0000000000000012\r\nStream-Fork-Sub-Offset: 1\r\n\r\n",
]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(out) + 1)
        kind = rng.randrange(4)
        if kind == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif kind == 1:
            out[at:at] = rng.choice([b"\r\n", b":", b" ", b"\x00", b"9" * 30, b"-1", b"%"])
        elif kind == 2:
            del out[at : at + rng.randint(1, 8)]
        else:
            out = out[:at]
    return bytes(out)


async def test_mutated_requests_never_break_the_server(
    server: Server, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(20240)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    for round_ in range(300):
        request = _mutate(rng, rng.choice(_SEEDS)) if round_ % 10 else rng.choice(_SEEDS)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        writer.write_eof()  # the whole request is sent: nobody waits for more
        answer = await asyncio.wait_for(reader.read(), WAIT)
        writer.close()
        if answer:
            assert answer.startswith(b"HTTP/1.1 ") and answer[9:12].isdigit(), answer[:80]
            assert 100 <= status_of(answer) < 600
    await _still_serving(client)
    assert not [r for r in caplog.records if r.name == "durable_streams.server"]
