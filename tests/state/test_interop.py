"""Interop with the TypeScript State Protocol package (@durable-streams/state, pinned in
refserver/package-lock.json), both ways, through the reference server: its writer's streams
materialize here as its own MaterializedState folds them, and it folds ours as we do."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import durable_streams as ds
from durable_streams.state import StateWriter, load_state, materialize

SCRIPT = Path(__file__).resolve().parents[2] / "refserver" / "state_interop.mjs"


def node(mode: str, url: str) -> dict[str, Any]:
    exe = shutil.which("node")
    assert exe is not None, "node is needed for the interop tests (the reference server too)"
    done = subprocess.run(
        [exe, str(SCRIPT), mode, url], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_streams_the_typescript_writer_writes_materialize_identically(server_url: str) -> None:
    url = f"{server_url}/v1/stream/ts-state-{uuid.uuid4().hex}"
    expected = node("write", url)["state"]
    assert materialize(url) == expected
    state = load_state(url)
    assert state.txids == {"t1"}
    assert state.snapshot()["user"]["3"]["tags"] == ["a", 1, None, 2.5]
    assert state.snapshot()["config"]["unicode"]["text"] == "café ✓"


def test_the_typescript_reader_folds_our_streams_identically(server_url: str) -> None:
    url = f"{server_url}/v1/stream/py-state-{uuid.uuid4().hex}"
    with ds.DurableStream.create(url, content_type="application/json") as handle:
        writer = StateWriter(handle, timestamps=True)
        writer.insert("user", "1", {"id": "1", "name": "Ada"})
        with writer.transaction("tx-1"):
            writer.update("user", "1", {"id": "1", "name": "Ada L."}, old_value={"id": "1"})
            writer.upsert("user", "2", {"id": "2", "score": 1.5, "nested": {"a": [1, None]}})
        writer.insert("config", "theme", "dark")  # a plain value
        writer.snapshot_start()
        writer.insert("user", "3", {"id": "3", "name": "Ω"})
        writer.snapshot_end("0000000000000000_0000000000000000")
        writer.delete("user", "1", old_value={"id": "1"})
        writer.insert("user", "4", {"id": "4"})
        writer.reset()
        writer.insert("user", "5", {"id": "5", "after": "reset"})
    theirs = node("read", url)
    assert theirs["state"] == materialize(url)
    assert theirs["state"] == {"user": {"5": {"id": "5", "after": "reset"}}}
    assert theirs["txids"] == ["tx-1"]
    assert theirs["controls"] == ["snapshot-start", "snapshot-end", "reset"]
