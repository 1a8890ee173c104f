"""Catch-up bodies longer than a batch are handed out in parts while they arrive, and a body
cut in the middle resumes behind what was handed out: nothing lost, nothing repeated.

Played back through ``httpx.MockTransport`` (the fault-proxy reads run the same against the
real server with small batches); the session's own checks are tested on it directly.
"""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

import durable_streams as ds
from durable_streams import RetryPolicy
from durable_streams._reading._session import BODY_BATCH_BYTES, ReadSession

URL = "http://streams.test/s/long"
FAST = RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.002, deadline=None)
CHUNK = 64 * 1024
ITEMS = [{"n": n, "text": f"message {n} " + "x" * (n % 300)} for n in range(16_000)]
BODY = json.dumps(ITEMS).encode()
BYTES = bytes(range(256)) * 12_000
TEXT = ("naïve €uro 😀 " * 200_000).encode()


class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """``data`` in chunks of ``chunk`` bytes (64 KiB), counting those handed to the client;
    after ``cut`` bytes (when given) the connection breaks."""

    def __init__(self, data: bytes, cut: int | None = None, chunk: int = CHUNK) -> None:
        self.data = data
        self.cut = cut
        self.chunk = chunk
        self.sent = 0

    def _chunks(self) -> Iterator[bytes]:
        end = len(self.data) if self.cut is None else self.cut
        for start in range(0, end, self.chunk):
            self.sent += 1
            yield self.data[start : min(start + self.chunk, end)]
        if self.cut is not None:
            raise httpx.ReadError("connection reset")

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks():
            yield chunk


def answer(stream: Body, ct: str = "application/json") -> httpx.Response:
    headers = {"content-type": ct, "stream-next-offset": "0_9", "stream-up-to-date": "true"}
    return httpx.Response(200, headers=headers, stream=stream)


class Script:
    def __init__(self, answers: list[httpx.Response]) -> None:
        self.answers = iter(answers)
        self.offsets: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.offsets.append(request.url.params.get("offset"))
        return next(self.answers)


def test_a_long_body_is_handed_out_while_it_arrives() -> None:
    stream = Body(BODY)
    script = Script([answer(stream)])
    chunks = len(BODY) // CHUNK + 1
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.stream(URL, client=client) as res,
    ):
        events = res.iter_events()
        first = next(events)
        assert stream.sent < chunks / 2, "the first message waited for most of the body"
        rest = list(events)
    got = [first, *rest]
    assert [e.data for e in got] == ITEMS
    # Messages of a body still arriving carry the offset before it: resuming there loses none.
    assert first.offset == "-1" and not first.up_to_date
    assert got[-1].offset == "0_9" and got[-1].up_to_date
    parts = {e.offset for e in got}
    assert parts == {"-1", "0_9"}
    assert sum(e.offset == "-1" for e in got) >= len(ITEMS) // 2


@pytest.mark.anyio
async def test_a_long_body_is_handed_out_while_it_arrives_async() -> None:
    stream = Body(BODY)
    script = Script([answer(stream)])
    chunks = len(BODY) // CHUNK + 1
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(script)) as client,
        ds.astream(URL, client=client) as res,
    ):
        got = []
        async for event in res.iter_events():
            if not got:
                assert stream.sent < chunks / 2
            got.append(event)
    assert [e.data for e in got] == ITEMS
    assert got[0].offset == "-1" and got[-1].offset == "0_9"


READS: dict[str, tuple[bytes, str, Any]] = {
    "json": (BODY, "application/json", lambda res: res.read_json()),
    "json-decode": (BODY, "application/json", lambda res: res.read_json(decode=json.loads)),
    "bytes": (BYTES, "application/octet-stream", lambda res: res.read_bytes()),
    "text": (TEXT, "text/plain", lambda res: res.read_text().encode()),
}
EXPECT = {"json": ITEMS, "json-decode": ITEMS, "bytes": BYTES, "text": TEXT}


