"""durable_streams: a fast, dependable client for the Durable Streams protocol.

Read with :func:`stream` / :func:`astream`; create, append, close, delete and fork with
:class:`DurableStream` / :class:`AsyncDurableStream`. Errors are :class:`DurableStreamError`
subclasses (see ``durable_streams._errors`` for the tree).
"""

from __future__ import annotations

from ._aproducer import Acknowledgement, IdempotentProducer
from ._async import AsyncDurableStream, AsyncStreamResponse, astream
from ._errors import (
    AckOffsetError,
    AlreadyClaimedError,
    BadRequestError,
    Base64DecodeError,
    BufferFullError,
    ConflictError,
    ContentTypeError,
    ContentTypeMismatchError,
    DeadlineExceededError,
    DurableStreamError,
    EventTooLargeError,
    FencedError,
    HandleClosedError,
    HTTPParseError,
    InvalidOffsetError,
    JSONParseError,
    NoPendingWorkError,
    ParseError,
    PayloadTooLargeError,
    ProducerClosedError,
    ProducerError,
    ProducerStateError,
    ProducerStateLockedError,
    ProtocolError,
    RateLimitedError,
    ResponseError,
    RetentionGoneError,
    SeqConflictError,
    SequenceGapError,
    SequenceReusedError,
    ServerError,
    SSEParseError,
    StaleEpochError,
    StateMessageError,
    StreamClosedError,
    StreamExistsError,
    StreamNotFoundError,
    SubscriptionError,
    SubscriptionExistsError,
    SubscriptionNotFoundError,
    TransportError,
    UndeliveredError,
    UsageError,
    WakeTokenError,
    WakeTokenExpiredError,
    WebhookUrlRejectedError,
    WebhookVerificationError,
)
from ._impl import IMPLEMENTATION
from ._producer import FailedBatch, ProducerStats
from ._protocol import OFFSET_BEGINNING, OFFSET_NOW, AppendResult, HeadResult, LiveMode
from ._read import STOP, ErrorDecision, ReaderStats, RetryAction
from ._retry import RetryPolicy
from ._shared import StreamEvent
from ._sproducer import SyncIdempotentProducer
from ._subscribe_async import AsyncSubscriptionConsumer, AsyncSubscriptions
from ._subscribe_sync import SubscriptionConsumer, Subscriptions
from ._subscriptions import (
    Ack,
    Claim,
    ConsumerStats,
    PendingStream,
    Subscription,
    SubscriptionLink,
    SubscriptionMessage,
    WebhookDelivery,
    WebhookSigning,
)
from ._sync import DurableStream, StreamResponse, stream

__all__ = [
    "IMPLEMENTATION",
    "OFFSET_BEGINNING",
    "OFFSET_NOW",
    "STOP",
    "Ack",
    "AckOffsetError",
    "Acknowledgement",
    "AlreadyClaimedError",
    "AppendResult",
    "AsyncDurableStream",
    "AsyncStreamResponse",
    "AsyncSubscriptionConsumer",
    "AsyncSubscriptions",
    "BadRequestError",
    "Base64DecodeError",
    "BufferFullError",
    "Claim",
    "ConflictError",
    "ConsumerStats",
    "ContentTypeError",
    "ContentTypeMismatchError",
    "DeadlineExceededError",
    "DurableStream",
    "DurableStreamError",
    "ErrorDecision",
    "EventTooLargeError",
    "FailedBatch",
    "FencedError",
    "HTTPParseError",
    "HandleClosedError",
    "HeadResult",
    "IdempotentProducer",
    "InvalidOffsetError",
    "JSONParseError",
    "LiveMode",
    "NoPendingWorkError",
    "ParseError",
    "PayloadTooLargeError",
    "PendingStream",
    "ProducerClosedError",
    "ProducerError",
    "ProducerStateError",
    "ProducerStateLockedError",
    "ProducerStats",
    "ProtocolError",
    "RateLimitedError",
    "ReaderStats",
    "ResponseError",
    "RetentionGoneError",
    "RetryAction",
    "RetryPolicy",
    "SSEParseError",
    "SeqConflictError",
    "SequenceGapError",
    "SequenceReusedError",
    "ServerError",
    "StaleEpochError",
    "StateMessageError",
    "StreamClosedError",
    "StreamEvent",
    "StreamExistsError",
    "StreamNotFoundError",
    "StreamResponse",
    "Subscription",
    "SubscriptionConsumer",
    "SubscriptionError",
    "SubscriptionExistsError",
    "SubscriptionLink",
    "SubscriptionMessage",
    "SubscriptionNotFoundError",
    "Subscriptions",
    "SyncIdempotentProducer",
    "TransportError",
    "UndeliveredError",
    "UsageError",
    "WakeTokenError",
    "WakeTokenExpiredError",
    "WebhookDelivery",
    "WebhookSigning",
    "WebhookUrlRejectedError",
    "WebhookVerificationError",
    "__version__",
    "astream",
    "stream",
]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("durable-streams-rs")
    except PackageNotFoundError:
        return "0+unknown"


__version__ = _version()
