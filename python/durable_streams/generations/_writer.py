"""Writing a generation: every chunk of a source, in order, once, through a producer; then the
stream is closed, after an ``error`` chunk when something failed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from .. import _errors as errors
from .._dispatch_async import AsyncClientLike
from .._options import Headers
from .._writing._handle_async import AsyncDurableStream
from .._writing._producer_async import IdempotentProducer
from ._chunks import DEFAULT_ERROR_TEXT, ChunkFramer, ErrorText, error_chunk, new_id
from ._message import GenerationStatus

__all__ = [
    "CONTENT_TYPE",
    "INTERRUPTED_TEXT",
    "GenerationResult",
    "open_generation",
    "write_generation",
]

CONTENT_TYPE = "application/json"

# What readers see when the writer is stopped (cancelled: a shutdown, a redeploy) mid-way.
INTERRUPTED_TEXT = "The generation was interrupted."

# How long ending a generation may take once its source stopped: delivering what is buffered
# and closing the stream.
DEFAULT_CLOSE_TIMEOUT = 30.0
# An interrupted writer has less: its process is likely on its way out.
INTERRUPTED_CLOSE_TIMEOUT = 5.0

logger = logging.getLogger("durable_streams.generations")


@dataclass(frozen=True)
class GenerationResult:
    """How writing a generation ended.

    ``status`` is what readers of the stream see: ``finished`` (closed after ``finish``),
    ``failed`` (closed after an ``error`` chunk: the source raised ``error``, or the writer
    was interrupted), or ``unfinished`` (the server refused the chunks and the stream could
    not be closed: ``error`` says why). ``final_offset`` is the stream's tail once closed."""

    url: str
    status: GenerationStatus
    chunks: int
    final_offset: str | None = None
    message_id: str | None = None
    error: BaseException | None = None


async def open_generation(
    url: str,
    *,
    create: bool = True,
    ttl_seconds: int | None = None,
    headers: Headers | None = None,
    client: AsyncClientLike | httpx.AsyncClient | None = None,
    timeout: float | httpx.Timeout | None = None,
) -> AsyncDurableStream:
    """A handle on the generation stream at ``url``: created as a JSON stream (an identical
    existing one is accepted) unless ``create=False``, which needs it to exist."""
    if create:
        return await AsyncDurableStream.create(
            url,
            content_type=CONTENT_TYPE,
            ttl_seconds=ttl_seconds,
            headers=headers,
            client=client,
            timeout=timeout,
        )
    return await AsyncDurableStream.connect(url, headers=headers, client=client, timeout=timeout)


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


class _Writer:
    def __init__(
        self, handle: AsyncDurableStream, producer: IdempotentProducer, framer: ChunkFramer
    ) -> None:
        self.handle = handle
        self.producer = producer
        self.framer = framer
        self.chunks = 0

    async def put(self, chunks: list[dict[str, Any]]) -> None:
        producer = self.producer
        for chunk in chunks:
            while True:
                try:
                    producer.append_nowait(chunk)
                    break
                except errors.BufferFullError:
                    await producer.room()
            self.chunks += 1

    async def close(self, timeout: float) -> str | None:
        result = await self.producer.close_stream(timeout=timeout)
        return result.offset

    async def close_without_producer(self, text: str, timeout: float) -> str | None:
        """The producer stopped (the server refused a batch): the stream holds a prefix of
        the chunks. An ``error`` chunk and the close go out on their own, once."""
        with anyio.fail_after(timeout):
            result = await self.handle.close_stream(error_chunk(text))
        return result.offset


