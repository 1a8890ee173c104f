"""A stand-in for the model providers: it answers the ``openai`` and ``anthropic`` SDKs'
streaming requests with canned streams written in each API's wire format (server-sent
events, as the providers document them), picked by the request's ``model``. Served by uvicorn
on 127.0.0.1 in the test process; no network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Event = tuple[str | None, Any]  # (SSE event name, data: a JSON value, or raw text)


def _chat(delta: dict[str, Any], finish: str | None = None) -> Event:
    return (
        None,
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "gpt-replay",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        },
    )


def _call(index: int, arguments: str, call_id: str | None = None, name: str | None = None) -> dict:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


CHAT: dict[str, list[Event]] = {
    "chat-tools": [
        _chat({"role": "assistant", "content": ""}),
        _chat({"content": "Checking "}),
        _chat({"content": "two cities."}),
        _chat(_call(0, "", "call_a", "weather")),
        _chat(_call(0, '{"city":')),
        _chat(_call(0, ' "Oslo"}')),
        _chat(_call(1, '{"city": "Lima"}', "call_b", "weather")),
        _chat({}, "tool_calls"),
        (None, "[DONE]"),
    ],
    "chat-error": [
        _chat({"role": "assistant", "content": ""}),
        _chat({"content": "Half an "}),
        _chat({"content": "answer"}),
        (None, {"error": {"message": "The server is overloaded", "type": "server_error"}}),
    ],
}


def _responses(events: list[tuple[str, dict[str, Any]]]) -> list[Event]:
    return [
        (kind, {"type": kind, "sequence_number": n, **data})
        for n, (kind, data) in enumerate(events)
    ]


_RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1700000000,
    "model": "gpt-replay",
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
}
_CALL = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup"}
_MESSAGE = {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress"}

RESPONSES: dict[str, list[Event]] = {
    "responses-full": _responses(
        [
            ("response.created", {"response": {**_RESPONSE, "status": "in_progress"}}),
            (
                "response.output_item.added",
                {"output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}},
            ),
            (
                "response.reasoning_summary_text.delta",
                {"item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": "Look it "},
            ),
            (
                "response.reasoning_summary_text.delta",
                {"item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": "up."},
            ),
            (
                "response.output_item.done",
                {"output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}},
            ),
            (
                "response.output_item.added",
                {"output_index": 1, "item": {**_MESSAGE, "content": []}},
            ),
            *[
                (
                    "response.output_text.delta",
                    {
                        "item_id": "msg_1",
                        "output_index": 1,
                        "content_index": 0,
                        "delta": delta,
                        "logprobs": [],
                    },
                )
                for delta in ["One ", "moment", "."]
            ],
            (
                "response.output_item.done",
                {"output_index": 1, "item": {**_MESSAGE, "status": "completed", "content": []}},
            ),
            ("response.output_item.added", {"output_index": 2, "item": {**_CALL, "arguments": ""}}),
            *[
                (
                    "response.function_call_arguments.delta",
                    {"item_id": "fc_1", "output_index": 2, "delta": delta},
                )
                for delta in ['{"q": ', '"durable streams"}']
            ],
            (
                "response.output_item.done",
                {
                    "output_index": 2,
                    "item": {**_CALL, "arguments": '{"q": "durable streams"}'},
                },
            ),
            ("response.completed", {"response": {**_RESPONSE, "status": "completed"}}),
        ]
    ),
    "responses-error": _responses(
        [
            ("response.created", {"response": {**_RESPONSE, "status": "in_progress"}}),
            (
                "response.output_item.added",
                {"output_index": 0, "item": {**_MESSAGE, "content": []}},
            ),
            (
                "response.output_text.delta",
                {
                    "item_id": "msg_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": "Cut ",
                    "logprobs": [],
                },
            ),
            (
                "error",
                {"code": "server_error", "message": "The server had an error", "param": None},
            ),
        ]
    ),
}

_MESSAGE_START = (
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-replay",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1},
        },
    },
)


def _block(index: int, block: dict[str, Any]) -> Event:
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def _delta(index: int, delta: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _stop(index: int) -> Event:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


ANTHROPIC: dict[str, list[Event]] = {
    "anthropic-full": [
        _MESSAGE_START,
        _block(0, {"type": "thinking", "thinking": "", "signature": ""}),
        _delta(0, {"type": "thinking_delta", "thinking": "Weather "}),
        _delta(0, {"type": "thinking_delta", "thinking": "needs a tool."}),
        _delta(0, {"type": "signature_delta", "signature": "c2lnbmF0dXJl"}),
        _stop(0),
        ("ping", {"type": "ping"}),
        _block(1, {"type": "text", "text": ""}),
        _delta(1, {"type": "text_delta", "text": "Let me "}),
        _delta(1, {"type": "text_delta", "text": "check."}),
        _stop(1),
        _block(2, {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {}}),
        _delta(2, {"type": "input_json_delta", "partial_json": ""}),
        _delta(2, {"type": "input_json_delta", "partial_json": '{"city": "Os'}),
        _delta(2, {"type": "input_json_delta", "partial_json": 'lo", "days": 2}'}),
        _stop(2),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 40},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ],
    "anthropic-error": [
        _MESSAGE_START,
        _block(0, {"type": "text", "text": ""}),
        _delta(0, {"type": "text_delta", "text": "Almost "}),
        (
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ),
    ],
}


def _sse(events: list[Event]) -> Iterator[bytes]:
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {name}\n" if name is not None else ""
        yield f"{head}data: {text}\n\n".encode()


async def _replay(request: Request, recordings: dict[str, list[Event]]) -> Response:
    body = await request.json()
    events = recordings.get(body.get("model"))
    if events is None or not body.get("stream"):
        return JSONResponse({"error": {"message": "no such recording"}}, status_code=404)
    return Response(b"".join(_sse(events)), media_type="text/event-stream")


async def chat(request: Request) -> Response:
    return await _replay(request, CHAT)


async def responses(request: Request) -> Response:
    return await _replay(request, RESPONSES)


async def messages(request: Request) -> Response:
    return await _replay(request, ANTHROPIC)


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),
    ]
)
