"""Side by side, in one run: our native core, our pure core, orjson, and the official client.

    .venv/bin/python benches/compare_parsers.py [--repeats 7] [--events 100] [--json out.json]

The official Python client (PyPI ``durable-streams==0.1.0``) has our import name, so it lives in
its own virtualenv, ``benches/.venv-official`` (created here on first use with ``python3 -m
venv`` and pip, from the pinned ``requirements-official.txt``), and its part runs in a
subprocess of that interpreter (this same file with ``--worker``), which prints its timings as
JSON. Both sides build their inputs from
``_payloads.py``, so every row of a case parses the same bytes.

What the official client does, read from its 0.1.0 source:

- SSE JSON stream (``_response.py`` ``_iter_sse_json_batches``): ``_sse.parse_sse_sync`` over
  the response's byte chunks (an incremental UTF-8 decoder, then ``SSEParser.feed`` on str),
  then ``_parse.decode_json_items(event.data)`` (``json.loads``) for each data event.
- Catch-up JSON body (``_read_json_internal``): ``_parse.decode_json_items(body)``, i.e.
  ``json.loads(body.decode("utf-8"))``.
- JSON append batches (``durable_stream.py``): ``_parse.batch_for_json_append(values)``, i.e.
  ``json.dumps(values).encode("utf-8")``. It takes values, not pre-serialized messages.
- It has no base64 SSE mode (binary streams over SSE raise ``SSEBytesIterationError``).

Times are wall-clock (``time.perf_counter``): median and min-max over the repeats, each repeat
one full pass over its case's input. Ratios are speed ratios (reference time / row time, so
2.0x means twice as fast as the reference), from medians. The machine is shared and noisy:
trust the ratios more than the absolute rates.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _payloads as P  # noqa: E402

OFFICIAL_VENV = HERE / ".venv-official"
OFFICIAL_SPEC = "durable-streams==0.1.0"  # with its dependencies in requirements-official.txt
OFFICIAL_REQUIREMENTS = HERE / "requirements-official.txt"
CATCH_UP_BODIES = 50  # catch-up cases parse the same 1,000-message body this many times a pass
BATCH_MESSAGES = 50_000

Timings = dict[str, Any]  # {"n": messages or bytes per pass, "unit": ..., "times": [s, ...]}


def measure(fn: Callable[[], int], repeats: int) -> tuple[int, list[float]]:
    """Runs ``fn`` once to warm up, then ``repeats`` times; its count and each run's seconds."""
    n = fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        got = fn()
        times.append(time.perf_counter() - t0)
        if got != n:
            raise AssertionError(f"a pass counted {got}, the warm-up {n}")
    return n, times


