"""The exceptions durable_streams raises.

Every error is a :class:`DurableStreamError`; catch that to catch them all::

    DurableStreamError
    ├── UsageError                      the call cannot work as given: a URL that is not http(s)
    │   │                               with a host, a header that cannot be sent (also ValueError)
    │   └── HandleClosedError           a stream handle used after close()
    ├── TransportError                  network failure; httpx's exception is the __cause__
    │   ├── DeadlineExceededError       a read or request ran past its deadline (also TimeoutError)
    │   │   └── TxidTimeoutError        a state view did not see a transaction id in time
    │   └── HTTPParseError              not a valid HTTP/1.1 response, or cut short (a ParseError)
    ├── ParseError                      the server sent bytes we cannot decode (also ValueError)
    │   ├── JSONParseError              a JSON body or SSE JSON batch is malformed
    │   ├── StateMessageError           a state stream's message is not a change or control
    │   │   └── StateValueError         a change's value does not fit its type's schema
    │   ├── GenerationError             a generation's chunk is not a UI message chunk that fits
    │   ├── SSEParseError               a malformed SSE stream or control event
    │   │   └── EventTooLargeError      one SSE event/line exceeds the configured cap
    │   └── Base64DecodeError           an SSE data event of a binary stream is not base64
    ├── ProtocolError                   a response breaks the protocol (missing header, ...)
    ├── ContentTypeError                the content type does not fit the call (also TypeError)
    ├── ProducerError                   an idempotent producer cannot take or deliver messages
    │   ├── BufferFullError             append_nowait with the producer's buffer full
    │   ├── ProducerClosedError         append after close(), close_stream() or a fatal error
    │   ├── SequenceReusedError         the server already holds this producer's epoch and seq
    │   ├── ProducerStateError          the producer's state file cannot be opened or written
    │   │   └── ProducerStateLockedError another producer has the state file open
    │   ├── UndeliveredError            flush()/close(): some batches failed; see .failures
    │   └── AppendStreamError           append_stream() stopped: its source or a write failed;
    │                                   .written says how far it got, the stream stays open
    └── ResponseError                   the server answered with an error status
        ├── BadRequestError             400
        │   └── InvalidOffsetError      400 for a read at a malformed offset
        ├── StaleEpochError             403 from an idempotent producer's stale epoch
        ├── StreamNotFoundError         404
        ├── ConflictError               409
        │   ├── StreamExistsError       409 on create: exists with another configuration
        │   ├── StreamClosedError       409 + Stream-Closed: the stream takes no more appends
        │   ├── SeqConflictError        409 for a Stream-Seq regression
        │   ├── ContentTypeMismatchError 409 for an append of another content type
        │   └── SequenceGapError        409 for a producer sequence gap
        ├── RetentionGoneError          410: data before the retained range, or soft-deleted
        ├── PayloadTooLargeError        413
        ├── RateLimitedError            429
        ├── ServerError                 5xx
        ├── ProxyError                  the durable proxy refused; ``code`` is its error code
        │   └── UpstreamError           502: the upstream answered with an error status
        └── SubscriptionError           a subscription API refused; ``code`` is the server's
            ├── SubscriptionNotFoundError    404 SUBSCRIPTION_NOT_FOUND
            ├── SubscriptionExistsError      409 SUBSCRIPTION_ALREADY_EXISTS (also a ConflictError)
            ├── WebhookUrlRejectedError      400 WEBHOOK_URL_REJECTED (also a BadRequestError)
            ├── WakeTokenError               401 TOKEN_INVALID
            │   └── WakeTokenExpiredError    401 TOKEN_EXPIRED
            ├── FencedError                  409 FENCED: the wake moved on (also a ConflictError)
            ├── AlreadyClaimedError          409 ALREADY_CLAIMED (also a ConflictError)
            ├── NoPendingWorkError           409 NO_PENDING_WORK (also a ConflictError)
            └── AckOffsetError               409 INVALID_OFFSET for an ack (also a ConflictError)

    WebhookVerificationError            a webhook request's signature does not verify (also a
                                        ValueError)
    ModelProviderError                  a model provider's stream reported a failure (an error
                                        event, a failed response): a generation's source failed

Messages name the stream and the offset involved. URLs in messages and reprs never carry the
query string or user info, and header values never appear: credentials do not leak into logs.
"""

