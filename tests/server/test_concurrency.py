"""Readers that stall or vanish cost the server one connection, never its writers' progress."""

from __future__ import annotations

import asyncio
import os
import socket

import httpx
import pytest

from durable_streams.server import Limits, Server
from durable_streams.server._http import Connection

from .conftest import WAIT

pytestmark = pytest.mark.anyio

OCTETS = {"content-type": "application/octet-stream"}


class Watch:
    """Events for what the server does: a connection ended; ``n`` readers wait at a tail."""

    def __init__(self, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ended = asyncio.Event()
        self.waiting = 0
        self._changed = asyncio.Event()
        run, wait = Connection.run, server._notifier.wait

        async def run_and_tell(connection: Connection) -> None:
            await run(connection)
            self.ended.set()

        async def wait_and_tell(path: str, timeout: float) -> bool:
            self.waiting += 1
            self._changed.set()
            try:
                return await wait(path, timeout)
            finally:
                self.waiting -= 1

        monkeypatch.setattr(Connection, "run", run_and_tell)
        monkeypatch.setattr(server._notifier, "wait", wait_and_tell)

    async def readers_waiting(self, n: int) -> None:
        async def reach() -> None:
            while self.waiting < n:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(reach(), WAIT)


async def _raw_request(server: Server, request: bytes, *, receive_buffer: int = 0) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    await loop.sock_sendall(sock, request)
    return sock


async def _read_all(http: httpx.AsyncClient, path: str) -> bytes:
    data, offset = b"", "-1"
    while True:
        response = await http.get(path, params={"offset": offset})
        data += response.content
        offset = response.headers["stream-next-offset"]
        if response.headers.get("stream-up-to-date") == "true":
            return data


async def test_a_reader_that_stops_reading_does_not_hold_up_writers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = Limits(write_timeout=1.0)
    async with (
        Server(limits=limits, long_poll_timeout=30.0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http,
    ):
        watch = Watch(server, monkeypatch)
        await http.put("/busy", headers=OCTETS)
        # An SSE reader with a tiny receive window that never reads a byte.
        stalled = await _raw_request(
            server,
            b"GET /busy?offset=-1&live=sse HTTP/1.1\r\nHost: a\r\n\r\n",
            receive_buffer=4096,
        )
        await watch.readers_waiting(1)
        piece = os.urandom(64 * 1024)

        async def write() -> None:
            for _ in range(128):  # 8 MiB: far more than the socket buffers hold
                assert (await http.post("/busy", content=piece, headers=OCTETS)).status_code == 204

        await asyncio.wait_for(write(), WAIT)
        assert await asyncio.wait_for(_read_all(http, "/busy"), WAIT) == piece * 128
        # The stalled reader's connection was dropped once it stopped taking data.
        await asyncio.wait_for(watch.ended.wait(), WAIT)
        assert len(server._connections) == 1  # only the writer's
        stalled.close()


@pytest.mark.parametrize("live", ["long-poll", "sse"])
async def test_a_reader_that_hangs_up_is_forgotten_at_once(
    monkeypatch: pytest.MonkeyPatch, live: str
) -> None:
    async with (
        Server(long_poll_timeout=60.0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http,
    ):
        watch = Watch(server, monkeypatch)
        await http.put("/gone", headers=OCTETS)
        reader = await _raw_request(
            server, f"GET /gone?offset=now&live={live} HTTP/1.1\r\nHost: a\r\n\r\n".encode()
        )
        await watch.readers_waiting(1)
        reader.close()
        # Well before the 60 s long-poll window, the server lets go of it.
        await asyncio.wait_for(watch.ended.wait(), WAIT)
        assert watch.waiting == 0
        assert server._notifier._waiters == {}
        assert (await http.post("/gone", content=b"x", headers=OCTETS)).status_code == 204


async def test_one_append_wakes_every_waiting_long_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    async with (
        Server(long_poll_timeout=60.0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http,
    ):
        watch = Watch(server, monkeypatch)
        await http.put("/many", headers={"content-type": "text/plain"})
        tail = (await http.head("/many")).headers["stream-next-offset"]
        polls = [
            asyncio.ensure_future(http.get("/many", params={"offset": tail, "live": "long-poll"}))
            for _ in range(20)
        ]
        await watch.readers_waiting(20)
        await http.post("/many", content=b"news", headers={"content-type": "text/plain"})
        answers = await asyncio.wait_for(asyncio.gather(*polls), WAIT)
        assert [(a.status_code, a.content) for a in answers] == [(200, b"news")] * 20
        assert len({a.headers["stream-next-offset"] for a in answers}) == 1


async def test_sse_responses_end_after_the_reconnect_interval() -> None:
    async with (
        Server(long_poll_timeout=60.0, sse_reconnect_interval=0.3) as server,
        httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http,
    ):
        await http.put("/sse", headers={"content-type": "text/plain"}, content=b"hi")
        response = await asyncio.wait_for(http.get("/sse?offset=-1&live=sse"), WAIT)
    body = response.text
    assert response.status_code == 200
    assert "event: data\ndata:hi\n" in body
    # It ends on its own, with a control event to resume from, not closed.
    assert body.rstrip().split("\n")[-2] == "event: control"
    assert '"upToDate":true' in body and "streamClosed" not in body


async def test_a_slow_but_steady_reader_gets_a_large_body_whole() -> None:
    limits = Limits(write_timeout=2.5)
    async with (
        Server(limits=limits, compression=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http,
    ):
        payload = os.urandom(16 * 1024 * 1024)  # more than the socket buffers hold
        await http.put("/large", headers=OCTETS, content=payload)
        reader = await _raw_request(
            server, b"GET /large HTTP/1.1\r\nHost: a\r\n\r\n", receive_buffer=64 * 1024
        )
        with reader:  # closed on failure too: a leaked socket would fail a later test
            received = await _read_steadily(reader, len(payload))
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert body == payload


async def _read_steadily(reader: socket.socket, size: int) -> bytes:
    """An answer with a body of ``size`` bytes, read at about 3 MB/s: 16 MiB take twice the
    2.5 s write timeout, yet no single pause comes near it, so the server must keep going.
    (A bytearray, and the head found once: copying the whole answer per piece stalled the
    loop, which the server shares, past the timeout on a loaded machine.)"""
    loop = asyncio.get_running_loop()
    received = bytearray()
    body_at = -1
    while body_at < 0 or len(received) - body_at < size:
        await asyncio.sleep(0.01)  # the reader's own pace
        piece = await asyncio.wait_for(loop.sock_recv(reader, 32 * 1024), WAIT)
        assert piece, "the server hung up on a steady reader"
        received += piece
        if body_at < 0 and (end := received.find(b"\r\n\r\n")) >= 0:
            body_at = end + 4
    return bytes(received)
