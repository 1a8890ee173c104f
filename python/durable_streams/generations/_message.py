"""The message a generation's chunks make, folded as the AI SDK folds them, without I/O.

:class:`MessageAssembler` follows ``processUIMessageStream`` of the ``ai`` package (6.x): the
same parts, in the same order, with the same fields, so the message a Python reader assembles
equals the one ``useChat`` shows. A field the AI SDK leaves ``undefined`` is absent here (it
is absent from the SDK's JSON too); ``None`` is JSON ``null``.

One difference is on purpose: while a tool's input is still streaming, the SDK repairs the
partial JSON to show it; here the input is set only once the text so far parses. The final
message is the same: ``tool-input-available`` carries the whole input.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .._errors import GenerationError
from ._chunks import ENDINGS

__all__ = ["GenerationMessage", "GenerationStatus", "MessageAssembler", "ToolCall"]

GenerationStatus = Literal["finished", "failed", "aborted", "unfinished"]

_MISSING: Any = object()


def _get(mapping: Mapping[str, Any], key: str) -> Any:
    return mapping.get(key, _MISSING)


def _either(first: Any, second: Any) -> Any:
    """JavaScript's ``first ?? second``: null and undefined alike give way."""
    return second if first is _MISSING or first is None else first


def _put(part: dict[str, Any], key: str, value: Any) -> None:
    """Set a field as JavaScript does, where assigning ``undefined`` leaves it out of JSON."""
    if value is _MISSING:
        part.pop(key, None)
    else:
        part[key] = value


def _merge(base: Any, update: Any) -> Any:
    """The SDK's ``mergeObjects``: objects merge key by key, deeply; anything else replaces."""
    if not isinstance(base, dict) or not isinstance(update, dict):
        return copy.deepcopy(update)
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _is_tool(part: Mapping[str, Any]) -> bool:
    kind = str(part.get("type", ""))
    return kind.startswith("tool-") or kind == "dynamic-tool"


def _tool_name(part: Mapping[str, Any]) -> str:
    if part["type"] == "dynamic-tool":
        return str(part["toolName"])
    return str(part["type"]).split("-", 1)[1]


@dataclass(frozen=True)
class ToolCall:
    """One tool call of a message: its input, and its output or error once there is one.

    ``state`` is the AI SDK's: ``input-streaming``, ``input-available``,
    ``approval-requested``, ``output-available``, ``output-error``, ``output-denied``."""

    tool_call_id: str
    tool_name: str
    state: str
    input: Any = None
    output: Any = None
    error_text: str | None = None
    dynamic: bool = False


@dataclass(frozen=True)
class GenerationMessage:
    """The assistant message a generation made, and how the generation ended.

    ``message`` is the AI SDK's ``UIMessage`` as JSON (``id``, ``role``, ``parts``, and
    ``metadata`` when there is some). ``status``: ``finished`` (a ``finish`` chunk ended it),
    ``failed`` (an ``error`` chunk: ``error_text`` says what the writer told readers),
    ``aborted``, or ``unfinished`` (no ending chunk: still being written, or its writer
    died). ``closed`` says the stream itself is closed."""

    message: dict[str, Any]
    status: GenerationStatus
    closed: bool
    finish_reason: str | None = None
    error_text: str | None = None
    chunks: int = 0
    offset: str | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        return str(self.message.get("id", ""))

    @property
    def parts(self) -> list[dict[str, Any]]:
        return list(self.message.get("parts", []))

    @property
    def text(self) -> str:
        """The text parts, joined."""
        return "".join(p.get("text", "") for p in self.parts if p.get("type") == "text")

    @property
    def reasoning(self) -> str:
        """The reasoning parts, joined."""
        return "".join(p.get("text", "") for p in self.parts if p.get("type") == "reasoning")

    @property
    def tool_calls(self) -> list[ToolCall]:
        calls = []
        for part in self.parts:
            if not _is_tool(part):
                continue
            calls.append(
                ToolCall(
                    tool_call_id=str(part["toolCallId"]),
                    tool_name=_tool_name(part),
                    state=str(part.get("state")),
                    input=part.get("input"),
                    output=part.get("output"),
                    error_text=part.get("errorText"),
                    dynamic=part["type"] == "dynamic-tool",
                )
            )
        return calls


