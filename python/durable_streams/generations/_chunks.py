"""The chunks of a generation: the AI SDK's UI message stream, one JSON message per chunk.

A generation stream is a JSON stream whose messages are the ``UIMessageChunk`` objects of the
``ai`` npm package (``{"type": "text-delta", "id": ..., "delta": ...}`` and the rest), as
``createDurableChatTransport`` of ``@durable-streams/aisdk-transport`` reads them. How it ended
is in its last chunk: ``finish`` (a normal end), ``error`` (the source or the writer failed)
or ``abort``; a stream not closed is still being written, or its writer died.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_ERROR_TEXT",
    "ChunkFramer",
    "ErrorText",
    "error_chunk",
    "new_id",
    "ui_message_chunks",
]

# What readers see when the source fails, unless the application says more: an exception's
# text can carry what a browser must not show (the AI SDK masks it the same way).
DEFAULT_ERROR_TEXT = "An error occurred."

ErrorText = Callable[[BaseException], str]

# The chunk types that end a message: nothing of the source follows them.
ENDINGS = frozenset({"finish", "error", "abort"})


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def error_chunk(text: str) -> dict[str, Any]:
    """The chunk that ends a failed generation (``useChat`` reports ``errorText``)."""
    return {"type": "error", "errorText": text}


class ChunkFramer:
    """Turns what a source yields into UI message chunks, without I/O.

    A ``str`` is text: consecutive strings form one text part (``text-start``, a
    ``text-delta`` each, ``text-end`` before anything else). A mapping is a UI message chunk
    of its own and passes through unchanged (a copy), so a source may mix plain text with
    reasoning, tool calls or data parts. A ``start`` chunk is added first unless the source
    begins with one (carrying ``message_id``), and ``finish`` last unless the source ended
    with an ending of its own.
    """

    def __init__(self, message_id: str | None = None) -> None:
        self.message_id = message_id or new_id("msg")
        self._started = False
        self._text_id: str | None = None
        self._ended = False

    @property
    def ended(self) -> bool:
        """An ending chunk (finish, error, abort) went out: nothing more may follow."""
        return self._ended

    def feed(self, item: str | Mapping[str, Any]) -> list[dict[str, Any]]:
        if self._ended:
            raise ValueError("the generation already ended; nothing may follow its last chunk")
        out: list[dict[str, Any]] = []
        if isinstance(item, str):
            self._start(out)
            if not item:
                return out
            if self._text_id is None:
                self._text_id = new_id("text")
                out.append({"type": "text-start", "id": self._text_id})
            out.append({"type": "text-delta", "id": self._text_id, "delta": item})
            return out
        if not isinstance(item, Mapping):
            raise TypeError(
                "a generation's source yields str (text) or dict (a UI message chunk), "
                f"not {type(item).__name__}"
            )
        kind = item.get("type")
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"a UI message chunk needs a string 'type', got {dict(item)!r}")
        chunk = dict(item)
        if kind == "start" and not self._started:
            self._started = True
            chunk.setdefault("messageId", self.message_id)
            self.message_id = str(chunk["messageId"])
            out.append(chunk)
            return out
        self._start(out)
        self._end_text(out)
        out.append(chunk)
        if kind in ENDINGS:
            self._ended = True
        return out

    def finish(self) -> list[dict[str, Any]]:
        """The chunks that end a source that ended without an ending of its own."""
        if self._ended:
            return []
        out: list[dict[str, Any]] = []
        self._start(out)
        self._end_text(out)
        out.append({"type": "finish"})
        self._ended = True
        return out

    def fail(self, text: str) -> list[dict[str, Any]]:
        """The chunks that end a failed source: the open text part, then ``error``."""
        if self._ended:
            return []
        out: list[dict[str, Any]] = []
        self._start(out)
        self._end_text(out)
        out.append(error_chunk(text))
        self._ended = True
        return out

    def _start(self, out: list[dict[str, Any]]) -> None:
        if not self._started:
            self._started = True
            out.append({"type": "start", "messageId": self.message_id})

    def _end_text(self, out: list[dict[str, Any]]) -> None:
        if self._text_id is not None:
            out.append({"type": "text-end", "id": self._text_id})
            self._text_id = None


async def ui_message_chunks(
    source: AsyncIterable[str | Mapping[str, Any]], *, message_id: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The UI message chunks of ``source`` (text as ``str``, UI message chunks as ``dict``),
    framed by ``start`` and ``finish`` as :class:`ChunkFramer` says. An exception of the source
    propagates after the chunks before it."""
    framer = ChunkFramer(message_id)
    async for item in source:
        for chunk in framer.feed(item):
            yield chunk
    for chunk in framer.finish():
        yield chunk
