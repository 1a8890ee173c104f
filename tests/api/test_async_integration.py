"""The async API against the real reference server, under asyncio and trio."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest

import durable_streams as ds
from durable_streams import (
    AsyncDurableStream,
    StreamClosedError,
    StreamExistsError,
    StreamNotFoundError,
    astream,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_readme_async_example_verbatim(
    stream_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = stream_url
    handle = await AsyncDurableStream.create(url, content_type="application/json")
    await handle.append({"message": "hello"})
    await handle.aclose()

    from durable_streams import astream

    async with astream(url) as res:
        async for item in res.iter_json():
            print(item)
    assert capsys.readouterr().out.splitlines() == ["{'message': 'hello'}"]


async def test_lifecycle(stream_url: str, server_url: str) -> None:
    async with await AsyncDurableStream.create(
        stream_url, content_type="application/json", ttl_seconds=60
    ) as handle:
        head = await handle.head()
        assert head.content_type == "application/json"
        assert head.ttl_seconds == 60
        cut = (await handle.append({"n": 1})).offset
        await handle.append({"n": 2})
        with pytest.raises(StreamExistsError):
            await AsyncDurableStream.create(stream_url, content_type="text/plain")
        fork_url = f"{server_url}/test/{uuid.uuid4().hex}"
        async with await handle.fork(fork_url, offset=cut) as fork, fork.stream() as res:
            assert await res.read_json() == [{"n": 1}]
        final = await handle.close_stream({"n": 3})
        assert final.closed
        with pytest.raises(StreamClosedError):
            await handle.append({"n": 4})
        async with handle.stream(live="sse") as res:
            assert [item async for item in res.iter_json()] == [{"n": 1}, {"n": 2}, {"n": 3}]
            assert res.stream_closed
        await handle.delete()
        # A fork still references it, so the server keeps it soft-deleted: 410 Gone.
        with pytest.raises(ds.RetentionGoneError):
            await handle.head()


async def test_connect_missing(stream_url: str) -> None:
    with pytest.raises(StreamNotFoundError):
        await AsyncDurableStream.connect(stream_url)


@pytest.mark.parametrize("live", ["long-poll", "sse", True])
async def test_live_tail_with_concurrent_writer(stream_url: str, live: ds.LiveMode) -> None:
    total = 150
    async with await AsyncDurableStream.create(stream_url, content_type="application/json") as h:
        start = (await h.head()).offset
        assert start is not None
        got: list[Any] = []

        async def write() -> None:
            async with AsyncDurableStream(stream_url, content_type="application/json") as writer:
                for i in range(total):
                    await writer.append({"i": i})
                await writer.close_stream()

        async with anyio.create_task_group() as tg, h.stream(offset=start, live=live) as res:
            tg.start_soon(write)
            async for item in res.iter_json():
                got.append(item["i"])
    assert got == list(range(total))


async def test_async_callable_headers(stream_url: str) -> None:
    seen: list[str] = []

    async def token() -> str:
        await anyio.lowlevel.checkpoint()
        seen.append("called")
        return "Bearer t"

    async with await AsyncDurableStream.create(stream_url, content_type="text/plain") as h:
        await h.append("x")
        async with astream(stream_url, headers={"authorization": token}) as res:
            assert await res.read_text() == "x"
    assert seen


async def test_binary_sse(stream_url: str) -> None:
    async with await AsyncDurableStream.create(stream_url) as h:
        await h.append(b"\x00\x01\x02")
        await h.append(b"\xff" * 1000)
        await h.close_stream()
        async with h.stream(live="sse") as res:
            data = b"".join([chunk async for chunk in res.iter_bytes()])
    assert data == b"\x00\x01\x02" + b"\xff" * 1000


async def test_cancelling_a_live_read_is_prompt(stream_url: str) -> None:
    async with await AsyncDurableStream.create(stream_url, content_type="application/json") as h:
        with anyio.move_on_after(0.3) as scope:
            async with h.stream(live="long-poll") as res:
                async for _ in res.iter_json():
                    pass
        assert scope.cancelled_caught


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_abandoned_async_iterator_releases_connection(stream_url: str) -> None:
    async with await AsyncDurableStream.create(stream_url, content_type="application/json") as h:
        await h.append({"n": 1})
        res = h.stream(live="sse")
        async with res:
            async for _ in res.iter_json():
                break
        assert res._http is None  # the connection went back with the block


async def test_items_of_a_batch_are_handed_out_once_across_iterators(stream_url: str) -> None:
    # A catch-up read answers the seven messages in one body, one batch: its items come
    # straight from the batch's iterator, and the generator underneath takes up after them.
    async with await AsyncDurableStream.create(stream_url, content_type="application/json") as h:
        for n in range(7):
            last = (await h.append({"n": n})).offset
        got: list[int] = []
        async with h.stream() as res:
            async for item in res.iter_json():
                got.append(item["n"])
                if len(got) == 2:
                    break
            assert res.offset == "-1"  # the batch is not handed out in full yet
            events = [event async for event in res.iter_events()]
            assert [item async for item in res.iter_json()] == []
        assert got + [e.data["n"] for e in events] == list(range(7))
        assert {e.offset for e in events} == {res.offset} == {last}
