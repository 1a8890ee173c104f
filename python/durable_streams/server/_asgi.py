"""ASGI applications hosted by the embedded server under a path prefix (the durable proxy
for ``durable-streams serve``): a request becomes an ASGI ``http`` scope, and what the
application sends becomes the answer, streamed while it comes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from ._http import Request, Response

__all__ = ["ASGIApp", "call_asgi"]

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]

_FINISH = 5.0  # for an application that has answered without a body to return
_QUEUE = 16  # body pieces waiting for a slow reader before the application is held up


async def call_asgi(app: ASGIApp, request: Request, server: tuple[str, int]) -> Response:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode("latin-1"),
        "query_string": request.query.encode("latin-1"),
        "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()],
        "client": None,
        "server": server,
    }
    loop = asyncio.get_running_loop()
    start: asyncio.Future[MutableMapping[str, Any]] = loop.create_future()
    pieces: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUE)
    gone = asyncio.Event()
    request_sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if gone.is_set():
            raise OSError("the client went away")
        if message["type"] == "http.response.start":
            start.set_result(message)
        elif message["type"] == "http.response.body":
            body = bytes(message.get("body", b""))
            if body:
                await pieces.put(body)
            if not message.get("more_body", False):
                await pieces.put(None)

    task: asyncio.Future[None] = asyncio.ensure_future(app(scope, receive, send))
    racing: set[asyncio.Future[Any]] = {start, task}
    await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
    if not start.done():
        gone.set()
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
        return Response(500, [("content-type", "text/plain")], b"the application sent nothing")
    head = start.result()
    headers = [(bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in head["headers"]]

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                if task.done() and pieces.empty():
                    # Ended without finishing its answer: the connection is dropped rather
                    # than the answer passed off as whole.
                    if task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                    raise OSError("the application ended without finishing its answer")
                get = asyncio.ensure_future(pieces.get())
                waiting: set[asyncio.Future[Any]] = {get, task}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    continue
                piece = get.result()
                if piece is None:
                    return
                yield piece
        finally:
            gone.set()
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task

    if request.method == "HEAD" or head["status"] in (204, 304):
        with contextlib.suppress(Exception):  # nothing to send: the application has to finish
            await asyncio.wait_for(task, _FINISH)
        return Response(head["status"], headers)
    return Response(head["status"], headers, stream=body())
