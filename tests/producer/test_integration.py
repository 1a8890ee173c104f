"""The producers against the reference server: batching, pipelining, epochs, fencing,
closure, content types, backpressure and server-side faults."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from durable_streams import (
    AsyncClient,
    AsyncDurableStream,
    BufferFullError,
    ContentTypeMismatchError,
    DeadlineExceededError,
    DurableStream,
    IdempotentProducer,
    JSONParseError,
    ProducerClosedError,
    RetryPolicy,
    SequenceReusedError,
    StaleEpochError,
    StreamClosedError,
    SyncIdempotentProducer,
    UndeliveredError,
    stream,
)
from durable_streams._writing._sequencer import fresh_epoch

FAST_RETRY = RetryPolicy(max_retries=20, initial_delay=0.01, max_delay=0.2, deadline=20)


def read_all(url: str) -> list[Any]:
    with stream(url) as response:
        return response.read_json()


def read_bytes(url: str) -> bytes:
    with stream(url) as response:
        return response.read_bytes()


def inject(server_url: str, url: str, **fault: Any) -> None:
    body = {"path": urlsplit(url).path, **fault}
    httpx.post(f"{server_url}/_test/inject-error", json=body).raise_for_status()


@pytest.fixture
def clear_faults(server_url: str) -> Iterator[None]:
    yield
    httpx.delete(f"{server_url}/_test/inject-error").raise_for_status()


class Recorder:
    """Counts requests and how many were on the way at once, through httpx event hooks."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.statuses: list[int] = []
        self.open = 0
        self.most_open = 0

    async def on_request(self, request: httpx.Request) -> None:
        self.bodies.append(request.content)
        self.open += 1
        self.most_open = max(self.most_open, self.open)

    async def on_response(self, response: httpx.Response) -> None:
        self.open -= 1
        self.statuses.append(response.status_code)

    def client(self) -> httpx.AsyncClient:
        hooks = {"request": [self.on_request], "response": [self.on_response]}
        return httpx.AsyncClient(event_hooks=hooks)  # type: ignore[dict-item]


# -- async -----------------------------------------------------------------------------------


# The example never closes its stream handle, so the handle's pooled connection is left for
# the garbage collector; collect it here, where that warning is expected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.anyio
async def test_the_readme_example_runs_verbatim(stream_url: str) -> None:
    url = stream_url
    printed: list[str] = []
    print = printed.append

    async def main() -> None:
        stream = await AsyncDurableStream.create(url, content_type="application/json")
        producer = IdempotentProducer(
            stream,
            producer_id="event-processor-1",
            auto_claim=True,
            linger_ms=5,
            max_batch_bytes=65536,
            on_error=lambda err: print(f"Batch failed: {err}"),
        )
        for event in [{"type": "click", "x": 100}, {"type": "scroll", "y": 200}]:
            producer.append_nowait(json.dumps(event))
        await producer.flush()
        await producer.close()

    await main()
    await main()  # a restarted worker: its own session, so its messages are stored too
    gc.collect()
    assert printed == []
    assert read_all(url) == [{"type": "click", "x": 100}, {"type": "scroll", "y": 200}] * 2


@pytest.mark.anyio
async def test_restarted_auto_claim_sessions_store_every_run(stream_url: str) -> None:
    handle = await AsyncDurableStream.create(stream_url, content_type="application/json")
    errors: list[Exception] = []
    epochs = []
    for run in range(3):
        async with IdempotentProducer(
            handle, producer_id="worker", auto_claim=True, on_error=errors.append
        ) as producer:
            for n in range(5):
                producer.append_nowait({"run": run, "n": n})
            await producer.flush()
            epochs.append(producer.epoch)
    await handle.aclose()
    assert errors == []
    assert epochs == sorted(set(epochs))  # each session at a newer epoch than the last
    assert read_all(stream_url) == [{"run": r, "n": n} for r in range(3) for n in range(5)]


