"""The reader's state machine, free of I/O.

A :class:`ReadSession` says which request to send next, interprets each response's status and
headers, turns body bytes into :class:`Batch` es through the core (native or pure), and decides
whether a failure is retried. The sync and async drivers are short loops around it.

Exactly-once delivery rests on one rule: a batch is handed out only together with the offset
that follows it. For catch-up and long-poll that is the response's ``Stream-Next-Offset``; over
SSE the data events are held until the ``control`` event after them, and data whose control
event never arrived is dropped, because the reconnect at the committed offset sends it again.
A body longer than :data:`BODY_BATCH_BYTES` is the exception: its batches go out while it
arrives, at the offset before it, and the session counts what went out, so that a body at the
same offset after a reconnect skips exactly that. A JSON body goes out in batches of about that
many bytes however much arrives at once (a gzip chunk can inflate to megabytes), one at a time:
the drivers hand each out before asking for the next, so a batch's messages are gone before
the next batch's are built, and they die young, before the collector's older generations see
them.

A failed request or connection ends in :meth:`ReadSession.retry_delay`, which also takes what
the reader's ``on_error`` hook decided: nothing (:data:`None`), a :class:`RetryAction` or
:data:`STOP`. A connection that broke after the server answered and sent data is retried at
once, not after a growing wait: a reader behind a stream that is being written would otherwise
ask for a longer answer after each wait, one even more likely to be cut. An SSE catch-up burst
carries one control event at its end, so a cut anywhere in it commits nothing; after such a
cut the reader takes the backlog with catch-up requests, then goes back to SSE."""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .. import _core, telemetry
from .. import _errors as errors
from .._log import log
from .._protocol import (
    H_CLOSED,
    H_CURSOR,
    H_NEXT_OFFSET,
    H_SSE_ENCODING,
    H_UP_TO_DATE,
    OFFSET_NOW,
    HttpRequest,
    error_for_status,
    header_true,
    is_json_content_type,
    is_transient_status,
    media_type,
    retry_after_seconds,
    sse_data_is_text,
)
from .._retry import (
    RetryPolicy,
    RetryState,
    action_values,
    note_retries_spent,
    replace_headers,
)
from .._transport._exchange import body_too_large
from .._values import (
    STOP,
    ErrorDecision,
    LiveMode,
    Mode,
    ReaderStats,
    RetryAction,
    SseFallback,
)

ConsumerKind = Literal["json", "json-raw", "bytes", "text"]


# How each kind is read, in the words of the API.
READ_AS: dict[ConsumerKind | None, str] = {
    "json": "iter_json(), read_json() or iter_events()",
    "json-raw": "a decode= hook",
    "bytes": "iter_bytes(), read_bytes() or iter_events()",
    "text": "iter_text() or read_text()",
}


ResponseKind = Literal["body", "sse", "empty", "error"]


JSON_KINDS: set[ConsumerKind | None] = {"json", "json-raw"}


DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


# The reference server answers a catch-up read with the whole stream in one body, which is
# read in batches as it arrives: the cap guards against a server sending without end.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024 * 1024


# A body longer than this is handed out in batches before it ends, a JSON one in batches of
# about this size; a shorter one as one batch once it ended, with the offset after it.
# About 200 small messages (400 dicts for messages with one nested object): parsed while in
# the CPU's cache, and handed out and dropped before the collector's first generation fills
# (700 containers by default), so a reader that keeps nothing runs no collection at all and
# one that keeps messages has only a batch of young objects to look at in each. Batches of
# megabytes cost three times the CPU per message: full collections over the batch still
# alive, and page faults as the allocator maps and unmaps arenas for them.
BODY_BATCH_BYTES = 16 * 1024


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a live tail
class Batch:
    """What one response (or one SSE control event) delivered, and where the stream stands after.

    ``data`` is a list of messages for the ``json``/``json-raw`` consumers, else bytes or str.
    ``partial``: a part of a long body handed out before the body ended, at the offset before
    it; the body's last batch carries the offset after all its parts.
    """

    data: Any
    offset: str
    cursor: str | None
    up_to_date: bool
    closed: bool
    partial: bool = False


"""What an ``on_error`` hook returns to give up: the error is raised now, without retrying."""


