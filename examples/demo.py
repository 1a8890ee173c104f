"""The main job: a JSON stream written and tailed live against a local Durable Streams server.

    python examples/demo.py [--events N] [--bulk N] [--live sse|long-poll] [--url BASE_URL]

It writes ``--events`` events one append at a time (to show append-to-read latency), then
``--bulk`` more through an idempotent producer (batched, pipelined, exactly-once), then closes
the stream through the producer, while a live reader checks it gets every event once, in order.

Without ``--url`` it starts the package's embedded server on 127.0.0.1 (``--reference``: the
pinned npm reference server instead, installed with npm on first use) and stops it at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import durable_streams
from durable_streams import DurableStream, SyncIdempotentProducer

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def server(url: str | None, reference: bool) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    if reference:
        sys.path.insert(0, str(REPO / "refserver"))
        from launch import ReferenceServer

        print("starting the reference server (@durable-streams/server) on 127.0.0.1 ...")
        with ReferenceServer() as running:
            print(f"  listening at {running.url}")
            yield running.url
        return
    from durable_streams.testing import local_server

    print("starting the embedded Durable Streams server (durable_streams.server) on 127.0.0.1 ...")
    with local_server(long_poll_timeout=30.0) as running_url:
        print(f"  listening at {running_url}")
        yield running_url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--bulk", type=int, default=200_000)
    parser.add_argument("--live", choices=["sse", "long-poll"], default="sse")
    parser.add_argument("--url", help="base URL of a running server (default: start one)")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="start the npm reference server (needs Node.js) instead of the embedded one",
    )
    args = parser.parse_args()

    print(f"durable_streams {durable_streams.__version__}, core: {durable_streams.IMPLEMENTATION}")
    with server(args.url, args.reference) as base:
        url = f"{base}/demo/{uuid.uuid4().hex}"
        handle = DurableStream.create(url, content_type="application/json", ttl_seconds=3600)
        print(f"created JSON stream {url}")
        start_offset = handle.head().offset or "-1"

        received: list[Any] = []
        latencies: list[float] = []
        reader_error: list[BaseException] = []

        def read_live() -> None:
            try:
                with handle.stream(offset=start_offset, live=args.live) as res:
                    for event in res.iter_json():
                        latencies.append(time.perf_counter() - event["sent_at"])
                        received.append(event)
            except BaseException as exc:  # reported by the main thread
                reader_error.append(exc)

        reader = threading.Thread(target=read_live, name="live-reader")
        reader.start()
        print(f"tailing it live over {args.live}; writing {args.events} events ...")

        began = time.perf_counter()
        for i in range(args.events):
            handle.append({"seq": i, "kind": "click", "x": i % 640, "sent_at": time.perf_counter()})
        wrote = time.perf_counter() - began
        print(f"wrote {args.events} events in {wrote:.2f} s ({args.events / wrote:,.0f} appends/s)")

        print(f"writing {args.bulk} more through an IdempotentProducer ...")
        bulk_began = time.perf_counter()
        with SyncIdempotentProducer(handle, producer_id="demo-writer", auto_claim=True) as producer:
            for i in range(args.events, args.events + args.bulk):
                producer.append_nowait(
                    {"seq": i, "kind": "scroll", "y": i % 480, "sent_at": time.perf_counter()}
                )
            final = producer.close_stream()
        bulk = time.perf_counter() - bulk_began
        print(f"  delivered in {bulk:.2f} s ({args.bulk / bulk:,.0f} events/s)")
        reader.join(timeout=120)
        total = time.perf_counter() - began
        handle.close()

        if reader.is_alive() or reader_error:
            print(f"reader failed: {reader_error or 'still running after 120 s'}")
            return 1
        in_order = [e["seq"] for e in received] == list(range(args.events + args.bulk))
        latencies = latencies[: args.events]  # one append each; the bulk ones wait in batches
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        print(
            f"read {len(received)} events live, each exactly once and in order: {in_order}; "
            f"single-append-to-read latency p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        print(f"closed the stream at offset {final.offset}; the reader stopped at EOF")
        print(f"done in {total:.2f} s")
        return 0 if in_order else 1


if __name__ == "__main__":
    raise SystemExit(main())
