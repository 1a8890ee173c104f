"""Many concurrent resumable generations into the reference server (issue #30's performance
proof): CPU per chunk and chunk latency from the source to a live reader, this project's
``durable_streams.generations`` against the same loop in Node with the TypeScript packages.

    python benches/generations.py [--generations 500] [--rate 50] [--seconds 10 | --chunks N]
                                  [--readers K] [--sides python,ts,aisdk] [--repeat N]
                                  [--max-connections N] [--json OUT]

A generation is what ``useChat`` reads: ``start``, ``text-start``, N ``text-delta``,
``text-end``, ``finish``, one JSON message each, in a stream of its own. Every source is open
loop: delta i of generation g is due at ``start + (i + g/G) / rate`` seconds (the
generations' schedules spread over one period, so the load is steady rather than G chunks
at once) and yields then, or at once when the writer is late; its text is the due time
(``time.monotonic_ns()``, CLOCK_MONOTONIC, the clock Node's ``process.hrtime`` reads too). A
live reader in another process records receive time - due time for every delta: the latency
from the source to a reader, including the source's own lateness on a saturated loop, the
write, the server and the read.

Sides, each run alone (its readers, then its writer process, then the next side), against
one pinned reference server (``refserver/``, in memory, compression off) started here:

- ``python``: one asyncio process runs G ``write_generation(source, url)`` tasks
  (``durable_streams.generations``: each generation's chunks through its own
  ``IdempotentProducer``, linger 5 ms, the library's default connection pool); readers: one
  asyncio process, one ``aread_chunks(url)`` (SSE) per sampled generation;
- ``ts``: one Node process (``benches/node/generations.mjs``) runs the same loop with
  ``@durable-streams/client`` (pinned in ``benches/node/``): a ``DurableStream`` handle and an
  ``IdempotentProducer`` (autoClaim, linger 5 ms) per generation, the stream created (409
  accepted) then closed by ``producer.close()``; readers: one Node process, one
  ``stream({live: "sse"})`` per sampled generation;
- ``aisdk``: the writer of the npm package ``@durable-streams/aisdk-transport`` (0.0.7, pinned
  in ``interop/aisdk/``): ``toDurableStreamResponse({source, mode: "immediate"})`` per
  generation, which appends each chunk with ``handle.append`` (not awaited one by one: the
  client joins overlapping appends into one POST) and closes the stream; Node readers.

The streams (``PREFIX-0`` ...) are created by this script before the readers connect; the
writers create them again as they would (an identical stream is accepted). Columns:

- ``cpu µs/chunk``: the writer process's CPU (user + system, every thread) from launching
  the generations to the last stream closed, per chunk written (the N + 4 messages of each
  generation); ``chunks/s``: chunks written over that time less the 1 s lead before the
  first delta is due; ``overrun s``: how long the writers ran past the last due time;
- ``p50 ms``/``p99 ms``/``max ms``: receive time - due time over every delta the readers got
  (nearest rank); ``src p99``: how late the sources themselves yielded (the writer's event
  loop behind its timers), part of that latency;
- ``chunks/POST``: chunks per append request (the Python producers' ``stats()``; Node: POSTs
  counted around ``fetch``, closes left out): when a writer falls behind, its batches grow
  and CPU per chunk falls, so compare CPU at similar batching;
- ``reader µs``: the reader process's CPU per chunk read; ``server µs``: the reference
  server's CPU over the side's run (writes and reads) per chunk written.

``--readers K`` reads K of the G generations, spread evenly (default: all of them);
``--reader python`` or ``node`` gives every side the same readers, to tell a writer's share
of the latency from a reader's.
``--max-connections N`` sizes the Python writer's pool (the library's default is 64 sockets
per server; Node's fetch keeps no bound). ``--repeat N`` runs the sides in turn N times and
shows medians. The load average is recorded when each side starts: the machine may be
shared, so compare the sides of one run rather than runs. A run fails unless the writers
wrote all N + 4 chunks of every generation and every reader read all of its stream's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NODE_DIR = HERE / "node"
NODE_SCRIPT = NODE_DIR / "generations.mjs"
AISDK_DIR = REPO / "interop" / "aisdk"
SIDES = ("python", "ts", "aisdk")
LEAD_NS = 1_000_000_000  # from launching the generations to the first delta's due time
CHILD_TIMEOUT = 900.0

sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "refserver"))


def summarize(latencies_ns: list[int]) -> dict[str, Any]:
    """Nearest-rank percentiles in milliseconds (generations.mjs computes the same)."""
    if not latencies_ns:
        return {"count": 0}
    s = sorted(latencies_ns)

    def at(q: float) -> float:
        return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))] / 1e6

    return {"count": len(s), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": s[-1] / 1e6}


def sampled(generations: int, readers: int) -> list[int]:
    k = min(readers, generations)
    return [j * generations // k for j in range(k)]


def process_cpu_seconds(pid: int) -> float:
    """Another process's user + system CPU (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the Python side, each role in a process of its own ------------------------------------


