"""Mistakes in how the client is called fail at once, with a typed error that says what to
fix (issue #26): a URL that is not http(s) with a host, a header that cannot be sent, a
non-positive timeout, a handle used after close(), a fork at a read position. None is retried
as a network fault, and no message quotes a credential. Errors name the stream at fault, say
each thing once, and keep what they were given."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import durable_streams as ds
from durable_streams import DurableStream, StreamNotFoundError, stream
from durable_streams.state import AsyncStateView
from durable_streams.testing import local_server

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-t0ken"
JSON = "application/json"

BAD_URLS = [
    "htp://127.0.0.1:4437/foo",
    "127.0.0.1:4437/foo",
    "localhost:4437/foo",
    "streams/foo",
    "http:///foo",
    "http://127.0.0.1:port/foo",
    "http://127.0.0.1:4437/foo\n",
]


def _makers(url: str, **options: Any) -> list[Callable[[], object]]:
    """Everything that takes a stream URL (or root) and options, made without I/O."""
    return [
        lambda: stream(url, live="sse", **options),
        lambda: ds.astream(url, **options),
        lambda: DurableStream(url, **options),
        lambda: ds.AsyncDurableStream(url, **options),
        lambda: ds.Subscriptions(url, **options),
        lambda: ds.AsyncSubscriptions(url, **options),
        lambda: ds.IdempotentProducer(url, producer_id="p", content_type=JSON, **options),
        lambda: AsyncStateView(url, **options),
    ]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_url_that_cannot_be_requested_fails_where_it_is_given(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="durable_streams")
    for make in _makers(url):
        with pytest.raises(ds.UsageError) as caught:
            make()
        assert isinstance(caught.value, ValueError)
        assert (
            "http:// or https://" in str(caught.value)
            or "host" in str(caught.value)
            or ("control character" in str(caught.value))
        )
    assert caplog.records == []  # nothing was tried, so nothing was retried


@pytest.mark.parametrize(
    "url",
    [
        f"htp://me:{SECRET}@127.0.0.1/foo?token={SECRET}",
        f"me:{SECRET}@127.0.0.1/foo?token={SECRET}",
        f"http://me:{SECRET}@127.0.0.1:port/foo?token={SECRET}",
    ],
)
def test_the_error_for_a_bad_url_quotes_no_credential(url: str) -> None:
    with pytest.raises(ds.UsageError) as caught:
        DurableStream(url)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {SECRET}\n"},  # a token read from a file
        {"Authorization": f"Bearer {SECRET}\r\nX-Injected: yes"},
        {"Authorization": f"Bearer {SECRET}\x00"},
        {f"Authorization: Bearer {SECRET}": "x"},  # the whole line given as a name
    ],
)
def test_a_header_that_cannot_be_sent_fails_where_it_is_given(
    stream_url: str, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="durable_streams")
    with DurableStream.create(stream_url, content_type=JSON) as handle:
        for make in [*_makers(stream_url, headers=headers), lambda: handle.stream(headers=headers)]:
            with pytest.raises(ds.UsageError) as caught:
                make()
            assert "Authorization" in str(caught.value)
            assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
    assert caplog.records == []


def test_a_header_callable_giving_a_bad_value_fails_its_first_request(stream_url: str) -> None:
    DurableStream.create(stream_url, content_type=JSON).close()
    headers = {"Authorization": lambda: f"Bearer {SECRET}\n"}
    with (
        DurableStream(stream_url, headers=headers) as handle,
        pytest.raises(ds.UsageError, match=r"'Authorization'.*line break") as caught,
    ):
        handle.head()
    assert SECRET not in str(caught.value)
    with pytest.raises(ds.UsageError) as caught, stream(stream_url, headers=headers) as res:
        res.read_json()
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
def test_a_timeout_must_be_positive(timeout: float) -> None:
    for make in _makers("http://127.0.0.1:4437/foo", timeout=timeout):
        with pytest.raises(ds.UsageError, match="timeout must be a positive number"):
            make()


def test_a_closed_handle_says_so(stream_url: str) -> None:
    handle = DurableStream.create(stream_url, content_type=JSON)
    fork = handle.fork(f"{stream_url}-fork")
    handle.close()
    calls: list[Callable[[], object]] = [
        handle.head,
        lambda: handle.append(1),
        handle.stream,
        lambda: handle.fork(f"{stream_url}-again"),
    ]
    for call in calls:
        with pytest.raises(ds.HandleClosedError, match="closed"):
            call()
    # The fork is a handle of its own: it shares the pool, which outlives any handle.
    assert fork.head().offset is not None
    fork.close()


def test_a_closed_client_says_so_and_what_was_made_from_it_too(stream_url: str) -> None:
    with ds.Client() as client:
        handle = client.create(stream_url, content_type=JSON)
        handle.append(1)
    for call in (handle.head, lambda: client.stream(stream_url).read_json()):
        with pytest.raises(ds.HandleClosedError, match="client is closed"):
            call()


@pytest.mark.anyio
async def test_a_closed_async_handle_says_so(stream_url: str) -> None:
    handle = await ds.AsyncDurableStream.create(stream_url, content_type=JSON)
    await handle.aclose()
    with pytest.raises(ds.HandleClosedError, match="closed"):
        await handle.head()
    with pytest.raises(ds.HandleClosedError, match="closed"):
        handle.stream()


def test_fork_handles_say_whether_the_fork_is_new(stream_url: str) -> None:
    with DurableStream.create(stream_url, content_type=JSON) as handle:
        cut = handle.append(1).offset
        with handle.fork(f"{stream_url}-fork", offset=cut) as fork:
            assert fork.created is True
    # The same fork again is the stream already there (the reference server answers 409
    # to any repeated fork; see tests/server/test_matches_reference.py).
    with local_server() as base, DurableStream.create(f"{base}/s", content_type=JSON) as src:
        cut = src.append(1).offset
        assert src.fork(f"{base}/f", offset=cut).created is True
        assert src.fork(f"{base}/f", offset=cut).created is False


def test_fork_errors_name_the_stream_at_fault(server_url: str) -> None:
    base = f"{server_url}/test/{uuid.uuid4().hex}"
    with DurableStream(f"{base}/nope") as missing, pytest.raises(StreamNotFoundError) as caught:
        missing.fork(f"{base}/nope2")
    assert caught.value.url == f"{base}/nope" and "nope2" not in str(caught.value)

    with DurableStream.create(f"{base}/src", content_type=JSON) as source:
        source.append(1)
        source.fork(f"{base}/kept")  # the server keeps the source's data for it
        for offset in ("-1", "now"):
            with pytest.raises(ds.UsageError, match="fork offset is a position the server"):
                source.fork(f"{base}/at-{offset}", offset=offset)
        source.delete()
        with pytest.raises(ds.RetentionGoneError, match="the stream to fork was deleted") as gone:
            source.fork(f"{base}/late")
    assert gone.value.url == f"{base}/src" and "configuration" not in str(gone.value)


def test_an_on_error_hook_that_raises_keeps_the_error_it_was_given(stream_url: str) -> None:
    class HookFailed(Exception):
        pass

    def hook(error: ds.DurableStreamError) -> None:
        raise HookFailed("the hook failed")

    with pytest.raises(HookFailed) as caught, stream(stream_url, on_error=hook) as res:
        res.read_json()
    assert isinstance(caught.value.__cause__, StreamNotFoundError)


@pytest.mark.anyio
async def test_an_async_on_error_hook_that_raises_keeps_the_error_it_was_given(
    stream_url: str,
) -> None:
    async def hook(error: ds.DurableStreamError) -> None:
        raise KeyError("the hook failed")

    with pytest.raises(KeyError) as caught:
        async with ds.astream(stream_url, on_error=hook) as res:
            await res.read_json()
    assert isinstance(caught.value.__cause__, StreamNotFoundError)


def test_error_messages_say_each_thing_once(stream_url: str) -> None:
    with DurableStream.create(stream_url, content_type="text/plain") as handle:
        handle.close_stream("the end")
        with pytest.raises(ds.StreamClosedError) as closed:
            handle.append("more")
        assert str(closed.value).lower().count("closed") == 1
        with ds.SyncIdempotentProducer(handle, producer_id="p") as producer:
            producer.append("more")
            with pytest.raises(ds.UndeliveredError) as undelivered:
                producer.flush()
    assert str(undelivered.value).count(stream_url) == 1


def test_a_failed_batch_shows_its_size_not_its_body() -> None:
    body = b'{"n":1},' * 1_000_000
    failed = ds.FailedBatch(
        seq=3,
        epoch=1,
        count=1_000_000,
        body=body,
        error=ds.ServerError("server error", status=500),
        maybe_delivered=False,
    )
    text = repr(failed)
    assert len(text) < 400
    assert "8,000,000 bytes" in text and text.count('{"n":1}') < 20 and "seq=3" in text
