"""The HTTP side of a resumable generation for Starlette and FastAPI (and so any ASGI server):
the answer to "generate" and to "is a generation in flight for this chat", as
``createDurableChatTransport`` of ``@durable-streams/aisdk-transport`` reads them.

Starlette is imported when a response is made, so the rest of the package works without the
``asgi`` extra.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import anyio.abc
import httpx

from .. import _errors as errors
from .._dispatch_async import AsyncClientLike
from .._options import Headers
from .._writing._handle_async import AsyncDurableStream
from ._chunks import ErrorText
from ._writer import GenerationResult, open_generation, write_generation

if TYPE_CHECKING:
    from starlette.responses import Response

__all__ = ["GenerationMode", "OnDone", "generation_response", "resume_response"]

GenerationMode = Literal["immediate", "await"]
OnDone = Callable[[GenerationResult], "Awaitable[None] | None"]

# The transport reads Location from a browser's cross-origin fetch only if it is exposed.
_POINTER_HEADERS = {"Cache-Control": "no-store", "Access-Control-Expose-Headers": "Location"}


def _pointer(read_url: str, status: int, body: dict[str, Any]) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse(
        body, status_code=status, headers={"Location": read_url, **_POINTER_HEADERS}
    )


async def _finish(result: GenerationResult, on_done: OnDone | None) -> None:
    if on_done is not None:
        outcome = on_done(result)
        if inspect.isawaitable(outcome):
            await outcome


async def generation_response(
    source: AsyncIterable[str | Mapping[str, Any]],
    stream_url: str,
    *,
    read_url: str | None = None,
    mode: GenerationMode = "immediate",
    task_group: anyio.abc.TaskGroup | None = None,
    on_done: OnDone | None = None,
    message_id: str | None = None,
    error_text: ErrorText | None = None,
    linger_ms: float = 5.0,
    create: bool = True,
    ttl_seconds: int | None = None,
    headers: Headers | None = None,
    client: AsyncClientLike | httpx.AsyncClient | None = None,
    timeout: float | httpx.Timeout | None = None,
) -> Response:
    """Start writing ``source`` to the generation stream at ``stream_url`` and answer with
    where to read it.

    The stream is created first (a JSON stream; ``create=False`` needs it to exist), so a
    stream that cannot be made raises here, before any answer. Then, with ``mode``:

    - ``"immediate"``: answers ``201`` at once, with ``Location: <read_url>`` and
      ``{"streamUrl": <read_url>}``; the writing goes on after the answer is sent, as a
      Starlette background task, or in ``task_group`` (one the application keeps open, such
      as its lifespan's) when given: then a shutdown that cancels that group lets each
      generation end its stream as interrupted, where a server cancelling a background task
      outright can leave it unfinished.
    - ``"await"``: writes everything, then answers ``200`` with the same ``Location`` and
      ``{"streamUrl": ..., "finalOffset": ...}``, for hosts that keep work alive only while
      a request is open.

    ``read_url`` is the URL browsers read (a proxy in front of the streams server, say);
    ``stream_url`` by default. Writing is :func:`write_generation`'s, with the same
    ``message_id``, ``error_text``, ``linger_ms`` and connection options; ``on_done(result)``
    (plain or async) is called with its :class:`GenerationResult` once the stream is
    closed (or given up on), to clear the chat's active generation, for example.
    """
    if mode not in ("immediate", "await"):
        raise errors.UsageError(f"mode must be 'immediate' or 'await', not {mode!r}")
    read_url = read_url or stream_url
    handle = await open_generation(
        stream_url,
        create=create,
        ttl_seconds=ttl_seconds,
        headers=headers,
        client=client,
        timeout=timeout,
    )

    async def write() -> GenerationResult:
        result = await write_generation(
            source,
            handle,
            message_id=message_id,
            error_text=error_text,
            linger_ms=linger_ms,
        )
        await _finish(result, on_done)
        return result

    if mode == "await":
        result = await write()
        return _pointer(read_url, 200, {"streamUrl": read_url, "finalOffset": result.final_offset})

    async def write_in_background() -> None:
        await write()

    from starlette.background import BackgroundTask

    response = _pointer(read_url, 201, {"streamUrl": read_url})
    if task_group is not None:
        task_group.start_soon(write_in_background)
    else:
        response.background = BackgroundTask(write_in_background)
    return response


async def resume_response(
    stream_url: str | None,
    *,
    read_url: str | None = None,
    check: bool = True,
    headers: Headers | None = None,
    client: AsyncClientLike | httpx.AsyncClient | None = None,
    timeout: float | httpx.Timeout | None = None,
) -> Response:
    """The answer to "is a generation in flight for this chat" (``GET /api/chat/{id}/stream``
    for the AI SDK transport): ``204`` when ``stream_url`` is None, else ``200`` with
    ``Location: <read_url>`` and ``{"streamUrl": <read_url>}`` (``read_url`` defaults to
    ``stream_url``). With ``check`` (the default) the stream is asked first: one that is
    closed (the generation ended) or gone also answers ``204``, so a chat whose active
    generation was not cleared is not replayed."""
    from starlette.responses import Response

    if stream_url is None:
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    if check:
        handle = AsyncDurableStream(stream_url, headers=headers, client=client, timeout=timeout)
        try:
            head = await handle.head()
        except errors.StreamNotFoundError:
            return Response(status_code=204, headers={"Cache-Control": "no-store"})
        finally:
            await handle.aclose()
        if head.closed:
            return Response(status_code=204, headers={"Cache-Control": "no-store"})
    read_url = read_url or stream_url
    return _pointer(read_url, 200, {"streamUrl": read_url})
