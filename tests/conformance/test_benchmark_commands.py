"""The adapter's ``benchmark`` command: every operation of the upstream benchmark runner, at
small sizes, through each adapter variant, against the conformance server."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from conformance_runner import AdapterHolder


def bench(adapter: AdapterHolder, server: str, operation: dict[str, Any]) -> dict[str, Any]:
    process = adapter.get()
    init = process.request({"type": "init", "serverUrl": server})
    assert init.get("success") is True, init
    iteration = uuid.uuid4().hex
    result = process.request(
        {"type": "benchmark", "iterationId": iteration, "operation": operation}, timeout=60.0
    )
    assert result.get("type") == "benchmark", result
    assert result.get("success") is True, result
    assert result.get("iterationId") == iteration
    assert int(result["durationNs"]) > 0
    metrics: dict[str, Any] = result.get("metrics") or {}
    return metrics


def new_path() -> str:
    return f"/bench-{uuid.uuid4().hex}/stream"


def create(http: httpx.Client, server: str, path: str, content_type: str) -> None:
    http.put(server + path, headers={"content-type": content_type}).raise_for_status()


def test_append(adapter: AdapterHolder, conformance_server: str, runner_http: httpx.Client) -> None:
    path = new_path()
    create(runner_http, conformance_server, path, "application/octet-stream")
    metrics = bench(adapter, conformance_server, {"op": "append", "path": path, "size": 100})
    assert metrics["bytesTransferred"] == 100
    body = runner_http.get(conformance_server + path, params={"offset": "-1"}).content
    assert len(body) == 100


def test_read(adapter: AdapterHolder, conformance_server: str, runner_http: httpx.Client) -> None:
    path = new_path()
    create(runner_http, conformance_server, path, "application/octet-stream")
    for _ in range(10):
        runner_http.post(
            conformance_server + path,
            content=b"r" * 1024,
            headers={"content-type": "application/octet-stream"},
        ).raise_for_status()
    metrics = bench(adapter, conformance_server, {"op": "read", "path": path})
    assert metrics["bytesTransferred"] == 10 * 1024


@pytest.mark.parametrize(
    ("live", "content_type"), [("long-poll", None), ("sse", "application/json")]
)
def test_roundtrip(
    adapter: AdapterHolder, conformance_server: str, live: str, content_type: str | None
) -> None:
    operation = {"op": "roundtrip", "path": new_path(), "size": 100, "live": live}
    if content_type:
        operation["contentType"] = content_type
    metrics = bench(adapter, conformance_server, operation)
    assert metrics["bytesTransferred"] > 100


def test_create(adapter: AdapterHolder, conformance_server: str, runner_http: httpx.Client) -> None:
    path = new_path()
    bench(adapter, conformance_server, {"op": "create", "path": path, "contentType": "text/plain"})
    head = runner_http.head(conformance_server + path)
    assert head.status_code == 200
    assert head.headers["content-type"].startswith("text/plain")


def test_throughput_append(
    adapter: AdapterHolder, conformance_server: str, runner_http: httpx.Client
) -> None:
    path = new_path()
    operation = {"op": "throughput_append", "path": path, "count": 500, "size": 100}
    metrics = bench(adapter, conformance_server, {**operation, "concurrency": 20})
    assert metrics["messagesProcessed"] == 500
    assert metrics["bytesTransferred"] == 500 * 100
    body = runner_http.get(conformance_server + path, params={"offset": "-1"}).content
    assert len(body) == 500 * 100


def test_throughput_read(
    adapter: AdapterHolder, conformance_server: str, runner_http: httpx.Client
) -> None:
    path = new_path()
    create(runner_http, conformance_server, path, "application/json")
    messages = [{"n": i, "text": "x" * 30} for i in range(1000)]
    for start in range(0, 1000, 100):
        runner_http.post(
            conformance_server + path,
            content=json.dumps(messages[start : start + 100]),
            headers={"content-type": "application/json"},
        ).raise_for_status()
    operation = {"op": "throughput_read", "path": path, "expectedCount": 1000}
    metrics = bench(adapter, conformance_server, operation)
    assert metrics["messagesProcessed"] == 1000
    expected = sum(len(json.dumps(m, separators=(",", ":"))) for m in messages)
    assert metrics["bytesTransferred"] == expected


def test_unknown_operation(adapter: AdapterHolder, conformance_server: str) -> None:
    process = adapter.get()
    process.request({"type": "init", "serverUrl": conformance_server})
    result = process.request(
        {"type": "benchmark", "iterationId": "x", "operation": {"op": "teleport"}}
    )
    assert result["success"] is False
    assert result["errorCode"] == "NOT_SUPPORTED"
