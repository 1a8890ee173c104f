"""``Server.mount``: an ASGI application answers under its prefix, streamed, and the
protocol's routes stay the server's; an application that fails mid-answer drops the
connection rather than pass a cut answer off as whole."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from durable_streams.server import Server


async def app(scope: Any, receive: Any, send: Any) -> None:
    path = scope["path"]
    if path == "/app/hello":
        body = (await receive())["body"]
        headers = [(b"content-type", b"text/plain"), (b"x-path", path.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hello " + body})
    elif path == "/app/pieces":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"%d;" % i, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/app/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/app/fails":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("the application failed mid-answer")
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def test_a_mounted_application_answers_under_its_prefix(caplog: pytest.LogCaptureFixture) -> None:
    with Server() as server:
        server.mount("/app/", app)
        hello = httpx.post(f"{server.url}/app/hello?x=1", content=b"world")
        assert (hello.status_code, hello.text) == (200, "hello world")
        assert hello.headers["x-path"] == "/app/hello"
        assert httpx.get(f"{server.url}/app/pieces").content == b"0;1;2;3;4;"
        assert httpx.get(f"{server.url}/app/empty").status_code == 204
        assert httpx.head(f"{server.url}/app/hello").status_code == 200
        assert httpx.get(f"{server.url}/app").status_code == 404  # the app's own 404
        # Outside the prefix, the protocol: a stream at /application is the server's.
        assert httpx.put(f"{server.url}/application").status_code == 201
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{server.url}/app/fails").read()
        with pytest.raises(ValueError):
            server.mount("/", app)
    assert "failed mid-answer" in caplog.text or "connection failed" in caplog.text
