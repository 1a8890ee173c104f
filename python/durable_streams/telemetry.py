"""OpenTelemetry spans and metrics for every request durable_streams makes (the ``otel`` extra).

Install it with ``pip install 'durable-streams-rs[otel]'`` and call :func:`instrument` once at
start-up; until then the library records nothing and each HTTP request pays one attribute
test. Spans and metrics go to the global providers, or to the ones passed in.

**Spans.** Each HTTP request (each attempt of a retried one) is a span of kind CLIENT named
``durable_streams <operation>``, where the operation is ``read``, ``create``, ``append``,
``head``, ``close``, ``delete``, ``fork``, ``produce`` (a producer's batch) or
``subscription``. A span starts when the request is sent and ends when its answer's status and
headers have arrived (a live SSE response's events are not part of it) or it failed. Its
attributes: ``http.request.method``, ``url.full`` (without query string or user info),
``server.address``, ``server.port``, ``durable_streams.operation``, ``durable_streams.attempt``
(1 for the first try), ``http.response.status_code``, ``durable_streams.offset`` (where a read
starts), ``durable_streams.next_offset`` (where the answer says the stream continues), and for
producer batches ``durable_streams.producer.id``, ``.epoch``, ``.seq``,
``durable_streams.batch.messages`` and ``durable_streams.batch.bytes``. A failed request has
status ERROR and ``error.type``. The W3C trace context is sent along (``traceparent``), so a
server that takes part in tracing continues the trace.

**Metrics.**

===============================================  ===========  ==============================
name                                             unit         what
===============================================  ===========  ==============================
``durable_streams.client.request.duration``      s            histogram, per request
``durable_streams.client.retries``               {retry}      counter, per retry decided
``durable_streams.producer.append.duration``     s            histogram: a batch's first
                                                              send to its settlement
``durable_streams.producer.batch.size``          By           histogram, per batch sent
``durable_streams.producer.batch.messages``      {message}    histogram, per batch sent
``durable_streams.producer.batches.in_flight``   {batch}      gauge, per producer
``durable_streams.producer.buffered.size``       By           gauge, per producer
``durable_streams.reader.lag``                   s            gauge, per live reader: how
                                                              long it has been behind the
                                                              stream's tail (0 when up to
                                                              date)
===============================================  ===========  ==============================

Offsets are opaque in the protocol, so a reader cannot say how many messages it is behind;
how long it has been behind is what it knows. Credentials never reach telemetry: no headers
are recorded, and URLs lose their query string and user info.

Without OpenTelemetry, ``stats()`` on producers and readers gives a snapshot of the same
numbers (:class:`~durable_streams.ProducerStats`, :class:`~durable_streams.ReaderStats`).
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from ._errors import redact_url
from ._protocol import H_CLOSED, H_FORKED_FROM, H_NEXT_OFFSET, HttpRequest


class _ProducerSettings(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def producer_id(self) -> str: ...


class Producer(Protocol):
    """What telemetry reads of a producer (the sequencer), from the metric reader's thread."""

    @property
    def settings(self) -> _ProducerSettings: ...
    @property
    def batches_in_flight(self) -> int: ...
    @property
    def buffered_bytes(self) -> int: ...


class Reader(Protocol):
    """What telemetry reads of a live reader (its session)."""

    @property
    def url(self) -> str: ...
    @property
    def live(self) -> Any: ...
    @property
    def done(self) -> bool: ...

    def lag_seconds(self, now: float | None = None) -> float: ...


__all__ = ["instrument", "instrumented", "operation_of", "uninstrument"]

T = TypeVar("T")


class Live(Generic[T]):
    """The objects alive now, held weakly (telemetry keeps nothing alive); added to from any
    thread, read by the metric reader's thread."""

    def __init__(self) -> None:
        self._items: weakref.WeakSet[T] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, item: T) -> None:
        with self._lock:
            self._items.add(item)

    def snapshot(self) -> list[T]:
        with self._lock:
            return list(self._items)


# What the observable gauges look at.
producers: Live[Producer] = Live()
readers: Live[Reader] = Live()


