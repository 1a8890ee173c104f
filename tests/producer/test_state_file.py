"""The producer's state file (``state=``) against the test server: sessions resume where the
last one stopped, batches a close() gave up on are resent by the next session, and a file
that is in use, foreign or damaged is refused with a typed error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from durable_streams import (
    AsyncDurableStream,
    DurableStream,
    IdempotentProducer,
    ProducerClosedError,
    ProducerStateError,
    ProducerStateLockedError,
    RetryPolicy,
    SyncIdempotentProducer,
    UndeliveredError,
    stream,
)
from durable_streams._writing._sequencer import StoreChanges, StoredBatch
from durable_streams._writing._state_file import StateFile

JSON = "application/json"


def read_all(url: str) -> list[Any]:
    with stream(url) as response:
        return response.read_json()


@pytest.fixture
def state(tmp_path: Path) -> str:
    return str(tmp_path / "worker.producer")


@pytest.fixture
def clear_faults(server_url: str) -> Iterator[None]:
    yield
    httpx.delete(f"{server_url}/_test/inject-error").raise_for_status()


def test_each_session_resumes_the_files_epoch_and_sequence(stream_url: str, state: str) -> None:
    DurableStream.create(stream_url, content_type=JSON).close()
    positions = []
    for run in range(3):
        with SyncIdempotentProducer(
            stream_url, producer_id="w", content_type=JSON, state=state, linger_ms=0
        ) as producer:
            positions.append((producer.epoch, producer.next_seq))
            producer.append_nowait({"run": run})
            producer.flush()
    assert positions == [(0, 0), (0, 1), (0, 2)]
    assert read_all(stream_url) == [{"run": r} for r in range(3)]


def test_a_new_file_with_auto_claim_starts_at_a_fresh_epoch_then_keeps_it(
    stream_url: str, state: str
) -> None:
    DurableStream.create(stream_url, content_type=JSON).close()
    # An earlier writer without a file used epoch 0: a file-less restart at 0 would collide.
    with SyncIdempotentProducer(stream_url, producer_id="w", content_type=JSON) as first:
        first.append_nowait("0")
    epochs = []
    for run in (1, 2):
        with SyncIdempotentProducer(
            stream_url, producer_id="w", content_type=JSON, state=state, auto_claim=True
        ) as producer:
            producer.append_nowait(str(run))
            producer.flush()
            epochs.append(producer.epoch)
    assert epochs[0] > 0 and epochs[1] == epochs[0]
    assert read_all(stream_url) == [0, 1, 2]


@pytest.mark.anyio
async def test_batches_close_gave_up_on_stay_in_the_file_for_the_next_session(
    server_url: str, stream_url: str, state: str, clear_faults: None
) -> None:
    handle = await AsyncDurableStream.create(stream_url, content_type=JSON)
    body = {"path": urlsplit(stream_url).path, "status": 503, "count": 1000, "method": "POST"}
    httpx.post(f"{server_url}/_test/inject-error", json=body).raise_for_status()
    producer = IdempotentProducer(
        handle,
        producer_id="w",
        state=state,
        retry=RetryPolicy(max_retries=None, initial_delay=0.01, max_delay=0.05),
    )
    producer.append_nowait({"n": 1})
    producer.append_nowait({"n": 2})
    with pytest.raises(UndeliveredError) as info:
        await producer.close(timeout=0.3)
    assert all(f.kept for f in info.value.failures)
    assert "stays in the state file" in str(info.value)
    httpx.delete(f"{server_url}/_test/inject-error").raise_for_status()
    async with IdempotentProducer(handle, producer_id="w", state=state) as resumed:
        assert resumed.buffered_bytes > 0
        await resumed.flush()
    await handle.aclose()
    assert read_all(stream_url) == [{"n": 1}, {"n": 2}]


def test_a_second_producer_on_an_open_file_is_refused(stream_url: str, state: str) -> None:
    DurableStream.create(stream_url, content_type=JSON).close()
    options: dict[str, Any] = {"producer_id": "w", "content_type": JSON, "state": state}
    with (
        SyncIdempotentProducer(stream_url, **options),
        pytest.raises(ProducerStateLockedError, match="one file serves one producer"),
    ):
        SyncIdempotentProducer(stream_url, **options)
    with SyncIdempotentProducer(stream_url, **options) as again:  # closed: free again
        again.append_nowait(1)
    assert read_all(stream_url) == [1]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"producer_id": "other"}, "belongs to producer 'w'"),
        ({"url": "http://127.0.0.1:1/elsewhere"}, "belongs to producer 'w' on"),
        ({"content_type": "text/plain"}, "was written for a JSON stream"),
    ],
)
def test_a_file_of_another_producer_is_refused(
    state: str, change: dict[str, str], match: str
) -> None:
    url = "http://127.0.0.1:1/s"
    SyncIdempotentProducer(url, producer_id="w", content_type=JSON, state=state).close()
    options = {"url": url, "producer_id": "w", "content_type": JSON, **change}
    with pytest.raises(ProducerStateError, match=match):
        IdempotentProducer(options.pop("url"), state=state, **options)  # type: ignore[arg-type]


def test_a_damaged_file_is_refused(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.producer"
    damaged.write_bytes(b"not a database, just bytes " * 100)
    with pytest.raises(ProducerStateError, match="is not a producer state file"):
        IdempotentProducer(
            "http://127.0.0.1:1/s", producer_id="w", content_type=JSON, state=damaged
        )
    with pytest.raises(ProducerStateError, match="cannot be opened"):
        IdempotentProducer(
            "http://127.0.0.1:1/s",
            producer_id="w",
            content_type=JSON,
            state=tmp_path / "no-such-dir" / "w.producer",
        )


@pytest.mark.anyio
async def test_a_failed_write_fails_the_batches_before_they_are_sent(
    stream_url: str, state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = await AsyncDurableStream.create(stream_url, content_type=JSON)

    def disk_full(self: StateFile, changes: object) -> None:
        raise ProducerStateError("the producer state file cannot be written: disk full")

    producer = IdempotentProducer(handle, producer_id="w", state=state)
    monkeypatch.setattr(StateFile, "write", disk_full)
    producer.append_nowait({"n": 1})
    with pytest.raises(UndeliveredError) as info:
        await producer.flush()
    assert isinstance(info.value.__cause__, ProducerStateError)
    assert info.value.failures[0].messages() == [{"n": 1}]
    assert not info.value.failures[0].maybe_delivered
    await producer.close()  # the error was reported once; close() lets go of the file
    await handle.aclose()
    assert read_all(stream_url) == []  # nothing went out that the file did not record


@pytest.mark.timeout(30)
@pytest.mark.anyio
@pytest.mark.parametrize("gapless", [True, False])
async def test_restored_batches_fenced_by_another_writer_fail_and_flush_returns(
    stream_url: str, state: str, gapless: bool
) -> None:
    """A dead session left two batches in its file; meanwhile another writer took the
    producer id at a higher epoch. The first batch gets 403: either may have been stored
    before the fence, so neither is resent under a new number; both fail, flagged
    maybe_delivered, and flush() says so instead of waiting forever. Gap-less, the session
    stops there; fire-and-forget, it goes on under a claimed epoch."""
    handle = await AsyncDurableStream.create(stream_url, content_type=JSON)
    dead = StateFile(state, url=stream_url, producer_id="w", json_mode=True, epoch=3)
    stored = [StoredBatch(0, 3, 0, 1, False, b"[0]"), StoredBatch(1, 3, 1, 1, False, b"[1]")]
    dead.write(StoreChanges(3, 2, 2, stored, []))
    dead.close()
    async with IdempotentProducer(handle, producer_id="w", epoch=50) as other:
        other.append_nowait({"w": "other"})
    resumed = IdempotentProducer(
        handle, producer_id="w", state=state, auto_claim=True, gapless=gapless
    )
    with pytest.raises(UndeliveredError) as info:
        await resumed.flush()
    assert [(f.seq, f.maybe_delivered) for f in info.value.failures] == [(0, True), (1, True)]
    if gapless:
        with pytest.raises(ProducerClosedError):
            resumed.append_nowait({"w": "after"})
    else:
        resumed.append_nowait({"w": "after"})
    await resumed.close()
    await handle.aclose()
    after = [] if gapless else [{"w": "after"}]
    assert read_all(stream_url) == [{"w": "other"}, *after]