class MessageAssembler:
    """Folds UI message chunks into the assistant message, one :meth:`feed` at a time.

    A chunk that does not fit (a delta for a part that never started, output for an unknown
    tool call) raises :class:`GenerationError`, as the AI SDK raises its own error there."""

    def __init__(self, message_id: str = "") -> None:
        self._message: dict[str, Any] = {"id": message_id, "role": "assistant", "parts": []}
        self._text: dict[str, dict[str, Any]] = {}
        self._reasoning: dict[str, dict[str, Any]] = {}
        self._partial: dict[str, dict[str, Any]] = {}
        self._ending: str | None = None
        self.finish_reason: str | None = None
        self.error_text: str | None = None
        self.chunks = 0

    @property
    def message(self) -> dict[str, Any]:
        """A copy of the message as it stands."""
        return copy.deepcopy(self._message)

    @property
    def status(self) -> GenerationStatus:
        if self._ending == "finish":
            return "finished"
        if self._ending == "error":
            return "failed"
        if self._ending == "abort":
            return "aborted"
        return "unfinished"

    def result(self, *, closed: bool, offset: str | None = None) -> GenerationMessage:
        return GenerationMessage(
            message=self.message,
            status=self.status,
            closed=closed,
            finish_reason=self.finish_reason,
            error_text=self.error_text,
            chunks=self.chunks,
            offset=offset,
        )

    def feed(self, chunk: Any) -> None:
        if not isinstance(chunk, Mapping) or not isinstance(chunk.get("type"), str):
            raise GenerationError(f"not a UI message chunk: {chunk!r}")
        self.chunks += 1
        kind: str = chunk["type"]
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, chunk)
        elif kind.startswith("data-"):
            self._data(chunk)
        # Chunk types this version does not know are skipped, as the SDK skips them.
        if kind in ENDINGS and self._ending is None:
            self._ending = kind

    # -- the parts ----------------------------------------------------------------------------

    def _parts(self) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = self._message["parts"]
        return parts

    def _step_parts(self) -> list[dict[str, Any]]:
        parts = self._parts()
        start = len(parts) - 1
        while start >= 0 and parts[start]["type"] != "step-start":
            start -= 1
        return parts[start + 1 :]

    def _invocation(self, tool_call_id: str) -> dict[str, Any]:
        for part in self._step_parts():
            if _is_tool(part) and part.get("toolCallId") == tool_call_id:
                return part
        parts = self._parts()
        for index in range(len(parts) - 1, -1, -1):
            if _is_tool(parts[index]) and parts[index].get("toolCallId") == tool_call_id:
                return parts[index]
        raise GenerationError(f"no tool invocation found for tool call id {tool_call_id!r}")

    def _active(self, table: dict[str, dict[str, Any]], chunk: Mapping[str, Any]) -> dict[str, Any]:
        part = table.get(str(chunk.get("id")))
        if part is None:
            raise GenerationError(
                f"{chunk['type']} for a part that never started (id {chunk.get('id')!r})"
            )
        return part

    def _start(self, chunk: Mapping[str, Any]) -> None:
        message_id = _get(chunk, "messageId")
        if message_id is not _MISSING and message_id is not None:
            if message_id != self._message["id"]:
                # A new message: the SDK starts over (readUIMessageStream does so on an id change).
                self._message = {"id": message_id, "role": "assistant", "parts": []}
                self._text, self._reasoning, self._partial = {}, {}, {}
                self._ending, self.finish_reason, self.error_text = None, None, None
            self._message["id"] = message_id
        self._metadata(chunk)

    def _metadata(self, chunk: Mapping[str, Any]) -> None:
        metadata = _get(chunk, "messageMetadata")
        if metadata is _MISSING or metadata is None:
            return
        current = self._message.get("metadata")
        self._message["metadata"] = (
            copy.deepcopy(metadata) if current is None else _merge(current, metadata)
        )

    def _finish(self, chunk: Mapping[str, Any]) -> None:
        reason = chunk.get("finishReason")
        if reason is not None:
            self.finish_reason = str(reason)
        self._metadata(chunk)

    def _error(self, chunk: Mapping[str, Any]) -> None:
        self.error_text = str(chunk.get("errorText", ""))

    def _text_start(self, chunk: Mapping[str, Any]) -> None:
        part: dict[str, Any] = {"type": "text", "text": ""}
        _put(part, "providerMetadata", _get(chunk, "providerMetadata"))
        part["state"] = "streaming"
        self._text[str(chunk.get("id"))] = part
        self._parts().append(part)

    def _text_delta(self, chunk: Mapping[str, Any]) -> None:
        part = self._active(self._text, chunk)
        part["text"] += str(chunk.get("delta", ""))
        _put(part, "providerMetadata", _either(_get(chunk, "providerMetadata"), _pm(part)))

    def _text_end(self, chunk: Mapping[str, Any]) -> None:
        part = self._active(self._text, chunk)
        part["state"] = "done"
        _put(part, "providerMetadata", _either(_get(chunk, "providerMetadata"), _pm(part)))
        del self._text[str(chunk.get("id"))]

    def _reasoning_start(self, chunk: Mapping[str, Any]) -> None:
        part: dict[str, Any] = {"type": "reasoning", "id": chunk.get("id"), "text": ""}
        _put(part, "providerMetadata", _get(chunk, "providerMetadata"))
        part["state"] = "streaming"
        self._reasoning[str(chunk.get("id"))] = part
        self._parts().append(part)

    def _reasoning_delta(self, chunk: Mapping[str, Any]) -> None:
        part = self._active(self._reasoning, chunk)
        part["text"] += str(chunk.get("delta", ""))
        _put(part, "providerMetadata", _either(_get(chunk, "providerMetadata"), _pm(part)))

    def _reasoning_end(self, chunk: Mapping[str, Any]) -> None:
        part = self._active(self._reasoning, chunk)
        _put(part, "providerMetadata", _either(_get(chunk, "providerMetadata"), _pm(part)))
        part["state"] = "done"
        del self._reasoning[str(chunk.get("id"))]

    def _step_start(self, chunk: Mapping[str, Any]) -> None:
        self._parts().append({"type": "step-start"})

    def _step_finish(self, chunk: Mapping[str, Any]) -> None:
        self._text, self._reasoning = {}, {}

    def _file(self, chunk: Mapping[str, Any]) -> None:
        part = {"type": "file", "mediaType": chunk.get("mediaType"), "url": chunk.get("url")}
        pm = _get(chunk, "providerMetadata")
        if pm is not _MISSING and pm is not None:
            part["providerMetadata"] = pm
        self._parts().append(part)

    def _source(self, chunk: Mapping[str, Any]) -> None:
        keys = (
            ("sourceId", "url", "title", "providerMetadata")
            if chunk["type"] == "source-url"
            else ("sourceId", "mediaType", "title", "filename", "providerMetadata")
        )
        part: dict[str, Any] = {"type": chunk["type"]}
        for key in keys:
            _put(part, key, _get(chunk, key))
        self._parts().append(part)

    def _data(self, chunk: Mapping[str, Any]) -> None:
        if chunk.get("transient"):
            return
        chunk_id = _get(chunk, "id")
        if chunk_id is not _MISSING and chunk_id is not None:
            for part in self._parts():
                if part["type"] == chunk["type"] and part.get("id") == chunk_id:
                    part["data"] = copy.deepcopy(chunk.get("data"))
                    return
        self._parts().append(copy.deepcopy(dict(chunk)))

    # -- tools --------------------------------------------------------------------------------

    def _update_tool(
        self, options: dict[str, Any], existing: dict[str, Any] | None, *, dynamic: bool
    ) -> None:
        """The SDK's ``updateToolPart`` / ``updateDynamicToolPart``; absent options are
        ``_MISSING``."""
        get = options.get
        part = existing
        if part is None:
            for candidate in self._step_parts():
                matches = (
                    candidate["type"] == "dynamic-tool"
                    if dynamic
                    else _is_tool(candidate) and candidate["type"] != "dynamic-tool"
                )
                if matches and candidate.get("toolCallId") == options["toolCallId"]:
                    part = candidate
                    break
        state = options["state"]
        result_side = state in ("output-available", "output-error")
        pm = get("providerMetadata", _MISSING)
        if part is not None:
            part["state"] = state
            if dynamic:
                part["toolName"] = options["toolName"]
            else:
                part["type"] = f"tool-{options['toolName']}"
            for key in ("input", "output", "errorText", "rawInput"):
                _put(part, key, get(key, _MISSING))
            encoding = get("inputEncoding", _MISSING)
            if encoding is not _MISSING and encoding is not None:
                part["inputEncoding"] = encoding
            else:
                part.pop("inputEncoding", None)
            _put(part, "preliminary", get("preliminary", _MISSING))
            for key in ("title", "toolMetadata"):
                if get(key, _MISSING) is not _MISSING:
                    part[key] = options[key]
            _put(
                part,
                "providerExecuted",
                _either(get("providerExecuted", _MISSING), part.get("providerExecuted", _MISSING)),
            )
            if pm is not _MISSING and pm is not None:
                part["resultProviderMetadata" if result_side else "callProviderMetadata"] = pm
            return
        new: dict[str, Any] = {}
        if dynamic:
            new["type"] = "dynamic-tool"
            new["toolName"] = options["toolName"]
        else:
            new["type"] = f"tool-{options['toolName']}"
        new["toolCallId"] = options["toolCallId"]
        new["state"] = state
        keys = (
            ["input", "inputEncoding", "output", "errorText", "preliminary", "providerExecuted"]
            if dynamic
            else ["input", "inputEncoding", "output", "rawInput", "errorText", "providerExecuted"]
        )
        if not dynamic:
            _put(new, "title", get("title", _MISSING))
            keys.append("preliminary")
        for key in keys:
            if key == "inputEncoding" and get(key, _MISSING) is None:
                continue
            _put(new, key, get(key, _MISSING))
        if dynamic:
            _put(new, "title", get("title", _MISSING))
        if get("toolMetadata", _MISSING) is not _MISSING:
            new["toolMetadata"] = options["toolMetadata"]
        if pm is not _MISSING and pm is not None:
            new["resultProviderMetadata" if result_side else "callProviderMetadata"] = pm
        self._parts().append(new)

    def _tool_options(self, chunk: Mapping[str, Any], *keys: str) -> dict[str, Any]:
        return {key: chunk[key] for key in keys if key in chunk}

    def _tool_input_start(self, chunk: Mapping[str, Any]) -> None:
        call_id = str(chunk.get("toolCallId"))
        dynamic = bool(chunk.get("dynamic"))
        self._partial[call_id] = {
            "text": "",
            "toolName": chunk.get("toolName"),
            "dynamic": dynamic,
            **self._tool_options(chunk, "inputEncoding", "title", "toolMetadata"),
        }
        options = self._tool_options(
            chunk,
            "inputEncoding",
            "providerExecuted",
            "title",
            "toolMetadata",
            "providerMetadata",
        )
        options.update(toolCallId=call_id, toolName=chunk.get("toolName"))
        options["state"] = "input-streaming"
        self._update_tool(options, None, dynamic=dynamic)

    def _tool_input_delta(self, chunk: Mapping[str, Any]) -> None:
        call_id = str(chunk.get("toolCallId"))
        partial = self._partial.get(call_id)
        if partial is None:
            raise GenerationError(f"tool-input-delta for a tool call that never started: {call_id}")
        partial["text"] += str(chunk.get("inputTextDelta", ""))
        options: dict[str, Any] = {
            key: partial[key]
            for key in ("inputEncoding", "title", "toolMetadata")
            if key in partial
        }
        if partial.get("inputEncoding") == "text":
            options["input"] = partial["text"]
        else:
            with contextlib.suppress(ValueError):  # not whole yet (see the module's docstring)
                options["input"] = json.loads(partial["text"])
        options.update(
            toolCallId=call_id,
            toolName=partial["toolName"],
            state="input-streaming",
            rawInput=partial["text"],
        )
        self._update_tool(options, None, dynamic=partial["dynamic"])

    def _tool_input_available(self, chunk: Mapping[str, Any]) -> None:
        options = self._tool_options(
            chunk, "input", "providerExecuted", "providerMetadata", "title", "toolMetadata"
        )
        options.update(
            toolCallId=str(chunk.get("toolCallId")),
            toolName=chunk.get("toolName"),
            state="input-available",
        )
        self._update_tool(options, None, dynamic=bool(chunk.get("dynamic")))

    def _tool_input_error(self, chunk: Mapping[str, Any]) -> None:
        call_id = str(chunk.get("toolCallId"))
        existing = next(
            (p for p in self._step_parts() if _is_tool(p) and p.get("toolCallId") == call_id),
            None,
        )
        dynamic = (
            existing["type"] == "dynamic-tool"
            if existing is not None
            else bool(chunk.get("dynamic"))
        )
        options = self._tool_options(
            chunk, "errorText", "providerExecuted", "providerMetadata", "toolMetadata"
        )
        options.update(toolCallId=call_id, toolName=chunk.get("toolName"), state="output-error")
        if dynamic:
            if "input" in chunk:
                options["input"] = chunk["input"]
        elif "input" in chunk:
            options["rawInput"] = chunk["input"]
        self._update_tool(options, None, dynamic=dynamic)

    def _tool_output(self, chunk: Mapping[str, Any]) -> None:
        invocation = self._invocation(str(chunk.get("toolCallId")))
        dynamic = invocation["type"] == "dynamic-tool"
        available = chunk["type"] == "tool-output-available"
        keys = (
            ("output", "preliminary", "providerExecuted", "providerMetadata")
            if available
            else ("errorText", "providerExecuted", "providerMetadata")
        )
        options = self._tool_options(chunk, *keys)
        options.update(
            toolCallId=str(chunk.get("toolCallId")),
            toolName=_tool_name(invocation),
            state="output-available" if available else "output-error",
        )
        for key in ("input", "title"):
            if key in invocation:
                options[key] = invocation[key]
        if not available and not dynamic and "rawInput" in invocation:
            options["rawInput"] = invocation["rawInput"]
        metadata = _either(_get(chunk, "toolMetadata"), invocation.get("toolMetadata", _MISSING))
        if metadata is not _MISSING:
            options["toolMetadata"] = metadata
        self._update_tool(options, invocation, dynamic=dynamic)

    def _tool_output_denied(self, chunk: Mapping[str, Any]) -> None:
        self._invocation(str(chunk.get("toolCallId")))["state"] = "output-denied"

    def _tool_approval_request(self, chunk: Mapping[str, Any]) -> None:
        invocation = self._invocation(str(chunk.get("toolCallId")))
        invocation["state"] = "approval-requested"
        approval: dict[str, Any] = {"id": chunk.get("approvalId")}
        if chunk.get("approvalDescriptor") is not None:
            approval["descriptor"] = chunk["approvalDescriptor"]
        if "inputSchemaInput" in chunk:
            approval["inputSchemaInput"] = chunk["inputSchemaInput"]
        if chunk.get("signature") is not None:
            approval["signature"] = chunk["signature"]
        invocation["approval"] = approval


