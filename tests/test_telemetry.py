"""Telemetry: OpenTelemetry spans and metrics read back from the SDK's in-memory exporters,
against the real server, and the ``stats()`` snapshots of producers and readers."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import durable_streams as ds
from durable_streams import telemetry
from faultproxy import FaultProxy
from injection import inject_status

FAST = ds.RetryPolicy(max_retries=6, initial_delay=0.001, max_delay=0.005)
SECRET = "s3cr3t-token"


class Recorded:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def finished(self, operation: str | None = None) -> list[ReadableSpan]:
        spans = list(self.spans.get_finished_spans())
        if operation is None:
            return spans
        return [s for s in spans if s.attributes["durable_streams.operation"] == operation]

    def points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    recorded = Recorded()
    telemetry.instrument(
        tracer_provider=recorded.tracer_provider, meter_provider=recorded.meter_provider
    )
    try:
        yield recorded
    finally:
        telemetry.uninstrument()


def test_every_handle_operation_is_a_client_span(recorded: Recorded, stream_url: str) -> None:
    seen: list[httpx.Request] = []
    client = httpx.Client(event_hooks={"request": [seen.append]})
    with ds.DurableStream.create(
        stream_url, content_type="application/json", client=client, params={"token": SECRET}
    ) as handle:
        handle.append({"n": 1})
        handle.head()
        fork_url = f"{stream_url}-fork"
        handle.fork(fork_url).delete()
        handle.close_stream()
        handle.delete()
    client.close()
    spans = recorded.finished()
    operations = [s.attributes["durable_streams.operation"] for s in spans]
    assert operations == ["create", "append", "head", "fork", "delete", "close", "delete"]
    for span in spans:
        assert span.name == f"durable_streams {span.attributes['durable_streams.operation']}"
        assert span.kind.name == "CLIENT"
        assert span.attributes["durable_streams.attempt"] == 1
        assert span.attributes["http.response.status_code"] < 300
        assert span.attributes["server.address"] == "127.0.0.1"
        assert "?" not in str(span.attributes["url.full"])
        assert all(SECRET not in str(value) for value in span.attributes.values())
    assert spans[1].attributes["durable_streams.next_offset"]
    # Each request carried its own span's trace context.
    sent = [request.headers["traceparent"].split("-")[1:3] for request in seen]
    expected = [[f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}"] for s in spans]
    assert sent == expected


def test_retried_reads_are_one_span_per_attempt_and_counted(
    recorded: Recorded, server_url: str
) -> None:
    path = f"/telemetry/{uuid.uuid4().hex}"
    url = f"{server_url}{path}"
    with ds.DurableStream.create(url, content_type="application/json") as handle:
        handle.append({"n": 1})
    inject_status(server_url, path, status=503, count=2, method="GET")
    with ds.stream(url, retry=FAST) as response:
        assert response.read_json() == [{"n": 1}]
        stats = response.stats()
    reads = recorded.finished("read")
    assert [s.attributes["durable_streams.attempt"] for s in reads] == [1, 2, 3]
    assert [s.attributes["http.response.status_code"] for s in reads] == [503, 503, 200]
    assert [s.status.status_code.name for s in reads] == ["ERROR", "ERROR", "UNSET"]
    assert all(s.attributes["durable_streams.offset"] == "-1" for s in reads)
    (retries,) = [
        p
        for p in recorded.points("durable_streams.client.retries")
        if p.attributes["durable_streams.operation"] == "read"
    ]
    assert retries.value == 2
    durations = recorded.points("durable_streams.client.request.duration")
    assert sum(p.count for p in durations if p.attributes["durable_streams.operation"] == "read")
    assert (stats.requests, stats.retries, stats.messages, stats.up_to_date) == (3, 2, 1, True)
    assert stats.lag_seconds == 0.0


def test_a_failed_connection_is_an_error_span(recorded: Recorded) -> None:
    with socket_that_refuses() as url, pytest.raises(ds.TransportError):
        ds.stream(url, retry=ds.RetryPolicy(max_retries=0)).read_bytes()
    (span,) = recorded.finished("read")
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "TransportError"


def test_producer_batches_are_spans_and_metrics(recorded: Recorded, stream_url: str) -> None:
    ds.DurableStream.create(stream_url, content_type="application/json").close()
    with ds.SyncIdempotentProducer(
        stream_url,
        producer_id="telemetry",
        max_batch_items=10,
        content_type="application/json",
    ) as producer:
        producer.append_many_nowait({"n": n} for n in range(25))
        producer.flush()
        stats = producer.stats()
    assert stats.messages_acknowledged == 25
    assert stats.batches_acknowledged == 3
    assert (stats.buffered_messages, stats.buffered_bytes, stats.batches_in_flight) == (0, 0, 0)
    assert stats.messages_failed == stats.attempts_failed == 0
    produced = recorded.finished("produce")
    assert [s.attributes["durable_streams.producer.seq"] for s in produced] == [0, 1, 2]
    assert [s.attributes["durable_streams.batch.messages"] for s in produced] == [10, 10, 5]
    assert all(s.attributes["durable_streams.producer.id"] == "telemetry" for s in produced)
    (messages,) = recorded.points("durable_streams.producer.batch.messages")
    (size,) = recorded.points("durable_streams.producer.batch.size")
    (latency,) = recorded.points("durable_streams.producer.append.duration")
    assert (messages.sum, messages.count, latency.count) == (25, 3, 3)
    assert size.sum == stats.bytes_acknowledged


def test_producer_gauges_and_failures(recorded: Recorded, stream_url: str) -> None:
    handle = ds.DurableStream.create(stream_url, content_type="application/json")
    handle.close_stream()
    handle.close()
    producer = ds.SyncIdempotentProducer(
        stream_url, producer_id="gauges", content_type="application/json", linger_ms=60_000
    )
    producer.append_nowait({"n": 1})
    producer.append_nowait({"n": 2})
    # Nothing is sent before close(): the linger holds the batch open.
    before = producer.stats()
    assert before.buffered_messages == 2 and before.buffered_bytes > 0
    gauges = recorded.points("durable_streams.producer.buffered.size")
    mine = [p for p in gauges if p.attributes["durable_streams.producer.id"] == "gauges"]
    assert [p.value for p in mine] == [before.buffered_bytes]
    with pytest.raises(ds.DurableStreamError):
        producer.close()
    after = producer.stats()
    assert (after.messages_failed, after.batches_failed, after.messages_acknowledged) == (2, 1, 0)
    assert after.buffered_bytes == 0


def test_live_reader_lag_gauge(recorded: Recorded, stream_url: str) -> None:
    with ds.DurableStream.create(stream_url, content_type="application/json") as handle:
        handle.append({"n": 1})
        with handle.stream(live="long-poll") as response:
            items = iter(response)
            assert next(items) == {"n": 1}
            assert response.stats().lag_seconds == 0.0
            (lag,) = [
                p
                for p in recorded.points("durable_streams.reader.lag")
                if p.attributes["url.full"] == stream_url
            ]
            assert lag.value == 0.0


def test_a_reader_behind_the_tail_reports_how_long() -> None:
    from durable_streams._reading._session import ReadSession

    session = ReadSession("http://127.0.0.1:1/s", offset="-1", live=True)
    session._up_to_date_changed = 100.0
    assert session.lag_seconds(now=102.5) == 2.5
    assert session.stats().up_to_date is False


@pytest.mark.anyio
async def test_async_reads_and_cancelled_requests_end_their_spans(
    recorded: Recorded, stream_url: str
) -> None:
    async with await ds.AsyncDurableStream.create(
        stream_url, content_type="application/json"
    ) as handle:
        await handle.append({"n": 1})
        async with handle.stream() as response:
            assert await response.read_json() == [{"n": 1}]
        # A long-poll at the tail waits for the server; cancelling it still ends its span.
        with anyio.move_on_after(0.2):
            async with handle.stream(offset="now", live="long-poll") as response:
                async for _ in response:
                    pass
    first, *_, cancelled = recorded.finished("read")
    assert first.attributes["http.response.status_code"] == 200
    assert cancelled.attributes["durable_streams.live"] == "long-poll"
    assert cancelled.attributes["error.type"] in ("CancelledError", "Cancelled")


def test_nothing_is_recorded_once_uninstrumented(stream_url: str) -> None:
    recorded = Recorded()
    telemetry.instrument(
        tracer_provider=recorded.tracer_provider, meter_provider=recorded.meter_provider
    )
    assert telemetry.instrumented()
    telemetry.uninstrument()
    with ds.DurableStream.create(stream_url, content_type="application/json") as handle:
        handle.append({"n": 1})
    assert recorded.finished() == []


def test_instrument_without_opentelemetry_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    with pytest.raises(ImportError, match=r"durable-streams-rs\[otel\]"):
        telemetry.instrument()
    assert not telemetry.instrumented()


class socket_that_refuses:
    """A URL on 127.0.0.1 where nothing listens (the port was bound, then released)."""

    def __enter__(self) -> str:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return f"http://127.0.0.1:{port}/nothing"

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("live", ["long-poll", "sse"])
def test_with_telemetry_on_cut_connections_still_deliver_each_message_once(
    recorded: Recorded, server_url: str, live: ds.LiveMode
) -> None:
    path = f"/telemetry/{uuid.uuid4().hex}"
    fast = ds.RetryPolicy(max_retries=None, initial_delay=0.001, max_delay=0.01)
    handle = ds.DurableStream.create(server_url + path, content_type="application/json")

    def write() -> None:  # one append at a time while the reader tails: many responses
        for n in range(150):
            handle.append({"n": n})
        handle.close_stream()

    writer = threading.Thread(target=write)
    with (
        FaultProxy(server_url, seed=11, cut_mid_response=0.9) as proxy,
        ds.stream(proxy.url + path, live=live, retry=fast) as response,
    ):
        writer.start()
        assert [item["n"] for item in response.iter_json()] == list(range(150))
        assert response.stream_closed
        cuts = proxy.stats["cuts_mid_response"]
    writer.join()
    handle.close()
    reads = recorded.finished("read")
    assert cuts > 0 and len(reads) == response.stats().requests