@pytest.mark.anyio
async def test_batches_respect_max_batch_bytes_and_keep_order(stream_url: str) -> None:
    recorder = Recorder()
    async with (
        recorder.client() as client,
        await AsyncDurableStream.create(stream_url, content_type="application/json") as handle,
        IdempotentProducer(
            handle, producer_id="p", max_batch_bytes=2000, linger_ms=50, client=client
        ) as producer,
    ):
        for i in range(3000):
            producer.append_nowait({"i": i, "pad": "x" * (i % 20)})
        big = {"big": "y" * 5000}
        producer.append_nowait(big)
        producer.append_nowait({"i": "last"})
        await producer.flush()
        assert producer.buffered_bytes == 0
    got = read_all(stream_url)
    assert got[:3000] == [{"i": i, "pad": "x" * (i % 20)} for i in range(3000)]
    assert got[3000:] == [big, {"i": "last"}]
    posts = [b for b in recorder.bodies if b]
    assert len(posts) < 3000 / 20
    assert all(len(b) <= 2000 for b in posts if b"big" not in b)
    assert any(b"big" in b and b.count(b"{") == 1 for b in posts)  # the big one went alone


@pytest.mark.anyio
async def test_pipelining_sends_several_batches_at_once_and_order_holds(stream_url: str) -> None:
    recorder = Recorder()
    async with recorder.client() as client:
        handle = await AsyncDurableStream.create(
            stream_url, content_type="application/json", client=client
        )
        async with IdempotentProducer(
            handle,
            producer_id="p",
            max_batch_bytes=64,
            max_in_flight=8,
            linger_ms=0,
            retry=FAST_RETRY,
            client=client,
        ) as producer:
            for i in range(2000):
                producer.append_nowait(i)
            await producer.flush()
    assert read_all(stream_url) == list(range(2000))
    assert recorder.most_open > 1


@pytest.mark.anyio
async def test_append_returns_acknowledgements_with_offsets(stream_url: str) -> None:
    async with (
        await AsyncDurableStream.create(stream_url, content_type="text/plain") as handle,
        IdempotentProducer(handle, producer_id="p", linger_ms=0) as producer,
    ):
        first = await producer.append("a")
        await producer.flush()
        second = await producer.append("b")
        one, two = await first, await second
    assert one.status == 200 and not one.duplicate and one.producer_seq == 0
    assert two.producer_seq == 1
    assert one.offset is not None and two.offset is not None and one.offset < two.offset
    assert read_bytes(stream_url).decode() == "ab"


@pytest.mark.anyio
async def test_restart_moves_to_a_new_epoch(stream_url: str) -> None:
    async with (
        await AsyncDurableStream.create(stream_url, content_type="application/json") as handle,
        IdempotentProducer(handle, producer_id="p") as producer,
    ):
        producer.append_nowait(1)
        await producer.restart()
        assert (producer.epoch, producer.next_seq) == (1, 0)
        ack = await producer.append(2)
        result = await ack
        assert (result.producer_epoch, result.producer_seq) == (1, 0)
    assert read_all(stream_url) == [1, 2]


@pytest.mark.anyio
async def test_a_fenced_producer_reports_stale_epoch_and_stops(stream_url: str) -> None:
    handle = await AsyncDurableStream.create(stream_url, content_type="application/json")
    old = IdempotentProducer(handle, producer_id="p", epoch=0)
    async with old:
        old.append_nowait("1")
        await old.flush()
        async with IdempotentProducer(handle, producer_id="p", epoch=3) as new:
            new.append_nowait("2")
            await new.flush()
        old.append_nowait("3")
        with pytest.raises(UndeliveredError) as info:
            await old.flush()
        assert isinstance(info.value.__cause__, StaleEpochError)
        assert info.value.failures[0].messages() == [3]
        with pytest.raises(ProducerClosedError):
            old.append_nowait("4")
    await handle.aclose()
    assert read_all(stream_url) == [1, 2]


@pytest.mark.anyio
async def test_auto_claim_starts_above_an_epoch_the_clock_has_not_reached(
    stream_url: str,
) -> None:
    handle = await AsyncDurableStream.create(stream_url, content_type="application/json")
    ahead = fresh_epoch() + 10**9  # another writer's epoch, far above this clock
    async with IdempotentProducer(handle, producer_id="p", epoch=ahead) as other:
        other.append_nowait("1")
    async with IdempotentProducer(handle, producer_id="p", auto_claim=True) as producer:
        ack = await producer.append("2")
        result = await ack
        assert producer.epoch == ahead + 1 and result.producer_epoch == ahead + 1
    await handle.aclose()
    assert read_all(stream_url) == [1, 2]