async def write_generation(
    source: AsyncIterable[str | Mapping[str, Any]],
    stream: str | AsyncDurableStream,
    *,
    message_id: str | None = None,
    error_text: ErrorText | None = None,
    producer_id: str | None = None,
    linger_ms: float = 5.0,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    create: bool = True,
    ttl_seconds: int | None = None,
    headers: Headers | None = None,
    client: AsyncClientLike | httpx.AsyncClient | None = None,
    timeout: float | httpx.Timeout | None = None,
) -> GenerationResult:
    """Write ``source`` to the generation stream ``stream`` (a URL, or a handle) and close it.

    The source yields text (``str``) or UI message chunks (``dict``), framed as
    :func:`ui_message_chunks` frames them. Chunks go through an :class:`IdempotentProducer`
    (batched every ``linger_ms``, each stored once, in order); when the producer's buffer is
    full (64 MiB waiting for the server), the source waits.

    When the source raises, the chunks before stay, an ``error`` chunk follows with
    ``error_text(exception)`` (default ``"An error occurred."``: exception texts can hold
    what a browser must not see) and the stream is closed; the result says ``failed`` and
    holds the exception, which is also logged. When the server refuses the chunks, the
    stream is closed the same way if it can be; otherwise it stays open, which readers see
    as unfinished. Cancelled (a shutdown), the writer still ends the stream with an ``error``
    chunk within a few seconds if it can, then lets the cancellation go on. Never raises for
    the source or the server; raises for a ``stream`` that cannot be created or opened.
    """
    handle = (
        stream
        if isinstance(stream, AsyncDurableStream)
        else await open_generation(
            stream,
            create=create,
            ttl_seconds=ttl_seconds,
            headers=headers,
            client=client,
            timeout=timeout,
        )
    )
    producer = IdempotentProducer(
        handle,
        producer_id=producer_id or new_id("generation"),
        auto_claim=True,
        linger_ms=linger_ms,
        content_type=CONTENT_TYPE,
    )
    writer = _Writer(handle, producer, ChunkFramer(message_id))
    try:
        return await _write(
            writer, source, error_text or (lambda exc: DEFAULT_ERROR_TEXT), close_timeout
        )
    finally:
        # The sender runs apart from the caller's task (so a cancelled writer can still end
        # the stream); it stops here whatever happened. After a close it has nothing left.
        with anyio.CancelScope(shield=True):
            await producer.abandon(errors.ProducerClosedError("the generation ended"))
        if handle is not stream:
            await handle.aclose()


async def _write(
    writer: _Writer,
    source: AsyncIterable[str | Mapping[str, Any]],
    describe: ErrorText,
    close_timeout: float,
) -> GenerationResult:
    handle, producer = writer.handle, writer.producer
    iterator = aiter(source)
    failure: BaseException | None = None
    server_failure: errors.DurableStreamError | None = None
    try:
        try:
            while not writer.framer.ended:
                try:
                    item = await anext(iterator)
                    chunks = writer.framer.feed(item)
                except StopAsyncIteration:
                    break
                except Exception as exc:  # the source failed: readers are told, below
                    failure = exc
                    break
                await writer.put(chunks)
        except errors.ProducerError as exc:
            server_failure = exc
        finally:
            with anyio.CancelScope(shield=True):
                await _aclose(iterator)
    except BaseException:  # cancelled: end the stream for readers, then go on
        with anyio.CancelScope(shield=True), anyio.move_on_after(INTERRUPTED_CLOSE_TIMEOUT):
            try:
                await writer.put(writer.framer.fail(INTERRUPTED_TEXT))
                await writer.close(INTERRUPTED_CLOSE_TIMEOUT)
            except errors.DurableStreamError as close_exc:
                logger.warning(
                    "could not end the interrupted generation %s: %s", handle.url, close_exc
                )
        raise
    if failure is not None:
        logger.error("the source of generation %s failed", handle.url, exc_info=failure)
    ending = writer.framer.finish() if failure is None else writer.framer.fail(describe(failure))
    message_id = writer.framer.message_id
    if server_failure is None:
        try:
            await writer.put(ending)
            offset = await writer.close(close_timeout)
        except errors.DurableStreamError as exc:
            server_failure = exc
        else:
            status: GenerationStatus = "finished" if failure is None else "failed"
            return GenerationResult(handle.url, status, writer.chunks, offset, message_id, failure)
    failures = list(getattr(server_failure, "failures", []))  # those a flush reported
    with anyio.CancelScope(shield=True):
        failures += await producer.abandon(server_failure)
    if failures:  # what the server refused, rather than "the producer is closed"
        server_failure = failures[0].error
    logger.error("writing generation %s failed: %s", handle.url, server_failure)
    stored = writer.chunks - sum(f.count for f in failures)
    try:
        offset = await writer.close_without_producer(describe(server_failure), close_timeout)
    except (errors.DurableStreamError, TimeoutError) as exc:
        logger.error("could not close generation %s: %s", handle.url, exc)
        return GenerationResult(handle.url, "unfinished", stored, None, message_id, server_failure)
    return GenerationResult(handle.url, "failed", stored + 1, offset, message_id, server_failure)
