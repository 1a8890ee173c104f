"""Catch-up reads of nested JSON messages: client CPU per message and peak RSS above the imports.

    .venv/bin/python benches/catchup_memory.py [--messages N ...] [--repeats 3]
        [--baseline LABEL=PATH ...] [--pure] [--collector-off]

The pinned reference server (started here, compression on, as the tests run it) holds one
closed stream per ``--messages`` count (default 200,000 and 1,000,000), filled with
``_payloads.nested_message`` (about 83 bytes each, ``{"type","i","user","x","props":{"page",
"ok"}}``) in 10,000-message appends. It answers a catch-up read with the whole stream in one
gzip response. Every measurement runs in a fresh process:

- ``orjson.loads``: the same bytes in 1,000-message arrays, each parsed and dropped (the
  arrays are built before the measurement starts, and ``durable_streams`` is imported, so the
  collector walks the same heap in its full passes as for the reads): the comparison row;
- ``sync``: ``for m in res.iter_json(): pass`` over ``stream(url)``;
- ``async``: the same over ``astream(url)`` on asyncio;
- with ``--baseline LABEL=PATH`` (``PATH`` a ``python/`` folder of another checkout, its
  ``_core`` built in place), ``LABEL sync`` and ``LABEL async``: the same reads with that tree
  first on ``sys.path``, so before and after come from one run on one machine;
- with ``--pure``, ``pure sync``: the pure-Python core (``DURABLE_STREAMS_PURE_PYTHON=1``);
- with ``--collector-off``, ``orjson.loads`` and ``sync`` again under ``gc.disable()``
  (diagnostic only: what the collector costs each).

Before it measures, each read process reads a one-message stream the same way (the warm-up:
the first read in a process pays once for what it imports lazily, about 20 ms for anyio's
asyncio backend under ``astream``; its CPU time is shown apart). Per run: the process's CPU
time (user + system) over the read, per message; the peak RSS (``VmHWM``, reset through
``/proc/self/clear_refs`` once the imports and the warm-up are done) above the RSS after
them; and the collector's passes by generation with the CPU time they took (``gc.callbacks``,
``time.thread_time``). Every repeat runs every row in a rotating order; the table shows the
median over the repeats (min-max), and each row's median CPU per message over that of
``orjson.loads`` on the same count. The machine is shared: ``uptime`` is printed before and
after; trust ratios within one run more than absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "refserver"))

import _payloads as P  # noqa: E402

APPEND = 10_000  # messages per append when filling a stream
ARRAY = 1_000  # messages per array of the orjson row
JSON_CT = {"content-type": "application/json"}
TARGET_RATIO = 1.5
TARGET_MIB = 16.0


# ---- the child: one measured read -----------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


class _Collections:
    """The collector's passes by generation, and the time they took."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.thread_time()
        else:
            generation = info["generation"]
            self.passes[generation] += 1
            self.seconds[generation] += time.thread_time() - self._t0


def _read_sync(ds: Any, url: str) -> tuple[Any, Any, int]:
    first: Any = None
    m: Any = None
    count = 0
    with ds.stream(url) as res:
        for m in res.iter_json():
            if first is None:
                first = m
            count += 1
    return first, m, count


async def _read_async(ds: Any, url: str) -> tuple[Any, Any, int]:
    first: Any = None
    m: Any = None
    count = 0
    async with ds.astream(url) as res:
        async for m in res.iter_json():
            if first is None:
                first = m
            count += 1
    return first, m, count


