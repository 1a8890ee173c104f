"""Node packages the tests drive, installed from their lockfiles once per machine: a folder
with a ``package.json`` of pinned ``dependencies`` (benches/node, interop/aisdk)."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import time
from pathlib import Path

INSTALL_TIMEOUT = 300.0


def installed(folder: Path) -> bool:
    """Whether every pinned dependency of ``folder`` is in its node_modules at its version."""
    pinned = json.loads((folder / "package.json").read_text(encoding="utf-8"))["dependencies"]
    for name, version in pinned.items():
        try:
            found = json.loads((folder / "node_modules" / name / "package.json").read_text())
        except (OSError, ValueError):
            return False
        if found.get("version") != version:
            return False
    return True


def ensure_installed(folder: Path, npm_args: list[str], needed_for: str) -> None:
    """``npm <npm_args>`` in ``folder`` unless its packages are there; a lock keeps two test
    workers from installing at the same time."""
    if installed(folder):
        return
    npm = shutil.which("npm")
    assert npm is not None, f"npm is needed for {needed_for}"
    with open(folder / ".install.lock", "a+b") as lock:
        deadline = time.monotonic() + INSTALL_TIMEOUT
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, f"another worker's npm {npm_args[0]} hangs"
                time.sleep(0.2)  # polling a lock: there is nothing to wait on
        try:
            if installed(folder):
                return
            done = subprocess.run(
                [npm, *npm_args, "--no-audit", "--no-fund", "--update-notifier=false"],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert installed(folder), done.stdout + done.stderr
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