from __future__ import annotations

import json as json_module
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "AckOffsetError",
    "AlreadyClaimedError",
    "AppendStreamError",
    "BadRequestError",
    "Base64DecodeError",
    "BufferFullError",
    "ConflictError",
    "ContentTypeError",
    "ContentTypeMismatchError",
    "DeadlineExceededError",
    "DurableStreamError",
    "EventTooLargeError",
    "FailedBatch",
    "FencedError",
    "GenerationError",
    "HTTPParseError",
    "HandleClosedError",
    "InvalidOffsetError",
    "JSONParseError",
    "ModelProviderError",
    "NoPendingWorkError",
    "ParseError",
    "PayloadTooLargeError",
    "ProducerClosedError",
    "ProducerError",
    "ProducerStateError",
    "ProducerStateLockedError",
    "ProtocolError",
    "ProxyError",
    "RateLimitedError",
    "ResponseError",
    "RetentionGoneError",
    "SSEParseError",
    "SeqConflictError",
    "SequenceGapError",
    "SequenceReusedError",
    "ServerError",
    "StaleEpochError",
    "StateMessageError",
    "StateValueError",
    "StreamClosedError",
    "StreamExistsError",
    "StreamNotFoundError",
    "SubscriptionError",
    "SubscriptionExistsError",
    "SubscriptionNotFoundError",
    "TransportError",
    "TxidTimeoutError",
    "UndeliveredError",
    "UpstreamError",
    "UsageError",
    "WakeTokenError",
    "WakeTokenExpiredError",
    "WebhookUrlRejectedError",
    "WebhookVerificationError",
]


def redact_url(url: str | None) -> str | None:
    """The URL without query string, fragment or user info: safe to print, even when it is
    not a valid URL."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a malformed port or IPv6 host
        return _redact_by_hand(url)
    if not parts.netloc:  # no "//": "user:secret@host/x" parses as scheme "user"
        return _redact_by_hand(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if port is not None:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _redact_by_hand(url: str) -> str:
    url = url.split("#", 1)[0].split("?", 1)[0]
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}"


class DurableStreamError(Exception):
    """Base class of every error raised by durable_streams."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        offset: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.url = redact_url(url)
        self.status = status
        self.offset = offset

    def __str__(self) -> str:
        return self._describe(with_url=True)

    def _describe(self, *, with_url: bool) -> str:
        """The message with its context; ``with_url=False`` leaves out the stream, for a
        message that quotes this error under its own stream."""
        context = []
        if with_url and self.url is not None:
            context.append(f"stream {self.url}")
        if self.offset is not None:
            context.append(f"offset {self.offset}")
        if self.status is not None:
            context.append(f"status {self.status}")
        if not context:
            return self.message
        return f"{self.message} ({', '.join(context)})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def with_context(
        self, *, url: str | None = None, offset: str | None = None
    ) -> DurableStreamError:
        """Fill in the stream and offset where the raiser did not know them; returns self."""
        if self.url is None and url is not None:
            self.url = redact_url(url)
        if self.offset is None and offset is not None:
            self.offset = offset
        return self


class UsageError(DurableStreamError, ValueError):
    """The call cannot work as given, and no retry would mend it: a URL that is not http or
    https with a host, a header name or value that cannot be sent (a value read from a file
    keeps its trailing newline), a non-positive timeout. Raised where the mistake is made,
    before anything is sent where that is possible; the message says what to fix and never
    quotes a header value, a URL's user info or its query."""


class HandleClosedError(UsageError):
    """A stream handle or a client, or something sharing it (a fork's handle, a producer or
    reader made from it), was used after ``close()``. Open a new one."""


