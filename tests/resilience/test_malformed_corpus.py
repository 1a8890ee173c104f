"""A corpus of malformed and hostile server responses, each one a test.

Every case is a script of answers that an ``httpx.MockTransport`` plays back, one read call,
and either the typed error that read must raise or the exact data it must return. Errors must
name the stream (without its query string, which carries a token here) and the offset of the
read; parse errors must also be ``ValueError``. The recovery cases check that after a parse
error a new read on the same response resumes at the committed offset: nothing lost, nothing
repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import durable_streams as ds
from durable_streams import RetryPolicy
from durable_streams._defaults import default_dispatcher

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loopback import LoopbackServer, read_head


def _transport_name(res: Any) -> str:
    return type((res._dispatcher or default_dispatcher(True)).transport_for(res.url)).__name__


URL = "http://streams.test/s/one"
SECRET = "SECRET-TOKEN"
URL_WITH_TOKEN = f"{URL}?token={SECRET}"
FAST = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002, deadline=None)
ATTEMPTS = 3  # the first try and FAST's two retries
# Native reads of the cases where the server stalls (a timeout on httpx's mock transport)
# meet a real server that stops answering, and time out after this long.
STALL_TIMEOUT = 0.25
STALL_LIMIT = 10.0  # the stalling server waits at most this long for the client to give up

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"

Answer = httpx.Response | Exception


# -- the mock server -----------------------------------------------------------------------------


class ScriptExhausted(Exception):
    """The client asked more than the script answers: a retry loop that should have ended."""


class Script:
    """Plays back a list of answers, recording each request; never loops."""

    def __init__(self, answers: list[Answer]) -> None:
        self._answers: Iterator[Answer] = iter(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        try:
            answer = next(self._answers)
        except StopIteration:
            raise ScriptExhausted(f"request {len(self.requests)} has no scripted answer") from None
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def offsets(self) -> list[str | None]:
        return [r.url.params.get("offset") for r in self.requests]


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body delivered in the given chunks; an exception among them is raised at that point."""

    def __init__(self, parts: list[bytes | Exception]) -> None:
        self._parts = parts

    def __iter__(self) -> Iterator[bytes]:
        for part in self._parts:
            if isinstance(part, Exception):
                raise part
            yield part

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            if isinstance(part, Exception):
                raise part
            yield part


def body(
    content: bytes | list[bytes | Exception],
    *,
    ct: str | None = JSON,
    offset: str | None = "0_1",
    up_to_date: bool = True,
    closed: bool = False,
    status: int = 200,
    **extra: str,
) -> httpx.Response:
    """A catch-up or long-poll answer."""
    headers = dict(extra)
    if ct is not None:
        headers["content-type"] = ct
    if offset is not None:
        headers["stream-next-offset"] = offset
    if up_to_date:
        headers["stream-up-to-date"] = "true"
    if closed:
        headers["stream-closed"] = "true"
    if isinstance(content, list):
        return httpx.Response(status, headers=headers, stream=Chunks(content))
    return httpx.Response(status, headers=headers, content=content)


def caught_up(ct: str = JSON, offset: str = "0_0") -> httpx.Response:
    """The catch-up answer an SSE reader gets first: nothing (more) to read, up to date."""
    return body(b"[]" if ct == JSON else b"", ct=ct, offset=offset)


def sse(
    content: bytes | str | list[bytes | Exception],
    *,
    ct: str = "text/event-stream",
    **extra: str,
) -> httpx.Response:
    headers = {"content-type": ct, **extra}
    if isinstance(content, list):
        return httpx.Response(200, headers=headers, stream=Chunks(content))
    if isinstance(content, str):
        content = content.encode()
    return httpx.Response(200, headers=headers, content=content)