class Inputs:
    """The bytes every row of a case gets, built once per process."""

    def __init__(self, events: int, binary_events: int) -> None:
        self.sse_chunks = P.chunks(P.json_sse_body(events))
        body = b"".join(self.sse_chunks)
        # each data event's payload: what the SSE layer hands to a JSON parser
        self.sse_payloads = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: [")]
        self.array = P.array_body()
        self.values = P.message_objects(BATCH_MESSAGES)
        self.strs = P.message_strs(BATCH_MESSAGES)
        b64_body, self.raw_bytes = P.base64_sse_body(binary_events)
        self.b64_chunks = P.chunks(b64_body)
        self.b64_payloads = [
            line[6:]
            for line in b64_body.split(b"\n")
            if line.startswith(b"data: ") and b"{" not in line
        ]


def orjson_rows(inp: Inputs, repeats: int) -> dict[str, Timings]:
    import orjson

    def sse() -> int:
        return sum(len(orjson.loads(p)) for p in inp.sse_payloads)

    def catch_up() -> int:
        return sum(len(orjson.loads(inp.array)) for _ in range(CATCH_UP_BODIES))

    def batch() -> int:  # the limit for append bodies from values: orjson.dumps
        vals = inp.values
        for i in range(0, len(vals), 1000):
            orjson.dumps(vals[i : i + 1000])
        return len(vals)

    out = {}
    for case, fn in (("sse-json", sse), ("catch-up", catch_up), ("batch-values", batch)):
        n, times = measure(fn, repeats)
        out[case] = {"n": n, "times": times}
    return out


# ---- our side ---------------------------------------------------------------------------------


def our_rows(core: Any, inp: Inputs, repeats: int) -> dict[str, Timings]:
    def sse() -> int:
        dec = core.SseDecoder("json")
        n = 0
        for chunk in inp.sse_chunks:
            for item in dec.feed(chunk):
                if type(item) is list:
                    n += len(item)
        return n

    def catch_up() -> int:
        parse = core.parse_json_array
        return sum(len(parse(inp.array)) for _ in range(CATCH_UP_BODIES))

    def split() -> int:
        split = core.split_json_array
        return sum(len(split(inp.array)) for _ in range(CATCH_UP_BODIES))

    def assemble(items: list[Any]) -> int:
        builder = core.BatchBuilder(True, 65536)
        for i in range(0, len(items), 1000):
            pending = items[i : i + 1000]
            while True:
                taken = builder.push_many(pending)
                if taken == len(pending):
                    break
                builder.take()
                pending = pending[taken:]
        builder.take()
        return len(items)

    def b64() -> int:
        dec = core.SseDecoder("base64")
        n = 0
        for chunk in inp.b64_chunks:
            for item in dec.feed(chunk):
                if type(item) is bytes:
                    n += len(item)
        return n

    cases: dict[str, Callable[[], int]] = {
        "sse-json": sse,
        "catch-up": catch_up,
        "catch-up-split": split,
        "batch-str": lambda: assemble(inp.strs),
        "batch-values": lambda: assemble(inp.values),
        "sse-base64": b64,
    }
    out = {}
    for case, fn in cases.items():
        n, times = measure(fn, repeats)
        out[case] = {"n": n, "times": times}
    return out


def baseline_rows(inp: Inputs, repeats: int) -> dict[str, Timings]:
    """Limits with nothing protocol-specific to do (stdlib only, so both sides could run it)."""

    def join_strs() -> int:
        s = inp.strs
        for i in range(0, len(s), 1000):
            ("[" + ",".join(s[i : i + 1000]) + "]").encode()
        return len(s)

    def b64decode() -> int:
        return sum(len(base64.b64decode(p)) for p in inp.b64_payloads)

    out = {}
    for case, fn in (("batch-str", join_strs), ("sse-base64", b64decode)):
        n, times = measure(fn, repeats)
        out[case] = {"n": n, "times": times}
    return out


# ---- the official client's side (runs inside its own virtualenv) ------------------------------


def official_rows(inp: Inputs, repeats: int) -> dict[str, Timings]:
    from durable_streams._parse import batch_for_json_append, decode_json_items
    from durable_streams._sse import SSEDataEvent, parse_sse_sync

    def sse() -> int:
        # _iter_sse_json_batches, less the HTTP response around it
        n = 0
        offset = None
        for event in parse_sse_sync(iter(inp.sse_chunks)):
            if isinstance(event, SSEDataEvent):
                n += len(decode_json_items(event.data, None))
            else:
                offset = event.stream_next_offset
        assert offset
        return n

    def sse_only() -> int:
        # the SSE layer alone: events out, payloads left as str
        return sum(isinstance(e, SSEDataEvent) * 1000 for e in parse_sse_sync(iter(inp.sse_chunks)))

    def catch_up() -> int:
        return sum(len(decode_json_items(inp.array, None)) for _ in range(CATCH_UP_BODIES))

    def batch() -> int:
        vals = inp.values
        for i in range(0, len(vals), 1000):
            batch_for_json_append(vals[i : i + 1000])
        return len(vals)

    out = {}
    for case, fn in (
        ("sse-json", sse),
        ("sse-layer-only", sse_only),
        ("catch-up", catch_up),
        ("batch-values", batch),
    ):
        n, times = measure(fn, repeats)
        out[case] = {"n": n, "times": times}
    return out


def worker(args: argparse.Namespace) -> None:
    from importlib.metadata import version

    import orjson

    import durable_streams

    where = Path(durable_streams.__file__).resolve()
    if OFFICIAL_VENV.resolve() not in where.parents:
        raise SystemExit(f"the official worker imported durable_streams from {where}")
    inp = Inputs(args.events, args.binary_events)
    result = {
        "version": version("durable-streams"),
        "python": sys.version.split()[0],
        "orjson": orjson.__version__,
        "official": official_rows(inp, args.repeats),
        "orjson.loads": orjson_rows(inp, args.repeats),
    }
    json.dump(result, sys.stdout)


def official_python() -> Path:
    """The official client's interpreter, after creating its virtualenv if needed."""
    py = OFFICIAL_VENV / "bin" / "python"
    probe = [
        str(py),
        "-c",
        "import orjson; from importlib.metadata import version as v; print(v('durable-streams'))",
    ]
    if py.exists():
        ok = subprocess.run(probe, capture_output=True, text=True)
        if ok.returncode == 0 and ok.stdout.strip() == OFFICIAL_SPEC.split("==")[1]:
            return py
    base = shutil.which("python3") or sys.executable
    print(f"creating {OFFICIAL_VENV} from {OFFICIAL_REQUIREMENTS.name} ...", file=sys.stderr)
    subprocess.run([base, "-m", "venv", str(OFFICIAL_VENV)], check=True)
    pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(OFFICIAL_REQUIREMENTS)], check=True)
    subprocess.run(probe, check=True, capture_output=True)
    return py


# ---- the report -------------------------------------------------------------------------------

