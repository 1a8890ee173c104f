"""Runs the official conformance cases (YAML) through the adapter, strictly.

The upstream runner is lenient: it skips the status and data checks when the adapter answers
with an error, and ignores the keys ``error``, ``success``, ``allSucceed``. Here every key of
every ``expect`` is enforced, an adapter error passes only where the case expects one, setup
steps are held to the same rules, and a key this runner does not know fails the case.

Runner-side steps (server-append, server-close, wait, set, assert, await, inject-error,
clear-errors) talk to the server directly with httpx, never through durable_streams.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "COMMAND_TIMEOUT",
    "KNOWN_DEFECTS",
    "VARIANTS",
    "AdapterHolder",
    "AdapterProcess",
    "Case",
    "CaseFailure",
    "Execution",
    "Variant",
    "check",
    "load_cases",
    "run_case",
]

REPO = Path(__file__).resolve().parents[2]
CASES_DIR = Path(
    os.environ.get("DURABLE_STREAMS_CONFORMANCE_CASES")
    or REPO.parent / "shared" / "conformance" / "test-cases"
)

# The upstream runner's timeouts: 30 s per command, 5 s for shutdown.
COMMAND_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 5.0

# Cases that fail for every client, the TypeScript reference included (ADAPTER_PROTOCOL.md).
KNOWN_DEFECTS = {
    "consumer-errors/read-future-offset": (
        "case defect: it accepts 'empty or 400' in a comment but asserts chunkCount 0, and the "
        "reference server answers 400 for an offset past the tail"
    ),
    "consumer-offset/offset-zero-start": (
        "case defect: the reference server 0.3.7 rejects offset=0 with 400"
    ),
    "consumer-sse-base64/sse-base64-empty-payload": (
        "case defect: its setup appends an empty body, which the server rejects with 400"
    ),
}

FEATURE_NAMES = {
    "batching": "batching",
    "sse": "sse",
    "long-poll": "longPoll",
    "longPoll": "longPoll",
    "auto": "auto",
    "streaming": "streaming",
    "dynamicHeaders": "dynamicHeaders",
    "dynamic-headers": "dynamicHeaders",
    "retryOptions": "retryOptions",
    "retry-options": "retryOptions",
    "batchItems": "batchItems",
    "batch-items": "batchItems",
    "strictZeroValidation": "strictZeroValidation",
    "strict-zero-validation": "strictZeroValidation",
}


class CaseFailure(AssertionError):
    """The case did not hold; the message says which step and why."""


class AdapterTimeout(Exception):
    """The adapter did not answer in time; it is wedged and must be restarted."""


# --- the cases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One test of one suite file."""

    group: str  # the folder: consumer, producer, lifecycle, validation
    suite: str  # the suite's id
    suite_requires: tuple[str, ...]
    test: Mapping[str, Any] = field(hash=False, compare=False)

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.test['id']}"

    @property
    def requires(self) -> tuple[str, ...]:
        return self.suite_requires + tuple(self.test.get("requires") or ())


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    if not directory.is_dir():
        raise FileNotFoundError(
            f"the conformance cases are not at {directory} "
            "(set DURABLE_STREAMS_CONFORMANCE_CASES to their folder)"
        )
    cases: list[Case] = []
    for path in sorted(directory.rglob("*.yaml")):
        suite = yaml.safe_load(path.read_text(encoding="utf-8"))
        group = path.relative_to(directory).parts[0]
        for test in suite["tests"]:
            cases.append(Case(group, suite["id"], tuple(suite.get("requires") or ()), test))
    return cases


# --- the adapter process -------------------------------------------------------------------------


