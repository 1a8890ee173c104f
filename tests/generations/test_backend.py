"""The backend helpers in process: the test backend's Starlette app through
httpx.ASGITransport, writing to the reference server, read back with the Python readers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from fastapi import FastAPI, Request

import durable_streams as ds
from durable_streams.generations import (
    ChunkFramer,
    GenerationResult,
    MessageAssembler,
    aread_chunks,
    aread_message,
    generation_response,
    open_generation,
    resume_response,
    write_generation,
)
from injection import inject_status

from .backend import SCENARIOS, Backend, Boom

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("core_impl")]


def produced(scenario: str, chat_id: str) -> dict[str, Any]:
    framer = ChunkFramer(f"msg-{chat_id}")
    assembler = MessageAssembler()
    before, after = SCENARIOS[scenario]
    for item in [*before, *after]:
        for chunk in framer.feed(item):
            assembler.feed(chunk)
    for chunk in framer.finish():
        assembler.feed(chunk)
    return assembler.message


def chat_body(chat_id: str, text: str) -> dict[str, Any]:
    """What createDurableChatTransport posts."""
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}
    return {"id": chat_id, "messages": [user], "trigger": "submit-message", "messageId": None}


def client_for(backend: Backend) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=backend.app), base_url="http://app")


@pytest.mark.parametrize("scenario", ["text", "rich"])
async def test_immediate_answers_201_with_the_stream_and_writes_it_all(
    server_url: str, scenario: str
) -> None:
    chat_id = f"chat-{uuid.uuid4().hex}"
    async with (
        anyio.create_task_group() as group,
        client_for(Backend(server_url, task_group=group)) as client,
    ):
        answer = await client.post("/api/chat", json=chat_body(chat_id, scenario))
        assert answer.status_code == 201
        url = answer.headers["location"]
        assert answer.json() == {"streamUrl": url}
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["access-control-expose-headers"] == "Location"
        assert url.startswith(f"{server_url}/chats/{chat_id}/")
        message = await aread_message(url, wait=30)
    assert message.status == "finished" and message.closed
    assert message.message == produced(scenario, chat_id)
    assert message.id == f"msg-{chat_id}"


async def test_await_answers_200_with_the_final_offset_after_the_last_chunk(
    server_url: str,
) -> None:
    chat_id = f"chat-{uuid.uuid4().hex}"
    async with client_for(Backend(server_url, mode="await")) as client:
        answer = await client.post("/api/chat", json=chat_body(chat_id, "rich"))
    assert answer.status_code == 200
    url = answer.headers["location"]
    head = await ds.AsyncDurableStream(url).head()
    assert head.closed
    assert answer.json() == {"streamUrl": url, "finalOffset": head.offset}
    message = await aread_message(url, live=False)
    assert message.status == "finished" and message.closed
    assert message.finish_reason == "stop"
    assert message.text == (
        "Let me check the weather.It is -3.5 °C and snowing in Oslo ❄️, “ski” weather."
    )
    assert message.reasoning == "The user wants the weather."
    [weather, lookup] = message.tool_calls
    assert (weather.tool_name, weather.state, weather.input, weather.output) == (
        "weather",
        "output-available",
        {"city": "Oslo"},
        {"celsius": -3.5, "sky": "snow", "alerts": None},
    )
    assert (lookup.tool_name, lookup.dynamic, lookup.state, lookup.error_text) == (
        "lookup",
        True,
        "output-error",
        "no index",
    )


async def test_a_failed_source_ends_the_stream_with_an_error_chunk(server_url: str) -> None:
    chat_id = f"chat-{uuid.uuid4().hex}"
    backend = Backend(server_url, mode="await")
    async with client_for(backend) as client:
        answer = await client.post("/api/chat", json=chat_body(chat_id, "fail"))
    assert answer.status_code == 200
    url = answer.headers["location"]
    async with aread_chunks(url, live=False) as response:
        chunks = [chunk async for chunk in response]
        assert response.stream_closed
    assert [c["type"] for c in chunks] == [
        "start",
        "text-start",
        "text-delta",
        "text-delta",
        "text-end",
        "error",
    ]
    assert chunks[-1] == {"type": "error", "errorText": "generation failed: the model went away"}
    message = await aread_message(url)
    assert (message.status, message.closed, message.text) == ("failed", True, "Partial answer")
    assert message.error_text == "generation failed: the model went away"
    result = backend.results[chat_id]
    assert result.status == "failed" and isinstance(result.error, Boom)
    assert result.chunks == len(chunks)


async def test_resume_says_which_generation_is_in_flight(server_url: str) -> None:
    chat_id = f"chat-{uuid.uuid4().hex}"
    async with anyio.create_task_group() as group:
        backend = Backend(server_url, task_group=group)
        async with client_for(backend) as client:
            assert (await client.get(f"/api/chat/{chat_id}/stream")).status_code == 204
            answer = await client.post("/api/chat", json=chat_body(chat_id, "held"))
            url = answer.headers["location"]
            # Held: the answer came back while the source waits, and the stream is open.
            live = await client.get(f"/api/chat/{chat_id}/stream")
            assert live.status_code == 200
            assert live.headers["location"] == url and live.json() == {"streamUrl": url}
            partial = await aread_message(url, live=False)
            assert partial.status == "unfinished" and not partial.closed
            await client.post(f"/release/{chat_id}")
            message = await aread_message(url, wait=30)
            assert message.status == "finished"
            assert (await client.get(f"/api/chat/{chat_id}/stream")).status_code == 204
    # An active generation not cleared, but closed or gone, is not in flight either.
    assert (await resume_response(url)).status_code == 204
    assert (await resume_response(f"{server_url}/chats/none/{uuid.uuid4().hex}")).status_code == 204
    unchecked = await resume_response(url, check=False, read_url="/proxy/stream")
    assert unchecked.status_code == 200 and unchecked.headers["location"] == "/proxy/stream"


async def test_chunks_resume_from_an_offset_and_each_is_stored_once(stream_url: str) -> None:
    """A reader stops mid-generation and another resumes from its offset: together they see
    every chunk once, in order (3000 deltas, batched by the producer)."""
    deltas = [f"token {i} " for i in range(3000)]
    release = anyio.Event()
    results: list[GenerationResult] = []

    async def source() -> AsyncIterator[str]:
        for delta in deltas[:1500]:
            yield delta
        await release.wait()
        for delta in deltas[1500:]:
            yield delta

    handle = await open_generation(stream_url)

    async def write() -> None:
        results.append(await write_generation(source(), handle, message_id="m1", linger_ms=1))

    async with anyio.create_task_group() as group:
        group.start_soon(write)
        first = []
        async with aread_chunks(stream_url) as response:
            async for chunk in response:
                first.append(chunk)
                if len(first) == 1502:  # start, text-start, the first 1500 deltas
                    break
            offset = response.offset
        release.set()
        async with aread_chunks(stream_url, offset=offset) as response:
            rest = [chunk async for chunk in response]
            assert response.stream_closed
    [result] = results
    assert result.status == "finished" and result.chunks == len(deltas) + 4
    assert response.offset == result.final_offset
    chunks = first + rest
    assert [c.get("delta") for c in chunks[2:-2]] == deltas
    assert chunks[0] == {"type": "start", "messageId": "m1"}
    assert [c["type"] for c in chunks[-2:]] == ["text-end", "finish"]
    message = await aread_message(stream_url)
    assert message.text == "".join(deltas) and message.chunks == len(chunks)


async def test_a_server_refusing_the_chunks_ends_the_stream_as_failed(stream_url: str) -> None:
    release = anyio.Event()
    results: list[GenerationResult] = []

    async def source() -> AsyncIterator[str]:
        yield "stored "
        await release.wait()
        yield "refused"

    async with anyio.create_task_group() as group:
        response = await generation_response(
            source(),
            stream_url,
            task_group=group,
            on_done=results.append,
            error_text=lambda exc: "the server refused",
        )
        assert response.status_code == 201
        async with aread_chunks(stream_url) as reader:
            async for chunk in reader:
                if chunk.get("delta") == "stored ":
                    break
        base = f"{urlsplit(stream_url).scheme}://{urlsplit(stream_url).netloc}"
        inject_status(base, urlsplit(stream_url).path, status=400, count=1, method="POST")
        release.set()
    [result] = results
    assert result.status == "failed" and isinstance(result.error, ds.DurableStreamError)
    message = await aread_message(stream_url, live=False)
    assert (message.status, message.closed) == ("failed", True)
    assert message.text == "stored " and message.error_text == "the server refused"
    assert result.chunks == message.chunks  # the stored prefix and the error chunk
    assert isinstance(result.error, ds.BadRequestError)  # what the server said, not "closed"


async def test_a_server_refusing_even_the_close_leaves_the_stream_unfinished(
    stream_url: str,
) -> None:
    handle = await open_generation(stream_url)
    base = f"{urlsplit(stream_url).scheme}://{urlsplit(stream_url).netloc}"
    inject_status(base, urlsplit(stream_url).path, status=400, count=10, method="POST")
    try:

        async def source() -> AsyncIterator[str]:
            yield "refused"

        result = await write_generation(source(), handle)
    finally:
        httpx.delete(f"{base}/_test/inject-error").raise_for_status()
    assert (result.status, result.chunks, result.final_offset) == ("unfinished", 0, None)
    assert isinstance(result.error, ds.BadRequestError)
    message = await aread_message(stream_url, live=False)
    assert (message.status, message.closed, message.chunks) == ("unfinished", False, 0)


async def test_a_stream_that_cannot_be_created_raises_before_any_answer(stream_url: str) -> None:
    await ds.AsyncDurableStream.create(stream_url, content_type="text/plain")

    async def source() -> AsyncIterator[str]:
        yield "never"

    with pytest.raises(ds.StreamExistsError):
        await generation_response(source(), stream_url)
    with pytest.raises(ds.UsageError):
        await generation_response(source(), stream_url, mode="later")  # type: ignore[arg-type]


async def test_a_cancelled_writer_ends_the_stream_as_interrupted(stream_url: str) -> None:
    async def source() -> AsyncIterator[str]:
        yield "before the shutdown"
        await anyio.sleep_forever()
        yield "never"

    handle = await open_generation(stream_url)
    async with anyio.create_task_group() as group:
        group.start_soon(write_generation, source(), handle)
        async with aread_chunks(stream_url) as response:
            async for chunk in response:
                if chunk.get("delta") == "before the shutdown":
                    break
        group.cancel_scope.cancel()  # what a server's shutdown does to its tasks
    message = await aread_message(stream_url, live=False)
    assert (message.status, message.closed) == ("failed", True)
    assert message.text == "before the shutdown"
    assert message.error_text == "The generation was interrupted."


async def test_fastapi_endpoints_return_the_helpers_responses(server_url: str) -> None:
    # FastAPI resolves the endpoints' annotations (strings here) among the module's names.
    app = FastAPI()
    active: dict[str, str] = {}

    async def words() -> AsyncIterator[str]:
        yield "from "
        yield "FastAPI"

    @app.post("/api/chat")
    async def chat(request: Request) -> Any:
        body = await request.json()
        url = f"{server_url}/chats/{body['id']}/{uuid.uuid4().hex}"
        active[body["id"]] = url
        return await generation_response(words(), url)

    @app.get("/api/chat/{chat_id}/stream")
    async def reconnect(chat_id: str) -> Any:
        return await resume_response(active.get(chat_id))

    chat_id = f"chat-{uuid.uuid4().hex}"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        answer = await client.post("/api/chat", json=chat_body(chat_id, "hi"))
        assert answer.status_code == 201
        assert answer.json() == {"streamUrl": answer.headers["location"]}
        # ASGITransport returns once the app is done, the background writing included.
        message = await aread_message(answer.headers["location"], live=False)
        assert (message.status, message.text) == ("finished", "from FastAPI")
        # Not cleared by the app, but closed: nothing to resume.
        assert (await client.get(f"/api/chat/{chat_id}/stream")).status_code == 204
        assert (await client.get("/api/chat/other/stream")).status_code == 204
