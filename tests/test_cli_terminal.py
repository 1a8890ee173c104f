"""The command line in a real terminal (tmux): the progress line of a bulk append, and a
follow that prints as messages arrive and ends on Ctrl+C with status 130."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from durable_streams.testing import local_server

WAIT = 30.0


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with local_server() as url:
        yield url


@pytest.fixture
def terminal() -> Iterator[Callable[[str], str]]:
    """Runs a shell command line in a detached tmux session; returns a reader of its screen."""
    tmux = shutil.which("tmux")
    assert tmux is not None, "tmux is on this machine kind (polyglot); the test needs it"
    name = f"ds-{uuid.uuid4().hex[:8]}"
    env = f"PYTHONPATH={shlex.quote(os.pathsep.join(sys.path))}"
    started: list[bool] = []

    def run(command: str) -> str:
        if not started:
            subprocess.run(
                [tmux, "new-session", "-d", "-s", name, "-x", "160", "-y", "40"], check=True
            )
            started.append(True)
        subprocess.run([tmux, "send-keys", "-t", name, f"{env} {command}", "Enter"], check=True)
        return name

    yield run
    subprocess.run([tmux, "kill-session", "-t", name], check=False)


def screen(name: str) -> str:
    done = subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True, check=True
    )
    return done.stdout


def wait_for(name: str, seen: Callable[[str], bool]) -> str:
    deadline = time.monotonic() + WAIT
    while True:
        text = screen(name)
        if seen(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"the terminal never showed it; it shows:\n{text}")
        time.sleep(0.05)


def cli(*args: str) -> str:
    return " ".join([shlex.quote(sys.executable), "-m", "durable_streams", *map(shlex.quote, args)])


def test_bulk_append_shows_progress_on_a_terminal(
    base: str, terminal: Callable[[str], str], tmp_path: Path
) -> None:
    url = f"{base}/tty/{uuid.uuid4().hex}"
    lines = tmp_path / "in.ndjson"
    lines.write_text("".join(f'{{"n":{i}}}\n' for i in range(50_000)))
    # The marker is split where it is typed, so only the output shows it whole.
    name = terminal(
        f'{cli("create", "--json", url)} && {cli("append", url)} < {lines}; echo done""=$?'
    )
    text = wait_for(name, lambda t: "done=" in t)
    (progress,) = [line for line in text.splitlines() if "50,000 messages" in line]
    assert progress.rstrip().endswith("msg/s")  # redrawn in place, nothing left over
    assert "done=0" in text


def test_follow_in_a_terminal_and_ctrl_c(base: str, terminal: Callable[[str], str]) -> None:
    url = f"{base}/tty/{uuid.uuid4().hex}"
    subprocess.run([sys.executable, "-m", "durable_streams", "create", "--json", url], check=True)
    name = terminal(f'{cli("read", "-f", url)}; echo status""=$?')
    for n in range(3):
        subprocess.run(
            [sys.executable, "-m", "durable_streams", "append", url, f'{{"n":{n}}}'], check=True
        )
        wait_for(name, lambda t, n=n: f'{{"n":{n}}}' in t)  # each shows as it arrives
    subprocess.run(["tmux", "send-keys", "-t", name, "C-c"], check=True)
    text = wait_for(name, lambda t: "status=" in t)
    assert "status=130" in text and "Traceback" not in text
