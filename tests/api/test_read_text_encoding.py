"""``iter_text(encoding=...)`` and ``read_text(encoding=...)`` against the reference server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import durable_streams as ds
from durable_streams import DurableStream
from durable_streams._reading import _session as _read
from durable_streams._reading._session import ReadSession

pytestmark = pytest.mark.integration

TEXT = "日本語のテキスト, encoded in EUC-JP. " * 20


@pytest.fixture
def euc_stream(stream_url: str) -> Iterator[DurableStream]:
    with DurableStream.create(stream_url, content_type="text/plain; charset=euc-jp") as handle:
        handle.append(TEXT.encode("euc-jp"))
        yield handle


def test_text_in_another_encoding(euc_stream: DurableStream, stream_url: str) -> None:
    with ds.stream(stream_url) as res:
        assert res.read_text(encoding="euc-jp") == TEXT
    with ds.stream(stream_url) as res, pytest.raises(ds.ParseError, match="utf-8"):
        res.read_text()  # EUC-JP bytes are not UTF-8


def test_a_character_split_between_chunks_comes_out_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Chunks of 7 bytes cut two-byte characters in half; batches of 7 bytes hand each out as
    # it comes, so each half goes out with the chunk after it.
    monkeypatch.setattr(_read, "BODY_BATCH_BYTES", 7)
    data = TEXT.encode("euc-jp")
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    assert any(_splits_a_character(chunk) for chunk in chunks)
    session = ReadSession("http://streams.test/s/text", offset="-1", live=False)
    session.consumer = "text"
    session.use_text_encoding("EUC_JP")
    session.request({}, {})
    headers = {"content-type": "text/plain", "stream-next-offset": "0_1"}
    assert session.on_response(200, {**headers, "stream-up-to-date": "true"}) == "body"
    pieces = [batch.data for chunk in chunks if (batch := session.on_body_chunk(chunk))]
    pieces.append(session.on_body_end().data)
    assert len(pieces) > 1
    assert "".join(pieces) == TEXT


def _splits_a_character(chunk: bytes) -> bool:
    try:
        chunk.decode("euc-jp")
    except UnicodeDecodeError:
        return True
    return False


def test_bytes_that_are_not_in_the_encoding(stream_url: str) -> None:
    with DurableStream.create(stream_url, content_type="text/plain") as handle:
        handle.append(b"plain ascii, then \xff")
    with ds.stream(stream_url) as res, pytest.raises(ds.ParseError, match="ascii") as caught:
        res.read_text(encoding="ascii")
    assert caught.value.position is not None


def test_an_unknown_encoding(euc_stream: DurableStream, stream_url: str) -> None:
    with ds.stream(stream_url) as res, pytest.raises(ds.UsageError, match="no-such-codec"):
        res.iter_text(encoding="no-such-codec")


def test_live_text_in_another_encoding_goes_by_long_poll(
    euc_stream: DurableStream, stream_url: str
) -> None:
    # SSE carries text as UTF-8: asked for by name, it says what to do instead.
    with ds.stream(stream_url, live="sse") as res:
        text = res.iter_text(encoding="euc-jp")
        assert next(text) == TEXT  # the catch-up, by a plain read
        with pytest.raises(ds.UsageError, match="long-poll"):
            next(text)
    euc_stream.close_stream()
    with ds.stream(stream_url, live=True) as res:
        assert "".join(res.iter_text(encoding="euc-jp")) == TEXT
        assert res.stats().mode == "long-poll"


@pytest.mark.anyio
async def test_text_in_another_encoding_async(euc_stream: DurableStream, stream_url: str) -> None:
    async with ds.astream(stream_url) as res:
        assert "".join([t async for t in res.iter_text(encoding="euc-jp")]) == TEXT
    async with ds.astream(stream_url) as res:
        assert await res.read_text("euc-jp") == TEXT
