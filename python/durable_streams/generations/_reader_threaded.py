"""The sync readers of a generation: its chunks through :func:`stream`, and the message on a
loop thread of its own (:func:`aread_message` bounds its wait with a cancel scope, which
blocking code has no equivalent of)."""

from __future__ import annotations

import httpx

from .._dispatch_sync import ClientLike
from .._errors import DeadlineExceededError
from .._loop_thread import LoopThread
from .._options import Headers
from .._protocol import OFFSET_BEGINNING
from .._reading._response_sync import StreamResponse, stream
from ._message import GenerationMessage
from ._reader_async import DEFAULT_WAIT, aread_message

__all__ = ["read_chunks", "read_message"]

# How long the loop thread may take to end once the message is read.
_STOP_TIMEOUT = 5.0


def read_chunks(
    url: str,
    *,
    offset: str = OFFSET_BEGINNING,
    live: bool = True,
    headers: Headers | None = None,
    client: ClientLike | httpx.Client | None = None,
    timeout: float | httpx.Timeout | None = None,
) -> StreamResponse:
    """The chunks of the generation at ``url`` from ``offset``, as :func:`aread_chunks`
    gives them: iterate the response (in ``with``); ``offset`` and ``stream_closed`` as
    there."""
    return stream(
        url,
        offset=offset,
        live="sse" if live else False,
        headers=headers,
        client=client,
        timeout=timeout,
    )


def read_message(
    url: str,
    *,
    live: bool = True,
    wait: float | None = DEFAULT_WAIT,
    headers: Headers | None = None,
    timeout: float | httpx.Timeout | None = None,
) -> GenerationMessage:
    """The message of the generation at ``url`` and how it ended, as :func:`aread_message`
    says (its twin runs on an event loop thread for the call)."""
    runner = LoopThread("durable-streams-generation")
    try:
        return runner.call(
            aread_message(url, live=live, wait=wait, headers=headers, timeout=timeout),
            None,
            lambda: DeadlineExceededError("reading the generation did not finish", url=url),
        )
    finally:
        runner.stop(_STOP_TIMEOUT)
