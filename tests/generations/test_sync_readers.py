"""The sync readers: a finished generation, and one whose writer died, read from blocking code."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest

import durable_streams as ds
from durable_streams.generations import read_chunks, read_message, write_generation

pytestmark = pytest.mark.usefixtures("core_impl")


def test_sync_readers_see_chunks_and_the_message(stream_url: str) -> None:
    async def source() -> AsyncIterator[str]:
        yield "sync "
        yield "readers"

    result = anyio.run(write_generation, source(), stream_url)
    with read_chunks(stream_url, live=False) as response:
        kinds = [chunk["type"] for chunk in response]
        assert response.stream_closed and response.offset == result.final_offset
    assert kinds == ["start", "text-start", "text-delta", "text-delta", "text-end", "finish"]
    message = read_message(stream_url)
    assert (message.status, message.closed, message.text) == ("finished", True, "sync readers")


def test_read_message_gives_up_waiting_with_the_message_so_far(stream_url: str) -> None:
    # What a writer that died leaves: chunks, no ending, the stream open.
    with ds.DurableStream.create(stream_url, content_type="application/json") as handle:
        handle.append({"type": "start", "messageId": "m"})
        handle.append({"type": "text-start", "id": "t"})
        handle.append({"type": "text-delta", "id": "t", "delta": "so far"})
    started = time.monotonic()
    message = read_message(stream_url, wait=0.5)
    assert time.monotonic() - started < 10
    assert (message.status, message.closed, message.text) == ("unfinished", False, "so far")
    assert message.parts == [{"type": "text", "text": "so far", "state": "streaming"}]
