"""The consumer loop: every message handled at least once, acknowledged per batch, and after
a failure exactly what came after the last ack delivered again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter, defaultdict
from pathlib import Path

import anyio
import httpx
import pytest

import durable_streams as ds

from .test_subscriptions import make_stream, pull_wake, wait_for


@pytest.fixture(autouse=True)
def each_core(core_impl: str) -> str:
    return core_impl


def cursors_at(subs: ds.Subscriptions, sub_id: str, tails: dict[str, str]) -> bool:
    acked = {link.path: link.acked_offset for link in subs.get(sub_id).streams}
    return all(acked.get(path) == tail for path, tail in tails.items())


def test_one_worker_consumes_until_idle(root: str, prefix: str) -> None:
    with ds.Subscriptions(root) as subs:
        sub_id, _ = pull_wake(subs, root, prefix)
        tails = {}
        for s in range(3):
            path = f"{prefix}/data/s{s}"
            with make_stream(root, path) as handle:
                for i in range(50):
                    tails[path] = handle.append({"s": s, "i": i}).offset
        wait_for(lambda: {link.path for link in subs.get(sub_id).streams} >= tails.keys())
        seen: dict[str, list[int]] = defaultdict(list)

        def handle(message: ds.SubscriptionMessage) -> None:
            assert message.subscription_id == sub_id
            seen[message.stream].append(message.data["i"])

        consumer = subs.consumer(sub_id, worker="w1")
        consumer.run(handle, until_idle=True)
        assert dict(seen) == {path: list(range(50)) for path in tails}
        assert cursors_at(subs, sub_id, tails)
        assert consumer.stats.messages == 150 and consumer.stats.wakes >= 1
        # Nothing new: a second run finds no work and hands out nothing.
        consumer.run(handle, until_idle=True)
        assert sum(len(v) for v in seen.values()) == 150


def test_a_failing_handler_releases_and_the_rest_is_delivered_again(root: str, prefix: str) -> None:
    with ds.Subscriptions(root) as subs:
        sub_id, _ = pull_wake(subs, root, prefix)
        path = f"{prefix}/data/s"
        with make_stream(root, path) as handle:
            handle.append({"i": 0})
            first = handle.append({"i": 1}).offset
            tail = handle.append({"i": 2}).offset
        wait_for(lambda: path in {link.path for link in subs.get(sub_id).streams})
        got: list[int] = []

        def fail_on_two(message: ds.SubscriptionMessage) -> None:
            if message.data["i"] == 2:
                raise LookupError("the handler failed")
            got.append(message.data["i"])

        with pytest.raises(LookupError):
            subs.consumer(sub_id, worker="w1").run(fail_on_two, until_idle=True)
        assert got == [0, 1]
        # Batches handled in full were acknowledged (how the server cut the stream into
        # batches decides which); the failed one was released, not acknowledged.
        acked = {link.path: link.acked_offset for link in subs.get(sub_id).streams}[path]
        assert acked in ("-1", first)
        again: list[int] = []
        subs.consumer(sub_id, worker="w2").run(lambda m: again.append(m.data["i"]), until_idle=True)
        with ds.stream(f"{root}/{path}", offset=acked) as res:
            assert again == [m["i"] for m in res.read_json()]  # exactly what followed the ack
        assert again[-1] == 2
        assert cursors_at(subs, sub_id, {path: tail})


CRASHING_WORKER = textwrap.dedent(
    """
    import os, sys
    import durable_streams as ds

    root, sub_id, log, crash_after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    handled = 0

    def handle(message):
        global handled
        with open(log, "a") as out:
            out.write(f"{message.stream} {message.data['i']}\\n")
        handled += 1
        if handled == crash_after:
            os._exit(9)  # killed mid-wake: no release, no ack of this batch

    with ds.Subscriptions(root) as subs:
        subs.consumer(sub_id, worker="doomed").run(handle, until_idle=True)
    """
)


def test_a_worker_killed_mid_wake_loses_nothing(root: str, prefix: str, tmp_path: Path) -> None:
    with ds.Subscriptions(root) as subs:
        sub_id, _ = pull_wake(subs, root, prefix, lease_ttl_ms=1_000)
        path = f"{prefix}/data/s"
        with make_stream(root, path) as handle:
            for i in range(30):
                tail = handle.append({"i": i}).offset
        wait_for(lambda: path in {link.path for link in subs.get(sub_id).streams})
        log = tmp_path / "handled.txt"
        done = subprocess.run(
            [sys.executable, "-c", CRASHING_WORKER, root, sub_id, str(log), "15"],
            timeout=60,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            check=False,
        )
        assert done.returncode == 9
        before = [int(line.split()[1]) for line in log.read_text().splitlines()]
        assert before == list(range(15))
        acked = {link.path: link.acked_offset for link in subs.get(sub_id).streams}[path]
        # Redelivered: exactly what came after the last ack (the dead worker's second batch).
        after: list[int] = []

        def resumed() -> bool:
            subs.consumer(sub_id, worker="heir").run(
                lambda m: after.append(m.data["i"]), until_idle=True
            )
            return cursors_at(subs, sub_id, {path: tail})

        wait_for(resumed)
        with ds.stream(f"{root}/{path}", offset=acked) as res:
            assert after == [m["i"] for m in res.read_json()]
        assert after[-1] == 29 and set(before) | set(after) == set(range(30))


@pytest.mark.anyio
async def test_three_async_workers_share_twenty_streams(
    root: str, prefix: str, anyio_backend: str
) -> None:
    streams, per_stream = 20, 500
    handled: Counter[tuple[str, int]] = Counter()
    async with ds.AsyncSubscriptions(root) as subs:
        wake = f"{prefix}/wake"
        await (await ds.AsyncDurableStream.create(f"{root}/{wake}")).aclose()
        sub_id = f"{prefix}-sub"
        await subs.create(
            sub_id,
            type="pull-wake",
            pattern=f"{prefix}/data/*",
            wake_stream=wake,
            lease_ttl_ms=5_000,
        )
        tails: dict[str, str] = {}

        async def produce() -> None:
            for s in range(streams):
                path = f"{prefix}/data/s{s:02d}"
                url = f"{root}/{path}"
                await (
                    await ds.AsyncDurableStream.create(url, content_type="application/json")
                ).aclose()
                async with ds.IdempotentProducer(
                    url, producer_id=f"p{s}", content_type="application/json"
                ) as producer:
                    for i in range(per_stream):
                        producer.append_nowait({"s": s, "i": i})
                async with ds.AsyncDurableStream(url) as handle:
                    tail = (await handle.head()).offset
                assert tail is not None
                tails[path] = tail

        async def handle(message: ds.SubscriptionMessage) -> None:
            handled[(message.stream, message.data["i"])] += 1
            await anyio.sleep(0)

        async def all_acked() -> bool:
            sub = await subs.get(sub_id)
            acked = {link.path: link.acked_offset for link in sub.streams}
            return len(tails) == streams and all(acked.get(p) == t for p, t in tails.items())

        consumers = [subs.consumer(sub_id, worker=f"w{n}") for n in range(3)]
        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for consumer in consumers:
                    group.start_soon(consumer.run, handle)
                await produce()
                while not await all_acked():
                    await anyio.sleep(0.05)
                group.cancel_scope.cancel()
    expected = {(f"{prefix}/data/s{s:02d}", i) for s in range(streams) for i in range(per_stream)}
    assert set(handled) == expected
    assert sum(c.stats.messages for c in consumers) == sum(handled.values())
    assert sum(c.stats.wakes for c in consumers) >= 1


@pytest.mark.anyio
async def test_a_cancelled_consumer_releases_its_wake(
    root: str, prefix: str, anyio_backend: str
) -> None:
    async with ds.AsyncSubscriptions(root) as subs:
        wake = f"{prefix}/wake"
        await (await ds.AsyncDurableStream.create(f"{root}/{wake}")).aclose()
        sub_id = f"{prefix}-sub"
        path = f"{prefix}/data/s"
        await subs.create(sub_id, type="pull-wake", streams=[path], wake_stream=wake)
        async with await ds.AsyncDurableStream.create(
            f"{root}/{path}", content_type="application/json"
        ) as handle:
            await handle.append({"i": 0})
        in_handler = anyio.Event()

        async def stuck(message: ds.SubscriptionMessage) -> None:
            in_handler.set()
            await anyio.sleep_forever()

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(subs.consumer(sub_id, worker="w1").run, stuck)
                await in_handler.wait()
                group.cancel_scope.cancel()
        # Released, not left to its lease (30 s): another worker gets the wake at once.
        claim = await subs.claim(sub_id, "w2")
        (pending,) = claim.streams
        assert pending.has_pending


def test_a_long_body_read_in_parts_is_acknowledged_once_past_where_it_began(
    root: str, prefix: str
) -> None:
    """Parts of a long body go out before it ends, with the offset before it: the consumer
    acks only progress, never that offset (the server refuses an ack of ``-1``)."""
    with ds.Subscriptions(root) as subs:
        sub_id, _ = pull_wake(subs, root, prefix)
        path = f"{prefix}/data/big"
        make_stream(root, path).close()
        messages = [{"i": i, "pad": "x" * 200} for i in range(12_000)]  # about 2.7 MB
        answer = httpx.post(
            f"{root}/{path}",
            content=json.dumps(messages),
            headers={"content-type": "application/json"},
        )
        assert answer.status_code in (200, 204)
        tail = answer.headers["stream-next-offset"]
        wait_for(lambda: path in {link.path for link in subs.get(sub_id).streams})
        got: list[int] = []
        consumer = subs.consumer(sub_id, worker="w1")
        consumer.run(lambda m: got.append(m.data["i"]), until_idle=True)
        assert got == list(range(12_000))
        assert cursors_at(subs, sub_id, {path: tail})


def test_paths_that_need_encoding_are_read_and_acknowledged(root: str, prefix: str) -> None:
    with ds.Subscriptions(root) as subs:
        sub_id, _ = pull_wake(subs, root, prefix)
        path = f"{prefix}/data/café au lait"
        with make_stream(root, path, {"n": 1}) as handle:
            tail = handle.head().offset
        encoded = f"{prefix}/data/caf%C3%A9%20au%20lait"
        wait_for(lambda: encoded in {link.path for link in subs.get(sub_id).streams})
        got: list[ds.SubscriptionMessage] = []
        consumer = subs.consumer(sub_id, worker="w1")
        consumer.run(got.append, until_idle=True)
        assert [(m.stream, m.data) for m in got] == [(encoded, {"n": 1})]
        assert consumer.stats.missing_streams == []
        assert tail is not None and cursors_at(subs, sub_id, {encoded: tail})


def test_an_expired_stream_is_skipped_without_waking_again_and_again(
    root: str, prefix: str
) -> None:
    with ds.Subscriptions(root) as subs:
        sub_id, wake = pull_wake(subs, root, prefix)
        path = f"{prefix}/data/short-lived"
        handle = ds.DurableStream.create(
            f"{root}/{path}", content_type="application/json", ttl_seconds=1, data={"n": 1}
        )
        handle.close()
        wait_for(lambda: path in {link.path for link in subs.get(sub_id).streams})

        def expired() -> bool:
            try:
                ds.DurableStream.connect(f"{root}/{path}").close()
            except ds.StreamNotFoundError:
                return True
            return False

        wait_for(expired)
        consumer = subs.consumer(sub_id, worker="w1")
        consumer.run(lambda m: None, until_idle=True)
        assert consumer.stats.wakes <= 1
        with pytest.raises(ds.NoPendingWorkError):
            subs.claim(sub_id, "w2")
        with ds.stream(f"{root}/{wake}") as res:
            assert len(res.read_json()) <= 2  # no storm of wake events


def test_a_closed_wake_stream_is_an_error_not_a_busy_loop(root: str, prefix: str) -> None:
    with ds.Subscriptions(root) as subs:
        sub_id, wake = pull_wake(subs, root, prefix)
        with ds.DurableStream.connect(f"{root}/{wake}") as handle:
            handle.close_stream()
        with pytest.raises(ds.StreamClosedError, match="wake stream is closed"):
            subs.consumer(sub_id, worker="w1").run(lambda m: None)


def test_a_gateway_authorization_header_does_not_clash_with_the_wake_token(
    root: str, prefix: str
) -> None:
    with ds.Subscriptions(root, headers={"Authorization": "Bearer gateway-token"}) as subs:
        sub_id, _ = pull_wake(subs, root, prefix)
        make_stream(root, f"{prefix}/data/s", {"n": 1}).close()
        wait_for(lambda: bool(subs.get(sub_id).streams))
        claim = subs.claim(sub_id, "w1")
        assert subs.ack(claim) is False  # the wake's token went out, not the gateway's
