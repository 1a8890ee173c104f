"""The consumer group the issue asks for: 4 workers in separate processes consume 4
partitions written by 2 producers; one worker is killed (SIGKILL) mid-run. Every message is
handled at least once, each key's messages are handled in order, and nothing at or before an
acknowledged offset is handed out again: only what the dead worker had not acknowledged is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from typing import IO, Any

import durable_streams as ds
from durable_streams.partitions import PartitionSet, SyncPartitionedProducer
from durable_streams.partitions._layout import group_subscription

WORKER = textwrap.dedent(
    """
    import json, sys, threading, time
    from durable_streams.partitions import ConsumerGroup, PartitionSet

    root, name, group, worker = sys.argv[1:5]
    partition_set = PartitionSet.connect(root, name)
    lock = threading.Lock()

    def handle(message):
        line = json.dumps([worker, message.stream, message.offset, message.data["key"],
                           message.data["seq"], time.monotonic_ns()])
        with lock:  # one write per line: partitions are handled on several threads
            sys.stdout.write(line + "\\n")
            sys.stdout.flush()
        time.sleep(0.002)  # the work a message takes

    sys.stdout.write("ready\\n")
    sys.stdout.flush()
    ConsumerGroup(partition_set, group, worker=worker).run(handle)
    """
)

WORKERS, PRODUCERS, KEYS, PER_KEY = 4, 2, 8, 120  # 1,920 messages
LEASE_TTL_MS = 3_000
DEADLINE = 60.0


class Worker:
    """A worker process and every message it handled, read on a thread as they come."""

    def __init__(self, name: str, argv: list[str], seen: threading.Condition) -> None:
        self.name = name
        self.lines: list[list[Any]] = []
        self.ready = False
        self._seen = seen
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, *argv, name],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._reader.start()

    def _read(self, out: IO[str]) -> None:
        for line in out:
            with self._seen:
                if line == "ready\n":
                    self.ready = True
                elif line.endswith("\n"):  # a line cut short by SIGKILL is no handling
                    self.lines.append(json.loads(line))
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def test_four_worker_processes_consume_four_partitions_and_survive_a_kill(
    root: str, name: str
) -> None:
    partition_set = PartitionSet.create(root, name, 4)
    partition_set.create_group("g", lease_ttl_ms=LEASE_TTL_MS)
    seen = threading.Condition()
    workers: list[Worker] = []
    deadline = time.monotonic() + DEADLINE

    def wait(predicate: Any, what: str) -> None:
        """Until ``predicate()`` holds, woken by each line a worker writes (and every 0.1 s
        for what the server does on its own)."""
        with seen:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, f"no {what} within {DEADLINE} s"
                seen.wait(min(left, 0.1))

    try:
        argv = [root, name, "g"]
        workers = [Worker(f"w{n}", argv, seen) for n in range(WORKERS)]
        wait(lambda: all(w.ready for w in workers), "workers ready")

        def produce(n: int) -> None:
            with SyncPartitionedProducer(partition_set, producer_id=f"p{n}") as producer:
                for seq in range(PER_KEY):
                    for k in range(KEYS):
                        key = f"p{n}-k{k}"
                        producer.append_nowait({"key": key, "seq": seq}, key=key)
                    producer.flush(10)  # a round at a time: the group reads many batches

        producers = [threading.Thread(target=produce, args=(n,)) for n in range(PRODUCERS)]
        for thread in producers:
            thread.start()
        # The first worker to have handled 150 messages is the victim: it holds partitions,
        # with some acknowledged and some not.
        victims: list[Worker] = []

        def someone_busy() -> bool:
            victims[:] = [w for w in workers if len(w.lines) >= 150][:1]
            return bool(victims)

        wait(someone_busy, "worker busy")
        victim = victims[0]
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.stop()
        with ds.Subscriptions(root) as subs:
            sub_ids = [group_subscription(name, "g", p) for p in range(4)]
            # Where each partition was acknowledged when the victim died (it acks no more,
            # and its partitions stay with it until its lease runs out).
            acked_at_kill = {
                p: subs.get(sub_id).streams[0].acked_offset for p, sub_id in enumerate(sub_ids)
            }
            for thread in producers:
                thread.join(DEADLINE)
            tails = {p.path: p.tail_offset for p in partition_set.info().partitions}

            def all_acked() -> bool:
                links = [subs.get(sub_id).streams[0] for sub_id in sub_ids]
                return {link.path: link.acked_offset for link in links} == tails

            wait(all_acked, "group at every partition's tail")
    finally:
        for worker in workers:
            worker.stop()

    deliveries = sorted((line for w in workers for line in w.lines), key=lambda d: d[5])
    expected = {
        (f"p{n}-k{k}", seq) for n in range(PRODUCERS) for k in range(KEYS) for seq in range(PER_KEY)
    }
    # Every message handled at least once.
    assert {(d[3], d[4]) for d in deliveries} == expected
    # Each key in order: no message is handled before every earlier one of its key was.
    highest: dict[str, int] = defaultdict(lambda: -1)
    for _, _, _, key, seq, _ in deliveries:
        assert seq <= highest[key] + 1, f"{key} {seq} handled before {highest[key] + 1}"
        highest[key] = max(highest[key], seq)
    # Handed out again: only what the victim had not acknowledged (what follows each
    # partition's acked offset at the kill), once, to a survivor.
    unacked = set()
    for p, offset in acked_at_kill.items():
        with ds.stream(partition_set.url(p), offset=offset) as res:
            unacked |= {(m["key"], m["seq"]) for m in res.read_json()}
    handlers: dict[tuple[str, int], list[str]] = defaultdict(list)
    for worker_name, _, _, key, seq, _ in deliveries:
        handlers[(key, seq)].append(worker_name)
    again = {message: who for message, who in handlers.items() if len(who) > 1}
    assert set(again) <= unacked, "handed out again after its ack"
    for who in again.values():
        assert who[0] == victim.name and victim.name not in who[1:] and len(who) == 2, who
    # What the victim handled and had not acknowledged, a survivor handled after it.
    assert {(key, seq) for *_, key, seq, _ in victim.lines} & unacked <= set(again)
    assert len(unacked) < len(expected), "acks were in before the kill: the check means something"
    assert len(victim.lines) >= 150
    # The victim's partitions went on with a survivor. (How many survivors share them is up
    # to whoever claims each partition's wakes first: the group does not balance, so under
    # load one worker can hold every partition; CI saw it once.)
    survivors = {d[0] for d in deliveries if d[0] != victim.name}
    assert survivors, "no survivor took the victim's partitions over"
    partition_set.delete_group("g")
    partition_set.delete()
