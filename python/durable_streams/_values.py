"""The public value types: what operations return (:class:`AppendResult`,
:class:`HeadResult`), what readers hand out (:class:`StreamEvent`) and decide
(:class:`RetryAction`, :data:`STOP`), stats snapshots, and the subscription values. Frozen
dataclasses that import nothing but the errors."""

from __future__ import annotations

import enum
from collections.abc import (
    Mapping,
)
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "STOP",
    "Ack",
    "AppendResult",
    "Claim",
    "ConsumerStats",
    "ErrorDecision",
    "HeadResult",
    "JsonBatch",
    "LiveMode",
    "Mode",
    "PendingStream",
    "ProducerStats",
    "ReaderStats",
    "RetryAction",
    "SseFallback",
    "Stop",
    "StreamEvent",
    "Subscription",
    "SubscriptionLink",
    "SubscriptionMessage",
    "SubscriptionType",
    "WebhookDelivery",
    "WebhookSigning",
]
# How a reader is reading now (ReaderStats.mode).
Mode = Literal["catch-up", "long-poll", "sse"]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One item read from a stream with the offset to resume from after its batch.

    Items of one batch share the offset: the protocol marks positions between batches only.
    """

    data: Any
    offset: str
    cursor: str | None
    up_to_date: bool
    stream_closed: bool


@dataclass(frozen=True, slots=True)
class JsonBatch:
    """The messages of one batch of a JSON stream, from ``iter_json_batches()``, with where
    the stream stands after them.

    A batch is what one answer carried (a catch-up or long-poll body, or the data events
    before one SSE control event), so ``offset`` is a position the server marked: saving it
    once per batch resumes behind the batch, with nothing lost and nothing repeated. A batch
    can be empty when it only moves the offset or the flags on.
    """

    messages: list[Any]
    offset: str
    cursor: str | None
    up_to_date: bool
    stream_closed: bool


@dataclass(frozen=True, slots=True)
class ReaderStats:
    """A snapshot of a reader, from its ``stats()``: where it stands and what it has done.

    ``lag_seconds`` is how long the reader has been behind the stream's tail (0.0 when up to
    date; offsets are opaque, so how far behind is not known). ``messages`` counts JSON
    messages received (0 on other streams); ``bytes_received`` the response bytes read
    (SSE framing included); ``retries`` the requests sent again after a failure;
    ``sse_fell_back`` whether SSE kept being cut short, so that the reader went on by
    long-poll (see :class:`SseFallback`)."""

    offset: str
    up_to_date: bool
    closed: bool
    mode: Mode
    lag_seconds: float
    requests: int
    retries: int
    batches: int
    messages: int
    bytes_received: int
    sse_fell_back: bool = False


@dataclass(frozen=True, slots=True)
class SseFallback:
    """When an SSE reader gives up on SSE and goes on by long-poll: after
    ``max_short_connections`` SSE answers in a row that ended (or broke) less than
    ``min_connection_seconds`` after they began, as behind a proxy that buffers or cuts
    event streams. A connection that lasts longer starts the count again. The reader logs a
    warning when it falls back and stays on long-poll; ``stats().sse_fell_back`` says so.
    ``sse_fallback=False`` keeps reconnecting over SSE instead."""

    min_connection_seconds: float = 1.0
    max_short_connections: int = 3

    def __post_init__(self) -> None:
        if not self.min_connection_seconds >= 0:
            raise ValueError(
                f"min_connection_seconds must be >= 0, not {self.min_connection_seconds!r}"
            )
        if not isinstance(self.max_short_connections, int) or self.max_short_connections < 1:
            raise ValueError(
                f"max_short_connections must be an int >= 1, not {self.max_short_connections!r}"
            )


@dataclass(frozen=True, slots=True)
class RetryAction:
    """What an ``on_error`` hook returns to have the failed request sent again, whatever the
    error (a 401 after a token refresh, a gateway's 404 or 409 that new headers mend, a stream
    that does not exist yet), optionally with other headers or query parameters.

    Each name given replaces the reader's or handle's own value (header names
    case-insensitively) for the retry and every later request it sends, e.g. a refreshed
    token; ``RetryAction()`` retries with the same ones. A transient failure is retried as it
    would be anyway. An error that would otherwise be raised is retried after the policy's
    backoff, at most :attr:`RetryPolicy.max_requested_retries` times in a row (then it is
    raised, saying so); every retry counts against the :class:`RetryPolicy` too.

    Writes keep their rule: a request that may have been stored (an append whose connection
    was cut after it went out, a gateway's 502 or 504, an answer that cannot be read) is never
    sent again. On such an error a :class:`RetryAction` is refused: the error is raised, its
    message saying that the retry was not made and why.
    """

    headers: Mapping[str, str] | None = None
    params: Mapping[str, str] | None = None


class Stop(enum.Enum):
    """The type of :data:`STOP`."""

    STOP = "stop"


STOP: Final = Stop.STOP


ErrorDecision = RetryAction | Stop | None


LiveMode = Literal[False, True, "long-poll", "sse"]


@dataclass(frozen=True)
class HeadResult:
    """What ``HEAD`` says about a stream."""

    status: int
    offset: str | None
    content_type: str | None
    ttl_seconds: int | None
    expires_at: str | None
    closed: bool
    etag: str | None
    headers: Mapping[str, str] = field(repr=False)  # every header, CORS ones included


@dataclass(frozen=True)
class AppendResult:
    """The outcome of one append: the tail after it, and producer facts when a producer sent it."""

    status: int
    offset: str | None
    closed: bool = False
    duplicate: bool = False
    producer_epoch: int | None = None
    producer_seq: int | None = None


@dataclass(frozen=True, slots=True)
class ProducerStats:
    """A snapshot of a producer, from its ``stats()``.

    Settled batches are ``acknowledged`` (stored, or found stored already) or ``failed``
    (see :attr:`~IdempotentProducer.failures`). ``buffered_*`` is what the producer holds:
    taken and not yet settled (in flight, queued to send, or in the batch being filled).
    ``attempts_failed`` counts requests that failed in a way worth retrying (a network error,
    a 5xx, a 429), whether or not retries remained; ``epoch_changes`` the moves to a new
    epoch within this session."""

    epoch: int
    next_seq: int
    messages_acknowledged: int
    bytes_acknowledged: int
    batches_acknowledged: int
    messages_failed: int
    batches_failed: int
    batches_in_flight: int
    batches_queued: int
    buffered_messages: int
    buffered_bytes: int
    attempts_failed: int
    epoch_changes: int


SubscriptionType = Literal["webhook", "pull-wake"]


@dataclass(frozen=True, slots=True)
class SubscriptionLink:
    """One stream a subscription follows: its ``path`` under the stream root, how it came to
    be linked (``"glob"`` or ``"explicit"``) and the offset acknowledged so far (``"-1"``:
    nothing yet; reads resume from it)."""

    path: str
    link_type: str
    acked_offset: str


@dataclass(frozen=True, slots=True)
class WebhookSigning:
    """How the server signs its webhook requests: the algorithm, the key id in force and
    where its public keys are published (a JWKS)."""

    alg: str
    kid: str
    jwks_url: str


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription as the server describes it. ``created`` says, after ``create``,
    whether it is new (the server answered 201) or was already there as configured (200)."""

    id: str
    type: SubscriptionType
    pattern: str | None
    streams: tuple[SubscriptionLink, ...]
    webhook_url: str | None
    signing: WebhookSigning | None
    wake_stream: str | None
    lease_ttl_ms: int
    created_at: str | None
    status: str
    description: str | None
    created: bool | None = None


@dataclass(frozen=True, slots=True)
class PendingStream:
    """A linked stream as a wake sees it: ``tail_offset`` is where the stream ends now, and
    ``has_pending`` says whether that is past ``acked_offset``."""

    path: str
    link_type: str
    acked_offset: str
    tail_offset: str
    has_pending: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """A claimed pull-wake wake: the worker holds it until ``done``, ``release`` or the end of
    its lease (``lease_ttl_ms``, renewed by every ack). ``token`` authorizes the acks."""

    subscription_id: str
    worker: str
    wake_id: str
    generation: int
    token: str
    streams: tuple[PendingStream, ...]
    lease_ttl_ms: int

    def __repr__(self) -> str:  # the token is a credential: keep it out of logs
        return (
            f"Claim(subscription_id={self.subscription_id!r}, worker={self.worker!r}, "
            f"wake_id={self.wake_id!r}, generation={self.generation}, "
            f"streams={len(self.streams)}, lease_ttl_ms={self.lease_ttl_ms})"
        )


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """A verified webhook request: the wake it announces, the streams with their offsets, and
    where (``callback_url``, with ``callback_token``) to acknowledge and finish it."""

    subscription_id: str
    wake_id: str
    generation: int
    streams: tuple[PendingStream, ...]
    callback_url: str
    callback_token: str

    def __repr__(self) -> str:
        return (
            f"WebhookDelivery(subscription_id={self.subscription_id!r}, "
            f"wake_id={self.wake_id!r}, generation={self.generation}, "
            f"streams={len(self.streams)})"
        )


@dataclass(frozen=True, slots=True)
class Ack:
    """``stream`` (a path under the stream root) is processed up to ``offset``: the offset a
    read of it reached (:attr:`StreamEvent.offset`), from which the next read resumes."""

    stream: str
    offset: str


@dataclass(frozen=True, slots=True)
class SubscriptionMessage:
    """One message handed to a consumer's handler: ``data`` (a JSON stream's message, or a
    chunk of another stream's bytes) of the stream at path ``stream``. ``offset`` is where
    that stream is acknowledged up to once the message's batch is handled."""

    subscription_id: str
    stream: str
    data: Any
    offset: str
    generation: int


@dataclass(slots=True)
class ConsumerStats:
    """What a consumer has done so far: wakes worked, messages handed to the handler, acks
    sent, wakes lost to fencing (their unacknowledged messages go to the next holder), and
    streams skipped because they were deleted."""

    wakes: int = 0
    messages: int = 0
    acks: int = 0
    fenced: int = 0
    missing_streams: list[str] = field(default_factory=list)