def status(code: int, text: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(code, headers=headers, text=text)


def event(kind: str, data: str) -> str:
    return f"event: {kind}\ndata: {data}\n\n"


def control(offset: str, *, closed: bool = False, cursor: str | None = None) -> str:
    fields: dict[str, Any] = {"streamNextOffset": offset}
    if cursor is not None:
        fields["streamCursor"] = cursor
    if closed:
        fields["streamClosed"] = True
    else:
        fields["upToDate"] = True
    return event("control", json.dumps(fields))


CLOSE = control("0_9", closed=True)


# -- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    answers: Callable[[], list[Answer]]
    call: str
    live: Any = False
    error: type[ds.DurableStreamError] | None = None
    expect: Any = None
    offset: str | None = "-1"
    requests: int | None = None
    cause: type[BaseException] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    in_async: bool = False
    xfail: str | None = None
    trio_xfail: str | None = None


def json_body_case(id: str, content: bytes, error: type[ds.DurableStreamError], **kw: Any) -> Case:
    """``read_json`` of one catch-up answer carrying ``content``."""
    return Case(id, lambda: [body(content)], "read_json", error=error, requests=1, **kw)


def status_case(
    id: str,
    code: int,
    error: type[ds.DurableStreamError],
    *,
    repeat: int = 1,
    **kw: Any,
) -> Case:
    return Case(
        id,
        lambda: [status(code, "the server says no") for _ in range(repeat)],
        "read_json",
        error=error,
        requests=repeat,
        **kw,
    )


def transport_case(
    id: str,
    make: Callable[[], Exception],
    error: type[ds.DurableStreamError] = ds.TransportError,
    **kw: Any,
) -> Case:
    return Case(
        id,
        lambda: [make() for _ in range(ATTEMPTS)],
        "read_json",
        error=error,
        requests=ATTEMPTS,
        cause=type(make()),
        **kw,
    )


def sse_case(
    id: str,
    events: str | bytes,
    error: type[ds.DurableStreamError] | None,
    *,
    call: str = "iter_json",
    ct: str = JSON,
    repeat: int = 1,
    falls_back: bool = False,
    sse_headers: Mapping[str, str] | None = None,
    **kw: Any,
) -> Case:
    """An SSE read: one catch-up answer, then ``repeat`` SSE connections carrying ``events``.

    With ``falls_back``, one more of them comes first, followed by the catch-up request a
    reader makes once per offset after an SSE answer that sent bytes but broke off before
    covering them with a control event (it may have been a long catch-up burst)."""
    extra = dict(sse_headers or {})
    fallback = 2 if falls_back else 0

    def answers() -> list[Answer]:
        first = [sse(events, **extra), caught_up(ct)] if falls_back else []
        return [caught_up(ct), *first] + [sse(events, **extra) for _ in range(repeat)]

    kw.setdefault("requests", 1 + fallback + repeat)
    kw.setdefault("offset", "0_0")
    # Each SSE answer here is short: these cases are about what the reader makes of them on
    # SSE, not about its going over to long-poll after a few (tests/resilience has those).
    kw["options"] = {"sse_fallback": False, **kw.get("options", {})}
    return Case(id, answers, call, live="sse", error=error, **kw)


def base64_case(id: str, data: str, **kw: Any) -> Case:
    return sse_case(
        id,
        event("data", data) + CLOSE,
        ds.Base64DecodeError,
        call="iter_bytes",
        ct=BINARY,
        sse_headers={"stream-sse-data-encoding": "base64"},
        **kw,
    )


def long_poll_case(
    id: str, second: Callable[[], Answer], error: type[ds.DurableStreamError], **kw: Any
) -> Case:
    def answers() -> list[Answer]:
        return [body(b'[{"n":1}]', offset="0_1"), second()]

    kw.setdefault("requests", 2)
    return Case(id, answers, "iter_json", live="long-poll", error=error, offset="0_1", **kw)


SMALL_EVENTS = {"max_event_bytes": 64}
DATA_ONLY = event("data", "[1]")

CASES: list[Case] = [
    # -- catch-up JSON bodies that are not a JSON array -------------------------------------------
    json_body_case("json-truncated-object", b'[{"a":1},{"b":', ds.JSONParseError, in_async=True),
    json_body_case("json-truncated-string", b'["abc', ds.JSONParseError),
    json_body_case("json-unclosed-array", b"[1,2", ds.JSONParseError),
    json_body_case("json-only-open-bracket", b"[", ds.JSONParseError),
    json_body_case("json-object-not-array", b'{"a":1}', ds.JSONParseError, in_async=True),
    json_body_case("json-number-not-array", b"42", ds.JSONParseError),
    json_body_case("json-string-not-array", b'"hello"', ds.JSONParseError),
    json_body_case("json-null-not-array", b"null", ds.JSONParseError),
    json_body_case("json-nan-literal", b"[NaN]", ds.JSONParseError, in_async=True),
    json_body_case("json-infinity-literal", b"[1,Infinity]", ds.JSONParseError),
    json_body_case("json-negative-infinity", b'[{"x":-Infinity}]', ds.JSONParseError),
    json_body_case("json-invalid-utf8", b'["ok","\xff\xfe"]', ds.JSONParseError, in_async=True),
    json_body_case("json-overlong-utf8", b'["\xc0\xaf"]', ds.JSONParseError),
    json_body_case("json-utf8-encoded-surrogate", b'["\xed\xa0\x80"]', ds.JSONParseError),
    json_body_case("json-trailing-garbage", b"[1,2]xyz", ds.JSONParseError),
    json_body_case("json-two-arrays", b"[1][2]", ds.JSONParseError),
    json_body_case("json-trailing-comma", b"[1,2,]", ds.JSONParseError),
    json_body_case("json-single-quotes", b"['a']", ds.JSONParseError),
    json_body_case("json-unquoted-key", b"[{a:1}]", ds.JSONParseError),
    json_body_case("json-raw-control-char", b'["a\x01b"]', ds.JSONParseError),
    json_body_case("json-leading-zero", b"[01]", ds.JSONParseError),
    json_body_case("json-bad-escape", b'["\\x41"]', ds.JSONParseError),
    json_body_case("json-nesting-too-deep", b"[" * 5000 + b"]" * 5000, ds.JSONParseError),
    json_body_case("json-html-error-page", b"<html><body>502</body></html>", ds.JSONParseError),
    json_body_case("json-nul-byte", b"[1,\x002]", ds.JSONParseError),
    # -- text bodies that are not UTF-8 ------------------------------------------------------------
    Case(
        "text-invalid-utf8",
        lambda: [body(b"abc\xffdef", ct=TEXT)],
        "read_text",
        error=ds.ParseError,
        requests=1,
        in_async=True,
    ),
    Case(
        "text-utf8-encoded-surrogate",
        lambda: [body(b"ab\xed\xa0\x80", ct=TEXT)],
        "read_text",
        error=ds.ParseError,
        requests=1,
    ),
    Case(
        "text-truncated-char-at-eof-of-closed-stream",
        lambda: [body(b"ab\xe2\x82", ct=TEXT, closed=True)],
        "read_text",
        error=ds.ParseError,
        requests=1,
    ),
    # -- headers and progress ----------------------------------------------------------------------
    Case(
        "missing-next-offset-json",
        lambda: [body(b"[1]", offset=None)],
        "read_json",
        error=ds.ProtocolError,
        requests=1,
        in_async=True,
    ),
    Case(
        "missing-next-offset-bytes",
        lambda: [body(b"abc", ct=BINARY, offset=None)],
        "read_bytes",
        error=ds.ProtocolError,
        requests=1,
    ),
    Case(
        "no-progress-json",
        lambda: [body(b"[]", offset="-1", up_to_date=False)],
        "read_json",
        error=ds.ProtocolError,
        requests=1,
    ),
    Case(
        "no-progress-bytes",
        lambda: [body(b"", ct=BINARY, offset="-1", up_to_date=False)],
        "read_bytes",
        error=ds.ProtocolError,
        requests=1,
    ),
    Case(
        "json-read-of-binary-stream",
        lambda: [body(b"\x00\x01", ct=BINARY)],
        "read_json",
        error=ds.ContentTypeError,
        requests=1,
    ),
    Case(
        "json-read-of-text-stream",
        lambda: [body(b"hello", ct=TEXT)],
        "read_json",
        error=ds.ContentTypeError,
        requests=1,
    ),
    Case(
        "body-over-max-body-bytes",
        lambda: [body(b"[" + b"1," * 2000 + b"1]")],
        "read_json",
        error=ds.ProtocolError,
        requests=1,
        options={"max_body_bytes": 1024},
        in_async=True,
    ),
    Case(
        "chunked-body-over-max-body-bytes",
        lambda: [body([b"x" * 100] * 50, ct=BINARY)],
        "read_bytes",
        error=ds.ProtocolError,
        requests=1,
        options={"max_body_bytes": 1024},
    ),
    # -- error statuses ----------------------------------------------------------------------------
    status_case("status-400", 400, ds.InvalidOffsetError, in_async=True),
    status_case("status-404", 404, ds.StreamNotFoundError),
    status_case("status-410", 410, ds.RetentionGoneError),
    status_case("status-413", 413, ds.PayloadTooLargeError),
    status_case("status-418-unknown", 418, ds.ResponseError),
    status_case("status-206-unexpected-success", 206, ds.ResponseError),
    status_case("status-302-redirect-not-followed", 302, ds.ResponseError),
    status_case("status-204-on-catch-up", 204, ds.ResponseError),
    status_case("status-500-exhausts-retries", 500, ds.ServerError, repeat=ATTEMPTS, in_async=True),
    status_case("status-502-exhausts-retries", 502, ds.ServerError, repeat=ATTEMPTS),
    status_case("status-503-exhausts-retries", 503, ds.ServerError, repeat=ATTEMPTS),
    status_case("status-599-exhausts-retries", 599, ds.ServerError, repeat=ATTEMPTS),
    status_case("status-429-exhausts-retries", 429, ds.RateLimitedError, repeat=ATTEMPTS),
    Case(
        "status-500-then-404",
        lambda: [status(500), status(404)],
        "read_json",
        error=ds.StreamNotFoundError,
        requests=2,
    ),
    # -- connection failures -----------------------------------------------------------------------
    transport_case("connect-error", lambda: httpx.ConnectError("refused"), in_async=True),
    transport_case("read-error", lambda: httpx.ReadError("reset by peer")),
    transport_case("remote-protocol-error", lambda: httpx.RemoteProtocolError("bad framing")),
    transport_case(
        "read-timeout", lambda: httpx.ReadTimeout("slow"), error=ds.DeadlineExceededError
    ),
    Case(
        "body-cut-mid-transfer",
        lambda: [body([b"[1,2", httpx.ReadError("cut")]) for _ in range(ATTEMPTS)],
        "read_json",
        error=ds.TransportError,
        requests=ATTEMPTS,
        cause=httpx.ReadError,
        in_async=True,
    ),
    # -- long-poll ---------------------------------------------------------------------------------
    long_poll_case(
        "long-poll-truncated-json", lambda: body(b'[{"n":2', offset="0_2"), ds.JSONParseError
    ),
    long_poll_case(
        "long-poll-missing-next-offset", lambda: body(b"[2]", offset=None), ds.ProtocolError
    ),
    long_poll_case(
        "long-poll-no-progress",
        lambda: body(b"[]", offset="0_1", up_to_date=False),
        ds.ProtocolError,
        in_async=True,
    ),
    long_poll_case("long-poll-410", lambda: status(410), ds.RetentionGoneError),
    Case(
        "long-poll-timeouts-exhaust-retries",
        lambda: [body(b"[1]", offset="0_1")] + [httpx.ReadTimeout("slow")] * ATTEMPTS,
        "iter_json",
        live="long-poll",
        error=ds.DeadlineExceededError,
        offset="0_1",
        requests=1 + ATTEMPTS,
        cause=httpx.ReadTimeout,
    ),
    # -- SSE: the connection itself --------------------------------------------------------------
    sse_case(
        "sse-wrong-content-type-html",
        b"<html>",
        ds.ProtocolError,
        sse_headers={"content-type": "text/html"},
        in_async=True,
    ),
    sse_case(
        "sse-server-answered-with-json-body",
        b"[1]",
        ds.ProtocolError,
        sse_headers={"content-type": JSON, "stream-next-offset": "0_1"},
    ),
    Case(
        "sse-404-on-connect",
        lambda: [caught_up(), status(404)],
        "iter_json",
        live="sse",
        error=ds.StreamNotFoundError,
        offset="0_0",
        requests=2,
    ),
    # -- SSE: malformed control events -------------------------------------------------------------
    sse_case("sse-control-not-json", event("control", "{not json}"), ds.SSEParseError),
    sse_case("sse-control-array", event("control", '["0_1"]'), ds.SSEParseError),
    sse_case("sse-control-string", event("control", '"0_1"'), ds.SSEParseError),
    sse_case(
        "sse-control-missing-next-offset",
        event("control", '{"upToDate":true}'),
        ds.SSEParseError,
        in_async=True,
    ),
    sse_case(
        "sse-control-next-offset-number",
        event("control", '{"streamNextOffset":5}'),
        ds.SSEParseError,
    ),
    sse_case(
        "sse-control-next-offset-null",
        event("control", '{"streamNextOffset":null}'),
        ds.SSEParseError,
    ),
    sse_case(
        "sse-control-cursor-number",
        event("control", '{"streamNextOffset":"0_1","streamCursor":7}'),
        ds.SSEParseError,
    ),
    sse_case(
        "sse-control-up-to-date-string",
        event("control", '{"streamNextOffset":"0_1","upToDate":"true"}'),
        ds.SSEParseError,
    ),
    sse_case(
        "sse-control-closed-number",
        event("control", '{"streamNextOffset":"0_1","streamClosed":1}'),
        ds.SSEParseError,
    ),
    sse_case(
        "sse-control-truncated",
        event("control", '{"streamNextOffset":"0_1"'),
        ds.SSEParseError,
    ),
    sse_case(
        "sse-control-trailing-garbage",
        event("control", '{"streamNextOffset":"0_1"} tail'),
        ds.SSEParseError,
    ),
    sse_case(
        "sse-control-invalid-utf8",
        b'event: control\ndata: {"streamNextOffset":"0_\xff"}\n\n',
        ds.SSEParseError,
    ),
    sse_case("sse-event-name-invalid-utf8", b"event: \xff\xfe\ndata: [1]\n\n", ds.SSEParseError),
    # -- SSE: data events of a JSON stream that are not a JSON array -------------------------------
    sse_case("sse-json-data-object", event("data", '{"a":1}') + CLOSE, ds.JSONParseError),
    sse_case(
        "sse-json-data-scalar",
        event("data", "5") + CLOSE,
        ds.JSONParseError,
        in_async=True,
    ),
    sse_case("sse-json-data-truncated", event("data", "[1,2") + CLOSE, ds.JSONParseError),
    sse_case("sse-json-data-nan", event("data", "[NaN]") + CLOSE, ds.JSONParseError),
    sse_case(
        "sse-json-data-invalid-utf8",
        b'event: data\ndata: ["\xff"]\n\n' + CLOSE.encode(),
        ds.JSONParseError,
    ),
    sse_case(
        "sse-json-data-split-array-trailing-garbage",
        "event: data\ndata: [1,\ndata: 2] x\n\n" + CLOSE,
        ds.JSONParseError,
    ),
    sse_case(
        "sse-json-stream-announced-as-base64",
        event("data", "WzFd") + CLOSE,
        ds.ContentTypeError,
        sse_headers={"stream-sse-data-encoding": "base64"},
    ),
    # -- SSE: text and base64 data -----------------------------------------------------------------
    sse_case(
        "sse-text-data-invalid-utf8",
        b"event: data\ndata: ok \xc3\x28\n\n" + CLOSE.encode(),
        ds.SSEParseError,
        call="iter_text",
        ct=TEXT,
        in_async=True,
    ),
    base64_case("base64-bad-character", "YW$j", in_async=True),
    base64_case("base64-url-safe-alphabet", "YW-_"),
    base64_case("base64-bad-length", "YWJjZ"),
    base64_case("base64-padding-in-the-middle", "YQ==YWJj"),
    base64_case("base64-too-much-padding", "Y==="),
    base64_case("base64-inner-space", "YWJj ZGVm"),
    # -- SSE: events and lines over max_event_bytes ------------------------------------------------
    sse_case(
        "sse-oversize-data-event",
        event("data", "[" + "1," * 100 + "1]") + CLOSE,
        ds.EventTooLargeError,
        options=SMALL_EVENTS,
        in_async=True,
    ),
    sse_case(
        "sse-oversize-from-many-small-lines",
        "event: data\n" + "data: 1\n" * 40 + "\n" + CLOSE,
        ds.EventTooLargeError,
        options=SMALL_EVENTS,
    ),
    sse_case(
        "sse-oversize-control-event",
        event("control", json.dumps({"streamNextOffset": "0_1", "streamCursor": "c" * 100})),
        ds.EventTooLargeError,
        options=SMALL_EVENTS,
    ),
    sse_case(
        "sse-oversize-comment-line",
        ":" + "x" * 200 + "\n\n" + CLOSE,
        ds.EventTooLargeError,
        options=SMALL_EVENTS,
    ),
    sse_case(
        "sse-oversize-unterminated-line",
        "event: data\ndata: " + "y" * 200,
        ds.EventTooLargeError,
        options=SMALL_EVENTS,
    ),
    # -- SSE: connections that end before any control event -------------------------------------
    sse_case(
        "sse-ends-without-control",
        DATA_ONLY,
        ds.TransportError,
        repeat=ATTEMPTS,
        falls_back=True,
        in_async=True,
    ),
    sse_case("sse-empty-body", b"", ds.TransportError, repeat=ATTEMPTS),
    sse_case(
        "sse-only-comments",
        ": keep-alive\n\n: still here\n\n",
        ds.TransportError,
        repeat=ATTEMPTS,
        falls_back=True,
    ),
    sse_case(
        "sse-ends-mid-control-event",
        DATA_ONLY + 'event: control\ndata: {"streamNextOffset":"0_1"',
        ds.TransportError,
        repeat=ATTEMPTS,
        falls_back=True,
    ),
    Case(
        "sse-500-exhausts-retries",
        lambda: [caught_up()] + [status(500) for _ in range(ATTEMPTS)],
        "iter_json",
        live="sse",
        error=ds.ServerError,
        offset="0_0",
        requests=1 + ATTEMPTS,
    ),
    # -- SSE: what must be ignored (these succeed with exact data) ---------------------------------
    sse_case(
        "ignore-unknown-event-type",
        event("surprise", "[99]") + event("data", "[1]") + event("heartbeat", "{}") + CLOSE,
        None,
        expect=[1],
        in_async=True,
    ),
    sse_case(
        "ignore-comments",
        ": hello\n\n" + "event: data\n: inside an event\ndata: [1]\n\n" + ":\n" + CLOSE,
        None,
        expect=[1],
    ),
    sse_case(
        "ignore-retry-lines",
        "retry: 10\n\nretry: soon\n\n" + "event: data\nretry: 5\ndata: [1,2]\n\n" + CLOSE,
        None,
        expect=[1, 2],
    ),
    sse_case(
        "ignore-id-lines",
        "id: 7\n\n" + "id: 8\nevent: data\ndata: [1]\n\n" + CLOSE,
        None,
        expect=[1],
    ),
    sse_case(
        "ignore-unknown-fields",
        "foo: bar\nevent: data\nbaz\ndata: [1]\n\n" + CLOSE,
        None,
        expect=[1],
    ),
    sse_case(
        "ignore-event-without-data",
        "event: control\n\nevent: data\n\n" + event("data", "[3]") + CLOSE,
        None,
        expect=[3],
    ),
    sse_case(
        "ignore-data-without-event-type",
        "data: [42]\n\n" + event("data", "[1]") + CLOSE,
        None,
        expect=[1],
    ),
    sse_case(
        "ignore-control-extra-fields",
        event("data", "[1]")
        + event("control", '{"streamNextOffset":"0_9","streamClosed":true,"future":[1,{}]}'),
        None,
        expect=[1],
    ),
    sse_case(
        "bom-and-crlf-line-endings",
        ("\ufeff" + event("data", "[1]") + CLOSE).replace("\n", "\r\n"),
        None,
        expect=[1],
    ),
    sse_case(
        "base64-valid-across-data-lines",
        "event: data\ndata: YWJj\ndata: ZGVm\n\n" + CLOSE,
        None,
        call="iter_bytes",
        ct=BINARY,
        sse_headers={"stream-sse-data-encoding": "base64"},
        expect=b"abcdef",
    ),
    # -- SSE: the connection fails after the stream's end was delivered in full ----------------
    # The closing batch is complete once its control event has arrived: what happens to the
    # connection afterwards must neither lose it nor send the reader back for more.
    sse_case(
        "sse-cut-right-after-stream-closed",
        [(event("data", "[1,2]") + control("0_2", closed=True)).encode(), httpx.ReadError("cut")],
        None,
        expect=[1, 2],
        in_async=True,
    ),
    sse_case(
        "sse-stall-right-after-stream-closed",
        [
            (event("data", "[1]") + control("0_1", closed=True)).encode(),
            httpx.ReadTimeout("stalled"),
        ],
        None,
        expect=[1],
        in_async=True,
    ),
    sse_case(
        "sse-garbage-right-after-stream-closed",
        [(event("data", "[1]") + control("0_1", closed=True)).encode(), b"\xff\xfe\x00"],
        None,
        expect=[1],
        in_async=True,
    ),
    # -- 304 Not Modified (a cache answering a conditional request): nothing new, no error ----
    Case(
        "not-modified-is-nothing-new",
        lambda: [status(304, **{"stream-next-offset": "9_9", "stream-closed": "true"})],
        "read_json",
        expect=[],
        requests=1,
        in_async=True,
    ),
    Case(
        "not-modified-while-tailing",
        lambda: [
            body(b"[1]", offset="0_1"),
            status(304),
            body(b"[2]", offset="0_2", closed=True),
        ],
        "iter_json",
        live="long-poll",
        expect=[1, 2],
        requests=3,
        in_async=True,
    ),
    Case(
        "not-modified-instead-of-sse",
        lambda: [caught_up(), status(304), sse(event("data", "[1]") + CLOSE)],
        "iter_json",
        live="sse",
        expect=[1],
        requests=3,
        in_async=True,
    ),
    # -- json=True: JSON under another content type -------------------------------------------
    Case(
        "json-hint-on-a-text-stream",
        lambda: [body(b'[1,{"a":2}]', ct=TEXT)],
        "read_json",
        expect=[1, {"a": 2}],
        requests=1,
        options={"json": True},
        in_async=True,
    ),
    Case(
        "json-hint-over-sse",
        lambda: [caught_up(ct="text/vnd.custom"), sse(event("data", "[1,2]") + CLOSE)],
        "iter_json",
        live="sse",
        expect=[1, 2],
        requests=2,
        options={"json": True},
        in_async=True,
    ),
    Case(
        "json-hint-cannot-read-base64-sse",
        lambda: [
            caught_up(ct=BINARY),
            sse(event("data", "WzFd") + CLOSE, **{"stream-sse-data-encoding": "base64"}),
        ],
        "iter_json",
        live="sse",
        error=ds.ContentTypeError,
        offset="0_0",
        requests=2,
        options={"json": True},
    ),
    Case(
        "json-body-with-whitespace",
        lambda: [body(b' \r\n\t[ 1 , {"a" : [ ] } ]\n ')],
        "read_json",
        expect=[1, {"a": []}],
        requests=1,
    ),
]


def _params(cases: list[Case]) -> list[Any]:
    out = []
    for case in cases:
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def test_corpus_is_large_and_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert sum(case.error is not None for case in CASES) >= 50
    assert sum(case.in_async for case in CASES) >= 10


# -- running a case ------------------------------------------------------------------------------


def _options(case: Case) -> dict[str, Any]:
    return {"live": case.live, "retry": FAST, **case.options}


def _read_sync(res: ds.StreamResponse, call: str) -> Any:
    if call == "read_json":
        return res.read_json()
    if call == "read_bytes":
        return res.read_bytes()
    if call == "read_text":
        return res.read_text()
    if call == "iter_json":
        return list(res.iter_json())
    if call == "iter_bytes":
        return b"".join(res.iter_bytes())
    if call == "iter_text":
        return "".join(res.iter_text())
    raise AssertionError(f"unknown call {call}")


async def _read_async(res: ds.AsyncStreamResponse, call: str) -> Any:
    if call == "read_json":
        return await res.read_json()
    if call == "read_bytes":
        return await res.read_bytes()
    if call == "read_text":
        return await res.read_text()
    if call == "iter_json":
        return [item async for item in res.iter_json()]
    if call == "iter_bytes":
        return b"".join([chunk async for chunk in res.iter_bytes()])
    if call == "iter_text":
        return "".join([text async for text in res.iter_text()])
    raise AssertionError(f"unknown call {call}")


def _trio_xfail(reason: str | None, backend: str, request: pytest.FixtureRequest) -> None:
    if reason is not None and backend == "trio":
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def _check(case: Case, script: Script, outcome: Any, error: BaseException | None) -> None:
    if case.error is None:
        assert error is None, f"unexpected {error!r}"
        assert outcome == case.expect
    else:
        assert error is not None, f"no error; the read returned {outcome!r}"
        assert type(error) is case.error, f"{type(error).__name__}: {error}"
        assert isinstance(error, ds.DurableStreamError)
        text = str(error) + repr(error)
        assert error.url == URL
        assert URL in str(error)
        assert SECRET not in text
        assert error.offset == case.offset
        assert isinstance(error, ValueError) == isinstance(error, ds.ParseError)
        if isinstance(error, ds.ContentTypeError):
            assert isinstance(error, TypeError)
        if case.cause is not None:
            assert isinstance(error.__cause__, case.cause)
    if case.requests is not None:
        assert len(script.requests) == case.requests, script.offsets


@pytest.mark.parametrize("case", _params(CASES))
def test_sync(case: Case) -> None:
    script = Script(case.answers())
    outcome: Any = None
    error: BaseException | None = None
    with httpx.Client(transport=httpx.MockTransport(script)) as client:
        try:
            with ds.stream(URL_WITH_TOKEN, client=client, **_options(case)) as res:
                outcome = _read_sync(res, case.call)
        except ds.DurableStreamError as exc:
            error = exc
    _check(case, script, outcome, error)


@pytest.mark.anyio
@pytest.mark.parametrize("case", _params([case for case in CASES if case.in_async]))
async def test_async(case: Case, anyio_backend: str, request: pytest.FixtureRequest) -> None:
    _trio_xfail(case.trio_xfail, anyio_backend, request)
    script = Script(case.answers())
    outcome: Any = None
    error: BaseException | None = None
    async with httpx.AsyncClient(transport=httpx.MockTransport(script)) as client:
        try:
            async with ds.astream(URL_WITH_TOKEN, client=client, **_options(case)) as res:
                outcome = await _read_async(res, case.call)
        except ds.DurableStreamError as exc:
            error = exc
    _check(case, script, outcome, error)


# -- recovery: a new read after a parse error resumes at the committed offset ------------------


@dataclass(frozen=True)
class Recovery:
    """The first read yields ``before`` and then raises ``error``; a new read on the same
    response returns ``after``. ``offsets`` are the offsets of every request made."""

    id: str
    answers: Callable[[], list[Answer]]
    kind: str  # "json", "text" or "bytes"
    error: type[ds.DurableStreamError]
    before: Any
    after: Any
    offsets: list[str] | None  # None: not pinned down (a fix may choose where to resume)
    final_offset: str
    error_offset: str
    live: Any = False
    first: str = "iter"  # "iter": collect what iter_* yields; "read": the read_* call raises
    ct: str = JSON
    options: Mapping[str, Any] = field(default_factory=dict)
    xfail: str | None = None
    trio_xfail: str | None = None


B64 = {"stream-sse-data-encoding": "base64"}


def _sse_chunks(*chunks: str) -> httpx.Response:
    return sse([chunk.encode() for chunk in chunks])


RECOVERIES: list[Recovery] = [
    Recovery(
        "catch-up-json-second-batch-truncated",
        lambda: [
            body(b"[1,2]", offset="0_2", up_to_date=False),
            body(b"[3,", offset="0_4"),
            body(b"[3,4]", offset="0_4"),
        ],
        "json",
        ds.JSONParseError,
        before=[1, 2],
        after=[3, 4],
        offsets=["-1", "0_2", "0_2"],
        final_offset="0_4",
        error_offset="0_2",
    ),
    Recovery(
        "catch-up-json-first-batch-nan",
        lambda: [body(b"[NaN]", offset="0_1"), body(b'[{"n":1}]', offset="0_1")],
        "json",
        ds.JSONParseError,
        before=[],
        after=[{"n": 1}],
        offsets=["-1", "-1"],
        final_offset="0_1",
        error_offset="-1",
        first="read",
    ),
    Recovery(
        "catch-up-text-invalid-utf8-keeps-split-character",
        lambda: [
            body(b"ab\xe2\x82", ct=TEXT, offset="0_4", up_to_date=False),
            body(b"\xac\xff", ct=TEXT, offset="0_6"),
            body(b"\xacc", ct=TEXT, offset="0_6"),
        ],
        "text",
        ds.ParseError,
        before="ab",
        after="\u20acc",
        offsets=["-1", "0_4", "0_4"],
        final_offset="0_6",
        error_offset="0_4",
        ct=TEXT,
    ),
    Recovery(
        "long-poll-json-corrupt",
        lambda: [
            body(b"[1]", offset="0_1"),
            body(b"[2,", offset="0_2", up_to_date=False),
            body(b"[2]", offset="0_2", closed=True),
        ],
        "json",
        ds.JSONParseError,
        before=[1],
        after=[2],
        offsets=["-1", "0_1", "0_1"],
        final_offset="0_2",
        error_offset="0_1",
        live="long-poll",
    ),
    Recovery(
        "sse-bad-data-after-committed-batch",
        lambda: [
            caught_up(),
            _sse_chunks(event("data", "[1]") + control("0_1"), event("data", "{bad}")),
            sse(event("data", "[2]") + control("0_2", closed=True)),
        ],
        "json",
        ds.JSONParseError,
        before=[1],
        after=[2],
        offsets=["-1", "0_0", "0_1"],
        final_offset="0_2",
        error_offset="0_1",
        live="sse",
    ),
    Recovery(
        "sse-bad-control-drops-uncovered-data",
        lambda: [
            caught_up(),
            _sse_chunks(
                event("data", "[1]") + control("0_1"),
                event("data", "[2]") + event("control", '{"streamNextOffset":2}'),
            ),
            sse(event("data", "[2]") + control("0_2", closed=True)),
        ],
        "json",
        ds.SSEParseError,
        before=[1],
        after=[2],
        offsets=["-1", "0_0", "0_1"],
        final_offset="0_2",
        error_offset="0_1",
        live="sse",
    ),
    Recovery(
        "sse-base64-bad-padding-after-committed-batch",
        lambda: [
            caught_up(BINARY),
            sse(
                [
                    (event("data", "YWJj") + control("0_3")).encode(),
                    event("data", "ZA==ZA==").encode(),
                ],
                **B64,
            ),
            sse(event("data", "ZGVm") + control("0_6", closed=True), **B64),
        ],
        "bytes",
        ds.Base64DecodeError,
        before=b"abc",
        after=b"def",
        offsets=["-1", "0_0", "0_3"],
        final_offset="0_6",
        error_offset="0_3",
        live="sse",
        ct=BINARY,
    ),
    Recovery(
        "sse-event-too-large-after-committed-batch",
        lambda: [
            caught_up(TEXT),
            _sse_chunks(event("data", "hi") + control("0_2"), event("data", "z" * 200)),
            sse(event("data", "there") + control("0_7", closed=True)),
        ],
        "text",
        ds.EventTooLargeError,
        before="hi",
        after="there",
        offsets=["-1", "0_0", "0_2"],
        final_offset="0_7",
        error_offset="0_2",
        live="sse",
        ct=TEXT,
        options=SMALL_EVENTS,
    ),
    Recovery(
        "sse-text-invalid-utf8-after-committed-batch",
        lambda: [
            caught_up(TEXT),
            sse([(event("data", "hi") + control("0_2")).encode(), b"event: data\ndata: \xff\n\n"]),
            sse(event("data", "there") + control("0_7", closed=True)),
        ],
        "text",
        ds.SSEParseError,
        before="hi",
        after="there",
        offsets=["-1", "0_0", "0_2"],
        final_offset="0_7",
        error_offset="0_2",
        live="sse",
        ct=TEXT,
    ),
    Recovery(
        "read-json-keeps-batches-before-the-bad-one",
        lambda: [
            body(b"[1,2]", offset="0_2", up_to_date=False),
            body(b"[3,", offset="0_4"),
            body(b"[3,4]", offset="0_4"),
        ],
        "json",
        ds.JSONParseError,
        before=[],
        after=[1, 2, 3, 4],
        offsets=None,
        final_offset="0_4",
        error_offset="0_2",
        first="read",
    ),
]

_ITER = {"json": "iter_json", "text": "iter_text", "bytes": "iter_bytes"}
_READ = {"json": "read_json", "text": "read_text", "bytes": "read_bytes"}
_JOIN: dict[str, Callable[[list[Any]], Any]] = {
    "json": list,
    "text": "".join,
    "bytes": b"".join,
}


def _recovery_params() -> list[Any]:
    out = []
    for rec in RECOVERIES:
        marks = [pytest.mark.xfail(strict=True, reason=rec.xfail)] if rec.xfail else []
        out.append(pytest.param(rec, id=rec.id, marks=marks))
    return out


def _second_call(rec: Recovery) -> str:
    # A live reader runs until the stream closes; a catch-up one until it is up to date.
    return _ITER[rec.kind] if rec.live else _READ[rec.kind]


def _check_recovery(
    rec: Recovery, script: Script, before: list[Any], error: BaseException, after: Any, end: str
) -> None:
    assert type(error) is rec.error, f"{type(error).__name__}: {error}"
    assert isinstance(error, ValueError)
    assert error.url == URL and URL in str(error) and SECRET not in str(error)
    assert error.offset == rec.error_offset
    assert _JOIN[rec.kind](before) == rec.before
    assert after == rec.after
    if rec.offsets is not None:
        assert script.offsets == rec.offsets
        # The error names the offset the reader stood at, which is where the new read resumes.
        assert rec.offsets[-1] == rec.error_offset
    assert end == rec.final_offset


@pytest.mark.parametrize("rec", _recovery_params())
def test_recovery_sync(rec: Recovery) -> None:
    script = Script(rec.answers())
    before: list[Any] = []
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        ds.stream(URL_WITH_TOKEN, client=client, live=rec.live, retry=FAST, **rec.options) as res,
    ):
        with pytest.raises(rec.error) as info:
            if rec.first == "read":
                before.extend(_read_sync(res, _READ[rec.kind]))
            else:
                for item in getattr(res, _ITER[rec.kind])():
                    before.append(item)
        after = _read_sync(res, _second_call(rec))
        end = res.offset
    _check_recovery(rec, script, before, info.value, after, end)


