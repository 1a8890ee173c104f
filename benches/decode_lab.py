"""JSON-array decoding alone, per message, every contender in one run.

    .venv/bin/python benches/decode_lab.py [--bodies 400] [--repeats 7] [--extra PATH ...]

Each pass decodes ``--bodies`` distinct catch-up bodies (``_payloads.array_body(1000, start)``
with a different ``start`` each, so no cache sees a body twice), and drops every result
before the next body (deallocation is part of the cost, as it is for a reader). Every repeat
runs every contender once, in a rotating order, with the collector on and then with
``gc.disable()``; the table shows the median and the minimum over the repeats, in µs per
message, and the ratios of the median and of the minimum to those of ``orjson.loads`` with
the collector on.

``--extra PATH`` loads another build of the extension (a copy of ``_core*.so`` built another
way, e.g. without ``abi3``) under the label of its file name. Contenders that are not
installed (``orjson``, PyPI ``jiter``) are skipped. Timing is wall-clock on a shared, noisy
machine: trust the ratios within one run more than the absolute numbers.
"""

from __future__ import annotations

import argparse
import gc
import importlib.machinery
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _payloads as P  # noqa: E402

MSGS = 1000


def load_extension(path: Path) -> Any:
    """A copy of the native module from ``path``, loaded beside the installed one."""
    loader = importlib.machinery.ExtensionFileLoader(f"{path.stem}._core", str(path))
    spec = importlib.util.spec_from_file_location(f"{path.stem}._core", path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def contenders(extra: list[Path]) -> dict[str, Callable[[bytes], Any]]:
    from durable_streams._core import _native as _core

    out: dict[str, Callable[[bytes], Any]] = {"ours parse_json_array": _core.parse_json_array}
    # Lab-only entry points, when the build has them: other ways of building the objects.
    for name in sorted(dir(_core)):
        if name.startswith("_lab_"):
            out[f"ours {name}"] = getattr(_core, name)
    for path in extra:
        mod = load_extension(path)
        out[f"{path.name} parse_json_array"] = mod.parse_json_array
    try:
        import orjson

        out["orjson.loads"] = orjson.loads
    except ImportError:
        pass
    out["json.loads"] = json.loads
    try:
        import jiter

        out["pypi jiter.from_json"] = jiter.from_json
        out["pypi jiter.from_json cache=keys"] = lambda b: jiter.from_json(b, cache_mode="keys")
    except ImportError:
        pass
    return out


def one_pass(fn: Callable[[bytes], Any], bodies: list[bytes], gc_on: bool) -> float:
    was = gc.isenabled()
    if gc_on:
        gc.enable()
    else:
        gc.disable()
    try:
        t0 = time.perf_counter()
        for body in bodies:
            fn(body)
        return time.perf_counter() - t0
    finally:
        if was:
            gc.enable()
        gc.collect()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bodies", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--extra", type=Path, action="append", default=[])
    ap.add_argument("--only", action="append", default=[], help="substring of contender names")
    args = ap.parse_args()

    bodies = [P.array_body(MSGS, k * MSGS) for k in range(args.bodies)]
    cands = contenders(args.extra)
    if args.only:
        cands = {k: v for k, v in cands.items() if any(s in k for s in args.only)}
    want = json.loads(bodies[-1])
    for name, fn in cands.items():
        assert fn(bodies[-1]) == want, name

    runs = [(name, gc_on) for name in cands for gc_on in (True, False)]
    times: dict[tuple[str, bool], list[float]] = {r: [] for r in runs}
    for fn in cands.values():  # warm-up
        one_pass(fn, bodies[:20], True)
    for rep in range(args.repeats):
        k = rep % len(runs)
        for name, gc_on in runs[k:] + runs[:k]:
            t = one_pass(cands[name], bodies, gc_on)
            times[(name, gc_on)].append(t / (len(bodies) * MSGS) * 1e6)

    ref_t = times.get(("orjson.loads", True))
    ref = (statistics.median(ref_t), min(ref_t)) if ref_t else None
    print(
        f"{len(bodies)} distinct bodies x {MSGS} messages of {len(P.message(0))} bytes, "
        f"{args.repeats} repeats; Python {sys.version.split()[0]}"
    )
    print(f"{'contender':44} {'gc':4} {'median':>8} {'min':>8} {'/orjson med':>12} {'min':>6}")
    for name, gc_on in runs:
        ts = times[(name, gc_on)]
        med, low = statistics.median(ts), min(ts)
        ratio = f"{med / ref[0]:11.2f}x {low / ref[1]:5.2f}x" if ref else ""
        print(f"{name:44} {'on' if gc_on else 'off':4} {med:8.3f} {low:8.3f} {ratio}")


if __name__ == "__main__":
    main()