def child(kind: str, url: str, warm_url: str, n: int, collector: bool) -> dict[str, Any]:
    import orjson

    import durable_streams as ds

    bodies: list[bytes] = []
    warm_cpu = time.process_time()
    if kind == "orjson":
        bodies = [P.nested_array_body(min(ARRAY, n - s), s) for s in range(0, n, ARRAY)]
        warm_cpu = time.process_time()
        orjson.loads(bodies[0])
    elif kind == "sync":
        _read_sync(ds, warm_url)
    else:
        asyncio.run(_read_async(ds, warm_url))
    warm_cpu = time.process_time() - warm_cpu

    gc.collect()
    rss_base = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    collections = _Collections()
    gc.callbacks.append(collections)
    if not collector:
        gc.disable()
    first: Any = None
    last: Any = None
    count = 0
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    if kind == "orjson":
        loads = orjson.loads
        for body in bodies:
            items = loads(body)
            count += len(items)
            if first is None:
                first = items[0]
            last = items[-1]
        del items
    elif kind == "sync":
        first, last, count = _read_sync(ds, url)
    else:
        first, last, count = asyncio.run(_read_async(ds, url))
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    gc.enable()
    gc.callbacks.remove(collections)
    expect_first = orjson.loads(P.nested_message(0))
    expect_last = orjson.loads(P.nested_message(n - 1))
    if count != n or first != expect_first or last != expect_last:
        raise SystemExit(f"read {count} messages, first {first!r}, last {last!r}; expected {n}")
    impl = "n/a"
    if kind != "orjson":
        impl = ds.IMPLEMENTATION
        impl += f" {Path(ds.__file__).parent.parent}"
    return {
        "messages": count,
        "cpu_s": cpu,
        "wall_s": wall,
        "warm_up_cpu_s": warm_cpu,
        "rss_base_kib": rss_base,
        "rss_peak_kib": _status_kib("VmHWM"),
        "gc_passes": collections.passes,
        "gc_seconds": collections.seconds,
        "implementation": impl,
    }


# ---- the parent: streams, rows, repeats, the table -----------------------------------------


def fill(base_url: str, n: int) -> str:
    """A closed stream of ``n`` nested messages (``n`` = 1: the warm-up stream)."""
    import httpx

    url = f"{base_url}/bench/catchup-nested-{n}-{uuid.uuid4().hex[:10]}"
    with httpx.Client(timeout=httpx.Timeout(120.0)) as http:
        http.put(url, headers=JSON_CT).raise_for_status()
        for start in range(0, n, APPEND):
            body = P.nested_array_body(min(APPEND, n - start), start)
            http.post(url, content=body, headers=JSON_CT).raise_for_status()
        http.post(url, headers={**JSON_CT, "Stream-Closed": "true"}).raise_for_status()
    return url


class Row:
    def __init__(self, label: str, kind: str, env: dict[str, str], collector: bool = True):
        self.label = label
        self.kind = kind
        self.env = env
        self.collector = collector


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.pop("DURABLE_STREAMS_PURE_PYTHON", None)
    return env


def make_rows(args: argparse.Namespace) -> list[Row]:
    plain = base_env()
    rows = [Row("orjson.loads", "orjson", plain)]
    for spec in args.baseline:
        label, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--baseline takes LABEL=PATH, not {spec!r}")
        env = {**plain, "PYTHONPATH": str(Path(path).resolve())}
        rows += [Row(f"{label} sync", "sync", env), Row(f"{label} async", "async", env)]
    rows += [Row("sync", "sync", plain), Row("async", "async", plain)]
    if args.pure:
        rows.append(Row("pure sync", "sync", {**plain, "DURABLE_STREAMS_PURE_PYTHON": "1"}))
    if args.collector_off:
        rows.append(Row("orjson.loads gc off", "orjson", plain, collector=False))
        rows.append(Row("sync gc off", "sync", plain, collector=False))
        for spec in args.baseline:
            label, _, path = spec.partition("=")
            env = {**plain, "PYTHONPATH": str(Path(path).resolve())}
            rows.append(Row(f"{label} sync gc off", "sync", env, collector=False))
    return rows


