"""The generations tests' helpers: the test backend (tests/generations/backend.py) as a
uvicorn server in a child process, and the pinned AI SDK packages for Node."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from npm_packages import ensure_installed

ROOT = Path(__file__).resolve().parents[2]
BACKEND = Path(__file__).resolve().parent / "backend.py"
AISDK = ROOT / "interop" / "aisdk"
CHAT_SCRIPT = AISDK / "chat.mjs"
STARTUP_TIMEOUT = 30.0


@dataclass
class RunningBackend:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def api(self) -> str:
        return f"{self.url}/api/chat"

    def kill(self) -> None:
        """kill -9: nothing of the backend runs after this."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@contextlib.contextmanager
def running_backend(streams: str, *options: str) -> Iterator[RunningBackend]:
    """The backend (options: backend.py's, e.g. ``--mode await``) until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, str(BACKEND), streams, *options],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=STARTUP_TIMEOUT)
        assert ready, f"the backend did not start within {STARTUP_TIMEOUT} s"
        line = proc.stdout.readline()
        assert line, f"the backend exited with {proc.wait(timeout=10)} before listening"
        yield RunningBackend(json.loads(line)["url"], proc)
    finally:
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()  # the backend exits when its stdin closes
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


def ensure_aisdk_installed() -> None:
    """npm install the pinned packages of interop/aisdk from its lockfile, once."""
    ensure_installed(AISDK, ["install", "--no-save"], "the AI SDK interop tests")


def node_chat(*args: str, timeout: float = 90.0) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "node is needed for the AI SDK interop tests"
    done = subprocess.run(
        [node, str(CHAT_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=AISDK,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="session")
def aisdk() -> None:
    ensure_aisdk_installed()


@pytest.fixture(scope="session")
def replay_url() -> Iterator[str]:
    """tests/generations/replay.py under uvicorn, on a thread of the test process."""
    import socket
    import threading

    import uvicorn

    from .replay import app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
