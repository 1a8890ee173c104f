"""Waiting for a transaction: a view's ``wait_for_txid`` returns once a change carrying the
txid is applied (and visible), at once for one seen before, and is bounded by a deadline."""

from __future__ import annotations

import threading
import uuid

import anyio
import pytest

import durable_streams as ds
from durable_streams.state import AsyncStateView, AsyncStateWriter, StateView, StateWriter

JSON = "application/json"


@pytest.fixture
def state_url(server_url: str) -> str:
    return f"{server_url}/v1/stream/txid-{uuid.uuid4().hex}"


@pytest.mark.anyio
async def test_an_async_view_waits_for_a_transaction_written_elsewhere(
    state_url: str, anyio_backend: str
) -> None:
    async with await ds.AsyncDurableStream.create(state_url, content_type=JSON) as handle:
        writer = AsyncStateWriter(handle)
        with writer.transaction() as earlier:
            await writer.insert("user", "1", {"n": 1})
        with anyio.fail_after(30):
            async with AsyncStateView(state_url) as view:
                await view.wait_for_txid(earlier)  # seen while catching up
                assert view.get("user", "1") == {"n": 1}
                txid = str(uuid.uuid4())
                seen: list[object] = []

                async def wait() -> None:
                    await view.wait_for_txid(txid, timeout=20)
                    seen.append(view.get("user", "1"))

                async with anyio.create_task_group() as group:
                    group.start_soon(wait)
                    await writer.upsert("other", "x", 1)  # not it: the waiter goes on waiting
                    async with await ds.AsyncDurableStream.connect(state_url) as other:
                        await AsyncStateWriter(other).update("user", "1", {"n": 2}, txid=txid)
                assert seen == [{"n": 2}]  # the transaction's change is visible on return


@pytest.mark.anyio
async def test_waiting_for_a_txid_is_bounded_and_typed(state_url: str, anyio_backend: str) -> None:
    async with await ds.AsyncDurableStream.create(state_url, content_type=JSON) as handle:
        await AsyncStateWriter(handle).insert("k", "1", 1, txid="present")
        with anyio.fail_after(30):
            async with AsyncStateView(state_url) as view:
                await view.wait_current()
                with pytest.raises(ds.TxidTimeoutError) as caught:
                    await view.wait_for_txid("never-written", timeout=0.2)
                assert caught.value.txid == "never-written"
                assert isinstance(caught.value, ds.DeadlineExceededError)
                assert "never-written" in str(caught.value)
                assert caught.value.offset == view.offset
                with pytest.raises(ValueError):
                    await view.wait_for_txid("")
                await handle.close_stream()
                # The stream's end: the txid can never come, so no waiting out the deadline.
                with pytest.raises(ds.StreamClosedError):
                    await view.wait_for_txid("never-written", timeout=None)
                await view.wait_for_txid("present", timeout=None)


def test_a_sync_view_waits_for_a_transaction(state_url: str) -> None:
    with (
        ds.DurableStream.create(state_url, content_type=JSON) as handle,
        StateView(state_url) as view,
    ):
        view.wait_current(timeout=30)
        writer = StateWriter(handle)
        txid = str(uuid.uuid4())
        outcome: list[object] = []
        waiting = threading.Event()

        def wait() -> None:
            waiting.set()
            try:
                view.wait_for_txid(txid, timeout=20)
                outcome.append(view.items("order"))
            except BaseException as exc:  # shown by the assertion below
                outcome.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        assert waiting.wait(10)
        with writer.transaction(txid):
            writer.insert("order", "a", {"total": 3})
            writer.insert("order", "b", {"total": 4})
        waiter.join(30)
        assert not waiter.is_alive()
        # The first of the transaction's changes is in; a wait_for the last append's offset
        # covers the whole transaction.
        assert outcome and isinstance(outcome[0], dict) and outcome[0]["a"] == {"total": 3}
        with pytest.raises(ds.TxidTimeoutError):
            view.wait_for_txid("nope", timeout=0.2)