class TransportError(DurableStreamError):
    """The request did not complete: connection refused, reset, or cut mid-body.

    ``request_sent`` is False when the request cannot have been applied: the connection
    failed before all of it went out (so an append was not stored, and sending it again is
    safe); True when it went out and no answer came (an append may have been stored)."""

    request_sent = True


class DeadlineExceededError(TransportError, TimeoutError):
    """A request or read ran past its deadline."""


class TxidTimeoutError(DeadlineExceededError):
    """A state view's ``wait_for_txid`` did not see a change carrying ``txid`` within its
    deadline; ``offset`` is where the view stood."""

    def __init__(
        self, message: str, *, txid: str, url: str | None = None, offset: str | None = None
    ) -> None:
        super().__init__(message, url=url, offset=offset)
        self.txid = txid


class ParseError(DurableStreamError, ValueError):
    """The server's bytes could not be decoded. ``position`` is the byte offset in the input."""

    def __init__(
        self,
        message: str,
        *,
        position: int | None = None,
        url: str | None = None,
        status: int | None = None,
        offset: str | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status, offset=offset)
        self.position = position

    def _describe(self, *, with_url: bool) -> str:
        text = super()._describe(with_url=with_url)
        if self.position is None:
            return text
        return f"{text} [at byte {self.position}]"


class HTTPParseError(TransportError, ParseError):
    """The native read path got bytes that are not a valid HTTP/1.1 response (a malformed
    head, bad chunk framing, an oversize head) or a connection that closed before the
    response ended; ``position`` is the byte of the connection's input at fault. Retried like
    any network failure: nothing of a response that did not fully arrive is handed out."""


class JSONParseError(ParseError):
    """A JSON body, or the JSON of an SSE data event, is malformed."""


class StateMessageError(ParseError):
    """A message of a state stream (State Protocol) is neither a valid change nor a valid
    control message; ``offset`` is where the stream stands after the message's batch."""


class StateValueError(StateMessageError):
    """A change's value does not fit the schema declared for its ``type`` (entity ``key``):
    read at ``offset``, or refused before it was written (``offset`` is then None). The
    schema library's own error, if any, is the ``__cause__``."""

    def __init__(
        self,
        message: str,
        *,
        type: str,
        key: str,
        offset: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, offset=offset, url=url)
        self.type = type
        self.key = key


class GenerationError(ParseError):
    """A chunk of a generation stream is not a UI message chunk, or does not fit the message
    so far (a delta for a part that never started, output for an unknown tool call)."""


class ModelProviderError(DurableStreamError):
    """A model provider's stream reported a failure in the stream itself (the Responses API's
    ``error`` event or ``response.failed``): the generation it fed cannot go on."""


class SSEParseError(ParseError):
    """The SSE stream, or a control event in it, is malformed."""


class EventTooLargeError(SSEParseError):
    """One SSE event or line is larger than the decoder's ``max_event_bytes``."""


class Base64DecodeError(ParseError):
    """An SSE data event of a binary stream is not valid base64."""


class ProtocolError(DurableStreamError):
    """A response violates the protocol, e.g. a read without ``Stream-Next-Offset``."""


class ContentTypeError(DurableStreamError, TypeError):
    """The stream's content type does not fit the call, e.g. ``iter_json`` on a binary stream."""


class ProducerError(DurableStreamError):
    """An idempotent producer cannot take a message, or could not deliver some."""


class BufferFullError(ProducerError):
    """``append_nowait`` found the producer's buffer at ``max_buffered_bytes``; nothing was
    added. Wait with ``append`` or ``flush``, or raise the limit."""


class ProducerClosedError(ProducerError):
    """The producer takes no more messages: it was closed, closed the stream, or hit a fatal
    error (fenced by a newer epoch, stream closed or deleted); that error is the ``__cause__``."""


class SequenceReusedError(ProducerError):
    """The server answered "duplicate" to a batch sent for the first time: it already holds
    this producer id's epoch and sequence number from an earlier session, so it did not store
    the batch. Start each session at an epoch no earlier session used (``auto_claim=True``
    does it itself; so does a ``state=`` file), or pass ``replay=True`` when re-sending an
    earlier session's messages under their old numbers on purpose."""


