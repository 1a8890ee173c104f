"""State streams against the real reference server: writers through handles and producers,
materialize, continuing from a snapshot, and compaction by key (a property test)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable_streams as ds
from durable_streams.state import (
    AsyncStateWriter,
    StateWriter,
    acompact,
    aload_state,
    amaterialize,
    compact,
    load_state,
    materialize,
)


@pytest.fixture
def state_url(server_url: str) -> str:
    return f"{server_url}/v1/stream/state-{uuid.uuid4().hex}"


def json_stream(url: str) -> ds.DurableStream:
    return ds.DurableStream.create(url, content_type="application/json")


def test_a_handle_writer_and_materialize(state_url: str) -> None:
    with json_stream(state_url) as handle:
        writer = StateWriter(handle, timestamps=True)
        writer.insert("user", "1", {"name": "Ada"})
        with writer.transaction() as txid:
            writer.update("user", "1", {"name": "Ada L."}, old_value={"name": "Ada"})
            writer.upsert("user", "2", {"name": "Grace"})
        writer.delete("user", "2", old_value={"name": "Grace"})
        writer.insert("config", "theme", "dark")
        result = writer.insert("user", "3", {"name": "Barbara"})
        assert result.offset is not None
    assert materialize(state_url) == {
        "user": {"1": {"name": "Ada L."}, "3": {"name": "Barbara"}},
        "config": {"theme": "dark"},
    }
    state = load_state(state_url)
    assert state.txids == {txid} and state.offset == result.offset
    with ds.stream(state_url) as res:
        raw = res.read_json()
    assert all("timestamp" in m["headers"] for m in raw)
    assert [m["headers"]["operation"] for m in raw] == [
        "insert",
        "update",
        "upsert",
        "delete",
        "insert",
        "insert",
    ]


def test_a_producer_writer_writes_in_bulk(state_url: str) -> None:
    with (
        json_stream(state_url) as handle,
        ds.SyncIdempotentProducer(handle, producer_id="bulk") as producer,
    ):
        writer = StateWriter(producer)
        for i in range(2_000):
            assert writer.upsert("item", str(i % 500), {"i": i}) is None
        writer.delete("item", "0")
    state = materialize(state_url)
    assert len(state["item"]) == 499
    assert state["item"]["499"] == {"i": 1999}


def test_a_malformed_message_names_its_offset_or_is_skipped(state_url: str) -> None:
    with json_stream(state_url) as handle:
        handle.append({"type": "user", "key": "1", "value": 1, "headers": {"operation": "insert"}})
        bad = handle.append({"type": "user", "headers": {"operation": "insert"}}).offset
        tail = handle.append(
            {"type": "user", "key": "2", "value": 2, "headers": {"operation": "insert"}}
        ).offset
    with pytest.raises(ds.StateMessageError, match="key") as info:
        materialize(state_url)
    # The offset after the bad message's batch: a catch-up answer is one batch here.
    assert bad is not None and tail is not None
    assert info.value.offset is not None and bad <= info.value.offset <= tail
    state = load_state(state_url, on_malformed="skip")
    assert state.snapshot() == {"user": {"1": 1, "2": 2}} and state.skipped == 1


def test_compaction_then_the_source_tail_gives_the_sources_state(
    state_url: str, server_url: str
) -> None:
    with json_stream(state_url) as handle:
        writer = StateWriter(handle)
        for i in range(50):
            writer.upsert("k", str(i % 7), i)
        writer.delete("k", "3")
    target = f"{server_url}/v1/stream/compacted-{uuid.uuid4().hex}"
    source_state = compact(state_url, target)
    with ds.stream(target) as res:
        messages = res.read_json()
    assert messages[0]["headers"]["control"] == "snapshot-start"
    assert messages[-1]["headers"]["control"] == "snapshot-end"
    assert len(messages) == 2 + 6  # one insert per live key
    with json_stream(state_url) as handle:  # the source goes on after the compaction
        StateWriter(handle).upsert("k", "9", "after")
    resumed = load_state(target)
    assert resumed.snapshot_covers == source_state.offset
    load_state(state_url, start=resumed, offset=resumed.snapshot_covers)
    assert resumed.snapshot() == materialize(state_url)


operations = st.lists(
    st.tuples(
        st.sampled_from(["insert", "update", "upsert", "delete", "reset"]),
        st.sampled_from(["a", "b"]),
        st.sampled_from(["k1", "k2", "k3"]),
        st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none(), st.lists(st.booleans())),
    ),
    max_size=25,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=operations, after=operations)
def test_compaction_is_transparent_for_any_history(
    server_url: str, before: list[Any], after: list[Any]
) -> None:
    """materialize(source) == materialize(compact(source)) == snapshot + source tail."""
    source = f"{server_url}/v1/stream/prop-{uuid.uuid4().hex}"
    target = f"{server_url}/v1/stream/prop-{uuid.uuid4().hex}"

    def write(writer: StateWriter, ops: list[Any]) -> None:
        for op, kind, key, value in ops:
            if op == "reset":
                writer.reset()
            elif op == "delete":
                writer.delete(kind, key)
            else:
                getattr(writer, op)(kind, key, value)

    with json_stream(source) as handle:
        write(StateWriter(handle), before)
    compact(source, target)
    assert materialize(target) == materialize(source)
    with ds.DurableStream(source) as handle:
        write(StateWriter(handle), after)
    resumed = load_state(target)
    load_state(source, start=resumed, offset=resumed.snapshot_covers)
    assert resumed.snapshot() == materialize(source)


@pytest.mark.anyio
async def test_async_writer_materialize_and_compact(
    state_url: str, server_url: str, anyio_backend: str
) -> None:
    async with await ds.AsyncDurableStream.create(
        state_url, content_type="application/json"
    ) as handle:
        writer = AsyncStateWriter(handle)
        await writer.insert("user", "1", {"n": 1})
        await writer.insert("user", "2", {"n": 2})
        await writer.delete("user", "1")
    async with ds.IdempotentProducer(
        state_url, producer_id="p", content_type="application/json"
    ) as producer:
        await AsyncStateWriter(producer).upsert("user", "3", {"n": 3})
    expected = {"user": {"2": {"n": 2}, "3": {"n": 3}}}
    assert await amaterialize(state_url) == expected
    target = f"{server_url}/v1/stream/compacted-{uuid.uuid4().hex}"
    await acompact(state_url, target)
    assert (await aload_state(target)).snapshot() == expected


def test_compacting_into_an_existing_stream_is_refused(state_url: str, server_url: str) -> None:
    with json_stream(state_url) as handle:
        StateWriter(handle).insert("u", "1", 1)
    target = f"{server_url}/v1/stream/compacted-{uuid.uuid4().hex}"
    compact(state_url, target)
    with pytest.raises(ds.StreamExistsError):
        compact(state_url, target)


def test_an_unfinished_snapshot_is_not_trusted(state_url: str, server_url: str) -> None:
    from durable_streams.state import load_compacted

    with json_stream(state_url) as handle:
        writer = StateWriter(handle)
        writer.insert("u", "1", 1)
        writer.insert("u", "2", 2)
    target = f"{server_url}/v1/stream/half-{uuid.uuid4().hex}"
    with json_stream(target) as handle:  # a compaction that died half-way
        half = StateWriter(handle)
        half.snapshot_start("-1")
        half.insert("u", "1", 1)
    assert load_compacted(target, state_url).snapshot() == materialize(state_url)
    done = f"{server_url}/v1/stream/done-{uuid.uuid4().hex}"
    compact(state_url, done)
    with ds.DurableStream(state_url) as handle:
        StateWriter(handle).delete("u", "1")
    assert load_compacted(done, state_url).snapshot() == {"u": {"2": 2}}


@pytest.mark.anyio
async def test_transactions_of_concurrent_tasks_do_not_mix(
    state_url: str, anyio_backend: str
) -> None:
    import anyio

    async with await ds.AsyncDurableStream.create(
        state_url, content_type="application/json"
    ) as handle:
        writer = AsyncStateWriter(handle)

        async def write(txid: str, key: str) -> None:
            with writer.transaction(txid):
                for i in range(3):
                    await writer.upsert("t", key, i)
                    await anyio.sleep(0)

        async with anyio.create_task_group() as group:
            group.start_soon(write, "T1", "a")
            group.start_soon(write, "T2", "b")
        await writer.insert("t", "c", 0)  # outside any transaction
    with ds.stream(state_url) as res:
        tags = {(m["key"], m["headers"].get("txid")) for m in res.read_json()}
    assert tags == {("a", "T1"), ("b", "T2"), ("c", None)}