def _empty_data(kind: ConsumerKind) -> Any:
    if kind == "bytes":
        return b""
    if kind == "text":
        return ""
    return []


class ReadSession:
    """Where a reader stands and what it asks next; no I/O."""

    def __init__(
        self,
        url: str,
        *,
        offset: str,
        live: LiveMode,
        cursor: str | None = None,
        retry: RetryPolicy | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        json: bool = False,
        sse_fallback: SseFallback | bool = True,
    ) -> None:
        if live not in (False, True, "long-poll", "sse"):
            raise ValueError(f"live must be False, True, 'long-poll' or 'sse', not {live!r}")
        if not isinstance(offset, str) or not offset:
            raise ValueError(f"offset must be a non-empty string, not {offset!r}")
        if max_event_bytes <= 0 or max_body_bytes <= 0:
            raise ValueError("max_event_bytes and max_body_bytes must be positive")
        self.url = url
        self.live: LiveMode = live
        self.offset = offset
        self.cursor = cursor
        self.up_to_date = False
        self.closed = False
        self.content_type: str | None = None
        self.status: int | None = None
        self.headers: Mapping[str, str] = {}
        self.max_event_bytes = max_event_bytes
        self.max_body_bytes = max_body_bytes
        # The caller says the stream is JSON whatever its content type (a server that sends
        # JSON arrays under text/plain or a vendor type).
        self.json_hint = bool(json)
        if sse_fallback is True:
            sse_fallback = SseFallback()
        elif sse_fallback is not False and not isinstance(sse_fallback, SseFallback):
            raise TypeError(f"sse_fallback must be a bool or an SseFallback, not {sse_fallback!r}")
        self._sse_fallback: SseFallback | None = sse_fallback or None
        # When the SSE answer being read began, and how many in a row ended too soon.
        self._sse_began: float | None = None
        self._short_sse = 0
        self.sse_fell_back = False
        self.consumer: ConsumerKind = "bytes"
        self._retry = RetryState(retry or (RetryPolicy.live() if live else RetryPolicy()))
        self._mode: Mode = self._first_mode()
        self._current: Mode = self._mode
        self._decoder: Any = None
        self._decoder_kind: ConsumerKind | None = None
        self._pending: list[Any] = []
        self._held: errors.DurableStreamError | None = None
        self._controls_seen = 0
        self._text_decoder: codecs.IncrementalDecoder | None = None
        self.text_encoding = "utf-8"
        self._requested_offset = offset
        # _bytes_received when the request in flight was made: whether its answer sent data.
        self._bytes_at_request = 0
        # The offset at which an SSE reader last took a cut burst's backlog by catch-up requests.
        self._fallback_offset: str | None = None
        self._override_headers: dict[str, str] = {}
        self._override_params: dict[str, str] = {}
        # The body being read: its consumer kind (None: not started), JSON reader, the chunk
        # being fed to that reader a piece at a time and how far, bytes waiting to form a
        # batch, bytes received, and units (messages, or bytes) read in it.
        self._body_kind: ConsumerKind | None = None
        self._body_reader: Any = None
        self._body_chunk = b""
        self._body_at = 0
        self._body_pending: list[bytes] = []
        self._body_pending_bytes = 0
        self._body_received = 0
        self._body_units = 0
        # Units of a body at the current offset already handed out in batches before the
        # body ended: a body at the same offset after a reconnect skips that many.
        self._produced = 0
        self._produced_kind: ConsumerKind | None = None
        # For stats(): cheap counters, and when the reader last changed between behind and up
        # to date (a reader that has not caught up yet has been behind since it started).
        self._requests = 0
        self._retries = 0
        self._batches = 0
        self._messages = 0
        self._bytes_received = 0
        self._up_to_date_changed = time.monotonic()
        telemetry.readers.add(self)

    # -- what to ask -------------------------------------------------------------------------

    def _first_mode(self) -> Mode:
        # SSE responses do not say the stream's content type, which decides how data events
        # decode, so SSE readers start with one catch-up request as well.
        if self.live == "long-poll" and self.offset == OFFSET_NOW:
            return "long-poll"
        return "catch-up"

    @property
    def done(self) -> bool:
        """No request is left to make: EOF of a closed stream, or caught up when not live."""
        return self.closed or (self.live is False and self.up_to_date)

    @property
    def mode(self) -> Mode:
        return self._mode

    def request(
        self,
        headers: Mapping[str, str],
        params: Mapping[str, str],
    ) -> HttpRequest:
        """The next GET, with query parameters in sorted order so CDN cache keys are stable."""
        held = self._produced_kind
        # A body's messages are counted alike whether they were decoded or kept raw.
        if self._produced and held != self.consumer and {held, self.consumer} != JSON_KINDS:
            raise errors.DurableStreamError(
                f"part of the answer at this offset went out to {READ_AS[held]}; read the rest "
                f"of it that way before reading with {READ_AS[self.consumer]}",
                url=self.url,
                offset=self.offset,
            )
        query: dict[str, str] = {**params, **self._override_params}
        query["offset"] = self.offset
        if self._mode != "catch-up":
            query["live"] = self._mode
            if self.cursor is not None:
                query["cursor"] = self.cursor
        self._current = self._mode
        self._sse_began = None
        self._requested_offset = self.offset
        self._bytes_at_request = self._bytes_received
        self._requests += 1
        out_headers = dict(headers)
        if self._override_headers:
            replaced = {name.lower() for name in self._override_headers}
            out_headers = {k: v for k, v in out_headers.items() if k.lower() not in replaced}
            out_headers.update(self._override_headers)
        if self._mode == "sse":
            out_headers.setdefault("accept", "text/event-stream")
        return HttpRequest("GET", self.url, out_headers, sorted(query.items()))

    @property
    def live_request(self) -> bool:
        """Whether the request in flight may be held open by the server (long-poll or SSE)."""
        return self._current != "catch-up"

    # -- what an answer means -----------------------------------------------------------------

    def on_response(self, status: int, headers: Mapping[str, str]) -> ResponseKind:
        self.status = status
        self.headers = headers
        if status == 204 and self._current == "long-poll":
            return "empty"
        if status == 304:
            # Not modified: a cache (or the server) answering a conditional request says the
            # reader has all there is, as a long-poll timing out does.
            return "empty"
        if status != 200:
            return "error"
        ct = headers.get("content-type")
        if self._current == "sse":
            if media_type(ct) != "text/event-stream":
                raise errors.ProtocolError(
                    f"SSE read answered with content type {ct!r}, not text/event-stream",
                    url=self.url,
                    status=status,
                    offset=self._requested_offset,
                )
            self._start_sse(headers)
            return "sse"
        self.content_type = ct
        if H_NEXT_OFFSET not in headers:
            raise errors.ProtocolError(
                "read response has no Stream-Next-Offset header",
                url=self.url,
                status=status,
                offset=self._requested_offset,
            )
        self._reset_body()
        return "body"

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.ResponseError:
        return error_for_status(
            status, headers, body, url=self.url, operation="read", offset=self._requested_offset
        )

    @property
    def is_json(self) -> bool:
        """Whether the stream's items are JSON messages: by its content type, or the hint."""
        return self.json_hint or is_json_content_type(self.content_type)

    def _check_consumer_fits(self, binary_sse: bool = False) -> None:
        if self.consumer not in ("json", "json-raw"):
            return
        if binary_sse:
            raise errors.ContentTypeError(
                f"this stream ({self.content_type!r}) comes over SSE as base64, not as JSON "
                "messages: read it with live='long-poll'",
                url=self.url,
                offset=self._requested_offset,
            )
        if self.content_type is not None and not self.is_json:
            raise errors.ContentTypeError(
                f"iter_json needs an application/json stream; this one is "
                f"{self.content_type!r} (pass json=True if its server sends JSON anyway)",
                url=self.url,
                offset=self._requested_offset,
            )

    def _reset_body(self) -> None:
        self._body_kind = None
        self._body_reader = None
        self._body_chunk = b""
        self._body_at = 0
        self._body_pending = []
        self._body_pending_bytes = 0
        self._body_received = 0
        self._body_units = 0

    def _start_body(self) -> None:
        self._check_consumer_fits()
        kind = self._body_kind = self.consumer
        if kind in ("json", "json-raw"):
            self._body_reader = _core.impl.JsonArrayReader(kind == "json-raw", BODY_BATCH_BYTES)

    def on_body_chunk(self, chunk: bytes) -> Batch | None:
        """Bytes of a catch-up or long-poll 200 response's body: a batch once enough whole
        messages arrived (handed out at the offset before the body), else ``None``. Other
        batches these bytes made whole come from :meth:`next_body_part`."""
        if self._body_kind is None:
            self._start_body()
        self._body_received += len(chunk)
        self._bytes_received += len(chunk)
        if self._body_received > self.max_body_bytes:
            raise body_too_large(self.max_body_bytes, url=self.url, offset=self._requested_offset)
        if self._body_reader is not None:
            if self._body_chunk:  # the chunk before was not all read: its rest comes first
                chunk = self._body_chunk[self._body_at :] + chunk
            self._body_chunk = chunk
            self._body_at = 0
            return self.next_body_part()
        self._body_pending.append(chunk)
        self._body_pending_bytes += len(chunk)
        if self._body_pending_bytes < BODY_BATCH_BYTES:
            return None
        data = self._bytes_step(final=False)
        if not data:
            return None
        self._count(data)
        return Batch(data, self.offset, self.cursor, False, False, True)

    def next_body_part(self) -> Batch | None:
        """The next batch of the body bytes given so far (one chunk can hold many), or
        ``None`` when they hold no more. A driver asks for it once the batch before is
        handed out, so that only one batch's messages are alive at a time.

        Messages a body at this offset handed out before a reconnect are left out; groups
        made only of those are passed over."""
        reader = self._body_reader
        if reader is None:
            return None
        while True:
            items = self._json_call(reader.next_group)
            if not items:
                if not self._body_chunk:
                    return None
                items = self._json_call(reader.feed, self._next_piece())
            data = self._fresh_items(items) if items else items
            if data:
                self._count(data)
                return Batch(data, self.offset, self.cursor, False, False, True)

    def _next_piece(self) -> bytes:
        """The next piece of the chunk being read: the JSON reader is fed a piece at a time,
        so that it holds a copy of no more than a piece and a partial message."""
        chunk = self._body_chunk
        at = self._body_at
        end = at + BODY_BATCH_BYTES
        if end < len(chunk):
            self._body_at = end
            return chunk[at:end]
        self._body_chunk = b""
        self._body_at = 0
        return chunk[at:] if at else chunk

    def on_body_end(self) -> Batch:
        """The body ended: the last batch, with the offset, cursor and flags of the answer."""
        if self._body_kind is None:
            self._start_body()
        headers = self.headers
        closed = header_true(headers, H_CLOSED)
        reader = self._body_reader
        if reader is not None:
            items: list[Any] = []
            if self._body_chunk:  # not all read by next_body_part()
                rest = self._body_chunk[self._body_at :]
                self._body_chunk, self._body_at = b"", 0
                items = self._json_call(reader.feed, rest)
            last = self._json_call(reader.finish)
            data: Any = self._fresh_items(items + last if items else last)
            framed = not self.json_hint or is_json_content_type(self.content_type)
            if not reader.saw_array and framed:
                # A JSON read always answers an array, "[]" when empty; nothing at all is a
                # body lost on the way (a truncated one decompresses to nothing). A stream
                # read as JSON by the caller's word is not framed by its server: empty is
                # nothing new.
                raise errors.ProtocolError(
                    "JSON read answered with an empty body, not a JSON array",
                    url=self.url,
                    status=self.status,
                    offset=self._requested_offset,
                )
        else:
            data = self._bytes_step(final=closed)
        if self._body_units < self._produced:
            raise errors.ProtocolError(
                f"the server answered offset {self._requested_offset} with less than it sent "
                "there before",
                url=self.url,
                status=self.status,
                offset=self._requested_offset,
            )
        next_offset = headers[H_NEXT_OFFSET]
        up_to_date = header_true(headers, H_UP_TO_DATE)
        if (
            self._body_units == 0
            and not up_to_date
            and not closed
            and next_offset == self._requested_offset
        ):
            raise errors.ProtocolError(
                "server returned no data, no progress and not up to date",
                url=self.url,
                status=self.status,
                offset=self._requested_offset,
            )
        self._reset_body()
        return self._commit(data, next_offset, headers.get(H_CURSOR), up_to_date, closed)

    def _fresh(self, units: int) -> int:
        """Counts ``units`` more read in this body; how many of them were not handed out."""
        before = self._body_units
        self._body_units = before + units
        return self._body_units - max(before, self._produced)

    def _json_call(self, step: Callable[..., list[Any]], *args: Any) -> list[Any]:
        try:
            return step(*args)
        except errors.DurableStreamError as exc:
            raise exc.with_context(url=self.url, offset=self._requested_offset) from None

    def _fresh_items(self, items: list[Any]) -> list[Any]:
        """``items``, the next messages of the body, without those handed out before."""
        fresh = self._fresh(len(items))
        if fresh <= 0:
            return []
        self._note_produced()
        return items if fresh == len(items) else items[len(items) - fresh :]

    def _bytes_step(self, *, final: bool) -> Any:
        pending = self._body_pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self._body_pending = []
        self._body_pending_bytes = 0
        fresh = self._fresh(len(data))
        if fresh < len(data):
            data = data[len(data) - fresh :] if fresh > 0 else b""
        out = self._decode_text(data, final=final) if self._body_kind == "text" else data
        if data:
            self._note_produced()
        return out

    def _note_produced(self) -> None:
        self._produced = self._body_units
        self._produced_kind = self._body_kind

    def on_empty(self) -> Batch:
        """A long-poll 204: nothing new before the server's timeout, or EOF. Or a 304, which
        moves nothing on: its headers may be those of an answer cached long ago."""
        headers = self.headers
        if self.status == 304:
            headers = {}
        next_offset = headers.get(H_NEXT_OFFSET, self.offset)
        closed = header_true(headers, H_CLOSED)
        data = _empty_data(self.consumer)
        if closed and self.consumer == "text":
            data = self._decode_text(b"", final=True)
        return self._commit(
            data,
            next_offset,
            headers.get(H_CURSOR),
            True,
            closed,
        )

    def _decode_body(self, body: bytes, *, final: bool) -> Any:
        kind = self.consumer
        core = _core.impl
        try:
            if kind == "json":
                return core.parse_json_array(body)
            if kind == "json-raw":
                return core.split_json_array(body)
            if kind == "text":
                return self._decode_text(body, final=final)
        except errors.DurableStreamError as exc:
            raise exc.with_context(url=self.url, offset=self._requested_offset) from None
        return body

    def use_text_encoding(self, encoding: str) -> None:
        """Decode text with ``encoding`` from here on (``iter_text(encoding=...)``)."""
        try:
            name = codecs.lookup(encoding).name
        except (LookupError, TypeError):
            raise errors.UsageError(f"unknown text encoding {encoding!r}", url=self.url) from None
        if name == self.text_encoding:
            return
        decoder = self._text_decoder
        if decoder is not None and decoder.getstate()[0]:
            raise errors.UsageError(
                f"text read so far ends inside a {self.text_encoding} character: read on with "
                f"that encoding before changing to {encoding!r}",
                url=self.url,
                offset=self.offset,
            )
        self.text_encoding = name
        self._text_decoder = None

    def _decode_text(self, body: bytes, *, final: bool) -> str:
        if self._text_decoder is None:
            self._text_decoder = codecs.getincrementaldecoder(self.text_encoding)("strict")
        try:
            return self._text_decoder.decode(body, final=final)
        except UnicodeDecodeError as exc:
            raise errors.ParseError(
                f"stream data is not valid {self.text_encoding}: {exc.reason}",
                position=exc.start,
                url=self.url,
                offset=self._requested_offset,
            ) from None

    def _start_sse(self, headers: Mapping[str, str]) -> None:
        base64_data = headers.get(H_SSE_ENCODING, "").strip().lower() == "base64"
        self._check_consumer_fits(binary_sse=base64_data)
        kind = self.consumer
        if kind == "text" and not base64_data and self.text_encoding != "utf-8":
            raise errors.UsageError(
                f"SSE carries a text stream as UTF-8, not {self.text_encoding}: read it with "
                "live='long-poll'",
                url=self.url,
                offset=self.offset,
            )
        if base64_data:
            data_mode = "base64"
        elif kind in ("json", "json-raw"):
            data_mode = kind
        else:
            data_mode = "text"
        self._decoder = _core.impl.SseDecoder(data_mode, self.max_event_bytes)
        self._decoder_kind = kind
        self._sse_began = time.monotonic()
        self._pending = []
        self._controls_seen = 0

    def needs_new_connection(self, kind: ConsumerKind) -> bool:
        """Whether the open connection's body or SSE events decode for another consumer."""
        if self._body_kind is not None and self._body_kind != kind:
            return True
        return self._decoder is not None and self._decoder_kind != kind

    def feed(self, chunk: bytes) -> list[Batch]:
        """Bytes of an SSE body; returns the batches whose covering control event arrived."""
        decoder = self._decoder
        self._bytes_received += len(chunk)
        try:
            events = decoder.feed(chunk)
        except errors.DurableStreamError as exc:
            self._decoder = None
            raise exc.with_context(url=self.url, offset=self.offset) from None
        if not events:
            return []
        out: list[Batch] = []
        control_type = _core.impl.Control
        for event in events:
            if type(event) is control_type:
                out.append(self._on_control(event))
                if self.closed:
                    break  # nothing follows the end of a closed stream
            else:
                self._pending.append(event)
        held = decoder.take_error()
        if held is not None:
            # Bad bytes after good events in one read: the good ones go out first.
            self._decoder = None
            self._held = held.with_context(url=self.url, offset=self.offset)
        return out

    def raise_held(self) -> None:
        """Raise the error met after the batches the last :meth:`feed` returned; a driver
        calls it once those are handed out, before it reads on."""
        held, self._held = self._held, None
        if held is not None:
            raise held

    def _on_control(self, control: Any) -> Batch:
        self._controls_seen += 1
        pending = self._pending
        self._pending = []
        kind = self._decoder_kind
        if kind in ("json", "json-raw"):
            data: Any = pending[0] if len(pending) == 1 else [m for part in pending for m in part]
        elif kind == "bytes":
            data = b"".join(p if isinstance(p, bytes) else p.encode("utf-8") for p in pending)
        elif kind == "text":
            if pending and isinstance(pending[0], bytes):
                data = self._decode_text(b"".join(pending), final=control.closed)
            else:
                data = "".join(pending)
        else:  # pragma: no cover - the decoder is only made with a kind
            data = pending
        return self._commit(
            data,
            control.next_offset,
            control.cursor,
            control.up_to_date or control.closed,
            control.closed,
        )

    def on_sse_end(self) -> None:
        """The SSE body ended. Uncovered data is dropped: the reconnect sends it again."""
        self._decoder = None
        self._pending = []
        self._sse_ended()
        if not self.closed and self._controls_seen == 0:
            raise errors.TransportError(
                "SSE connection ended before any control event",
                url=self.url,
                offset=self.offset,
            )

    def _commit(
        self, data: Any, next_offset: str, cursor: str | None, up_to_date: bool, closed: bool
    ) -> Batch:
        self.offset = next_offset
        self._produced = 0
        self._produced_kind = None
        if cursor is not None:
            self.cursor = cursor
        if up_to_date is not self.up_to_date:
            self._up_to_date_changed = time.monotonic()
        self.up_to_date = up_to_date
        self.closed = closed
        self._retry.reset()
        self._count(data)
        if up_to_date and self._mode == "catch-up" and self.live is not False:
            self._mode = self._live_mode()
        return Batch(data, next_offset, self.cursor, up_to_date, closed)

    def _count(self, data: Any) -> None:
        self._batches += 1
        if type(data) is list:
            self._messages += len(data)

    def lag_seconds(self, now: float | None = None) -> float:
        """How long the reader has been behind the stream's tail: 0.0 when up to date."""
        if self.up_to_date:
            return 0.0
        return (time.monotonic() if now is None else now) - self._up_to_date_changed

    def stats(self) -> ReaderStats:
        return ReaderStats(
            offset=self.offset,
            up_to_date=self.up_to_date,
            closed=self.closed,
            mode=self._mode,
            lag_seconds=self.lag_seconds(),
            requests=self._requests,
            retries=self._retries,
            batches=self._batches,
            messages=self._messages,
            bytes_received=self._bytes_received,
            sse_fell_back=self.sse_fell_back,
        )

    def _sse_ended(self) -> None:
        """An SSE answer ended or broke: count it if it was short, and after too many short
        ones in a row go on by long-poll (a proxy in between buffers or cuts them)."""
        began, self._sse_began = self._sse_began, None
        policy = self._sse_fallback
        if began is None or policy is None or self.closed or self.sse_fell_back:
            return
        lasted = time.monotonic() - began
        if lasted >= policy.min_connection_seconds:
            self._short_sse = 0
            return
        self._short_sse += 1
        if self._short_sse < policy.max_short_connections:
            return
        self.sse_fell_back = True
        if self._mode == "sse":
            self._mode = "long-poll"
        log.warning(
            "SSE answers from %s ended within %.1f s %d times in a row (a proxy that buffers "
            "or cuts event streams?): reading by long-poll from now on",
            errors.redact_url(self.url),
            policy.min_connection_seconds,
            self._short_sse,
        )

    def _live_mode(self) -> Mode:
        if self.sse_fell_back:
            return "long-poll"
        if self.live == "long-poll":
            return "long-poll"
        if self.live == "sse":
            return "sse"
        # live=True: SSE where data travels as text; binary streams would pay base64 over SSE,
        # and text in another encoding than UTF-8 cannot travel over SSE as it is.
        if self.consumer == "text" and self.text_encoding != "utf-8":
            return "long-poll"
        return "sse" if sse_data_is_text(self.content_type) else "long-poll"

    # -- failures -----------------------------------------------------------------------------

    @property
    def attempts(self) -> int:
        """Retries of the current run (since the last batch that arrived)."""
        return self._retry.attempts

    def retry_delay(
        self, exc: errors.DurableStreamError, decision: ErrorDecision = None
    ) -> float | None:
        """Seconds to wait before asking again, or ``None`` when ``exc`` should be raised.

        ``decision`` is what the reader's ``on_error`` hook returned for ``exc``."""
        self._sse_ended()
        received = self._bytes_received != self._bytes_at_request
        burst_cut = (
            received and self._current == "sse" and (bool(self._pending) or not self._controls_seen)
        )
        # Once per offset: if the catch-up found nothing newer there, SSE itself is what fails.
        fall_back = burst_cut and self._fallback_offset != self.offset
        self._decoder = None
        self._pending = []
        self._reset_body()
        if isinstance(decision, RetryAction):
            self._apply(decision)
        elif decision is not None and decision is not STOP:
            raise TypeError(
                f"on_error must return None, a RetryAction or STOP, not {decision!r}"
            ) from exc
        grow = not received or (burst_cut and not fall_back)
        delay = self._decide_delay(exc, decision, grow)
        if delay is not None:
            self._retries += 1
            if fall_back:
                self._fallback_offset = self.offset
                self._mode = "catch-up"
        return delay

    def _decide_delay(
        self, exc: errors.DurableStreamError, decision: ErrorDecision, grow: bool
    ) -> float | None:
        if decision is STOP:
            return None
        if isinstance(exc, errors.TransportError):
            return self._retry.next_delay(grow=grow)
        if isinstance(exc, errors.ResponseError) and is_transient_status(exc.status or 0):
            return self._retry.next_delay(self._retry_after(exc))
        if isinstance(decision, RetryAction):
            # Asked for by the hook, for an error raised otherwise (a 401, a gateway's 404):
            # a read changes nothing, so it is always safe to ask again.
            delay = self._retry.next_delay(requested=True)
            if delay is None:
                note_retries_spent(exc, self._retry)
            return delay
        return None

    def _retry_after(self, exc: errors.ResponseError) -> float | None:
        if isinstance(exc, errors.RateLimitedError):
            return exc.retry_after
        # Retry-After on a 503 says as much as on a 429; the error types keep it only there.
        return retry_after_seconds(self.headers) if exc.status == self.status else None

    def _apply(self, action: RetryAction) -> None:
        """Take the action's headers and params for every later request."""
        headers, params = action_values(action)
        self._override_headers = replace_headers(self._override_headers, headers)
        self._override_params.update(params)
