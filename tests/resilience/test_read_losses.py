"""Answers that once lost data or escaped untyped, found by the fault-proxy and injected-fault
reads: a gzip body cut short, an empty JSON body, a Retry-After on a 503, and a connection
that fails while an error body is read. Played back through ``httpx.MockTransport``.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import pytest

import durable_streams as ds
from durable_streams import DurableStreamError, ErrorDecision, RetryPolicy

URL = "http://streams.test/s/one"
FAST = RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.002, deadline=None)
ITEMS = [{"n": n, "text": "x" * 50} for n in range(200)]


class Script:
    def __init__(self, answers: Sequence[httpx.Response | Exception]) -> None:
        self._answers: Iterator[httpx.Response | Exception] = iter(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = next(self._answers)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Failing(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that breaks after its first bytes."""

    def __iter__(self) -> Iterator[bytes]:
        yield b"server "
        raise httpx.ReadError("connection reset")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"server "
        raise httpx.ReadError("connection reset")


def answer(body: bytes, offset: str = "0_200", **headers: str) -> httpx.Response:
    return httpx.Response(
        200,
        headers={
            "content-type": "application/json",
            "stream-next-offset": offset,
            "stream-up-to-date": "true",
            **headers,
        },
        content=body,
    )


GZIPPED = gzip.compress(json.dumps(ITEMS).encode())


class Seen:
    def __init__(self) -> None:
        self.errors: list[DurableStreamError] = []

    def __call__(self, error: DurableStreamError) -> ErrorDecision:
        self.errors.append(error)
        return None


def read_sync(answers: list[httpx.Response | Exception], **options: Any) -> tuple[Any, Script]:
    script = Script(answers)
    options.setdefault("retry", FAST)
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.stream(URL, client=client, **options) as res,
    ):
        return res.read_json(), script


async def read_async(
    answers: list[httpx.Response | Exception], **options: Any
) -> tuple[Any, Script]:
    script = Script(answers)
    options.setdefault("retry", FAST)
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(script)) as client,
        ds.astream(URL, client=client, **options) as res,
    ):
        return await res.read_json(), script


def cut_gzip() -> list[httpx.Response | Exception]:
    return [
        answer(GZIPPED[: len(GZIPPED) // 2], **{"content-encoding": "gzip"}),
        answer(GZIPPED, **{"content-encoding": "gzip"}),
    ]


def test_a_gzip_body_cut_short_is_retried_not_read_as_less() -> None:
    seen = Seen()
    items, script = read_sync(cut_gzip(), on_error=seen)
    assert items == ITEMS
    assert len(script.requests) == 2
    assert [type(e) for e in seen.errors] == [ds.TransportError]
    assert "compressed body ended early" in str(seen.errors[0])


@pytest.mark.anyio
async def test_a_gzip_body_cut_short_is_retried_not_read_as_less_async() -> None:
    seen = Seen()
    items, _ = await read_async(cut_gzip(), on_error=seen)
    assert items == ITEMS
    assert [type(e) for e in seen.errors] == [ds.TransportError]


def test_a_whole_gzip_body_and_an_empty_gzip_one_are_fine() -> None:
    items, script = read_sync([answer(GZIPPED, **{"content-encoding": "gzip"})])
    assert items == ITEMS
    assert len(script.requests) == 1
    # No bytes at all under a gzip label: nothing was cut, the JSON check speaks instead.
    with pytest.raises(ds.ProtocolError, match="empty body"):
        read_sync([answer(b"", **{"content-encoding": "gzip"})])


@pytest.mark.parametrize("body", [b"", b"  \r\n"])
def test_an_empty_json_body_is_a_protocol_error_not_an_empty_range(body: bytes) -> None:
    script = Script([answer(body, offset="0_9")])
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.stream(URL, client=client, retry=FAST) as res,
    ):
        with pytest.raises(ds.ProtocolError, match="empty body") as info:
            res.read_json()
        assert res.offset == "-1"  # nothing was committed
    assert info.value.offset == "-1"
    # The same body is fine for a byte reader: a non-JSON read may be empty.
    script = Script([answer(body, offset="0_9")])
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.stream(URL, client=client, retry=FAST) as res,
    ):
        assert res.read_bytes() == body


def test_retry_after_on_a_503_is_honoured() -> None:
    started = time.monotonic()
    items, _ = read_sync([httpx.Response(503, headers={"retry-after": "0.3"}), answer(b"[1]")])
    assert items == [1]
    assert time.monotonic() - started >= 0.3


def test_a_retry_after_past_the_deadline_raises_at_once() -> None:
    policy = RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.002, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(ds.ServerError):
        read_sync(
            [httpx.Response(503, headers={"retry-after": "30"}), answer(b"[1]")], retry=policy
        )
    assert time.monotonic() - started < 1.0


def test_a_failure_while_reading_an_error_body_is_typed_and_retried() -> None:
    seen = Seen()
    broken = httpx.Response(500, stream=Failing())
    items, _ = read_sync([broken, answer(b"[1]")], on_error=seen)
    assert items == [1]
    assert [type(e) for e in seen.errors] == [ds.TransportError]
    assert isinstance(seen.errors[0].__cause__, httpx.ReadError)


@pytest.mark.anyio
async def test_a_failure_while_reading_an_error_body_is_typed_and_retried_async() -> None:
    seen = Seen()
    broken = httpx.Response(500, stream=Failing())
    items, _ = await read_async([broken, answer(b"[1]")], on_error=seen)
    assert items == [1]
    assert [type(e) for e in seen.errors] == [ds.TransportError]


def test_a_failure_while_reading_an_error_body_is_typed_when_not_retried() -> None:
    with pytest.raises(ds.TransportError) as info:
        read_sync([httpx.Response(500, stream=Failing())], retry=RetryPolicy.never())
    assert isinstance(info.value.__cause__, httpx.ReadError)
