"""An append's own headers (``If-Match`` for a gateway, a per-request token): they reach the
server, beat the handle's of the same name, and such an append goes alone, never coalesced.
Against the reference server through a proxy that keeps what the client sent."""

from __future__ import annotations

import re

import anyio
import pytest

import durable_streams as ds
from durable_streams import RetryAction, RetryPolicy
from faultproxy import FaultProxy
from injection import inject_status

pytestmark = pytest.mark.integration

JSON = "application/json"
FAST = RetryPolicy(initial_delay=0.001, max_delay=0.002, deadline=None)
REQUEST = re.compile(rb"(POST|PUT|HEAD|GET|DELETE) [^\r]*\r\n((?:[^\r]+\r\n)*)\r\n")


def _requests(proxy: FaultProxy) -> list[tuple[bytes, dict[bytes, list[bytes]], bytes]]:
    """Each request the proxy forwarded, connection by connection: method, headers
    (lower-cased names), body."""
    out = []
    for data in proxy.forwarded:
        for match in REQUEST.finditer(data):
            headers: dict[bytes, list[bytes]] = {}
            for line in match.group(2).split(b"\r\n")[:-1]:
                name, _, value = line.partition(b":")
                headers.setdefault(name.strip().lower(), []).append(value.strip())
            length = int(headers.get(b"content-length", [b"0"])[0])
            out.append((match.group(1), headers, data[match.end() : match.end() + length]))
    return out


def _path(server_url: str, url: str) -> str:
    return url.removeprefix(server_url)


def test_an_appends_own_headers_arrive(server_url: str, stream_url: str) -> None:
    ds.DurableStream.create(stream_url, content_type=JSON).close()
    with FaultProxy(server_url, fragment=False) as proxy:
        url = proxy.url + _path(server_url, stream_url)
        with ds.DurableStream(
            url, content_type=JSON, headers={"Authorization": "Bearer handle", "x-app": "a"}
        ) as handle:
            handle.append({"n": 1}, headers={"If-Match": '"v1"', "authorization": "Bearer one"})
            handle.append({"n": 2})
            handle.close_stream(headers={"x-close": "yes"})
        posts = [r for r in _requests(proxy) if r[0] == b"POST"]
    assert len(posts) == 3
    first, second, close = (headers for _, headers, _ in posts)
    assert first[b"if-match"] == [b'"v1"']
    assert first[b"authorization"] == [b"Bearer one"]  # the append's, not the handle's
    assert first[b"x-app"] == [b"a"]
    assert b"if-match" not in second and second[b"authorization"] == [b"Bearer handle"]
    assert close[b"x-close"] == [b"yes"] and close[b"stream-closed"] == [b"true"]
    with ds.stream(stream_url) as res:
        assert res.read_json() == [{"n": 1}, {"n": 2}]


@pytest.mark.anyio
async def test_an_append_with_headers_goes_alone(server_url: str, stream_url: str) -> None:
    ds.DurableStream.create(stream_url, content_type=JSON).close()
    with FaultProxy(server_url, fragment=False) as proxy:
        url = proxy.url + _path(server_url, stream_url)
        async with (
            ds.AsyncDurableStream(url, content_type=JSON) as handle,
            anyio.create_task_group() as tasks,
        ):
            for n in range(30):
                if n == 10:
                    tasks.start_soon(lambda: handle.append({"n": 10}, headers={"x-one": "1"}))
                else:
                    tasks.start_soon(handle.append, {"n": n})
        posts = [r for r in _requests(proxy) if r[0] == b"POST"]
    own = [(headers, body) for _, headers, body in posts if b"x-one" in headers]
    assert len(own) == 1
    assert own[0][1] == b'[{"n":10}]'  # carried alone
    assert len(posts) < 30  # the others did go together
    with ds.stream(stream_url) as res:
        stored = res.read_json()
    assert sorted(m["n"] for m in stored) == list(range(30))


@pytest.mark.anyio
async def test_a_hooks_new_header_beats_the_appends_own(server_url: str, stream_url: str) -> None:
    ds.DurableStream.create(stream_url, content_type=JSON).close()
    inject_status(server_url, _path(server_url, stream_url), status=401, count=1, method="POST")
    with FaultProxy(server_url, fragment=False) as proxy:
        url = proxy.url + _path(server_url, stream_url)
        async with ds.AsyncDurableStream(
            url,
            content_type=JSON,
            retry=FAST,
            on_error=lambda e: RetryAction(headers={"Authorization": "Bearer new"}),
        ) as handle:
            await handle.append(1, headers={"authorization": "Bearer old", "If-Match": "e1"})
        posts = [headers for method, headers, _ in _requests(proxy) if method == b"POST"]
    assert [p[b"authorization"] for p in posts] == [[b"Bearer old"], [b"Bearer new"]]
    assert [p[b"if-match"] for p in posts] == [[b"e1"], [b"e1"]]


def test_a_412_from_a_gateway_is_a_typed_error(server_url: str, stream_url: str) -> None:
    with ds.DurableStream.create(stream_url, content_type=JSON) as handle:
        inject_status(server_url, _path(server_url, stream_url), status=412, count=1, method="POST")
        with pytest.raises(ds.ResponseError) as info:
            handle.append(1, headers={"If-Match": '"stale"'})
        assert info.value.status == 412
        handle.append(2)
    with ds.stream(stream_url) as res:
        assert res.read_json() == [2]


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {"stream-seq": "5"},
        {"Stream-Closed": "true"},
        {"Producer-Id": "p"},
        {"bad name": "x"},
        {"x-token": "line\n"},
        {"x-number": 5},
    ],
)
def test_headers_an_append_cannot_have(stream_url: str, headers: dict[str, str]) -> None:
    ds.DurableStream.create(stream_url, content_type=JSON).close()
    with ds.DurableStream(stream_url, content_type=JSON) as handle:
        with pytest.raises(ds.UsageError):
            handle.append(1, headers=headers)
        with pytest.raises(ds.UsageError):
            handle.close_stream(headers=headers)
    with ds.stream(stream_url) as res:
        assert res.read_json() == []
        assert not res.stream_closed
