#!/usr/bin/env python3
"""The client adapter of the official Durable Streams conformance runner, for durable_streams.

The runner (``@durable-streams/client-conformance-tests``) spawns this program once and drives
it over stdin/stdout: one JSON command per line in, exactly one JSON result per line out, in
order. Everything else goes to stderr. ``--async`` drives the async API (``AsyncDurableStream``,
``astream``, the async producer); the default drives the sync API. The core implementation is
chosen the usual way (``DURABLE_STREAMS_PURE_PYTHON=1`` selects the pure-Python twin).

Run it as ``python -m conformance.adapter [--async]`` from the repository root or as
``python conformance/adapter.py [--async]``; ``conformance/adapter-sync`` and
``conformance/adapter-async`` are executables for runners that take no arguments.

Only the public API of ``durable_streams`` is used. Choices of this adapter (not the library):

* Retries use a brisk :class:`RetryPolicy` (a few retries, sub-second backoff) so a run of the
  suite is quick; the library's defaults back off for up to a minute.
* A live read lasts at most ``timeoutMs``; the async adapter cancels it
  (``anyio.move_on_after``), the sync one waits for it in a worker thread for that long and then
  answers with what it has (the sync API has no deadline for a whole read; see WORKAROUND).
* A read reports one chunk per ``read_json``/``read_text``/``read_bytes`` call, i.e. per run of
  batches up to the next up-to-date (or closed) batch: the only public reads that also end at
  an empty up-to-date batch.
* Successful ``append``/``close``/``delete`` report status 200 whatever 2xx the server sent, as
  the reference adapters do (the runner's cases expect 200).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import httpx

import durable_streams as ds

__all__ = ["AsyncAdapter", "SyncAdapter", "main"]

CLIENT_NAME = "durable-streams-rs"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
DEFAULT_LIVE_TIMEOUT_MS = 5000
DEFAULT_MAX_CHUNKS = 100

# Quick retries for a test run: ~0.75 s at most before a persistent failure surfaces.
RETRY = ds.RetryPolicy(max_retries=4, initial_delay=0.05, max_delay=0.5, deadline=20.0)
# Keep-alive connections idle for less than the reference server's 5 s keep-alive, so a request
# never races the server closing the connection it was about to reuse.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=2.0)

Result = dict[str, Any]


def log(message: str) -> None:
    print(f"[adapter] {message}", file=sys.stderr, flush=True)


# --- errors --------------------------------------------------------------------------------------


def typed_cause(exc: BaseException) -> BaseException:
    """For a producer's summary errors (undelivered batches, a producer stopped by a fatal
    answer), the typed error of the first failure, which is their ``__cause__``."""
    if isinstance(exc, (ds.UndeliveredError, ds.ProducerClosedError)) and isinstance(
        exc.__cause__, ds.DurableStreamError
    ):
        return exc.__cause__
    return exc


def error_code(exc: BaseException) -> str:
    """The runner's error code for an exception of the library (or of our own validation)."""
    exc = typed_cause(exc)
    if isinstance(exc, ds.StreamClosedError):
        return "STREAM_CLOSED"
    if isinstance(exc, ds.StreamNotFoundError):
        return "NOT_FOUND"
    if isinstance(exc, (ds.SeqConflictError, ds.SequenceGapError, ds.SequenceReusedError)):
        return "SEQUENCE_CONFLICT"
    if isinstance(exc, ds.ConflictError):
        return "CONFLICT"
    if isinstance(exc, ds.InvalidOffsetError):
        return "INVALID_OFFSET"
    if isinstance(exc, ds.ResponseError):
        return "UNEXPECTED_STATUS"
    if isinstance(exc, (ds.ParseError, ds.ProtocolError)):
        return "PARSE_ERROR"
    if isinstance(exc, ds.DeadlineExceededError):
        return "TIMEOUT"
    if isinstance(exc, ds.TransportError):
        return "NETWORK_ERROR"
    if isinstance(exc, (ds.ContentTypeError, ds.UsageError)):
        return "INVALID_ARGUMENT"
    if isinstance(exc, ds.DurableStreamError):
        return "INTERNAL_ERROR"
    if isinstance(exc, (ValueError, TypeError)):
        return "INVALID_ARGUMENT"
    return "INTERNAL_ERROR"


def error_result(command_type: str, exc: BaseException) -> Result:
    out: Result = {
        "type": "error",
        "success": False,
        "commandType": command_type,
        "errorCode": error_code(exc),
        "message": str(exc) or type(exc).__name__,
    }
    status = getattr(typed_cause(exc), "status", None)
    if isinstance(exc, ds.DurableStreamError) and status is not None:
        out["status"] = status
    if out["errorCode"] == "INTERNAL_ERROR":
        log(f"{command_type} failed unexpectedly:\n{traceback.format_exc()}")
    return out


class NotSupported(Exception):
    """A command, operation or option this adapter does not implement."""


def not_supported(command_type: str, message: str) -> Result:
    return {
        "type": "error",
        "success": False,
        "commandType": command_type,
        "errorCode": "NOT_SUPPORTED",
        "message": message,
    }


# The runner names options in camelCase, the library in snake_case: a rejected option is named
# both ways in the message, so "maxRetries" finds the library's "max_retries must be >= 0".
OPTION_NAMES = {
    "max_retries": "maxRetries",
    "initial_delay": "initialDelayMs",
    "max_delay": "maxDelayMs",
    "multiplier": "multiplier",
    "epoch": "epoch",
    "max_batch_bytes": "maxBatchBytes",
    "max_batch_items": "maxBatchItems",
    "producer_id": "producerId",
}