@pytest.mark.anyio
@pytest.mark.parametrize("rec", _recovery_params())
async def test_recovery_async(
    rec: Recovery, anyio_backend: str, request: pytest.FixtureRequest
) -> None:
    _trio_xfail(rec.trio_xfail, anyio_backend, request)
    script = Script(rec.answers())
    before: list[Any] = []
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(script)) as client,
        ds.astream(URL_WITH_TOKEN, client=client, live=rec.live, retry=FAST, **rec.options) as res,
    ):
        with pytest.raises(rec.error) as info:
            if rec.first == "read":
                before.extend(await _read_async(res, _READ[rec.kind]))
            else:
                async for item in getattr(res, _ITER[rec.kind])():
                    before.append(item)
        after = await _read_async(res, _second_call(rec))
        end = res.offset
    _check_recovery(rec, script, before, info.value, after, end)


# -- the same corpus through the native read path: real sockets, raw HTTP/1.1 --------------------


class ReplayServer(LoopbackServer):
    """Serves a :class:`Script` over real sockets as raw HTTP/1.1: a streamed body (``Chunks``)
    goes out chunked, part by part, and an exception cuts the connection where it stands (no
    answer at all, or the body so far). Complete answers keep the connection alive."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.problems: list[BaseException] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        pending = b""
        while True:
            request = read_head(conn, pending)
            if request is None:
                return
            head, pending = request
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1]
            fields = [line.split(":", 1) for line in lines[1:]]
            request_seen = httpx.Request(
                "GET", f"http://streams.test{target}", headers=[(k, v.strip()) for k, v in fields]
            )
            try:
                answer = self.script(request_seen)
            except ScriptExhausted as exc:
                self.problems.append(exc)
                return
            except httpx.TimeoutException:
                _stall(conn)  # a timeout: the server stops answering
                return
            except Exception:
                return  # a transport failure: the connection closes, unanswered
            if not self._answer(conn, answer):
                return

    def _answer(self, conn: socket.socket, answer: httpx.Response) -> bool:
        """Writes ``answer``; returns whether the connection is still good for another."""
        head = [f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}"]
        for name, value in answer.headers.multi_items():
            if name.lower() not in ("content-length", "transfer-encoding"):
                head.append(f"{name}: {value}")
        stream = answer.stream
        if isinstance(stream, Chunks):
            head.append("Transfer-Encoding: chunked")
            conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            for part in stream._parts:
                if isinstance(part, httpx.TimeoutException):
                    _stall(conn)
                    return False
                if isinstance(part, Exception):
                    return False
                if part:
                    conn.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
            return True
        raw = b"".join(stream)  # type: ignore[arg-type]
        head.append(f"Content-Length: {len(raw)}")
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + raw)
        return True


def _stall(conn: socket.socket) -> None:
    """Says nothing more until the client gives up and closes the connection."""
    conn.settimeout(STALL_LIMIT)
    with contextlib.suppress(OSError):
        while conn.recv(65536):
            pass


def _stalls(case: Case) -> bool:
    """Whether the case needs a server that stalls until the client times out."""
    for answer in case.answers():
        parts = (
            answer.stream._parts
            if isinstance(answer, httpx.Response) and isinstance(answer.stream, Chunks)
            else [answer]
        )
        if any(isinstance(p, httpx.TimeoutException) for p in parts):
            return True
    return False


def _native(case: Case) -> tuple[Case, dict[str, Any]]:
    """The case as the native path sees it, and its read options. A cut connection is the
    native path's own TransportError (an HTTPParseError when the cut shows in the HTTP
    framing) with no httpx exception behind it; a stalled one, a DeadlineExceededError
    after a real timeout."""
    options = _options(case)
    if _stalls(case):
        options.update(timeout=STALL_TIMEOUT, live_read_timeout=STALL_TIMEOUT)
        return dataclasses.replace(case, cause=None), options
    return case, options


def _native_outcome(case: Case, error: BaseException | None) -> Case:
    if _stalls(case) or case.cause is None or not issubclass(case.cause, httpx.HTTPError):
        return case
    assert isinstance(error, ds.TransportError), repr(error)
    return dataclasses.replace(case, error=type(error), cause=None)


@pytest.fixture
def replay(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Script], ReplayServer]]:
    """Routes the native transport's connections for streams.test to a replay server."""
    monkeypatch.setenv("DURABLE_STREAMS_TRANSPORT", "native")
    servers: list[ReplayServer] = []
    connect = socket.create_connection

    def routed(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        if address[0] == "streams.test":
            address = ("127.0.0.1", servers[-1].port)
        return connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", routed)
    connect_tcp = anyio.connect_tcp

    async def routed_tcp(host: str, port: int, **kwargs: Any) -> Any:
        if host == "streams.test":
            host, port = "127.0.0.1", servers[-1].port
        return await connect_tcp(host, port, **kwargs)

    monkeypatch.setattr(anyio, "connect_tcp", routed_tcp)
    create_connection = asyncio.BaseEventLoop.create_connection

    async def routed_asyncio(
        loop: asyncio.BaseEventLoop, factory: Any, host: str, port: int, **kwargs: Any
    ) -> Any:
        if host == "streams.test":
            host, port = "127.0.0.1", servers[-1].port
        return await create_connection(loop, factory, host, port, **kwargs)

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", routed_asyncio)

    def start(script: Script) -> ReplayServer:
        servers.append(ReplayServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
        assert server.problems == []


@pytest.mark.parametrize("case", _params(CASES))
def test_native_sync(case: Case, replay: Callable[[Script], ReplayServer]) -> None:
    script = Script(case.answers())
    replay(script)
    outcome: Any = None
    error: BaseException | None = None
    case, options = _native(case)
    try:
        with ds.stream(URL_WITH_TOKEN, **options) as res:
            assert _transport_name(res) == "NativeTransport"
            outcome = _read_sync(res, case.call)
    except ds.DurableStreamError as exc:
        error = exc
    _check(_native_outcome(case, error), script, outcome, error)


@pytest.mark.parametrize("rec", _recovery_params())
def test_native_recovery_sync(rec: Recovery, replay: Callable[[Script], ReplayServer]) -> None:
    script = Script(rec.answers())
    replay(script)
    before: list[Any] = []
    with ds.stream(URL_WITH_TOKEN, live=rec.live, retry=FAST, **rec.options) as res:
        assert _transport_name(res) == "NativeTransport"
        with pytest.raises(rec.error) as info:
            if rec.first == "read":
                before.extend(_read_sync(res, _READ[rec.kind]))
            else:
                for item in getattr(res, _ITER[rec.kind])():
                    before.append(item)
        after = _read_sync(res, _second_call(rec))
        end = res.offset
    _check_recovery(rec, script, before, info.value, after, end)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "case", _params([case for case in CASES if case.in_async or _stalls(case)])
)
async def test_native_async(
    case: Case, anyio_backend: str, replay: Callable[[Script], ReplayServer]
) -> None:
    script = Script(case.answers())
    replay(script)
    outcome: Any = None
    error: BaseException | None = None
    case, options = _native(case)
    try:
        async with ds.astream(URL_WITH_TOKEN, **options) as res:
            assert _transport_name(res) == "AsyncNativeTransport"
            outcome = await _read_async(res, case.call)
    except ds.DurableStreamError as exc:
        error = exc
    _check(_native_outcome(case, error), script, outcome, error)


@pytest.mark.anyio
@pytest.mark.parametrize("rec", _recovery_params())
async def test_native_recovery_async(
    rec: Recovery, anyio_backend: str, replay: Callable[[Script], ReplayServer]
) -> None:
    script = Script(rec.answers())
    replay(script)
    before: list[Any] = []
    async with ds.astream(URL_WITH_TOKEN, live=rec.live, retry=FAST, **rec.options) as res:
        assert _transport_name(res) == "AsyncNativeTransport"
        with pytest.raises(rec.error) as info:
            if rec.first == "read":
                before.extend(await _read_async(res, _READ[rec.kind]))
            else:
                async for item in getattr(res, _ITER[rec.kind])():
                    before.append(item)
        after = await _read_async(res, _second_call(rec))
        end = res.offset
    _check_recovery(rec, script, before, info.value, after, end)