class AdapterProcess:
    """The adapter as the upstream runner sees it: a child process, one JSON line per command
    on stdin, one result line on stdout, stderr kept for failure reports."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            args,
            cwd=REPO,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=200)
        self.pending: str | None = None  # the background command awaiting its answer
        self.wedged = False
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line.decode("utf-8", "replace"))

    def stderr_tail(self, lines: int = 30) -> str:
        return "".join(list(self._stderr)[-lines:])

    def alive(self) -> bool:
        return self.proc.poll() is None and not self.wedged

    def send(self, command: Mapping[str, Any]) -> None:
        if self.pending is not None:
            raise CaseFailure(
                f"runner error: {command.get('type')} sent while the background "
                f"{self.pending} still waits for its answer"
            )
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(command).encode("utf-8") + b"\n")
            self.proc.stdin.flush()
        except OSError as exc:
            self.wedged = True
            raise CaseFailure(f"the adapter's stdin is closed ({exc}); it has exited") from exc

    def receive(self, what: str, timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.wedged = True
            raise AdapterTimeout(f"the adapter did not answer {what} within {timeout} s") from None
        if line is None:
            self.wedged = True
            raise CaseFailure(
                f"the adapter exited (code {self.proc.poll()}) instead of answering {what}"
            )
        try:
            result = json.loads(line)
        except ValueError as exc:
            raise CaseFailure(f"the adapter answered {what} with a non-JSON line {line!r}") from exc
        if not isinstance(result, dict):
            raise CaseFailure(f"the adapter answered {what} with {result!r}, not an object")
        return result

    def request(
        self, command: Mapping[str, Any], timeout: float = COMMAND_TIMEOUT
    ) -> dict[str, Any]:
        self.send(command)
        return self.receive(str(command.get("type")), timeout)

    def start_background(self, command: Mapping[str, Any]) -> None:
        self.send(command)
        self.pending = str(command.get("type"))

    def finish_background(self, timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
        what = f"the background {self.pending}"
        self.pending = None
        return self.receive(what, timeout)

    def close(self) -> None:
        if self.proc.poll() is None and not self.wedged:
            with contextlib.suppress(AdapterTimeout, CaseFailure):
                if self.pending is not None:
                    self.finish_background()
                self.request({"type": "shutdown"}, timeout=SHUTDOWN_TIMEOUT)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=SHUTDOWN_TIMEOUT)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


# The cores to test (as in tests/conftest.py) and the adapter's API flavours.
IMPLEMENTATIONS = os.environ.get("DURABLE_STREAMS_TEST_IMPLS", "native,pure").split(",")
APIS = os.environ.get("DURABLE_STREAMS_CONFORMANCE_APIS", "sync,async").split(",")


@dataclass(frozen=True)
class Variant:
    implementation: str
    api: str

    @property
    def id(self) -> str:
        return f"{self.implementation}-{self.api}"

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "conformance.adapter"]
        return [*args, "--async"] if self.api == "async" else args

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DURABLE_STREAMS_PURE_PYTHON", None)
        if self.implementation == "pure":
            env["DURABLE_STREAMS_PURE_PYTHON"] = "1"
        return env


VARIANTS = [Variant(i, a) for i in IMPLEMENTATIONS for a in APIS]


class AdapterHolder:
    """The variant's adapter process; a new one replaces it if it exits or stops answering
    (the upstream runner would be wedged for the rest of the run instead)."""

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        self.process: AdapterProcess | None = None

    def get(self) -> AdapterProcess:
        if self.process is not None and not self.process.alive():
            self.process.close()
            self.process = None
        if self.process is None:
            self.process = AdapterProcess(self.variant.command(), self.variant.environment())
        return self.process

    def close(self) -> None:
        if self.process is not None:
            self.process.close()
            self.process = None


# --- running a case ------------------------------------------------------------------------------


ADAPTER_ACTIONS = {
    "create",
    "connect",
    "append",
    "append-batch",
    "idempotent-append",
    "idempotent-append-batch",
    "idempotent-close",
    "idempotent-detach",
    "read",
    "head",
    "delete",
    "close",
    "set-dynamic-header",
    "set-dynamic-param",
    "clear-dynamic",
    "validate",
    "await",
}

EXPECT_KEYS = {
    "status",
    "errorCode",
    "messageContains",
    "errorContains",
    "error",
    "success",
    "valid",
    "data",
    "dataContains",
    "dataContainsAll",
    "dataExact",
    "chunkCount",
    "minChunks",
    "upToDate",
    "streamClosed",
    "finalOffset",
    "contentType",
    "hasOffset",
    "headersSent",
    "paramsSent",
    "duplicate",
    "producerEpoch",
    "producerSeq",
    "producerExpectedSeq",
    "producerReceivedSeq",
    "storeOffsetAs",
    "storeAs",
    "storeDataAs",
    "allSucceed",
    "succeedIndices",
    "failIndices",
}


def js_string(value: Any) -> str:
    """``String(value)`` as the upstream runner's variable substitution does it."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (dict, list)):
        return "[object Object]" if isinstance(value, dict) else ",".join(map(js_string, value))
    return str(value)