@pytest.mark.anyio
async def test_a_newer_session_fences_an_older_one_still_running(stream_url: str) -> None:
    """Two auto_claim sessions under one producer id: the newer one wins, the older one stops
    with StaleEpochError on its next batch, and nothing it was refused is stored."""
    handle = await AsyncDurableStream.create(stream_url, content_type="application/json")
    old_errors: list[Exception] = []
    old = IdempotentProducer(handle, producer_id="p", auto_claim=True, on_error=old_errors.append)
    await (await old.append("1"))
    async with IdempotentProducer(handle, producer_id="p", auto_claim=True) as new:
        await (await new.append("2"))
        assert new.epoch > old.epoch
        old.append_nowait("3")
        with pytest.raises(UndeliveredError) as info:
            await old.flush()
        assert isinstance(info.value.__cause__, StaleEpochError)
        assert [type(e) for e in old_errors] == [StaleEpochError]
        with pytest.raises(ProducerClosedError):
            old.append_nowait("4")
        await (await new.append("5"))  # the newer session is not fenced back
    await old.close()
    await handle.aclose()
    assert read_all(stream_url) == [1, 2, 5]


@pytest.mark.anyio
async def test_a_second_session_at_the_same_epoch_fails_loudly(stream_url: str) -> None:
    handle = await AsyncDurableStream.create(stream_url, content_type="application/json")
    async with IdempotentProducer(handle, producer_id="p") as first:
        first.append_nowait("1")
    reported: list[Exception] = []
    second = IdempotentProducer(handle, producer_id="p", on_error=reported.append)
    second.append_nowait("2")
    with pytest.raises(UndeliveredError) as info:
        await second.flush()
    assert isinstance(info.value.__cause__, SequenceReusedError)
    assert info.value.failures[0].messages() == [2]
    assert [type(e) for e in reported] == [SequenceReusedError]
    await second.close()
    async with IdempotentProducer(handle, producer_id="p", auto_claim=True) as third:
        third.append_nowait("3")
    await handle.aclose()
    assert read_all(stream_url) == [1, 3]


@pytest.mark.anyio
async def test_a_declared_replay_at_the_same_epoch_is_deduplicated(stream_url: str) -> None:
    async with await AsyncDurableStream.create(stream_url, content_type="application/json") as h:
        for _ in range(2):  # the second session replays the first one's messages
            async with IdempotentProducer(h, producer_id="p", linger_ms=0, replay=True) as p:
                first = await p.append({"msg": "first"})
                second = await p.append({"msg": "second"})
                results = [await first, await second]
    assert all(r.duplicate for r in results)
    assert read_all(stream_url) == [{"msg": "first"}, {"msg": "second"}]


@pytest.mark.anyio
async def test_closing_through_a_producer_twice_and_by_another_producer(stream_url: str) -> None:
    async with (
        await AsyncDurableStream.create(stream_url, content_type="text/plain") as handle,
        IdempotentProducer(handle, producer_id="one") as producer,
    ):
        closed = await producer.close_stream()  # the server answers a close-only with 204
        assert closed.closed
        assert not closed.duplicate  # which is how it answers a first close, too
        assert await producer.close_stream("ignored") == closed
        other = IdempotentProducer(handle, producer_id="two")
        with pytest.raises(StreamClosedError):
            await other.close_stream()
        await other.close()
    assert read_bytes(stream_url) == b""


@pytest.mark.anyio
async def test_closed_stream_is_a_typed_error_not_a_retry_storm(stream_url: str) -> None:
    recorder = Recorder()
    errors: list[Exception] = []
    async with recorder.client() as client:
        handle = await AsyncDurableStream.create(
            stream_url, content_type="application/json", client=client
        )
        await handle.close_stream()
        producer = IdempotentProducer(
            handle, producer_id="p", client=client, max_batch_bytes=20, on_error=errors.append
        )
        for i in range(10):
            producer.append_nowait({"n": i})
        with pytest.raises(UndeliveredError) as info:
            await producer.close()
    assert isinstance(info.value.__cause__, StreamClosedError)
    assert sum(f.count for f in info.value.failures) == 10
    assert len(errors) == len(info.value.failures)
    assert all(isinstance(e, StreamClosedError) for e in errors)
    assert recorder.statuses.count(409) == 1


