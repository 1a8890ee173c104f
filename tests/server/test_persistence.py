"""With a data file, streams survive a restart: data, offsets, closure, TTLs, Stream-Seq,
producer state, forks and soft-deleted sources."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import durable_streams
from durable_streams.server import Server
from durable_streams.server._store import CreateSpec, MemoryJournal, Producer, Store, Stream

from .conftest import WAIT

JSON = {"content-type": "application/json"}
TEXT = {"content-type": "text/plain"}
OCTETS = {"content-type": "application/octet-stream"}


def _producer(seq: int, epoch: int = 0) -> dict[str, str]:
    return {"producer-id": "p", "producer-epoch": str(epoch), "producer-seq": str(seq), **JSON}


def _snapshot(http: httpx.Client, paths: list[str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for path in paths:
        head = http.head(path)
        read = http.get(path, params={"offset": "-1"})
        seen[path] = (
            head.status_code,
            {k: head.headers.get(k) for k in ("stream-next-offset", "stream-closed", "stream-ttl")},
            read.status_code,
            read.content,
        )
    return seen


def test_streams_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "streams.sqlite3"
    paths = ["/json", "/text", "/bin", "/fork", "/src", "/child", "/deleted"]
    with Server(data_path=data) as first, httpx.Client(base_url=first.url, timeout=WAIT) as http:
        assert http.put("/json", headers=JSON, content=b"[1, 2]").status_code == 201
        fork_at = http.head("/json").headers["stream-next-offset"]
        assert http.post("/json", headers=_producer(0), content=b'{"a": 1}').status_code == 200
        assert http.post("/json", headers=_producer(1), content=b"[3, 4]").status_code == 200
        http.put("/text", headers=TEXT, content=b"hello")
        http.post("/text", headers=TEXT, content=b" world")
        assert http.post("/text", headers={"stream-closed": "true"}).status_code == 204
        http.put("/bin", headers={**OCTETS, "stream-ttl": "3600"}, content=b"\x00\x01")
        assert (
            http.post("/bin", headers={**OCTETS, "stream-seq": "005"}, content=b"\xff").status_code
            == 204
        )
        fork = {"stream-forked-from": "/json", "stream-fork-offset": fork_at}
        assert http.put("/fork", headers=fork).status_code == 201
        http.post("/fork", headers=JSON, content=b'"own"')
        http.put("/src", headers=TEXT, content=b"inherited")
        http.put("/child", headers={"stream-forked-from": "/src"})
        assert http.delete("/src").status_code == 204
        http.put("/deleted", headers=TEXT)
        http.delete("/deleted")
        before = _snapshot(http, paths)

    with Server(data_path=data) as second, httpx.Client(base_url=second.url, timeout=WAIT) as http:
        assert _snapshot(http, paths) == before
        assert http.get("/json").json() == [1, 2, {"a": 1}, 3, 4]
        assert http.get("/fork").json() == [1, 2, "own"]
        assert http.get("/child").content == b"inherited"
        assert http.head("/src").status_code == 410
        # Producer state: a retry is a duplicate, the next sequence is accepted, a gap is not.
        assert http.post("/json", headers=_producer(1), content=b"[3, 4]").status_code == 204
        assert http.post("/json", headers=_producer(3), content=b"5").status_code == 409
        assert http.post("/json", headers=_producer(2), content=b"5").status_code == 200
        # Stream-Seq and closure hold too.
        assert (
            http.post("/bin", headers={**OCTETS, "stream-seq": "004"}, content=b"x").status_code
            == 409
        )
        assert http.post("/text", headers=TEXT, content=b"!").status_code == 409
        # Deleting the last fork of a soft-deleted source removes the source for good.
        assert http.delete("/child").status_code == 204
        assert http.head("/src").status_code == 404
        assert http.put("/src", headers=TEXT).status_code == 201

    with Server(data_path=data) as third, httpx.Client(base_url=third.url, timeout=WAIT) as http:
        assert http.get("/json").json() == [1, 2, {"a": 1}, 3, 4, 5]
        assert http.head("/child").status_code == 404
        assert http.get("/src").content == b""


def _start_cli(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    package_root = str(Path(durable_streams.__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "durable_streams", "serve", "--port", "0", "--data", str(data)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], WAIT)
    if not ready:
        proc.kill()
        raise AssertionError("the server printed no URL in time")
    url = proc.stdout.readline().decode().strip()
    assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.stderr else b"")
    return proc, url


def _stop_cli(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_the_command_line_server_keeps_streams_in_its_data_file(tmp_path: Path) -> None:
    data = tmp_path / "cli.sqlite3"
    proc, url = _start_cli(data)
    try:
        assert httpx.put(f"{url}/s", headers=JSON, content=b'[{"n": 1}]').status_code == 201
        assert (
            httpx.post(
                f"{url}/s", headers={"stream-closed": "true", **JSON}, content=b"2"
            ).status_code
            == 204
        )
    finally:
        assert _stop_cli(proc) == 0
    proc, url = _start_cli(data)
    try:
        read = httpx.get(f"{url}/s")
        assert read.json() == [{"n": 1}, 2]
        assert read.headers["stream-closed"] == "true"
    finally:
        assert _stop_cli(proc) == 0


class FailingJournal(MemoryJournal):
    def __init__(self) -> None:
        self.failing = False

    def save(self, stream: Stream, added: int = 0) -> None:
        if self.failing:
            raise OSError("disk full")


def test_a_failed_write_leaves_memory_as_it_was() -> None:
    journal = FailingJournal()
    store = Store(journal)
    store.create("/s", CreateSpec(content_type="application/json"), b"[1]")
    store.append("/s", b"2", content_type="application/json", producer=Producer("p", 0, 0))
    stream = store.get("/s")
    before = (stream.tail, list(stream.chunks), dict(stream.producers), stream.closed)
    journal.failing = True
    with pytest.raises(OSError):
        store.append(
            "/s", b"3", content_type="application/json", producer=Producer("p", 0, 1), close=True
        )
    with pytest.raises(OSError):
        store.close("/s")
    assert (stream.tail, stream.chunks, stream.producers, stream.closed) == before
    journal.failing = False
    outcome = store.append(
        "/s", b"3", content_type="application/json", producer=Producer("p", 0, 1)
    )
    assert outcome.check is not None and outcome.check.verdict.value == "accepted"
    assert json.loads(b"[" + b"".join(stream.chunks)[:-1] + b"]") == [1, 2, 3]


def test_a_data_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    import sqlite3

    data = tmp_path / "future.sqlite3"
    with Server(data_path=data, port=0):
        pass
    conn = sqlite3.connect(data)
    with conn:
        conn.execute("UPDATE info SET value = '99' WHERE key = 'schema'")
    conn.close()
    with pytest.raises(RuntimeError, match="schema"):
        Server(data_path=data).start()


def test_a_data_file_serves_one_server_at_a_time(tmp_path: Path) -> None:
    data = tmp_path / "one.sqlite3"
    with Server(data_path=data) as first:
        with pytest.raises(RuntimeError, match="cannot use it"):
            Server(data_path=data).start()
        assert httpx.put(f"{first.url}/s", headers=TEXT).status_code == 201
    with Server(data_path=data) as second:
        assert httpx.head(f"{second.url}/s").status_code == 200
