"""Generates the sync twins of the async modules in python/durable_streams: every
``X_async.py`` has an ``X_sync.py`` made from it, unless its sync twin is an ``X_threaded.py``
(a class that runs the async one on a loop thread, written by hand).

Each is written once, in async code; the sync twin is that text with the async words taken
out. What really differs between the two lives in _flavours.py under paired names
(``async_sleep`` / ``sleep``, ``AsyncItems`` / ``Items``). The few sentences of documentation
that only hold for one side are listed below; each must still be found in its async file, so
an edit there cannot silently leave the sync text stale.

    python scripts/unasync.py           # rewrite the sync files
    python scripts/unasync.py --check   # fail if a sync file is not what its async one makes

The output goes through ``ruff format`` and ruff's sorting of imports and ``__all__`` (ruff is
a dev dependency), so the generated file passes the same lint gates as the rest of the package.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "durable_streams"

HEADER = (
    "# Generated from {source} by scripts/unasync.py:\n# edit that file, then run the script.\n"
)

# Text that reads differently in sync code: (as the async file says it, what its twin says).
READS_PROSE: list[tuple[str, str]] = [
    (
        '"""The async stream response: ``astream()`` and :class:`AsyncStreamResponse`, '
        "a loop around\n"
        'a :class:`ReadSession` and a transport, for asyncio and trio alike (through anyio)."""',
        '"""The sync stream response: ``stream()`` and :class:`StreamResponse`, a loop around a\n'
        ':class:`ReadSession` and a transport."""',
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

HANDLE_PROSE: list[tuple[str, str]] = [
    (
        '"""The async stream handle, :class:`AsyncDurableStream`: create, append, head, close,\n'
        'delete, fork and read one stream, for asyncio and trio alike."""',
        '"""The sync stream handle, :class:`DurableStream`: create, append, head, close, delete,\n'
        'fork and read one stream."""',
    ),
    (
        "``source`` is an iterable or an async iterable of what",
        "``source`` is an iterable of what",
    ),
]

CLIENT_PROSE: list[tuple[str, str]] = [
    (
        "Settings stated once for many streams (async; ``_client_sync`` is generated from it):",
        "Settings stated once for many streams:",
    ),
    ("everything opened from it (asyncio or trio).", "everything opened from it."),
    ("a default pool per server and event loop.", "a default pool per server."),
]

HTTPX_PROSE: list[tuple[str, str]] = [
    (
        "The httpx transport for async code (``_httpx_sync`` is generated from it)",
        "The httpx transport for sync code",
    ),
]

SUBSCRIBE_PROSE: list[tuple[str, str]] = [
    ('"""Subscriptions for async code:', '"""Subscriptions for sync code:'),
    (
        "``handler`` may be a plain or an async function; a\n        plain one runs on the event"
        " loop, which must stay free for the lease's renewal.",
        "The lease is renewed on a\n        thread of its own while ``handler`` runs.",
    ),
]

STATE_PROSE: list[tuple[str, str]] = [
    ("State Protocol) for async code:", "State Protocol) for sync code:"),
]

INTERFACE_PROSE: list[tuple[str, str]] = [
    (
        "async code (``_interface_sync`` is generated from it): a\n``send``",
        "sync code: a\n``send``",
    ),
]

POOL_PROSE: list[tuple[str, str]] = [
    ("(async; ``_pool_sync`` is\ngenerated from it)", "(sync; generated\nfrom ``_pool_async``)"),
]

NATIVE_PROSE: list[tuple[str, str]] = [
    (
        "for async code (``_native_sync`` is generated from it): Python\nsockets (our own asyncio"
        " protocol on asyncio, anyio's streams under trio)",
        "for sync code: Python\nblocking sockets",
    ),
]

DISPATCH_PROSE: list[tuple[str, str]] = [
    (
        "for async code (``_dispatch_sync`` is generated from it): the\ntransport",
        "for sync code: the\ntransport",
    ),
]

PROXY_PROSE: list[tuple[str, str]] = [
    (
        "client for async code: :func:`adurable_fetch` sends",
        "client for sync code: :func:`durable_fetch` sends",
    ),
]

