"""What a consumer sees while a batch is handed out: a ``decode=`` hook that raises loses
nothing (#26, item 3), ``offset`` and the flags move with the last item of a batch (#26, item
4), and batches one read delivered together survive an iterator closed after the first.
Played back through ``httpx.MockTransport``.
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


# -- offset and flags move with the last item of a batch (#26, item 4) --------------------------


def _long_poll_script() -> Script:
    return Script([_json([1, 2, 3], "0_3"), _json([4], "0_4", closed=True)])


def test_offset_and_flags_move_as_the_last_item_of_a_batch_goes_out() -> None:
    script = _long_poll_script()
    with ds.stream(URL, live="long-poll", client=_client(script)) as res:
        seen = [(x, res.offset, res.up_to_date, res.stream_closed) for x in res.iter_json()]
    assert seen == [
        (1, "-1", False, False),
        (2, "-1", False, False),
        (3, "0_3", True, False),
        (4, "0_4", True, True),
    ]


def test_a_loop_that_stops_when_up_to_date_ends_on_a_live_read() -> None:
    script = _long_poll_script()
    with ds.stream(URL, live="long-poll", client=_client(script)) as res:
        got = []
        for x in res.iter_json():
            got.append(x)
            if res.up_to_date:
                break
    assert got == [1, 2, 3]
    assert script.offsets == ["-1"]


@pytest.mark.parametrize(
    ("stop_after", "resumes_at", "rest"), [(3, "0_3", [4]), (2, "-1", [1, 2, 3, 4])]
)
def test_a_checkpoint_taken_after_break_resumes_without_loss_or_repeat(
    stop_after: int, resumes_at: str, rest: list[int]
) -> None:
    """Right after a batch's last item the checkpoint is behind the batch; in the middle of a
    batch it is still before it (messages of a batch share their offset)."""
    with ds.stream(URL, live="long-poll", client=_client(_long_poll_script())) as res:
        for x in res.iter_json():
            if x == stop_after:
                break
        checkpoint = res.offset
    assert checkpoint == resumes_at
    answers = [_json([1, 2, 3, 4], "0_4", closed=True), _json([4], "0_4", closed=True)]
    script = Script(answers[1:] if checkpoint == "0_3" else answers[:1])
    with ds.stream(URL, offset=checkpoint, client=_client(script)) as res:
        assert list(res.iter_json()) == rest
    assert script.offsets == [checkpoint]


def test_events_carry_the_offset_after_their_batch() -> None:
    with ds.stream(URL, live="long-poll", client=_client(_long_poll_script())) as res:
        events = [(e.data, e.offset, e.up_to_date, e.stream_closed) for e in res.iter_events()]
        assert res.offset == "0_4"
    assert events == [
        (1, "0_3", True, False),
        (2, "0_3", True, False),
        (3, "0_3", True, False),
        (4, "0_4", True, True),
    ]


def test_next_on_the_iterator_sees_the_same_offsets() -> None:
    with ds.stream(URL, live="long-poll", client=_client(_long_poll_script())) as res:
        items = res.iter_json()
        assert (next(items), res.offset) == (1, "-1")
        assert (next(items), res.offset) == (2, "-1")
        assert (next(items), res.offset, res.up_to_date) == (3, "0_3", True)
        assert (next(items), res.offset, res.stream_closed) == (4, "0_4", True)


@pytest.mark.anyio
async def test_offset_and_flags_move_as_the_last_item_of_a_batch_goes_out_async() -> None:
    script = _long_poll_script()
    async with _aclient(script) as client, ds.astream(URL, live="long-poll", client=client) as res:
        seen = [(x, res.offset, res.up_to_date) async for x in res.iter_json()]
        assert res.stream_closed
    assert seen == [(1, "-1", False), (2, "-1", False), (3, "0_3", True), (4, "0_4", True)]


@pytest.mark.anyio
async def test_a_loop_that_stops_when_up_to_date_ends_on_a_live_read_async() -> None:
    script = _long_poll_script()
    async with _aclient(script) as client, ds.astream(URL, live="long-poll", client=client) as res:
        got = []
        async for x in res.iter_json():
            got.append(x)
            if res.up_to_date:
                break
        assert res.offset == "0_3"
    assert got == [1, 2, 3]
    assert script.offsets == ["-1"]


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
