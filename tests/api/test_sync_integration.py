"""The sync API against the real reference server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import durable_streams as ds
from durable_streams import (
    OFFSET_NOW,
    DurableStream,
    InvalidOffsetError,
    SeqConflictError,
    StreamClosedError,
    StreamExistsError,
    StreamNotFoundError,
    stream,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def json_stream(stream_url: str) -> Iterator[DurableStream]:
    with DurableStream.create(stream_url, content_type="application/json") as handle:
        yield handle


def test_readme_example_verbatim(stream_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = stream_url
    from durable_streams import DurableStream

    handle = DurableStream.create(url, content_type="application/json", ttl_seconds=3600)
    handle.append({"message": "hello"})
    handle.append({"message": "world"})
    with handle.stream() as res:
        for item in res.iter_json():
            print(item)

    from durable_streams import stream

    with stream(url) as res:
        for item in res.iter_json():
            print(item)
    handle.close()
    assert (
        capsys.readouterr().out.splitlines()
        == [
            "{'message': 'hello'}",
            "{'message': 'world'}",
        ]
        * 2
    )


def test_create_is_idempotent_and_conflicts_on_other_config(stream_url: str) -> None:
    with DurableStream.create(stream_url, content_type="application/json") as first:
        assert first.content_type == "application/json"
    with DurableStream.create(stream_url, content_type="application/json"):
        pass
    with pytest.raises(StreamExistsError) as info:
        DurableStream.create(stream_url, content_type="text/plain")
    assert info.value.status == 409
    assert stream_url.split("//", 1)[1] in str(info.value)


def test_head_reports_metadata(stream_url: str) -> None:
    with DurableStream.create(stream_url, content_type="text/plain", ttl_seconds=120) as handle:
        empty = handle.head()
        handle.append("abc")
        after = handle.head()
    assert empty.content_type == "text/plain"
    assert empty.ttl_seconds == 120
    assert empty.closed is False
    assert empty.offset and after.offset and after.offset > empty.offset


def test_connect_missing_stream_raises_not_found(stream_url: str) -> None:
    with pytest.raises(StreamNotFoundError) as info:
        DurableStream.connect(stream_url)
    assert info.value.status == 404


def test_connect_learns_content_type(stream_url: str) -> None:
    DurableStream.create(stream_url, content_type="application/json").close()
    with DurableStream.connect(stream_url) as handle:
        assert handle.content_type == "application/json"
        handle.append([1, 2])
        with handle.stream() as res:
            assert res.read_json() == [[1, 2]]


def test_append_values_and_read_back(json_stream: DurableStream) -> None:
    values: list[Any] = [
        {"a": 1},
        [1, 2, 3],
        "text",
        3.5,
        None,
        True,
        {"nested": {"list": [{"x": "ü"}]}},
    ]
    for value in values:
        if isinstance(value, str):
            json_stream.append(f'"{value}"')  # str is serialized JSON text
        else:
            json_stream.append(value)
    json_stream.append(b'{"raw":"bytes"}')
    with json_stream.stream() as res:
        got = res.read_json()
        assert res.up_to_date
        assert not res.stream_closed
        assert res.content_type is not None and res.content_type.startswith("application/json")
        assert res.status == 200
    assert got == [*values, {"raw": "bytes"}]


def test_append_returns_growing_offsets(json_stream: DurableStream) -> None:
    offsets = [json_stream.append({"i": i}).offset for i in range(5)]
    assert all(o is not None for o in offsets)
    assert offsets == sorted(offsets)
    assert len(set(offsets)) == 5


def test_resume_from_offset(json_stream: DurableStream) -> None:
    for i in range(3):
        json_stream.append({"i": i})
    with json_stream.stream() as res:
        assert res.read_json() == [{"i": 0}, {"i": 1}, {"i": 2}]
        resume_at = res.offset
    json_stream.append({"i": 3})
    with json_stream.stream(offset=resume_at) as res:
        assert res.read_json() == [{"i": 3}]


def test_offset_now_skips_history(json_stream: DurableStream) -> None:
    json_stream.append({"old": True})
    with json_stream.stream(offset=OFFSET_NOW) as res:
        assert res.read_json() == []
        assert res.up_to_date


def test_invalid_offset_is_typed(json_stream: DurableStream) -> None:
    with pytest.raises(InvalidOffsetError) as info, json_stream.stream(offset="not-an-offset"):
        pass
    assert info.value.status == 400
    assert "not-an-offset" in str(info.value)


def test_read_missing_stream_raises_not_found(stream_url: str) -> None:
    with pytest.raises(StreamNotFoundError), stream(stream_url):
        pass


def test_seq_conflict(json_stream: DurableStream) -> None:
    json_stream.append({"n": 1}, seq="0002")
    with pytest.raises(SeqConflictError):
        json_stream.append({"n": 2}, seq="0001")


def test_close_stream_then_append_is_closed_error(json_stream: DurableStream) -> None:
    json_stream.append({"n": 1})
    final = json_stream.close_stream({"n": "last"})
    assert final.closed
    again = json_stream.close_stream()
    assert again.closed
    assert again.offset == final.offset
    with pytest.raises(StreamClosedError) as info:
        json_stream.append({"n": 2})
    assert info.value.final_offset == final.offset
    assert json_stream.head().closed
    with json_stream.stream() as res:
        assert res.read_json() == [{"n": 1}, {"n": "last"}]
        assert res.stream_closed


def test_create_closed_with_initial_data(stream_url: str) -> None:
    with DurableStream.create(stream_url, content_type="text/plain", data="done", closed=True) as h:
        assert h.head().closed
        with h.stream(live="long-poll") as res:
            assert res.read_text() == "done"
            assert res.stream_closed


def test_delete(json_stream: DurableStream) -> None:
    json_stream.delete()
    with pytest.raises(StreamNotFoundError):
        json_stream.head()
    with pytest.raises(StreamNotFoundError):
        json_stream.delete()


def test_fork_inherits_up_to_offset(json_stream: DurableStream, server_url: str) -> None:
    json_stream.append({"n": 1})
    cut = json_stream.append({"n": 2}).offset
    json_stream.append({"n": 3})
    fork_url = f"{server_url}/test/{uuid.uuid4().hex}"
    with json_stream.fork(fork_url, offset=cut) as fork:
        assert fork.content_type is not None
        fork.append({"fork": True})
        with fork.stream() as res:
            assert res.read_json() == [{"n": 1}, {"n": 2}, {"fork": True}]
    with json_stream.stream() as res:
        assert res.read_json() == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_fork_with_sub_offset(json_stream: DurableStream, server_url: str) -> None:
    json_stream.append([{"n": 1}, {"n": 2}])  # one message: a list
    start = json_stream.head().offset
    json_stream.append({"n": 3})
    fork_url = f"{server_url}/test/{uuid.uuid4().hex}"
    with json_stream.fork(fork_url, offset=start, sub_offset=0) as fork, fork.stream() as res:
        assert res.read_json() == [[{"n": 1}, {"n": 2}]]


def test_text_and_binary_streams(stream_url: str, server_url: str) -> None:
    with DurableStream.create(stream_url, content_type="text/plain") as text:
        text.append("héllo ")
        text.append(b"w\xc3\xb6rld")
        with text.stream() as res:
            assert res.read_text() == "héllo wörld"
    bin_url = f"{server_url}/test/{uuid.uuid4().hex}"
    payload = bytes(range(256))
    with DurableStream.create(bin_url) as binary:
        binary.append(payload)
        binary.append(b"\x00\xff")
        with binary.stream() as res:
            assert res.read_bytes() == payload + b"\x00\xff"
        with pytest.raises(ds.ContentTypeError), binary.stream() as res:
            res.read_json()
        with pytest.raises(TypeError):
            binary.append({"not": "bytes"})


@pytest.mark.parametrize("live", ["long-poll", "sse", True])
def test_closed_stream_ends_live_iteration(json_stream: DurableStream, live: ds.LiveMode) -> None:
    for i in range(20):
        json_stream.append({"i": i})
    json_stream.close_stream({"i": "end"})
    with json_stream.stream(live=live) as res:
        got = list(res.iter_json())
        assert res.stream_closed
    assert got == [{"i": i} for i in range(20)] + [{"i": "end"}]


@pytest.mark.parametrize("live", ["long-poll", "sse", True])
def test_live_tail_sees_concurrent_writes(json_stream: DurableStream, live: ds.LiveMode) -> None:
    start = json_stream.head().offset
    assert start is not None
    total = 200

    def write() -> None:
        with DurableStream(json_stream.url, content_type="application/json") as writer:
            for i in range(total):
                writer.append({"i": i})
            writer.close_stream()

    with json_stream.stream(offset=start, live=live) as res:
        thread = threading.Thread(target=write)
        thread.start()
        try:
            got = [item["i"] for item in res.iter_json()]
        finally:
            thread.join(timeout=60)
    assert got == list(range(total))


@pytest.mark.parametrize("live", ["long-poll", "sse"])
def test_binary_live_modes_decode(stream_url: str, live: ds.LiveMode) -> None:
    chunks = [bytes([i]) * (i + 1) for i in range(40)]
    with DurableStream.create(stream_url, content_type="application/octet-stream") as handle:
        start = handle.head().offset
        for chunk in chunks:
            handle.append(chunk)
        handle.close_stream()
        with handle.stream(offset=start or "-1", live=live) as res:
            assert b"".join(res.iter_bytes()) == b"".join(chunks)
            assert res.stream_closed


def test_sse_text_stream(stream_url: str) -> None:
    with DurableStream.create(stream_url, content_type="text/plain") as handle:
        handle.append("line one\n")
        handle.append("line two\r\n")
        handle.append("ünïcødé")
        handle.close_stream()
        with handle.stream(live="sse") as res:
            assert "".join(res.iter_text()) == "line one\nline two\r\nünïcødé"


def test_iter_events_carry_offsets(json_stream: DurableStream) -> None:
    first = json_stream.append({"n": 1}).offset
    json_stream.append({"n": 2})
    with json_stream.stream() as res:
        events = list(res.iter_events())
    assert [e.data for e in events] == [{"n": 1}, {"n": 2}]
    assert all(e.offset for e in events)
    assert events[-1].up_to_date
    with json_stream.stream(offset=first or "-1") as res:
        assert [e.data for e in res.iter_events()] == [{"n": 2}]


def test_decode_hook_gets_raw_bytes(json_stream: DurableStream) -> None:
    json_stream.append({"b": 2, "a": 1})
    json_stream.append([1, 2])
    with json_stream.stream() as res:
        raw = list(res.iter_json(decode=bytes))
    assert raw == [b'{"b":2,"a":1}', b"[1,2]"]


def test_failing_decode_hook_loses_nothing(json_stream: DurableStream) -> None:
    json_stream.append([{"n": 1}, {"n": 2}, {"n": 3}])  # one message
    for n in (1, 2, 3):
        json_stream.append({"n": n})
    seen: list[Any] = []

    def picky(raw: bytes) -> Any:
        if raw == b'{"n":2}':
            raise ValueError("no twos")
        return raw

    with json_stream.stream() as res:
        with pytest.raises(ValueError, match="no twos"):
            for item in res.iter_json(decode=picky):
                seen.append(item)
        offset_after_failure = res.offset
        with pytest.raises(ValueError, match="no twos"):  # the message it failed on comes first
            seen.extend(res.iter_json(decode=picky))
        seen.extend(res.iter_json())  # the core decodes it and the rest of the batch
    assert seen == [b'[{"n":1},{"n":2},{"n":3}]', b'{"n":1}', {"n": 2}, {"n": 3}]
    # The batch that failed part-way was not yet counted as read.
    assert offset_after_failure != res.offset


def test_break_mid_batch_resumes_with_next_item(json_stream: DurableStream) -> None:
    for n in range(6):
        json_stream.append({"n": n})
    got: list[Any] = []
    with json_stream.stream() as res:
        for item in res.iter_json():
            got.append(item["n"])
            if len(got) == 2:
                break
        got.extend(item["n"] for item in res.iter_json())
    assert got == list(range(6))


def test_dynamic_headers_and_params_are_evaluated_per_request(json_stream: DurableStream) -> None:
    calls = {"header": 0, "param": 0}

    def header() -> str:
        calls["header"] += 1
        return f"Bearer token-{calls['header']}"

    def param() -> str:
        calls["param"] += 1
        return str(calls["param"])

    json_stream.append({"n": 1})
    with json_stream.stream(
        live="long-poll", headers={"authorization": header}, params={"tick": param}
    ) as res:
        assert res.read_json() == [{"n": 1}]
        json_stream.append({"n": 2})
        assert res.read_json() == [{"n": 2}]
    assert calls == {"header": 2, "param": 2}


def test_stream_function_with_live_read_after_catch_up(json_stream: DurableStream) -> None:
    json_stream.append({"n": 1})
    with stream(json_stream.url, live="long-poll") as res:
        assert res.read_json() == [{"n": 1}]
        json_stream.append({"n": 2})
        assert res.read_json() == [{"n": 2}]
        json_stream.close_stream()
        assert res.read_json() == []
        assert res.stream_closed


def test_create_says_whether_the_stream_was_new(stream_url: str) -> None:
    with DurableStream.create(stream_url, content_type="text/plain") as first:
        assert first.created is True
    with DurableStream.create(stream_url, content_type="text/plain") as again:
        assert again.created is False
    with DurableStream(stream_url) as plain:
        assert plain.created is None
