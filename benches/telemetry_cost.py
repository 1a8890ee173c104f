"""What OpenTelemetry costs when it is on: client CPU with ``telemetry.instrument()`` next to
the same work with telemetry off, against the pinned reference server.

    .venv/bin/python benches/telemetry_cost.py [--appends 2000] [--messages 200000] [--repeat 3]

Each run is a fresh subprocess, timed alone (``time.process_time``: every thread of the
client), off and on interleaved; medians of ``--repeat``. "On" is the SDK as an application
would set it up: a ``TracerProvider`` whose ``BatchSpanProcessor`` exports to an in-memory
exporter, and a ``MeterProvider`` with an in-memory reader. Workloads:

- ``append``: ``--appends`` appends of one small message, one request each (one span each);
- ``produce``: ``--messages`` small messages through the idempotent producer (a span per
  batch, so the cost spreads over the messages of the batch);
- ``long-poll``: a live reader receiving ``--appends`` one-message answers (a span per
  request), written by another process one every 1.5 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "refserver"))

WRITER = r"""
import sys, time
import durable_streams as ds
with ds.DurableStream(sys.argv[1], content_type="application/json") as writer:
    for n in range(int(sys.argv[2])):
        writer.append({"n": n})
        time.sleep(0.0015)
    writer.close_stream()
"""

CHILD = r"""
import json, subprocess, sys, time
import durable_streams as ds

WRITER = sys.argv[5]

base, workload, mode, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if mode == "on":
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from durable_streams import telemetry
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    telemetry.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
url = f"{base}/telemetry-cost/{time.time_ns()}"
handle = ds.DurableStream.create(url, content_type="application/json")
handle.head()  # warm the connection
if workload == "append":
    start = time.process_time()
    for n in range(count):
        handle.append({"n": n})
    cpu = time.process_time() - start
elif workload == "produce":
    start = time.process_time()
    with ds.SyncIdempotentProducer(handle, producer_id="cost") as producer:
        for n in range(count):
            producer.append_nowait({"n": n})
        producer.flush()
    cpu = time.process_time() - start
else:
    # The writer is a process of its own: only the reader's CPU is counted here.
    seen = 0
    with ds.stream(url, live="long-poll") as res:
        items = res.iter_json()
        writer = subprocess.Popen([sys.executable, "-c", WRITER, url, str(count)])
        start = time.process_time()
        for _ in items:
            seen += 1
    cpu = time.process_time() - start
    writer.wait()
    count = seen
print(json.dumps({"cpu": cpu, "n": count}))
"""


def run(base: str, workload: str, mode: str, count: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, base, workload, mode, str(count), WRITER],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result = json.loads(done.stdout)
    return float(result["cpu"]) / int(result["n"]) * 1e6


def main() -> None:
    from launch import ReferenceServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    counts = {"append": args.appends, "produce": args.messages, "long-poll": args.appends}
    with ReferenceServer() as server:
        base = f"{server.url}/{uuid.uuid4().hex}"
        print(f"{'workload':10} {'off µs/msg':>12} {'on µs/msg':>12} {'on/off':>8}")
        for workload, count in counts.items():
            runs: dict[str, list[float]] = {"off": [], "on": []}
            for _ in range(args.repeat):
                for mode in ("off", "on"):
                    runs[mode].append(run(base, workload, mode, count))
            off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
            print(f"{workload:10} {off:12.2f} {on:12.2f} {on / off:8.2f}x")


if __name__ == "__main__":
    main()