class ProducerStateError(ProducerError):
    """The producer's state file (``state=``) cannot be opened, read or written, or belongs
    to another producer id or stream. The ``__cause__`` is the underlying error."""


class ProducerStateLockedError(ProducerStateError):
    """Another producer, in this process or another, has the state file open. One file
    serves one producer at a time: two writers under one producer id would fence each other
    or store messages twice."""


class UndeliveredError(ProducerError):
    """Some batches were not delivered. ``failures`` lists each with its messages' bytes and
    its own typed error; the first one's error is also the ``__cause__``."""

    def __init__(self, message: str, failures: list[FailedBatch], **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.failures = failures


class AppendStreamError(ProducerError):
    """``append_stream()`` stopped before the end of its source, leaving the stream open (not
    closed, even with ``close=True``). The cause (``__cause__``) is what stopped it: the
    source's own exception (``source_failed`` True) or the write's error.

    The stream holds the source's first ``written`` items, in order (``written_bytes`` bytes
    as sent), up to ``offset`` (``None`` when none was stored), and nothing of the items after
    them, except for ``uncertain`` items right after them whose request may have reached the
    server before the connection failed (each stored once or not at all): read the stream
    from ``offset`` to tell. Feeding the same source again from item ``written`` (and
    ``written + uncertain`` once a read showed those stored) completes the stream."""

    def __init__(
        self,
        message: str,
        *,
        written: int,
        written_bytes: int,
        uncertain: int,
        source_failed: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.written = written
        self.written_bytes = written_bytes
        self.uncertain = uncertain
        self.source_failed = source_failed


class ResponseError(DurableStreamError):
    """The server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        offset: str | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status, offset=offset)
        self.body = body


class BadRequestError(ResponseError):
    """400: the server rejected the request as malformed."""


class InvalidOffsetError(BadRequestError):
    """400 for a read: the offset is malformed or unknown to the server."""


class StaleEpochError(ResponseError):
    """403: an idempotent producer's epoch is older than the server's (it was fenced)."""

    def __init__(self, message: str, *, current_epoch: int | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.current_epoch = current_epoch


class StreamNotFoundError(ResponseError):
    """404: the stream does not exist (or was deleted)."""


class ConflictError(ResponseError):
    """409: the request conflicts with the stream's state."""


class StreamExistsError(ConflictError):
    """409 on create: a stream exists at that URL with a different configuration."""


class StreamClosedError(ConflictError):
    """The stream is closed and takes no more appends. ``final_offset`` is its tail."""

    def __init__(self, message: str, *, final_offset: str | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.final_offset = final_offset


class SeqConflictError(ConflictError):
    """409: the ``Stream-Seq`` of the append is not greater than the last one."""


class ContentTypeMismatchError(ConflictError):
    """409: the append's content type differs from the stream's."""


class SequenceGapError(ConflictError):
    """409: an idempotent producer skipped a sequence number."""

    def __init__(
        self,
        message: str,
        *,
        expected_seq: int | None = None,
        received_seq: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.expected_seq = expected_seq
        self.received_seq = received_seq


class RetentionGoneError(ResponseError):
    """410: the offset is before the retained data, or the stream was soft-deleted."""


class PayloadTooLargeError(ResponseError):
    """413: the request body exceeds the server's limit."""


class RateLimitedError(ResponseError):
    """429: the server asks us to slow down; ``retry_after`` is in seconds, if it said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(ResponseError):
    """5xx: the server failed; ``retry_after`` is in seconds, if it said (typically with 503)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ProxyError(ResponseError):
    """The durable proxy refused a request; ``code`` is its error code
    (``UPSTREAM_NOT_ALLOWED``, ``SIGNATURE_EXPIRED``, ``UPSTREAM_TIMEOUT``, ...)."""

    def __init__(self, message: str, *, code: str | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.code = code


class UpstreamError(ProxyError):
    """The upstream answered the proxied request with an error status: ``upstream_status``
    is that status, ``body`` (text) and ``content`` (bytes) its body, ``content_type`` its
    type. No stream was made."""

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        content: bytes = b"",
        content_type: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(message, code="UPSTREAM_ERROR", **kwargs)
        self.upstream_status = upstream_status
        self.content = content
        self.content_type = content_type


class SubscriptionError(ResponseError):
    """A subscription API (PROTOCOL.md sections 6-7) refused; ``code`` is the server's error
    code (``FENCED``, ``ALREADY_CLAIMED``, ...), ``subscription_id`` the subscription's."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        subscription_id: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.code = code
        self.subscription_id = subscription_id


class SubscriptionNotFoundError(SubscriptionError):
    """404: no subscription with that id (or the route is not a subscription route)."""


class SubscriptionExistsError(SubscriptionError, ConflictError):
    """409 on create: a subscription with that id exists with another configuration."""


class WebhookUrlRejectedError(SubscriptionError, BadRequestError):
    """400: the server refuses to deliver to that webhook URL (not https, a private address)."""


class WakeTokenError(SubscriptionError):
    """401: the wake's token is missing, malformed or not the server's."""


class WakeTokenExpiredError(WakeTokenError):
    """401: the wake's token has expired; claim again."""


class FencedError(SubscriptionError, ConflictError):
    """409: the wake this call names is no longer current (its lease ran out, it was finished
    or released, or another worker holds a newer one). Nothing it carried was applied."""


class AlreadyClaimedError(SubscriptionError, ConflictError):
    """409 on claim: another worker holds the wake. ``current_holder`` names it and
    ``generation`` is the wake's generation."""

    def __init__(
        self,
        message: str,
        *,
        current_holder: str | None = None,
        generation: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.current_holder = current_holder
        self.generation = generation


class NoPendingWorkError(SubscriptionError, ConflictError):
    """409 on claim: every linked stream is acknowledged up to its tail."""


class AckOffsetError(SubscriptionError, ConflictError):
    """409 INVALID_OFFSET: an ack names a stream the subscription does not link, goes back
    before the acknowledged offset, or past the stream's tail. No ack of the call applied."""


class WebhookVerificationError(DurableStreamError, ValueError):
    """A webhook request does not carry a valid signature from the server's keys: a missing or
    malformed ``Webhook-Signature`` header, an unknown key, a timestamp outside the tolerance,
    or a body that is not the one signed. Answer such a request with 401 and do nothing."""


# How much of a failed batch's body its repr shows.
_REPR_BODY_BYTES = 64


@dataclass(frozen=True)
class FailedBatch:
    """A batch that was not delivered, with what it held and why it failed.

    ``maybe_delivered`` is True when the outcome is unknown: a request reached the server but
    no answer came back before the retries ran out (the batch may be stored once).
    ``kept`` is True when the batch stays in the producer's state file: the next session
    opened on that file resends it under the same number, so do not resend it yourself."""

    seq: int
    epoch: int
    count: int
    body: bytes
    error: DurableStreamError
    maybe_delivered: bool
    json: bool = field(default=False, repr=False)
    kept: bool = False

    def __repr__(self) -> str:
        # The body can be megabytes, and reprs end up in error reports and logs.
        shown = repr(self.body[:_REPR_BODY_BYTES])
        more = "..." if len(self.body) > _REPR_BODY_BYTES else ""
        return (
            f"FailedBatch(seq={self.seq}, epoch={self.epoch}, count={self.count}, "
            f"body=<{len(self.body):,} bytes: {shown}{more}>, error={self.error!r}, "
            f"maybe_delivered={self.maybe_delivered}, kept={self.kept})"
        )

    def messages(self) -> list[Any]:
        """The batch's messages: decoded JSON values on JSON streams, else its bytes as one item."""
        if not self.body:
            return []
        if self.json:
            # The producer built the body: a JSON array of the messages, nothing else.
            items: list[Any] = json_module.loads(self.body)
            return items
        return [self.body]
