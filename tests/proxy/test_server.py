"""The proxy's rules (PROXY_PROTOCOL.md), over HTTP: each test sends what a client sends and
checks the status, the error code and what the stream holds, with the streams on the
reference server and on the embedded one."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import pytest

from durable_streams import RetryPolicy, stream
from durable_streams.proxy import _app as proxy_app

from .conftest import SECRET, Proxy, http
from .upstream import Upstream, big_body, tokens

pytestmark = pytest.mark.timeout(60)

SERVICE = {"Authorization": f"Bearer {SECRET}"}


def code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def read_all(url: str, live: str = "long-poll") -> bytes:
    """The stream to its end (read_bytes() would stop where the writing is)."""
    with stream(url, live=live) as response:
        return b"".join(response.iter_bytes())


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())))


def without_query(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(query=""))


# -- create and read (4.1, 4.2, 8.2) --------------------------------------------------------------


@pytest.mark.parametrize("live", ["long-poll", "sse"])
def test_a_created_stream_holds_the_upstream_body_and_is_closed_at_its_end(
    proxy: Proxy, live: str
) -> None:
    created = proxy.create("/tokens?n=20&gap=0.01", method="POST", content=b"{}")
    assert created.status_code == 201
    assert created.content == b""
    assert created.headers["upstream-content-type"] == "text/event-stream"
    location = created.headers["location"]
    assert location.startswith(proxy.url + "/")
    assert set(parse_qs(urlsplit(location).query)) == {"expires", "signature"}
    # The 201 came before the body was whole: the read follows the writing to the end.
    assert read_all(location, live) == tokens(0, 19)
    head = http.head(without_query(location), headers=SERVICE)
    assert head.status_code == 200
    assert head.headers["stream-closed"] == "true"
    assert head.headers["upstream-content-type"] == "text/event-stream"
    catch_up = http.get(location)
    assert catch_up.status_code == 200 and catch_up.content == tokens(0, 19)
    assert catch_up.headers["upstream-content-type"] == "text/event-stream"
    assert catch_up.headers["stream-closed"] == "true"
    assert "Upstream-Content-Type" in catch_up.headers["access-control-expose-headers"]
    assert proxy.upstream.hits["/tokens"] == 1


def test_a_body_larger_than_the_pipe_buffer_is_stored_whole_and_in_order(
    proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small bounds, so that the upstream waits for the stream and writes are split.
    monkeypatch.setattr(proxy_app, "_MAX_BUFFER", 64 * 1024)
    monkeypatch.setattr(proxy_app, "_MAX_WRITE", 16 * 1024)
    size = 1024 * 1024 + 5
    created = proxy.create(f"/big?size={size}")
    assert created.headers["upstream-content-type"] == "application/octet-stream"
    assert read_all(created.headers["location"]) == big_body(size)


def test_reads_resume_from_an_offset(proxy: Proxy) -> None:
    location = proxy.create("/tokens?n=6&gap=0.02").headers["location"]
    whole = read_all(location)
    assert whole == tokens(0, 5)
    with stream(location) as response:
        first = next(iter(response.iter_events()))
    rest = http.get(with_query(location, offset=first.offset))
    assert rest.status_code == 200
    assert first.data + rest.content == whole
    tail = http.get(with_query(location, offset=rest.headers["stream-next-offset"]))
    assert tail.content == b"" and tail.headers["stream-up-to-date"] == "true"


def test_the_upstream_request_is_forwarded_with_the_headers_the_protocol_says(
    proxy: Proxy,
) -> None:
    created = proxy.create(
        "/echo",
        method="put",
        headers={
            "Upstream-Authorization": "Bearer upstream-key",
            "X-Custom": "kept",
            "Content-Type": "application/json",
            "Connection": "keep-alive, X-Custom-Hop",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic c2VjcmV0",
        },
        content=b'{"prompt": "hi"}',
    )
    assert created.status_code == 201
    # A JSON upstream body is stored as bytes, and its type still told.
    assert created.headers["upstream-content-type"] == "application/json"
    echo = json.loads(read_all(created.headers["location"]))
    headers = dict(echo["headers"])
    assert echo["method"] == "PUT" and echo["body"] == '{"prompt": "hi"}'
    assert headers["authorization"] == "Bearer upstream-key"  # not the proxy's secret
    assert headers["x-custom"] == "kept"
    assert headers["content-type"] == "application/json"
    assert headers["host"] == urlsplit(proxy.upstream.origin).netloc
    for gone in ("upstream-url", "upstream-method", "upstream-authorization", "keep-alive"):
        assert gone not in headers
    assert "proxy-authorization" not in headers and "te" not in headers
    assert SECRET not in json.dumps(echo)


# -- validation and service authentication (9.1, 11.1, 11.2) --------------------------------------


def test_create_needs_the_service_secret(proxy: Proxy) -> None:
    missing = proxy.create("/tokens", auth=False)
    assert (missing.status_code, code(missing)) == (401, "MISSING_SECRET")
    wrong = proxy.create("/tokens", auth=False, headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, code(wrong)) == (401, "INVALID_SECRET")
    as_query = http.post(
        f"{proxy.url}?secret={SECRET}",
        headers={"Upstream-URL": proxy.upstream.url("/tokens?n=1"), "Upstream-Method": "GET"},
    )
    assert as_query.status_code == 201
    assert proxy.upstream.hits["/tokens"] == 1  # refused requests never reached it


def test_create_validates_the_upstream_url_and_method(proxy: Proxy) -> None:
    url = proxy.upstream.url("/tokens")
    no_url = http.post(proxy.url, headers={**SERVICE, "Upstream-Method": "GET"})
    assert (no_url.status_code, code(no_url)) == (400, "MISSING_UPSTREAM_URL")
    no_method = http.post(proxy.url, headers={**SERVICE, "Upstream-URL": url})
    assert (no_method.status_code, code(no_method)) == (400, "MISSING_UPSTREAM_METHOD")
    bad = proxy.create("/tokens", method="CONNECT")
    assert (bad.status_code, code(bad)) == (400, "INVALID_UPSTREAM_METHOD")
    assert bad.headers["content-type"] == "application/json"
    assert "message" in bad.json()["error"]
    assert not proxy.upstream.hits


def test_unknown_routes_are_not_found(proxy: Proxy) -> None:
    base = proxy.url.removesuffix("/v1/proxy")
    assert code(http.get(proxy.url, headers=SERVICE)) == "NOT_FOUND"
    assert code(http.get(f"{proxy.url}/a/b", headers=SERVICE)) == "NOT_FOUND"
    assert http.get(f"{base}/v1/proxyx").status_code != 201


# -- the allowlist and redirects (6, 6.1) ---------------------------------------------------------


def test_an_upstream_off_the_allowlist_is_refused_before_any_request(
    make_proxy: Callable[..., Proxy], upstream: Upstream
) -> None:
    proxy = make_proxy(allowlist=[upstream.url("/tokens")])
    assert proxy.create("/tokens").status_code == 201
    for path in ("/echo", "/tokens/more", "/tokens?n=1"):
        refused = proxy.create(path)
        assert (refused.status_code, code(refused)) == (403, "UPSTREAM_NOT_ALLOWED")
    elsewhere = http.post(
        proxy.url,
        headers={**SERVICE, "Upstream-URL": "http://localhost:1/", "Upstream-Method": "GET"},
    )
    assert code(elsewhere) == "UPSTREAM_NOT_ALLOWED"
    assert upstream.hits == {"/tokens": 1}


def test_an_empty_allowlist_refuses_everything(
    make_proxy: Callable[..., Proxy], upstream: Upstream
) -> None:
    proxy = make_proxy(allowlist=[])
    refused = proxy.create("/tokens")
    assert (refused.status_code, code(refused)) == (403, "UPSTREAM_NOT_ALLOWED")
    assert not upstream.hits


def test_a_redirect_is_refused_and_not_followed(proxy: Proxy) -> None:
    refused = proxy.create("/redirect")
    assert (refused.status_code, code(refused)) == (400, "REDIRECT_NOT_ALLOWED")
    assert proxy.upstream.hits["/redirect"] == 1
    assert proxy.upstream.hits["/tokens"] == 0  # its target is allowed, and still not fetched


# -- upstream failures (4.1, 8.1, 11.4) -----------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 429, 500, 503])
def test_an_upstream_error_status_is_a_502_with_its_status_and_body(
    proxy: Proxy, status: int
) -> None:
    answer = proxy.create(f"/status/{status}")
    assert answer.status_code == 502
    assert answer.headers["upstream-status"] == str(status)
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json() == {"error": "upstream says no"}


def test_a_large_upstream_error_body_is_cut(make_proxy: Callable[..., Proxy]) -> None:
    proxy = make_proxy(max_error_bytes=1000)
    answer = proxy.create("/status/500?size=100000")
    assert answer.status_code == 502 and answer.content == b"x" * 1000


def test_an_upstream_slower_than_the_header_timeout_is_a_504(
    make_proxy: Callable[..., Proxy],
) -> None:
    proxy = make_proxy(header_timeout=0.3)
    started = time.monotonic()
    answer = proxy.create("/slow?seconds=20")
    assert (answer.status_code, code(answer)) == (504, "UPSTREAM_TIMEOUT")
    assert time.monotonic() - started < 10


def test_an_unreachable_upstream_is_a_502_without_an_upstream_status(
    make_proxy: Callable[..., Proxy],
) -> None:
    proxy = make_proxy(allowlist=["http://127.0.0.1:1"])
    answer = http.post(
        proxy.url,
        headers={**SERVICE, "Upstream-URL": "http://127.0.0.1:1/x", "Upstream-Method": "GET"},
    )
    assert (answer.status_code, code(answer)) == (502, "UPSTREAM_ERROR")
    assert "upstream-status" not in answer.headers


def test_a_storage_failure_is_a_502_storage_error(upstream: Upstream) -> None:
    from durable_streams.proxy import ProxyApp
    from durable_streams.server import Server

    with Server() as server:
        app = ProxyApp(
            "http://127.0.0.1:1/streams",
            secret=SECRET,
            allowlist=[upstream.origin],
            retry=RetryPolicy(max_retries=1),
        )
        server.mount("/v1/proxy", app)
        answer = http.post(
            f"{server.url}/v1/proxy",
            headers={
                **SERVICE,
                "Upstream-URL": upstream.url("/tokens"),
                "Upstream-Method": "GET",
            },
            timeout=30,
        )
    assert (answer.status_code, code(answer)) == (502, "STORAGE_ERROR")


def test_an_upstream_that_breaks_off_leaves_what_it_sent_in_an_unclosed_stream(
    proxy: Proxy,
) -> None:
    location = proxy.create("/broken").headers["location"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the pipe's end is not observable otherwise
        if not proxy.app._pipes:
            break
        time.sleep(0.02)
    assert not proxy.app._pipes
    answer = http.get(location)
    assert answer.content == tokens(0, 1)
    assert "stream-closed" not in answer.headers  # unfinished, told apart from an end


def test_an_upstream_silent_past_the_idle_timeout_is_cut_and_its_bytes_kept(
    make_proxy: Callable[..., Proxy], upstream: Upstream
) -> None:
    proxy = make_proxy(idle_timeout=0.3)
    location = proxy.create("/held?n=3").headers["location"]
    deadline = time.monotonic() + 20
    while proxy.app._pipes and time.monotonic() < deadline:
        time.sleep(0.02)
    upstream.release.set()
    answer = http.get(location)
    assert answer.content == tokens(0, 0)
    assert "stream-closed" not in answer.headers


# -- pre-signed URLs (7) --------------------------------------------------------------------------


def test_a_read_needs_a_genuine_signature_for_that_stream(proxy: Proxy) -> None:
    first = proxy.create("/tokens?n=2").headers["location"]
    second = proxy.create("/tokens?n=2").headers["location"]
    assert http.get(first).status_code == 200
    signature = parse_qs(urlsplit(first).query)["signature"][0]
    flipped = "AA" if signature[-2:] != "AA" else "BB"
    tampered = with_query(first, signature=signature[:-2] + flipped)
    assert code(http.get(tampered)) == "SIGNATURE_INVALID"
    moved = with_query(first, expires=str(int(parse_qs(urlsplit(first).query)["expires"][0]) + 1))
    assert code(http.get(moved)) == "SIGNATURE_INVALID"
    other = without_query(second) + "?" + urlsplit(first).query  # another stream's signature
    answer = http.get(other)
    assert (answer.status_code, code(answer)) == (401, "SIGNATURE_INVALID")
    no_signature = http.get(without_query(first) + "?expires=99999999999")
    assert (no_signature.status_code, code(no_signature)) == (401, "MISSING_SIGNATURE")


def test_an_expired_url_is_refused_even_with_a_genuine_signature(proxy: Proxy) -> None:
    location = proxy.create("/tokens?n=1").headers["location"]
    stream_id = urlsplit(location).path.rsplit("/", 1)[1]
    stale = proxy.app.signed_url(proxy.url, stream_id, now=time.time() - proxy.app.url_ttl - 5)
    answer = http.get(stale)
    assert (answer.status_code, code(answer)) == (401, "SIGNATURE_EXPIRED")
    patch = http.patch(with_query(stale, action="abort"))
    assert code(patch) == "SIGNATURE_EXPIRED"
    fresh = proxy.app.signed_url(proxy.url, stream_id)
    assert http.get(fresh).status_code == 200


def test_an_unsigned_read_falls_back_to_the_service_secret(proxy: Proxy) -> None:
    location = proxy.create("/tokens?n=3").headers["location"]
    read_all(location)
    bare = without_query(location)
    assert code(http.get(bare)) == "MISSING_SECRET"
    assert code(http.get(bare, headers={"Authorization": "Bearer nope"})) == "INVALID_SECRET"
    served = http.get(bare, headers=SERVICE)
    assert served.status_code == 200 and served.content == tokens(0, 2)
    assert http.get(f"{bare}?secret={SECRET}").content == tokens(0, 2)


def test_head_and_delete_take_the_service_secret_and_not_a_signature(proxy: Proxy) -> None:
    location = proxy.create("/tokens?n=2").headers["location"]
    read_all(location)
    bare = without_query(location)
    assert http.head(location).status_code == 401  # the signature grants no metadata
    assert http.delete(location).status_code == 401
    assert http.get(location).status_code == 200
    assert http.delete(bare, headers=SERVICE).status_code == 204
    gone = http.get(location)
    assert (gone.status_code, code(gone)) == (404, "STREAM_NOT_FOUND")
    assert http.head(bare, headers=SERVICE).status_code == 404
    assert http.delete(bare, headers=SERVICE).status_code == 204  # idempotent


# -- abort (4.3, 8.3) -----------------------------------------------------------------------------


def test_abort_cuts_the_upstream_keeps_what_came_and_ends_the_stream(proxy: Proxy) -> None:
    location = proxy.create("/endless").headers["location"]
    with stream(location, live="long-poll") as response:
        first = next(iter(response.iter_bytes()))
    assert first.startswith(tokens(0, 0))
    aborted = http.patch(with_query(location, action="abort"))
    assert aborted.status_code == 204
    assert proxy.upstream.cut.wait(10)  # the upstream connection was closed
    kept = read_all(location)  # ends: the aborted stream is closed
    sent = proxy.upstream.sent
    assert kept == tokens(0, len(kept.split(b"\n\n")) - 2)  # a whole prefix, in order
    assert tokens(0, 0) in kept and len(kept) <= len(tokens(0, sent))
    assert http.patch(with_query(location, action="abort")).status_code == 204  # idempotent
    assert read_all(location) == kept


def test_delete_aborts_the_upstream_in_flight_and_removes_the_stream(proxy: Proxy) -> None:
    location = proxy.create("/endless").headers["location"]
    with stream(location, live="long-poll") as response:
        assert next(iter(response.iter_bytes())).startswith(tokens(0, 0))
    deleted = http.delete(without_query(location), headers=SERVICE)
    assert deleted.status_code == 204
    assert proxy.upstream.cut.wait(10)
    assert code(http.get(location)) == "STREAM_NOT_FOUND"
    assert not proxy.app._pipes


def test_abort_needs_the_signature_and_the_abort_action(proxy: Proxy) -> None:
    location = proxy.create("/tokens?n=2").headers["location"]
    read_all(location)
    bare = without_query(location)
    refused = http.patch(f"{bare}?action=abort", headers=SERVICE)  # no service fallback
    assert (refused.status_code, code(refused)) == (401, "MISSING_SIGNATURE")
    other = http.patch(with_query(location, action="pause"))
    assert (other.status_code, code(other)) == (400, "INVALID_ACTION")
    assert http.patch(with_query(location, action="abort")).status_code == 204  # finished


# -- CORS (10) ------------------------------------------------------------------------------------


def test_preflight_and_exposed_headers(proxy: Proxy) -> None:
    preflight = http.options(proxy.url, headers={"Origin": "http://app.example"})
    assert preflight.status_code == 204
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for name in ("upstream-url", "upstream-method", "upstream-authorization"):
        assert name in allowed
    created = proxy.create("/tokens?n=1")
    exposed = created.headers["access-control-expose-headers"].lower()
    for name in ("location", "upstream-content-type", "upstream-status", "stream-next-offset"):
        assert name in exposed


def test_a_proxy_shut_down_mid_body_leaves_its_stream_unfinished(
    server_url: str, upstream: Upstream
) -> None:
    from durable_streams.proxy import ProxyApp
    from durable_streams.server import Server

    streams = f"{server_url}/shutdown-{uuid.uuid4().hex}"
    server = Server()
    url = server.start()
    try:
        app = ProxyApp(streams, secret=SECRET, allowlist=[upstream.origin])
        server.mount("/v1/proxy", app)
        created = http.post(
            f"{url}/v1/proxy",
            headers={**SERVICE, "Upstream-URL": upstream.url("/endless"), "Upstream-Method": "GET"},
        )
        location = created.headers["location"]
        with stream(location, live="long-poll") as response:
            assert next(iter(response.iter_bytes())).startswith(tokens(0, 0))
    finally:
        server.close()  # stops the mounted proxy first
    assert upstream.cut.wait(10)
    stored = http.get(f"{streams}/{urlsplit(location).path.rsplit('/', 1)[1]}")
    count = stored.content.count(b"\n\n")
    assert count >= 1 and stored.content == tokens(0, count - 1)
    assert "stream-closed" not in stored.headers  # unlike an abort asked for
