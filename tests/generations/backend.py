"""A chat backend on durable_streams.generations, as an application would write one, with
scripted sources in place of a model. The tests drive it in process (httpx.ASGITransport) and
as a uvicorn server in a child process (for Node's AI SDK, and to be killed mid-generation):

    python tests/generations/backend.py STREAMS_BASE_URL [--mode await] [--grace S]
        [--lifespan-group]

prints ``{"url": ...}`` once it listens on 127.0.0.1, and exits when its stdin closes.

POST /api/chat takes the AI SDK's body (``id``, ``messages``); the last user message's text
names the scenario. GET /api/chat/{id}/stream answers the transport's reconnect. POST
/release/{id} lets a held scenario go on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

if __name__ == "__main__":  # run as a script: import the package from the worktree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

from durable_streams.generations import (
    GenerationMode,
    GenerationResult,
    generation_response,
    resume_response,
)

Item = str | dict[str, Any]

# What each scenario's source yields, before and after the point where a held one waits.
SCENARIOS: dict[str, tuple[list[Item], list[Item]]] = {
    "text": (["Hello", ", ", "durable ", "world", "!"], []),
    "rich": (
        [
            {"type": "start", "messageMetadata": {"model": "scripted", "turn": 1}},
            {"type": "start-step"},
            {"type": "reasoning-start", "id": "r1"},
            {"type": "reasoning-delta", "id": "r1", "delta": "The user wants "},
            {"type": "reasoning-delta", "id": "r1", "delta": "the weather."},
            {"type": "reasoning-end", "id": "r1"},
            "Let me check ",
            "the weather.",
            {"type": "tool-input-start", "toolCallId": "call-1", "toolName": "weather"},
            {"type": "tool-input-delta", "toolCallId": "call-1", "inputTextDelta": '{"city":'},
            {"type": "tool-input-delta", "toolCallId": "call-1", "inputTextDelta": '"Oslo"}'},
            {
                "type": "tool-input-available",
                "toolCallId": "call-1",
                "toolName": "weather",
                "input": {"city": "Oslo"},
            },
            {
                "type": "tool-output-available",
                "toolCallId": "call-1",
                "output": {"celsius": -3.5, "sky": "snow", "alerts": None},
            },
            {
                "type": "tool-input-available",
                "toolCallId": "call-2",
                "toolName": "lookup",
                "input": {"q": "ski"},
                "dynamic": True,
            },
            {"type": "tool-output-error", "toolCallId": "call-2", "errorText": "no index"},
            {"type": "data-forecast", "id": "f1", "data": {"days": [1, 2]}},
            {"type": "data-forecast", "id": "f1", "data": {"days": [1, 2, 3]}},
            {"type": "finish-step"},
            {"type": "start-step"},
            "It is -3.5 °C and snowing in Oslo ",
            "❄️, “ski” weather.",
            {"type": "source-url", "sourceId": "s1", "url": "https://example.com/oslo"},
            {"type": "finish-step"},
            {"type": "finish", "finishReason": "stop", "messageMetadata": {"tokens": 42}},
        ],
        [],
    ),
    # The fields the AI SDK carries over into the message's parts: provider metadata,
    # dynamic and provider-executed tools, input errors, denials, files, sources, data
    # updates, transient data, metadata merged deeply.
    "edge": (
        [
            {"type": "start", "messageMetadata": {"run": {"id": 7}, "tags": ["a"]}},
            {"type": "text-start", "id": "t1", "providerMetadata": {"openai": {"itemId": "i1"}}},
            {"type": "text-delta", "id": "t1", "delta": "Edge "},
            {"type": "text-end", "id": "t1", "providerMetadata": {"openai": {"itemId": "i2"}}},
            {
                "type": "tool-input-start",
                "toolCallId": "d1",
                "toolName": "search",
                "dynamic": True,
                "title": "Search",
            },
            {"type": "tool-input-delta", "toolCallId": "d1", "inputTextDelta": '{"q": "x'},
            {
                "type": "tool-input-error",
                "toolCallId": "d1",
                "toolName": "search",
                "input": '{"q": "x',
                "errorText": "bad input",
            },
            {"type": "tool-input-start", "toolCallId": "s1", "toolName": "calc"},
            {"type": "tool-input-delta", "toolCallId": "s1", "inputTextDelta": "{"},
            {
                "type": "tool-input-error",
                "toolCallId": "s1",
                "toolName": "calc",
                "input": "{",
                "errorText": "truncated",
            },
            {
                "type": "tool-input-available",
                "toolCallId": "p1",
                "toolName": "web_search",
                "input": {"query": "durable"},
                "providerExecuted": True,
                "providerMetadata": {"anthropic": {"cache": True}},
            },
            {
                "type": "tool-output-available",
                "toolCallId": "p1",
                "output": [{"url": "https://example.com"}],
                "providerExecuted": True,
                "providerMetadata": {"anthropic": {"took": 3}},
            },
            {
                "type": "tool-input-available",
                "toolCallId": "n1",
                "toolName": "delete_all",
                "input": {},
            },
            {"type": "tool-output-denied", "toolCallId": "n1"},
            {"type": "message-metadata", "messageMetadata": {"run": {"step": 2}}},
            {"type": "file", "url": "data:text/plain;base64,aGk=", "mediaType": "text/plain"},
            {
                "type": "source-document",
                "sourceId": "doc1",
                "mediaType": "application/pdf",
                "title": "Spec",
                "filename": "spec.pdf",
            },
            {"type": "data-progress", "id": "p", "data": {"done": 1}},
            {"type": "data-note", "data": "transient", "transient": True},
            {"type": "data-progress", "id": "p", "data": {"done": 2}},
            "done.",
            {"type": "finish", "finishReason": "length", "messageMetadata": {"tags": ["b"]}},
        ],
        [],
    ),
    "fail": (["Partial ", "answer"], []),
    "held": (["The first half, ", "written before the cut. "], ["The second half, ", "after."]),
}


class Boom(RuntimeError):
    """The scripted source's failure."""


