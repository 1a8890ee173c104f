"""What a consumer sees while a batch is handed out: batches one read delivered together
survive an iterator closed after the first. Played back through ``httpx.MockTransport``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import durable_streams as ds

URL = "http://streams.test/s/one"
MESSAGES = [{"i": i} for i in range(5)]


def _json(items: list[Any], offset: str, *, closed: bool = False) -> httpx.Response:
    headers = {
        "content-type": "application/json",
        "stream-next-offset": offset,
        "stream-up-to-date": "true",
    }
    if closed:
        headers["stream-closed"] = "true"
    return httpx.Response(200, headers=headers, content=json.dumps(items).encode())


def _sse(*events: tuple[list[Any], dict[str, Any]]) -> httpx.Response:
    """One SSE answer, delivered in one piece: a data event and its control event each."""
    body = "".join(
        f"event: data\ndata: {json.dumps(items)}\n\nevent: control\ndata: {json.dumps(control)}\n\n"
        for items, control in events
    )
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


class Script:
    def __init__(self, answers: list[httpx.Response]) -> None:
        self.answers: Iterator[httpx.Response] = iter(answers)
        self.offsets: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.offsets.append(request.url.params.get("offset"))
        return next(self.answers)


def _client(script: Script) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(script))


def _aclient(script: Script) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(script))


# -- batches one read delivered together --------------------------------------------------------


def _two_batches_at_once() -> Script:
    both = _sse(
        ([1, 2], {"streamNextOffset": "0_2", "streamCursor": "c"}),
        ([3], {"streamNextOffset": "0_3", "streamCursor": "c", "upToDate": True}),
    )
    closed = _sse(([], {"streamNextOffset": "0_3", "streamClosed": True}))
    return Script([_json([], "0_0"), both, closed])


def test_closing_an_iterator_keeps_the_batches_read_with_its_last_item() -> None:
    script = _two_batches_at_once()
    with ds.stream(URL, live="sse", client=_client(script)) as res:
        items = res.iter_json()
        got = [next(items)]
        items.close()
        got.extend(res.iter_json())
        assert res.stream_closed
    assert got == [1, 2, 3]
    assert script.offsets == ["-1", "0_0", "0_3"]


@pytest.mark.anyio
async def test_closing_an_iterator_keeps_the_batches_read_with_its_last_item_async() -> None:
    script = _two_batches_at_once()
    async with _aclient(script) as client, ds.astream(URL, live="sse", client=client) as res:
        items = res.iter_json()
        got = [await items.__anext__()]
        await items.aclose()  # type: ignore[attr-defined]
        got.extend([x async for x in res.iter_json()])
    assert got == [1, 2, 3]
    assert script.offsets == ["-1", "0_0", "0_3"]
