"""A handle's ``on_error`` hook: any failed request may be retried on its word, with new
headers or params, a bounded number of times in a row, except an append that may have been
stored, which is never sent again. Against the reference server, its faults injected."""

from __future__ import annotations

import re
from collections.abc import Callable

import anyio
import pytest

import durable_streams as ds
from durable_streams import DurableStreamError, ErrorDecision, RetryAction, RetryPolicy
from durable_streams._writing._handle import may_have_been_applied
from faultproxy import FaultProxy
from injection import inject_status

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_retries=8, initial_delay=0.001, max_delay=0.002, deadline=None)
JSON = "application/json"


class Hook:
    """An on_error hook answering with ``answer(error)``, recording what it was shown."""

    def __init__(self, answer: Callable[[DurableStreamError], ErrorDecision]) -> None:
        self._answer = answer
        self.seen: list[DurableStreamError] = []

    def __call__(self, error: DurableStreamError) -> ErrorDecision:
        self.seen.append(error)
        return self._answer(error)


def _path(server_url: str, url: str) -> str:
    return url.removeprefix(server_url)


def _messages(url: str) -> list[object]:
    with ds.stream(url) as res:
        return res.read_json()


def _posts(proxy: FaultProxy) -> list[bytes]:
    """The heads of the POSTs the proxy forwarded (one handle appending in turn: in order)."""
    pattern = rb"POST [^\r]*\r\n(?:[^\r]+\r\n)*"
    return [m.group(0) for data in proxy.forwarded for m in re.finditer(pattern, data)]


def test_an_append_to_a_stream_not_created_yet(stream_url: str) -> None:
    def create_it(error: DurableStreamError) -> ErrorDecision:
        if isinstance(error, ds.StreamNotFoundError):
            ds.DurableStream.create(stream_url, content_type=JSON).close()
            return RetryAction()
        return None

    hook = Hook(create_it)
    with ds.DurableStream(stream_url, content_type=JSON, on_error=hook, retry=FAST) as handle:
        handle.append({"n": 1})
        handle.append({"n": 2})
    assert [type(e) for e in hook.seen] == [ds.StreamNotFoundError]
    assert _messages(stream_url) == [{"n": 1}, {"n": 2}]


@pytest.mark.anyio
async def test_an_append_to_a_stream_not_created_yet_async(stream_url: str) -> None:
    seen: list[DurableStreamError] = []

    async def create_it(error: DurableStreamError) -> ErrorDecision:
        seen.append(error)
        if isinstance(error, ds.StreamNotFoundError):
            await (await ds.AsyncDurableStream.create(stream_url, content_type=JSON)).aclose()
            return RetryAction()
        return None

    async with ds.AsyncDurableStream(
        stream_url, content_type=JSON, on_error=create_it, retry=FAST
    ) as handle:
        result = await handle.append({"n": 1})
        assert result.offset is not None
        async with handle.stream() as res:  # the handle's hook serves its reads too
            assert await res.read_json() == [{"n": 1}]
    assert [type(e) for e in seen] == [ds.StreamNotFoundError]


def test_a_gateway_409_mended_by_new_headers(server_url: str, stream_url: str) -> None:
    ds.DurableStream.create(stream_url, content_type=JSON).close()
    hook = Hook(lambda error: RetryAction(headers={"Authorization": "Bearer fresh"}))
    with FaultProxy(server_url, fragment=False) as proxy:
        url = proxy.url + _path(server_url, stream_url)
        inject_status(server_url, _path(server_url, stream_url), status=409, count=1, method="POST")
        with ds.DurableStream(
            url, content_type=JSON, headers={"authorization": "Bearer old"}, on_error=hook
        ) as handle:
            handle.append({"n": 1})
            handle.append({"n": 2})  # the new header stays the handle's
        posts = _posts(proxy)
    assert [type(e) for e in hook.seen] == [ds.ConflictError]
    assert len(posts) == 3
    auth = [re.findall(rb"(?i)\r\nauthorization: ([^\r]*)", post) for post in posts]
    assert auth == [[b"Bearer old"], [b"Bearer fresh"], [b"Bearer fresh"]]
    assert _messages(stream_url) == [{"n": 1}, {"n": 2}]


@pytest.mark.anyio
async def test_a_401_on_create_and_new_params(server_url: str, stream_url: str) -> None:
    hook = Hook(lambda error: RetryAction(params={"token": "t2"}))
    inject_status(server_url, _path(server_url, stream_url), status=401, count=1, method="PUT")
    handle = await ds.AsyncDurableStream.create(
        stream_url, content_type=JSON, params={"token": "t1"}, on_error=hook, retry=FAST
    )
    async with handle:
        assert handle.created is True
        await handle.append([1, 2])
    assert [e.status for e in hook.seen] == [401]
    assert _messages(stream_url) == [[1, 2]]


def test_a_hook_that_always_retries_is_bounded(server_url: str, stream_url: str) -> None:
    ds.DurableStream.create(stream_url, content_type=JSON).close()
    policy = RetryPolicy(
        max_retries=None, initial_delay=0.001, max_delay=0.002, max_requested_retries=2
    )
    hook = Hook(lambda error: RetryAction())
    inject_status(server_url, _path(server_url, stream_url), status=404, count=3, method="POST")
    with (
        ds.DurableStream(stream_url, content_type=JSON, on_error=hook, retry=policy) as handle,
        pytest.raises(ds.StreamNotFoundError) as info,
    ):
        handle.append({"n": 1})
    assert len(hook.seen) == 3  # the first try and two retries
    assert "max_requested_retries=2" in str(info.value)
    assert _messages(stream_url) == []
    # The injected faults are spent: the same handle appends again, its count started over.
    with ds.DurableStream(stream_url, content_type=JSON, on_error=hook, retry=policy) as handle:
        handle.append({"n": 2})
    assert _messages(stream_url) == [{"n": 2}]


