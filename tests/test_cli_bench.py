"""``durable-streams bench`` as a user runs it, with tiny sizes: against the reference server and
the embedded server, its JSON report checked for what it must hold (every operation counted
once, percentiles in order, histograms of several processes merged by adding counts), its
table, its progress line on a terminal, and its errors."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from durable_streams.testing import local_server
from injection import inject_status
from launch import ReferenceServer


@pytest.fixture(scope="module", params=["reference", "embedded"])
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "reference":
        with ReferenceServer(long_poll_timeout_ms=1000) as reference:
            yield reference.url
    else:
        with local_server(long_poll_timeout=1.0) as url:
            yield url


@pytest.fixture(scope="module")
def embedded() -> Iterator[str]:
    with local_server(long_poll_timeout=1.0) as url:
        yield url


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("DURABLE_STREAMS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "durable_streams", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def report(*args: str) -> dict[str, Any]:
    done = bench(*args, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def check_sane(result: dict[str, Any]) -> None:
    """Figures that any run must show, whatever the machine's speed."""
    assert result["errors"] == 0 and result["failed"] == [] and result["first_error"] is None
    assert result["elapsed_s"] > 0 and result["ops_per_s"] > 0
    assert result["client_cpu_s"] > 0 and result["client_cpu_us_per_op"] > 0
    assert sum(p["ops"] for p in result["processes"]) == result["ops"]
    assert len(result["processes"]) == result["settings"]["processes"]
    for name, figures in result["latency"].items():
        order = [figures[key] for key in ("min", "p50", "p75", "p99", "p999", "max")]
        assert order == sorted(order), (name, figures)
        assert figures["min"] <= figures["mean"] <= figures["max"]
        assert figures["min"] > 0 and figures["unit"] == "ms" and figures["hdr"]
        # The merged histogram holds every process's operations, once.
        assert figures["count"] == sum(p["counts"].get(name, 0) for p in result["processes"])


def test_upstream_scenarios(server: str) -> None:
    out = report("--url", server, "--processes", "1", "--count", "12")
    assert list(out["scenarios"]) == ["roundtrip", "append-small", "append-large"]
    assert out["url"] == server and out["processes"] == 1
    sizes = {"roundtrip": 100, "append-small": 100, "append-large": 1024 * 1024}
    for name, result in out["scenarios"].items():
        check_sane(result)
        assert result["ops"] == 12 and result["bytes"] == 12 * sizes[name]
        assert result["settings"]["size"] == sizes[name]
    roundtrip = out["scenarios"]["roundtrip"]["latency"]
    assert {name: figures["count"] for name, figures in roundtrip.items()} == {
        "rtt": 12,
        "ping": 12,
        "overhead": 12,
    }
    # The round trip is an append and a delivery: it takes longer than the HEAD beside it.
    assert roundtrip["rtt"]["mean"] > roundtrip["overhead"]["mean"]
    assert out["scenarios"]["append-small"]["settings"]["concurrency"] == 75
    assert out["scenarios"]["append-large"]["settings"]["concurrency"] == 15


def test_readers_producer_and_many_streams(server: str) -> None:
    out = report(
        "producer",
        "catch-up",
        "fan-out",
        "many-streams",
        *("--url", server, "--processes", "1", "--count", "30", "--size", "64"),
        *("--readers", "3", "--streams", "3", "--rate", "300"),
    )
    scenarios = out["scenarios"]
    for result in scenarios.values():
        check_sane(result)
    assert scenarios["producer"]["ops"] == 30
    assert scenarios["producer"]["latency"]["ack"]["count"] == 30
    # Every reader reads every message: the stream's 30 for each of 3 readers.
    assert scenarios["catch-up"]["ops"] == 90
    assert scenarios["catch-up"]["latency"]["read"]["count"] == 3
    assert scenarios["fan-out"]["ops"] == 90
    assert scenarios["fan-out"]["latency"]["delivery"]["count"] == 90
    assert scenarios["fan-out"]["latency"]["append"]["count"] == 30
    assert scenarios["many-streams"]["ops"] == 30
    assert scenarios["many-streams"]["latency"]["delivery"]["count"] == 30


def test_two_processes_merge_their_histograms(server: str) -> None:
    out = report(
        "append-small",
        "fan-out",
        "many-streams",
        *("--url", server, "--processes", "2", "--count", "40", "--size", "50"),
        *("--readers", "4", "--streams", "4", "--rate", "400"),
    )
    scenarios = out["scenarios"]
    for result in scenarios.values():
        check_sane(result)
        assert result["settings"]["processes"] == 2
        assert all(p["ops"] > 0 for p in result["processes"])
    appends = scenarios["append-small"]
    assert appends["ops"] == 40 and [p["ops"] for p in appends["processes"]] == [20, 20]
    assert appends["latency"]["append"]["count"] == 40
    # One stream, written by the first process, read by 2 readers in each.
    fan_out = scenarios["fan-out"]
    assert fan_out["ops"] == 160 and [p["ops"] for p in fan_out["processes"]] == [80, 80]
    assert fan_out["latency"]["append"]["count"] == 40
    assert [p["counts"].get("append", 0) for p in fan_out["processes"]] == [40, 0]
    assert scenarios["many-streams"]["latency"]["delivery"]["count"] == 40
    # CPU is summed over the processes.
    assert appends["client_cpu_s"] == pytest.approx(
        sum(p["cpu_s"] for p in appends["processes"]), abs=1e-3
    )


