"""What a consumer sees while a batch is handed out: a ``decode=`` hook that raises loses
nothing (#26, item 3), and batches one read delivered together survive an iterator closed
after the first. Played back through ``httpx.MockTransport``.
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


class FailsOnce:
    """A decode hook that raises on message ``bad`` the first time it sees it."""

    def __init__(self, bad: int) -> None:
        self.bad = bad
        self.failed = False

    def __call__(self, raw: bytes) -> Any:
        message = json.loads(raw)
        if message["i"] == self.bad and not self.failed:
            self.failed = True
            raise ValueError(f"cannot decode {message}")
        return message


def _always_fails_on(bad: int) -> Any:
    def decode(raw: bytes) -> Any:
        message = json.loads(raw)
        if message["i"] == bad:
            raise ValueError(f"cannot decode {message}")
        return message

    return decode


def _client(script: Script) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(script))


def _aclient(script: Script) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(script))


# -- a decode= hook that raises (#26, item 3) ---------------------------------------------------


@pytest.mark.parametrize("bad", [0, 2, 4])
def test_the_item_a_decode_hook_failed_on_comes_first_next_time(bad: int) -> None:
    script = Script([_json(MESSAGES, "0_5", closed=True)])
    decode = FailsOnce(bad)
    with ds.stream(URL, client=_client(script)) as res:
        got = []
        with pytest.raises(ValueError, match="cannot decode"):
            got.extend(res.iter_json(decode=decode))
        assert got == MESSAGES[:bad]
        assert res.offset == "-1"
        got.extend(res.iter_json(decode=decode))
        assert res.stream_closed and res.offset == "0_5"
    assert got == MESSAGES


@pytest.mark.parametrize("bad", [0, 2, 4])
def test_plain_iter_json_after_a_failed_decode_takes_the_rest_of_the_batch(bad: int) -> None:
    script = Script([_json(MESSAGES, "0_5", closed=True)])
    with ds.stream(URL, client=_client(script)) as res:
        got = []
        with pytest.raises(ValueError, match="cannot decode"):
            got.extend(res.iter_json(decode=_always_fails_on(bad)))
        got.extend(res.iter_json())
        assert res.stream_closed
    assert got == MESSAGES


def test_a_failed_decode_in_read_json_keeps_every_message() -> None:
    script = Script([_json(MESSAGES, "0_5", closed=True)])
    decode = FailsOnce(3)
    with ds.stream(URL, client=_client(script)) as res:
        with pytest.raises(ValueError, match="cannot decode"):
            res.read_json(decode=decode)
        assert res.read_json(decode=decode) == MESSAGES


def test_plain_iter_json_after_a_failed_decode_over_sse_takes_the_batches_read_with_it() -> None:
    """The SSE answer brought two batches at once; switching to the core's decoding needs a
    new connection, and both batches' remaining messages still come first, once."""
    first = _sse(
        (MESSAGES[:3], {"streamNextOffset": "0_3", "streamCursor": "c"}),
        (MESSAGES[3:], {"streamNextOffset": "0_5", "streamCursor": "c", "upToDate": True}),
    )
    last = _sse(([{"i": 5}], {"streamNextOffset": "0_6", "streamClosed": True}))
    script = Script([_json([], "0_0"), first, last])
    with ds.stream(URL, live="sse", client=_client(script)) as res:
        got = []
        with pytest.raises(ValueError, match="cannot decode"):
            got.extend(res.iter_json(decode=_always_fails_on(1)))
        got.extend(res.iter_json())
        assert res.stream_closed
    assert got == [*MESSAGES, {"i": 5}]
    assert script.offsets == ["-1", "0_0", "0_5"]


def test_decode_after_a_plain_loop_stopped_mid_batch_is_a_clear_error() -> None:
    script = Script([_json(MESSAGES, "0_5", closed=True)])
    with ds.stream(URL, client=_client(script)) as res:
        got = []
        for item in res.iter_json():
            got.append(item)
            break
        with pytest.raises(ds.DurableStreamError, match="still to be handed out; read them"):
            next(iter(res.iter_json(decode=json.loads)))
        got.extend(res.iter_json())
    assert got == MESSAGES


@pytest.mark.anyio
async def test_the_item_a_decode_hook_failed_on_comes_first_next_time_async() -> None:
    script = Script([_json(MESSAGES, "0_5", closed=True)])
    decode = FailsOnce(2)
    async with _aclient(script) as client, ds.astream(URL, client=client) as res:
        got = []
        with pytest.raises(ValueError, match="cannot decode"):
            async for item in res.iter_json(decode=decode):
                got.append(item)
        assert got == MESSAGES[:2]
        got.extend([item async for item in res.iter_json(decode=decode)])
    assert got == MESSAGES


@pytest.mark.anyio
async def test_plain_iter_json_after_a_failed_decode_takes_the_rest_of_the_batch_async() -> None:
    script = Script([_json(MESSAGES, "0_5", closed=True)])
    async with _aclient(script) as client, ds.astream(URL, client=client) as res:
        got = []
        with pytest.raises(ValueError, match="cannot decode"):
            async for item in res.iter_json(decode=_always_fails_on(2)):
                got.append(item)
        got.extend([item async for item in res.iter_json()])
    assert got == MESSAGES


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
