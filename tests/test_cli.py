"""The ``durable-streams`` command line, run as a user runs it: a subprocess against the
embedded server, checked for its output, its exit status and the absence of tracebacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from durable_streams.testing import local_server
from injection import inject_status


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with local_server() as url:
        yield url


def cli(
    *args: str, stdin: bytes = b"", base: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("DURABLE_STREAMS_URL", None)
    if base is not None:
        env["DURABLE_STREAMS_URL"] = base
    done = subprocess.run(
        [sys.executable, "-m", "durable_streams", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    return done


def test_version_and_help() -> None:
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.startswith(b"durable-streams ")
    usage = cli("--help")
    assert usage.returncode == 0
    for name in (b"create", b"append", b"read", b"head", b"close", b"fork", b"delete", b"serve"):
        assert name in usage.stdout
    assert cli().returncode == 2


def test_json_streams_round_trip_as_ndjson(base: str) -> None:
    path = f"cli/{uuid.uuid4().hex}"
    assert cli("create", "--json", path, base=base).returncode == 0
    assert cli("append", path, base=base, stdin=b'{"a":1}\n\n{"b":"\xc3\xa9"}\r\n').returncode == 0
    assert cli("append", path, '{"c":3}', "[4,5]", base=base).returncode == 0
    read = cli("read", path, base=base)
    assert read.returncode == 0
    lines = [json.loads(line) for line in read.stdout.decode().splitlines()]
    assert lines == [{"a": 1}, {"b": "é"}, {"c": 3}, [4, 5]]
    head = cli("head", "--json", f"{base}/{path}")
    facts = json.loads(head.stdout)
    assert facts["content_type"] == "application/json" and facts["closed"] is False


def test_bytes_streams_fork_close_and_delete(base: str) -> None:
    path = f"cli/{uuid.uuid4().hex}"
    assert cli("create", path, base=base).returncode == 0
    assert cli("append", "--raw", path, base=base, stdin=b"\x00\x01bytes\n").returncode == 0
    assert cli("append", path, base=base, stdin=b"line one\nline two\n").returncode == 0
    assert cli("read", path, base=base).stdout == b"\x00\x01bytes\nline one\nline two\n"
    assert cli("fork", path, f"{path}-fork", base=base).returncode == 0
    closed = cli("close", f"{path}-fork", "the end", base=base)
    assert closed.returncode == 0 and closed.stdout.startswith(b"closed at ")
    assert cli("read", f"{path}-fork", base=base).stdout.endswith(b"line two\nthe end")
    assert cli("delete", f"{path}-fork", base=base).returncode == 0
    assert cli("head", f"{path}-fork", base=base).returncode == 3


def test_errors_are_one_line_and_a_documented_status(base: str, tmp_path: Path) -> None:
    path = f"cli/{uuid.uuid4().hex}"
    cli("create", "--json", path, base=base)
    bad = cli("append", path, base=base, stdin=b'{"ok":1}\nnot json\n')
    assert bad.returncode == 5 and b"line 2 is not JSON" in bad.stderr
    assert len(bad.stderr.decode().strip().splitlines()) == 1
    missing = cli("read", "cli/nothing-here", base=base)
    assert missing.returncode == 3 and b"not found" in missing.stderr
    no_base = cli("read", "cli/x")
    assert no_base.returncode == 5 and b"--url" in no_base.stderr
    refused = cli("head", "--retry-for", "0", "http://127.0.0.1:9/x")
    assert refused.returncode == 4 and b"cannot reach the server" in refused.stderr
    header = cli("head", path, "-H", "no colon", base=base)
    assert header.returncode == 5
    served = cli("serve", "--data", str(tmp_path / "missing" / "dir" / "x.db"))
    assert served.returncode == 1 and b"cannot open it as a data file" in served.stderr


def test_follow_prints_as_it_arrives_and_ctrl_c_exits_130(base: str) -> None:
    path = f"cli/{uuid.uuid4().hex}"
    cli("create", "--json", path, base=base)
    cli("append", path, '{"n":1}', base=base)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "DURABLE_STREAMS_URL": base}
    with subprocess.Popen(
        [sys.executable, "-m", "durable_streams", "read", "-f", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as follower:
        try:
            assert follower.stdout is not None and follower.stderr is not None
            assert json.loads(follower.stdout.readline()) == {"n": 1}
            cli("append", path, '{"n":2}', base=base)
            assert json.loads(follower.stdout.readline()) == {"n": 2}  # live, as it arrives
            follower.send_signal(signal.SIGINT)
            assert follower.wait(timeout=30) == 130
            assert b"Traceback" not in follower.stderr.read()
        finally:
            if follower.poll() is None:
                follower.kill()


def test_verbose_shows_the_retries_that_are_silent_by_default() -> None:
    with local_server(fault_injection=True) as url:
        path = f"cli/{uuid.uuid4().hex}"
        cli("create", "--json", path, base=url)
        cli("append", path, '{"n":1}', base=url)
        inject_status(url, f"/{path}", status=503, count=1, method="GET")
        quiet = cli("read", path, base=url)
        assert quiet.returncode == 0 and quiet.stdout == b'{"n":1}\n'
        assert quiet.stderr == b""
        inject_status(url, f"/{path}", status=503, count=1, method="GET")
        verbose = cli("read", "-v", path, base=url)
        assert verbose.returncode == 0 and verbose.stdout == b'{"n":1}\n'
        (line,) = verbose.stderr.decode().splitlines()
        assert line.startswith(f"durable-streams: INFO: reading {url}/{path} failed (attempt 1)")


def test_a_base_url_with_a_query_keeps_it_and_it_is_never_printed(base: str) -> None:
    path = f"cli/{uuid.uuid4().hex}"
    with_token = f"{base}?token=s3cr3t"  # the stream's path goes before the query
    assert cli("create", "--url", with_token, path).returncode == 0
    head = cli("head", "--url", with_token, path)
    assert head.returncode == 0 and f"url: {base}/{path}\n".encode() in head.stdout
    assert b"s3cr3t" not in head.stdout + head.stderr
    facts = json.loads(cli("head", "--json", "--url", with_token, path).stdout)
    assert facts["url"] == f"{base}/{path}"


def test_what_cannot_work_is_a_usage_error_at_once(base: str) -> None:
    for args in (
        ("read", "-f", "--url", "htp://127.0.0.1:9", "s"),  # not retried as a network fault
        ("head", "--url", "127.0.0.1:4437", "s"),  # no scheme
        ("head", "s", "-H", "X-Token: abc\ns3cr3t", "--url", base),
    ):
        done = cli(*args, timeout=20)
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.decode().splitlines()
        assert line.startswith("durable-streams: ") and "s3cr3t" not in line
    no_time = cli("head", "s", "--timeout", "0", base=base)
    assert no_time.returncode == 2 and b"must be a positive number of seconds" in no_time.stderr
    both = cli("create", "s", "--json", "--content-type", "text/plain", base=base)
    assert both.returncode == 2 and b"not allowed with argument" in both.stderr


def test_fork_errors_name_the_stream_at_fault(base: str) -> None:
    path = f"cli/{uuid.uuid4().hex}"
    missing = cli("fork", f"{path}-nope", f"{path}-nope2", base=base)
    assert missing.returncode == 3
    assert f"{base}/{path}-nope,".encode() in missing.stderr and b"nope2" not in missing.stderr
    cli("create", "--json", path, base=base)
    at_start = cli("fork", path, f"{path}-f", "--offset", "-1", base=base)
    assert at_start.returncode == 2 and b"leave it out to fork at the tail" in at_start.stderr


def test_arguments_to_a_text_stream_are_lines_as_stdin_lines_are(base: str) -> None:
    path = f"cli/{uuid.uuid4().hex}"
    cli("create", "--content-type", "text/plain", path, base=base)
    assert cli("append", path, "a", base=base).returncode == 0
    assert cli("append", path, "b", "c", base=base).returncode == 0
    assert cli("append", path, base=base, stdin=b"d\n").returncode == 0
    assert cli("read", path, base=base).stdout == b"a\nb\nc\nd\n"


def test_library_warnings_stay_off_stderr_without_verbose() -> None:
    with local_server(fault_injection=True) as url:
        path = f"cli/{uuid.uuid4().hex}"
        cli("create", "--json", path, base=url)
        # The third retry in a row logs at WARNING; the command still succeeds.
        inject_status(url, f"/{path}", status=503, count=3, method="HEAD")
        quiet = cli("head", path, base=url)
        assert quiet.returncode == 0 and quiet.stderr == b""
        inject_status(url, f"/{path}", status=503, count=3, method="HEAD")
        verbose = cli("head", "-v", path, base=url)
        assert b"WARNING" in verbose.stderr