async def python_writer(args: argparse.Namespace) -> dict[str, Any]:
    import durable_streams
    from durable_streams import AsyncClient, AsyncDurableStream
    from durable_streams.generations import _writer, write_generation

    producers: list[Any] = []

    class CountedProducer(_writer.IdempotentProducer):  # type: ignore[misc]
        """write_generation's producers, kept to read their stats() (append requests)."""

        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            producers.append(self)

    _writer.IdempotentProducer = CountedProducer  # type: ignore[misc]

    g_total, rate, n = args.generations, args.rate, args.chunks
    period_ns = 1e9 / rate
    lateness: list[int] = []  # how late each delta left its source: the loop's own delay
    client = (
        None if args.max_connections is None else AsyncClient(max_connections=args.max_connections)
    )

    async def source(g: int, start_ns: int) -> AsyncIterator[str]:
        for i in range(n):
            due = start_ns + round((i + g / g_total) * period_ns)
            wait = (due - time.monotonic_ns()) / 1e9
            if wait > 0:
                await asyncio.sleep(wait)
            lateness.append(time.monotonic_ns() - due)
            yield f"{due} "

    warm = await AsyncDurableStream.connect(f"{args.url}-0", client=client)  # imports, pool
    await warm.head()
    await warm.aclose()
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    start_ns = time.monotonic_ns() + LEAD_NS
    results = await asyncio.gather(
        *(
            write_generation(source(g, start_ns), f"{args.url}-{g}", client=client)
            for g in range(g_total)
        )
    )
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
    if client is not None:
        await client.aclose()
    stats = [p.stats() for p in producers]
    bad = [r for r in results if r.status != "finished"]
    if bad:
        raise SystemExit(f"{len(bad)} generations did not finish: {bad[0]}")
    return {
        "chunks": sum(r.chunks for r in results),
        "cpu_s": cpu,
        "wall_s": wall,
        "overrun_s": wall - (LEAD_NS / 1e9 + n / rate),
        "source_lateness": summarize(lateness),
        "appends": sum(st.messages_acknowledged for st in stats),
        "append_requests": sum(st.batches_acknowledged for st in stats),
        "info": {
            "python": sys.version.split()[0],
            "core": durable_streams.IMPLEMENTATION,
            "module": durable_streams.__file__,
        },
    }


