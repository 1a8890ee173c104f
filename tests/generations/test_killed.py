"""A backend killed mid-generation (kill -9, nothing of it runs after) leaves a stream that
readers can tell is unfinished, holding each chunk written before the kill once; one shut
down (SIGTERM, a redeploy) ends its generations as interrupted."""

from __future__ import annotations

import signal
import uuid

import anyio
import httpx
import pytest

from durable_streams.generations import aread_chunks, aread_message
from durable_streams.generations._writer import INTERRUPTED_TEXT

from .conftest import RunningBackend, running_backend

pytestmark = pytest.mark.anyio


async def start_held_generation(backend: RunningBackend) -> str:
    """Starts the held scenario; returns its stream once the first half is written (the
    source then waits for a release that never comes)."""
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "held"}]}
    body = {"id": f"chat-{uuid.uuid4().hex}", "messages": [user]}
    async with httpx.AsyncClient() as client:
        answer = await client.post(backend.api, json=body)
    assert answer.status_code == 201
    url: str = answer.headers["location"]
    async with aread_chunks(url) as response:
        async for chunk in response:
            if chunk.get("delta") == "written before the cut. ":
                break
    return url


async def test_a_killed_generation_reads_as_unfinished(server_url: str) -> None:
    with running_backend(server_url) as backend:
        url = await start_held_generation(backend)
        backend.kill()
    message = await aread_message(url, live=False)
    assert (message.status, message.closed) == ("unfinished", False)
    assert message.text == "The first half, written before the cut. "
    assert message.chunks == 4  # start, text-start, two deltas: none twice
    assert message.message["parts"][0]["state"] == "streaming"
    # A live reader gives up after its wait, with the same answer.
    with anyio.fail_after(10):
        waited = await aread_message(url, wait=1.0)
    assert (waited.status, waited.closed, waited.chunks) == ("unfinished", False, 4)


async def test_a_shut_down_backend_ends_its_generations_as_interrupted(server_url: str) -> None:
    """Generations in a task group of the app's lifespan: SIGTERM cancels them through it,
    and each ends its stream before the process exits."""
    with running_backend(server_url, "--lifespan-group") as backend:
        url = await start_held_generation(backend)
        backend.process.send_signal(signal.SIGTERM)
        # Once shut down, uvicorn raises the signal again: the exit is SIGTERM's.
        assert backend.process.wait(timeout=30) == -signal.SIGTERM
    message = await aread_message(url, live=False)
    assert (message.status, message.closed) == ("failed", True)
    assert message.error_text == INTERRUPTED_TEXT
    assert message.text == "The first half, written before the cut. "
    assert [p["state"] for p in message.parts] == ["done"]  # the text part was ended too
