"""The same requests to the reference server and to the embedded one get the same answers:
status, offsets, protocol headers and bodies. (ETags, cursors and Location are compared for
presence: their values name the server.) The differences the embedded server makes on
purpose are listed in DELIBERATE."""

from __future__ import annotations

import base64
import json
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from durable_streams.testing import local_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("node") is None, reason="the reference server needs Node.js"),
]

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "refserver"))

from launch import ReferenceServer  # noqa: E402

COMPARED = (
    "content-type",
    "stream-next-offset",
    "stream-up-to-date",
    "stream-closed",
    "stream-ttl",
    "stream-expires-at",
    "stream-sse-data-encoding",
    "producer-epoch",
    "producer-seq",
    "producer-expected-seq",
    "producer-received-seq",
    "x-content-type-options",
    "cross-origin-resource-policy",
)
PRESENT = ("etag", "stream-cursor", "location")

T, J = "text/plain", "application/json"
OFFSET_2 = "0000000000000000_0000000000000008"  # after a 3-byte first message


def _p(seq: int, epoch: int = 0, producer: str = "w") -> dict[str, str]:
    return {"producer-id": producer, "producer-epoch": str(epoch), "producer-seq": str(seq)}


# (method, path, headers, body, query); paths are made unique per run.
SCRIPT: list[tuple[str, str, dict[str, str], bytes, str]] = [
    ("OPTIONS", "/t", {}, b"", ""),
    ("PUT", "/t", {"content-type": T, "stream-ttl": "600"}, b"abc", ""),
    ("PUT", "/t", {"content-type": T, "stream-ttl": "600"}, b"", ""),
    ("PUT", "/t", {"content-type": T}, b"", ""),
    ("PUT", "/t", {"content-type": J, "stream-ttl": "600"}, b"", ""),
    ("HEAD", "/t", {}, b"", ""),
    ("POST", "/t", {"content-type": T, "stream-seq": "2"}, b"defg", ""),
    ("POST", "/t", {"content-type": T, "stream-seq": "10"}, b"x", ""),
    ("POST", "/t", {"content-type": T, "stream-seq": "3"}, b"hij", ""),
    ("POST", "/t", {"content-type": J}, b"[1]", ""),
    ("POST", "/t", {"content-type": T}, b"", ""),
    ("POST", "/t", {}, b"no type", ""),
    ("GET", "/t", {}, b"", ""),
    ("GET", "/t", {}, b"", "offset=-1"),
    ("GET", "/t", {}, b"", f"offset={OFFSET_2}"),
    ("GET", "/t", {}, b"", "offset=now"),
    ("GET", "/t", {}, b"", "offset=nope"),
    ("GET", "/t", {}, b"", "live=long-poll"),
    ("GET", "/t", {}, b"", f"offset={OFFSET_2}&live=long-poll"),
    ("POST", "/t", {"stream-closed": "true"}, b"", ""),
    ("POST", "/t", {"stream-closed": "true"}, b"", ""),
    ("POST", "/t", {"content-type": T}, b"late", ""),
    ("POST", "/t", {"content-type": T, "stream-closed": "true"}, b"late", ""),
    ("GET", "/t", {}, b"", "offset=0000000000000000_0000000000000023"),
    ("GET", "/t", {}, b"", "offset=0000000000000000_0000000000000023&live=long-poll"),
    ("GET", "/t", {}, b"", "offset=now&live=long-poll"),
    ("GET", "/t", {}, b"", "offset=now&live=sse"),
    ("HEAD", "/t", {}, b"", ""),
    # JSON mode
    ("PUT", "/j", {"content-type": J}, b"[]", ""),
    ("POST", "/j", {"content-type": J}, b'[{"a": 1}, [2, 3]]', ""),
    ("POST", "/j", {"content-type": J}, b'"text"', ""),
    ("POST", "/j", {"content-type": J}, b"[]", ""),
    ("POST", "/j", {"content-type": J}, b"{oops", ""),
    ("POST", "/j", {"content-type": "application/json; charset=utf-8"}, b"[[[4]]]", ""),
    ("GET", "/j", {}, b"", ""),
    ("GET", "/j", {}, b"", "offset=now"),
    ("GET", "/j", {}, b"", "offset=-1&live=sse"),
    # idempotent producers
    ("PUT", "/p", {"content-type": T}, b"", ""),
    ("POST", "/p", {"content-type": T, **_p(1)}, b"gap", ""),
    ("POST", "/p", {"content-type": T, **_p(0)}, b"a", ""),
    ("POST", "/p", {"content-type": T, **_p(1)}, b"b", ""),
    ("POST", "/p", {"content-type": T, **_p(1)}, b"b", ""),
    ("POST", "/p", {"content-type": T, **_p(3)}, b"d", ""),
    ("POST", "/p", {"content-type": T, **_p(1, epoch=1)}, b"e", ""),
    ("POST", "/p", {"content-type": T, **_p(0, epoch=1)}, b"e", ""),
    ("POST", "/p", {"content-type": T, **_p(2)}, b"zombie", ""),
    ("POST", "/p", {"content-type": T, "producer-id": "w"}, b"partial", ""),
    ("POST", "/p", {"content-type": T, **_p(0, producer="")}, b"empty", ""),
    ("POST", "/p", {"content-type": T, "stream-closed": "true", **_p(1, epoch=1)}, b"z", ""),
    ("POST", "/p", {"content-type": T, "stream-closed": "true", **_p(1, epoch=1)}, b"z", ""),
    ("POST", "/p", {"content-type": T, **_p(2, epoch=1)}, b"after", ""),
    ("POST", "/p", {"stream-closed": "true", **_p(9, producer="other")}, b"", ""),
    ("GET", "/p", {}, b"", ""),
    # forks
    ("PUT", "/src", {"content-type": J}, b"[1, 2, 3]", ""),
    ("POST", "/src", {"content-type": J}, b"[4, 5]", ""),
    ("PUT", "/f1", {"stream-forked-from": "/src"}, b"", ""),
    ("PUT", "/f1", {"stream-forked-from": "/src"}, b"", ""),
    ("PUT", "/f2", {"stream-forked-from": "/src", "stream-fork-offset": OFFSET_2}, b"", ""),
    (
        "PUT",
        "/f3",
        {
            "stream-forked-from": "/src",
            "stream-fork-offset": "0000000000000000_0000000000000000",
            "stream-fork-sub-offset": "2",
        },
        b"",
        "",
    ),
    ("PUT", "/f4", {"stream-forked-from": "/src", "content-type": T}, b"", ""),
    ("PUT", "/f5", {"stream-forked-from": "/missing"}, b"", ""),
    ("PUT", "/f6", {"stream-forked-from": "/src", "stream-fork-offset": "0_999999"}, b"", ""),
    ("PUT", "/f7", {"stream-forked-from": "/src", "stream-fork-sub-offset": "x"}, b"", ""),
    ("PUT", "/f8", {"content-type": T, "stream-fork-sub-offset": "1"}, b"", ""),
    ("PUT", "/f2", {"stream-forked-from": "/src"}, b"", ""),  # /f2 forked at OFFSET_2, not the tail
    ("PUT", "/f2", {"stream-forked-from": "/src", "stream-fork-offset": "-1"}, b"", ""),
    ("POST", "/f1", {"content-type": J}, b'"own"', ""),
    ("POST", "/src", {"content-type": J}, b'"later"', ""),
    ("GET", "/f1", {}, b"", ""),
    ("GET", "/f3", {}, b"", ""),
    ("DELETE", "/src", {}, b"", ""),
    ("HEAD", "/src", {}, b"", ""),
    ("GET", "/src", {}, b"", ""),
    ("POST", "/src", {"content-type": J}, b"1", ""),
    ("DELETE", "/src", {}, b"", ""),
    ("PUT", "/src", {"content-type": J}, b"", ""),
    ("PUT", "/f9", {"stream-forked-from": "/src"}, b"", ""),
    ("GET", "/f1", {}, b"", "offset=-1&live=sse"),
    ("DELETE", "/f1", {}, b"", ""),
    ("DELETE", "/f2", {}, b"", ""),
    ("DELETE", "/f3", {}, b"", ""),
    ("HEAD", "/src", {}, b"", ""),
    # creation headers
    ("PUT", "/c1", {"stream-ttl": "60", "stream-expires-at": "2099-01-01T00:00:00Z"}, b"", ""),
    ("PUT", "/c2", {"stream-ttl": "+60"}, b"", ""),
    ("PUT", "/c3", {"stream-expires-at": "never"}, b"", ""),
    ("PUT", "/c4", {"stream-expires-at": "2099-01-01T00:00:00Z"}, b"\x00\x01", ""),
    ("HEAD", "/c4", {}, b"", ""),
    ("GET", "/c4", {}, b"", "offset=-1&live=sse"),
    ("PUT", "/c5", {"stream-closed": "true", "content-type": T}, b"final", ""),
    ("PUT", "/c5", {"content-type": T}, b"", ""),
    ("PUT", "/c5", {"stream-closed": "true", "content-type": T}, b"", ""),
    ("GET", "/c5", {}, b"", ""),
    ("DELETE", "/nothing", {}, b"", ""),
    ("PATCH", "/c5", {}, b"", ""),
    # reads at and past the tail, binary data, conditional reads
    ("GET", "/j", {}, b"", "offset=0000000000000000_0000000000099999"),
    ("GET", "/j", {}, b"", "offset=0000000000000000_0000000000099999&live=long-poll"),
    ("GET", "/j", {}, b"", "offset=0000000000000000_0000000000000011&live=long-poll"),
    ("GET", "/j", {}, b"", "offset=-1&offset=-1"),
    ("PUT", "/b", {"content-type": "application/octet-stream"}, bytes(range(256)), ""),
    ("POST", "/b", {"content-type": "application/octet-stream"}, b"\r\n\x00", ""),
    ("GET", "/b", {}, b"", "offset=0000000000000000_0000000000000261"),
    ("GET", "/b", {}, b"", "offset=-1&live=sse"),
    ("GET", "/b", {"if-none-match": '"not-the-etag"'}, b"", ""),
    ("GET", "/b", {"if-none-match": "*"}, b"", ""),
]