def _pm(part: Mapping[str, Any]) -> Any:
    return part.get("providerMetadata", _MISSING)


_HANDLERS = {
    "start": MessageAssembler._start,
    "finish": MessageAssembler._finish,
    "message-metadata": MessageAssembler._metadata,
    "error": MessageAssembler._error,
    "text-start": MessageAssembler._text_start,
    "text-delta": MessageAssembler._text_delta,
    "text-end": MessageAssembler._text_end,
    "reasoning-start": MessageAssembler._reasoning_start,
    "reasoning-delta": MessageAssembler._reasoning_delta,
    "reasoning-end": MessageAssembler._reasoning_end,
    "start-step": MessageAssembler._step_start,
    "finish-step": MessageAssembler._step_finish,
    "file": MessageAssembler._file,
    "source-url": MessageAssembler._source,
    "source-document": MessageAssembler._source,
    "tool-input-start": MessageAssembler._tool_input_start,
    "tool-input-delta": MessageAssembler._tool_input_delta,
    "tool-input-available": MessageAssembler._tool_input_available,
    "tool-input-error": MessageAssembler._tool_input_error,
    "tool-output-available": MessageAssembler._tool_output,
    "tool-output-error": MessageAssembler._tool_output,
    "tool-output-denied": MessageAssembler._tool_output_denied,
    "tool-approval-request": MessageAssembler._tool_approval_request,
}
