"""The main job: a JSON stream written and tailed live against a local reference server.

    python examples/demo.py [--events N] [--live sse|long-poll] [--url BASE_URL]

Without ``--url`` it starts the pinned reference server on 127.0.0.1 (installing it with npm
on first use) and stops it at the end.
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
from durable_streams import DurableStream

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def server(url: str | None) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    sys.path.insert(0, str(REPO / "refserver"))
    from launch import ReferenceServer

    print("starting the reference server (@durable-streams/server) on 127.0.0.1 ...")
    with ReferenceServer() as running:
        print(f"  listening at {running.url}")
        yield running.url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--live", choices=["sse", "long-poll"], default="sse")
    parser.add_argument("--url", help="base URL of a running server (default: start one)")
    args = parser.parse_args()

    print(f"durable_streams {durable_streams.__version__}, core: {durable_streams.IMPLEMENTATION}")
    with server(args.url) as base:
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
        final = handle.close_stream()
        reader.join(timeout=120)
        total = time.perf_counter() - began
        handle.close()

        if reader.is_alive() or reader_error:
            print(f"reader failed: {reader_error or 'still running after 120 s'}")
            return 1
        in_order = [e["seq"] for e in received] == list(range(args.events))
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        print(f"wrote {args.events} events in {wrote:.2f} s ({args.events / wrote:,.0f} appends/s)")
        print(
            f"read {len(received)} events live, each exactly once and in order: {in_order}; "
            f"append-to-read latency p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        print(f"closed the stream at offset {final.offset}; the reader stopped at EOF")
        print(f"done in {total:.2f} s")
        return 0 if in_order else 1


if __name__ == "__main__":
    raise SystemExit(main())
