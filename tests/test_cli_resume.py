"""``durable-streams append --producer-id``: the stream holds a prefix of the input whatever
happens to the server or the command, and a rerun of the same input completes it, each line
stored once. Run as a user runs it: subprocesses against an embedded server in a process of
its own, with a data file, killed with SIGKILL and started again."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from durable_streams import DurableStream, stream

pytestmark = pytest.mark.timeout(180)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``durable-streams serve --data FILE`` on a fixed port, to kill and start again."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["serve", "--port", str(self.port), "--data", str(self.data)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "durable_streams", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().decode().strip() == self.url  # it listens now

    def kill(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        self.process.kill()
        self.process.wait(timeout=30)
        self.process.stdout.close()
        self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "streams.db")
    running.start()
    try:
        yield running
    finally:
        if running.process is not None:
            running.kill()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def lines(first: int, last: int) -> bytes:
    return b"".join(json.dumps({"line": n}).encode() + b"\n" for n in range(first, last))


def append(
    url: str, state_dir: Path, *args: str, stdin: bytes | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "DURABLE_STREAMS_STATE_DIR": str(state_dir),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "durable_streams", "append", *args, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def run(url: str, state_dir: Path, *args: str, stdin: bytes) -> tuple[int, str]:
    process = append(url, state_dir, *args)
    _, err = process.communicate(stdin, timeout=120)
    text = err.decode()
    assert "Traceback" not in text and "was never awaited" not in text, text
    assert "Task was destroyed" not in text, text
    return process.returncode, text


def stored(url: str) -> list[int]:
    with stream(url) as res:
        return [message["line"] for message in res.read_json()]


def wait_for_count(url: str, count: int) -> None:
    """Follow the stream (long-poll: the server says when more arrives) until it holds
    ``count`` messages."""
    seen = 0
    with stream(url, live="long-poll") as res:
        for _ in res.iter_json():
            seen += 1
            if seen >= count:
                return


def test_a_server_killed_for_longer_than_the_retries_leaves_a_prefix_a_rerun_completes(
    server: Server, state_dir: Path
) -> None:
    url = f"{server.url}/jobs/{uuid.uuid4().hex}"
    DurableStream.create(url, content_type="application/json").close()
    first = append(url, state_dir, "--producer-id", "job8", "--retry-for", "1")
    assert first.stdin is not None
    first.stdin.write(lines(0, 1000))
    first.stdin.flush()
    wait_for_count(url, 1000)
    server.kill()
    _, err = first.communicate(lines(1000, 3000), timeout=120)
    assert first.returncode == 1, err
    assert b"rerun the same command" in err and b"Traceback" not in err
    server.start()
    held = stored(url)
    assert held == list(range(len(held))) and len(held) >= 1000  # a prefix: no hole

    status, err_text = run(url, state_dir, "--producer-id", "job8", stdin=lines(0, 3000))
    assert status == 0, err_text
    assert stored(url) == list(range(3000))  # completed, each line once

    status, err_text = run(url, state_dir, "--producer-id", "job8", stdin=lines(0, 3000))
    assert status == 0 and "skipped the first 3,000" in err_text
    assert stored(url) == list(range(3000))


def test_a_server_restart_within_the_retries_loses_and_repeats_nothing(
    server: Server, state_dir: Path
) -> None:
    url = f"{server.url}/jobs/{uuid.uuid4().hex}"
    DurableStream.create(url, content_type="application/json").close()
    writer = append(url, state_dir, "--producer-id", "job9")
    assert writer.stdin is not None
    writer.stdin.write(lines(0, 1000))
    writer.stdin.flush()
    wait_for_count(url, 1000)
    server.kill()
    writer.stdin.write(lines(1000, 2000))
    writer.stdin.flush()
    server.start()
    _, err = writer.communicate(lines(2000, 3000), timeout=120)
    assert writer.returncode == 0, err
    assert stored(url) == list(range(3000))


def test_a_bad_line_stops_at_it_and_the_corrected_input_is_completed(
    server: Server, state_dir: Path
) -> None:
    url = f"{server.url}/jobs/{uuid.uuid4().hex}"
    DurableStream.create(url, content_type="application/json").close()
    broken = lines(0, 5) + b"{oops\n" + lines(6, 10)
    status, err = run(url, state_dir, "--producer-id", "fixme", stdin=broken)
    assert status == 5 and "line 6 is not JSON" in err
    assert stored(url) == list(range(5))
    status, err = run(url, state_dir, "--producer-id", "fixme", stdin=lines(0, 10))
    assert status == 0 and "skipped the first 5 message(s)" in err
    assert stored(url) == list(range(10))


def test_other_input_under_an_id_that_took_more_is_refused_and_nothing_appended(
    server: Server, state_dir: Path
) -> None:
    url = f"{server.url}/jobs/{uuid.uuid4().hex}"
    DurableStream.create(url, content_type="application/json").close()
    assert run(url, state_dir, "--producer-id", "daily", stdin=lines(0, 10))[0] == 0
    status, err = run(url, state_dir, "--producer-id", "daily", stdin=lines(0, 4))
    assert status == 5 and "not the input they appended" in err
    assert stored(url) == list(range(10))


def test_an_id_used_elsewhere_says_how_to_go_on(server: Server, tmp_path: Path) -> None:
    url = f"{server.url}/jobs/{uuid.uuid4().hex}"
    DurableStream.create(url, content_type="application/json").close()
    assert run(url, tmp_path / "here", "--producer-id", "moved", stdin=lines(0, 3))[0] == 0
    status, err = run(url, tmp_path / "there", "--producer-id", "moved", stdin=lines(0, 3))
    assert status == 1 and "state file is not here" in err
    assert stored(url) == [0, 1, 2]


def test_ctrl_c_with_the_server_down_stops_at_once_and_a_rerun_completes(
    server: Server, state_dir: Path
) -> None:
    url = f"{server.url}/jobs/{uuid.uuid4().hex}"
    DurableStream.create(url, content_type="application/json").close()
    writer = append(url, state_dir, "--producer-id", "ctrlc", "--retry-for", "600")
    assert writer.stdin is not None and writer.stderr is not None
    writer.stdin.write(lines(0, 100))
    writer.stdin.flush()
    wait_for_count(url, 100)
    server.kill()
    writer.stdin.write(lines(100, 200))
    writer.stdin.flush()
    writer.send_signal(signal.SIGINT)
    # Retrying for up to 600 s, it must stop on Ctrl+C instead (the test's timeout is 180 s).
    assert writer.wait(timeout=120) == 130
    err = writer.stderr.read().decode()
    assert "interrupted" in err and "Traceback" not in err, err
    assert "Task was destroyed" not in err and "never awaited" not in err, err
    for pipe in (writer.stdin, writer.stdout, writer.stderr):
        pipe.close()
    server.start()
    held = stored(url)
    assert held == list(range(len(held)))
    status, err = run(url, state_dir, "--producer-id", "ctrlc", stdin=lines(0, 200))
    assert status == 0, err
    assert stored(url) == list(range(200))
