"""The conformance runner itself: it must fail what is wrong, not only pass what is right.

No server here: the expectation checks on hand-made results, and a stand-in adapter that
answers "success" to everything, which real cases must reject."""

from __future__ import annotations

import os
import sys
from typing import Any

import httpx
import pytest
from conformance_runner import AdapterProcess, CaseFailure, Execution, check, load_cases, run_case

CASES = {case.id: case for case in load_cases()}

READ = {
    "type": "read",
    "success": True,
    "status": 200,
    "chunks": [{"data": "ab"}, {"data": "c"}],
    "offset": "1",
    "upToDate": True,
    "streamClosed": False,
}
ERROR = {
    "type": "error",
    "success": False,
    "commandType": "read",
    "status": 404,
    "errorCode": "NOT_FOUND",
    "message": "Stream not found: /Some-Path",
}


@pytest.mark.parametrize(
    ("result", "expect", "problem"),
    [
        (READ, {"data": "abc", "upToDate": True, "chunkCount": 2}, ""),
        (READ, {"data": "ab"}, "expected data"),
        (READ, {"dataContainsAll": ["ab", "x"]}, "lacks ['x']"),
        (READ, {"dataExact": ["ab", "c"], "minChunks": 2}, ""),
        (READ, {"minChunks": 3}, "at least 3"),
        (READ, {"streamClosed": True}, "streamClosed"),
        (READ, {"status": 204}, "expected status 204, got 200"),
        (READ, {"errorCode": "NOT_FOUND"}, "expects an error"),
        (READ, {"status": 404}, "expects an error"),
        (ERROR, {"status": 404, "errorCode": "NOT_FOUND", "messageContains": ["some-path"]}, ""),
        (ERROR, {"status": 404}, ""),
        (ERROR, {}, "error the case does not expect"),
        (ERROR, {"data": ""}, "error the case does not expect"),
        (ERROR, {"errorCode": "NOT_FOUND", "errorContains": "some-path"}, "lacks 'some-path'"),
        (ERROR, {"errorCode": "INVALID_OFFSET"}, "expected error code INVALID_OFFSET"),
        (ERROR, {"error": True}, ""),
        (ERROR, {"valid": True}, "error the case does not expect"),
        ({"type": "validate", "success": True}, {"valid": False}, "expects an error"),
        ({"type": "close", "success": True}, {"status": 200}, "the result has none"),
        ({"type": "append", "success": True, "status": 200}, {"headersSent": {"a": "1"}}, "none"),
        (
            {"type": "append", "success": True, "status": 200, "headersSent": {"a": "2"}},
            {"headersSent": {"a": "1"}},
            "headersSent[a]",
        ),
    ],
)
def test_check(result: dict[str, Any], expect: dict[str, Any], problem: str) -> None:
    found = check(result, expect, adapter_result=True)
    if problem:
        assert problem in found
    else:
        assert found == ""


def test_runner_side_results_are_judged_by_status_only() -> None:
    conflict = {"type": "append", "success": True, "runnerSide": True, "status": 409}
    assert check(conflict, {"status": 409}, adapter_result=False) == ""
    assert "expected status 200" in check(conflict, {"status": 200}, adapter_result=False)


def test_batch_items() -> None:
    items = [{"success": True}, {"success": False}, {"success": True}]
    batch = {"type": "append-batch", "success": True, "runnerSide": True, "items": items}
    assert check(batch, {"succeedIndices": [0, 2], "failIndices": [1]}, adapter_result=True) == ""
    assert "allSucceed" in check(batch, {"allSucceed": True}, adapter_result=True)
    assert "expected item 1 to succeed" in check(
        batch, {"succeedIndices": [1]}, adapter_result=True
    )
    assert "items of the batch failed" in check(batch, {}, adapter_result=True)


def test_unknown_expect_key_fails() -> None:
    execution = Execution(None, "http://unused", None)  # type: ignore[arg-type]
    with pytest.raises(CaseFailure, match="does not know expect keys"):
        execution.step({"action": "wait", "ms": 0, "expect": {"bogus": 1}}, "operations[0]")


def test_undefined_variable_fails() -> None:
    execution = Execution(None, "http://unused", None)  # type: ignore[arg-type]
    with pytest.raises(CaseFailure, match="undefined variable"):
        execution.resolve("${nope}")
    execution.variables["head"] = {"offset": "5", "streamClosed": True}
    assert execution.resolve("a${head.offset}b${head.streamClosed}") == "a5btrue"


YES_MAN = """
import json, sys
for line in sys.stdin:
    cmd = json.loads(line)
    print(json.dumps({"type": cmd["type"], "success": True}), flush=True)
    if cmd["type"] == "shutdown":
        break
"""


@pytest.mark.parametrize(
    "case_id",
    [
        "producer-errors/append-to-nonexistent",
        "producer-create/create-basic",
        "consumer-catchup/read-single-chunk",
        "consumer-errors/read-nonexistent-stream",
        "input-validation/producer-negative-epoch",
        "lifecycle-dynamic-headers/dynamic-header-per-request",
        "idempotent-json-batching/json-batch-single-item",
    ],
)
def test_an_adapter_that_always_succeeds_fails_the_case(case_id: str) -> None:
    adapter = AdapterProcess([sys.executable, "-c", YES_MAN], env=os.environ)
    features = dict.fromkeys(
        ["batching", "sse", "longPoll", "auto", "dynamicHeaders", "retryOptions"], True
    )
    try:
        with pytest.raises(CaseFailure), httpx.Client() as http:
            run_case(CASES[case_id], adapter, "http://127.0.0.1:9", http, features)
    finally:
        adapter.close()