def run_row(row: Row, url: str, warm_url: str, n: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", row.kind, "--url", url, "--messages", str(n)]
    argv += ["--warm-url", warm_url]
    if not row.collector:
        argv.append("--collector-off")
    proc = subprocess.run(argv, env=row.env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{row.label} at {n:,} failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "(no uptime)"


def span(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def report(rows: list[Row], counts: list[int], results: dict[tuple[str, int], list[Any]]) -> None:
    head = (
        f"{'messages':>9}  {'read':<22} {'CPU us/msg (min-max)':<22} {'x orjson':>8}  "
        f"{'peak MiB above imports':<24} {'gc passes g0/g1/g2 (ms)':<26} warm-up ms"
    )
    print(head)
    print("-" * len(head))
    verdicts = []
    for n in counts:
        ref = statistics.median(r["cpu_s"] / n * 1e6 for r in results[("orjson.loads", n)])
        for row in rows:
            runs = results[(row.label, n)]
            cpu = [r["cpu_s"] / n * 1e6 for r in runs]
            mib = [(r["rss_peak_kib"] - r["rss_base_kib"]) / 1024 for r in runs]
            passes = [statistics.median(r["gc_passes"][g] for r in runs) for g in range(3)]
            ms = [statistics.median(r["gc_seconds"][g] * 1e3 for r in runs) for g in range(3)]
            gcs = "/".join(f"{p:.0f}" for p in passes) + " (" + "/".join(f"{t:.0f}" for t in ms)
            ratio = statistics.median(cpu) / ref
            warm = statistics.median(r["warm_up_cpu_s"] * 1e3 for r in runs)
            print(
                f"{n:>9,}  {row.label:<22} {span(cpu, '.2f'):<22} {ratio:>8.2f}  "
                f"{span(mib, '.1f'):<24} {gcs + ')':<26} {warm:.1f}"
            )
            if row.kind != "orjson" and row.collector and row.label in ("sync", "async"):
                ok_cpu = ratio <= TARGET_RATIO
                ok_mib = statistics.median(mib) <= TARGET_MIB
                verdicts.append(
                    f"  {row.label} at {n:,}: CPU {ratio:.2f}x orjson "
                    f"({'ok' if ok_cpu else 'MISSED'}, target <= {TARGET_RATIO}x); peak "
                    f"{statistics.median(mib):.1f} MiB ({'ok' if ok_mib else 'MISSED'}, "
                    f"target <= {TARGET_MIB:.0f})"
                )
        print()
    print("targets (issue #28, item 6):")
    print("\n".join(verdicts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, action="append", default=[])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline", action="append", default=[], metavar="LABEL=PATH")
    ap.add_argument("--pure", action="store_true")
    ap.add_argument("--collector-off", action="store_true")
    ap.add_argument("--json", type=Path, help="write every run's raw measurements here")
    ap.add_argument("--child", choices=("orjson", "sync", "async"), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--warm-url", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        n = args.messages[0]
        print(json.dumps(child(args.child, args.url, args.warm_url, n, not args.collector_off)))
        return

    from launch import ReferenceServer

    counts = args.messages or [200_000, 1_000_000]
    rows = make_rows(args)
    print(f"uptime before: {uptime()}", flush=True)
    results: dict[tuple[str, int], list[Any]] = {(r.label, n): [] for r in rows for n in counts}
    with ReferenceServer() as server:
        urls = {n: fill(server.url, n) for n in counts}
        warm_url = fill(server.url, 1)
        for rep in range(args.repeats):
            for n in counts:
                k = rep % len(rows)
                for row in rows[k:] + rows[:k]:
                    r = run_row(row, urls[n], warm_url, n)
                    results[(row.label, n)].append(r)
                    print(
                        f"  repeat {rep + 1} {n:>9,} {row.label:<22} "
                        f"{r['cpu_s'] / n * 1e6:6.2f} us/msg "
                        f"{(r['rss_peak_kib'] - r['rss_base_kib']) / 1024:6.1f} MiB "
                        f"gc {r['gc_passes']} [{r['implementation']}]",
                        file=sys.stderr,
                        flush=True,
                    )
    print(f"uptime after:  {uptime()}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.repeats} repeats\n")
    report(rows, counts, results)
    if args.json:
        args.json.write_text(json.dumps({f"{k[0]}@{k[1]}": v for k, v in results.items()}))


if __name__ == "__main__":
    main()
