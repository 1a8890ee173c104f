"""``json=True``: a stream whose server sends JSON under another content type, read as JSON
messages (against the reference server, which frames only application/json streams)."""

from __future__ import annotations

import pytest

import durable_streams as ds
from durable_streams import DurableStream

pytestmark = pytest.mark.integration

MESSAGES = [{"n": 1}, {"n": 2}]


@pytest.fixture
def text_json(stream_url: str) -> str:
    """A text/plain stream whose one append is a JSON array: its body is one, too."""
    with DurableStream.create(stream_url, content_type="text/plain") as handle:
        handle.append(b'[{"n": 1}, {"n": 2}]')
        handle.close_stream()
    return stream_url


def test_without_the_hint_it_is_not_json(text_json: str) -> None:
    with ds.stream(text_json) as res, pytest.raises(ds.ContentTypeError, match="json=True"):
        res.read_json()


def test_with_the_hint(text_json: str) -> None:
    with ds.stream(text_json, json=True) as res:
        assert res.read_json() == MESSAGES
    # Iterating the response itself, or its events, gives messages too.
    with ds.stream(text_json, json=True) as res:
        assert list(res) == MESSAGES
    with ds.stream(text_json, json=True) as res:
        assert [e.data for e in res.iter_events()] == MESSAGES
    with DurableStream.connect(text_json) as handle, handle.stream(json=True) as res:
        assert [m for b in res.iter_json_batches() for m in b.messages] == MESSAGES
    with ds.Client() as client, client.stream(text_json, json=True, live="sse") as res:
        assert list(res.iter_json()) == MESSAGES


@pytest.mark.anyio
async def test_with_the_hint_async(text_json: str) -> None:
    async with ds.astream(text_json, json=True) as res:
        assert await res.read_json() == MESSAGES
    async with ds.AsyncClient() as client, client.stream(text_json, json=True) as res:
        assert [m async for m in res] == MESSAGES