@pytest.mark.parametrize("kind", READS)
@pytest.mark.parametrize("cut_at", [0.3, 0.77])
@pytest.mark.parametrize("chunk", [CHUNK, 1 << 20], ids=["64KiB", "1MiB"])
def test_a_long_body_cut_in_the_middle_resumes_behind_what_was_handed_out(
    kind: str, cut_at: float, chunk: int
) -> None:
    data, ct, read = READS[kind]
    # The retry is cut as well, earlier than the first: it still skips all the first gave.
    # Chunks of 1 MiB hold many batches each (as a chunk of a gzip body does once inflated).
    cut = int(len(data) * cut_at)
    script = Script(
        [
            answer(Body(data, cut, chunk), ct),
            answer(Body(data, cut // 2, chunk), ct),
            answer(Body(data, chunk=chunk), ct),
        ]
    )
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.stream(URL, client=client, retry=FAST) as res,
    ):
        assert read(res) == EXPECT[kind]
        assert res.offset == "0_9"
    assert script.offsets == ["-1", "-1", "-1"]


@pytest.mark.anyio
@pytest.mark.parametrize("kind", READS)
async def test_a_long_body_cut_in_the_middle_resumes_behind_what_was_handed_out_async(
    kind: str,
) -> None:
    data, ct, _ = READS[kind]
    script = Script([answer(Body(data, len(data) // 2), ct), answer(Body(data), ct)])
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(script)) as client,
        ds.astream(URL, client=client, retry=FAST) as res,
    ):
        if kind == "text":
            assert (await res.read_text()).encode() == TEXT
        elif kind == "bytes":
            assert await res.read_bytes() == BYTES
        else:
            assert await res.read_json(json.loads if kind == "json-decode" else None) == ITEMS
    assert script.offsets == ["-1", "-1"]


def test_a_retry_answering_less_than_was_handed_out_is_a_protocol_error() -> None:
    short = json.dumps(ITEMS[:10]).encode()
    script = Script([answer(Body(BODY, len(BODY) // 2)), answer(Body(short))])
    seen: list[Any] = []
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.stream(URL, client=client, retry=FAST) as res,
        pytest.raises(ds.ProtocolError, match="less than it sent there before") as caught,
    ):
        seen.extend(res.iter_json())
    assert caught.value.offset == "-1"
    assert seen == ITEMS[: len(seen)] and len(seen) > 10


def test_a_body_over_max_body_bytes_stops_with_a_protocol_error() -> None:
    script = Script([answer(Body(BODY))])
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.stream(URL, client=client, max_body_bytes=len(BODY) - 1) as res,
        pytest.raises(ds.ProtocolError, match="max_body_bytes"),
    ):
        res.read_json()


def _session_with_a_part_handed_out() -> ReadSession:
    session = ReadSession(URL, offset="-1", live=False)
    session.consumer = "json"
    session.request({}, {})
    headers = {"content-type": "application/json", "stream-next-offset": "0_9"}
    assert session.on_response(200, headers) == "body"
    parts = [session.on_body_chunk(BODY[i : i + CHUNK]) for i in range(0, len(BODY), CHUNK)]
    assert any(part is not None for part in parts[:-1])
    session.retry_delay(ds.TransportError("connection reset", url=URL))
    return session


def test_switching_kinds_in_the_middle_of_a_body_is_refused() -> None:
    session = _session_with_a_part_handed_out()
    session.consumer = "bytes"
    with pytest.raises(ds.DurableStreamError, match="read the rest of it that way"):
        session.request({}, {})
    session.consumer = "json-raw"  # the same messages, kept raw for a decode= hook
    assert dict(session.request({}, {}).params)["offset"] == "-1"


def test_short_bodies_stay_one_batch() -> None:
    session = ReadSession(URL, offset="-1", live=False)
    session.consumer = "json"
    session.request({}, {})
    headers = {"content-type": "application/json", "stream-next-offset": "0_9"}
    session.on_response(200, headers)
    body = json.dumps(ITEMS[:50]).encode()
    assert len(body) < BODY_BATCH_BYTES
    assert all(session.on_body_chunk(body[i : i + 100]) is None for i in range(0, len(body), 100))
    batch = session.on_body_end()
    assert batch.data == ITEMS[:50] and batch.offset == "0_9"


def test_a_chunk_holding_many_batches_gives_them_one_at_a_time() -> None:
    """A chunk of megabytes (a gzip chunk once inflated) goes out in batches of about
    BODY_BATCH_BYTES each, at the offset before the body; the last with the offset after."""
    session = ReadSession(URL, offset="-1", live=False)
    session.consumer = "json"
    session.request({}, {})
    headers = {"content-type": "application/json", "stream-next-offset": "0_9"}
    session.on_response(200, headers)
    part = session.on_body_chunk(BODY)
    parts = []
    while part is not None:
        parts.append(part)
        part = session.next_body_part()
    last = session.on_body_end()
    assert [m for p in [*parts, last] for m in p.data] == ITEMS
    assert {p.offset for p in parts} == {"-1"} and last.offset == "0_9"
    longest = max(len(json.dumps(m)) for m in ITEMS)
    sizes = [len(json.dumps(p.data)) for p in parts]
    assert len(parts) >= len(BODY) // (BODY_BATCH_BYTES + longest)
    assert all(BODY_BATCH_BYTES - 2 <= n <= BODY_BATCH_BYTES + longest + 2 for n in sizes)


def test_a_chunk_not_read_to_its_end_loses_nothing() -> None:
    """A caller that takes only the first batch of each chunk still gets every message."""
    session = ReadSession(URL, offset="-1", live=False)
    session.consumer = "json-raw"
    session.request({}, {})
    headers = {"content-type": "application/json", "stream-next-offset": "0_9"}
    session.on_response(200, headers)
    big = 1 << 20
    parts = [session.on_body_chunk(BODY[i : i + big]) for i in range(0, len(BODY), big)]
    last = session.on_body_end()
    got = [m for p in [*parts, last] if p is not None for m in p.data]
    assert [json.loads(m) for m in got] == ITEMS


# Messages of one size that are lists, which the collector tracks from birth: it can count
# those alive.
LISTS = [[n, "message", "x" * 100] for n in range(16_000)]
LISTS_BODY = json.dumps(LISTS).encode()
PER_BATCH = BODY_BATCH_BYTES // (len(LISTS_BODY) // len(LISTS))


def _alive() -> int:
    """How many messages of LISTS_BODY read from the server are alive."""
    return sum(
        1
        for o in gc.get_objects()
        if type(o) is list and len(o) == 3 and o[1] == "message" and o is not LISTS[o[0]]
    )


def test_messages_handed_out_are_gone_before_the_next_batch_is_built() -> None:
    """The whole body in one chunk: a consumer that keeps nothing holds no more than about
    a batch of messages alive at any time (not the chunk's worth, nor two batches)."""
    script = Script([answer(Body(LISTS_BODY, chunk=len(LISTS_BODY)))])
    counts = []
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.stream(URL, client=client) as res,
    ):
        for i, message in enumerate(res.iter_json()):
            assert message == LISTS[i]
            if i % 1000 == 0:
                counts.append(_alive())
    assert len(counts) == 16
    assert max(counts) <= 1.5 * PER_BATCH, (counts, PER_BATCH)


@pytest.mark.anyio
async def test_messages_handed_out_are_gone_before_the_next_batch_is_built_async() -> None:
    script = Script([answer(Body(LISTS_BODY, chunk=len(LISTS_BODY)))])
    counts = []
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(script)) as client,
        ds.astream(URL, client=client) as res,
    ):
        i = 0
        async for message in res.iter_json():
            assert message == LISTS[i]
            if i % 1000 == 0:
                counts.append(_alive())
            i += 1
    assert len(counts) == 16
    assert max(counts) <= 1.5 * PER_BATCH, (counts, PER_BATCH)


def test_a_reader_stopped_in_the_middle_of_a_long_body_resumes_behind_it() -> None:
    """Closing the iterator mid-body closes the connection; the next iteration takes the rest
    of the batch it stopped in, then asks again at the same offset and skips what went out."""
    script = Script([answer(Body(BODY)), answer(Body(BODY))])
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.stream(URL, client=client) as res,
    ):
        first = []
        items = res.iter_json()
        for item in items:
            first.append(item)
            if len(first) == 7_000:
                break
        items.close()
        assert res.offset == "-1"
        rest = list(res.iter_json())
        assert res.offset == "0_9"
    assert first + rest == ITEMS
    assert script.offsets == ["-1", "-1"]


@pytest.mark.anyio
async def test_a_reader_stopped_in_the_middle_of_a_long_body_resumes_behind_it_async() -> None:
    script = Script([answer(Body(BYTES), "application/octet-stream"), answer(Body(BYTES))])
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(script)) as client,
        ds.astream(URL, client=client) as res,
    ):
        first = b""
        chunks = res.iter_bytes()
        async for chunk in chunks:
            first += chunk
            break
        await chunks.aclose()
        assert 0 < len(first) < len(BYTES)
        rest = await res.read_bytes()
    assert first + rest == BYTES
    assert script.offsets == ["-1", "-1"]
