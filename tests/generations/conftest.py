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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BACKEND = Path(__file__).resolve().parent / "backend.py"
AISDK = ROOT / "interop" / "aisdk"
CHAT_SCRIPT = AISDK / "chat.mjs"
INSTALL_TIMEOUT = 300.0
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


def _pinned() -> dict[str, str]:
    manifest = json.loads((AISDK / "package.json").read_text(encoding="utf-8"))
    return dict(manifest["dependencies"])


def _installed() -> bool:
    for name, version in _pinned().items():
        try:
            found = json.loads((AISDK / "node_modules" / name / "package.json").read_text())
        except (OSError, ValueError):
            return False
        if found.get("version") != version:
            return False
    return True


def ensure_aisdk_installed() -> None:
    """npm install the pinned packages of interop/aisdk from its lockfile, once (a lock keeps
    two test workers from installing at the same time)."""
    if _installed():
        return
    import fcntl

    npm = shutil.which("npm")
    assert npm is not None, "npm is needed for the AI SDK interop tests"
    with open(AISDK / ".install.lock", "a+b") as lock:
        deadline = time.monotonic() + INSTALL_TIMEOUT
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "another worker's npm install hangs"
                time.sleep(0.2)  # polling a lock: there is nothing to wait on
        try:
            if _installed():
                return
            done = subprocess.run(
                [npm, "install", "--no-save", "--no-audit", "--no-fund", "--update-notifier=false"],
                cwd=AISDK,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert _installed(), done.stdout + done.stderr
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


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