def test_open_loop_keeps_the_rate(embedded: str) -> None:
    out = report("append-small", "--url", embedded, "--processes", "1")  # closed-loop
    closed = out["scenarios"]["append-small"]
    assert closed["settings"]["rate"] is None and closed["ops"] == 1000
    out = report(
        "append-small", "--url", embedded, "--processes", "1", "--rate", "100", "--count", "20"
    )
    paced = out["scenarios"]["append-small"]
    check_sane(paced)
    # 20 operations at 100 a second: the last is due 0.19 s after the first, not at once.
    assert paced["ops"] == 20 and paced["elapsed_s"] >= 0.19
    assert paced["ops_per_s"] <= 110
    out = report(
        "append-small", "--url", embedded, "--processes", "1", "--rate", "50", "--duration", "0.3"
    )
    assert out["scenarios"]["append-small"]["ops"] == 15  # rate x duration
    out = report(
        "append-small", "--url", embedded, "--processes", "1", "--waves", "--count", "70",
        "--concurrency", "30",
    )  # fmt: skip
    waves = out["scenarios"]["append-small"]
    check_sane(waves)
    assert waves["ops"] == 70 and waves["settings"]["waves"] is True  # 30, 30, then 10


def test_table_on_a_pipe(embedded: str) -> None:
    done = bench("roundtrip", "--url", embedded, "--processes", "1", "--count", "5")
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout  # no progress line off a terminal
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "scenario",
        "ops",
        "errors",
        "seconds",
        "ops/s",
        "MB/s",
        "CPU",
        "µs/op",
        "cores",
    ]
    assert lines[1].split()[:3] == ["roundtrip", "5", "0"]
    assert any(line.startswith("roundtrip rtt ") for line in lines)
    assert any("p99" in line for line in lines)


class Terminal:
    """The command with its stdout on a pseudo-terminal, read as it writes."""

    def __init__(self, *args: str) -> None:
        self._primary, secondary = pty.openpty()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "durable_streams", "bench", *args],
            stdout=secondary,
            stderr=subprocess.PIPE,
            env=env,
        )
        os.close(secondary)
        self.seen = ""

    def read_until(self, done: Callable[[str], bool], wait: float = 60) -> str:
        deadline = time.monotonic() + wait
        while not done(self.seen) and time.monotonic() < deadline:
            ready, _, _ = select.select([self._primary], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(self._primary, 4096)
            except OSError:  # the other side closed: the command ended
                break
            if not chunk:
                break
            self.seen += chunk.decode(errors="replace")
        return self.seen

    def close(self) -> tuple[int, str]:
        try:
            _, errors = self.process.communicate(timeout=30)
            return self.process.returncode, errors.decode()
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.communicate()
            os.close(self._primary)


def test_progress_line_on_a_terminal(embedded: str) -> None:
    args = ["append-small", "--url", embedded, "--processes", "1", "--rate", "20", "--count", "20"]
    terminal = Terminal(*args)
    text = terminal.read_until(lambda seen: "p99" in seen)
    status, errors = terminal.close()
    assert status == 0, errors
    assert "\r\x1b[Kappend-small (1 process): " in text and " ops, " in text
    assert "scenario" in text.split("\r\x1b[K")[-1]  # the table comes after a cleared line


def test_ctrl_c_stops_every_process(embedded: str) -> None:
    # 2,000 appends at 20 a second would take 100 s.
    terminal = Terminal(
        *("append-small", "--url", embedded, "--processes", "2"),
        *("--rate", "20", "--count", "2000"),
    )
    terminal.read_until(lambda seen: "(2 processes): " in seen and " ops, " in seen)
    started = time.monotonic()
    terminal.process.send_signal(signal.SIGINT)
    status, errors = terminal.close()
    assert status == 130 and errors == "durable-streams: interrupted\n"
    assert time.monotonic() - started < 10


def test_bad_command_lines_and_an_unreachable_server(embedded: str) -> None:
    assert bench("--processes", "1").returncode == 2  # no URL
    wrong = bench("nosuch", "--url", embedded)
    assert wrong.returncode == 2 and "no scenario 'nosuch'" in wrong.stderr
    assert bench("--url", embedded, "--size", "1GB?").returncode == 2
    assert bench("--url", embedded, "--rate", "0").returncode == 2
    with local_server() as url:
        gone = url  # a port nobody listens on once the server is closed
    started = time.monotonic()
    down = bench("roundtrip", "--url", gone, "--processes", "1")
    assert down.returncode == 4 and time.monotonic() - started < 10  # no retries
    assert down.stderr.startswith("durable-streams: ") and len(down.stderr.splitlines()) == 1
    assert down.stdout == ""


def test_a_process_that_fails_stops_the_others_waiting() -> None:
    prefix = f"bench/fail-{uuid.uuid4().hex[:8]}"
    with local_server(fault_injection=True) as url:
        # The second process cannot create its stream (400 is not retried): the first, set
        # up and waiting for it, stops waiting at once rather than after its 120 s bound.
        inject_status(url, f"/{prefix}/append-small/1", status=400, count=1, method="PUT")
        started = time.monotonic()
        done = bench(
            "append-small", "--url", url, "--processes", "2", "--count", "20",
            "--prefix", prefix, "--json",
        )  # fmt: skip
        assert time.monotonic() - started < 60
    assert done.returncode == 1
    result = json.loads(done.stdout)["scenarios"]["append-small"]
    assert len(result["failed"]) == 2 and result["ops"] == 0
    assert "BadRequestError" in result["failed"][1]
    assert "BrokenBarrierError" in result["failed"][0]
    assert done.stderr.count("\n") == 1 and "2 process(es) stopped" in done.stderr
