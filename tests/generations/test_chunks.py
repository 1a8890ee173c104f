"""Framing a source into UI message chunks, and folding chunks into the message, without I/O."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_streams import GenerationError
from durable_streams.generations import (
    ChunkFramer,
    MessageAssembler,
    error_chunk,
    ui_message_chunks,
)


def frame(*items: Any, message_id: str = "m") -> list[dict[str, Any]]:
    framer = ChunkFramer(message_id)
    out = [chunk for item in items for chunk in framer.feed(item)]
    return out + framer.finish()


def fold(chunks: list[dict[str, Any]]) -> MessageAssembler:
    assembler = MessageAssembler()
    for chunk in chunks:
        assembler.feed(chunk)
    return assembler


def test_text_is_one_part_until_a_chunk_comes_between() -> None:
    chunks = frame("a", "", "b", {"type": "data-x", "data": 1}, "c")
    kinds = [c["type"] for c in chunks]
    assert kinds == [
        "start",
        "text-start",
        "text-delta",
        "text-delta",
        "text-end",
        "data-x",
        "text-start",
        "text-delta",
        "text-end",
        "finish",
    ]
    assert chunks[0] == {"type": "start", "messageId": "m"}
    assert chunks[1]["id"] == chunks[2]["id"] == chunks[4]["id"] != chunks[6]["id"]
    assert [p["text"] for p in fold(chunks).message["parts"] if p["type"] == "text"] == ["ab", "c"]


def test_a_source_that_starts_and_ends_itself_is_passed_through() -> None:
    chunks = frame(
        {"type": "start", "messageId": "own"}, "hi", {"type": "finish", "finishReason": "length"}
    )
    assert chunks[0] == {"type": "start", "messageId": "own"}
    assert chunks[-1] == {"type": "finish", "finishReason": "length"}
    assert [c["type"] for c in chunks].count("finish") == 1
    assembler = fold(chunks)
    assert assembler.status == "finished" and assembler.finish_reason == "length"
    assert assembler.message["id"] == "own"


def test_nothing_follows_an_ending_and_bad_items_are_refused() -> None:
    framer = ChunkFramer()
    framer.feed("x")
    assert framer.fail("boom")[-1] == error_chunk("boom")
    assert framer.ended and framer.finish() == [] and framer.fail("again") == []
    with pytest.raises(ValueError, match="already ended"):
        framer.feed("more")
    with pytest.raises(TypeError, match="not int"):
        ChunkFramer().feed(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="string 'type'"):
        ChunkFramer().feed({"delta": "no type"})


def test_an_empty_source_is_an_empty_finished_message() -> None:
    assembler = fold(frame(message_id="empty"))
    assert assembler.message == {"id": "empty", "role": "assistant", "parts": []}
    assert assembler.status == "finished"
    assert assembler.result(closed=True).text == ""


@pytest.mark.parametrize(
    "chunk",
    [
        {"type": "text-delta", "id": "nope", "delta": "x"},
        {"type": "reasoning-end", "id": "nope"},
        {"type": "tool-output-available", "toolCallId": "nope", "output": 1},
        {"type": "tool-input-delta", "toolCallId": "nope", "inputTextDelta": "{"},
        {"no": "type"},
        "not a chunk",
    ],
)
def test_a_chunk_that_does_not_fit_raises(chunk: Any) -> None:
    with pytest.raises(GenerationError):
        MessageAssembler().feed(chunk)


def test_tool_input_streams_until_it_parses_and_error_and_abort_end() -> None:
    assembler = fold(
        [
            {"type": "tool-input-start", "toolCallId": "c", "toolName": "t", "title": "T"},
            {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": '{"a":'},
        ]
    )
    [part] = assembler.message["parts"]
    assert part["state"] == "input-streaming" and "input" not in part
    assert part["rawInput"] == '{"a":' and part["title"] == "T"
    assembler.feed({"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": "1}"})
    assert assembler.message["parts"][0]["input"] == {"a": 1}
    assembler.feed({"type": "error", "errorText": "late"})
    assert (assembler.status, assembler.error_text) == ("failed", "late")
    assert fold([{"type": "abort"}]).status == "aborted"
    assert fold([{"type": "start"}]).status == "unfinished"


@pytest.mark.anyio
async def test_ui_message_chunks_frames_a_source_and_lets_its_failure_through() -> None:
    async def source() -> AsyncIterator[str | dict[str, Any]]:
        yield "a"
        yield {"type": "data-x", "data": None}
        raise LookupError("gone")

    seen = []
    with pytest.raises(LookupError, match="gone"):
        async for chunk in ui_message_chunks(source(), message_id="m"):
            seen.append(chunk["type"])
    assert seen == ["start", "text-start", "text-delta", "text-end", "data-x"]
