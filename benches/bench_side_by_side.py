"""Upstream's benchmark scenarios, this client against the TypeScript client (issue #31).

    python benches/bench_side_by_side.py [--repeat N] [--roundtrips N] [--json OUT]

Starts the pinned reference server (``refserver/``, in memory, compression off) on 127.0.0.1
and runs upstream's three scenarios (durable-streams/durable-streams, ``packages/benchmarks``)
against it with two clients, each run in a fresh process, alternating which goes first:

- ``ours``: ``durable-streams bench roundtrip append-small append-large --processes 1 --waves
  --json`` from this checkout (``python/``), on the native core (``DURABLE_STREAMS_PURE_PYTHON``
  passes through);
- ``ts``: ``benches/node/bench_scenarios.mjs`` on Node with ``@durable-streams/client``, pinned in
  ``benches/node/package.json`` + ``package-lock.json`` (installed with ``npm ci`` on first use).

Both send the same way: a 100-byte round trip to a live long-poll reader of one stream, with a
HEAD just before as the baseline (``--roundtrips``, default 100, one at a time), then 1,000
appends of 100 bytes and 50 of 1 MiB to one stream in waves of 75 and 15 started together
(upstream's way of sending; both clients join appends that overlap into one request). Each
reports its own CPU and wall time over the measured part and every operation's latency.

The table shows, per scenario, the median over ``--repeat`` runs (default 3) of each figure
for both clients and their ratio (ours / ts: below 1 is less time or CPU for this client, above
1 more operations or bytes per second); ``--json OUT`` writes every run's report and the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NODE_DIR = HERE / "node"
sys.path.insert(0, str(REPO / "refserver"))

from launch import ReferenceServer  # noqa: E402

SCENARIOS = ("roundtrip", "append-small", "append-large")
CLIENTS = ("ours", "ts")
RUN_TIMEOUT = 600.0

# (label, where the figure is in a scenario's report, True when more is better)
FIGURES: dict[str, list[tuple[str, tuple[str, ...], bool]]] = {
    "roundtrip": [
        ("rtt p50 ms", ("latency", "rtt", "p50"), False),
        ("rtt p99 ms", ("latency", "rtt", "p99"), False),
        ("rtt mean ms", ("latency", "rtt", "mean"), False),
        ("overhead p50 ms", ("latency", "overhead", "p50"), False),
        ("overhead p99 ms", ("latency", "overhead", "p99"), False),
        ("overhead mean ms", ("latency", "overhead", "mean"), False),
        ("ping p50 ms", ("latency", "ping", "p50"), False),
        ("round trips/s", ("ops_per_s",), True),
        ("CPU µs/op", ("client_cpu_us_per_op",), False),
    ],
    "append-small": [
        ("append p50 ms", ("latency", "append", "p50"), False),
        ("append p99 ms", ("latency", "append", "p99"), False),
        ("append mean ms", ("latency", "append", "mean"), False),
        ("ops/s", ("ops_per_s",), True),
        ("MB/s", ("mb_per_s",), True),
        ("CPU µs/op", ("client_cpu_us_per_op",), False),
    ],
}
FIGURES["append-large"] = FIGURES["append-small"]


def _run_ours(url: str, roundtrips: int) -> dict[str, Any]:
    """``durable-streams bench --json``; the round trip takes ``--count``, so with another
    round-trip count it runs separately from the two append scenarios (their counts stay
    upstream's)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")]),
    }
    base = [
        sys.executable,
        "-m",
        "durable_streams",
        "bench",
        "--url",
        url,
        "--processes",
        "1",
        "--waves",
        "--json",
    ]
    if roundtrips == 100:
        batches = [list(SCENARIOS)]
    else:
        batches = [["roundtrip", "--count", str(roundtrips)], ["append-small", "append-large"]]
    merged: dict[str, Any] = {}
    for batch in batches:
        done = subprocess.run(
            [*base[:4], *batch, *base[4:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
        if done.returncode != 0:
            raise SystemExit(f"durable-streams bench failed ({done.returncode}):\n{done.stderr}")
        report = json.loads(done.stdout)
        scenarios = {**merged.get("scenarios", {}), **report["scenarios"]}
        merged = {**report, "scenarios": scenarios}
    return merged


def _run_ts(url: str, roundtrips: int) -> dict[str, Any]:
    done = subprocess.run(
        [
            "node",
            str(NODE_DIR / "bench_scenarios.mjs"),
            "--url",
            url,
            "--roundtrips",
            str(roundtrips),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench_scenarios.mjs failed ({done.returncode}):\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _figure(report: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per scenario and figure: each client's median over the runs and the ratio."""
    rows = []
    for scenario in SCENARIOS:
        for label, path, higher_better in FIGURES[scenario]:
            medians = {
                client: _median([_figure(r["scenarios"][scenario], path) for r in runs[client]])
                for client in CLIENTS
            }
            ours, ts = medians["ours"], medians["ts"]
            rows.append(
                {
                    "scenario": scenario,
                    "figure": label,
                    "ours": ours,
                    "ts": ts,
                    "ratio": round(ours / ts, 3) if ours is not None and ts else None,
                    "higher_is_better": higher_better,
                }
            )
    return rows


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: scenario, figure, ours, ts, ours / ts."""
    lines = ["| scenario | figure | ours | ts | ours / ts |", "| --- | --- | ---: | ---: | ---: |"]
    for row in rows:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        cells = [row["scenario"], row["figure"], _cell(row["ours"]), _cell(row["ts"]), ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _node_ready() -> None:
    if shutil.which("node") is None:
        raise SystemExit("node is not on PATH: the TypeScript side needs Node")
    if not (NODE_DIR / "node_modules" / "@durable-streams" / "client").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per client (default 3)")
    parser.add_argument(
        "--roundtrips", type=int, default=100, help="round trips per run (default 100)"
    )
    parser.add_argument(
        "--json", type=Path, metavar="OUT", help="write every run and the table here"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.roundtrips < 1:
        parser.error("--repeat and --roundtrips take a positive number")
    _node_ready()
    runs: dict[str, list[dict[str, Any]]] = {client: [] for client in CLIENTS}
    load_before = os.getloadavg()
    started = time.time()
    with ReferenceServer(compression=False) as server:
        for rep in range(args.repeat):
            order = CLIENTS if rep % 2 == 0 else CLIENTS[::-1]
            for client in order:
                print(f"-- run {rep + 1}/{args.repeat}: {client}", file=sys.stderr, flush=True)
                run = _run_ours if client == "ours" else _run_ts
                runs[client].append(run(server.url, args.roundtrips))
    load_after = os.getloadavg()
    rows = summarize(runs)
    ours_client = runs["ours"][0]["client"]
    ts_client = runs["ts"][0]["client"]
    print(
        f"ours: durable-streams {ours_client.get('version')} ({ours_client.get('core')} core, "
        f"Python {ours_client.get('python')}); ts: {ts_client.get('name')} "
        f"{ts_client.get('version')} (Node {ts_client.get('node')}); "
        f"median of {args.repeat} runs each, alternating; {os.cpu_count()} cores; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after ({time.time() - started:.0f} s)"
    )
    print(table(rows))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "repeat": args.repeat,
                    "roundtrips": args.roundtrips,
                    "load_average": {"before": load_before, "after": load_after},
                    "rows": rows,
                    "runs": runs,
                },
                indent=2,
            )
        )
    errors = sum(r["scenarios"][s]["errors"] for c in CLIENTS for r in runs[c] for s in SCENARIOS)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