def validation_message(exc: BaseException) -> str:
    text = str(exc)
    match = re.match(r"\s*(\w+)", text)
    if match and match.group(1) in OPTION_NAMES:
        return f"{OPTION_NAMES[match.group(1)]}: {text}"
    return text


# --- per-command plumbing ------------------------------------------------------------------------


class Dynamic:
    """A dynamic header or param: a value computed anew for every request."""

    def __init__(self, kind: str, initial: str | None = None) -> None:
        if kind not in ("counter", "timestamp", "token"):
            raise ValueError(f"valueType must be counter, timestamp or token, not {kind!r}")
        self.kind = kind
        self.counter = 0
        self.token = initial

    def next(self) -> str:
        if self.kind == "counter":
            self.counter += 1
            return str(self.counter)
        if self.kind == "timestamp":
            return str(time.time_ns() // 1_000_000)
        return self.token or ""


class RequestValues:
    """The headers and params of one command: its own headers over the dynamic ones, with the
    dynamic values actually sent recorded as the library evaluates them."""

    def __init__(
        self,
        dyn_headers: Mapping[str, Dynamic],
        dyn_params: Mapping[str, Dynamic],
        headers: Mapping[str, str] | None,
    ) -> None:
        self.headers_sent: dict[str, str] = {}
        self.params_sent: dict[str, str] = {}
        own = {str(k): str(v) for k, v in (headers or {}).items()}
        own_lower = {k.lower() for k in own}
        self.headers: dict[str, Any] = {
            name: self._tracked(value, self.headers_sent, name)
            for name, value in dyn_headers.items()
            if name.lower() not in own_lower
        }
        self.headers.update(own)
        self.params: dict[str, Any] = {
            name: self._tracked(value, self.params_sent, name) for name, value in dyn_params.items()
        }
        self.dynamic_headers = bool(dyn_headers)
        self.dynamic_params = bool(dyn_params)

    @staticmethod
    def _tracked(value: Dynamic, sent: dict[str, str], name: str) -> Callable[[], str]:
        def evaluate() -> str:
            text = value.next()
            sent[name] = text
            return text

        return evaluate

    def report(self, result: Result) -> Result:
        if self.dynamic_headers:
            result["headersSent"] = dict(self.headers_sent)
        if self.dynamic_params:
            result["paramsSent"] = dict(self.params_sent)
        return result


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def reader_kind(content_type: str | None) -> str:
    mt = media_type(content_type)
    if mt == "application/json":
        return "json"
    if mt.startswith("text/"):
        return "text"
    return "bytes"


def append_body(cmd: Mapping[str, Any]) -> bytes | str:
    data = cmd.get("data", "")
    if cmd.get("binary"):
        return base64.b64decode(data)
    return str(data)


def json_payload(size: int) -> bytes:
    """A JSON string value of exactly ``size`` bytes (at least 2)."""
    return b'"' + b"x" * max(size - 2, 0) + b'"'


class ReadState:
    """What a read command has gathered; shared by the sync and async drivers.

    ``record`` takes the data of one ``read_*`` call and says whether the read is over;
    ``finish`` freezes the state (a sync worker left behind after the deadline records
    nothing more)."""

    def __init__(self, cmd: Mapping[str, Any]) -> None:
        self.offset = str(cmd["offset"]) if cmd.get("offset") is not None else "-1"
        live = cmd.get("live", False)
        self.live: Any = live if live in (True, "long-poll", "sse") else False
        self.budget = float(cmd.get("timeoutMs") or DEFAULT_LIVE_TIMEOUT_MS) / 1000.0
        self.max_chunks = int(cmd.get("maxChunks") or DEFAULT_MAX_CHUNKS)
        self.wait_for_up_to_date = bool(cmd.get("waitForUpToDate", False))
        self.chunks: list[Result] = []
        self.status: int | None = None
        self.up_to_date = False
        self.closed = False
        self.cursor: str | None = None
        self.kind = "bytes"
        self.batches = 0
        self._lock = threading.Lock()
        self._frozen = False

    def opened(self, response: Any, cached_type: str | None) -> str:
        """The response is open; returns the content type that decides how to read it."""
        content_type = response.content_type or cached_type or DEFAULT_CONTENT_TYPE
        self.kind = reader_kind(content_type)
        with self._lock:
            if not self._frozen:
                self.status = response.status
        return content_type

    def record(self, data: Any, response: Any) -> bool:
        with self._lock:
            if self._frozen:
                return True
            chunk = self._chunk(data)
            if chunk is not None:
                chunk["offset"] = response.offset
                self.chunks.append(chunk)
            self.batches += 1
            self.status = response.status
            self.offset = response.offset
            self.cursor = response.cursor
            self.up_to_date = response.up_to_date
            self.closed = response.stream_closed
            return (
                self.closed
                or self.live is False
                or len(self.chunks) >= self.max_chunks
                or (self.wait_for_up_to_date and self.up_to_date)
            )

    def _chunk(self, data: Any) -> Result | None:
        if not data:
            return None
        if self.kind == "json":
            return {"data": json.dumps(data, separators=(",", ":"), ensure_ascii=False)}
        if isinstance(data, str):
            return {"data": data}
        try:
            return {"data": bytes(data).decode("utf-8")}
        except UnicodeDecodeError:
            return {"data": base64.b64encode(data).decode("ascii"), "binary": True}

    def finish(self, values: RequestValues, timed_out: bool) -> Result:
        with self._lock:
            self._frozen = True
            result: Result = {
                "type": "read",
                "success": True,
                "status": self.status if self.status is not None else 200,
                "chunks": list(self.chunks),
                "offset": self.offset,
                # A live read whose budget ran out is waiting at the tail: up to date.
                "upToDate": self.up_to_date or (timed_out and self.batches == 0),
                "streamClosed": self.closed,
            }
            if self.cursor is not None:
                result["cursor"] = self.cursor
            return values.report(result)


# --- the adapter ---------------------------------------------------------------------------------


class Adapter:
    """State and the parts of every command that do no I/O."""

    variant = "sync"

    def __init__(self) -> None:
        self.server_url = ""
        self.content_types: dict[str, str] = {}
        self.dyn_headers: dict[str, Dynamic] = {}
        self.dyn_params: dict[str, Dynamic] = {}
        # idempotent-* commands share one producer per (path, producer id, epoch), so its
        # sequence numbers continue from command to command, as in the reference adapters.
        self.producers: dict[tuple[str, str, int], Any] = {}

    def url(self, path: str) -> str:
        return f"{self.server_url}{path}"

    def values(self, cmd: Mapping[str, Any]) -> RequestValues:
        return RequestValues(self.dyn_headers, self.dyn_params, cmd.get("headers"))

    def reset(self, cmd: Mapping[str, Any]) -> None:
        self.server_url = str(cmd["serverUrl"]).rstrip("/")
        self.content_types.clear()
        self.dyn_headers.clear()
        self.dyn_params.clear()

    def init_result(self) -> Result:
        return {
            "type": "init",
            "success": True,
            "clientName": f"{CLIENT_NAME} ({self.variant}, {ds.IMPLEMENTATION} core)",
            "clientVersion": ds.__version__,
            "features": {
                "batching": True,
                "sse": True,
                "longPoll": True,
                "auto": True,
                "streaming": True,
                "dynamicHeaders": True,
                "retryOptions": True,
                "batchItems": True,
                "strictZeroValidation": True,
            },
        }

    def set_dynamic(self, cmd: Mapping[str, Any]) -> Result:
        kind = cmd["type"]
        value = Dynamic(str(cmd["valueType"]), cmd.get("initialValue"))
        target = self.dyn_headers if kind == "set-dynamic-header" else self.dyn_params
        target[str(cmd["name"])] = value
        return {"type": kind, "success": True}

    def clear_dynamic(self, cmd: Mapping[str, Any]) -> Result:
        self.dyn_headers.clear()
        self.dyn_params.clear()
        return {"type": "clear-dynamic", "success": True}

    def validate(self, cmd: Mapping[str, Any]) -> Result:
        target = dict(cmd.get("target") or {})
        kind = target.get("target")
        try:
            if kind == "retry-options":
                options: dict[str, Any] = {}
                if "maxRetries" in target:
                    options["max_retries"] = target["maxRetries"]
                if "initialDelayMs" in target:
                    options["initial_delay"] = target["initialDelayMs"] / 1000.0
                if "maxDelayMs" in target:
                    options["max_delay"] = target["maxDelayMs"] / 1000.0
                if "multiplier" in target:
                    options["multiplier"] = target["multiplier"]
                ds.RetryPolicy(**options)
            elif kind == "idempotent-producer":
                self.validate_producer(target)
            else:
                return not_supported("validate", f"unknown validation target {kind!r}")
        except NotSupported as exc:
            return not_supported("validate", str(exc))
        except (ValueError, TypeError) as exc:
            return {
                "type": "error",
                "success": False,
                "commandType": "validate",
                "errorCode": "INVALID_ARGUMENT",
                "message": validation_message(exc),
            }
        return {"type": "validate", "success": True}

    def validate_producer(self, target: Mapping[str, Any]) -> None:
        options: dict[str, Any] = {
            "producer_id": target.get("producerId", "test-producer"),
            "epoch": target.get("epoch", 0),
            "content_type": DEFAULT_CONTENT_TYPE,
        }
        if "maxBatchBytes" in target:
            options["max_batch_bytes"] = target["maxBatchBytes"]
        if "maxBatchItems" in target:
            options["max_batch_items"] = target["maxBatchItems"]
        # The async producer starts nothing until its first append: constructing it is the
        # whole validation, with no thread or event loop involved.
        ds.IdempotentProducer(self.url("/validate"), **options)

    def producer_options(self, cmd: Mapping[str, Any], values: RequestValues) -> dict[str, Any]:
        """The producer of an idempotent-* command, as the reference adapters configure it:
        no linger, one batch in flight. The cases re-send a batch from a new producer at the
        same epoch on purpose (client-deduplication-works) and expect success: a declared
        replay, in this client's terms."""
        path = str(cmd["path"])
        return {
            "producer_id": str(cmd["producerId"]),
            "epoch": int(cmd.get("epoch") or 0),
            "auto_claim": bool(cmd.get("autoClaim", False)),
            "replay": True,
            "linger_ms": 0,
            "max_in_flight": 1,
            "retry": RETRY,
            "content_type": self.content_types.get(path, DEFAULT_CONTENT_TYPE),
            "headers": values.headers,
            "params": values.params,
        }

    @staticmethod
    def producer_key(cmd: Mapping[str, Any]) -> tuple[str, str, int]:
        return (str(cmd["path"]), str(cmd["producerId"]), int(cmd.get("epoch") or 0))

    @staticmethod
    def batch_options(cmd: Mapping[str, Any]) -> dict[str, Any]:
        """idempotent-append-batch: with maxInFlight > 1, one message per batch, so that
        several requests are on the way at once (the case is about their retries)."""
        max_in_flight = int(cmd.get("maxInFlight") or 1)
        options: dict[str, Any] = {"max_in_flight": max_in_flight}
        if max_in_flight > 1:
            options["max_batch_bytes"] = 1
        return options

    def remember_type(self, path: str, content_type: str | None) -> None:
        if content_type:
            self.content_types[path] = content_type


# The fields a command cannot do without; a command lacking one is answered INVALID_ARGUMENT.
REQUIRED = {
    "init": ("serverUrl",),
    "create": ("path",),
    "connect": ("path",),
    "append": ("path", "data"),
    "read": ("path",),
    "head": ("path",),
    "delete": ("path",),
    "close": ("path",),
    "idempotent-append": ("path", "data", "producerId"),
    "idempotent-append-batch": ("path", "items", "producerId"),
    "idempotent-close": ("path", "producerId"),
    "idempotent-detach": ("path", "producerId"),
    "set-dynamic-header": ("name", "valueType"),
    "set-dynamic-param": ("name", "valueType"),
    "validate": ("target",),
    "benchmark": ("operation",),
}


def missing_fields(cmd: Mapping[str, Any]) -> Result | None:
    kind = str(cmd.get("type"))
    missing = [name for name in REQUIRED.get(kind, ()) if cmd.get(name) is None]
    if not missing:
        return None
    return {
        "type": "error",
        "success": False,
        "commandType": kind,
        "errorCode": "INVALID_ARGUMENT",
        "message": f"{kind} needs {', '.join(missing)}",
    }


def unknown(cmd: Mapping[str, Any]) -> Result:
    return not_supported(str(cmd.get("type")), f"unknown command type {cmd.get('type')!r}")


class SyncAdapter(Adapter):
    """Drives the synchronous API."""

    variant = "sync"

    def __init__(self) -> None:
        super().__init__()
        self.client: httpx.Client | None = None

    # -- plumbing ------------------------------------------------------------------------------

    def http(self) -> httpx.Client:
        if self.client is None:
            self.client = httpx.Client(limits=LIMITS)
        return self.client

    def handle(
        self,
        path: str,
        values: RequestValues | None = None,
        content_type: str | None = None,
    ) -> ds.DurableStream:
        return ds.DurableStream(
            self.url(path),
            content_type=content_type or self.content_types.get(path),
            headers=values.headers if values else None,
            params=values.params if values else None,
            client=self.http(),
            retry=RETRY,
        )

    def close_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def dispatch(self, cmd: Mapping[str, Any]) -> Result:
        kind = str(cmd.get("type"))
        method = getattr(self, "cmd_" + kind.replace("-", "_"), None)
        if method is None:
            return unknown(cmd)
        invalid = missing_fields(cmd)
        if invalid is not None:
            return invalid
        try:
            result: Result = method(cmd)
        except NotSupported as exc:
            return not_supported(kind, str(exc))
        except Exception as exc:
            return error_result(kind, exc)
        return result

    # -- commands ------------------------------------------------------------------------------

    def cmd_init(self, cmd: Mapping[str, Any]) -> Result:
        self.close_producers()
        self.close_client()
        self.reset(cmd)
        return self.init_result()

    def cmd_shutdown(self, cmd: Mapping[str, Any]) -> Result:
        self.close_producers()
        self.close_client()
        return {"type": "shutdown", "success": True}

    def cmd_set_dynamic_header(self, cmd: Mapping[str, Any]) -> Result:
        return self.set_dynamic(cmd)

    def cmd_set_dynamic_param(self, cmd: Mapping[str, Any]) -> Result:
        return self.set_dynamic(cmd)

    def cmd_clear_dynamic(self, cmd: Mapping[str, Any]) -> Result:
        return self.clear_dynamic(cmd)

    def cmd_validate(self, cmd: Mapping[str, Any]) -> Result:
        return self.validate(cmd)

    def cmd_create(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        content_type = cmd.get("contentType") or DEFAULT_CONTENT_TYPE
        values = self.values(cmd)
        handle = ds.DurableStream.create(
            self.url(path),
            content_type=content_type,
            ttl_seconds=cmd.get("ttlSeconds"),
            expires_at=cmd.get("expiresAt"),
            data=cmd.get("data"),
            closed=bool(cmd.get("closed", False)),
            headers=values.headers,
            params=values.params,
            client=self.http(),
            retry=RETRY,
        )
        handle.close()
        self.remember_type(path, content_type)
        return {"type": "create", "success": True, "status": 201 if handle.created else 200}

    def cmd_connect(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        values = self.values(cmd)
        handle = ds.DurableStream.connect(
            self.url(path),
            headers=values.headers,
            params=values.params,
            client=self.http(),
            retry=RETRY,
        )
        self.remember_type(path, handle.content_type)
        return {"type": "connect", "success": True, "status": 200}

    def cmd_head(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        info = self.handle(path, self.values(cmd)).head()
        self.remember_type(path, info.content_type)
        return head_result(info)

    def cmd_append(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        values = self.values(cmd)
        seq = cmd.get("seq")
        answer = self.handle(path, values).append(
            append_body(cmd), seq=None if seq is None else str(seq)
        )
        return values.report(append_result(answer))

    def cmd_delete(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        self.handle(path, self.values(cmd)).delete()
        self.content_types.pop(path, None)
        return {"type": "delete", "success": True, "status": 200}

    def cmd_close(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        handle = self.handle(path, self.values(cmd), cmd.get("contentType"))
        answer = handle.close_stream(cmd.get("data"))
        return close_result(answer)

    def cmd_read(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        values = self.values(cmd)
        state = ReadState(cmd)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self.read_into(state, path, values)
            except BaseException as exc:
                failure.append(exc)

        if state.live is False:
            run()
            timed_out = False
        else:
            # WORKAROUND: a sync read cannot be given a deadline for the whole read, so the
            # read runs in a worker thread that is left behind when the budget is spent; it
            # ends at its next up-to-date batch and records nothing more.
            worker = threading.Thread(target=run, name="adapter-read", daemon=True)
            worker.start()
            worker.join(state.budget)
            timed_out = worker.is_alive()
        if failure and not timed_out:
            raise failure[0]
        return state.finish(values, timed_out)

    def read_into(self, state: ReadState, path: str, values: RequestValues) -> None:
        with ds.stream(
            self.url(path),
            offset=state.offset,
            live=state.live,
            headers=values.headers,
            params=values.params,
            client=self.http(),
            retry=RETRY,
        ) as response:
            content_type = state.opened(response, self.content_types.get(path))
            self.remember_type(path, content_type)
            # read_json / read_text / read_bytes: everything up to the next up-to-date batch
            read: Callable[[], Any] = getattr(response, f"read_{state.kind}")
            while not state.record(read(), response):
                pass

    # -- idempotent producer -------------------------------------------------------------------

    def producer(self, cmd: Mapping[str, Any], **extra: Any) -> ds.SyncIdempotentProducer:
        options = self.producer_options(cmd, self.values(cmd))
        options.update(extra)
        return ds.SyncIdempotentProducer(self.url(str(cmd["path"])), **options)

    def cached_producer(self, cmd: Mapping[str, Any]) -> ds.SyncIdempotentProducer:
        key = self.producer_key(cmd)
        producer = self.producers.get(key)
        if producer is None:
            producer = self.producers[key] = self.producer(cmd)
        return producer

    def close_producers(self) -> None:
        producers, self.producers = list(self.producers.values()), {}
        for producer in producers:
            try:
                producer.close(timeout=5.0)
            except ds.DurableStreamError as exc:
                log(f"closing a left-over producer: {exc}")

    def cmd_idempotent_append(self, cmd: Mapping[str, Any]) -> Result:
        producer = self.cached_producer(cmd)
        ack = producer.append(cmd["data"])
        producer.flush(timeout=30.0)
        return producer_append_result(ack.result(timeout=30.0))

    def cmd_idempotent_append_batch(self, cmd: Mapping[str, Any]) -> Result:
        producer = self.producer(cmd, **self.batch_options(cmd))
        try:
            producer.append_many_nowait(cmd["items"])
            producer.flush(timeout=30.0)
        except BaseException:
            with contextlib.suppress(ds.DurableStreamError):
                producer.close(timeout=5.0)
            raise
        producer.close(timeout=30.0)
        return batch_result(producer.epoch, producer.next_seq)

    def cmd_idempotent_close(self, cmd: Mapping[str, Any]) -> Result:
        producer = self.cached_producer(cmd)
        answer = producer.close_stream(cmd.get("data"), timeout=30.0)
        return {
            "type": "idempotent-close",
            "success": True,
            "status": 200,
            "finalOffset": answer.offset,
        }

    def cmd_idempotent_detach(self, cmd: Mapping[str, Any]) -> Result:
        producer = self.producers.pop(self.producer_key(cmd), None) or self.producer(cmd)
        producer.close(timeout=30.0)
        return {"type": "idempotent-detach", "success": True, "status": 200}

    def cmd_benchmark(self, cmd: Mapping[str, Any]) -> Result:
        operation = dict(cmd["operation"])
        op = operation.get("op")
        method = getattr(self, f"bench_{op}", None)
        if method is None:
            return not_supported("benchmark", f"unknown benchmark operation {op!r}")
        start = time.perf_counter_ns()
        metrics: dict[str, Any] = method(operation)
        duration = time.perf_counter_ns() - start
        return bench_result(cmd, duration, metrics)

    def bench_append(self, op: Mapping[str, Any]) -> dict[str, Any]:
        size = int(op["size"])
        self.handle(str(op["path"])).append(b"*" * size)
        return {"bytesTransferred": size}

    def bench_read(self, op: Mapping[str, Any]) -> dict[str, Any]:
        with ds.stream(
            self.url(str(op["path"])),
            offset=str(op.get("offset") or "-1"),
            client=self.http(),
            retry=RETRY,
        ) as response:
            data = response.read_bytes()
        return {"bytesTransferred": len(data)}

    def bench_create(self, op: Mapping[str, Any]) -> dict[str, Any]:
        path = str(op["path"])
        content_type = op.get("contentType") or DEFAULT_CONTENT_TYPE
        ds.DurableStream.create(
            self.url(path), content_type=content_type, client=self.http(), retry=RETRY
        ).close()
        self.remember_type(path, content_type)
        return {}

    def bench_roundtrip(self, op: Mapping[str, Any]) -> dict[str, Any]:
        path = str(op["path"])
        size = int(op["size"])
        content_type = op.get("contentType") or DEFAULT_CONTENT_TYPE
        handle = ds.DurableStream.create(
            self.url(path), content_type=content_type, client=self.http(), retry=RETRY
        )
        got: list[int] = []
        failure: list[BaseException] = []

        def tail() -> None:
            try:
                with handle.stream(live=op.get("live") or "long-poll", retry=RETRY) as response:
                    for event in response.iter_events():
                        got.append(len(event.data) if hasattr(event.data, "__len__") else 1)
                        return
            except BaseException as exc:
                failure.append(exc)

        reader = threading.Thread(target=tail, name="adapter-roundtrip", daemon=True)
        reader.start()
        payload = json_payload(size) if reader_kind(content_type) == "json" else b"*" * size
        handle.append(payload)
        reader.join(30.0)
        if failure:
            raise failure[0]
        if not got:
            raise ds.DeadlineExceededError("the live read saw no data within 30 s", url=handle.url)
        return {"bytesTransferred": size + got[0]}

    def bench_throughput_append(self, op: Mapping[str, Any]) -> dict[str, Any]:
        path, count, size = str(op["path"]), int(op["count"]), int(op["size"])
        content_type = self.content_types.get(path, DEFAULT_CONTENT_TYPE)
        with contextlib.suppress(ds.StreamExistsError):
            ds.DurableStream.create(
                self.url(path), content_type=content_type, client=self.http(), retry=RETRY
            ).close()
        payload = json_payload(size) if reader_kind(content_type) == "json" else b"*" * size
        with ds.SyncIdempotentProducer(
            self.url(path), **throughput_options(op, content_type)
        ) as producer:
            for _ in range(count):
                try:
                    producer.append_nowait(payload)
                except ds.BufferFullError:
                    producer.append(payload, timeout=60.0)
            producer.flush(timeout=60.0)
        return {"messagesProcessed": count, "bytesTransferred": count * size}

    def bench_throughput_read(self, op: Mapping[str, Any]) -> dict[str, Any]:
        messages: list[Any] = []
        start = time.perf_counter_ns()
        with ds.stream(self.url(str(op["path"])), client=self.http(), retry=RETRY) as response:
            messages.extend(response.iter_json())
        elapsed = time.perf_counter_ns() - start
        return {"messagesProcessed": len(messages), "_elapsed": elapsed, "_messages": messages}


class AsyncAdapter(Adapter):
    """Drives the asynchronous API (under asyncio, through anyio)."""

    variant = "async"

    def __init__(self) -> None:
        super().__init__()
        self.client: httpx.AsyncClient | None = None

    def http(self) -> httpx.AsyncClient:
        if self.client is None:
            self.client = httpx.AsyncClient(limits=LIMITS)
        return self.client

    def handle(
        self,
        path: str,
        values: RequestValues | None = None,
        content_type: str | None = None,
    ) -> ds.AsyncDurableStream:
        return ds.AsyncDurableStream(
            self.url(path),
            content_type=content_type or self.content_types.get(path),
            headers=values.headers if values else None,
            params=values.params if values else None,
            client=self.http(),
            retry=RETRY,
        )

    async def close_client(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def dispatch(self, cmd: Mapping[str, Any]) -> Result:
        kind = str(cmd.get("type"))
        method = getattr(self, "cmd_" + kind.replace("-", "_"), None)
        if method is None:
            return unknown(cmd)
        invalid = missing_fields(cmd)
        if invalid is not None:
            return invalid
        try:
            result: Result = await method(cmd)
        except NotSupported as exc:
            return not_supported(kind, str(exc))
        except Exception as exc:
            return error_result(kind, exc)
        return result

    # -- commands ------------------------------------------------------------------------------

    async def cmd_init(self, cmd: Mapping[str, Any]) -> Result:
        await self.close_producers()
        await self.close_client()
        self.reset(cmd)
        return self.init_result()

    async def cmd_shutdown(self, cmd: Mapping[str, Any]) -> Result:
        await self.close_producers()
        await self.close_client()
        return {"type": "shutdown", "success": True}

    async def cmd_set_dynamic_header(self, cmd: Mapping[str, Any]) -> Result:
        return self.set_dynamic(cmd)

    async def cmd_set_dynamic_param(self, cmd: Mapping[str, Any]) -> Result:
        return self.set_dynamic(cmd)

    async def cmd_clear_dynamic(self, cmd: Mapping[str, Any]) -> Result:
        return self.clear_dynamic(cmd)

    async def cmd_validate(self, cmd: Mapping[str, Any]) -> Result:
        return self.validate(cmd)

    async def cmd_create(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        content_type = cmd.get("contentType") or DEFAULT_CONTENT_TYPE
        values = self.values(cmd)
        handle = await ds.AsyncDurableStream.create(
            self.url(path),
            content_type=content_type,
            ttl_seconds=cmd.get("ttlSeconds"),
            expires_at=cmd.get("expiresAt"),
            data=cmd.get("data"),
            closed=bool(cmd.get("closed", False)),
            headers=values.headers,
            params=values.params,
            client=self.http(),
            retry=RETRY,
        )
        await handle.aclose()
        self.remember_type(path, content_type)
        return {"type": "create", "success": True, "status": 201 if handle.created else 200}

    async def cmd_connect(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        values = self.values(cmd)
        handle = await ds.AsyncDurableStream.connect(
            self.url(path),
            headers=values.headers,
            params=values.params,
            client=self.http(),
            retry=RETRY,
        )
        self.remember_type(path, handle.content_type)
        return {"type": "connect", "success": True, "status": 200}

    async def cmd_head(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        info = await self.handle(path, self.values(cmd)).head()
        self.remember_type(path, info.content_type)
        return head_result(info)

    async def cmd_append(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        values = self.values(cmd)
        seq = cmd.get("seq")
        answer = await self.handle(path, values).append(
            append_body(cmd), seq=None if seq is None else str(seq)
        )
        return values.report(append_result(answer))

    async def cmd_delete(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        await self.handle(path, self.values(cmd)).delete()
        self.content_types.pop(path, None)
        return {"type": "delete", "success": True, "status": 200}

    async def cmd_close(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        handle = self.handle(path, self.values(cmd), cmd.get("contentType"))
        answer = await handle.close_stream(cmd.get("data"))
        return close_result(answer)

    async def cmd_read(self, cmd: Mapping[str, Any]) -> Result:
        path = str(cmd["path"])
        values = self.values(cmd)
        state = ReadState(cmd)
        budget = None if state.live is False else state.budget
        # The response is closed outside the cancel scope, so a read cut short by the budget
        # still closes its connection cleanly.
        async with contextlib.AsyncExitStack() as stack:
            with anyio.move_on_after(budget) as scope:
                response = await stack.enter_async_context(
                    ds.astream(
                        self.url(path),
                        offset=state.offset,
                        live=state.live,
                        headers=values.headers,
                        params=values.params,
                        client=self.http(),
                        retry=RETRY,
                    )
                )
                content_type = state.opened(response, self.content_types.get(path))
                self.remember_type(path, content_type)
                read: Callable[[], Any] = getattr(response, f"read_{state.kind}")
                while not state.record(await read(), response):
                    pass
        return state.finish(values, scope.cancelled_caught)

    # -- idempotent producer -------------------------------------------------------------------

    def producer(self, cmd: Mapping[str, Any], **extra: Any) -> ds.IdempotentProducer:
        options = self.producer_options(cmd, self.values(cmd))
        options.update(extra)
        return ds.IdempotentProducer(self.url(str(cmd["path"])), client=self.http(), **options)

    def cached_producer(self, cmd: Mapping[str, Any]) -> ds.IdempotentProducer:
        key = self.producer_key(cmd)
        producer = self.producers.get(key)
        if producer is None:
            producer = self.producers[key] = self.producer(cmd)
        return producer

    async def close_producers(self) -> None:
        producers, self.producers = list(self.producers.values()), {}
        for producer in producers:
            try:
                await producer.close(timeout=5.0)
            except ds.DurableStreamError as exc:
                log(f"closing a left-over producer: {exc}")

    async def cmd_idempotent_append(self, cmd: Mapping[str, Any]) -> Result:
        producer = self.cached_producer(cmd)
        ack = await producer.append(cmd["data"])
        await producer.flush(timeout=30.0)
        return producer_append_result(await ack)

    async def cmd_idempotent_append_batch(self, cmd: Mapping[str, Any]) -> Result:
        producer = self.producer(cmd, **self.batch_options(cmd))
        try:
            producer.append_many_nowait(cmd["items"])
            await producer.flush(timeout=30.0)
        except BaseException:
            with contextlib.suppress(ds.DurableStreamError):
                await producer.close(timeout=5.0)
            raise
        await producer.close(timeout=30.0)
        return batch_result(producer.epoch, producer.next_seq)

    async def cmd_idempotent_close(self, cmd: Mapping[str, Any]) -> Result:
        producer = self.cached_producer(cmd)
        answer = await producer.close_stream(cmd.get("data"), timeout=30.0)
        return {
            "type": "idempotent-close",
            "success": True,
            "status": 200,
            "finalOffset": answer.offset,
        }

    async def cmd_idempotent_detach(self, cmd: Mapping[str, Any]) -> Result:
        producer = self.producers.pop(self.producer_key(cmd), None) or self.producer(cmd)
        await producer.close(timeout=30.0)
        return {"type": "idempotent-detach", "success": True, "status": 200}

    async def cmd_benchmark(self, cmd: Mapping[str, Any]) -> Result:
        operation = dict(cmd["operation"])
        op = operation.get("op")
        method = getattr(self, f"bench_{op}", None)
        if method is None:
            return not_supported("benchmark", f"unknown benchmark operation {op!r}")
        start = time.perf_counter_ns()
        metrics: dict[str, Any] = await method(operation)
        duration = time.perf_counter_ns() - start
        return bench_result(cmd, duration, metrics)

    async def bench_append(self, op: Mapping[str, Any]) -> dict[str, Any]:
        size = int(op["size"])
        await self.handle(str(op["path"])).append(b"*" * size)
        return {"bytesTransferred": size}

    async def bench_read(self, op: Mapping[str, Any]) -> dict[str, Any]:
        async with ds.astream(
            self.url(str(op["path"])),
            offset=str(op.get("offset") or "-1"),
            client=self.http(),
            retry=RETRY,
        ) as response:
            data = await response.read_bytes()
        return {"bytesTransferred": len(data)}

    async def bench_create(self, op: Mapping[str, Any]) -> dict[str, Any]:
        path = str(op["path"])
        content_type = op.get("contentType") or DEFAULT_CONTENT_TYPE
        handle = await ds.AsyncDurableStream.create(
            self.url(path), content_type=content_type, client=self.http(), retry=RETRY
        )
        await handle.aclose()
        self.remember_type(path, content_type)
        return {}

    async def bench_roundtrip(self, op: Mapping[str, Any]) -> dict[str, Any]:
        path = str(op["path"])
        size = int(op["size"])
        content_type = op.get("contentType") or DEFAULT_CONTENT_TYPE
        handle = await ds.AsyncDurableStream.create(
            self.url(path), content_type=content_type, client=self.http(), retry=RETRY
        )
        got: list[int] = []

        async def tail() -> None:
            async with handle.stream(live=op.get("live") or "long-poll", retry=RETRY) as response:
                async for event in response.iter_events():
                    got.append(len(event.data) if hasattr(event.data, "__len__") else 1)
                    return

        payload = json_payload(size) if reader_kind(content_type) == "json" else b"*" * size
        with anyio.fail_after(30.0):
            async with anyio.create_task_group() as group:
                group.start_soon(tail)
                await handle.append(payload)
        return {"bytesTransferred": size + got[0]}

    async def bench_throughput_append(self, op: Mapping[str, Any]) -> dict[str, Any]:
        path, count, size = str(op["path"]), int(op["count"]), int(op["size"])
        content_type = self.content_types.get(path, DEFAULT_CONTENT_TYPE)
        with contextlib.suppress(ds.StreamExistsError):
            handle = await ds.AsyncDurableStream.create(
                self.url(path), content_type=content_type, client=self.http(), retry=RETRY
            )
            await handle.aclose()
        payload = json_payload(size) if reader_kind(content_type) == "json" else b"*" * size
        async with ds.IdempotentProducer(
            self.url(path), client=self.http(), **throughput_options(op, content_type)
        ) as producer:
            for _ in range(count):
                try:
                    producer.append_nowait(payload)
                except ds.BufferFullError:
                    await producer.append(payload)
            await producer.flush(timeout=60.0)
        return {"messagesProcessed": count, "bytesTransferred": count * size}

    async def bench_throughput_read(self, op: Mapping[str, Any]) -> dict[str, Any]:
        messages: list[Any] = []
        start = time.perf_counter_ns()
        async with ds.astream(
            self.url(str(op["path"])), client=self.http(), retry=RETRY
        ) as response:
            async for message in response.iter_json():
                messages.append(message)
        elapsed = time.perf_counter_ns() - start
        return {"messagesProcessed": len(messages), "_elapsed": elapsed, "_messages": messages}


# --- result shapes -------------------------------------------------------------------------------


def head_result(info: ds.HeadResult) -> Result:
    result: Result = {
        "type": "head",
        "success": True,
        "status": 200,
        "offset": info.offset,
        "contentType": info.content_type,
        "streamClosed": info.closed,
    }
    if info.ttl_seconds is not None:
        result["ttlSeconds"] = info.ttl_seconds
    if info.expires_at is not None:
        result["expiresAt"] = info.expires_at
    return result


def append_result(answer: ds.AppendResult) -> Result:
    return {"type": "append", "success": True, "status": 200, "offset": answer.offset}


def close_result(answer: ds.AppendResult) -> Result:
    return {"type": "close", "success": True, "status": 200, "finalOffset": answer.offset}


def producer_append_result(answer: ds.AppendResult) -> Result:
    result: Result = {
        "type": "idempotent-append",
        "success": True,
        "status": 200,
        "offset": answer.offset,
        "duplicate": answer.duplicate,
    }
    if answer.producer_seq is not None:
        result["producerSeq"] = answer.producer_seq
    return result


def batch_result(epoch: int, next_seq: int) -> Result:
    result: Result = {"type": "idempotent-append-batch", "success": True, "status": 200}
    if next_seq > 0:
        result["producerSeq"] = next_seq - 1
    return result


def throughput_options(op: Mapping[str, Any], content_type: str) -> dict[str, Any]:
    """A producer for throughput_append: no linger, as many requests in flight as the
    scenario's concurrency allows (within reason), a fresh producer id per iteration."""
    concurrency = int(op.get("concurrency") or 5)
    return {
        "producer_id": f"bench-{uuid.uuid4().hex}",
        "content_type": content_type,
        "linger_ms": 0,
        "max_in_flight": max(1, min(concurrency, 32)),
        "retry": RETRY,
    }


def bench_result(cmd: Mapping[str, Any], duration_ns: int, metrics: dict[str, Any]) -> Result:
    messages = metrics.pop("_messages", None)
    elapsed = metrics.pop("_elapsed", None)
    if messages is not None:
        # throughput_read: the bytes are counted after the clock stopped (the read itself,
        # parse included, is what is timed).
        duration_ns = elapsed if elapsed is not None else duration_ns
        metrics["bytesTransferred"] = sum(
            len(json.dumps(m, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
            for m in messages
        )
    seconds = max(duration_ns, 1) / 1e9
    if "messagesProcessed" in metrics:
        metrics["opsPerSecond"] = metrics["messagesProcessed"] / seconds
    if "bytesTransferred" in metrics:
        metrics["bytesPerSecond"] = metrics["bytesTransferred"] / seconds
    return {
        "type": "benchmark",
        "success": True,
        "iterationId": cmd.get("iterationId"),
        "durationNs": str(duration_ns),
        "metrics": metrics,
    }


# --- the line protocol ---------------------------------------------------------------------------


def parse_line(line: str) -> tuple[dict[str, Any] | None, Result | None]:
    """The command on ``line``, or the error result to answer instead."""
    try:
        cmd = json.loads(line)
        if not isinstance(cmd, dict) or not isinstance(cmd.get("type"), str):
            raise ValueError("a command is a JSON object with a string 'type'")
    except ValueError as exc:
        return None, {
            "type": "error",
            "success": False,
            "commandType": "unknown",
            "errorCode": "PARSE_ERROR",
            "message": f"cannot parse the command line: {exc}",
        }
    return cmd, None


def emit(result: Result) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def run_sync() -> None:
    adapter = SyncAdapter()
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd, failure = parse_line(line)
        if cmd is None:
            assert failure is not None
            emit(failure)
            continue
        emit(adapter.dispatch(cmd))
        if cmd["type"] == "shutdown":
            return
    adapter.close_client()


async def run_async() -> None:
    adapter = AsyncAdapter()
    try:
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                return
            if not line.strip():
                continue
            cmd, failure = parse_line(line)
            if cmd is None:
                assert failure is not None
                emit(failure)
                continue
            emit(await adapter.dispatch(cmd))
            if cmd["type"] == "shutdown":
                return
    finally:
        await adapter.close_client()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--async", dest="use_async", action="store_true", help="the async API")
    args = parser.parse_args(argv)
    api = "async" if args.use_async else "sync"
    log(f"durable_streams {ds.__version__}, {ds.IMPLEMENTATION} core, {api} API")
    if args.use_async:
        anyio.run(run_async)
    else:
        run_sync()


if __name__ == "__main__":
    main()
