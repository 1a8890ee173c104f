"""Live views of state streams against the reference server: they catch up, follow new
changes batch by batch, report them, start from a compacted snapshot, and stop on bad data."""

from __future__ import annotations

import logging
import socket
import uuid

import anyio
import pytest

import durable_streams as ds
from durable_streams.state import (
    AsyncStateView,
    AsyncStateWriter,
    Change,
    StateView,
    StateWriter,
    compact,
    load_state,
    materialize,
)
from faultproxy import FaultProxy


@pytest.fixture
def state_url(server_url: str) -> str:
    return f"{server_url}/v1/stream/view-{uuid.uuid4().hex}"


@pytest.mark.anyio
async def test_an_async_view_catches_up_then_follows(state_url: str, anyio_backend: str) -> None:
    async with await ds.AsyncDurableStream.create(
        state_url, content_type="application/json"
    ) as handle:
        writer = AsyncStateWriter(handle)
        for i in range(5):
            await writer.insert("user", str(i), {"n": i})
        seen: list[ds.state.Change | ds.state.Control] = []
        with anyio.fail_after(30):
            async with AsyncStateView(state_url, on_change=seen.append) as view:
                await view.wait_current()
                assert view.current and len(view.items("user")) == 5
                changes = view.changes()
                await writer.update("user", "1", {"n": 10})
                last = await writer.delete("user", "2")
                await view.wait_for(last.offset)
                assert view.get("user", "1") == {"n": 10}
                assert view.get("user", "2") is None
                assert view.offset is not None and view.offset >= last.offset
                got = [await changes.__anext__() for _ in range(2)]
                assert [c.operation for c in got if isinstance(c, Change)] == ["update", "delete"]
                await changes.aclose()
    assert len(seen) == 7
    assert view.snapshot() == await ds.state.amaterialize(state_url)


def test_a_sync_view_from_a_compacted_snapshot_ends_as_a_view_of_the_whole_source(
    state_url: str, server_url: str
) -> None:
    with ds.DurableStream.create(state_url, content_type="application/json") as handle:
        writer = StateWriter(handle)
        for i in range(30):
            writer.upsert("k", str(i % 4), i)
        target = f"{server_url}/v1/stream/view-compacted-{uuid.uuid4().hex}"
        compact(state_url, target)
        snapshot = load_state(target)
        with (
            StateView(state_url, start=snapshot, offset=snapshot.snapshot_covers) as view,
            StateView(state_url) as whole,
        ):
            view.wait_current(timeout=30)
            changes = view.changes(timeout=30)
            writer.delete("k", "0")
            tail = writer.upsert("k", "9", "live").offset
            assert isinstance(next(changes), Change)
            view.wait_for(tail, timeout=30)
            whole.wait_for(tail, timeout=30)
            assert view.snapshot() == whole.snapshot() == materialize(state_url)
            changes.close()


def test_a_view_stops_on_a_malformed_message(state_url: str) -> None:
    with ds.DurableStream.create(state_url, content_type="application/json") as handle:
        StateWriter(handle).insert("user", "1", 1)
        with StateView(state_url) as view:
            view.wait_current(timeout=30)
            handle.append({"not": "a state message"})
            with pytest.raises(ds.StateMessageError):
                view.wait_for("9" * 33, timeout=30)
        with StateView(state_url, on_malformed="skip") as lenient:
            lenient.wait_current(timeout=30)
            assert lenient.state.skipped == 1 and lenient.get("user", "1") == 1


def test_waiting_is_bounded(state_url: str) -> None:
    with (
        ds.DurableStream.create(state_url, content_type="application/json"),
        StateView(state_url) as view,
    ):
        view.wait_current(timeout=30)
        with pytest.raises(ds.DeadlineExceededError):
            view.wait_for("9" * 33, timeout=0.2)


