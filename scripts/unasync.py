"""Generates the sync driver, python/durable_streams/_sync.py, from the async one, _async.py.

The read loops, the response's lifecycle and the stream handle are written once, in async
code; the sync twin is that text with the async words taken out. What really differs between
the two lives in _flavours.py under paired names (``async_sleep`` / ``sleep``,
``AsyncItems`` / ``Items``). The few sentences of documentation that only hold for one side
are listed below; each must still be found in _async.py, so an edit there cannot silently
leave the sync text stale.

    python scripts/unasync.py           # rewrite _sync.py
    python scripts/unasync.py --check   # fail if _sync.py is not what _async.py generates

The output goes through ``ruff format`` and ruff's import sorting (ruff is a dev dependency),
so the generated file passes the same lint gates as the rest of the package.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "python" / "durable_streams" / "_async.py"
TARGET = ROOT / "python" / "durable_streams" / "_sync.py"

HEADER = "# Generated from _async.py by scripts/unasync.py: edit that file, then run the script.\n"

# Text that reads differently in sync code: (as written in _async.py, what _sync.py says).
PROSE: list[tuple[str, str]] = [
    (
        '"""The asynchronous API: ``astream()``, :class:`AsyncStreamResponse` and\n'
        ':class:`AsyncDurableStream`, for asyncio and trio alike (through anyio)."""',
        '"""The synchronous API: ``stream()``, :class:`StreamResponse` and '
        ':class:`DurableStream`."""',
    ),
    (
        "The block closes the connection even when it is left by cancellation. An async response\n"
        "    must be closed: one dropped unclosed is left to the garbage collector and the event"
        " loop's\n    warnings.",
        "A response dropped without being closed is closed when it is garbage collected.",
    ),
    (
        "\n\n    In async code, ``on_error`` may also be an async function, and ``headers`` and"
        " ``params``\n    values async callables.\n",
        "\n",
    ),
]

# Word-bounded renames, in order. ``Async``-prefixed names and ``async_``-prefixed ones lose
# the prefix; the rest are the async spellings of dunder methods, httpx's and ours.
RENAMES: list[tuple[str, str]] = [
    (r"\basync (def|for|with)\b", r"\1"),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\b__aiter__\b", "__iter__"),
    (r"\b__anext__\b", "__next__"),
    (r"\bStopAsyncIteration\b", "StopIteration"),
    (r"\baclose\b", "close"),
    (r"\baread\b", "read"),
    (r"\baiter_bytes\b", "iter_bytes"),
    (r"\baclosing\b", "closing"),
    (r"\bastream\b", "stream"),
    (r"\bresolve_async\b", "resolve_sync"),
    (r"\bdecide_async\b", "decide_sync"),
    (r"\bAsync([A-Z]\w*)", r"\1"),
    (r"\basync_(\w+)", r"\1"),
]


class Stale(Exception):
    """A line of PROSE is no longer in _async.py."""


def unasync(source: str) -> str:
    for async_text, sync_text in PROSE:
        if async_text not in source:
            raise Stale(f"_async.py no longer says {async_text!r}: update PROSE")
        source = source.replace(async_text, sync_text)
    for pattern, replacement in RENAMES:
        source = re.sub(pattern, replacement, source)
    leftover = re.search(r"\b(async|await|anyio)\b", source)
    if leftover is not None:
        line = source.count("\n", 0, leftover.start()) + 1
        raise Stale(f"line {line} of the sync text still says {leftover.group()!r}")
    return HEADER + source


def ruff(args: list[str], text: str) -> str:
    exe = shutil.which("ruff")
    if exe is None:
        sys.exit("ruff is needed (pip install -e '.[dev]')")
    done = subprocess.run(
        [exe, *args, "--stdin-filename", str(TARGET), "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"ruff {' '.join(args)} failed on the generated text:\n{done.stderr}")
    return done.stdout


def generate() -> str:
    text = unasync(SOURCE.read_text(encoding="utf-8"))
    text = ruff(["check", "--quiet", "--fix", "--select", "I"], text)
    return ruff(["format", "--quiet"], text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if _sync.py is stale")
    args = parser.parse_args()
    try:
        generated = generate()
    except Stale as exc:
        print(f"unasync: {exc}", file=sys.stderr)
        return 1
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if not args.check:
        if current != generated:
            TARGET.write_text(generated, encoding="utf-8")
            print(f"wrote {TARGET.relative_to(ROOT)}")
        return 0
    if current == generated:
        return 0
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        generated.splitlines(keepends=True),
        "_sync.py (committed)",
        "_sync.py (generated from _async.py)",
    )
    sys.stdout.writelines(diff)
    print("unasync: _sync.py is stale; run python scripts/unasync.py", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
