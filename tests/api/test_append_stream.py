"""``append_stream``: a source piped into a stream as it is produced, then closed when asked.
A source that fails midway leaves the stream open and says how far it got; nothing is lost
or stored twice. Against the reference server, sync and async (asyncio and trio)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

import durable_streams as ds
from faultproxy import FaultProxy
from injection import inject_status

pytestmark = pytest.mark.integration

JSON = "application/json"


class Boom(Exception):
    pass


def _read(url: str) -> tuple[list[Any], bool]:
    with ds.stream(url) as res:
        return res.read_json(), res.stream_closed


def _read_bytes(url: str) -> tuple[bytes, bool]:
    with ds.stream(url) as res:
        return res.read_bytes(), res.stream_closed


def test_json_messages_then_close(stream_url: str) -> None:
    messages = [{"n": n, "tags": ["a"] * (n % 3)} for n in range(500)]
    with ds.DurableStream.create(stream_url, content_type=JSON) as handle:
        result = handle.append_stream(iter(messages), close=True)
        assert result.closed
        assert not result.duplicate  # a close answered 204 is no duplicate
        assert result.offset == handle.head().offset
    assert _read(stream_url) == (messages, True)


def test_text_and_bytes_left_open(stream_url: str) -> None:
    chunks: list[str | bytes] = ["héllo ", b"wor", b"ld", "\n" * 3]
    with ds.DurableStream.create(stream_url, content_type="text/plain") as handle:
        result = handle.append_stream(chunks)
        assert not result.closed
        assert result.offset == handle.head().offset
        handle.append("more")  # left open: it takes more
    assert _read_bytes(stream_url) == ("héllo world\n\n\nmore".encode(), False)


@pytest.mark.anyio
async def test_an_async_source_as_it_is_produced(stream_url: str) -> None:
    seen_by_reader: list[Any] = []

    async def produce() -> AsyncIterator[dict[str, int]]:
        for n in range(20):
            await anyio.sleep(0.005)
            yield {"n": n}

    async with await ds.AsyncDurableStream.create(stream_url, content_type=JSON) as handle:

        async def follow() -> None:
            async with handle.stream(live="long-poll") as res:
                async for item in res.iter_json():
                    seen_by_reader.append(item)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(follow)
            result = await handle.append_stream(produce(), close=True)
        assert result.closed
    assert seen_by_reader == [{"n": n} for n in range(20)]  # the live reader ended at the close
    assert _read(stream_url) == (seen_by_reader, True)


@pytest.mark.anyio
async def test_a_plain_iterable_in_async_code(stream_url: str) -> None:
    async with await ds.AsyncDurableStream.create(stream_url, content_type=JSON) as handle:
        await handle.append_stream([1, [2, 3], "4", b'{"five": 5}'])
    assert _read(stream_url) == ([1, [2, 3], 4, {"five": 5}], False)


def test_a_source_failing_midway_leaves_the_stream_open(stream_url: str) -> None:
    def rows() -> Iterator[dict[str, int]]:
        for n in range(10):
            yield {"n": n}
        raise Boom("the database went away")

    with ds.DurableStream.create(stream_url, content_type=JSON) as handle:
        with pytest.raises(ds.AppendStreamError) as info:
            handle.append_stream(rows(), close=True)
        tail = handle.head()
    error = info.value
    assert isinstance(error.__cause__, Boom)
    assert error.source_failed
    assert (error.written, error.uncertain) == (10, 0)
    assert error.offset == tail.offset
    assert "the source failed" in str(error) and "first 10 items" in str(error)
    assert not tail.closed
    assert _read(stream_url) == ([{"n": n} for n in range(10)], False)


@pytest.mark.anyio
async def test_an_async_source_failing_midway(stream_url: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"abc"
        await anyio.sleep(0)
        yield b"def"
        raise Boom("cut")

    async with await ds.AsyncDurableStream.create(
        stream_url, content_type="application/octet-stream"
    ) as handle:
        with pytest.raises(ds.AppendStreamError) as info:
            await handle.append_stream(chunks(), close=True)
        tail = await handle.head()
    error = info.value
    assert isinstance(error.__cause__, Boom)
    assert (error.written, error.written_bytes) == (2, 6)
    assert error.offset == tail.offset
    assert _read_bytes(stream_url) == (b"abcdef", False)


def test_a_source_failing_first_writes_nothing(stream_url: str) -> None:
    def nothing() -> Iterator[int]:
        raise Boom("at once")
        yield 1

    with (
        ds.DurableStream.create(stream_url, content_type=JSON) as handle,
        pytest.raises(ds.AppendStreamError) as info,
    ):
        handle.append_stream(nothing(), close=True)
    assert (info.value.written, info.value.offset) == (0, None)
    assert _read(stream_url) == ([], False)


def test_a_write_that_fails_stops_the_source(server_url: str, stream_url: str) -> None:
    taken = 0

    def numbers() -> Iterator[int]:
        nonlocal taken
        for n in range(100_000):
            taken += 1
            yield n

    with ds.DurableStream.create(stream_url, content_type=JSON) as handle:
        path = stream_url.removeprefix(server_url)
        inject_status(server_url, path, status=400, count=1, method="POST")
        with pytest.raises(ds.AppendStreamError) as info:
            handle.append_stream(numbers(), close=True)
    error = info.value
    assert not error.source_failed
    assert isinstance(error.__cause__, ds.UndeliveredError)
    assert isinstance(error.__cause__.failures[0].error, ds.BadRequestError)
    assert (error.written, error.offset) == (0, None)
    assert taken < 100_000  # it stopped taking from the source
    assert _read(stream_url) == ([], False)  # gap-less: nothing after the failed batch


def test_an_item_that_cannot_be_written(stream_url: str) -> None:
    with (
        ds.DurableStream.create(stream_url, content_type="text/plain") as handle,
        pytest.raises(ds.AppendStreamError) as info,
    ):
        handle.append_stream(["a", "b", {"not": "text"}, "d"])
    assert isinstance(info.value.__cause__, TypeError)
    assert info.value.written == 2
    assert _read_bytes(stream_url) == (b"ab", False)


def test_cut_connections_store_each_item_once(server_url: str, stream_url: str) -> None:
    ds.DurableStream.create(stream_url, content_type=JSON).close()
    with FaultProxy(server_url, seed=3, cut_after_request=0.3, cut_mid_request=0.2) as proxy:
        url = proxy.url + stream_url.removeprefix(server_url)
        with ds.DurableStream(url, content_type=JSON) as handle:
            handle.append_stream(({"n": n} for n in range(300)), close=True)
        assert proxy.stats["cuts_after_request"] + proxy.stats["cuts_mid_request"] > 0
    assert _read(stream_url) == ([{"n": n} for n in range(300)], True)


@pytest.mark.anyio
async def test_an_empty_source(stream_url: str) -> None:
    async with await ds.AsyncDurableStream.create(stream_url, content_type=JSON) as handle:
        await handle.append(0)
        tail = await handle.head()
        left_open = await handle.append_stream([])
        assert (left_open.offset, left_open.closed) == (tail.offset, False)
        closed = await handle.append_stream([], close=True)
        assert closed.closed
    assert _read(stream_url) == ([0], True)


def test_the_sync_handle_refuses_an_async_source(stream_url: str) -> None:
    async def source() -> AsyncIterator[int]:
        yield 1

    items = source()
    with (
        ds.DurableStream.create(stream_url, content_type=JSON) as handle,
        pytest.raises(TypeError, match="async API"),
    ):
        handle.append_stream(items)  # type: ignore[arg-type]
    assert _read(stream_url) == ([], False)


@pytest.mark.parametrize("source", ["text", b"bytes", {"a": 1}])
def test_one_value_is_not_a_source(stream_url: str, source: Any) -> None:
    with (
        ds.DurableStream.create(stream_url, content_type=JSON) as handle,
        pytest.raises(ds.UsageError, match="use append"),
    ):
        handle.append_stream(source)
    assert _read(stream_url) == ([], False)


@pytest.mark.anyio
async def test_cancelled_while_the_source_waits(stream_url: str) -> None:
    async def stalls() -> AsyncIterator[int]:
        for n in range(3):
            yield n
        await anyio.sleep_forever()
        yield 3  # never reached

    async with await ds.AsyncDurableStream.create(stream_url, content_type=JSON) as handle:
        with anyio.move_on_after(0.5) as scope:
            await handle.append_stream(stalls(), close=True)
        assert scope.cancelled_caught
        tail = await handle.head()
    assert not tail.closed  # cancelled: never closed
    stored, closed = _read(stream_url)
    assert stored == [0, 1, 2][: len(stored)]  # a prefix, each once
    assert not closed