def compact_json(value: Any) -> str:
    """``JSON.stringify(value)``."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Execution:
    """The state of one case: its variables and the adapter and server it runs against."""

    def __init__(self, adapter: AdapterProcess, server_url: str, http: httpx.Client) -> None:
        self.adapter = adapter
        self.server_url = server_url
        self.http = http
        self.variables: dict[str, Any] = {}
        self.background: dict[str, str] = {}  # ref -> command type

    # -- variables --------------------------------------------------------------------------------

    def resolve(self, value: Any) -> str:
        if value is None:
            return ""
        text = str(value)

        def substitute(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr == "randomUUID":
                return str(uuid.uuid4())
            name, *fields = expr.split(".")
            if name not in self.variables:
                raise CaseFailure(f"undefined variable {name!r} (in {match.group(0)})")
            current: Any = self.variables[name]
            for part in fields:
                if current is None:
                    break
                current = current.get(part) if isinstance(current, dict) else None
            return js_string(current)

        return re.sub(r"\$\{([^}]+)\}", substitute, text)

    # -- steps ------------------------------------------------------------------------------------

    def step(self, op: Mapping[str, Any], where: str) -> None:
        action = op.get("action")
        handler = getattr(self, "do_" + str(action).replace("-", "_"), None)
        if handler is None:
            raise CaseFailure(f"{where}: unknown action {action!r}")
        expect = op.get("expect")
        if expect is not None:
            unknown = set(expect) - EXPECT_KEYS
            if unknown:
                raise CaseFailure(f"{where}: the runner does not know expect keys {unknown}")
        result = handler(op)
        if result is None:
            if expect:
                raise CaseFailure(f"{where}: {action} has no result to check {expect}")
            return
        problem = check(result, expect or {}, adapter_result=action in ADAPTER_ACTIONS)
        if problem:
            raise CaseFailure(f"{where} ({action}): {problem}\n  result: {brief(result)}")
        self.store(result, expect or {}, where)

    def store(self, result: Mapping[str, Any], expect: Mapping[str, Any], where: str) -> None:
        name = expect.get("storeOffsetAs")
        if name:
            offset = result.get("offset")
            if not offset:
                raise CaseFailure(f"{where}: storeOffsetAs {name!r}, but the result has no offset")
            self.variables[name] = offset
        name = expect.get("storeAs")
        if name:
            self.variables[name] = dict(result)
        name = expect.get("storeDataAs")
        if name:
            self.variables[name] = "".join(c["data"] for c in result.get("chunks", []))

    def adapter_call(self, command: dict[str, Any]) -> dict[str, Any]:
        return self.adapter.request({k: v for k, v in command.items() if v is not None})

    def do_create(self, op: Mapping[str, Any]) -> dict[str, Any]:
        path = self.resolve(op["path"]) if op.get("path") else f"/test-stream-{uuid.uuid4()}"
        if op.get("as"):
            self.variables[op["as"]] = path
        return self.adapter_call(
            {
                "type": "create",
                "path": path,
                "contentType": op.get("contentType"),
                "ttlSeconds": op.get("ttlSeconds"),
                "expiresAt": op.get("expiresAt"),
                "headers": op.get("headers"),
                "closed": op.get("closed"),
                "data": op.get("data"),
            }
        )

    def do_connect(self, op: Mapping[str, Any]) -> dict[str, Any]:
        return self.adapter_call(
            {"type": "connect", "path": self.resolve(op["path"]), "headers": op.get("headers")}
        )

    def append_data(self, op: Mapping[str, Any]) -> tuple[str, bool]:
        if "binaryData" in op:
            return str(op["binaryData"]), True
        if "json" in op:
            return compact_json(op["json"]), False
        return (self.resolve(op["data"]) if op.get("data") else ""), False

    def do_append(self, op: Mapping[str, Any]) -> dict[str, Any]:
        data, binary = self.append_data(op)
        return self.adapter_call(
            {
                "type": "append",
                "path": self.resolve(op["path"]),
                "data": data,
                "binary": binary,
                "seq": op.get("seq"),
                "headers": op.get("headers"),
            }
        )

    def do_append_batch(self, op: Mapping[str, Any]) -> dict[str, Any]:
        path = self.resolve(op["path"])
        items = []
        for item in op["items"]:
            binary = "binaryData" in item
            items.append(
                self.adapter_call(
                    {
                        "type": "append",
                        "path": path,
                        "data": item["binaryData"] if binary else item.get("data", ""),
                        "binary": binary,
                        "seq": item.get("seq"),
                        "headers": op.get("headers"),
                    }
                )
            )
        everything = all(r.get("success") is True for r in items)
        return {
            "type": "append-batch",
            "success": True,
            "runnerSide": True,
            "status": 200 if everything else 207,
            "items": items,
        }

    def do_idempotent_append(self, op: Mapping[str, Any]) -> dict[str, Any]:
        return self.adapter_call(
            {
                "type": "idempotent-append",
                "path": self.resolve(op["path"]),
                "data": self.resolve(op["data"]),
                "producerId": op["producerId"],
                "epoch": op.get("epoch", 0),
                "autoClaim": op.get("autoClaim", False),
                "headers": op.get("headers"),
            }
        )

    def do_idempotent_append_batch(self, op: Mapping[str, Any]) -> dict[str, Any]:
        return self.adapter_call(
            {
                "type": "idempotent-append-batch",
                "path": self.resolve(op["path"]),
                "items": [self.resolve(item["data"]) for item in op["items"]],
                "producerId": op["producerId"],
                "epoch": op.get("epoch", 0),
                "autoClaim": op.get("autoClaim", False),
                "maxInFlight": op.get("maxInFlight"),
                "headers": op.get("headers"),
            }
        )

    def do_idempotent_close(self, op: Mapping[str, Any]) -> dict[str, Any]:
        return self.adapter_call(
            {
                "type": "idempotent-close",
                "path": self.resolve(op["path"]),
                "producerId": op["producerId"],
                "epoch": op.get("epoch", 0),
                "data": self.resolve(op["data"]) if op.get("data") else None,
                "autoClaim": op.get("autoClaim", False),
                "headers": op.get("headers"),
            }
        )

    def do_idempotent_detach(self, op: Mapping[str, Any]) -> dict[str, Any]:
        return self.adapter_call(
            {
                "type": "idempotent-detach",
                "path": self.resolve(op["path"]),
                "producerId": op["producerId"],
                "epoch": op.get("epoch", 0),
                "headers": op.get("headers"),
            }
        )

    def do_read(self, op: Mapping[str, Any]) -> dict[str, Any] | None:
        command = {
            "type": "read",
            "path": self.resolve(op["path"]),
            "offset": self.resolve(op["offset"]) if op.get("offset") else None,
            "live": op.get("live"),
            "timeoutMs": op.get("timeoutMs"),
            "maxChunks": op.get("maxChunks"),
            "waitForUpToDate": op.get("waitForUpToDate"),
            "headers": op.get("headers"),
        }
        if op.get("background") and op.get("as"):
            self.adapter.start_background({k: v for k, v in command.items() if v is not None})
            self.background[op["as"]] = "read"
            return None
        return self.adapter_call(command)

    def do_await(self, op: Mapping[str, Any]) -> dict[str, Any]:
        ref = op["ref"]
        if ref not in self.background:
            raise CaseFailure(f"no background operation {ref!r}")
        del self.background[ref]
        return self.adapter.finish_background()

    def do_head(self, op: Mapping[str, Any]) -> dict[str, Any]:
        return self.adapter_call(
            {"type": "head", "path": self.resolve(op["path"]), "headers": op.get("headers")}
        )

    def do_delete(self, op: Mapping[str, Any]) -> dict[str, Any]:
        return self.adapter_call(
            {"type": "delete", "path": self.resolve(op["path"]), "headers": op.get("headers")}
        )

    def do_close(self, op: Mapping[str, Any]) -> dict[str, Any]:
        return self.adapter_call(
            {
                "type": "close",
                "path": self.resolve(op["path"]),
                "data": op.get("data"),
                "contentType": op.get("contentType"),
            }
        )

    def do_set_dynamic_header(self, op: Mapping[str, Any]) -> dict[str, Any]:
        return self.adapter_call(
            {
                "type": "set-dynamic-header",
                "name": op["name"],
                "valueType": op["valueType"],
                "initialValue": op.get("initialValue"),
            }
        )

    def do_set_dynamic_param(self, op: Mapping[str, Any]) -> dict[str, Any]:
        return self.adapter_call(
            {"type": "set-dynamic-param", "name": op["name"], "valueType": op["valueType"]}
        )

    def do_clear_dynamic(self, op: Mapping[str, Any]) -> dict[str, Any]:
        return self.adapter_call({"type": "clear-dynamic"})

    def do_validate(self, op: Mapping[str, Any]) -> dict[str, Any]:
        return self.adapter_call({"type": "validate", "target": op["target"]})

    # -- runner-side steps ------------------------------------------------------------------------

    def do_wait(self, op: Mapping[str, Any]) -> None:
        time.sleep(float(op["ms"]) / 1000.0)  # the case's own timing step

    def do_set(self, op: Mapping[str, Any]) -> None:
        self.variables[op["name"]] = self.resolve(op["value"])

    def do_assert(self, op: Mapping[str, Any]) -> None:
        message = op.get("message")
        if "equals" in op:
            left, right = self.resolve(op["equals"]["left"]), self.resolve(op["equals"]["right"])
            if left != right:
                raise CaseFailure(message or f"assertion failed: {left!r} != {right!r}")
        if "notEquals" in op:
            left = self.resolve(op["notEquals"]["left"])
            right = self.resolve(op["notEquals"]["right"])
            if left == right:
                raise CaseFailure(message or f"assertion failed: {left!r} == {right!r}")
        if "contains" in op:
            value = self.resolve(op["contains"]["value"])
            part = self.resolve(op["contains"]["substring"])
            if part not in value:
                raise CaseFailure(message or f"assertion failed: {part!r} not in {value!r}")
        if "matches" in op:
            value = self.resolve(op["matches"]["value"])
            if not re.search(op["matches"]["pattern"], value):
                raise CaseFailure(message or f"assertion failed: {value!r} does not match")

    def do_server_append(self, op: Mapping[str, Any]) -> dict[str, Any]:
        url = self.server_url + self.resolve(op["path"])
        content_type = self.http.head(url).headers.get("content-type", "application/octet-stream")
        headers = {"content-type": content_type, **(op.get("headers") or {})}
        for key, header in (
            ("producerId", "Producer-Id"),
            ("producerEpoch", "Producer-Epoch"),
            ("producerSeq", "Producer-Seq"),
        ):
            if op.get(key) is not None:
                headers[header] = str(op[key])
        response = self.http.post(url, content=self.resolve(op["data"]), headers=headers)

        def number(name: str) -> int | None:
            value = response.headers.get(name)
            return int(value) if value else None

        return {
            "type": "append",
            "success": True,
            "runnerSide": True,
            "status": response.status_code,
            "offset": response.headers.get("stream-next-offset"),
            "duplicate": response.status_code == 204,
            "producerEpoch": number("producer-epoch"),
            "producerSeq": number("producer-seq"),
            "producerExpectedSeq": number("producer-expected-seq"),
            "producerReceivedSeq": number("producer-received-seq"),
        }

    def do_server_close(self, op: Mapping[str, Any]) -> dict[str, Any]:
        url = self.server_url + self.resolve(op["path"])
        headers = {"Stream-Closed": "true", **(op.get("headers") or {})}
        if op.get("data") and op.get("contentType"):
            headers["content-type"] = op["contentType"]
        response = self.http.post(url, content=op.get("data") or b"", headers=headers)
        if not response.is_success:
            raise CaseFailure(f"server-close answered {response.status_code}: {response.text}")
        return {
            "type": "close",
            "success": True,
            "runnerSide": True,
            "status": response.status_code,
            "finalOffset": response.headers.get("stream-next-offset", ""),
        }

    def do_inject_error(self, op: Mapping[str, Any]) -> None:
        body = {k: v for k, v in op.items() if k != "action" and v is not None}
        body["path"] = self.resolve(op["path"])
        body.setdefault("count", 1)
        response = self.http.post(f"{self.server_url}/_test/inject-error", json=body)
        if not response.is_success:
            raise CaseFailure(f"inject-error answered {response.status_code}: {response.text}")

    def do_clear_errors(self, op: Mapping[str, Any]) -> None:
        response = self.http.delete(f"{self.server_url}/_test/inject-error")
        if not response.is_success:
            raise CaseFailure(f"clear-errors answered {response.status_code}: {response.text}")


def brief(result: Mapping[str, Any], limit: int = 600) -> str:
    text = json.dumps(result, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


def expects_error(expect: Mapping[str, Any]) -> bool:
    """Whether the step's expectations say the adapter must answer with an error."""
    if expect.get("error") is True or expect.get("success") is False:
        return True
    if expect.get("valid") is False:
        return True
    if any(key in expect for key in ("errorCode", "messageContains", "errorContains")):
        return True
    status = expect.get("status")
    return isinstance(status, int) and status >= 400


