"""The AI SDK's own chat (AbstractChat, what useChat runs) on createDurableChatTransport from
@durable-streams/aisdk-transport 0.0.7, pinned in interop/aisdk/package-lock.json, driven from
Node against the Python backend served by uvicorn: the message it assembles is the one the
source produced, cut and resumed or not, and a failed source is an error it reports."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from durable_streams.generations import ChunkFramer, MessageAssembler

from .backend import SCENARIOS
from .conftest import node_chat, running_backend

pytestmark = pytest.mark.usefixtures("aisdk")


def produced(scenario: str, chat_id: str) -> dict[str, Any]:
    """The message the scenario's source makes, folded here without any server."""
    framer = ChunkFramer(f"msg-{chat_id}")
    assembler = MessageAssembler()
    before, after = SCENARIOS[scenario]
    for item in [*before, *after]:
        for chunk in framer.feed(item):
            assembler.feed(chunk)
    for chunk in framer.finish():
        assembler.feed(chunk)
    return assembler.message


@pytest.mark.parametrize("mode", ["immediate", "await"])
@pytest.mark.parametrize("scenario", ["text", "rich", "edge"])
def test_use_chat_assembles_the_message_the_source_produced(
    server_url: str, scenario: str, mode: str
) -> None:
    chat_id = f"chat-{uuid.uuid4().hex}"
    with running_backend(server_url, "--mode", mode) as backend:
        outcome = node_chat("send", backend.api, chat_id, scenario)
    assert outcome["status"] == "ready" and outcome["error"] is None
    user, assistant = outcome["messages"]
    assert user["role"] == "user" and user["parts"][0]["text"] == scenario
    assert assistant == produced(scenario, chat_id)


def test_a_reader_cut_mid_generation_resumes_to_the_same_message(server_url: str) -> None:
    chat_id = f"chat-{uuid.uuid4().hex}"
    seen = "written before the cut."
    with running_backend(server_url) as backend:
        outcome = node_chat("cut", backend.api, chat_id, "held", seen)
    cut, resumed = outcome["cut"], outcome["resumed"]
    cut_text = "".join(p.get("text", "") for p in cut["messages"][-1]["parts"])
    assert seen in cut_text and "after." not in cut_text  # the cut came mid-generation
    assert resumed["status"] == "ready" and resumed["error"] is None
    assert resumed["messages"][-1] == produced("held", chat_id)
    assert "".join(p["text"] for p in resumed["messages"][-1]["parts"]).endswith("after.")


def test_a_failed_source_is_an_error_use_chat_reports(server_url: str) -> None:
    chat_id = f"chat-{uuid.uuid4().hex}"
    with running_backend(server_url) as backend:
        outcome = node_chat("send", backend.api, chat_id, "fail")
    assert outcome["status"] == "error"
    assert outcome["error"] == "generation failed: the model went away"
    assistant = outcome["messages"][-1]
    assert assistant["parts"] == [{"type": "text", "text": "Partial answer", "state": "done"}]
