"""Resumable generations: a model's answer written to a stream as it is made, so a browser
that reloads, a second tab or another service reads it from the start or from where it
stopped, while it is still being written and after.

A generation stream is a JSON stream of the Vercel AI SDK's UI message chunks (``start``,
``text-start``/``text-delta``/``text-end``, ``reasoning-*``, ``tool-*``, ``finish``,
``error``), the format ``useChat`` reads through ``createDurableChatTransport`` of the npm
package ``@durable-streams/aisdk-transport``: a React front end uses that package unchanged
against a Python backend.

- Backend (Starlette, FastAPI; the ``asgi`` extra): :func:`generation_response` writes a
  source to a stream in the background and answers with where to read it;
  :func:`resume_response` answers "is a generation in flight for this chat".
- Writing without a web framework: :func:`write_generation`; a source yields text (``str``)
  or UI message chunks (``dict``), framed by :func:`ui_message_chunks`.
- Model providers: :func:`openai_chat_chunks`, :func:`openai_responses_chunks` and
  :func:`anthropic_chunks` turn the official SDKs' streams into such chunks.
- Reading from Python: :func:`aread_chunks` (the chunks from an offset) and
  :func:`aread_message` (the message they make, as :class:`GenerationMessage`, and whether
  the generation finished, failed, or is unfinished), and their sync twins
  :func:`read_chunks` and :func:`read_message`; :class:`MessageAssembler` folds chunks
  without I/O.
"""

from __future__ import annotations

from .. import _name_public_module
from .._errors import GenerationError, ModelProviderError
from ._asgi import GenerationMode, generation_response, resume_response
from ._chunks import ChunkFramer, error_chunk, ui_message_chunks
from ._message import GenerationMessage, GenerationStatus, MessageAssembler, ToolCall
from ._providers import (
    AnthropicConverter,
    OpenAIChatConverter,
    OpenAIResponsesConverter,
    anthropic_chunks,
    openai_chat_chunks,
    openai_responses_chunks,
)
from ._reader_async import aread_chunks, aread_message
from ._reader_threaded import read_chunks, read_message
from ._writer import GenerationResult, open_generation, write_generation

__all__ = [
    "AnthropicConverter",
    "ChunkFramer",
    "GenerationError",
    "GenerationMessage",
    "GenerationMode",
    "GenerationResult",
    "GenerationStatus",
    "MessageAssembler",
    "ModelProviderError",
    "OpenAIChatConverter",
    "OpenAIResponsesConverter",
    "ToolCall",
    "anthropic_chunks",
    "aread_chunks",
    "aread_message",
    "error_chunk",
    "generation_response",
    "open_generation",
    "openai_chat_chunks",
    "openai_responses_chunks",
    "read_chunks",
    "read_message",
    "resume_response",
    "ui_message_chunks",
    "write_generation",
]

_name_public_module(globals(), __all__, __name__)