CASES = [
    ("sse-json", "SSE JSON mode: 64 KiB chunks -> messages", "msgs"),
    ("catch-up", "catch-up body (1,000-msg array) -> messages", "msgs"),
    ("catch-up-split", "catch-up body -> raw message bytes (json-raw)", "msgs"),
    ("batch-str", "append bodies from pre-serialized str (64 KiB)", "msgs"),
    ("batch-values", "append bodies from dict values", "msgs"),
    ("sse-base64", "SSE base64 mode: 64 KiB chunks -> bytes", "bytes"),
]
ROW_ORDER = ["native", "pure", "orjson.loads", "stdlib", "official", "official SSE layer only"]


def report(rows: dict[str, dict[str, Timings]], repeats: int) -> str:
    lines = []
    head = (
        f"{'case / implementation':<38} {'median ms':>10} {'min-max ms':>17} "
        f"{'rate (median)':>15} {'vs limit':>9} {'vs official':>11}"
    )
    for case, title, unit in CASES:
        present = {name: r[case] for name, r in rows.items() if case in r}
        if not present:
            continue
        lines += [
            "",
            f"{title}   [{case}, {next(iter(present.values()))['n']:,} {unit}/pass]",
            head,
        ]
        med = {name: statistics.median(t["times"]) for name, t in present.items()}
        limit = next((k for k in ("orjson.loads", "stdlib") if k in med), None)
        for name in ROW_ORDER:
            if name not in present:
                continue
            t = present[name]
            ts = t["times"]
            rate = t["n"] / med[name]
            rate_s = f"{rate / 1e6:,.2f} MB/s" if unit == "bytes" else f"{rate / 1e6:,.3f} M/s"
            vs_limit = f"{med[limit] / med[name]:.2f}x" if limit else "-"
            vs_off = f"{med['official'] / med[name]:.2f}x" if "official" in med else "-"
            label = {"orjson.loads": "orjson (raw limit)", "stdlib": "stdlib (raw limit)"}.get(
                name, name
            )
            lines.append(
                f"  {label:<36} {med[name] * 1e3:>10.2f} "
                f"{min(ts) * 1e3:>8.2f}-{max(ts) * 1e3:<8.2f} {rate_s:>15} "
                f"{vs_limit:>9} {vs_off:>11}"
            )
    lines.append("")
    lines.append(
        f"{repeats} timed repeats per row after one warm-up; ratios = reference median / row "
        "median (>1x: faster than the reference). The limit is orjson (loads; dumps for "
        "batch-values) or, where marked, the stdlib (str.join; base64.b64decode) on the same "
        "input with no protocol work."
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--events", type=int, default=100, help="SSE data events of 1,000 messages")
    ap.add_argument("--binary-events", type=int, default=100, help="base64 events of 48 KiB")
    ap.add_argument("--json", type=Path, help="also write the raw timings here")
    ap.add_argument("--skip-official", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    try:
        from durable_streams._core import _native as _core
        from durable_streams._core import _pure
    except ImportError as e:
        raise SystemExit(f"run this with the repository's .venv/bin/python ({e})") from None
    if Path(_core.__file__).suffix not in (".so", ".pyd"):
        raise SystemExit("durable_streams._core is not the native extension")

    official: dict[str, Any] | None = None
    if not args.skip_official:
        py = official_python()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        cmd = [
            str(py),
            str(Path(__file__).resolve()),
            "--worker",
            "--repeats",
            str(args.repeats),
            "--events",
            str(args.events),
            "--binary-events",
            str(args.binary_events),
        ]
        print("timing the official client (subprocess) ...", file=sys.stderr)
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=HERE)
        official = json.loads(done.stdout)

    print("timing ours and orjson (this process) ...", file=sys.stderr)
    inp = Inputs(args.events, args.binary_events)
    rows: dict[str, dict[str, Timings]] = {
        "native": our_rows(_core, inp, args.repeats),
        "pure": our_rows(_pure, inp, args.repeats),
        "orjson.loads": orjson_rows(inp, args.repeats),
        "stdlib": baseline_rows(inp, args.repeats),
    }
    if official is not None:
        rows["official"] = official["official"]
        rows["official SSE layer only"] = {"sse-json": official["official"].pop("sse-layer-only")}

    import orjson

    print(
        f"python {sys.version.split()[0]}, orjson {orjson.__version__}, "
        f"ours {_core.__version__}"
        + (
            f"; official durable-streams {official['version']} (python {official['python']}, "
            f"orjson {official['orjson']})"
            if official
            else "; official skipped"
        )
    )
    print(report(rows, args.repeats))
    if official is not None:
        # orjson timed inside the official worker too: the same-process ratio, free of drift
        # between the two processes' runs
        lines = ["", "official vs orjson timed in the same (official) process:"]
        for case in ("sse-json", "catch-up", "batch-values"):
            o = statistics.median(official["official"][case]["times"])
            j = statistics.median(official["orjson.loads"][case]["times"])
            lines.append(f"  {case:<14} official is {o / j:.2f}x orjson's time")
        print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "official": official}, indent=1))


if __name__ == "__main__":
    main()
