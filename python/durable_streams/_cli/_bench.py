"""``durable-streams bench``: a load generator for any Durable Streams server.

The command splits each scenario among processes (``--processes``, default: the machine's
cores), starts them together, shows a progress line on a terminal, and merges what they
measured (``_bench_stats``): counts and CPU added, latency histograms added, rates over the
longest process's time. The load itself is in ``_bench_scenarios``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import logging
import math
import multiprocessing
import os
import platform
import queue
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, MutableSequence, Sequence
from typing import Any, TextIO

__all__ = ["DEFAULTS", "add_command", "run"]

UPSTREAM = ("roundtrip", "append-small", "append-large")
ORDER = (*UPSTREAM, "producer", "catch-up", "fan-out", "many-streams")
MIB = 1024 * 1024
# Each scenario's defaults; a flag given on the command line applies to every scenario run.
# The first three are upstream's (@durable-streams/benchmarks): a 100-byte round trip,
# 1,000 appends of 100 bytes at concurrency 75, 50 appends of 1 MiB at concurrency 15.
DEFAULTS: dict[str, dict[str, Any]] = {
    "roundtrip": {"size": 100, "count": 100, "concurrency": 1},
    "append-small": {"size": 100, "count": 1000, "concurrency": 75},
    "append-large": {"size": MIB, "count": 50, "concurrency": 15},
    "producer": {"size": 100, "count": 20_000},
    "catch-up": {"size": 100, "count": 20_000, "readers": 1},
    # A writer's appends in flight are bounded by its concurrency (per stream); open-loop, one
    # that waits for a slot is late, and its latency says so.
    "fan-out": {"size": 100, "count": 500, "readers": 10, "rate": 100.0, "concurrency": 100},
    "many-streams": {
        "size": 100,
        "count": 1000,
        "streams": 50,
        "rate": 500.0,
        "concurrency": 100,
    },
}
# What a scenario is made of: its parts are split among processes (a process with none sits
# out), and so are its count and rate, except where the count is per stream: fan-out's one
# stream (written by the first process), catch-up's (one per process, each read whole).
_PARTS = {
    "roundtrip": "concurrency",
    "append-small": "concurrency",
    "append-large": "concurrency",
    "producer": None,
    "catch-up": "readers",
    "fan-out": "readers",
    "many-streams": "streams",
}
_PROGRESS_EVERY = 0.25
_BARRIER_TIMEOUT = 120.0  # a process that is not set up by then makes the scenario fail


def _size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib)\s*", text.lower())
    if match is None or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"a size is bytes, e.g. 100, 64KiB or 1MiB, not {text!r}")
    unit = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": MIB, "mb": 10**6}
    return int(match.group(1)) * unit.get(match.group(2), MIB)


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
        return value

    return parse


def _cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def add_command(commands: Any) -> None:
    """``bench`` on the ``durable-streams`` parser's subcommands."""
    bench: argparse.ArgumentParser = commands.add_parser(
        "bench",
        help="load-test a server: latency and throughput, client CPU per operation",
        description="Load-test a Durable Streams server. Scenarios: roundtrip, append-small, "
        "append-large (upstream's suite; 'upstream' runs the three, the default), producer, "
        "catch-up, fan-out, many-streams ('all' runs every one). Without --rate operations "
        "are sent closed-loop, --concurrency at a time; with it, open-loop at that rate, "
        "latency counted from when each was due.",
        epilog="Needs the bench extra (pip install 'durable-streams-rs[bench]'). Streams are "
        "created under --prefix and deleted afterwards. Exit status: 0 done, 1 an operation "
        "or a scenario failed, 2 bad command line, 4 server unreachable, 130 interrupted.",
    )
    bench.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help="what to run (default: upstream)",
    )
    bench.add_argument(
        "--url",
        default=os.environ.get("DURABLE_STREAMS_URL"),
        help="the server's base URL (default: $DURABLE_STREAMS_URL)",
    )
    bench.add_argument("--size", type=_size, help="message size: 100, 64KiB, 1MiB")
    bench.add_argument("--count", type=_positive(int), help="operations (messages) in all")
    bench.add_argument(
        "--concurrency", type=_positive(int), help="operations in flight at once, in all"
    )
    bench.add_argument(
        "--rate",
        type=_positive(float),
        metavar="OPS_PER_S",
        help="open-loop: send at this rate in all (latency from each operation's due time)",
    )
    bench.add_argument(
        "--duration",
        type=_positive(float),
        metavar="SECONDS",
        help="stop sending after this long (with --rate and no --count: rate x duration "
        "operations; without --rate: as many as fit)",
    )
    bench.add_argument(
        "--waves",
        action="store_true",
        help="closed-loop in waves, as upstream's suite sends: --concurrency operations "
        "started together, the next wave when every one is answered",
    )
    bench.add_argument("--readers", type=_positive(int), help="catch-up and fan-out readers")
    bench.add_argument("--streams", type=_positive(int), help="many-streams: streams in all")
    bench.add_argument(
        "--live",
        choices=("sse", "long-poll"),
        default="sse",
        help="how fan-out and many-streams readers follow (default sse)",
    )
    bench.add_argument(
        "--processes",
        type=_positive(int),
        default=_cores(),
        help=f"client processes sharing the load (default: the machine's cores, {_cores()} here)",
    )
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.add_argument(
        "--prefix",
        default=None,
        help="path the streams go under (default: bench/ and a random name)",
    )
    bench.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header for every request (repeatable)",
    )
    bench.add_argument("--timeout", type=_positive(float), default=30.0, help="seconds per request")


