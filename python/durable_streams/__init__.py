"""durable_streams: a fast, dependable client for the Durable Streams protocol.

Read with :func:`stream` / :func:`astream`; create, append, close, delete and fork with
:class:`DurableStream` / :class:`AsyncDurableStream`. Errors are :class:`DurableStreamError`
subclasses (see ``durable_streams._errors`` for the tree).
"""

from __future__ import annotations

import inspect

from ._client_async import AsyncClient
from ._client_sync import Client
from ._core import IMPLEMENTATION
from ._errors import (
    AckOffsetError,
    AlreadyClaimedError,
    AppendStreamError,
    BadRequestError,
    Base64DecodeError,
    BufferFullError,
    ConflictError,
    ContentTypeError,
    ContentTypeMismatchError,
    DeadlineExceededError,
    DurableStreamError,
    EventTooLargeError,
    FailedBatch,
    FencedError,
    GenerationError,
    HandleClosedError,
    HTTPParseError,
    InvalidOffsetError,
    JSONParseError,
    ModelProviderError,
    NoPendingWorkError,
    ParseError,
    PayloadTooLargeError,
    ProducerClosedError,
    ProducerError,
    ProducerStateError,
    ProducerStateLockedError,
    ProtocolError,
    ProxyError,
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
    StateValueError,
    StreamClosedError,
    StreamExistsError,
    StreamNotFoundError,
    SubscriptionError,
    SubscriptionExistsError,
    SubscriptionNotFoundError,
    TransportError,
    TxidTimeoutError,
    UndeliveredError,
    UpstreamError,
    UsageError,
    WakeTokenError,
    WakeTokenExpiredError,
    WebhookUrlRejectedError,
    WebhookVerificationError,
)
from ._protocol import OFFSET_BEGINNING, OFFSET_NOW
from ._reading._response_async import AsyncStreamResponse, astream
from ._reading._response_sync import StreamResponse, stream
from ._retry import RetryPolicy
from ._subscriptions._client_async import AsyncSubscriptionConsumer, AsyncSubscriptions
from ._subscriptions._client_sync import SubscriptionConsumer, Subscriptions
from ._values import (
    STOP,
    Ack,
    AppendResult,
    Claim,
    ConsumerStats,
    ErrorDecision,
    HeadResult,
    JsonBatch,
    LiveMode,
    PendingStream,
    ProducerStats,
    ReaderStats,
    RetryAction,
    SseFallback,
    StreamEvent,
    Subscription,
    SubscriptionLink,
    SubscriptionMessage,
    WebhookDelivery,
    WebhookSigning,
)
from ._writing._handle_async import AsyncDurableStream
from ._writing._handle_sync import DurableStream
from ._writing._producer_async import Acknowledgement, IdempotentProducer
from ._writing._producer_threaded import SyncIdempotentProducer

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
    "AppendStreamError",
    "AsyncClient",
    "AsyncDurableStream",
    "AsyncStreamResponse",
    "AsyncSubscriptionConsumer",
    "AsyncSubscriptions",
    "BadRequestError",
    "Base64DecodeError",
    "BufferFullError",
    "Claim",
    "Client",
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
    "GenerationError",
    "HTTPParseError",
    "HandleClosedError",
    "HeadResult",
    "IdempotentProducer",
    "InvalidOffsetError",
    "JSONParseError",
    "JsonBatch",
    "LiveMode",
    "ModelProviderError",
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
    "ProxyError",
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
    "SseFallback",
    "StaleEpochError",
    "StateMessageError",
    "StateValueError",
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
    "TxidTimeoutError",
    "UndeliveredError",
    "UpstreamError",
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


def _name_public_module(names: dict[str, object], public: list[str], module: str) -> None:
    """Public names say where users find them (``{module}.Name`` in reprs and tracebacks),
    not which private module of the package defines them."""
    for name in public:
        value = names[name]
        if (isinstance(value, type) or inspect.isfunction(value)) and value.__module__.startswith(
            f"{module}."
        ):
            value.__module__ = module


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("durable-streams-rs")
    except PackageNotFoundError:
        return "0+unknown"


__version__ = _version()
_name_public_module(globals(), __all__, __name__)