# Where the embedded server answers otherwise on purpose: index in SCRIPT -> (its method
# and path, why).
DELIBERATE: dict[int, tuple[str, str, str]] = {
    56: (
        "PUT",
        "/f1",
        "Re-creating the same fork without Content-Type is idempotent (200), as the protocol "
        "says; the reference server compares the missing type as octet-stream and answers 409.",
    ),
    len(SCRIPT) - 1: (
        "GET",
        "/b",
        "If-None-Match: * matches any current representation (RFC 9110), so 304; the "
        "reference server compares the header with its ETag as a string.",
    ),
}


def _answers(base: str, run: str) -> list[tuple[object, ...]]:
    answers = []
    with httpx.Client(timeout=10.0) as http:
        for method, path, headers, body, query in SCRIPT:
            url = f"{base}/{run}{path}" + (f"?{query}" if query else "")
            forked = headers.get("stream-forked-from")
            if forked is not None:
                headers = {**headers, "stream-forked-from": f"/{run}{forked}"}
            request = http.build_request(method, url, headers=headers, content=body)
            response = http.send(request, stream=True)
            try:
                content = _body(response)
            finally:
                response.close()
            answers.append(
                (
                    method,
                    path,
                    query,
                    response.status_code,
                    {k: response.headers.get(k) for k in COMPARED},
                    {k: k in response.headers for k in PRESENT if response.status_code < 300},
                    content,
                )
            )
    return answers


