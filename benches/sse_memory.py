"""Bounded memory: a long SSE stream through the native SseDecoder keeps RSS flat.

    .venv/bin/python benches/sse_memory.py [--total-mb 1024] [--mode json|text] [--pure]

The stream is generated on the fly, 64 KiB at a time, from one ~1 MB block of SSE events
(20 data events of 1,000 small JSON messages, each followed by a control event) repeated
until ``--total-mb`` MiB have been fed; it is never held whole, and every decoded item is
dropped at once. Chunk boundaries drift through the block, so they fall at every kind of
position inside lines and events. Reports peak RSS (``ru_maxrss``) before and after, and the
largest current RSS seen while feeding (sampled from /proc every 64 chunks).
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _payloads as P

MIB = 1 << 20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / MIB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--total-mb", type=int, default=1024, help="MiB of SSE to feed")
    ap.add_argument("--mode", choices=("json", "text"), default="json")
    ap.add_argument("--pure", action="store_true", help="the pure-Python decoder instead")
    args = ap.parse_args()

    if args.pure:
        from durable_streams._core import _pure as core
    else:
        from durable_streams._core import _native as core

    block = b"".join(
        P.json_sse_body(1).replace(b'"upToDate":true', b'"upToDate":false') for _ in range(20)
    )
    ring = block + block[: P.CHUNK]  # any 64 KiB window of the repeated stream is a slice
    total = args.total_mb * MIB
    decoder = core.SseDecoder(args.mode)
    gc.collect()
    before_peak = peak_rss_mib()
    before_now = current_rss_mib()

    fed = items = controls = 0
    max_now = before_now
    i = 0
    t0 = time.perf_counter()
    while fed < total:
        start = fed % len(block)
        chunk = ring[start : start + min(P.CHUNK, total - fed)]
        for item in decoder.feed(chunk):
            if type(item) is core.Control:
                controls += 1
            else:
                items += 1
        fed += len(chunk)
        i += 1
        if i % 64 == 0:
            max_now = max(max_now, current_rss_mib())
    elapsed = time.perf_counter() - t0
    items += len(decoder.flush())
    after_peak = peak_rss_mib()

    impl = "pure" if args.pure else "native"
    print(
        f"{impl} SseDecoder({args.mode!r}): fed {fed / MIB:,.0f} MiB in {i:,} chunks of "
        f"64 KiB in {elapsed:.1f} s ({fed / MIB / elapsed:,.0f} MiB/s)"
    )
    print(f"  data events {items:,} (x1,000 messages in json mode), control events {controls:,}")
    print(f"  peak RSS before feeding: {before_peak:7.1f} MiB   (current {before_now:.1f} MiB)")
    print(
        f"  peak RSS after feeding:  {after_peak:7.1f} MiB   "
        f"(growth {after_peak - before_peak:+.1f} MiB; largest current RSS sampled "
        f"{max_now:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