def check(result: Mapping[str, Any], expect: Mapping[str, Any], *, adapter_result: bool) -> str:
    """What is wrong with ``result`` under ``expect`` ("" when nothing is)."""
    ok = result.get("success") is True
    if adapter_result and not result.get("runnerSide"):
        want_error = expects_error(expect)
        if want_error and ok:
            return "the case expects an error, but the adapter succeeded"
        if not want_error and not ok:
            return "the adapter answered with an error the case does not expect"
    if "success" in expect and ok != expect["success"]:
        return f"expected success={expect['success']}"
    if "valid" in expect and ok != expect["valid"]:
        return f"expected valid={expect['valid']}"
    if "status" in expect:
        if "status" not in result:
            return f"expected status {expect['status']}, but the result has none"
        if result["status"] != expect["status"]:
            return f"expected status {expect['status']}, got {result['status']}"
    if "errorCode" in expect and result.get("errorCode") != expect["errorCode"]:
        return f"expected error code {expect['errorCode']}, got {result.get('errorCode')}"
    message = str(result.get("message", ""))
    if "messageContains" in expect:
        missing = [s for s in expect["messageContains"] if s.lower() not in message.lower()]
        if missing:
            return f"the error message lacks {missing}: {message!r}"
    if "errorContains" in expect and expect["errorContains"] not in message:
        return f"the error message lacks {expect['errorContains']!r}: {message!r}"
    problem = check_read(result, expect) or check_fields(result, expect)
    if problem:
        return problem
    return check_batch(result, expect)