def test_no_retry_of_an_append_a_gateway_may_have_stored(server_url: str, stream_url: str) -> None:
    ds.DurableStream.create(stream_url, content_type=JSON).close()
    hook = Hook(lambda error: RetryAction())
    inject_status(server_url, _path(server_url, stream_url), status=502, count=1, method="POST")
    with (
        ds.DurableStream(stream_url, content_type=JSON, on_error=hook, retry=FAST) as handle,
        pytest.raises(ds.ServerError) as info,
    ):
        handle.append({"n": 1})
    assert info.value.status == 502
    assert "may have been stored, so it was not sent again" in str(info.value)
    assert len(hook.seen) == 1
    assert _messages(stream_url) == []  # not sent again (the 502 came instead of storing it)


@pytest.mark.anyio
async def test_no_retry_of_an_append_whose_answer_was_cut(server_url: str, stream_url: str) -> None:
    ds.DurableStream.create(stream_url, content_type=JSON).close()
    hook = Hook(lambda error: RetryAction())
    with FaultProxy(server_url, fragment=False, cut_after_request=1.0) as proxy:
        url = proxy.url + _path(server_url, stream_url)
        async with ds.AsyncDurableStream(
            url, content_type=JSON, on_error=hook, retry=FAST
        ) as handle:
            with pytest.raises(ds.TransportError) as info:
                await handle.append({"n": 1})
    assert info.value.request_sent
    assert "may have been stored" in str(info.value)
    assert len(hook.seen) == 1
    assert _messages(stream_url) == [{"n": 1}]  # stored once, never twice


@pytest.mark.anyio
async def test_coalesced_appends_share_one_retry(server_url: str, stream_url: str) -> None:
    ds.DurableStream.create(stream_url, content_type=JSON).close()
    hook = Hook(lambda error: RetryAction())
    inject_status(server_url, _path(server_url, stream_url), status=409, count=2, method="POST")
    async with (
        ds.AsyncDurableStream(stream_url, content_type=JSON, on_error=hook, retry=FAST) as handle,
        anyio.create_task_group() as tasks,
    ):
        for n in range(20):
            tasks.start_soon(handle.append, n)
    stored = _messages(stream_url)
    assert sorted(stored) == list(range(20))  # type: ignore[type-var]
    assert len(hook.seen) == 2


def test_the_hook_sees_typed_errors_of_every_operation(server_url: str, stream_url: str) -> None:
    hook = Hook(lambda error: RetryAction())
    with ds.DurableStream.create(stream_url, content_type=JSON, on_error=hook) as handle:
        path = _path(server_url, stream_url)
        inject_status(server_url, path, status=403, count=1, method="HEAD")
        assert handle.head().content_type == JSON
        inject_status(server_url, path, status=409, count=1, method="POST")
        handle.close_stream({"last": True})
        inject_status(server_url, path, status=401, count=1, method="DELETE")
        handle.delete()
    assert [e.status for e in hook.seen] == [403, 409, 401]
    with pytest.raises(ds.StreamNotFoundError):
        ds.DurableStream.connect(stream_url)


def test_a_wrong_answer_is_a_type_error(stream_url: str) -> None:
    with (
        ds.DurableStream(stream_url, content_type=JSON, on_error=lambda e: True) as handle,  # type: ignore[arg-type,return-value]
        pytest.raises(TypeError, match="RetryAction or STOP"),
    ):
        handle.append(1)


@pytest.mark.parametrize(
    ("error", "applied"),
    [
        (ds.TransportError("cut"), True),
        (ds.DeadlineExceededError("slow"), True),
        (ds.ServerError("gateway", status=502), True),
        (ds.ServerError("gateway", status=504), True),
        (ds.ProtocolError("no offset in the answer"), True),
        (ds.ServerError("failed", status=500), False),
        (ds.ServerError("unavailable", status=503), False),
        (ds.RateLimitedError("slow down", status=429), False),
        (ds.StreamNotFoundError("gone", status=404), False),
        (ds.ConflictError("conflict", status=409), False),
        (ds.ResponseError("unauthorized", status=401), False),
    ],
)
def test_what_may_have_been_applied(error: DurableStreamError, applied: bool) -> None:
    assert may_have_been_applied(error) is applied


def test_a_transport_error_before_the_request_went_out_was_not_applied() -> None:
    error = ds.TransportError("refused")
    error.request_sent = False
    assert not may_have_been_applied(error)


def test_the_client_passes_on_error_to_its_handles(stream_url: str) -> None:
    hook = Hook(lambda error: None)
    base, _, path = stream_url.rpartition("/")
    with ds.Client(base) as client:
        handle = client.handle(path, content_type=JSON, on_error=hook)
        with pytest.raises(ds.StreamNotFoundError):
            handle.append(1)
        assert [type(e) for e in hook.seen] == [ds.StreamNotFoundError]
        with pytest.raises(ds.StreamNotFoundError):
            client.connect(path, on_error=hook)
    assert len(hook.seen) == 2