def scenario_of(body: dict[str, Any]) -> str:
    message = body["messages"][-1]
    return "".join(p.get("text", "") for p in message["parts"] if p.get("type") == "text")


class Backend:
    def __init__(
        self,
        streams: str,
        mode: GenerationMode = "immediate",
        task_group: anyio.abc.TaskGroup | None = None,
        lifespan_group: bool = False,
    ) -> None:
        self.streams = streams.rstrip("/")
        self.mode: GenerationMode = mode
        self.task_group = task_group
        self.active: dict[str, str] = {}
        self.releases: dict[str, anyio.Event] = {}
        self.results: dict[str, GenerationResult] = {}
        self.app = Starlette(
            routes=[
                Route("/api/chat", self.chat, methods=["POST"]),
                Route("/api/chat/{chat_id}/stream", self.reconnect, methods=["GET"]),
                Route("/release/{chat_id}", self.release, methods=["POST"]),
            ],
            lifespan=self.lifespan if lifespan_group else None,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Generations written in a task group the application keeps: a shutdown cancels
        them through it, and they end their streams as interrupted before it completes."""
        async with anyio.create_task_group() as group:
            self.task_group = group
            yield
            group.cancel_scope.cancel()

    async def source(self, chat_id: str, name: str) -> AsyncIterator[Item]:
        before, after = SCENARIOS[name]
        for item in before:
            yield item
        if name == "fail":
            raise Boom("the model went away")
        if name == "held":
            await self.releases.setdefault(chat_id, anyio.Event()).wait()
        for item in after:
            yield item

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        chat_id = body["id"]
        name = scenario_of(body)
        url = f"{self.streams}/chats/{chat_id}/{uuid.uuid4().hex}"
        self.active[chat_id] = url
        self.releases.setdefault(chat_id, anyio.Event())

        def done(result: GenerationResult) -> None:
            self.results[chat_id] = result
            if self.active.get(chat_id) == url:
                del self.active[chat_id]

        return await generation_response(
            self.source(chat_id, name),
            url,
            mode=self.mode,
            message_id=f"msg-{chat_id}",
            error_text=lambda exc: f"generation failed: {exc}",
            on_done=done,
            task_group=self.task_group,
        )

    async def reconnect(self, request: Request) -> Response:
        return await resume_response(self.active.get(request.path_params["chat_id"]))

    async def release(self, request: Request) -> Response:
        self.releases.setdefault(request.path_params["chat_id"], anyio.Event()).set()
        return Response(status_code=204)


def _exit_when_stdin_closes() -> None:
    sys.stdin.buffer.read()
    os._exit(0)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("streams")
    parser.add_argument("--mode", choices=["immediate", "await"], default="immediate")
    # How long a shutdown waits for requests (background tasks included) before cancelling
    # them: uvicorn's timeout_graceful_shutdown; by default it waits for them to end.
    parser.add_argument("--grace", type=float, default=None)
    parser.add_argument("--lifespan-group", action="store_true")
    args = parser.parse_args()
    backend = Backend(args.streams, args.mode, lifespan_group=args.lifespan_group)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # before the URL is printed: a client may connect at once
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        backend.app,
        log_level="warning",
        lifespan="on" if args.lifespan_group else "off",
        timeout_graceful_shutdown=args.grace,
    )
    server = uvicorn.Server(config)
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    print(json.dumps({"url": f"http://127.0.0.1:{port}", "pid": os.getpid()}), flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