def check_read(result: Mapping[str, Any], expect: Mapping[str, Any]) -> str:
    keys = {"data", "dataContains", "dataContainsAll", "dataExact", "chunkCount", "minChunks"}
    wanted = keys & set(expect)
    if not wanted:
        return ""
    if result.get("type") != "read" or result.get("success") is not True:
        return f"expected a successful read result to check {sorted(wanted)}"
    chunks = result.get("chunks")
    if not isinstance(chunks, list):
        return "the read result has no chunks list"
    data = "".join(str(c.get("data", "")) for c in chunks)
    if "data" in expect and data != expect["data"]:
        return f"expected data {expect['data']!r}, got {data!r}"
    if "dataContains" in expect and expect["dataContains"] not in data:
        return f"expected data containing {expect['dataContains']!r}, got {data!r}"
    if "dataContainsAll" in expect:
        missing = [s for s in expect["dataContainsAll"] if s not in data]
        if missing:
            return f"the data lacks {missing}: {data!r}"
    if "dataExact" in expect:
        got = [c.get("data") for c in chunks]
        if got != list(expect["dataExact"]):
            return f"expected chunks {expect['dataExact']!r}, got {got!r}"
    if "chunkCount" in expect and len(chunks) != expect["chunkCount"]:
        return f"expected {expect['chunkCount']} chunks, got {len(chunks)}"
    if "minChunks" in expect and len(chunks) < expect["minChunks"]:
        return f"expected at least {expect['minChunks']} chunks, got {len(chunks)}"
    return ""


