"""The ``durable-streams`` commands the TypeScript CLI has too (auth, fork's settings, JSON
arrays as many messages) and the ones over subscriptions and state, run as a user runs them:
a subprocess against the reference server."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from authgate import AuthGate
from durable_streams import DurableStream
from durable_streams.state import StateWriter, materialize

SECRET = "Bearer s3cret-token-42"


def cli(
    *args: str, stdin: bytes = b"", base: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for name in ("DURABLE_STREAMS_URL", "DURABLE_STREAMS_AUTH", "STREAM_AUTH"):
        environment.pop(name, None)
    if base is not None:
        environment["DURABLE_STREAMS_URL"] = base
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "durable_streams", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env=environment,
        check=False,
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    return done


@pytest.fixture
def base(server_url: str) -> str:
    return f"{server_url}/v1/stream"


@pytest.fixture
def path() -> str:
    return f"cli/{uuid.uuid4().hex}"


@pytest.fixture
def gate(base: str) -> Iterator[AuthGate]:
    with AuthGate(base, SECRET) as gate:
        yield gate


def lines(done: subprocess.CompletedProcess[bytes]) -> list[object]:
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


# -- auth ---------------------------------------------------------------------------------


def test_auth_from_the_flag_reaches_the_server_and_is_never_printed(
    gate: AuthGate, path: str
) -> None:
    assert cli("create", "--json", "--auth", SECRET, path, base=gate.url).returncode == 0
    # Before the command too, as the TypeScript CLI takes it.
    assert cli("--auth", SECRET, "append", path, "[1]", base=gate.url).returncode == 0
    read = cli("read", path, "--auth", SECRET, base=gate.url)
    assert read.returncode == 0 and lines(read) == [[1]]
    refused_before = gate.refused
    wrong = cli("read", path, "--auth", "Bearer wrong", "--retry-for", "0", base=gate.url)
    assert wrong.returncode == 1 and gate.refused == refused_before + 1
    assert b"401" in wrong.stderr and b"wrong" not in wrong.stderr
    verbose = cli("head", path, "-vv", "--auth", SECRET, base=gate.url)
    assert verbose.returncode == 0
    assert b"s3cret" not in verbose.stderr + verbose.stdout


def test_auth_from_the_environment_and_its_precedence(gate: AuthGate, path: str) -> None:
    ours = {"DURABLE_STREAMS_AUTH": SECRET}
    upstream = {"STREAM_AUTH": SECRET}
    assert cli("create", "--json", path, base=gate.url, env=ours).returncode == 0
    assert cli("append", path, '{"a":1}', base=gate.url, env=upstream).returncode == 0
    # DURABLE_STREAMS_AUTH over STREAM_AUTH, --auth over both.
    both = {"DURABLE_STREAMS_AUTH": SECRET, "STREAM_AUTH": "Bearer stale"}
    assert cli("head", path, base=gate.url, env=both).returncode == 0
    stale = {"DURABLE_STREAMS_AUTH": "Bearer stale", "STREAM_AUTH": "Bearer stale"}
    assert cli("head", path, "--retry-for", "0", base=gate.url, env=stale).returncode == 1
    assert cli("head", path, "--auth", SECRET, base=gate.url, env=stale).returncode == 0
    # An explicit -H Authorization is kept over the environment.
    header = cli("head", path, "-H", f"Authorization: {SECRET}", base=gate.url, env=stale)
    assert header.returncode == 0
    assert cli("head", path, base=gate.url).returncode == 1  # none at all: refused


def test_auth_that_cannot_work_is_a_usage_error_without_its_value(
    gate: AuthGate, path: str
) -> None:
    forwarded = gate.forwarded
    empty = cli("head", path, base=gate.url, env={"STREAM_AUTH": "  "})
    assert empty.returncode == 2 and b"STREAM_AUTH is empty" in empty.stderr
    twice = cli("head", path, "--auth", SECRET, "-H", f"Authorization: {SECRET}", base=gate.url)
    assert twice.returncode == 2 and b"not both" in twice.stderr
    broken = cli("head", path, "--auth", "Bearer s3cret\nX-Injected: 1", base=gate.url)
    assert broken.returncode == 2 and b"Authorization" in broken.stderr
    no_name = cli("head", path, "-H", SECRET, base=gate.url)
    assert no_name.returncode == 5
    for done in (empty, twice, broken, no_name):
        assert b"s3cret" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert gate.forwarded == forwarded  # none of them sent anything


# -- fork ---------------------------------------------------------------------------------


def test_fork_takes_a_sub_offset_a_ttl_and_an_expiry(base: str, path: str) -> None:
    with DurableStream.create(f"{base}/{path}", content_type="application/json") as handle:
        after_one = handle.append(1).offset
        handle.append(2)
        handle.append(3)
    head = json.loads(cli("head", "--json", path, base=base).stdout)
    at = ["--offset", after_one, "--sub-offset", "1"]
    forked = cli("fork", path, f"{path}-a", *at, base=base)
    assert forked.returncode == 0, forked.stderr
    assert lines(cli("read", f"{path}-a", base=base)) == [1, 2]
    ttl = cli("fork", path, f"{path}-b", "--ttl", "3600", base=base)
    assert ttl.returncode == 0, ttl.stderr
    facts = json.loads(cli("head", "--json", f"{path}-b", base=base).stdout)
    assert facts["ttl_seconds"] == 3600 and facts["offset"] == head["offset"]
    expiry = "2099-01-01T00:00:00Z"
    at = cli("fork", path, f"{path}-c", "--expires-at", expiry, base=base)
    assert at.returncode == 0, at.stderr
    facts = json.loads(cli("head", "--json", f"{path}-c", base=base).stdout)
    assert facts["expires_at"].startswith("2099-01-01")
    bad = cli("fork", path, f"{path}-d", "--sub-offset", "-1", base=base)
    assert bad.returncode == 2 and b"--sub-offset" in bad.stderr


# -- JSON arrays as many messages ---------------------------------------------------------


def test_batch_json_appends_each_element_of_an_array(base: str, path: str) -> None:
    assert cli("create", "--json", path, base=base).returncode == 0
    done = cli("append", "--batch-json", path, '[{"a":1},{"b":2}]', "[[3,4]]", "5", base=base)
    assert done.returncode == 0, done.stderr
    stdin = b'[6,7]\n{"c":8}\n[]\n[[9]]\n'
    assert cli("append", "--batch-json", path, base=base, stdin=stdin).returncode == 0
    # Without it an array is one message, as before.
    assert cli("append", path, "[10,11]", base=base).returncode == 0
    assert lines(cli("read", path, base=base)) == [
        {"a": 1},
        {"b": 2},
        [3, 4],
        5,
        6,
        7,
        {"c": 8},
        [9],
        [10, 11],
    ]


def test_batch_json_resumes_by_message_and_refuses_other_streams(
    base: str, path: str, tmp_path: object
) -> None:
    assert cli("create", "--json", path, base=base).returncode == 0
    state = str(tmp_path) + "/state.sqlite"
    bad = b"[1,2]\n[3,4]\nnot json\n"
    first = cli(
        "append", "--batch-json", "--producer-id", "p", "--state", state, path, base=base, stdin=bad
    )
    assert first.returncode == 5 and b"line 3 is not JSON" in first.stderr
    fixed = b"[1,2]\n[3,4]\n[5]\n"
    again = cli(
        "append",
        "--batch-json",
        "--producer-id",
        "p",
        "--state",
        state,
        path,
        base=base,
        stdin=fixed,
    )
    assert again.returncode == 0, again.stderr
    assert b"skipped the first 4 message(s)" in again.stderr
    assert lines(cli("read", path, base=base)) == [1, 2, 3, 4, 5]
    text = f"{path}-text"
    assert cli("create", text, base=base).returncode == 0
    refused = cli("append", "--batch-json", text, "[1]", base=base)
    assert refused.returncode == 2 and b"JSON streams" in refused.stderr
    assert cli("read", text, base=base).stdout == b""


# -- state materialize --------------------------------------------------------------------


def test_state_materialize_prints_the_view_as_json(base: str, path: str) -> None:
    with DurableStream.create(f"{base}/{path}", content_type="application/json") as handle:
        writer = StateWriter(handle)
        writer.insert("user", "1", {"name": "Ada"})
        writer.insert("user", "2", {"name": "Bob"})
        writer.update("user", "1", {"name": "Ada L."})
        writer.delete("user", "2")
        last = writer.upsert("team", "t", ["1"])
    done = cli("state", "materialize", path, base=base)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"user": {"1": {"name": "Ada L."}}, "team": {"t": ["1"]}}
    assert json.loads(done.stdout) == materialize(f"{base}/{path}")
    placed = json.loads(cli("state", "materialize", "--with-offset", path, base=base).stdout)
    assert placed["offset"] == last.offset and placed["state"]["team"] == {"t": ["1"]}


def test_state_materialize_names_the_offset_of_a_malformed_message(base: str, path: str) -> None:
    with DurableStream.create(f"{base}/{path}", content_type="application/json") as handle:
        StateWriter(handle).insert("user", "1", {"name": "Ada"})
        bad = handle.append({"type": "user", "key": "2"}).offset  # no headers: not a change
    done = cli("state", "materialize", path, base=base)
    assert done.returncode == 1 and bad.encode() in done.stderr
    assert len(done.stderr.splitlines()) == 1
    skipped = cli("state", "materialize", "--skip-malformed", path, base=base)
    assert json.loads(skipped.stdout) == {"user": {"1": {"name": "Ada"}}}
    missing = cli("state", "materialize", f"{path}-none", base=base)
    assert missing.returncode == 3


# -- subscriptions ------------------------------------------------------------------------


def test_subscription_management_commands(base: str) -> None:
    prefix = f"s{uuid.uuid4().hex[:12]}"
    wakes = f"{prefix}/wakes"
    assert cli("create", "--json", wakes, base=base).returncode == 0
    made = cli(
        "subscription",
        "create",
        prefix,
        "--pattern",
        f"{prefix}/orders/*",
        "--wake-stream",
        wakes,
        "--lease-ttl-ms",
        "5000",
        "--description",
        "from the CLI",
        base=base,
    )
    assert made.returncode == 0, made.stderr
    sub = json.loads(made.stdout)
    assert sub["type"] == "pull-wake" and sub["created"] is True
    assert sub["pattern"] == f"{prefix}/orders/*" and sub["lease_ttl_ms"] == 5000
    for name in ("a", "b"):
        assert cli("create", "--json", f"{prefix}/extra/{name}", base=base).returncode == 0
    added = cli(
        "subscription", "add-streams", prefix, f"{prefix}/extra/a", f"{prefix}/extra/b", base=base
    )
    assert added.returncode == 0, added.stderr
    got = json.loads(cli("subscription", "get", prefix, base=base).stdout)
    linked = {link["path"] for link in got["streams"]}
    assert {f"{prefix}/extra/a", f"{prefix}/extra/b"} <= linked
    removed = cli("subscription", "remove-stream", prefix, f"{prefix}/extra/a", base=base)
    assert removed.returncode == 0
    got = json.loads(cli("subscription", "get", prefix, base=base).stdout)
    assert f"{prefix}/extra/a" not in {link["path"] for link in got["streams"]}
    assert cli("subscription", "delete", prefix, base=base).returncode == 0
    gone = cli("subscription", "get", prefix, base=base)
    assert gone.returncode == 3 and prefix.encode() in gone.stderr
    no_root = cli("subscription", "get", prefix)
    assert no_root.returncode == 5 and b"--url" in no_root.stderr


def _pull_wake(base: str, prefix: str) -> None:
    assert cli("create", "--json", f"{prefix}/wakes", base=base).returncode == 0
    made = cli(
        "subscription",
        "create",
        prefix,
        "--pattern",
        f"{prefix}/orders/*",
        "--wake-stream",
        f"{prefix}/wakes",
        base=base,
    )
    assert made.returncode == 0, made.stderr


def test_claim_ack_and_release_across_processes(base: str, tmp_path: object) -> None:
    prefix = f"s{uuid.uuid4().hex[:12]}"
    _pull_wake(base, prefix)
    orders = f"{prefix}/orders/eu"
    with DurableStream.create(f"{base}/{orders}", content_type="application/json") as handle:
        handle.append({"order": 1})
        tail = handle.append({"order": 2}).offset
    claimed = cli("subscription", "claim", prefix, "--worker", "w1", base=base)
    assert claimed.returncode == 0, claimed.stderr
    claim = json.loads(claimed.stdout)
    assert claim["worker"] == "w1" and claim["token"]
    assert [s["path"] for s in claim["streams"] if s["has_pending"]] == [orders]
    # Another worker cannot take it while w1 holds it.
    taken = cli("subscription", "claim", prefix, "--worker", "w2", base=base)
    assert taken.returncode == 1 and b"w1" in taken.stderr
    # Released unfinished: claimed again, nothing acknowledged yet.
    assert cli("subscription", "release", base=base, stdin=claimed.stdout).returncode == 0
    again = cli("subscription", "claim", prefix, "--worker", "w2", base=base)
    assert again.returncode == 0, again.stderr
    file = f"{tmp_path}/claim.json"
    with open(file, "wb") as out:
        out.write(again.stdout)
    heartbeat = cli("subscription", "ack", "--claim", file, base=base)
    assert heartbeat.returncode == 0 and json.loads(heartbeat.stdout) == {"next_wake": False}
    acked = cli("subscription", "ack", "--claim", file, f"{orders}={tail}", "--done", base=base)
    assert acked.returncode == 0, acked.stderr
    got = json.loads(cli("subscription", "get", prefix, base=base).stdout)
    assert {link["path"]: link["acked_offset"] for link in got["streams"]}[orders] == tail
    idle = cli("subscription", "claim", prefix, base=base)
    assert idle.returncode == 1 and b"pending" in idle.stderr.lower()
    # The old claim is fenced now; a bad claim is bad input.
    stale = cli("subscription", "ack", "--claim", file, f"{orders}={tail}", base=base)
    assert stale.returncode == 1
    assert cli("subscription", "release", base=base, stdin=b"{}").returncode == 5
    assert cli("subscription", "ack", "--claim", file, "no-equals", base=base).returncode == 5


def test_consume_prints_each_message_and_acks_it(base: str) -> None:
    prefix = f"s{uuid.uuid4().hex[:12]}"
    _pull_wake(base, prefix)
    tails = {}
    for region in ("eu", "us"):
        path = f"{prefix}/orders/{region}"
        with DurableStream.create(f"{base}/{path}", content_type="application/json") as handle:
            handle.append({"region": region, "n": 1})
            tails[path] = handle.append({"region": region, "n": 2}).offset
    text = f"{prefix}/orders/text"
    with DurableStream.create(f"{base}/{text}", content_type="text/plain") as handle:
        tails[text] = handle.append(b"caf\xc3\xa9 \xff").offset
    done = cli("subscription", "consume", prefix, "--until-idle", "--worker", "w", base=base)
    assert done.returncode == 0, done.stderr
    printed = lines(done)
    by_stream: dict[str, list[object]] = {}
    for line in printed:
        assert isinstance(line, dict)
        by_stream.setdefault(line["stream"], []).append(line.get("data", line.get("data_base64")))
    assert by_stream[f"{prefix}/orders/eu"] == [{"region": "eu", "n": 1}, {"region": "eu", "n": 2}]
    assert by_stream[f"{prefix}/orders/us"] == [{"region": "us", "n": 1}, {"region": "us", "n": 2}]
    # Bytes that are not UTF-8 come as base64.
    assert by_stream[text] == [base64.b64encode(b"caf\xc3\xa9 \xff").decode()]
    got = json.loads(cli("subscription", "get", prefix, base=base).stdout)
    assert {link["path"]: link["acked_offset"] for link in got["streams"]} == tails
    # All acknowledged: a second run prints nothing.
    second = cli("subscription", "consume", prefix, "--until-idle", base=base)
    assert second.returncode == 0 and second.stdout == b""


def test_consume_follows_until_ctrl_c(base: str) -> None:
    prefix = f"s{uuid.uuid4().hex[:12]}"
    _pull_wake(base, prefix)
    path = f"{prefix}/orders/live"
    url = f"{base}/{path}"
    with DurableStream.create(url, content_type="application/json") as handle:
        handle.append({"n": 1})
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "DURABLE_STREAMS_URL": base}
        command = [sys.executable, "-m", "durable_streams", "subscription", "consume", prefix]
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        ) as consumer:
            try:
                assert consumer.stdout is not None and consumer.stderr is not None
                assert json.loads(consumer.stdout.readline())["data"] == {"n": 1}
                last = handle.append({"n": 2}).offset
                second = json.loads(consumer.stdout.readline())  # woken, as it arrives
                assert second == {"stream": path, "offset": last, "data": {"n": 2}}
                consumer.send_signal(signal.SIGINT)
                assert consumer.wait(timeout=30) == 130
                assert b"Traceback" not in consumer.stderr.read()
            finally:
                if consumer.poll() is None:
                    consumer.kill()


def test_help_lists_the_command_groups() -> None:
    usage = cli("--help")
    assert usage.returncode == 0
    assert b"subscription" in usage.stdout and b"state" in usage.stdout
    assert b"--auth" in usage.stdout
    assert cli("state").returncode == 2 and cli("subscription").returncode == 2
