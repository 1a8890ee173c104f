"""Protocol facts and the I/O-free halves of every operation: what to send, what an answer means."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import _core
from . import _errors as errors
from ._values import AppendResult, HeadResult

OFFSET_BEGINNING = "-1"


OFFSET_NOW = "now"


H_NEXT_OFFSET = "stream-next-offset"


H_CURSOR = "stream-cursor"


H_UP_TO_DATE = "stream-up-to-date"


H_CLOSED = "stream-closed"


H_TTL = "stream-ttl"


H_EXPIRES_AT = "stream-expires-at"


H_SEQ = "stream-seq"


H_SSE_ENCODING = "stream-sse-data-encoding"


H_FORKED_FROM = "stream-forked-from"


H_FORK_OFFSET = "stream-fork-offset"


H_FORK_SUB_OFFSET = "stream-fork-sub-offset"


H_PRODUCER_ID = "producer-id"


H_PRODUCER_EPOCH = "producer-epoch"


H_PRODUCER_SEQ = "producer-seq"


H_EXPECTED_SEQ = "producer-expected-seq"


H_RECEIVED_SEQ = "producer-received-seq"


DEFAULT_CONTENT_TYPE = "application/octet-stream"


ERROR_BODY_LIMIT = 4096


def media_type(content_type: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_json_content_type(content_type: str | None) -> bool:
    return media_type(content_type) == "application/json"


def sse_data_is_text(content_type: str | None) -> bool:
    """Whether SSE data events of such a stream carry text rather than base64 (PROTOCOL 5.8)."""
    mt = media_type(content_type)
    return mt == "application/json" or mt.startswith("text/")


def header_true(headers: Mapping[str, str], name: str) -> bool:
    return headers.get(name, "").strip().lower() == "true"


def optional_int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw)


def retry_after_seconds(headers: Mapping[str, str], *, cap: float = 300.0) -> float | None:
    """``Retry-After`` as seconds (delta or HTTP date), capped so a server cannot park us."""
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        now = _dt.datetime.now(_dt.timezone.utc)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


def format_expires_at(expires_at: _dt.datetime | str) -> str:
    if isinstance(expires_at, str):
        return expires_at
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    return expires_at.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")


def join_url(base_url: str, path: str) -> str:
    """``path`` under ``base_url``: on the base's path, the base's query (a token) kept."""
    base = urlsplit(base_url)
    own = urlsplit(path)
    joined = f"{base.path.rstrip('/')}/{own.path.lstrip('/')}"
    query = "&".join(part for part in (base.query, own.query) if part)
    return urlunsplit((base.scheme, base.netloc, joined, query, ""))


def check_url(url: str, what: str = "stream URL") -> str:
    """``url``, if a request can go to it: http or https, with a host. Anything else is a
    mistake no retry mends, so it fails here rather than as a network error later."""
    if not isinstance(url, str):
        raise TypeError(f"the {what} must be a str, not {type(url).__name__}")
    shown = errors.redact_url(url)
    if url != url.strip() or any(ord(c) < 0x20 or c == "\x7f" for c in url):
        raise errors.UsageError(
            f"the {what} {shown!r} has surrounding whitespace or a control character "
            "(a URL read from a file keeps its newline: strip it)"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsing it is the check)
    except ValueError:
        raise errors.UsageError(f"the {what} {shown!r} has an invalid host or port") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise errors.UsageError(
            f"the {what} {shown!r} must start with http:// or https://, e.g. "
            "http://127.0.0.1:4437/v1/stream/name"
        )
    if not parts.hostname:
        raise errors.UsageError(f"the {what} {shown!r} has no host")
    return url


# RFC 9110: a header name is a token; a value is visible ASCII, spaces and tabs (we refuse
# obs-text too: httpx encodes values as ASCII).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")


def check_header(name: object, value: str) -> None:
    """Refuse a header that cannot be sent, naming it but never quoting its value (most
    likely a credential)."""
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        shown = name if not isinstance(name, str) else name[: _token_prefix(name)] + "..."
        raise errors.UsageError(
            f"{shown!r} is not a header name: names are letters, digits and !#$%&'*+-.^_`|~ "
            "(give the value apart: headers={'Authorization': 'Bearer ...'})"
        )
    if _HEADER_VALUE.fullmatch(value):
        return
    if "\n" in value or "\r" in value:
        why = "a line break (a value read from a file keeps its newline: strip it)"
    elif any(ord(c) > 0x7E for c in value):
        why = "a character outside ASCII"
    else:
        why = "a control character"
    raise errors.UsageError(f"the value of header {name!r} cannot be sent: it has {why}")


def _token_prefix(name: str) -> int:
    match = _HEADER_NAME.match(name)
    return match.end() if match else 0


def check_headers(headers: Mapping[str, Any] | None) -> None:
    """:func:`check_header` for each header given as text; a callable's value is checked
    each time it is called."""
    for name, value in (headers or {}).items():
        if callable(value):
            check_header(name, "")
        else:
            check_header(name, str(value))


@dataclass(frozen=True)
class HttpRequest:
    """One request to send, as data: a transport puts it on the wire."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: list[tuple[str, str]] = field(default_factory=list)
    content: bytes | None = None
    # Whether resending after an ambiguous failure (request possibly processed) is harmless.
    idempotent: bool = True
    # A body sent as it is produced (chunked), instead of ``content``; it cannot be resent.
    stream: Iterable[bytes] | AsyncIterable[bytes] | None = None


