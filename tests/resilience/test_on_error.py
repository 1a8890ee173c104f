"""The readers' ``on_error`` hook: what it sees, and what each of its answers does.

Edge cases play scripted answers through ``httpx.MockTransport``; the last tests refresh a
"token" after a 401 the reference server injects.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

import durable_streams as ds
from durable_streams import STOP, DurableStreamError, ErrorDecision, RetryAction, RetryPolicy

URL = "http://streams.test/s/one"
FAST = RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.002, deadline=None)


class Script:
    """Plays back answers (an exception is raised instead), recording each request."""

    def __init__(self, answers: Sequence[httpx.Response | Exception]) -> None:
        self._answers: Iterator[httpx.Response | Exception] = iter(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = next(self._answers)
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(items: list[Any], offset: str = "0_1", **headers: str) -> httpx.Response:
    return httpx.Response(
        200,
        headers={
            "content-type": "application/json",
            "stream-next-offset": offset,
            "stream-up-to-date": "true",
            **headers,
        },
        content=json.dumps(items).encode(),
    )


def status(code: int, **headers: str) -> httpx.Response:
    return httpx.Response(code, headers={"content-type": "text/plain", **headers}, text="no")


class Recorder:
    """An on_error hook answering from a list, recording the errors it was shown."""

    def __init__(self, *decisions: ErrorDecision) -> None:
        self._decisions = list(decisions)
        self.seen: list[DurableStreamError] = []

    def __call__(self, error: DurableStreamError) -> ErrorDecision:
        self.seen.append(error)
        return self._decisions.pop(0) if self._decisions else None


def read(
    answers: list[httpx.Response | Exception],
    on_error: Callable[[DurableStreamError], ErrorDecision] | None,
    **options: Any,
) -> tuple[list[Any], Script]:
    script = Script(answers)
    options.setdefault("retry", FAST)
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.stream(URL, client=client, on_error=on_error, **options) as res,
    ):
        return res.read_json(), script


def test_sees_every_error_before_the_default_decision() -> None:
    hook = Recorder()
    refused = httpx.ConnectError("refused")
    items, script = read([status(503), refused, ok([1, 2])], hook)
    assert items == [1, 2]
    assert len(script.requests) == 3
    assert [type(e) for e in hook.seen] == [ds.ServerError, ds.TransportError]
    assert hook.seen[0].status == 503
    assert hook.seen[1].__cause__ is refused


def test_a_401_is_raised_when_the_hook_says_nothing() -> None:
    hook = Recorder(None)
    with pytest.raises(ds.ResponseError) as info:
        read([status(401), ok([1])], hook)
    assert info.value.status == 401
    assert hook.seen == [info.value]


def test_an_empty_retry_action_retries_with_the_same_values() -> None:
    for decision in (RetryAction(), RetryAction(headers={}, params={})):
        hook = Recorder(decision)
        items, script = read([status(401), ok([1])], hook, headers={"authorization": "a"})
        assert items == [1]
        assert [r.headers["authorization"] for r in script.requests] == ["a", "a"]
        assert len(hook.seen) == 1


def test_new_headers_retry_a_401_and_stay_for_later_requests() -> None:
    hook = Recorder(RetryAction(headers={"Authorization": "Bearer new"}))
    answers = [status(401), ok([1], "0_1"), ok([2], "0_2")]
    script = Script(answers)
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.stream(
            URL,
            client=client,
            headers={"authorization": "Bearer old", "x-other": "kept"},
            live="long-poll",
            retry=FAST,
            on_error=hook,
        ) as res,
    ):
        iterator = res.iter_json()
        assert [next(iterator), next(iterator)] == [1, 2]
    first, retried, later = script.requests
    assert first.headers.get_list("authorization") == ["Bearer old"]
    assert retried.headers.get_list("authorization") == ["Bearer new"]
    assert later.headers.get_list("authorization") == ["Bearer new"]
    assert later.headers["x-other"] == "kept"
    assert later.url.params["live"] == "long-poll"
    assert len(hook.seen) == 1


def test_new_params_retry_a_403_in_sorted_order() -> None:
    hook = Recorder(RetryAction(params={"token": "t2"}))
    items, script = read([status(403), ok([1])], hook, params={"token": "t1", "a": "x"})
    assert items == [1]
    assert str(script.requests[0].url) == f"{URL}?a=x&offset=-1&token=t1"
    assert str(script.requests[1].url) == f"{URL}?a=x&offset=-1&token=t2"


def test_a_retry_action_retries_any_error() -> None:
    # A gateway's 404 or 409 that new headers mend, or a stream not created yet.
    hook = Recorder(RetryAction(headers={"authorization": "x"}), RetryAction())
    items, script = read([status(404), status(409), ok([1])], hook)
    assert items == [1]
    assert [type(e) for e in hook.seen] == [ds.StreamNotFoundError, ds.ConflictError]
    assert [r.headers.get("authorization") for r in script.requests] == [None, "x", "x"]


def test_a_hook_that_always_retries_stops_at_max_requested_retries() -> None:
    seen: list[DurableStreamError] = []

    def always(error: DurableStreamError) -> ErrorDecision:
        seen.append(error)
        return RetryAction()

    policy = RetryPolicy(
        max_retries=None,
        initial_delay=0.001,
        max_delay=0.002,
        deadline=None,
        max_requested_retries=3,
    )
    with pytest.raises(ds.StreamNotFoundError) as info:
        read([status(404)] * 10, always, retry=policy)
    assert len(seen) == 4  # the first try and three retries
    assert "max_requested_retries=3" in str(info.value)
    # A request that succeeds starts the count over.
    seen.clear()
    answers = [status(404)] * 3 + [ok([1], "0_1")] + [status(404)] * 3 + [ok([2], "0_2")]
    script = Script(answers)
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.stream(URL, client=client, live="long-poll", retry=policy, on_error=always) as res,
    ):
        iterator = res.iter_json()
        assert [next(iterator), next(iterator)] == [1, 2]
    assert len(seen) == 6


def test_max_requested_retries_is_checked() -> None:
    for wrong in (-1, True, 1.5):
        with pytest.raises(ValueError, match="max_requested_retries"):
            RetryPolicy(max_requested_retries=wrong)  # type: ignore[arg-type]


def test_a_retry_action_on_a_transient_error_retries_with_its_headers() -> None:
    hook = Recorder(RetryAction(headers={"x-region": "b"}))
    items, script = read([status(502), ok([1])], hook)
    assert items == [1]
    assert "x-region" not in script.requests[0].headers
    assert script.requests[1].headers["x-region"] == "b"


def test_stop_raises_a_transient_error_at_once() -> None:
    hook = Recorder(STOP)
    with pytest.raises(ds.ServerError):
        read([status(503), ok([1])], hook)
    assert len(hook.seen) == 1

    hook = Recorder(STOP)
    with pytest.raises(ds.TransportError):
        read([httpx.ReadError("reset"), ok([1])], hook)
    assert len(hook.seen) == 1


def test_the_retry_policy_still_bounds_what_the_hook_retries() -> None:
    hook = Recorder(*[RetryAction(headers={"authorization": f"t{n}"}) for n in range(10)])
    policy = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002, deadline=None)
    with pytest.raises(ds.ResponseError) as info:
        read([status(401)] * 5, hook, retry=policy)
    assert info.value.status == 401
    assert len(hook.seen) == 3  # the first try and two retries


def test_an_exception_from_the_hook_propagates_instead() -> None:
    class Giveup(Exception):
        pass

    def hook(error: DurableStreamError) -> ErrorDecision:
        raise Giveup(error.status)

    with pytest.raises(Giveup) as info:
        read([status(503), ok([1])], hook)
    assert info.value.args == (503,)


def test_a_wrong_answer_is_a_type_error() -> None:
    for wrong in (True, {"headers": {"a": "b"}}, "stop"):
        with pytest.raises(TypeError, match="RetryAction or STOP"):
            read([status(503), ok([1])], lambda _e, w=wrong: w)  # type: ignore[misc]
    with pytest.raises(TypeError, match="str"):
        read([status(401), ok([1])], lambda _e: RetryAction(headers={"a": 1}))  # type: ignore[dict-item]


def test_an_async_hook_needs_the_async_api() -> None:
    async def hook(error: DurableStreamError) -> ErrorDecision:
        return None

    with pytest.raises(TypeError, match="async"):
        read([status(503), ok([1])], hook)  # type: ignore[arg-type]


def test_the_handle_passes_its_hook_on() -> None:
    hook = Recorder(RetryAction(headers={"authorization": "new"}))
    script = Script([status(401), ok([7])])
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.DurableStream(URL, client=client, headers={"authorization": "old"}) as handle,
        handle.stream(retry=FAST, on_error=hook) as res,
    ):
        assert res.read_json() == [7]
    assert script.requests[1].headers["authorization"] == "new"
    assert len(hook.seen) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("hook_kind", ["sync", "async"])
async def test_async_reader_with_plain_and_async_hooks(hook_kind: str) -> None:
    recorder = Recorder(None, RetryAction(headers={"authorization": "new"}))
    hook: Callable[[DurableStreamError], ErrorDecision | Awaitable[ErrorDecision]]
    if hook_kind == "sync":
        hook = recorder
    else:

        async def hook(error: DurableStreamError) -> ErrorDecision:
            return recorder(error)

    script = Script([status(500), status(401), ok([1, 2])])
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(script)) as client,
        ds.astream(URL, client=client, retry=FAST, on_error=hook) as res,
    ):
        assert await res.read_json() == [1, 2]
    assert [e.status for e in recorder.seen] == [500, 401]
    assert script.requests[2].headers["authorization"] == "new"


@pytest.mark.anyio
async def test_async_stop_and_async_handle() -> None:
    async def stop(error: DurableStreamError) -> ErrorDecision:
        return STOP

    script = Script([status(503), ok([1])])
    async with httpx.AsyncClient(transport=httpx.MockTransport(script)) as client:
        handle = ds.AsyncDurableStream(URL, client=client)
        with pytest.raises(ds.ServerError):
            async with handle.stream(retry=FAST, on_error=stop) as res:
                await res.read_json()
    assert len(script.requests) == 1


# -- against the reference server --------------------------------------------------------------


def _inject_401(server_url: str, url: str) -> None:
    fault = {"path": url.removeprefix(server_url), "status": 401, "count": 1, "method": "GET"}
    assert httpx.post(f"{server_url}/_test/inject-error", json=fault).status_code == 200


class TokenRefresher:
    """Hands out a new token after each 401 or 403; ``seen`` is what it was shown."""

    def __init__(self) -> None:
        self.seen: list[DurableStreamError] = []

    def __call__(self, error: DurableStreamError) -> ErrorDecision:
        self.seen.append(error)
        if error.status in (401, 403):
            return RetryAction(headers={"authorization": f"Bearer token-{len(self.seen)}"})
        return None


@pytest.mark.integration
def test_refresh_after_a_401_from_the_server_sync(server_url: str, stream_url: str) -> None:
    with ds.DurableStream.create(stream_url, content_type="application/json") as handle:
        handle.append({"n": 1})
        handle.close_stream({"n": 2})
    _inject_401(server_url, stream_url)
    refresher = TokenRefresher()
    with ds.stream(
        stream_url, headers={"authorization": "Bearer expired"}, retry=FAST, on_error=refresher
    ) as res:
        assert list(res.iter_json()) == [{"n": 1}, {"n": 2}]
        assert res.stream_closed
    assert len(refresher.seen) == 1
    assert type(refresher.seen[0]) is ds.ResponseError
    assert refresher.seen[0].status == 401


@pytest.mark.integration
@pytest.mark.anyio
async def test_refresh_after_a_401_from_the_server_async(server_url: str, stream_url: str) -> None:
    async with await ds.AsyncDurableStream.create(
        stream_url, content_type="application/json"
    ) as handle:
        await handle.append({"n": 1})
        _inject_401(server_url, stream_url)
        refresher = TokenRefresher()
        async with handle.stream(live="sse", retry=FAST, on_error=refresher) as res:
            iterator = res.iter_json()
            assert await iterator.__anext__() == {"n": 1}
            _inject_401(server_url, stream_url)  # now the SSE request meets one too
            await handle.close_stream({"n": 2})
            assert [item async for item in iterator] == [{"n": 2}]
            assert res.stream_closed
    assert [e.status for e in refresher.seen] == [401, 401]