def _scenarios(names: Sequence[str]) -> list[str]:
    wanted: set[str] = set()
    for name in names or ["upstream"]:
        if name not in (*ORDER, "upstream", "all"):
            choices = ", ".join((*ORDER, "upstream", "all"))
            raise ValueError(f"no scenario {name!r}: choose from {choices}")
        wanted.update(ORDER if name == "all" else UPSTREAM if name == "upstream" else [name])
    return [name for name in ORDER if name in wanted]


def _settings(args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "size": 100,
        "count": None,
        "concurrency": 1,
        "rate": None,
        "duration": None,
        "readers": 1,
        "streams": 1,
    }
    settings.update(DEFAULTS[scenario])
    for key in settings:
        given = getattr(args, key)
        if given is not None:
            settings[key] = given
    if args.duration is not None and args.count is None:
        settings["count"] = None  # the duration decides
    settings["live"] = args.live
    settings["waves"] = args.waves
    return settings


def _plans(
    args: argparse.Namespace, scenario: str, settings: dict[str, Any], base: dict[str, Any]
) -> list[Any]:
    from ._bench_scenarios import Plan

    part = _PARTS[scenario]
    processes = args.processes if part is None else min(args.processes, settings[part])
    shared = scenario == "fan-out"
    per_stream = scenario in ("fan-out", "catch-up")

    def split(total: int | None) -> list[int | None]:
        if total is None:
            return [None] * processes
        return [total // processes + (1 if i < total % processes else 0) for i in range(processes)]

    counts = [settings["count"]] * processes if per_stream else split(settings["count"])
    parts = [int(n or 0) for n in split(settings[part])] if part else [1] * processes
    rate = settings["rate"]
    plans = []
    for index in range(processes):
        plans.append(
            Plan(
                scenario=scenario,
                index=index,
                size=settings["size"],
                count=counts[index],
                concurrency=parts[index] if part == "concurrency" else settings["concurrency"],
                rate=rate if shared or rate is None else rate / processes,
                duration=settings["duration"],
                readers=parts[index] if part == "readers" else settings["readers"],
                streams=parts[index] if part == "streams" else settings["streams"],
                live=settings["live"],
                waves=args.waves,
                writer=index == 0,
                shared=f"{base['prefix']}/fan-out/shared" if shared else None,
                **base,
            )
        )
    return plans


def _child(plan: Any, counter: MutableSequence[int], barrier: Any, results: Any) -> None:
    """A process's life: its share of the scenario; the outcome goes back on ``results``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command stops its processes itself
    results.put((plan.index, _run_one(plan, counter, barrier)))


def _run_one(plan: Any, counter: MutableSequence[int], barrier: Any) -> Any:
    import anyio

    from ._bench_scenarios import run_plan

    async def ready() -> None:
        if barrier is not None:
            await anyio.to_thread.run_sync(barrier.wait, _BARRIER_TIMEOUT)

    # The library's warnings (a retried request) stay off the terminal: the report counts
    # what failed, and Python's last-resort handler would print each beside the table.
    logger = logging.getLogger("durable_streams")
    quiet = logging.NullHandler()
    logger.addHandler(quiet)
    try:
        return anyio.run(run_plan, plan, counter, ready)
    finally:
        logger.removeHandler(quiet)


class _Progress:
    """The live line on a terminal: operations so far, in all processes, and their rate."""

    def __init__(self, out: TextIO | None, label: str, counter: Sequence[int]) -> None:
        self._out = out
        self._label = label
        self._counter = counter
        self._start = time.perf_counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def show(self) -> None:
        if self._out is None:
            return
        ops = sum(self._counter)
        seconds = time.perf_counter() - self._start
        line = f"{self._label}: {ops:,} ops, {ops / max(seconds, 1e-9):,.0f}/s, {seconds:.1f} s"
        self._out.write(f"\r\x1b[K{line}")
        self._out.flush()

    def __enter__(self) -> _Progress:
        if self._out is not None:

            def tick() -> None:
                while not self._stop.wait(_PROGRESS_EVERY):
                    self.show()

            self._thread = threading.Thread(target=tick, name="bench-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._out is not None:
            self._out.write("\r\x1b[K")
            self._out.flush()


def _launch(plans: list[Any], progress: TextIO | None, on_failure: Callable[[], None]) -> list[Any]:
    """Runs the plans, one process each (in this process when there is one), and returns
    their outcomes in order."""
    from ._bench_stats import Outcome

    label = f"{plans[0].scenario} ({len(plans)} process{'es' if len(plans) > 1 else ''})"
    if len(plans) == 1:
        counter = [0]
        with _Progress(progress, label, counter):
            return [_run_one(plans[0], counter, None)]
    context = multiprocessing.get_context("spawn")
    shared_counter = context.Array("q", len(plans), lock=False)
    barrier = context.Barrier(len(plans))
    results = context.Queue()
    processes = [
        context.Process(target=_child, args=(plan, shared_counter, barrier, results), daemon=True)
        for plan in plans
    ]
    outcomes: dict[int, Any] = {}
    wait = 10.0  # for processes to end after their result, then they are stopped
    try:
        with _Progress(progress, label, shared_counter):
            for process in processes:
                process.start()
            while len(outcomes) < len(plans):
                try:
                    index, outcome = results.get(timeout=_PROGRESS_EVERY)
                except queue.Empty:
                    if any(p.exitcode not in (None, 0) for p in processes):
                        barrier.abort()  # a process died: the others stop waiting for it
                    if all(not p.is_alive() for p in processes):
                        try:  # the last result may still be in the pipe
                            index, outcome = results.get(timeout=1.0)
                        except queue.Empty:
                            break
                    else:
                        continue
                outcomes[index] = outcome
                if outcome.failed:
                    barrier.abort()  # the others stop waiting for it, if they still do
                    on_failure()  # and readers elsewhere of a stream it writes
    except BaseException:  # Ctrl+C: they ignore it, so they are stopped here
        wait = 0.0
        raise
    finally:
        for process in processes:
            process.join(timeout=wait)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    return [
        outcomes.get(i) or Outcome(failed="the process ended without a result")
        for i in range(len(plans))
    ]


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    try:
        from . import _bench_stats
    except ImportError as exc:
        print(
            f"durable-streams: bench needs the hdrhistogram package ({exc}): "
            "pip install 'durable-streams-rs[bench]'",
            file=stderr,
        )
        return 1
    from .. import IMPLEMENTATION, __version__
    from .. import _errors as errors
    from .._protocol import check_url
    from .._retry import RetryPolicy
    from .._writing._handle_sync import DurableStream
    from ._common import EXIT, InputError
    from ._common import headers as request_headers

    try:
        if not args.url:
            raise InputError("bench needs the server's URL: --url or $DURABLE_STREAMS_URL")
        base_url = check_url(args.url.rstrip("/"), "--url")
        headers = request_headers(args)
        scenarios = _scenarios(args.scenarios)
    except Exception as exc:
        print(f"durable-streams: {exc}", file=stderr)
        return 2
    prefix = args.prefix or f"bench/{uuid.uuid4().hex[:12]}"
    base = {"url": base_url, "prefix": prefix, "timeout": args.timeout, "headers": headers}
    progress = stdout if stdout.isatty() else None
    report: dict[str, Any] = {
        "url": base_url,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "processes": args.processes,
        "client": {
            "version": __version__,
            "core": IMPLEMENTATION,
            "python": platform.python_version(),
            "cores": _cores(),
        },
        "scenarios": {},
    }
    failed = False
    try:
        # One stream created and deleted, not retried: a server that is not there, or that
        # refuses these headers, is one line now rather than retries in every process.
        probe = DurableStream.create(
            f"{base_url}/{prefix}/probe",
            headers=headers,
            timeout=args.timeout,
            retry=RetryPolicy.never(),
        )
        probe.delete()
    except errors.TransportError as exc:
        print(f"durable-streams: {exc}", file=stderr)
        return EXIT["unreachable"]
    except errors.DurableStreamError as exc:
        print(f"durable-streams: {type(exc).__name__}: {exc}", file=stderr)
        return EXIT["failed"]
    try:
        for scenario in scenarios:
            settings = _settings(args, scenario)
            plans = _plans(args, scenario, settings, base)
            shared = None
            if plans[0].shared is not None:
                shared = DurableStream.create(
                    f"{base_url}/{plans[0].shared}",
                    content_type="application/json",
                    headers=headers,
                    timeout=args.timeout,
                )

            def release(stream: Any = shared) -> None:
                if stream is not None:
                    # Gone already, or the server is: either way its readers end.
                    with contextlib.suppress(Exception):
                        stream.delete()

            try:
                outcomes = _launch(plans, progress, release)
            finally:
                release()
            result = _bench_stats.merge(
                outcomes, {**settings, "processes": len(plans), "prefix": prefix}
            )
            report["scenarios"][scenario] = result
            failed = failed or bool(result["errors"] or result["failed"])
    except KeyboardInterrupt:
        print("durable-streams: interrupted", file=stderr)
        return 130
    except Exception as exc:  # the server refused to create a stream, or is not there
        print(f"durable-streams: {type(exc).__name__}: {exc}", file=stderr)
        return 1
    if args.json:
        json.dump(report, stdout, indent=2)
        stdout.write("\n")
    else:
        stdout.write(_bench_stats.table(report) + "\n")
    for name, result in report["scenarios"].items():
        if result["first_error"]:
            print(
                f"durable-streams: {name}: {result['errors']} operation(s) failed, "
                f"{len(result['failed'])} process(es) stopped; first: {result['first_error']}",
                file=stderr,
            )
    return 1 if failed else 0