@dataclass(frozen=True)
class CreateResult:
    status: int
    created: bool
    offset: str | None
    content_type: str | None
    closed: bool


def _server_message(body: bytes | None) -> str:
    if not body:
        return ""
    text = body[:ERROR_BODY_LIMIT].decode("utf-8", "replace").strip()
    if len(text) > 300:
        text = text[:300] + "..."
    return text


_WORD = re.compile(r"[a-z0-9]+")


def _with_detail(message: str, said: str) -> str:
    """``message``, then what the server said about it, unless that mostly repeats it
    ("stream is closed at offset X: Stream is closed" says it twice)."""
    words = set(_WORD.findall(said.lower()))
    if not words:
        return message
    repeated = words & set(_WORD.findall(message.lower()))
    if 3 * len(repeated) >= 2 * len(words):
        return message
    return f"{message}: {said}"


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    url: str,
    operation: str,
    offset: str | None = None,
    producer: bool = False,
    seq: bool = False,
) -> errors.ResponseError:
    """The typed error for a non-success answer to ``operation`` (create, append, read, ...)."""
    said = _server_message(body)
    common: dict[str, Any] = {"url": url, "status": status, "offset": offset, "body": said or None}
    if status == 400:
        if operation == "read":
            return errors.InvalidOffsetError(
                _with_detail("the server rejected the read", said), **common
            )
        return errors.BadRequestError(
            _with_detail(f"the server rejected the {operation}", said), **common
        )
    if status == 403 and producer:
        epoch = optional_int(headers, H_PRODUCER_EPOCH)
        return errors.StaleEpochError(
            _with_detail(f"producer epoch is stale; the server is at epoch {epoch}", said),
            current_epoch=epoch,
            **common,
        )
    if status == 404:
        return errors.StreamNotFoundError(_with_detail("stream not found", said), **common)
    if status == 409:
        if header_true(headers, H_CLOSED):
            final = headers.get(H_NEXT_OFFSET)
            return errors.StreamClosedError(
                _with_detail(f"stream is closed at offset {final}", said),
                final_offset=final,
                **common,
            )
        if operation in ("create", "fork"):
            return errors.StreamExistsError(
                _with_detail("a stream with another configuration exists", said), **common
            )
        if producer and H_EXPECTED_SEQ in headers:
            expected = optional_int(headers, H_EXPECTED_SEQ)
            received = optional_int(headers, H_RECEIVED_SEQ)
            return errors.SequenceGapError(
                _with_detail(f"producer sequence gap: expected {expected}, sent {received}", said),
                expected_seq=expected,
                received_seq=received,
                **common,
            )
        if "content type" in said.lower() or "content-type" in said.lower():
            return errors.ContentTypeMismatchError(
                _with_detail("content type does not match the stream's", said), **common
            )
        if seq:
            return errors.SeqConflictError(
                _with_detail("Stream-Seq is not greater than the last one", said), **common
            )
        return errors.ConflictError(_with_detail("conflict", said), **common)
    if status == 410:
        return errors.RetentionGoneError(
            _with_detail("gone: offset before retained data or stream deleted", said), **common
        )
    if status == 413:
        return errors.PayloadTooLargeError(_with_detail("request body too large", said), **common)
    if status == 429:
        return errors.RateLimitedError(
            _with_detail("rate limited", said), retry_after=retry_after_seconds(headers), **common
        )
    if status >= 500:
        return errors.ServerError(
            _with_detail("server error", said), retry_after=retry_after_seconds(headers), **common
        )
    return errors.ResponseError(
        _with_detail(f"unexpected status {status} for {operation}", said), **common
    )


def is_transient_status(status: int) -> bool:
    """Statuses worth retrying: the server asked us to wait, or failed."""
    return status == 429 or status >= 500


def create_request(
    url: str,
    *,
    content_type: str | None,
    ttl_seconds: int | None,
    expires_at: _dt.datetime | str | None,
    body: bytes | None,
    closed: bool,
    headers: Mapping[str, str],
    forked_from: str | None = None,
    fork_offset: str | None = None,
    fork_sub_offset: int | None = None,
) -> HttpRequest:
    if ttl_seconds is not None and expires_at is not None:
        raise ValueError("give ttl_seconds or expires_at, not both")
    if ttl_seconds is not None and (isinstance(ttl_seconds, bool) or ttl_seconds < 0):
        raise ValueError(f"ttl_seconds must be a non-negative integer, not {ttl_seconds!r}")
    if fork_sub_offset is not None and fork_sub_offset < 0:
        raise ValueError(f"fork_sub_offset must be >= 0, not {fork_sub_offset!r}")
    out = dict(headers)
    if content_type is not None:
        out["content-type"] = content_type
    if ttl_seconds is not None:
        out["stream-ttl"] = str(int(ttl_seconds))
    if expires_at is not None:
        out["stream-expires-at"] = format_expires_at(expires_at)
    if closed:
        out["stream-closed"] = "true"
    if forked_from is not None:
        out["stream-forked-from"] = forked_from
        if fork_offset is not None:
            out["stream-fork-offset"] = fork_offset
        if fork_sub_offset:
            out["stream-fork-sub-offset"] = str(fork_sub_offset)
    return HttpRequest("PUT", url, out, content=body or None)