@pytest.mark.anyio
async def test_a_subscriber_left_behind_never_holds_the_view_back(
    state_url: str, anyio_backend: str
) -> None:
    async with await ds.AsyncDurableStream.create(
        state_url, content_type="application/json"
    ) as handle:
        writer = AsyncStateWriter(handle)
        with anyio.fail_after(30):
            async with AsyncStateView(state_url) as view:
                await view.wait_current()
                abandoned = view.changes(max_behind=3)  # never read
                for i in range(10):
                    last = await writer.upsert("k", str(i), i)
                await view.wait_for(last.offset)  # the view went on
                assert len(view.items("k")) == 10
                for _ in range(3):  # what it had queued, then an error, not silence
                    await abandoned.__anext__()
                with pytest.raises(ds.DurableStreamError, match="fell too far behind"):
                    await abandoned.__anext__()


@pytest.mark.anyio
async def test_closing_or_the_streams_end_wakes_every_waiter(
    state_url: str, anyio_backend: str
) -> None:
    async with await ds.AsyncDurableStream.create(
        state_url, content_type="application/json"
    ) as handle:
        await AsyncStateWriter(handle).insert("k", "1", 1)
        with anyio.fail_after(30):
            async with AsyncStateView(state_url) as view:
                await view.wait_current()
                changes = view.changes()
                await handle.close_stream()
                with pytest.raises(ds.StreamClosedError):
                    await view.wait_for("9" * 33)
                with pytest.raises(StopAsyncIteration):
                    await changes.__anext__()
            view2 = AsyncStateView(state_url)
            async with view2:
                pass
            with pytest.raises(ds.DurableStreamError, match="closed"):
                await view2.wait_current()


def test_sync_changes_outlive_a_timeout_and_views_start_where_told(
    state_url: str, server_url: str
) -> None:
    with ds.DurableStream.create(state_url, content_type="application/json") as handle:
        writer = StateWriter(handle)
        writer.insert("k", "1", 1)
        target = f"{server_url}/v1/stream/view-compacted-{uuid.uuid4().hex}"
        compact(state_url, target)
        snapshot = load_state(target)
        covers = snapshot.snapshot_covers
        assert covers is not None
        with StateView(state_url, start=snapshot, offset=covers) as view:
            assert view.offset == covers  # not the snapshot stream's own offset
            with view.changes(timeout=0.2) as changes:
                with pytest.raises(ds.DeadlineExceededError):
                    next(changes)
                writer.update("k", "1", 2)
                change = next(changes)  # still subscribed after the timeout
                assert isinstance(change, Change) and change.value == 2
        with pytest.raises(ds.DurableStreamError, match="closed"):
            view.wait_for(covers, timeout=1)
    with pytest.raises(ds.StreamNotFoundError):
        StateView(f"{server_url}/v1/stream/missing-{uuid.uuid4().hex}")


def test_a_view_of_an_unreachable_server_fails_at_once(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as listener:  # a port nothing listens on once this is closed
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    caplog.set_level(logging.INFO, logger="durable_streams")
    with pytest.raises(ds.TransportError):
        StateView(f"http://127.0.0.1:{port}/v1/stream/view")
    # One HEAD, not a run of retries (about 10 s of them by default) inside the constructor.
    assert [r.getMessage() for r in caplog.records if "failed (attempt" in r.getMessage()] == []


@pytest.mark.parametrize("live", ["sse", "long-poll"])
def test_a_view_whose_connections_are_cut_mid_tail_applies_each_batch_once(
    server_url: str, live: ds.LiveMode
) -> None:
    path = f"/v1/stream/view-cut-{uuid.uuid4().hex}"
    keys = [f"k{n}" for n in range(150)]
    applied: list[str] = []
    fast = ds.RetryPolicy(max_retries=None, initial_delay=0.001, max_delay=0.01)
    with (
        ds.DurableStream.create(server_url + path, content_type="application/json") as handle,
        FaultProxy(server_url, seed=11, cut_mid_response=0.5) as proxy,
        StateView(
            proxy.url + path,
            live=live,
            retry=fast,
            on_change=lambda change: applied.append(change.key),
        ) as view,
    ):
        writer = StateWriter(handle)
        for key in keys:
            last = writer.insert("item", key, {"key": key})
        view.wait_for(last.offset, timeout=60)
        assert proxy.stats["cuts_mid_response"] > 0
        assert applied == keys  # every change once, in order, across the reconnects
        assert sorted(view.items("item")) == sorted(keys)
