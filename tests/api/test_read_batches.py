"""Batch-level reads (``iter_json_batches``, ``read_json_batches``) against the reference
server: one batch per answer, each with the offset after it; checkpoints once per batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import durable_streams as ds
from durable_streams import DurableStream, JsonBatch
from durable_streams._reading import _session as _read

pytestmark = pytest.mark.integration


def _append_all(url: str, messages: list[Any]) -> None:
    """The messages in one append: they reach a reader in one answer."""
    assert httpx.post(url, json=messages).status_code == 204


def _wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def json_stream(stream_url: str) -> Iterator[DurableStream]:
    with DurableStream.create(stream_url, content_type="application/json") as handle:
        yield handle


def test_a_batch_per_answer_with_the_offset_after_it(
    json_stream: DurableStream, stream_url: str
) -> None:
    json_stream.append({"n": 0})
    json_stream.append({"n": 1})
    with ds.stream(stream_url) as res:
        batches = list(res.iter_json_batches())
        # One catch-up answer: both messages in one batch, with the tail's offset.
        assert [b.messages for b in batches] == [[{"n": 0}, {"n": 1}]]
        assert batches[0].offset == res.offset == json_stream.head().offset
        assert batches[0].up_to_date
        assert not batches[0].stream_closed
    json_stream.append({"n": 2})
    json_stream.close_stream()
    with ds.stream(stream_url, offset=batches[0].offset) as res:
        rest = res.read_json_batches()
    assert [b.messages for b in rest] == [[{"n": 2}]]
    assert rest[-1].stream_closed
    assert isinstance(rest[0], JsonBatch)


def test_a_long_body_is_one_batch(
    json_stream: DurableStream, stream_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its parts go out at the offset before the body: only the whole has an offset after it.
    monkeypatch.setattr(_read, "BODY_BATCH_BYTES", 64)
    messages = [{"n": n, "pad": "x" * 40} for n in range(50)]
    _append_all(stream_url, messages)
    with ds.stream(stream_url) as res:
        batches = list(res.iter_json_batches())
        assert res.stats().batches > 1  # the body did arrive in parts
    assert [b.messages for b in batches] == [messages]
    assert batches[0].offset == json_stream.head().offset


def test_batches_go_on_where_messages_stopped(json_stream: DurableStream, stream_url: str) -> None:
    _append_all(stream_url, [{"n": 0}, {"n": 1}, {"n": 2}])
    json_stream.append({"n": 3})
    with ds.stream(stream_url, live="long-poll") as res:
        messages = res.iter_json()
        assert next(messages) == {"n": 0}
        before = res.offset
        batches = res.iter_json_batches()
        # The rest of the batch the per-message iterator stopped in comes first, then more.
        first = next(batches)
        assert first.messages == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert first.offset == res.offset != before
        assert first.up_to_date
        json_stream.append({"n": 4})
        second = next(batches)
        assert second.messages == [{"n": 4}]
        assert res.offset == second.offset


def test_a_live_reader_skips_answers_that_change_nothing(
    json_stream: DurableStream, stream_url: str
) -> None:
    json_stream.append({"n": 0})
    seen: list[JsonBatch] = []

    def close_after_an_idle_answer() -> None:
        # The catch-up, a long-poll the server ends empty after 1 s, and the next long-poll.
        _wait_until(lambda: res.stats().requests >= 3)
        json_stream.close_stream()

    closer = threading.Thread(target=close_after_an_idle_answer)
    with ds.stream(stream_url, live="long-poll") as res:
        for batch in res.iter_json_batches():
            seen.append(batch)
            if len(seen) == 1:
                closer.start()
    closer.join(10)
    # The empty answer that moved nothing on is left out; the one that closed the stream is not.
    assert [b.messages for b in seen] == [[{"n": 0}], []]
    assert seen[-1].stream_closed


def test_batches_of_a_stream_that_is_not_json(stream_url: str) -> None:
    with DurableStream.create(stream_url, content_type="text/plain") as handle:
        handle.append("hi")
    with ds.stream(stream_url) as res, pytest.raises(ds.ContentTypeError):
        list(res.iter_json_batches())


@pytest.mark.anyio
async def test_batches_async(stream_url: str) -> None:
    async with await ds.AsyncDurableStream.create(
        stream_url, content_type="application/json"
    ) as handle:
        await handle.append({"n": 0})
        async with ds.astream(stream_url, live="sse") as res:
            got = []
            async for batch in res.iter_json_batches():
                got.append(batch)
                if len(got) == 1:
                    await handle.append({"n": 1})
                    await handle.close_stream()
            assert res.offset == got[-1].offset
    assert [m for b in got for m in b.messages] == [{"n": 0}, {"n": 1}]
    assert got[-1].stream_closed
    async with ds.astream(stream_url) as res:
        assert [b.messages for b in await res.read_json_batches()] == [[{"n": 0}, {"n": 1}]]


def test_batches_read_before_a_failure_are_not_lost() -> None:
    answers = iter(
        [
            (b"[1,2]", "0_1", {}),
            (b"[3", "0_2", {"stream-up-to-date": "true"}),  # malformed: not retried
            (b"[3]", "0_2", {"stream-up-to-date": "true"}),
        ]
    )

    def serve(request: httpx.Request) -> httpx.Response:
        content, offset, extra = next(answers)
        headers = {"content-type": "application/json", "stream-next-offset": offset, **extra}
        return httpx.Response(200, headers=headers, content=content)

    url = "http://streams.test/s/batches"
    with (
        httpx.Client(transport=httpx.MockTransport(serve)) as client,
        ds.stream(url, client=client) as res,
    ):
        with pytest.raises(ds.JSONParseError):
            res.read_json_batches()
        # The first batch went out with the failed call: the next read hands it out again.
        again = res.read_json_batches()
        assert [(b.messages, b.offset) for b in again] == [([1, 2], "0_1"), ([3], "0_2")]
        assert res.offset == "0_2"
