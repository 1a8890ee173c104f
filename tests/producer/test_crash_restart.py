"""Exactly-once across process deaths: a worker with a state file is SIGKILLed at random
moments, through a proxy that cuts connections, and started again each time on the same file.

Afterwards the stream must hold, for every round, an unbroken run of that round's numbers
from 0 (nothing missing in the middle, nothing twice, in order), at least as long as what the
server had acknowledged to the worker before it died. Only a round's tail, appended but not
yet in the state file when the process died, may be missing."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from durable_streams import DurableStream, stream

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faultproxy import FaultProxy

CHILD = str(Path(__file__).resolve().parent / "crash_child.py")
ROUNDS = 20
LINE_TIMEOUT = 30.0
FAULTS: dict[str, Any] = {"cut_mid_response": 0.08, "cut_after_request": 0.08, "fragment": True}


class Child:
    """The worker process, with its stdout read line by line on a thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        self.process = subprocess.Popen(
            [sys.executable, CHILD, *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.acked = 0
        self.restored: int | None = None
        self.done = False

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.put(line.strip())
        self.lines.put(None)

    def _take(self, line: str) -> None:
        word, _, value = line.partition(" ")
        if word == "acked":
            self.acked = int(value)
        elif word == "restored":
            self.restored = int(value)
        elif word == "done":
            self.done = True

    def next_line(self) -> str | None:
        try:
            line = self.lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            self.process.kill()
            raise AssertionError(f"the worker said nothing for {LINE_TIMEOUT} s") from None
        if line is not None:
            self._take(line)
        return line

    def wait_for_acks(self, count: int) -> None:
        seen = 0
        while seen < count:
            line = self.next_line()
            if line is None:
                raise AssertionError(f"the worker ended early: {self.stderr()}")
            seen += line.startswith("acked ")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=LINE_TIMEOUT)
        self.drain()

    def drain(self) -> None:
        """Read to the end of its output, then let go of the process."""
        while self.next_line() is not None:
            pass
        self.process.wait(timeout=LINE_TIMEOUT)
        self._reader.join(timeout=LINE_TIMEOUT)

    def stderr(self) -> str:
        if self.process.poll() is None:
            self.process.kill()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=LINE_TIMEOUT)
        self._reader.join(timeout=LINE_TIMEOUT)
        self._stderr.close()


def held_in(state: str) -> set[tuple[int, int]]:
    """The messages a dead worker's state file holds (its lock died with it)."""
    with sqlite3.connect(state) as db:
        bodies = [body for (body,) in db.execute("SELECT body FROM batches")]
    db.close()
    return {(item["r"], item["n"]) for body in bodies for item in json.loads(body)}


def read_all(url: str) -> list[Any]:
    with stream(url) as response:
        return response.read_json()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_worker_killed_at_random_moments_stores_each_message_once(
    server_url: str, stream_url: str, tmp_path: Path, mode: str, core_impl: str
) -> None:
    path = stream_url.removeprefix(server_url)
    DurableStream.create(stream_url, content_type="application/json").close()
    state = str(tmp_path / "worker.producer")
    env = dict(os.environ)
    if core_impl == "pure":
        env["DURABLE_STREAMS_PURE_PYTHON"] = "1"
    rng = random.Random(f"{mode}-{core_impl}")
    acked: list[int] = []
    restored: list[int] = []
    durable: set[tuple[int, int]] = set()
    with FaultProxy(server_url, seed=rng.randrange(1 << 30), **FAULTS) as proxy:
        url = proxy.url + path
        for round_no in range(ROUNDS):
            with Child([url, state, str(round_no), mode], env) as child:
                child.wait_for_acks(rng.randint(1, 4))
                # The moment of death: right after a flush returned, or while the next
                # messages are being appended, sealed, written to the state file or sent.
                time.sleep(rng.uniform(0, 0.08))
                child.kill()
                assert not child.done
                assert child.restored is not None, child.stderr()
                restored.append(child.restored)
                acked.append(child.acked)
            durable |= held_in(state)
        with Child([url, state, str(ROUNDS), mode, "--finish"], env) as final:
            final.drain()
            assert final.done and final.process.returncode == 0, final.stderr()
            restored.append(final.restored or 0)
        cuts = proxy.stats["cuts_mid_response"] + proxy.stats["cuts_after_request"]

    items = read_all(stream_url)
    keys = [(item["r"], item["n"]) for item in items]
    assert keys == sorted(set(keys)), "a message is stored twice or out of order"
    assert durable <= set(keys), f"in a state file but not stored: {sorted(durable - set(keys))}"
    for round_no in range(ROUNDS):
        numbers = [n for r, n in keys if r == round_no]
        assert numbers == list(range(len(numbers))), f"round {round_no} lost a message"
        assert len(numbers) >= acked[round_no], (round_no, len(numbers), acked[round_no])
    # The runs did what the test is about: batches were left in the file by a death and
    # resent by the next process, and connections were cut along the way.
    assert sum(1 for held in restored[1:] if held) >= 3, restored
    assert cuts > 0, proxy.stats


def test_a_state_file_in_use_by_another_process_is_refused(
    server_url: str, stream_url: str, tmp_path: Path
) -> None:
    from durable_streams import ProducerStateLockedError, SyncIdempotentProducer

    DurableStream.create(stream_url, content_type="application/json").close()
    state = str(tmp_path / "worker.producer")
    with Child([stream_url, state, "0", "sync"], dict(os.environ)) as holder:
        holder.wait_for_acks(1)
        with pytest.raises(ProducerStateLockedError, match="in use by another producer"):
            SyncIdempotentProducer(
                stream_url,
                producer_id="crash-worker",
                content_type="application/json",
                state=state,
            )
        holder.kill()
    # The lock dies with its process: the file opens now, and resumes the dead one's work.
    with SyncIdempotentProducer(
        stream_url, producer_id="crash-worker", content_type="application/json", state=state
    ) as producer:
        producer.flush()
    numbers = [item["n"] for item in read_all(stream_url)]
    assert numbers == list(range(len(numbers))) and len(numbers) >= holder.acked
