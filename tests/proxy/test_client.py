"""durable_fetch / adurable_fetch: a request through the proxy read as a resumable stream,
remembered per request id so that a restarted process reads the same answer again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from durable_streams import ProxyError, ResponseError, UpstreamError, UsageError
from durable_streams.proxy import (
    ProxiedRequest,
    RequestStore,
    adurable_fetch,
    durable_fetch,
)

from .conftest import SECRET, Proxy, http
from .upstream import Upstream, tokens

pytestmark = pytest.mark.timeout(60)


def test_durable_fetch_reads_the_whole_upstream_answer(proxy: Proxy, core_impl: str) -> None:
    with durable_fetch(
        proxy.url, proxy.upstream.url("/tokens?n=30&gap=0.005"), secret=SECRET, method="GET"
    ) as response:
        assert not response.resumed
        assert response.upstream_content_type == "text/event-stream"
        assert response.stream_url.startswith(f"{proxy.url}/{response.stream_id}?")
        assert response.expires > time.time()
        assert response.read() == tokens(0, 29)
        assert response.offset != "-1"


@pytest.mark.anyio
async def test_adurable_fetch_remembers_the_stream_of_a_request_id(
    proxy: Proxy, tmp_path: Path
) -> None:
    url = proxy.upstream.url("/tokens?n=8&gap=0.01")
    with RequestStore(tmp_path / "requests.db") as store:
        async with await adurable_fetch(
            proxy.url, url, secret=SECRET, request_id="chat-1", store=store
        ) as first:
            chunks = [chunk async for chunk in first]
        assert b"".join(chunks) == tokens(0, 7)
        assert not first.resumed
        async with await adurable_fetch(
            proxy.url, url, secret=SECRET, request_id="chat-1", store=store
        ) as again:
            assert again.resumed and again.stream_url == first.stream_url
            assert await again.aread() == tokens(0, 7)
        async with await adurable_fetch(
            proxy.url, url, secret=SECRET, request_id="chat-2", store=store
        ) as other:
            assert not other.resumed
            assert await other.aread() == tokens(0, 7)
    assert proxy.upstream.hits["/tokens"] == 2  # chat-1 once, chat-2 once


def test_a_remembered_stream_that_is_gone_or_expired_is_asked_for_again(
    proxy: Proxy, tmp_path: Path
) -> None:
    url = proxy.upstream.url("/tokens?n=3")
    store = RequestStore(tmp_path / "requests.db")
    first = durable_fetch(proxy.url, url, secret=SECRET, request_id="r", store=store)
    assert first.read() == tokens(0, 2)
    first.close()
    bare = first.stream_url.split("?")[0]
    assert http.delete(bare, headers={"Authorization": f"Bearer {SECRET}"}).status_code == 204
    second = durable_fetch(proxy.url, url, secret=SECRET, request_id="r", store=store)
    assert not second.resumed and second.read() == tokens(0, 2)
    second.close()
    remembered = store.get(proxy.url, "r")
    assert remembered is not None and remembered.stream_url == second.stream_url
    store.put(proxy.url, "r", ProxiedRequest(second.stream_url, int(time.time()) - 1))
    third = durable_fetch(proxy.url, url, secret=SECRET, request_id="r", store=store)
    assert not third.resumed and third.read() == tokens(0, 2)
    third.close()
    assert proxy.upstream.hits["/tokens"] == 3
    store.close()


def test_the_request_goes_upstream_with_its_authorization_and_body(proxy: Proxy) -> None:
    with durable_fetch(
        proxy.url,
        proxy.upstream.url("/echo"),
        secret=SECRET,
        headers={"Authorization": "Bearer upstream-key", "X-Trace": "t-1"},
        json={"messages": ["hi"]},
    ) as response:
        echo = json.loads(response.read())
    headers = dict(echo["headers"])
    assert echo["method"] == "POST" and json.loads(echo["body"]) == {"messages": ["hi"]}
    assert headers["authorization"] == "Bearer upstream-key"
    assert headers["content-type"] == "application/json" and headers["x-trace"] == "t-1"
    assert response.upstream_content_type == "application/json"


def test_an_upstream_error_raises_upstream_error(proxy: Proxy) -> None:
    with pytest.raises(UpstreamError) as caught:
        durable_fetch(proxy.url, proxy.upstream.url("/status/429"), secret=SECRET)
    error = caught.value
    assert isinstance(error, ProxyError) and isinstance(error, ResponseError)
    assert (error.status, error.upstream_status, error.code) == (502, 429, "UPSTREAM_ERROR")
    assert json.loads(error.content) == {"error": "upstream says no"}
    assert error.content_type == "application/problem+json"


def test_a_refusal_by_the_proxy_raises_proxy_error_with_its_code(proxy: Proxy) -> None:
    with pytest.raises(ProxyError) as refused:
        durable_fetch(proxy.url, "http://127.0.0.1:1/elsewhere", secret=SECRET)
    assert (refused.value.status, refused.value.code) == (403, "UPSTREAM_NOT_ALLOWED")
    assert not isinstance(refused.value, UpstreamError)
    with pytest.raises(ProxyError) as wrong:
        durable_fetch(proxy.url, proxy.upstream.url("/tokens"), secret="not-it")
    assert (wrong.value.status, wrong.value.code) == (401, "INVALID_SECRET")
    with pytest.raises(ProxyError) as redirect:
        durable_fetch(proxy.url, proxy.upstream.url("/redirect"), secret=SECRET)
    assert redirect.value.code == "REDIRECT_NOT_ALLOWED"
    with pytest.raises(UsageError):
        durable_fetch(proxy.url, proxy.upstream.url("/tokens"), secret=SECRET, request_id="x")
    assert proxy.upstream.hits["/tokens"] == 0


@pytest.mark.anyio
async def test_abort_from_the_client_ends_the_read_and_the_upstream(proxy: Proxy) -> None:
    response = await adurable_fetch(
        proxy.url, proxy.upstream.url("/endless"), secret=SECRET, method="GET"
    )
    async with response:
        received = bytearray()
        async for chunk in response:
            received += chunk
            if not received.endswith(b"\n\n"):
                continue
            if len(received) >= len(tokens(0, 2)):
                await response.abort()
                break
        received += await response.aread()  # the rest ends: the aborted stream is closed
    assert proxy.upstream.cut.wait(10)
    count = received.count(b"\n\n")
    assert bytes(received) == tokens(0, count - 1)


CHILD = """
import sys
from durable_streams.proxy import RequestStore, durable_fetch

