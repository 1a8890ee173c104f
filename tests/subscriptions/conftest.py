"""Subscription tests run against the reference server and the embedded one, both with
webhook delivery enabled (pull-wake works either way); streams live under the stream root,
/v1/stream."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from launch import ReferenceServer

WAIT = 10.0  # the longest any test waits for the server to do something


@pytest.fixture(scope="session", params=["reference", "embedded"])
def subs_server(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "embedded":
        from durable_streams.testing import local_server

        with local_server(long_poll_timeout=1.0, webhooks=True) as url:
            yield url
    else:
        with ReferenceServer(long_poll_timeout_ms=1000, webhooks=True) as server:
            yield server.url


@pytest.fixture
def root(subs_server: str) -> str:
    return f"{subs_server}/v1/stream"


@pytest.fixture
def prefix() -> str:
    """A path prefix of this test's own: patterns under it match only its streams."""
    return f"t{uuid.uuid4().hex[:12]}"


class Receiver:
    """A webhook endpoint on 127.0.0.1: records each request's headers and raw body and
    answers 200 with ``reply`` (JSON)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.reply: Any = {}
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = json.dumps(receiver.reply).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                with receiver._arrived:
                    receiver.requests.append((headers, body))
                    receiver._arrived.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait(self, count: int = 1, timeout: float = WAIT) -> tuple[dict[str, str], bytes]:
        """The ``count``-th request, once it has arrived."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"no webhook request {count} within {timeout} s")
            return self.requests[count - 1]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=WAIT)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
