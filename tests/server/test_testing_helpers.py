"""durable_streams.testing and docs/testing.md: the examples run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

import durable_streams
from durable_streams.testing import local_server

from .conftest import WAIT

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def _env() -> dict[str, str]:
    package_root = str(Path(durable_streams.__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, *sys.path])}


def test_local_server_serves_then_stops() -> None:
    with local_server() as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.put(f"{url}/a", headers={"content-type": "text/plain"}).status_code == 201
        assert httpx.post(f"{url}/_test/inject-error", json={"path": "/a"}).status_code == 404
    try:
        answer = httpx.get(f"{url}/a", timeout=WAIT)
    except httpx.ConnectError:
        return  # stopped, its port closed
    # Another test's server may have been given the freed port since: not this server.
    assert answer.status_code == 404


def test_local_server_with_a_data_file_keeps_streams(tmp_path: Path) -> None:
    data = tmp_path / "kept.sqlite3"
    with local_server(data_path=data) as url:
        httpx.put(f"{url}/kept", headers={"content-type": "text/plain"}, content=b"still here")
    with local_server(data_path=data) as url:
        assert httpx.get(f"{url}/kept").content == b"still here"


@pytest.mark.parametrize("block", [0, 3], ids=["local_server", "fault_injection"])
def test_the_docs_scripts_run(block: int) -> None:
    source = _python_blocks()[block]
    result = subprocess.run(
        [sys.executable, "-c", source], env=_env(), capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode()


def test_the_docs_pytest_example_runs_with_the_plugin(tmp_path: Path) -> None:
    blocks = _python_blocks()
    (tmp_path / "conftest.py").write_text(blocks[1], encoding="utf-8")
    (tmp_path / "test_example.py").write_text(blocks[2], encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        timeout=120,
    )
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, output
    assert "1 passed" in output


def test_the_fixture_is_one_server_per_session(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["durable_streams.testing"]\n', encoding="utf-8"
    )
    (tmp_path / "test_twice.py").write_text(
        textwrap.dedent(
            """
            import httpx

            SEEN = []


            def test_first(durable_streams_server):
                SEEN.append(durable_streams_server)
                r = httpx.put(durable_streams_server + "/shared")
                assert r.status_code == 201


            def test_second(durable_streams_server):
                assert SEEN == [durable_streams_server]
                assert httpx.head(durable_streams_server + "/shared").status_code == 200
            """
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        timeout=120,
    )
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    assert "2 passed" in output


def test_the_command_line_explains_itself() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "durable_streams", "serve", "--help"],
        env=_env(),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0
    for option in (b"--host", b"--port", b"--data", b"--long-poll-timeout", b"--fault-injection"):
        assert option in result.stdout


def test_the_command_line_reports_a_port_in_use() -> None:
    with local_server() as url:
        port = url.rsplit(":", 1)[1]
        result = subprocess.run(
            [sys.executable, "-m", "durable_streams", "serve", "--port", port],
            env=_env(),
            capture_output=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stdout == b""
    assert b"durable-streams:" in result.stderr