proxy, url, secret, path = sys.argv[1:5]
with RequestStore(path) as store:
    response = durable_fetch(proxy, url, secret=secret, method="GET", request_id="gen-1",
                             store=store)
    print("resumed" if response.resumed else "fresh", flush=True)
    for chunk in response:
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
"""


def test_a_process_killed_mid_stream_resumes_without_a_second_upstream_request(
    proxy: Proxy, tmp_path: Path
) -> None:
    store_path = str(tmp_path / "requests.db")
    url = proxy.upstream.url("/held?n=6")
    args = [sys.executable, "-c", CHILD, proxy.url, url, SECRET, store_path]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(args, stdout=subprocess.PIPE, env=env)
    assert child.stdout is not None
    try:
        assert child.stdout.readline() == b"fresh\n"
        assert child.stdout.read(len(tokens(0, 0))) == tokens(0, 0)  # mid-generation
    finally:
        child.kill()
        child.wait(30)
        child.stdout.close()
    assert child.returncode == -9
    proxy.upstream.release.set()  # the generation goes on without the reader
    with RequestStore(store_path) as store:
        remembered = store.get(proxy.url, "gen-1")
        assert remembered is not None
        with durable_fetch(
            proxy.url, url, secret=SECRET, method="GET", request_id="gen-1", store=store
        ) as resumed:
            assert resumed.resumed and resumed.stream_url == remembered.stream_url
            assert resumed.read() == tokens(0, 5)
    assert proxy.upstream.hits["/held"] == 1


def test_the_request_store_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    with RequestStore(path) as store:
        store.put("http://p/v1/proxy", "a", ProxiedRequest("http://p/v1/proxy/1?x", 10, "t/x"))
        store.put("http://q/v1/proxy", "a", ProxiedRequest("http://q/v1/proxy/2?x", 20))
    with RequestStore(path) as store:
        assert store.get("http://p/v1/proxy", "a") == ProxiedRequest(
            "http://p/v1/proxy/1?x", 10, "t/x"
        )
        assert store.get("http://q/v1/proxy", "a") == ProxiedRequest("http://q/v1/proxy/2?x", 20)
        store.remove("http://p/v1/proxy", "a")
        assert store.get("http://p/v1/proxy", "a") is None
        assert store.get("http://p/v1/proxy", "b") is None


def test_durable_streams_serve_hosts_the_proxy(upstream: Upstream, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "durable_streams", "serve", "--port", "0"]
    refused = subprocess.run(
        [*command, "--proxy-allow", "http://127.0.0.1"],
        env={k: v for k, v in env.items() if k != "DURABLE_STREAMS_PROXY_SECRET"},
        capture_output=True,
        timeout=30,
    )
    assert refused.returncode == 1 and b"--proxy-secret" in refused.stderr
    origin = upstream.origin
    server = subprocess.Popen(
        [*command, "--proxy-allow", origin],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**env, "DURABLE_STREAMS_PROXY_SECRET": "from-env"},
    )
    assert server.stdout is not None
    try:
        url = server.stdout.readline().decode().strip()
        assert url.startswith("http://127.0.0.1:")
        with durable_fetch(
            f"{url}/v1/proxy", f"{origin}/tokens?n=4", secret="from-env", method="GET"
        ) as response:
            assert response.read() == tokens(0, 3)
        with pytest.raises(ProxyError) as refused_upstream:
            durable_fetch(f"{url}/v1/proxy", "http://127.0.0.1:1/", secret="from-env")
        assert refused_upstream.value.code == "UPSTREAM_NOT_ALLOWED"
        # Its streams live on the same server.
        stored = http.get(f"{url}/v1/stream/proxy/{response.stream_id}")
        assert stored.content == tokens(0, 3)
    finally:
        server.terminate()
        _, errors_out = server.communicate(timeout=30)
    assert server.returncode == 0, errors_out
    assert b"Traceback" not in errors_out


def test_a_read_cut_again_and_again_resumes_with_every_byte_once(
    proxy: Proxy, core_impl: str, tmp_path: Path
) -> None:
    from faultproxy import FaultProxy

    url = proxy.upstream.url("/tokens?n=200")
    location = proxy.create("/tokens?n=200").headers["location"]
    deadline = time.monotonic() + 30
    while proxy.app._pipes and time.monotonic() < deadline:
        time.sleep(0.01)  # the whole body stored first: the same reads on every run
    base = proxy.url.removesuffix("/v1/proxy")
    # Every connection is cut at a random byte (the same ones on every run), in the head or
    # the body, and the remembered read URL goes through them.
    with FaultProxy(base, seed=2, fragment=False, cut_mid_response=1.0) as faults:
        remembered = ProxiedRequest(
            location.replace(base, faults.url), int(time.time()) + 60, "text/event-stream"
        )
        with RequestStore(tmp_path / "requests.db") as store:
            store.put(proxy.url, "cut", remembered)
            with durable_fetch(
                proxy.url, url, secret=SECRET, request_id="cut", store=store
            ) as response:
                assert response.resumed
                assert response.read() == tokens(0, 199)
        assert faults.stats["cuts_mid_response"] >= 2  # seed 2: three of its four reads
    assert proxy.upstream.hits["/tokens"] == 1