@pytest.mark.anyio
async def test_content_type_mismatch_fails_the_batch(stream_url: str) -> None:
    await (await AsyncDurableStream.create(stream_url, content_type="application/json")).aclose()
    producer = IdempotentProducer(stream_url, producer_id="p", content_type="text/plain")
    producer.append_nowait("hello")
    with pytest.raises(UndeliveredError) as info:
        await producer.close()
    assert isinstance(info.value.__cause__, ContentTypeMismatchError)
    assert read_all(stream_url) == []


@pytest.mark.anyio
async def test_close_stream_through_the_producer(stream_url: str) -> None:
    async with (
        await AsyncDurableStream.create(stream_url, content_type="application/json") as handle,
        IdempotentProducer(handle, producer_id="p") as producer,
    ):
        producer.append_nowait(1)
        result = await producer.close_stream({"bye": True})
        assert result.closed and result.offset is not None
        with pytest.raises(ProducerClosedError):
            producer.append_nowait(2)
        head = await handle.head()
    assert head.closed and head.offset == result.offset
    assert read_all(stream_url) == [1, {"bye": True}]


@pytest.mark.anyio
async def test_invalid_json_is_refused_at_once_and_nothing_is_buffered(stream_url: str) -> None:
    async with (
        await AsyncDurableStream.create(stream_url, content_type="application/json") as handle,
        IdempotentProducer(handle, producer_id="p") as producer,
    ):
        with pytest.raises(JSONParseError):
            producer.append_nowait('{"unterminated": ')
        assert producer.buffered_bytes == 0
        producer.append_nowait("[1, 2]")
    assert read_all(stream_url) == [[1, 2]]


@pytest.mark.anyio
async def test_a_full_buffer_refuses_append_nowait_and_append_waits(stream_url: str) -> None:
    async with (
        await AsyncDurableStream.create(stream_url, content_type="application/octet-stream") as h,
        IdempotentProducer(h, producer_id="p", max_buffered_bytes=4096, linger_ms=0) as producer,
    ):
        accepted = 0
        with pytest.raises(BufferFullError):
            for _ in range(10_000):
                producer.append_nowait(b"x" * 100)
                accepted += 1
        assert 4096 / 100 <= accepted < 10_000
        for _ in range(200):  # each waits for room instead of failing
            await producer.append(b"y" * 100)
        await producer.flush()
    data = read_bytes(stream_url)
    assert data == b"x" * 100 * accepted + b"y" * 100 * 200


@pytest.mark.anyio
async def test_server_faults_are_retried_and_stored_once(
    server_url: str, stream_url: str, clear_faults: None
) -> None:
    async with await AsyncDurableStream.create(stream_url, content_type="application/json") as h:
        inject(server_url, stream_url, status=503, retryAfter=0, count=2, method="POST")
        inject(server_url, stream_url, dropConnection=True, count=2, method="POST")
        inject(server_url, stream_url, status=500, count=1, method="POST")
        async with IdempotentProducer(
            h, producer_id="p", retry=FAST_RETRY, max_batch_bytes=100
        ) as producer:
            for i in range(300):
                producer.append_nowait(i)
    assert read_all(stream_url) == list(range(300))


@pytest.mark.anyio
async def test_close_gives_up_after_its_timeout_and_reports_what_is_left(
    server_url: str, stream_url: str, clear_faults: None
) -> None:
    handle = await AsyncDurableStream.create(stream_url, content_type="application/json")
    inject(server_url, stream_url, delayMs=3000, count=1, method="POST")
    producer = IdempotentProducer(handle, producer_id="p")
    producer.append_nowait({"late": True})
    with anyio.fail_after(2.5):
        with pytest.raises(UndeliveredError) as info:
            await producer.close(timeout=0.3)
    (failed,) = info.value.failures
    assert isinstance(failed.error, DeadlineExceededError)
    assert failed.messages() == [{"late": True}]
    await handle.aclose()