def create_result(
    status: int, headers: Mapping[str, str], body: bytes, *, url: str, operation: str = "create"
) -> CreateResult:
    if status not in (200, 201):
        raise error_for_status(status, headers, body, url=url, operation=operation)
    return CreateResult(
        status=status,
        created=status == 201,
        offset=headers.get(H_NEXT_OFFSET),
        content_type=headers.get("content-type"),
        closed=header_true(headers, H_CLOSED),
    )


def fork_result(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    url: str,
    source: str,
    offset: str | None,
    source_status: int | None = None,
) -> CreateResult:
    """:func:`create_result` of a fork at ``url`` of the stream at ``source``; errors name
    the stream at fault. ``source_status`` is what a HEAD of the source answered, asked
    after a 409 (the answer both to another fork at ``url`` and to a deleted source)."""
    said = _server_message(body)
    if status == 404:
        raise errors.StreamNotFoundError(
            "the stream to fork does not exist", url=source, status=status, body=said or None
        )
    if status == 409 and source_status in (404, 410):
        raise errors.RetentionGoneError(
            "the stream to fork was deleted (the server keeps its data only for the forks "
            "it already has)",
            url=source,
            status=source_status,
            body=said or None,
        )
    if status == 400 and offset is not None:
        raise errors.BadRequestError(
            _with_detail(
                f"the server refused to fork at offset {offset} (a fork offset is one the "
                "server returned, up to the tail; leave it out to fork at the tail)",
                said,
            ),
            url=source,
            status=status,
            body=said or None,
        )
    return create_result(status, headers, body, url=url, operation="fork")


def head_result(status: int, headers: Mapping[str, str], *, url: str) -> HeadResult:
    if status != 200:
        raise error_for_status(status, headers, None, url=url, operation="head")
    ttl = headers.get(H_TTL)
    return HeadResult(
        status=status,
        offset=headers.get(H_NEXT_OFFSET),
        content_type=headers.get("content-type"),
        ttl_seconds=int(ttl) if ttl is not None and ttl.isdigit() else None,
        expires_at=headers.get(H_EXPIRES_AT),
        closed=header_true(headers, H_CLOSED),
        etag=headers.get("etag"),
        headers=dict(headers),
    )


def append_request(
    url: str,
    body: bytes,
    *,
    content_type: str,
    headers: Mapping[str, str],
    seq: str | None = None,
    close: bool = False,
    producer: tuple[str, int, int] | None = None,
) -> HttpRequest:
    out = dict(headers)
    if body or not close:
        out["content-type"] = content_type
    if seq is not None:
        out[H_SEQ] = seq
    if close:
        out[H_CLOSED] = "true"
    if producer is not None:
        producer_id, epoch, pseq = producer
        out[H_PRODUCER_ID] = producer_id
        out[H_PRODUCER_EPOCH] = str(epoch)
        out[H_PRODUCER_SEQ] = str(pseq)
    # Without producer headers a resent append could be stored twice; only a close-only
    # request is naturally idempotent.
    idempotent = producer is not None or (close and not body)
    return HttpRequest("POST", url, out, content=body, idempotent=idempotent)


def append_result(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    url: str,
    operation: str = "append",
    producer: bool = False,
    seq: bool = False,
) -> AppendResult:
    if status not in (200, 201, 204):
        raise error_for_status(
            status, headers, body, url=url, operation=operation, producer=producer, seq=seq
        )
    return AppendResult(
        status=status,
        offset=headers.get(H_NEXT_OFFSET),
        closed=header_true(headers, H_CLOSED),
        duplicate=producer and status == 204,
        producer_epoch=optional_int(headers, H_PRODUCER_EPOCH),
        producer_seq=optional_int(headers, H_PRODUCER_SEQ),
    )


def delete_result(status: int, headers: Mapping[str, str], body: bytes, *, url: str) -> None:
    if status not in (200, 202, 204):
        raise error_for_status(status, headers, body, url=url, operation="delete")


def encode_append_body(data: Any, *, json_mode: bool) -> bytes:
    """One append's body. JSON streams: ``data`` is one message (a list stays one message);
    str/bytes there are taken as already-serialized JSON text."""
    if json_mode:
        if not isinstance(data, (str, bytes, bytearray, memoryview)):
            encoded: bytes = _core.impl.encode_json(data)
            return b"[" + encoded + b"]"
        builder = _core.impl.BatchBuilder(True, 1 << 62)  # validates serialized JSON
        builder.push(data)
        body: bytes = builder.take()
        return body
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    raise TypeError(
        f"a non-JSON stream takes str or bytes, not {type(data).__name__}; "
        "create the stream with content_type='application/json' to append objects"
    )
