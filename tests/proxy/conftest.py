"""Fixtures of the proxy tests: a scripted upstream, and the proxy hosted by an embedded
server, keeping its streams on the reference server or on that embedded server itself."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from durable_streams.proxy import ProxyApp
from durable_streams.server import Server

from .upstream import Upstream

SECRET = "test-proxy-secret"
WAIT = 30.0  # for one request on a machine shared with other test runs


class http:
    """httpx's request functions with a deadline fit for a loaded machine (httpx's is 5 s)."""

    get = staticmethod(functools.partial(httpx.get, timeout=WAIT))
    head = staticmethod(functools.partial(httpx.head, timeout=WAIT))
    post = staticmethod(functools.partial(httpx.post, timeout=WAIT))
    patch = staticmethod(functools.partial(httpx.patch, timeout=WAIT))
    delete = staticmethod(functools.partial(httpx.delete, timeout=WAIT))
    options = staticmethod(functools.partial(httpx.options, timeout=WAIT))


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    running = Upstream()
    try:
        yield running
    finally:
        running.close()


@dataclass
class Proxy:
    url: str  # the POST route
    app: ProxyApp
    upstream: Upstream

    def create(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        auth: bool = True,
    ) -> httpx.Response:
        sent = {"Upstream-URL": self.upstream.url(path), "Upstream-Method": method}
        if auth:
            sent["Authorization"] = f"Bearer {SECRET}"
        sent.update(headers or {})
        return http.post(self.url, headers=sent, content=content)


@pytest.fixture(params=["reference", "embedded"])
def backend(request: pytest.FixtureRequest) -> str | None:
    """Where the proxy keeps its streams: a URL on the reference server, or None for the
    embedded server that hosts the proxy."""
    if request.param == "embedded":
        return None
    server_url: str = request.getfixturevalue("server_url")
    return f"{server_url}/proxy-{uuid.uuid4().hex}"


@pytest.fixture
def make_proxy(backend: str | None, upstream: Upstream) -> Iterator[Callable[..., Proxy]]:
    servers: list[Server] = []

    def make(**settings: Any) -> Proxy:
        server = Server(long_poll_timeout=1.0)
        servers.append(server)
        url = server.start()
        settings.setdefault("allowlist", [upstream.origin])
        app = ProxyApp(backend or f"{url}/v1/stream/proxy", secret=SECRET, **settings)
        server.mount("/v1/proxy", app)
        return Proxy(f"{url}/v1/proxy", app, upstream)

    try:
        yield make
    finally:
        upstream.stop.set()
        upstream.release.set()
        for server in servers:
            server.close()


@pytest.fixture
def proxy(make_proxy: Callable[..., Proxy]) -> Proxy:
    return make_proxy()