def _body(response: httpx.Response) -> object:
    kind = response.headers.get("content-type", "")
    if kind != "text/event-stream":
        content = response.read()
        return "(error text)" if response.status_code >= 400 else content
    # SSE, up to the first control event that says the reader is caught up (the reference
    # server never ends an open stream's response by itself): what the data events carry,
    # joined (servers may batch messages into events differently), and that control event's
    # offset and closure (cursors vary).
    joined: list[object] = []
    binary = response.headers.get("stream-sse-data-encoding") == "base64"
    kind_, data = "", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind_ = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:])
        elif not line and kind_:
            payload = "\n".join(data)
            if kind_ == "data" and binary:
                joined.append(base64.b64decode(payload))
            elif kind_ == "data":
                joined.extend(json.loads(payload) if payload.startswith("[") else [payload])
            else:
                control = json.loads(payload)
                if control.get("upToDate") or control.get("streamClosed"):
                    if binary:
                        joined = [b"".join(part for part in joined if isinstance(part, bytes))]
                    return [*joined, control["streamNextOffset"], control.get("streamClosed")]
            kind_, data = "", []
    return joined


@pytest.fixture(scope="module")
def reference_url() -> Iterator[str]:
    with ReferenceServer(long_poll_timeout_ms=500) as server:
        yield server.url


@pytest.fixture(scope="module")
def embedded_url() -> Iterator[str]:
    with local_server(long_poll_timeout=0.5, sse_reconnect_interval=0.5) as url:
        yield url


def test_the_embedded_server_answers_like_the_reference(
    reference_url: str, embedded_url: str
) -> None:
    for index, (method, path, _) in DELIBERATE.items():
        assert SCRIPT[index][:2] == (method, path), "DELIBERATE points at the wrong request"
    run = f"diff-{uuid.uuid4().hex}"
    reference, embedded = _answers(reference_url, run), _answers(embedded_url, run)
    differences = [
        f"#{i} {ref[:3]}\n  reference: {ref[3:]}\n  embedded:  {ours[3:]}"
        for i, (ref, ours) in enumerate(zip(reference, embedded, strict=True))
        if ref != ours and i not in DELIBERATE
    ]
    assert not differences, "\n".join(differences)