@pytest.mark.anyio
async def test_retries_that_run_out_fail_the_batch_through_on_error(stream_url: str) -> None:
    errors: list[Exception] = []
    # nothing listens on this port: every attempt is refused
    dead = f"http://127.0.0.1:9/{uuid.uuid4().hex}"
    producer = IdempotentProducer(
        dead,
        producer_id="p",
        content_type="application/json",
        retry=RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.01),
        on_error=errors.append,
    )
    producer.append_nowait(1)
    with pytest.raises(UndeliveredError) as info:
        await producer.flush()
    assert [type(e).__name__ for e in errors] == ["TransportError"]
    assert not info.value.failures[0].maybe_delivered
    await producer.close()


def test_async_producer_outside_an_event_loop_says_what_to_use(stream_url: str) -> None:
    producer = IdempotentProducer(stream_url, producer_id="p", content_type="text/plain")
    with pytest.raises(RuntimeError, match="SyncIdempotentProducer"):
        producer.append_nowait("x")
    assert producer.buffered_bytes == 0


def test_unknown_content_type_is_refused_up_front(stream_url: str) -> None:
    with pytest.raises(ValueError, match="content type"):
        IdempotentProducer(stream_url, producer_id="p")


# -- sync ------------------------------------------------------------------------------------


def test_sync_producer_from_many_threads(stream_url: str) -> None:
    handle = DurableStream.create(stream_url, content_type="application/json")
    with SyncIdempotentProducer(handle, producer_id="p", max_batch_bytes=4096) as producer:

        def work(worker: int) -> None:
            for i in range(2000):
                producer.append_nowait({"w": worker, "i": i})

        threads = [__import__("threading").Thread(target=work, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        producer.flush()
    handle.close()
    got = read_all(stream_url)
    assert len(got) == 8000
    for worker in range(4):
        assert [m["i"] for m in got if m["w"] == worker] == list(range(2000))


def test_sync_append_futures_close_stream_and_closed_errors(stream_url: str) -> None:
    with DurableStream.create(stream_url, content_type="text/plain") as handle:
        producer = SyncIdempotentProducer(handle, producer_id="p", linger_ms=0)
    future = producer.append("a")
    assert future.result(timeout=10).producer_seq == 0
    result = producer.close_stream("z")
    assert result.closed
    with pytest.raises(ProducerClosedError):
        producer.append_nowait("b")
    producer.close()
    producer.close()
    assert read_bytes(stream_url).decode() == "az"
    assert not producer._runner.thread.is_alive()


def test_sync_flush_reports_failures(stream_url: str) -> None:
    with DurableStream.create(stream_url, content_type="application/json") as handle:
        handle.close_stream()
    seen: list[Exception] = []
    with SyncIdempotentProducer(handle, producer_id="p", on_error=seen.append) as producer:
        producer.append_nowait(1)
        with pytest.raises(UndeliveredError) as info:
            producer.flush()
        assert isinstance(info.value.__cause__, StreamClosedError)
        with pytest.raises(ProducerClosedError) as stopped:
            producer.append_nowait(2)
        assert isinstance(stopped.value.__cause__, StreamClosedError)
    assert len(seen) == 1


def test_sync_flush_timeout_is_a_deadline_error(
    server_url: str, stream_url: str, clear_faults: None
) -> None:
    with DurableStream.create(stream_url, content_type="application/json") as handle:
        pass
    inject(server_url, stream_url, delayMs=1500, count=1, method="POST")
    with SyncIdempotentProducer(handle, producer_id="p") as producer:
        producer.append_nowait(1)
        with pytest.raises(DeadlineExceededError):
            producer.flush(timeout=0.2)
        producer.flush(timeout=10)  # the batch was not lost: it arrives
    assert read_all(stream_url) == [1]


def test_asyncio_producer_without_context_manager(stream_url: str) -> None:
    async def main() -> None:
        handle = await AsyncDurableStream.create(stream_url, content_type="application/json")
        producer = IdempotentProducer(handle, producer_id="p")
        for i in range(100):
            producer.append_nowait(i)
        await producer.close()
        await handle.aclose()

    asyncio.run(main())
    assert read_all(stream_url) == list(range(100))


def test_the_readme_sync_example(stream_url: str) -> None:
    url = stream_url
    rows = [{"row": n} for n in range(50)]

    with (
        DurableStream.create(url, content_type="application/json") as handle,
        SyncIdempotentProducer(handle, producer_id="worker-7", auto_claim=True) as producer,
    ):
        for row in rows:
            producer.append_nowait(row)  # dicts, lists, numbers... or JSON text
        producer.flush()  # raises UndeliveredError if anything failed

    assert read_all(url) == rows


def test_the_readme_sync_example_run_twice_stores_both_runs(stream_url: str) -> None:
    def worker(rows: list[dict[str, int]]) -> None:
        with (
            DurableStream.create(stream_url, content_type="application/json") as handle,
            SyncIdempotentProducer(handle, producer_id="worker-7", auto_claim=True) as producer,
        ):
            for row in rows:
                producer.append_nowait(row)
            producer.flush()

    worker([{"run": 1}])
    worker([{"run": 2}, {"run": 3}])
    assert read_all(stream_url) == [{"run": 1}, {"run": 2}, {"run": 3}]


def test_a_sync_producer_left_open_delivers_at_interpreter_exit(stream_url: str) -> None:
    with DurableStream.create(stream_url, content_type="application/json"):
        pass
    script = (
        "import sys\n"
        "from durable_streams import SyncIdempotentProducer\n"
        "p = SyncIdempotentProducer(sys.argv[1], producer_id='x',\n"
        "    content_type='application/json', linger_ms=60_000)\n"
        "for i in range(10):\n"
        "    p.append_nowait(i)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, stream_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "was not closed; closing it at exit" in done.stderr
    assert read_all(stream_url) == list(range(10))


# Ending the loop under a running producer also cancels its sends before they start.
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_an_async_producer_dropped_with_data_warns(stream_url: str) -> None:
    async def main() -> None:
        producer = IdempotentProducer(stream_url, producer_id="p", content_type="text/plain")
        producer.append_nowait("never sent")  # and no close(): the loop ends with it buffered

    with pytest.warns(ResourceWarning, match="not yet delivered"):
        asyncio.run(main())
        gc.collect()


def test_a_replayed_group_from_a_threaded_producer_is_stored_once(stream_url: str) -> None:
    items = [{"n": n} for n in range(500)]
    with DurableStream.create(stream_url, content_type="application/json") as handle:
        for _ in range(3):  # each session replays the same group under the same numbers
            with SyncIdempotentProducer(
                handle, producer_id="replayer", linger_ms=0, max_batch_bytes=1000, replay=True
            ) as producer:
                producer.append_many_nowait(items)
    assert read_all(stream_url) == items


@pytest.mark.anyio
async def test_the_handles_retry_policy_applies() -> None:
    recorder = Recorder()
    policy = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.01)
    async with recorder.client() as client:
        # nothing listens on port 9: every attempt is refused
        handle = AsyncDurableStream(
            "http://127.0.0.1:9/s", content_type="application/json", client=client, retry=policy
        )
        producer = IdempotentProducer(handle, producer_id="p")
        producer.append_nowait(1)
        with pytest.raises(UndeliveredError):
            await producer.flush()
        await producer.close()
    assert len(recorder.bodies) == 3  # the first attempt and the policy's two retries


@pytest.mark.anyio
async def test_producers_sharing_a_saturated_pool_deliver_everything_once(
    stream_url: str, native_transport: None
) -> None:
    """Eight producers, one connection, so that each producer's next request would wait (its
    open batch is held while one of its batches is on its way): every message is stored
    once, in order, and closing delivers what was held, within the bound."""
    paths = [f"{stream_url}-{n}" for n in range(8)]
    async with AsyncClient(max_connections=1) as client:
        producers = []
        for n, path in enumerate(paths):
            handle = await client.create(path, content_type="application/json")
            producers.append(client.producer(handle, producer_id=f"p{n}", epoch=0))
        with anyio.fail_after(60):
            for i in range(200):
                for producer in producers:
                    producer.append_nowait({"i": i})
                await anyio.lowlevel.checkpoint()  # the senders run between rounds
            for producer in producers:
                await producer.close()
        (pool,) = client.dispatcher.native.pools()
        assert pool.connections <= 1
    for path, producer in zip(paths, producers, strict=True):
        assert [m["i"] for m in read_all(path)] == list(range(200))
        assert producer.stats().batches_acknowledged < 200  # batched, not a request each