# The sentences that differ between an async file and its sync twin.
PROSE: dict[str, list[tuple[str, str]]] = {
    "_reading/_response_async.py": READS_PROSE,
    "_writing/_handle_async.py": HANDLE_PROSE,
    "_client_async.py": CLIENT_PROSE,
    "_transport/_httpx_async.py": HTTPX_PROSE,
    "_transport/_interface_async.py": INTERFACE_PROSE,
    "_transport/_pool_async.py": POOL_PROSE,
    "_transport/_native_async.py": NATIVE_PROSE,
    "_dispatch_async.py": DISPATCH_PROSE,
    "_subscriptions/_client_async.py": SUBSCRIBE_PROSE,
    "state/_streams_async.py": STATE_PROSE,
    "proxy/_fetch_async.py": PROXY_PROSE,
}


def pairs() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """Every async module with a generated twin: (async file, sync file, prose)."""
    out = []
    for path in sorted(PACKAGE.rglob("*_async.py")):
        source = path.relative_to(PACKAGE).as_posix()
        stem = source.removesuffix("_async.py")
        if (PACKAGE / f"{stem}_threaded.py").exists():
            continue
        out.append((source, f"{stem}_sync.py", PROSE.get(source, [])))
    return out


# Word-bounded renames, in order. ``Async``-prefixed names and ``async_``-prefixed ones lose
# the prefix, ``_async``-suffixed ones become ``_sync``; the rest are the async spellings of
# dunder methods, httpx's and ours.
RENAMES: list[tuple[str, str | Callable[[re.Match[str]], str]]] = [
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
    (r"\badurable_fetch\b", "durable_fetch"),
    (r"\b(aload_state|aload_compacted|amaterialize|acompact)\b", lambda m: m.group(1)[1:]),
    (r"\b_producer_async\b", "_producer_threaded"),
    (r"\bIdempotentProducer\b", "SyncIdempotentProducer"),
    (r"_async\b", "_sync"),  # resolve_async, ._async, _subscribe_async
    (r"\bAsyncGenerator\[([^\]]*), None\]", r"Generator[\1, None, None]"),
    (r"\bAsync([A-Z]\w*)", r"\1"),
    (r"\basync_(\w+)", r"\1"),
]


class Stale(Exception):
    """A sentence of the prose table is no longer in its async file."""


def unasync(source: str, prose: list[tuple[str, str]], name: str = "_async.py") -> str:
    for async_text, sync_text in prose:
        if async_text not in source:
            raise Stale(f"{name} no longer says {async_text!r}: update its prose table")
        source = source.replace(async_text, sync_text)
    for pattern, replacement in RENAMES:
        source = re.sub(pattern, replacement, source)
    leftover = re.search(r"\b(async|await|anyio)\b", source)
    if leftover is not None:
        line = source.count("\n", 0, leftover.start()) + 1
        raise Stale(f"line {line} of the sync text still says {leftover.group()!r}")
    return HEADER.format(source=name) + source


def ruff(args: list[str], text: str, target: Path) -> str:
    exe = shutil.which("ruff")
    if exe is None:
        sys.exit("ruff is needed (pip install -e '.[dev]')")
    done = subprocess.run(
        [exe, *args, "--stdin-filename", str(target), "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"ruff {' '.join(args)} failed on the generated text:\n{done.stderr}")
    return done.stdout


def generate(source: str, target: str, prose: list[tuple[str, str]]) -> str:
    text = unasync((PACKAGE / source).read_text(encoding="utf-8"), prose, source)
    text = ruff(["check", "--quiet", "--fix", "--select", "I,RUF022"], text, PACKAGE / target)
    return ruff(["format", "--quiet"], text, PACKAGE / target)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a sync file is stale")
    args = parser.parse_args()
    stale = 0
    for source, target, prose in pairs():
        try:
            generated = generate(source, target, prose)
        except Stale as exc:
            print(f"unasync: {exc}", file=sys.stderr)
            return 1
        path = PACKAGE / target
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == generated:
            continue
        if not args.check:
            path.write_text(generated, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
            continue
        stale += 1
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                generated.splitlines(keepends=True),
                f"{target} (committed)",
                f"{target} (generated from {source})",
            )
        )
        print(f"unasync: {target} is stale; run python scripts/unasync.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
