"""A producer's life against a real server: gap-less when a batch fails in the middle, and
prompt, typed and quiet when it is closed, interrupted or cancelled."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from durable_streams import (
    AsyncDurableStream,
    DurableStream,
    IdempotentProducer,
    PayloadTooLargeError,
    ProducerClosedError,
    RetryPolicy,
    SyncIdempotentProducer,
    UndeliveredError,
    stream,
)
from durable_streams.server import Limits, Server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from injection import inject_status

JSON = "application/json"
# Waits long enough that a producer which waited for its retries would hit the test timeout.
PATIENT = RetryPolicy(max_retries=None, initial_delay=0.05, max_delay=0.2, deadline=600)


def stored(url: str) -> list[Any]:
    with stream(url) as response:
        return response.read_json()


_HELD: list[socket.socket] = []


def dead_url() -> str:
    """A URL where nothing listens: every connection attempt is refused. The port stays
    bound (not listening) for the session, so no server started meanwhile can take it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
    return f"http://127.0.0.1:{sock.getsockname()[1]}/nobody"


@pytest.fixture(autouse=True, scope="module")
def _release_held_ports() -> Iterator[None]:
    yield
    while _HELD:
        _HELD.pop().close()


@pytest.mark.parametrize("gapless", [True, False])
def test_a_batch_refused_in_the_middle_stops_what_follows_unless_fire_and_forget(
    server_url: str, stream_url: str, gapless: bool
) -> None:
    handle = DurableStream.create(stream_url, content_type=JSON)
    first = [{"n": n} for n in range(100)]
    rest = [{"n": n} for n in range(100, 1000)]
    with SyncIdempotentProducer(
        handle, producer_id="p", max_batch_items=10, max_in_flight=4, gapless=gapless
    ) as producer:
        for message in first:
            producer.append_nowait(message)
        producer.flush()
        path = stream_url.removeprefix(server_url)
        inject_status(server_url, path, status=400, count=1, method="POST")
        taken = 0
        for message in rest:
            try:
                producer.append_nowait(message)
            except ProducerClosedError:
                assert gapless  # it stopped taking messages once a batch failed
                break
            taken += 1
        with pytest.raises(UndeliveredError) as info:
            producer.flush()
    handle.close()
    held = stored(stream_url)
    failed = info.value.failures
    if gapless:
        assert held == first  # a prefix of what was appended, nothing after the refused batch
        assert sum(f.count for f in failed) == taken
        assert all(isinstance(f.error, ProducerClosedError) for f in failed[1:])
    else:
        # The refused batch is the first after the fault was armed: how many messages it
        # carried depends on how fast they came (at most max_batch_items).
        assert len(failed) == 1 and 1 <= failed[0].count <= 10
        assert failed[0].messages()[0] == {"n": 100}
        assert held == [m for m in first + rest if m not in failed[0].messages()]


@pytest.mark.timeout(60)
def test_sync_producer_after_close_is_typed_and_quiet(stream_url: str) -> None:
    handle = DurableStream.create(stream_url, content_type=JSON)
    producer = SyncIdempotentProducer(handle, producer_id="p")
    producer.append_nowait({"n": 1})
    producer.close()
    producer.flush()  # nothing is buffered after close: it returns at once
    producer.close()
    with pytest.raises(ProducerClosedError):
        producer.append_nowait({"n": 2})
    with pytest.raises(ProducerClosedError):
        producer.close_stream()
    with pytest.raises(ProducerClosedError):
        producer.restart()
    handle.close()
    assert stored(stream_url) == [{"n": 1}]


@pytest.mark.timeout(60)
def test_ctrl_c_in_a_sync_producers_block_stops_at_once_and_says_what_was_not_delivered() -> None:
    with (
        pytest.raises(KeyboardInterrupt) as info,
        SyncIdempotentProducer(
            dead_url(), producer_id="p", content_type=JSON, retry=PATIENT
        ) as producer,
    ):
        for n in range(5):
            producer.append_nowait({"n": n})
        raise KeyboardInterrupt
    notes = getattr(info.value, "__notes__", [])
    if sys.version_info >= (3, 11):
        assert notes == ["the producer was stopped with 5 message(s) not delivered"]
    assert sum(f.count for f in producer.failures) == 5
    assert all(isinstance(f.error, ProducerClosedError) for f in producer.failures)


@pytest.mark.timeout(60)
def test_ctrl_c_keeps_what_was_not_delivered_in_the_state_file(tmp_path: Path) -> None:
    url = dead_url()
    state = tmp_path / "p.state"
    options: dict[str, Any] = {"producer_id": "p", "content_type": JSON, "retry": PATIENT}
    with (
        pytest.raises(KeyboardInterrupt),
        SyncIdempotentProducer(url, state=state, **options) as producer,
    ):
        for n in range(5):
            producer.append_nowait({"n": n})
        raise KeyboardInterrupt
    assert producer.failures and all(f.kept for f in producer.failures)
    again = SyncIdempotentProducer(url, state=state, **options)
    assert again.messages_taken == 5 and again.stats().buffered_messages == 5
    with pytest.raises(UndeliveredError):
        again.close(timeout=0)


@pytest.mark.timeout(60)
@pytest.mark.anyio
async def test_cancelling_an_async_producers_block_stops_at_once() -> None:
    producer = IdempotentProducer(dead_url(), producer_id="p", content_type=JSON, retry=PATIENT)
    with anyio.CancelScope() as scope:
        async with producer:
            for n in range(5):
                producer.append_nowait({"n": n})
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert sum(f.count for f in producer.failures) == 5


@pytest.mark.anyio
async def test_an_async_producer_closed_twice_or_flushed_after_close_is_harmless(
    stream_url: str,
) -> None:
    async with await AsyncDurableStream.create(stream_url, content_type=JSON) as handle:
        producer = IdempotentProducer(handle, producer_id="p")
        producer.append_nowait({"n": 1})
        await producer.close()
        await producer.close()
        await producer.flush()
        with pytest.raises(ProducerClosedError):
            producer.append_nowait({"n": 2})
    assert stored(stream_url) == [{"n": 1}]


@pytest.mark.timeout(60)
def test_a_message_over_the_servers_limit_fails_at_once_as_too_large() -> None:
    """The server answers 413 before reading the body: the producer must see that answer,
    not a connection reset to retry (it used to re-upload the batch eight times)."""
    server = Server(limits=Limits(max_body_bytes=1 << 20))
    base = server.start()
    try:
        handle = DurableStream.create(f"{base}/big", content_type=JSON)
        with pytest.raises(UndeliveredError) as info:  # noqa: SIM117
            with SyncIdempotentProducer(handle, producer_id="p", retry=PATIENT) as producer:
                producer.append_nowait({"n": 0})
                producer.flush()
                producer.append_nowait({"big": "x" * (12 << 20)})
        first = info.value.failures[0]
        assert isinstance(first.error, PayloadTooLargeError) and not first.maybe_delivered
        assert producer.stats().attempts_failed == 0
        handle.close()
        assert stored(f"{base}/big") == [{"n": 0}]
    finally:
        server.close()