def check_fields(result: Mapping[str, Any], expect: Mapping[str, Any]) -> str:
    for key in (
        "upToDate",
        "streamClosed",
        "finalOffset",
        "contentType",
        "duplicate",
        "producerEpoch",
        "producerSeq",
        "producerExpectedSeq",
        "producerReceivedSeq",
    ):
        if key in expect and result.get(key) != expect[key]:
            return f"expected {key}={expect[key]!r}, got {result.get(key)!r}"
    if "hasOffset" in expect and bool(result.get("offset")) != expect["hasOffset"]:
        return f"expected hasOffset={expect['hasOffset']}, got offset {result.get('offset')!r}"
    for key in ("headersSent", "paramsSent"):
        if key in expect:
            sent = result.get(key)
            if not isinstance(sent, dict):
                return f"expected {key}, but the result has none"
            for name, value in expect[key].items():
                if sent.get(name) != value:
                    return f"expected {key}[{name}]={value!r}, got {sent.get(name)!r}"
    return ""


def check_batch(result: Mapping[str, Any], expect: Mapping[str, Any]) -> str:
    items = result.get("items")
    if items is not None and not {"allSucceed", "succeedIndices", "failIndices"} & set(expect):
        failed = [brief(item) for item in items if item.get("success") is not True]
        if failed:
            return f"items of the batch failed, which the case does not expect: {failed}"
    if "allSucceed" in expect:
        if items is not None:
            ok = all(item.get("success") is True for item in items)
        else:
            ok = result.get("success") is True
        if ok != expect["allSucceed"]:
            return f"expected allSucceed={expect['allSucceed']}"
    for key, want in (("succeedIndices", True), ("failIndices", False)):
        if key in expect:
            if items is None:
                return f"{key} needs the items of an append-batch"
            for index in expect[key]:
                if index >= len(items) or (items[index].get("success") is True) != want:
                    got = brief(items[index]) if index < len(items) else "no such item"
                    return f"expected item {index} to {'succeed' if want else 'fail'}: {got}"
    return ""


def run_case(
    case: Case,
    adapter: AdapterProcess,
    server_url: str,
    http: httpx.Client,
    features: Mapping[str, Any],
) -> None:
    """Run ``case``: setup and operations strictly, cleanup always (best effort)."""
    missing = [f for f in case.requires if not features.get(FEATURE_NAMES.get(f, f))]
    if missing:
        raise CaseFailure(f"the case requires features the adapter does not declare: {missing}")
    execution = Execution(adapter, server_url, http)
    try:
        for section in ("setup", "operations"):
            for index, op in enumerate(case.test.get(section) or ()):
                execution.step(op, f"{section}[{index}]")
    finally:
        if adapter.pending is not None and adapter.alive():
            with contextlib.suppress(AdapterTimeout, CaseFailure):
                adapter.finish_background()
        for index, op in enumerate(case.test.get("cleanup") or ()):
            try:
                execution.step(op, f"cleanup[{index}]")
            except (CaseFailure, AdapterTimeout, httpx.HTTPError) as exc:
                print(f"cleanup[{index}] of {case.id} failed (ignored): {exc}", file=sys.stderr)
