"""Tests of the embedded server itself: it runs in the test's own asyncio loop, so tests can
wait on its connections and wake-ups directly instead of polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from durable_streams.server import Limits, Server

WAIT = 10.0  # the bound on every wait in these tests


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the server is asyncio's; trio clients are covered in tests/api


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    limits = Limits(max_head_bytes=8 * 1024, max_body_bytes=1024 * 1024, request_timeout=2.0)
    async with Server(long_poll_timeout=1.0, fault_injection=True, limits=limits) as running:
        yield running


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        yield http


async def raw_exchange(url: str, data: bytes) -> bytes:
    """Send raw bytes on a fresh connection; everything the server sends until it closes."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
