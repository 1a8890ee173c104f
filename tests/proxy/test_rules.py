"""The proxy's decisions without I/O: the allowlist's syntax, the signatures of read URLs,
the headers that go upstream; and the ASGI application's own surface."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from durable_streams import UsageError
from durable_streams.proxy import Allowlist, ProxyApp
from durable_streams.proxy._rules import sign, signature_problem, upstream_headers

SECRET = b"k" * 32


def test_an_origin_allows_every_url_on_it_and_nothing_else() -> None:
    allow = Allowlist(["https://api.example.com"])
    assert allow.allows("https://api.example.com/v1/chat?stream=true")
    assert allow.allows("https://API.Example.com:443/")
    assert allow.allows("https://api.example.com")
    for refused in (
        "http://api.example.com/v1",  # another scheme
        "https://api.example.com:8443/v1",  # another port
        "https://api.example.com.evil.net/v1",
        "https://evil.net/https://api.example.com/",
        "https://api.example.com@evil.net/v1",  # user info
        "https://user@api.example.com/v1",
        "ftp://api.example.com/",
        "/v1/chat",
        "https://api.example.com\\@evil.net/",
        "not a url",
    ):
        assert not allow.allows(refused), refused


def test_stars_match_within_a_segment_and_double_stars_across() -> None:
    allow = Allowlist(["https://*.example.com/v1/*/stream", "http://127.0.0.1:8080/api/**"])
    assert allow.allows("https://eu.example.com/v1/chat/stream")
    assert not allow.allows("https://eu.example.com/v1/chat/x/stream")
    assert not allow.allows("https://eu.example.com/v1/chat/stream/more")
    assert not allow.allows("https://example.com/v1/chat/stream")
    assert allow.allows("http://127.0.0.1:8080/api/a/b/c?x=1")
    assert not allow.allows("http://127.0.0.1:8080/apix")
    assert not allow.allows("http://127.0.0.1:8081/api/a")


def test_an_empty_allowlist_allows_nothing_and_bad_entries_are_refused() -> None:
    assert not Allowlist([]).allows("https://api.example.com/")
    for bad in ("api.example.com", "ftp://x/", "https://", "https://a@b/"):
        with pytest.raises(ValueError):
            Allowlist([bad])


def test_a_signature_is_bound_to_its_stream_and_expiry() -> None:
    now = time.time()
    expires = int(now) + 60
    good = sign(SECRET, "abc", expires)
    assert signature_problem(SECRET, "abc", str(expires), good, now) is None
    assert signature_problem(SECRET, "abd", str(expires), good, now) == "SIGNATURE_INVALID"
    assert signature_problem(SECRET, "abc", str(expires + 1), good, now) == "SIGNATURE_INVALID"
    assert signature_problem(b"other", "abc", str(expires), good, now) == "SIGNATURE_INVALID"
    assert signature_problem(SECRET, "abc", str(expires), good + "x", now) == "SIGNATURE_INVALID"
    assert signature_problem(SECRET, "abc", "12x", good, now) == "SIGNATURE_INVALID"
    assert signature_problem(SECRET, "abc", str(expires), good, expires) == "SIGNATURE_EXPIRED"
    assert signature_problem(SECRET, "abc", None, good, now) == "MISSING_SIGNATURE"
    assert signature_problem(SECRET, "abc", str(expires), "", now) == "MISSING_SIGNATURE"
    assert "=" not in good and "+" not in good and "/" not in good  # URL-safe as it is


def test_hop_by_hop_and_proxy_headers_stay_behind() -> None:
    sent = upstream_headers(
        [
            ("Host", "proxy"),
            ("Authorization", "Bearer proxy-secret"),
            ("Upstream-Authorization", "Bearer key"),
            ("Upstream-URL", "https://x/"),
            ("Upstream-Method", "POST"),
            ("Connection", "close"),
            ("Keep-Alive", "5"),
            ("Proxy-Authenticate", "x"),
            ("Proxy-Authorization", "x"),
            ("TE", "trailers"),
            ("Trailers", "x"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("Content-Length", "3"),
            ("Content-Type", "application/json"),
            ("X-Request-Id", "r-1"),
        ]
    )
    assert sent == [
        ("authorization", "Bearer key"),
        ("Content-Type", "application/json"),
        ("X-Request-Id", "r-1"),
    ]


def test_the_app_checks_its_settings() -> None:
    with pytest.raises(UsageError):
        ProxyApp("http://127.0.0.1:1/s", secret="", allowlist=[])
    with pytest.raises(UsageError):
        ProxyApp("not a url", secret="s", allowlist=[])
    with pytest.raises(UsageError):
        ProxyApp("http://127.0.0.1:1/s", secret="s", allowlist=[], header_timeout=0)
    with pytest.raises(UsageError):
        ProxyApp("http://127.0.0.1:1/s", secret="s", allowlist="https://api.example.com")
    with pytest.raises(ValueError):
        ProxyApp("http://127.0.0.1:1/s", secret="s", allowlist=["api.example.com"])


def test_the_app_speaks_asgi_lifespan_and_refuses_other_scopes() -> None:
    app = ProxyApp("http://127.0.0.1:1/s", secret="s", allowlist=[])
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    async def run() -> None:
        await app({"type": "lifespan"}, receive, send)
        with pytest.raises(RuntimeError):
            await app({"type": "websocket"}, receive, send)

    asyncio.run(run())
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


def test_the_app_runs_under_another_asgi_host(server_url: str) -> None:
    """httpx's ASGITransport calls the app as any ASGI server would, with no server of ours
    in between; the streams live on the reference server."""
    import uuid

    import httpx

    from .upstream import Upstream, tokens

    upstream = Upstream()

    async def run() -> None:
        app = ProxyApp(
            f"{server_url}/asgi-{uuid.uuid4().hex}", secret="s", allowlist=[upstream.origin]
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy.test") as http:
            created = await http.post(
                "/v1/proxy",
                headers={
                    "Authorization": "Bearer s",
                    "Upstream-URL": upstream.url("/tokens?n=4"),
                    "Upstream-Method": "GET",
                },
            )
            assert created.status_code == 201
            location = created.headers["location"]
            assert location.startswith("http://proxy.test/v1/proxy/")
            while app._pipes:  # the pipe runs in this event loop
                await asyncio.sleep(0.01)
            read = await http.get(location)
            assert read.status_code == 200 and read.content == tokens(0, 3)
            assert read.headers["stream-closed"] == "true"
            assert read.headers["upstream-content-type"] == "text/event-stream"
            refused = await http.get(location.replace("signature=", "signature=x"))
            assert refused.json()["error"]["code"] == "SIGNATURE_INVALID"
        await app.aclose()

    try:
        asyncio.run(asyncio.wait_for(run(), 30))
    finally:
        upstream.close()
