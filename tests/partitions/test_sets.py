"""A partition set against the test server: created, connected to, inspected and deleted in
one call each; written through the key-routing producer; consumed by a group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import defaultdict
from functools import partial
from typing import Any

import anyio
import pytest

import durable_streams as ds
from durable_streams.partitions import (
    AsyncConsumerGroup,
    AsyncPartitionSet,
    ConsumerGroup,
    PartitionedProducer,
    PartitionSet,
    SyncPartitionedProducer,
    partition_for,
)
from durable_streams.partitions._layout import group_subscription


@pytest.fixture(autouse=True)
def each_core(core_impl: str) -> str:
    return core_impl


def read_partition(url: str) -> list[dict[str, Any]]:
    with ds.stream(url) as res:
        return res.read_json()


def test_create_inspect_and_delete_a_set(root: str, name: str) -> None:
    made = PartitionSet.create(root, name, 3)
    assert made.paths == (f"{name}/0", f"{name}/1", f"{name}/2")
    assert PartitionSet.create(root, name, 3).partitions == 3  # again, as it is: harmless
    with pytest.raises(
        ds.StreamExistsError, match="exists with 3 partitions of application/json, not 4"
    ):
        PartitionSet.create(root, name, 4)
    with pytest.raises(ds.StreamExistsError, match="not 3 of text/plain"):
        PartitionSet.create(root, name, 3, content_type="text/plain")
    found = PartitionSet.connect(root, name)
    assert (found.partitions, found.content_type) == (3, "application/json")
    with ds.DurableStream.connect(found.url(1)) as handle:
        tail = handle.append({"n": 1}).offset
    info = found.info()
    assert [p.path for p in info.partitions] == list(made.paths)
    assert info.partitions[1].tail_offset == tail
    assert info.partitions[0].tail_offset != tail and not any(p.closed for p in info.partitions)
    assert found.partition_of(f"{name}/2") == 2
    found.delete()
    with pytest.raises(ds.StreamNotFoundError, match="no partition set"):
        PartitionSet.connect(root, name)
    for url in [found.url(p) for p in range(3)]:
        with pytest.raises(ds.StreamNotFoundError):
            ds.DurableStream.connect(url)
    found.delete()  # a delete run again finds nothing left: no error


def test_a_stream_that_is_not_a_set_is_named(root: str, name: str) -> None:
    ds.DurableStream.create(f"{root}/{name}", content_type="application/json").close()
    with pytest.raises(ds.UsageError, match="not a partition set"):
        PartitionSet.connect(root, name)
    ds.DurableStream.create(f"{root}/{name}x", content_type="text/plain", data="x").close()
    with pytest.raises(ds.UsageError, match="not a partition set"):
        PartitionSet.connect(root, f"{name}x")


def test_the_producer_routes_by_key_and_keeps_each_keys_order(root: str, name: str) -> None:
    partition_set = PartitionSet.create(root, name, 4)
    keys = [f"customer-{i}" for i in range(10)]
    with SyncPartitionedProducer(partition_set, producer_id="web") as producer:
        assert [p.producer_id for p in producer.producers] == [f"web-{p}" for p in range(4)]
        for seq in range(30):
            for key in keys:
                assert producer.append_nowait({"key": key, "seq": seq}, key=key) == (
                    partition_for(key, 4)
                )
        keyless = [producer.append_nowait({"key": None, "seq": i}) for i in range(8)]
        result = producer.append({"key": "last", "seq": 0}, key="last").result(10)
    assert keyless == [0, 1, 2, 3, 0, 1, 2, 3]
    assert result.offset == partition_set.info().partitions[partition_for("last", 4)].tail_offset
    for p in range(4):
        messages = read_partition(partition_set.url(p))
        by_key: dict[Any, list[Any]] = defaultdict(list)
        for m in messages:
            by_key[m["key"]].append(m["seq"])
        assert len(by_key.pop(None)) == 2  # round robin: two keyless messages each
        for key, seqs in by_key.items():
            assert partition_for(str(key), 4) == p
            assert seqs == sorted(seqs) == list(range(len(seqs)))  # once each, in order


@pytest.mark.anyio
async def test_async_set_producer_and_group(root: str, name: str, anyio_backend: str) -> None:
    partition_set = await AsyncPartitionSet.create(root, name, 3)
    await partition_set.create_group("billing", lease_ttl_ms=5_000)
    async with PartitionedProducer(partition_set, producer_id="p") as producer:
        for seq in range(50):
            for key in ("a", "b", "c", "d"):
                producer.append_nowait({"key": key, "seq": seq}, key=key)
        ack = await producer.append({"key": "a", "seq": 50}, key="a")
        assert (await ack).offset is not None
    handled: dict[str, list[int]] = defaultdict(list)

    async def handle(message: ds.SubscriptionMessage) -> None:
        assert partition_set.partition_of(message.stream) == partition_for(message.data["key"], 3)
        handled[message.data["key"]].append(message.data["seq"])
        await anyio.sleep(0)

    workers = [AsyncConsumerGroup(partition_set, "billing", worker=f"w{n}") for n in range(2)]
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for worker in workers:
                group.start_soon(partial(worker.run, handle, until_idle=True))
    assert handled == {k: list(range(51 if k == "a" else 50)) for k in "abcd"}
    assert sum(w.stats.messages for w in workers) == 201
    found = await AsyncPartitionSet.connect(root, name)
    info = await found.info()
    assert [p.path for p in info.partitions] == list(partition_set.paths)
    assert all(p.tail_offset not in (None, "-1") for p in info.partitions)
    await partition_set.delete_group("billing")
    with pytest.raises(ds.SubscriptionNotFoundError):
        await workers[0].run(handle, until_idle=True)
    await found.delete()
    with pytest.raises(ds.StreamNotFoundError):
        await AsyncPartitionSet.connect(root, name)


def test_a_group_sees_what_comes_after_it_was_created(root: str, name: str) -> None:
    partition_set = PartitionSet.create(root, name, 2)
    with SyncPartitionedProducer(partition_set, producer_id="early") as producer:
        producer.append_nowait({"seq": 0}, key="k")
    partition_set.create_group("late")
    partition_set.create_group("late")  # again, as it is: harmless
    with SyncPartitionedProducer(partition_set, producer_id="later") as producer:
        producer.append_nowait({"seq": 1}, key="k")
    got: list[object] = []
    group = ConsumerGroup(partition_set, "late", worker="w1")
    group.run(lambda m: got.append(m.data["seq"]), until_idle=True)
    assert got == [1] and group.stats.messages == 1
    partition_set.delete_group("late")
    partition_set.delete()


def test_a_failing_handler_stops_the_worker_and_propagates(root: str, name: str) -> None:
    partition_set = PartitionSet.create(root, name, 2)
    partition_set.create_group("g")
    with SyncPartitionedProducer(partition_set, producer_id="p") as producer:
        for i in range(4):
            producer.append_nowait({"i": i})

    def fail(message: ds.SubscriptionMessage) -> None:
        raise LookupError("handler failed")

    with pytest.raises(LookupError, match="handler failed"):
        ConsumerGroup(partition_set, "g", worker="w1").run(fail, until_idle=True)
    # Released, not left to the lease: another worker gets everything at once.
    got: list[int] = []
    ConsumerGroup(partition_set, "g", worker="w2").run(
        lambda m: got.append(m.data["i"]), until_idle=True
    )
    assert sorted(got) == [0, 1, 2, 3]


def test_bad_input_is_refused_before_anything_is_sent(root: str, name: str) -> None:
    with pytest.raises(ds.UsageError, match="1 to 1024 partitions"):
        PartitionSet.create(root, name, 0)
    with pytest.raises(ds.UsageError, match="a partition set's name"):
        PartitionSet.create(root, "orders/*", 2)
    partition_set = PartitionSet(root, name, 2)  # no I/O, no content type known
    with pytest.raises(ds.UsageError, match="content type is unknown"):
        SyncPartitionedProducer(partition_set, producer_id="p")
    with pytest.raises(ds.UsageError, match="consumer group's name"):
        ConsumerGroup(partition_set, "a/b", worker="w")
    with pytest.raises(ds.UsageError, match="producer_id"):
        SyncPartitionedProducer(PartitionSet.create(root, name, 2), producer_id="")


def test_what_one_partition_could_not_take_is_reported_with_the_rest_delivered(
    root: str, name: str
) -> None:
    partition_set = PartitionSet.create(root, name, 3)
    ds.DurableStream.connect(partition_set.url(1)).delete()
    producer = SyncPartitionedProducer(partition_set, producer_id="p")
    for i in range(6):
        producer.append_nowait({"i": i})  # round robin: 1 and 4 go to the deleted partition
    with pytest.raises(ds.UndeliveredError, match="partitions 1") as raised:
        producer.close(10)
    failed = sorted(m["i"] for f in raised.value.failures for m in f.messages())
    assert failed == [1, 4]
    assert isinstance(raised.value.__cause__, ds.UndeliveredError)
    assert [m["i"] for m in read_partition(partition_set.url(0))] == [0, 3]
    assert [m["i"] for m in read_partition(partition_set.url(2))] == [2, 5]


INTERRUPTED_WORKER = textwrap.dedent(
    """
    import sys, threading
    from durable_streams.partitions import ConsumerGroup, PartitionSet

    partition_set = PartitionSet.connect(sys.argv[1], sys.argv[2])
    go_on = threading.Event()

    def handle(message):
        print("handling", flush=True)
        go_on.wait(30)  # a handler that does not return on its own

    try:
        ConsumerGroup(partition_set, "g", worker="w1").run(handle)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        go_on.set()
    """
)


def test_ctrl_c_stops_a_worker_in_a_handler_and_releases_its_partition(
    root: str, name: str
) -> None:
    partition_set = PartitionSet.create(root, name, 2)
    partition_set.create_group("g", lease_ttl_ms=60_000)
    with SyncPartitionedProducer(partition_set, producer_id="p") as producer:
        partition = producer.append_nowait({"n": 1}, key="k")
    worker = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_WORKER, root, name],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "handling\n"
        worker.send_signal(signal.SIGINT)
        out, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert out == "interrupted\n" and worker.returncode == 0
    # Released, not left to its lease (60 s): another worker has the partition at once.
    with ds.Subscriptions(root) as subs:
        claim = subs.claim(group_subscription(name, "g", partition), "w2")
        assert [s.has_pending for s in claim.streams] == [True]
