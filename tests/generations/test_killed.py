"""A backend killed mid-generation (kill -9, nothing of it runs after) leaves a stream that
readers can tell is unfinished, holding each chunk written before the kill once."""

from __future__ import annotations

import uuid

import anyio
import httpx
import pytest

from durable_streams.generations import aread_chunks, aread_message

from .conftest import running_backend

pytestmark = pytest.mark.anyio


async def test_a_killed_generation_reads_as_unfinished(server_url: str) -> None:
    chat_id = f"chat-{uuid.uuid4().hex}"
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "held"}]}
    with running_backend(server_url) as backend:
        async with httpx.AsyncClient() as client:
            answer = await client.post(backend.api, json={"id": chat_id, "messages": [user]})
        assert answer.status_code == 201
        url = answer.headers["location"]
        # The first half is written, and the source waits for a release that never comes.
        async with aread_chunks(url) as response:
            async for chunk in response:
                if chunk.get("delta") == "written before the cut. ":
                    break
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
