"""The reference-server harness (refserver/launch.py) itself.

These start the real @durable-streams/server, so they are integration tests;
every wait is bounded and nothing sleeps to synchronize.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed"),
]

REFSERVER_DIR = Path(__file__).resolve().parent.parent / "refserver"
HTTP_TIMEOUT = 10.0

# No proxies: the server is on 127.0.0.1 and a proxy from the environment must not intercept.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _load_launch() -> ModuleType:
    if "launch" in sys.modules and getattr(sys.modules["launch"], "REFSERVER_DIR", None):
        return sys.modules["launch"]
    spec = importlib.util.spec_from_file_location("launch", REFSERVER_DIR / "launch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["launch"] = module
    spec.loader.exec_module(module)
    return module


launch = _load_launch()


def _request(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _opener.open(req, timeout=HTTP_TIMEOUT) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def _assert_unreachable(url: str) -> None:
    with pytest.raises(urllib.error.URLError):
        _request("HEAD", url + "/anything")


def test_json_roundtrip_and_stop_ends_the_process() -> None:
    server = launch.ReferenceServer(long_poll_timeout_ms=1000)
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        stream = f"{server.url}/v1/stream/harness-{uuid.uuid4().hex}"
        json_ct = {"Content-Type": "application/json"}

        status, headers, _ = _request("PUT", stream, headers=json_ct)
        assert status == 201
        assert headers["content-type"] == "application/json"

        status, _, _ = _request("PUT", stream, headers=json_ct)
        assert status == 200  # idempotent create

        status, headers, _ = _request("POST", stream, json.dumps({"n": 1}).encode(), json_ct)
        assert status == 204
        first_offset = headers["stream-next-offset"]
        status, headers, _ = _request("POST", stream, b'[{"n": 2}, {"n": 3}]', json_ct)
        assert status == 204
        tail = headers["stream-next-offset"]
        assert tail > first_offset

        status, headers, body = _request("GET", stream + "?offset=-1")
        assert status == 200
        assert json.loads(body) == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert headers["stream-next-offset"] == tail
        assert headers["stream-up-to-date"] == "true"

        status, _, body = _request("GET", f"{stream}?offset={first_offset}")
        assert status == 200
        assert json.loads(body) == [{"n": 2}, {"n": 3}]

        proc = server.process
        assert proc is not None and proc.poll() is None
        url = server.url

    # Leaving the block stopped it: the process has exited (gracefully, on SIGTERM)
    # and the port no longer answers.
    assert proc.poll() is not None
    assert proc.returncode == 0, server.stderr_text()
    assert not server.is_running()
    _assert_unreachable(url)
    with pytest.raises(RuntimeError):
        _ = server.url
    assert server.stop() == 0  # a second stop is harmless


def test_server_exits_when_its_stdin_closes() -> None:
    server = launch.ReferenceServer()
    server.start()
    try:
        proc = server.process
        assert proc is not None and proc.stdin is not None
        url = server.url
        status, _, _ = _request("PUT", f"{url}/v1/stream/stdin-{uuid.uuid4().hex}")
        assert status == 201

        # What happens when the parent dies: the pipe's write end goes away.
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0, server.stderr_text()
        _assert_unreachable(url)
    finally:
        server.stop()
    assert "stdin closed" in server.stderr_text()


def test_start_failure_reports_the_servers_stderr() -> None:
    with launch.ReferenceServer() as first:
        port = int(first.url.rsplit(":", 1)[1])
        second = launch.ReferenceServer(port=port, startup_timeout=20)
        with pytest.raises(RuntimeError, match="EADDRINUSE"):
            second.start()
        assert not second.is_running()


def test_installed_version_is_the_pinned_one() -> None:
    launch.ensure_installed(timeout=300)
    assert launch.is_installed()
    assert launch.pinned_version() == "0.3.7"
    node_check = subprocess.run(
        [
            "node",
            "--input-type=module",
            "-e",
            "import('@durable-streams/server').then(m => "
            "console.log(typeof m.DurableStreamTestServer))",
        ],
        cwd=REFSERVER_DIR,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert node_check.stdout.strip() == "function"


def test_data_dir_keeps_streams_across_restarts(tmp_path: Path) -> None:
    path = f"/v1/stream/durable-{uuid.uuid4().hex}"
    octet = {"Content-Type": "application/octet-stream"}
    with launch.ReferenceServer(data_dir=tmp_path) as server:
        assert _request("PUT", server.url + path, headers=octet)[0] == 201
        status, headers, _ = _request("POST", server.url + path, b"\x00\x01persisted", octet)
        assert status == 204
        tail = headers["stream-next-offset"]
    with launch.ReferenceServer(data_dir=tmp_path) as server:
        status, headers, body = _request("GET", server.url + path + "?offset=-1")
        assert status == 200
        assert body == b"\x00\x01persisted"
        assert headers["stream-next-offset"] == tail
