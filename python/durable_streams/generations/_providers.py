"""Model providers' streaming events as UI message chunks: the ``openai`` SDK's Chat
Completions chunks and Responses events, and the ``anthropic`` SDK's Messages events.

The converters read the SDKs' event objects by attribute (as the SDKs document them) and
import neither SDK, so they cost nothing to those who use neither. Each is a class that
turns one event into chunks without I/O, and an async generator over an SDK stream.
A failure the provider reports inside the stream (Responses' ``error`` and
``response.failed``) raises :class:`ModelProviderError`; one the SDK raises itself (an
error event of Chat Completions or Messages) propagates as the SDK's exception. Either way
the writer ends the generation with an ``error`` chunk.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from .._errors import ModelProviderError
from ._chunks import new_id

__all__ = [
    "AnthropicConverter",
    "OpenAIChatConverter",
    "OpenAIResponsesConverter",
    "anthropic_chunks",
    "openai_chat_chunks",
    "openai_responses_chunks",
]

Chunk = dict[str, Any]

CHAT_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
    "content_filter": "content-filter",
}
ANTHROPIC_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool-calls",
    "refusal": "content-filter",
}


def _input(text: str, call_id: str, name: str, **extra: Any) -> Chunk:
    """The chunk that completes a streamed tool input: available if it is JSON (empty is
    ``{}``), an input error otherwise."""
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return {
            "type": "tool-input-error",
            "toolCallId": call_id,
            "toolName": name,
            "input": text,
            "errorText": "the model's tool input is not valid JSON",
            **extra,
        }
    return {
        "type": "tool-input-available",
        "toolCallId": call_id,
        "toolName": name,
        "input": value,
        **extra,
    }


class _Parts:
    """The text and reasoning parts open now, closed in order when something else starts."""

    def __init__(self) -> None:
        self.text: str | None = None
        self.reasoning: str | None = None

    def text_delta(self, delta: str) -> list[Chunk]:
        out = self.close_reasoning()
        if self.text is None:
            self.text = new_id("text")
            out.append({"type": "text-start", "id": self.text})
        out.append({"type": "text-delta", "id": self.text, "delta": delta})
        return out

    def reasoning_delta(self, delta: str) -> list[Chunk]:
        out = self.close_text()
        if self.reasoning is None:
            self.reasoning = new_id("reasoning")
            out.append({"type": "reasoning-start", "id": self.reasoning})
        out.append({"type": "reasoning-delta", "id": self.reasoning, "delta": delta})
        return out

    def close_text(self) -> list[Chunk]:
        if self.text is None:
            return []
        chunk = {"type": "text-end", "id": self.text}
        self.text = None
        return [chunk]

    def close_reasoning(self) -> list[Chunk]:
        if self.reasoning is None:
            return []
        chunk = {"type": "reasoning-end", "id": self.reasoning}
        self.reasoning = None
        return [chunk]

    def close(self) -> list[Chunk]:
        return self.close_reasoning() + self.close_text()


class OpenAIChatConverter:
    """``ChatCompletionChunk`` objects (``stream=True``) to UI message chunks: the first
    choice's content as text, ``reasoning_content`` (sent by compatible servers) as
    reasoning, tool call deltas as streamed tool inputs, the finish reason as ``finish``."""

    def __init__(self) -> None:
        self._parts = _Parts()
        self._calls: dict[int, dict[str, str]] = {}
        self._finish_reason: str | None = None
        self._started = False

    def feed(self, event: Any) -> list[Chunk]:
        out: list[Chunk] = []
        if not self._started:
            self._started = True
            out.append({"type": "start-step"})
        for choice in getattr(event, "choices", None) or []:
            if getattr(choice, "index", 0) != 0:
                continue
            delta = getattr(choice, "delta", None)
            if delta is not None:
                reasoning = getattr(delta, "reasoning_content", None)
                if isinstance(reasoning, str) and reasoning:
                    out += self._parts.reasoning_delta(reasoning)
                content = getattr(delta, "content", None)
                if content:
                    out += self._parts.text_delta(content)
                for call in getattr(delta, "tool_calls", None) or []:
                    out += self._tool_delta(call)
            if getattr(choice, "finish_reason", None):
                self._finish_reason = choice.finish_reason
        return out

    def _tool_delta(self, call: Any) -> list[Chunk]:
        out = self._parts.close()
        function = getattr(call, "function", None)
        entry = self._calls.get(call.index)
        if entry is None:
            entry = {
                "id": getattr(call, "id", None) or new_id("call"),
                "name": getattr(function, "name", None) or "",
                "arguments": "",
            }
            self._calls[call.index] = entry
            out.append(
                {"type": "tool-input-start", "toolCallId": entry["id"], "toolName": entry["name"]}
            )
        arguments = getattr(function, "arguments", None)
        if arguments:
            entry["arguments"] += arguments
            out.append(
                {"type": "tool-input-delta", "toolCallId": entry["id"], "inputTextDelta": arguments}
            )
        return out

    def end(self) -> list[Chunk]:
        out = self._parts.close()
        for entry in self._calls.values():
            out.append(_input(entry["arguments"], entry["id"], entry["name"]))
        if self._started:
            out.append({"type": "finish-step"})
        finish: Chunk = {"type": "finish"}
        if self._finish_reason is not None:
            finish["finishReason"] = CHAT_FINISH.get(self._finish_reason, "other")
        out.append(finish)
        return out


class OpenAIResponsesConverter:
    """Responses API stream events (``stream=True``) to UI message chunks: output text,
    reasoning (summary or full text), refusals as text, function calls as streamed tool
    inputs; ``response.completed`` / ``response.incomplete`` as ``finish``."""

    def __init__(self) -> None:
        self._text: dict[str, str] = {}  # item id -> open text part id
        self._reasoning: dict[str, str] = {}  # item id + index -> open reasoning part id
        self._calls: dict[str, dict[str, str]] = {}  # item id -> the call
        self._finish_reason: str | None = None
        self._started = False

    def feed(self, event: Any) -> list[Chunk]:
        out: list[Chunk] = []
        kind = getattr(event, "type", None)
        if not self._started:
            self._started = True
            out.append({"type": "start-step"})
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            item = event.item_id
            if item not in self._text:
                self._text[item] = new_id("text")
                out.append({"type": "text-start", "id": self._text[item]})
            out.append({"type": "text-delta", "id": self._text[item], "delta": event.delta})
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            key = f"{event.item_id}:{getattr(event, 'summary_index', None)}"
            key += f":{getattr(event, 'content_index', None)}"
            if key not in self._reasoning:
                self._reasoning[key] = new_id("reasoning")
                out.append({"type": "reasoning-start", "id": self._reasoning[key]})
            out.append(
                {"type": "reasoning-delta", "id": self._reasoning[key], "delta": event.delta}
            )
        elif kind == "response.output_item.added":
            item = event.item
            if getattr(item, "type", None) == "function_call":
                added = {"id": item.call_id, "name": item.name, "arguments": ""}
                self._calls[str(getattr(item, "id", None) or item.call_id)] = added
                out.append(
                    {
                        "type": "tool-input-start",
                        "toolCallId": added["id"],
                        "toolName": added["name"],
                    }
                )
        elif kind == "response.function_call_arguments.delta":
            call = self._calls.get(event.item_id)
            if call is not None:
                call["arguments"] += event.delta
                out.append(
                    {
                        "type": "tool-input-delta",
                        "toolCallId": call["id"],
                        "inputTextDelta": event.delta,
                    }
                )
        elif kind == "response.output_item.done":
            out += self._item_done(event.item)
        elif kind == "response.completed":
            self._finish_reason = "tool-calls" if self._calls else "stop"
        elif kind == "response.incomplete":
            details = getattr(event.response, "incomplete_details", None)
            reason = getattr(details, "reason", None)
            self._finish_reason = {
                "max_output_tokens": "length",
                "content_filter": "content-filter",
            }.get(str(reason), "other")
        elif kind == "response.failed":
            error = getattr(event.response, "error", None)
            raise ModelProviderError(
                f"the response failed: {getattr(error, 'message', None) or 'no reason given'}"
            )
        elif kind == "error":
            raise ModelProviderError(
                f"the provider reported an error: {getattr(event, 'message', None)}"
            )
        return out

    def _item_done(self, item: Any) -> list[Chunk]:
        out: list[Chunk] = []
        item_id = str(getattr(item, "id", None))
        for key in [k for k in self._reasoning if k.startswith(f"{item_id}:")]:
            out.append({"type": "reasoning-end", "id": self._reasoning.pop(key)})
        if item_id in self._text:
            out.append({"type": "text-end", "id": self._text.pop(item_id)})
        if getattr(item, "type", None) == "function_call":
            call = self._calls.get(str(getattr(item, "id", None) or item.call_id))
            if call is not None:
                arguments = getattr(item, "arguments", None)
                out.append(
                    _input(
                        arguments if isinstance(arguments, str) else call["arguments"],
                        call["id"],
                        call["name"],
                    )
                )
        return out

    def end(self) -> list[Chunk]:
        out: list[Chunk] = [{"type": "reasoning-end", "id": i} for i in self._reasoning.values()]
        out += [{"type": "text-end", "id": i} for i in self._text.values()]
        self._reasoning, self._text = {}, {}
        if self._started:
            out.append({"type": "finish-step"})
        finish: Chunk = {"type": "finish"}
        if self._finish_reason is not None:
            finish["finishReason"] = self._finish_reason
        out.append(finish)
        return out


class AnthropicConverter:
    """Messages API stream events (``stream=True``, or the events of ``messages.stream()``)
    to UI message chunks: text blocks as text, thinking blocks as reasoning, ``tool_use``
    blocks as streamed tool inputs (``server_tool_use`` ones marked provider-executed), the
    stop reason as ``finish``. The helper's derived events (``text``, ``input_json``, ...)
    repeat the raw ones and are skipped."""

    def __init__(self) -> None:
        self._blocks: dict[int, dict[str, Any]] = {}
        self._finish_reason: str | None = None
        self._steps = 0

    def feed(self, event: Any) -> list[Chunk]:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            self._steps += 1
            return [{"type": "start-step"}]
        if kind == "content_block_start":
            return self._start(event.index, event.content_block)
        if kind == "content_block_delta":
            return self._delta(event.index, event.delta)
        if kind == "content_block_stop":
            return self._stop(event.index)
        if kind == "message_delta":
            reason = getattr(getattr(event, "delta", None), "stop_reason", None)
            if reason is not None:
                self._finish_reason = ANTHROPIC_FINISH.get(str(reason), "other")
            return []
        if kind == "message_stop":
            return [{"type": "finish-step"}]
        return []

    def _start(self, index: int, block: Any) -> list[Chunk]:
        kind = getattr(block, "type", None)
        entry: dict[str, Any]
        if kind == "text":
            entry = {"kind": "text", "id": new_id("text")}
            self._blocks[index] = entry
            out: list[Chunk] = [{"type": "text-start", "id": entry["id"]}]
            if getattr(block, "text", ""):
                out.append({"type": "text-delta", "id": entry["id"], "delta": block.text})
            return out
        if kind == "thinking":
            entry = {"kind": "reasoning", "id": new_id("reasoning")}
            self._blocks[index] = entry
            return [{"type": "reasoning-start", "id": entry["id"]}]
        if kind in ("tool_use", "server_tool_use"):
            entry = {
                "kind": "tool",
                "id": block.id,
                "name": block.name,
                "json": "",
                "extra": {"providerExecuted": True} if kind == "server_tool_use" else {},
            }
            self._blocks[index] = entry
            return [
                {
                    "type": "tool-input-start",
                    "toolCallId": block.id,
                    "toolName": block.name,
                    **entry["extra"],
                }
            ]
        return []

    def _delta(self, index: int, delta: Any) -> list[Chunk]:
        entry = self._blocks.get(index)
        kind = getattr(delta, "type", None)
        if entry is None:
            return []
        if kind == "text_delta" and entry["kind"] == "text":
            return [{"type": "text-delta", "id": entry["id"], "delta": delta.text}]
        if kind == "thinking_delta" and entry["kind"] == "reasoning":
            return [{"type": "reasoning-delta", "id": entry["id"], "delta": delta.thinking}]
        if kind == "input_json_delta" and entry["kind"] == "tool":
            entry["json"] += delta.partial_json
            return [
                {
                    "type": "tool-input-delta",
                    "toolCallId": entry["id"],
                    "inputTextDelta": delta.partial_json,
                }
            ]
        return []

    def _stop(self, index: int) -> list[Chunk]:
        entry = self._blocks.pop(index, None)
        if entry is None:
            return []
        if entry["kind"] == "text":
            return [{"type": "text-end", "id": entry["id"]}]
        if entry["kind"] == "reasoning":
            return [{"type": "reasoning-end", "id": entry["id"]}]
        return [_input(entry["json"], entry["id"], entry["name"], **entry["extra"])]

    def end(self) -> list[Chunk]:
        out: list[Chunk] = []
        for index in list(self._blocks):
            out += self._stop(index)
        finish: Chunk = {"type": "finish"}
        if self._finish_reason is not None:
            finish["finishReason"] = self._finish_reason
        out.append(finish)
        return out


async def _convert(
    converter: OpenAIChatConverter | OpenAIResponsesConverter | AnthropicConverter,
    events: AsyncIterable[Any],
) -> AsyncIterator[Chunk]:
    # The SDKs' ``__aiter__`` are async generators: one left part-way (a failure, a closed
    # writer) is closed here rather than by the garbage collector.
    iterator = aiter(events)
    try:
        async for event in iterator:
            for chunk in converter.feed(event):
                yield chunk
        for chunk in converter.end():
            yield chunk
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
        # The SDKs' streams hold a response open until read to the end or closed.
        close = getattr(events, "close", None)
        if close is not None:
            outcome = close()
            if inspect.isawaitable(outcome):
                await outcome


def openai_chat_chunks(stream: AsyncIterable[Any]) -> AsyncIterator[Chunk]:
    """The UI message chunks of an ``openai`` Chat Completions stream
    (``await client.chat.completions.create(..., stream=True)``)."""
    return _convert(OpenAIChatConverter(), stream)


def openai_responses_chunks(stream: AsyncIterable[Any]) -> AsyncIterator[Chunk]:
    """The UI message chunks of an ``openai`` Responses stream
    (``await client.responses.create(..., stream=True)``)."""
    return _convert(OpenAIResponsesConverter(), stream)


def anthropic_chunks(stream: AsyncIterable[Any]) -> AsyncIterator[Chunk]:
    """The UI message chunks of an ``anthropic`` Messages stream
    (``await client.messages.create(..., stream=True)``, or ``messages.stream()``'s)."""
    return _convert(AnthropicConverter(), stream)
