"""Reading a generation from Python: its chunks from an offset, and the message they make."""

from __future__ import annotations

import anyio
import httpx

from .._dispatch_async import AsyncClientLike
from .._errors import GenerationError
from .._options import Headers
from .._protocol import OFFSET_BEGINNING
from .._reading._response_async import AsyncStreamResponse, astream
from ._message import GenerationMessage, MessageAssembler

__all__ = ["DEFAULT_WAIT", "aread_chunks", "aread_message"]

# How long aread_message follows a generation still being written, by default.
DEFAULT_WAIT = 300.0


def aread_chunks(
    url: str,
    *,
    offset: str = OFFSET_BEGINNING,
    live: bool = True,
    headers: Headers | None = None,
    client: AsyncClientLike | httpx.AsyncClient | None = None,
    timeout: float | httpx.Timeout | None = None,
) -> AsyncStreamResponse:
    """The chunks of the generation at ``url`` from ``offset``: iterate the response (in
    ``async with``) for each chunk, a ``dict``. ``live`` follows the generation over SSE until
    its stream is closed; ``live=False`` stops at what is written so far. The response's
    ``offset`` is where to resume: after the last batch handed out in full (the chunks the
    writer sent together share one offset, so resuming inside a batch repeats its first
    chunks). ``stream_closed`` says the writer closed the stream (a stream never closed is
    still being written, or its writer died)."""
    return astream(
        url,
        offset=offset,
        live="sse" if live else False,
        headers=headers,
        client=client,
        timeout=timeout,
    )


async def aread_message(
    url: str,
    *,
    live: bool = True,
    wait: float | None = DEFAULT_WAIT,
    headers: Headers | None = None,
    client: AsyncClientLike | httpx.AsyncClient | None = None,
    timeout: float | httpx.Timeout | None = None,
) -> GenerationMessage:
    """The assistant message of the generation at ``url``, assembled as ``useChat`` assembles
    it, and how the generation ended (:class:`GenerationMessage`).

    ``live`` waits for the writer to close the stream, at most ``wait`` seconds (``None``: no
    bound); ``live=False`` takes what is written now. Either way, a generation that has not
    ended comes back with ``status="unfinished"`` and ``closed=False``: a reader tells a
    finished generation (``finished``), a failed one (``failed``, with ``error_text``) and one
    still running or abandoned by a dead writer (``unfinished``) apart. A chunk that does not
    fit the message raises :class:`GenerationError`."""
    assembler = MessageAssembler()
    async with aread_chunks(
        url, live=live, headers=headers, client=client, timeout=timeout
    ) as response:
        with anyio.move_on_after(wait):
            async for chunk in response:
                try:
                    assembler.feed(chunk)
                except GenerationError as exc:
                    raise exc.with_context(url=url, offset=response.offset) from None
        return assembler.result(closed=response.stream_closed, offset=response.offset)
