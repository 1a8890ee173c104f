"""Materializing a state stream: CPU per change message next to a plain read of the same
stream.

    .venv/bin/python benches/state_bench.py [--changes 1000000] [--keys 10000] [--repeat 3]

Writes ``--changes`` change messages (upserts over ``--keys`` keys of two types, with a
delete every 50th message) to a stream on the pinned reference server, through the
idempotent producer, then reads it back in fresh subprocesses, each timed alone (client CPU,
median of ``--repeat``): ``iter_json`` counting messages (the floor: HTTP, decoding and
hand-out), ``materialize``, and ``load_state`` with malformed messages skipped. The ratio to
the plain read is what folding the changes adds per message.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "refserver"))

CHILD = r"""
import json, sys, time
import durable_streams as ds
from durable_streams.state import load_state, materialize
url, what = sys.argv[1], sys.argv[2]
start = time.process_time()
if what == "iter_json":
    with ds.stream(url) as res:
        n = sum(1 for _ in res.iter_json())
elif what == "materialize":
    state = materialize(url)
    n = sum(len(keys) for keys in state.values())
else:
    n = len(load_state(url, on_malformed="skip").types)
print(json.dumps({"cpu": time.process_time() - start, "n": n}))
"""


def main() -> None:
    import durable_streams as ds
    from durable_streams.state import StateWriter
    from launch import ReferenceServer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with ReferenceServer(compression=False) as server:
        url = f"{server.url}/v1/stream/state-bench-{uuid.uuid4().hex}"
        ds.DurableStream.create(url, content_type="application/json").close()
        t0 = time.perf_counter()
        with ds.SyncIdempotentProducer(
            url, producer_id="bench", content_type="application/json"
        ) as producer:
            writer = StateWriter(producer)
            for i in range(args.changes):
                kind = "user" if i % 2 else "order"
                key = str(i % args.keys)
                if i % 50 == 49:
                    writer.delete(kind, key)
                else:
                    writer.upsert(kind, key, {"i": i, "name": f"n-{i % 977}", "ok": True})
        print(f"wrote {args.changes:,} changes in {time.perf_counter() - t0:.1f} s", flush=True)
        results: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for what in ("iter_json", "materialize", "load_state skip"):
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, url, what.split()[0]],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=600,
                )
                results.setdefault(what, []).append(json.loads(done.stdout)["cpu"])
    floor = statistics.median(results["iter_json"])
    print(f"{args.changes:,} change messages, client CPU, median of {args.repeat}:")
    for what, values in results.items():
        cpu = statistics.median(values)
        per = cpu / args.changes * 1e6
        print(f"  {what:<16} {cpu:7.3f} s  {per:6.3f} µs/change  {cpu / floor:5.2f}x the read")


if __name__ == "__main__":
    main()
