"""pytest-benchmark suites of the core's hot paths, native (``_core``) against pure (``_pure``).

Not part of the test run (``testpaths = ["tests"]``). Run them with::

    .venv/bin/python -m pytest benches --benchmark-only

Both implementations get the same payloads (``_payloads.py``). Each benchmark stores its
per-message (or per-byte) figures in ``extra_info``; ``--benchmark-json FILE`` keeps them.
The orjson benchmarks are the raw limit: parsing the same bytes with nothing else to do.
"""

from __future__ import annotations

import base64
from types import ModuleType
from typing import Any

import _payloads as P
import orjson
import pytest

from durable_streams._core import _native as _core
from durable_streams._core import _pure

SSE_EVENTS = 20  # 20 data events of 1,000 messages: 20,000 messages, ~1 MB, 16 chunks
BINARY_EVENTS = 20  # 20 x 48 KiB raw, ~1.3 MB of base64 SSE
BATCH_MESSAGES = 20_000

IMPLS = {"native": _core, "pure": _pure}


@pytest.fixture(params=sorted(IMPLS), scope="module")
def core(request: pytest.FixtureRequest) -> ModuleType:
    return IMPLS[request.param]


@pytest.fixture(scope="module")
def json_sse() -> list[bytes]:
    return P.chunks(P.json_sse_body(SSE_EVENTS))


@pytest.fixture(scope="module")
def array_body() -> bytes:
    return P.array_body()


def _per_message(benchmark: Any, n: int) -> None:
    """Adds the per-message cost and rate, from the best round, to the saved results."""
    best = benchmark.stats.stats.min
    benchmark.extra_info["messages"] = n
    benchmark.extra_info["ns_per_message_min"] = round(best / n * 1e9, 1)
    benchmark.extra_info["messages_per_s_max"] = round(n / best)


def _decode_json_sse(core: ModuleType, chunks: list[bytes]) -> int:
    decoder = core.SseDecoder("json")
    n = 0
    controls = 0
    for chunk in chunks:
        for item in decoder.feed(chunk):
            if type(item) is list:
                n += len(item)
            else:
                controls += 1
    assert controls == 1
    return n


def test_sse_json_decode(benchmark: Any, core: ModuleType, json_sse: list[bytes]) -> None:
    """SSE JSON mode: 64 KiB chunks in, decoded message lists and one Control out."""
    benchmark.group = "sse-json-decode"
    n = benchmark(_decode_json_sse, core, json_sse)
    assert n == SSE_EVENTS * P.MSGS_PER_EVENT
    _per_message(benchmark, n)


def test_parse_json_array(benchmark: Any, core: ModuleType, array_body: bytes) -> None:
    """A catch-up read body (a 1,000-message array) to Python objects."""
    benchmark.group = "catch-up-parse"
    out = benchmark(core.parse_json_array, array_body)
    assert out == orjson.loads(array_body)
    _per_message(benchmark, len(out))


def test_orjson_loads(benchmark: Any, array_body: bytes) -> None:
    """The raw limit for ``parse_json_array``: orjson on the same bytes."""
    benchmark.group = "catch-up-parse"
    out = benchmark(orjson.loads, array_body)
    _per_message(benchmark, len(out))


def test_split_json_array(benchmark: Any, core: ModuleType, array_body: bytes) -> None:
    """The same body split into each message's raw bytes (json-raw mode)."""
    benchmark.group = "catch-up-split"
    out = benchmark(core.split_json_array, array_body)
    assert out == P.messages(P.MSGS_PER_EVENT)
    _per_message(benchmark, len(out))


def _assemble(core: ModuleType, groups: list[list[str]]) -> int:
    """Pushes every group, taking a body each time the batch fills; how many bodies."""
    builder = core.BatchBuilder(True, 65536)
    bodies = 0
    for group in groups:
        pending = group
        while True:
            taken = builder.push_many(pending)
            if taken == len(pending):
                break
            builder.take()
            bodies += 1
            pending = pending[taken:]
    if len(builder):
        builder.take()
        bodies += 1
    return bodies


def test_batch_push_many(benchmark: Any, core: ModuleType) -> None:
    """Append-body assembly from pre-serialized str messages, 64 KiB bodies."""
    benchmark.group = "batch-assembly"
    strs = P.message_strs(BATCH_MESSAGES)
    groups = [strs[i : i + 1000] for i in range(0, len(strs), 1000)]
    bodies = benchmark(_assemble, core, groups)
    assert bodies >= sum(len(s) + 1 for s in strs) // 65536  # every body was at most 64 KiB
    _per_message(benchmark, BATCH_MESSAGES)


def _decode_base64_sse(core: ModuleType, chunks: list[bytes]) -> int:
    decoder = core.SseDecoder("base64")
    n = 0
    for chunk in chunks:
        for item in decoder.feed(chunk):
            if type(item) is bytes:
                n += len(item)
    return n


def test_sse_base64_decode(benchmark: Any, core: ModuleType) -> None:
    """SSE base64 mode (a binary stream): 64 KiB chunks in, decoded bytes out."""
    benchmark.group = "sse-base64-decode"
    body, raw_bytes = P.base64_sse_body(BINARY_EVENTS)
    chunks = P.chunks(body)
    n = benchmark(_decode_base64_sse, core, chunks)
    assert n == raw_bytes
    best = benchmark.stats.stats.min
    benchmark.extra_info["raw_bytes"] = raw_bytes
    benchmark.extra_info["raw_MB_per_s_max"] = round(raw_bytes / best / 1e6, 1)


def test_stdlib_b64decode(benchmark: Any) -> None:
    """The raw limit for base64 mode: ``base64.b64decode`` of each event's payload alone."""
    benchmark.group = "sse-base64-decode"
    body, raw_bytes = P.base64_sse_body(BINARY_EVENTS)
    payloads = [
        line[6:] for line in body.split(b"\n") if line.startswith(b"data: ") and b"{" not in line
    ]

    def run() -> int:
        return sum(len(base64.b64decode(p)) for p in payloads)

    assert benchmark(run) == raw_bytes
    best = benchmark.stats.stats.min
    benchmark.extra_info["raw_MB_per_s_max"] = round(raw_bytes / best / 1e6, 1)