async def python_reader(args: argparse.Namespace) -> dict[str, Any]:
    from durable_streams import AsyncDurableStream
    from durable_streams.generations import aread_chunks

    picks = sampled(args.generations, args.readers)
    latencies: list[int] = []
    connected = 0
    all_connected = asyncio.Event()
    now = time.monotonic_ns

    async def read(g: int) -> int:
        nonlocal connected
        chunks = 0
        async with aread_chunks(f"{args.url}-{g}") as response:
            connected += 1
            if connected == len(picks):
                all_connected.set()
            async for chunk in response:
                received = now()
                chunks += 1
                if chunk["type"] == "text-delta":
                    latencies.append(received - int(chunk["delta"]))
        return chunks

    warm = await AsyncDurableStream.connect(f"{args.url}-0")
    await warm.head()
    await warm.aclose()
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    tasks = [asyncio.create_task(read(g)) for g in picks]
    waiter = asyncio.create_task(all_connected.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if not all_connected.is_set():  # a reader failed before every one connected
        await asyncio.gather(*tasks)
    print("ready", flush=True)
    counts = await asyncio.gather(*tasks)
    return {
        "readers": len(picks),
        "chunks": sum(counts),
        "cpu_s": cpu_seconds() - cpu0,
        "wall_s": time.monotonic() - wall0,
        "latency": summarize(latencies),
        "info": {"python": sys.version.split()[0]},
    }


# -- the driver ------------------------------------------------------------------------------


def node_ready() -> str:
    """``node``, after installing the pinned packages the Node sides need, if missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise SystemExit("node and npm are needed on PATH")
    for folder, command in (
        (NODE_DIR, ["ci"]),
        (AISDK_DIR, ["install", "--no-save"]),  # how tests/generations installs it
    ):
        if not (folder / "node_modules" / "@durable-streams").exists():
            print(f"npm {' '.join(command)} in {folder} ...", file=sys.stderr)
            subprocess.run(
                [npm, *command, "--no-audit", "--no-fund", "--update-notifier=false"],
                cwd=folder,
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=300,
            )
    return node


def role_command(side: str, role: str, args: argparse.Namespace, prefix: str) -> list[str]:
    common = [
        "--url",
        prefix,
        "--generations",
        str(args.generations),
        "--rate",
        str(args.rate),
        "--chunks",
        str(args.chunks),
        "--readers",
        str(args.readers),
    ]
    if side == "python":
        if args.max_connections is not None:
            common += ["--max-connections", str(args.max_connections)]
        return [sys.executable, str(Path(__file__).resolve()), "--role", role, *common]
    node = node_ready()
    tail = ["--writer", "producer" if side == "ts" else "aisdk", "--aisdk-dir", str(AISDK_DIR)]
    return [node, str(NODE_SCRIPT), role, *common, *(tail if role == "writer" else [])]


def last_json(out: str, what: str) -> dict[str, Any]:
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise SystemExit(f"{what} printed no result:\n{out}")


def run_side(side: str, args: argparse.Namespace, base: str, server_pid: int) -> dict[str, Any]:
    import httpx

    prefix = f"{base}/v1/stream/gen-{side}-{uuid.uuid4().hex[:8]}"
    with httpx.Client(timeout=30) as http:
        for g in range(args.generations):
            http.put(
                f"{prefix}-{g}", headers={"content-type": "application/json"}
            ).raise_for_status()
    load = os.getloadavg()
    server_cpu0 = process_cpu_seconds(server_pid)
    reader_side = side if args.reader == "own" else {"python": "python", "node": "ts"}[args.reader]
    reader = subprocess.Popen(
        role_command(reader_side, "reader", args, prefix),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        line = reader.stdout.readline()  # bounded: the reader exits if it cannot connect
        if line.strip() != "ready":
            raise SystemExit(f"{side} readers did not connect: {line!r}")
        writer = subprocess.run(
            role_command(side, "writer", args, prefix),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
        )
        if writer.returncode != 0:
            raise SystemExit(f"{side} writer failed:\n{writer.stderr}")
        rest, _ = reader.communicate(timeout=CHILD_TIMEOUT)
        server_cpu = process_cpu_seconds(server_pid) - server_cpu0
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    if reader.returncode != 0:
        raise SystemExit(f"{side} readers failed (exit {reader.returncode})")
    w = last_json(writer.stdout, f"{side} writer")
    r = last_json(rest, f"{side} readers")
    expected = args.generations * (args.chunks + 4)
    if w["chunks"] != expected:
        raise SystemExit(f"{side}: the writers wrote {w['chunks']} chunks, not {expected}")
    if r["chunks"] != r["readers"] * (args.chunks + 4):
        raise SystemExit(f"{side}: the readers got {r['chunks']} chunks of {r['readers']} streams")
    return {
        "side": side,
        "reader_side": reader_side,
        "load": load,
        "writer": w,
        "readers": r,
        "cpu_us_per_chunk": w["cpu_s"] / w["chunks"] * 1e6,
        "reader_cpu_us_per_chunk": r["cpu_s"] / r["chunks"] * 1e6,
        # the server's CPU over the side's run (its readers' and writers' requests) per chunk
        # written: how much the writer's batching saves the server
        "server_cpu_us_per_chunk": server_cpu / w["chunks"] * 1e6,
        # over the generations' own time: the lead before the first due chunk left out
        "chunks_per_s": w["chunks"] / (w["wall_s"] - LEAD_NS / 1e9),
    }


COLUMNS = (  # (title, width, format, value of a run)
    ("load", 5, ".2f", lambda r: r["load"][0]),
    ("cpu µs/chunk", 12, ".1f", lambda r: r["cpu_us_per_chunk"]),
    ("chunks/s", 9, ",.0f", lambda r: r["chunks_per_s"]),
    ("overrun s", 9, ".2f", lambda r: r["writer"]["overrun_s"]),
    ("p50 ms", 8, ".1f", lambda r: r["readers"]["latency"]["p50_ms"]),
    ("p99 ms", 8, ".1f", lambda r: r["readers"]["latency"]["p99_ms"]),
    ("max ms", 8, ".1f", lambda r: r["readers"]["latency"]["max_ms"]),
    ("src p99", 8, ".1f", lambda r: r["writer"]["source_lateness"]["p99_ms"]),
    ("chunks/POST", 11, ".2f", lambda r: r["writer"]["appends"] / r["writer"]["append_requests"]),
    ("reader µs", 9, ".1f", lambda r: r["reader_cpu_us_per_chunk"]),
    ("server µs", 9, ".1f", lambda r: r["server_cpu_us_per_chunk"]),
)


def medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {title: statistics.median(value(r) for r in rows) for title, _, _, value in COLUMNS}


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    due = args.generations * args.rate
    print(
        f"\n{args.generations} generations x {args.rate:g} deltas/s x {args.chunks} deltas "
        f"({args.chunks / args.rate:g} s; {due:,.0f} deltas/s due), "
        f"{rows[0]['readers']['readers']} live SSE readers per side ({args.reader}); "
        f"{args.repeat} run(s) per side, median"
    )
    versions = {r["side"]: r["writer"]["info"] for r in rows}
    print(
        "; ".join(
            f"{side}: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "module")
            for side, info in versions.items()
        )
    )
    print(f"{'side':<8} " + " ".join(f"{t:>{w}}" for t, w, _, _ in COLUMNS))
    sides = list(dict.fromkeys(r["side"] for r in rows))
    med = {side: medians([r for r in rows if r["side"] == side]) for side in sides}
    for side in sides:
        print(f"{side:<8} " + " ".join(f"{med[side][t]:>{w}{f}}" for t, w, f, _ in COLUMNS))
    if "python" in med:
        ours = med["python"]
        for other in (s for s in ("ts", "aisdk") if s in med):
            them = med[other]
            cpu, p50, p99 = (ours[k] / them[k] for k in ("cpu µs/chunk", "p50 ms", "p99 ms"))
            print(
                f"ratio python/{other}: CPU per chunk {cpu:.2f}x, latency p50 {p50:.2f}x, "
                f"p99 {p99:.2f}x (below 1: python spends less, or is faster)"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--generations", type=int, default=500)
    ap.add_argument("--rate", type=float, default=50.0, help="text deltas per second each")
    ap.add_argument("--seconds", type=float, default=10.0, help="each generation's length")
    ap.add_argument("--chunks", type=int, help="deltas per generation (default: rate x seconds)")
    ap.add_argument("--readers", type=int, help="live readers, spread evenly (default: one each)")
    ap.add_argument("--sides", default=",".join(SIDES), help=f"some of {','.join(SIDES)}")
    ap.add_argument(
        "--max-connections",
        type=int,
        help="the Python writer's pool (default: the library's, 64); Node's fetch has no bound",
    )
    ap.add_argument(
        "--reader",
        choices=("own", "python", "node"),
        default="own",
        help="whose readers every side gets (default: its own language's)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per side (medians are shown)")
    ap.add_argument("--json", metavar="OUT", help="write every side's measurements here")
    ap.add_argument("--role", choices=("writer", "reader"), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.chunks is None:
        args.chunks = max(1, round(args.rate * args.seconds))
    if args.readers is None:
        args.readers = args.generations
    if min(args.generations, args.chunks, args.readers, args.repeat) < 1 or args.rate <= 0:
        ap.error("--generations, --chunks, --readers, --repeat and --rate must be positive")

    if args.role is not None:
        run = python_writer if args.role == "writer" else python_reader
        print(json.dumps(asyncio.run(run(args))), flush=True)
        return

    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = set(sides) - set(SIDES)
    if unknown or not sides:
        ap.error(f"--sides takes some of {','.join(SIDES)}")
    from launch import ReferenceServer

    rows = []
    with ReferenceServer(compression=False) as server:
        assert server.pid is not None
        for k in range(args.repeat):  # the sides in turn, so a change of load hits them alike
            for side in sides:
                print(f"{side} (run {k + 1}) ...", file=sys.stderr, flush=True)
                rows.append(run_side(side, args, server.url, server.pid))
    report(args, rows)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": {k: v for k, v in vars(args).items()}, "runs": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