def instrument(*, tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Start recording spans and metrics, to the given providers or the global ones.

    Calling it again replaces the providers. Raises :class:`ImportError` naming the extra to
    install when OpenTelemetry is not there."""
    global active
    try:
        import opentelemetry.metrics
        import opentelemetry.trace  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "durable_streams telemetry needs OpenTelemetry: pip install 'durable-streams-rs[otel]'"
        ) from exc
    active = Instruments(tracer_provider, meter_provider)


def uninstrument() -> None:
    """Stop recording; requests made from now on cost nothing extra."""
    global active
    active = None


def instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return active is not None


class Instruments:
    """The tracer and the metric instruments, made once by :func:`instrument`."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        from opentelemetry import metrics, propagate, trace

        from . import __version__

        self._trace = trace
        self._inject = propagate.inject
        self.tracer = trace.get_tracer(
            "durable_streams", __version__, tracer_provider=tracer_provider
        )
        meter = metrics.get_meter("durable_streams", __version__, meter_provider=meter_provider)
        self.request_duration = meter.create_histogram(
            "durable_streams.client.request.duration",
            unit="s",
            description="Time from sending a request to its answer's status and headers",
        )
        self.retries = meter.create_counter(
            "durable_streams.client.retries",
            unit="{retry}",
            description="Requests sent again after a transient failure",
        )
        self.append_duration = meter.create_histogram(
            "durable_streams.producer.append.duration",
            unit="s",
            description="Time from a producer batch's first send to its settlement",
        )
        self.batch_size = meter.create_histogram(
            "durable_streams.producer.batch.size",
            unit="By",
            description="Bytes in each producer batch sent",
        )
        self.batch_messages = meter.create_histogram(
            "durable_streams.producer.batch.messages",
            unit="{message}",
            description="Messages in each producer batch sent",
        )
        observation = metrics.Observation

        def per_producer(value: Callable[[Producer], int]) -> Callable[[Any], Iterable[Any]]:
            def observe(_options: Any) -> Iterable[Any]:
                for core in producers.snapshot():
                    yield observation(value(core), producer_attributes(core))

            return observe

        def lag(_options: Any) -> Iterable[Any]:
            now = time.monotonic()
            for session in readers.snapshot():
                if session.live and not session.done:
                    attributes = {"url.full": url_attributes(session.url)[0]}
                    yield observation(session.lag_seconds(now), attributes)

        meter.create_observable_gauge(
            "durable_streams.producer.batches.in_flight",
            callbacks=[per_producer(lambda core: core.batches_in_flight)],
            unit="{batch}",
            description="Batches sent and not yet answered, per producer",
        )
        meter.create_observable_gauge(
            "durable_streams.producer.buffered.size",
            callbacks=[per_producer(lambda core: core.buffered_bytes)],
            unit="By",
            description="Bytes taken by a producer and not yet acknowledged",
        )
        meter.create_observable_gauge(
            "durable_streams.reader.lag",
            callbacks=[lag],
            unit="s",
            description="How long a live reader has been behind the stream's tail",
        )

    def request(
        self,
        operation: str | None,
        req: HttpRequest,
        attempt: int,
        attributes: Mapping[str, Any] | None = None,
    ) -> tuple[HttpRequest, RequestSpan]:
        """Start the span of ``req`` (``operation`` None: told by the request itself); the
        request to send, carrying the trace context, and the span to finish."""
        operation = operation or operation_of(req)
        url, address, port = url_attributes(req.url)
        span_attributes: dict[str, Any] = {
            "http.request.method": req.method,
            "url.full": url,
            "server.address": address,
            "server.port": port,
            "durable_streams.operation": operation,
            "durable_streams.attempt": attempt,
        }
        if attempt > 1:
            span_attributes["http.request.resend_count"] = attempt - 1
        if req.method == "GET":
            for name, value in req.params:
                if name == "offset":
                    span_attributes["durable_streams.offset"] = value
                elif name == "live":
                    span_attributes["durable_streams.live"] = value
        if attributes:
            span_attributes.update(attributes)
        span = self.tracer.start_span(
            f"durable_streams {operation}",
            kind=self._trace.SpanKind.CLIENT,
            attributes=span_attributes,
        )
        carrier: dict[str, str] = {}
        self._inject(carrier, context=self._trace.set_span_in_context(span))
        if carrier:
            headers = {**req.headers, **carrier}
            req = HttpRequest(req.method, req.url, headers, req.params, req.content, req.idempotent)
        return req, RequestSpan(self, span, operation)


class RequestSpan:
    """One request's span and its duration, finished by :meth:`answered` or :meth:`failed`."""

    __slots__ = ("_instruments", "_operation", "_span", "_started")

    def __init__(self, instruments: Instruments, span: Any, operation: str) -> None:
        self._instruments = instruments
        self._span = span
        self._operation = operation
        self._started = time.perf_counter()

    def answered(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        span = self._span
        span.set_attribute("http.response.status_code", status)
        next_offset = headers.get(H_NEXT_OFFSET) if headers is not None else None
        if next_offset is not None:
            span.set_attribute("durable_streams.next_offset", next_offset)
        attributes: dict[str, Any] = {
            "durable_streams.operation": self._operation,
            "http.response.status_code": status,
        }
        if status >= 400:
            trace = self._instruments._trace
            span.set_attribute("error.type", str(status))
            span.set_status(trace.Status(trace.StatusCode.ERROR))
            attributes["error.type"] = str(status)
        self._finish(attributes)

    def failed(self, error: BaseException) -> None:
        trace = self._instruments._trace
        kind = type(error).__qualname__
        self._span.set_attribute("error.type", kind)
        self._span.set_status(trace.Status(trace.StatusCode.ERROR, kind))
        self._finish({"durable_streams.operation": self._operation, "error.type": kind})

    def _finish(self, attributes: Mapping[str, Any]) -> None:
        self._span.end()
        elapsed = time.perf_counter() - self._started
        self._instruments.request_duration.record(elapsed, attributes)


@functools.lru_cache(maxsize=1024)
def url_attributes(url: str) -> tuple[str, str, int]:
    """A request URL's ``url.full`` (without query or user info), host and port; a reader or
    producer sends to one URL again and again, so this is worked out once per URL."""
    safe = redact_url(url) or ""
    parts = urlsplit(safe)
    return safe, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def operation_of(req: HttpRequest) -> str:
    """What a request does, told by its method and headers."""
    method = req.method
    if "/__ds/" in req.url:
        return "subscription"
    if method == "GET":
        return "read"
    if method == "HEAD":
        return "head"
    if method == "DELETE":
        return "delete"
    names = {name.lower(): value for name, value in req.headers.items()}
    if method == "PUT":
        return "fork" if H_FORKED_FROM in names else "create"
    if method == "POST" and names.get(H_CLOSED, "").lower() == "true":
        return "close"
    return "append" if method == "POST" else method.lower()


def producer_attributes(core: Producer) -> dict[str, Any]:
    settings = core.settings
    return {
        "url.full": url_attributes(settings.url)[0],
        "durable_streams.producer.id": settings.producer_id,
    }


active: Instruments | None = None
