"""The openai and anthropic SDKs, unmodified, against a server replaying their APIs' streams
(tests/generations/replay.py): their events become the chunks of a generation written to the
reference server, and the message read back is the model's, failures included."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from durable_streams.generations import (
    GenerationMessage,
    anthropic_chunks,
    aread_message,
    openai_chat_chunks,
    openai_responses_chunks,
    write_generation,
)

pytestmark = [
    pytest.mark.anyio,
    # The openai SDK leaves its inner SSE generators to the garbage collector when a stream
    # ends at [DONE] (it breaks out of them); under trio that is reported. Its response is
    # closed by the SDK itself; only the report is the SDK's.
    pytest.mark.filterwarnings(
        "ignore:Async generator 'openai.*garbage collected before it had been exhausted"
        ":ResourceWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <async_generator object (SSEDecoder|AsyncStream)\\."
        ":pytest.PytestUnraisableExceptionWarning"
    ),
]

PROMPT = [{"role": "user", "content": "What is the weather?"}]


async def generate(source: Any, stream_url: str) -> GenerationMessage:
    result = await write_generation(source, stream_url)
    message = await aread_message(stream_url, live=False)
    assert message.closed and message.status == result.status
    assert message.chunks == result.chunks
    return message


def tool_calls(message: GenerationMessage) -> list[tuple[str, str, str, Any]]:
    return [(c.tool_call_id, c.tool_name, c.state, c.input) for c in message.tool_calls]


def openai_client(replay_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{replay_url}/v1", api_key="replay", max_retries=0)


def anthropic_client(replay_url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=replay_url, api_key="replay", max_retries=0)


async def test_openai_chat_completions_text_and_parallel_tool_calls(
    replay_url: str, stream_url: str
) -> None:
    async with openai_client(replay_url) as client:
        stream = await client.chat.completions.create(
            model="chat-tools", messages=PROMPT, stream=True
        )
        message = await generate(openai_chat_chunks(stream), stream_url)
    assert (message.status, message.finish_reason) == ("finished", "tool-calls")
    assert message.text == "Checking two cities."
    assert tool_calls(message) == [
        ("call_a", "weather", "input-available", {"city": "Oslo"}),
        ("call_b", "weather", "input-available", {"city": "Lima"}),
    ]
    assert [p["type"] for p in message.parts] == [
        "step-start",
        "text",
        "tool-weather",
        "tool-weather",
    ]


async def test_openai_chat_completions_error_mid_stream(replay_url: str, stream_url: str) -> None:
    async with openai_client(replay_url) as client:
        stream = await client.chat.completions.create(
            model="chat-error", messages=PROMPT, stream=True
        )
        result = await write_generation(openai_chat_chunks(stream), stream_url)
    assert result.status == "failed" and isinstance(result.error, openai.APIError)
    message = await aread_message(stream_url, live=False)
    assert (message.status, message.closed, message.text) == ("failed", True, "Half an answer")
    assert message.error_text == "An error occurred."  # the provider's text stays server-side


async def test_openai_responses_reasoning_text_and_a_function_call(
    replay_url: str, stream_url: str
) -> None:
    async with openai_client(replay_url) as client:
        stream = await client.responses.create(model="responses-full", input="hi", stream=True)
        message = await generate(openai_responses_chunks(stream), stream_url)
    assert (message.status, message.finish_reason) == ("finished", "tool-calls")
    assert (message.reasoning, message.text) == ("Look it up.", "One moment.")
    assert tool_calls(message) == [
        ("call_1", "lookup", "input-available", {"q": "durable streams"})
    ]
    assert [p["type"] for p in message.parts] == ["step-start", "reasoning", "text", "tool-lookup"]
    assert all(p.get("state", "done") == "done" for p in message.parts if "text" in p)


async def test_openai_responses_error_event(replay_url: str, stream_url: str) -> None:
    async with openai_client(replay_url) as client:
        stream = await client.responses.create(model="responses-error", input="hi", stream=True)
        result = await write_generation(openai_responses_chunks(stream), stream_url, error_text=str)
    assert result.status == "failed"
    message = await aread_message(stream_url, live=False)
    assert (message.status, message.text) == ("failed", "Cut ")
    assert message.error_text == "the provider reported an error: The server had an error"


@pytest.mark.parametrize("helper", [False, True], ids=["create", "stream-helper"])
async def test_anthropic_messages_thinking_text_and_tool_use(
    replay_url: str, stream_url: str, helper: bool
) -> None:
    async with anthropic_client(replay_url) as client:
        if helper:
            async with client.messages.stream(
                model="anthropic-full", max_tokens=100, messages=PROMPT
            ) as stream:
                message = await generate(anthropic_chunks(stream), stream_url)
        else:
            stream = await client.messages.create(
                model="anthropic-full", max_tokens=100, messages=PROMPT, stream=True
            )
            message = await generate(anthropic_chunks(stream), stream_url)
    assert (message.status, message.finish_reason) == ("finished", "tool-calls")
    assert (message.reasoning, message.text) == ("Weather needs a tool.", "Let me check.")
    assert tool_calls(message) == [
        ("toolu_01", "weather", "input-available", {"city": "Oslo", "days": 2})
    ]
    assert [p["type"] for p in message.parts] == [
        "step-start",
        "reasoning",
        "text",
        "tool-weather",
    ]


async def test_anthropic_error_event_mid_stream(replay_url: str, stream_url: str) -> None:
    async with anthropic_client(replay_url) as client:
        stream = await client.messages.create(
            model="anthropic-error", max_tokens=100, messages=PROMPT, stream=True
        )
        result = await write_generation(anthropic_chunks(stream), stream_url)
    assert result.status == "failed" and isinstance(result.error, anthropic.APIStatusError)
    message = await aread_message(stream_url, live=False)
    assert (message.status, message.closed, message.text) == ("failed", True, "Almost ")
