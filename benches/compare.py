"""Side by side against the reference server: this project, the official clients, raw limits.

    python benches/compare.py [--quick] [--repeat N] [--messages N] [--only WORKLOAD ...]
                              [--json OUT] [--markdown] [--contenders a,b,...]

``--quick``: 100k messages, 1 repeat, short latency runs, 500 requests for ``append-one`` /
``head-one`` and 50k for ``catchup-nested`` (a smoke test, a few minutes);
``--repeat N``: runs per workload and contender (default 3; the table shows median and
min-max); ``--messages N``: messages of the read and producer workloads (default 1,000,000;
``sse-small`` uses N/100); ``--only WORKLOAD``: run just that workload (repeatable);
``--json OUT``: also write every run's raw measurements; ``--markdown``: also print the
table of docs/performance.md. The workloads of issue #28 take ``--ops``, ``--streams``,
``--per-stream``, ``--throughput-messages``, ``--throughput-concurrency``,
``--nested-messages``, ``--soak-seconds``, ``--soak-streams`` and ``--soak-interval`` (below).
``--help`` lists the rest.

Starts the pinned reference server (``refserver/``, in-memory, compression off) on 127.0.0.1
and runs every workload with every contender, each run in a fresh subprocess, so the CPU time
and peak memory a row reports belong to that client alone:

- ``native`` / ``pure``: this project (``durable_streams``) on its Rust core / on its
  pure-Python twin (``DURABLE_STREAMS_PURE_PYTHON=1``), in this repository's ``.venv``
  (``native-sync``: the threaded ``SyncIdempotentProducer``; ``native-state``: the async
  producer with a ``state=`` file, fsynced before each send; producer workload only);
- ``official``: the official Python client, ``durable-streams`` 0.1.0 from PyPI, in
  ``benches/.venv-official`` (created here on first use from ``requirements-official.txt``);
- ``ts``: the TypeScript reference client, ``@durable-streams/client`` from npm, pinned in
  ``benches/node/package.json`` + ``package-lock.json`` (installed here with ``npm ci``), run
  by ``benches/node/bench.mjs`` on Node;
- the raw limits: ``httpx+orjson`` (raw httpx requests and ``orjson``, with the least
  protocol handling that works: the floor for a Python client, the ``x/floor`` reference),
  ``httpx`` (the same responses streamed and dropped: transport alone), ``orjson``
  (``orjson.loads`` on the same payload bytes, no HTTP) and ``core`` (this project's native
  decoder on the same bytes, no HTTP) and, on the two small live workloads, ``socket`` /
  ``socket-async``: the bare-socket floor (``_floor.py``: a Python loop over a blocking
  socket or asyncio streams, HTTP/1.1 by hand, ``orjson`` on each payload), the least CPU a
  Python reader can spend per event or answer; on ``append-one`` / ``head-one`` (``socket``)
  and ``many-streams-append`` (``socket-async``) the same connection code sending each
  request by hand (``_floor.SocketFloor.request``), the least CPU a Python client can spend
  per request; on ``throughput-small`` (``socket-async``) that code under the same waves of
  asyncio tasks, the appends joined as the clients join them: the least an asyncio client
  can spend there;
- ``native-async`` / ``official-async``: the live workloads read through ``astream`` on
  asyncio, and the asyncio workloads below through each client's ``AsyncDurableStream``;
- ``native-nogc``: ``native`` with the garbage collector off (``gc.disable()``), for
  reference (``catchup-nested``).

Workloads (``--only`` takes these names):

- ``catch-up``: read N small JSON messages (51 bytes each) of a closed stream from the start,
  not live. The reference server answers with one response of every message.
- ``sse``: read N messages live over SSE: the reader connects to an empty stream, then this
  process appends the N messages (1,000 per request, as fast as the server takes them) and
  closes the stream. Wall time runs from the first append to the reader's N-th message. The
  reference server sends one SSE data event per append, so this is 1,000 messages per event.
- ``sse-small``: the same with one message per append, so one per SSE data event (N/100
  messages), appended on a fixed schedule one every ``--live-interval-ms`` (default 1.5 ms;
  0: as fast as the server takes them): a live tail, where per-event costs dominate.
- ``long-poll-small``: the same messages and schedule read with ``live=long-poll``: about
  one message per answer, so the cost of one long-poll round trip per message.
- ``produce``: append N small messages through each client's batching producer
  (``IdempotentProducer`` here and in TypeScript, same settings: linger 5 ms, 1 MiB batches,
  5 in flight; the official Python client has none, so concurrent ``append`` calls of its
  async handle, which it batches, in windows of ``--window``) and wait for all.
- ``append-1mib``: 50 appends of one ~1 MiB JSON message each, one after another.
- ``latency-long-poll`` / ``latency-sse``: a reader tails the stream; this process appends
  one message at a time (every 10 ms) carrying ``time.monotonic_ns()``; the reader takes the
  difference when the message is handed to it. p50 and p99 per run.

The requests of issue #28 ("every request at native speed"), each a request the client makes
itself rather than a read:

- ``append-one``: ``handle.append(dict)`` on a JSON stream, ``--ops`` times (default 2,000;
  distinct 51-byte messages), one after another, on the sync API (TypeScript: each append
  awaited before the next, so its batching never joins two); one handle, made before the
  clock starts. Per operation: client CPU and wall time.
- ``head-one``: ``handle.head()`` ``--ops`` times, the same way.
- ``many-streams-append``: asyncio, ``--streams`` streams (default 200), ``--per-stream``
  appends each (default 10): one handle per stream, one task per stream appending its
  messages one after another, every stream's task at once (so up to 200 appends in flight,
  never two on one stream, and no client can join appends into one request). Per append.
- ``throughput-small``: the small-message throughput scenario of the upstream benchmark suite
  (``packages/benchmarks/src/index.ts``): asyncio, one ``application/octet-stream`` stream,
  ``--throughput-messages`` appends (default 1,000) of the same 100-byte payload (``*`` x
  100, upstream's ``Uint8Array(100).fill(42)``) on one handle, in waves of
  ``--throughput-concurrency`` (default 75) concurrent ``append`` calls, each wave awaited
  before the next (upstream: ``Promise.all``). Messages per second and client CPU per
  message. All three clients' handles join overlapping appends into one request (this
  project's with ``coalesce=True``, its default). ``--throughput-messages 100000``: a steady
  state.
  (Upstream's loop, ``batch < 1000 / 75``, runs 14 waves, so it sends 1,050 appends and
  reports 1,000; here the last wave is cut short: exactly N appends.)
- ``catchup-nested``: a catch-up read of ``--nested-messages`` (default 200,000) nested JSON
  messages of about 83 bytes (``{"type","i","user","x","props":{"page","ok"}}``, appended
  1,000 per request), iterated one by one and dropped: CPU per message and the peak RSS
  above the RSS at the start of the read (after imports and the warm-up). ``orjson``: the
  same bytes as 1,000-message arrays, ``orjson.loads`` and each item handed out, in memory
  (no HTTP); ``core``: this project's ``parse_json_array`` the same way.
- ``soak-many-streams`` (only with ``--only``; long): ``--soak-streams`` streams (default
  1,000), each written (its own handle, one append every ``--soak-interval`` seconds,
  default 2) and tailed over SSE from one asyncio process for ``--soak-seconds`` (default
  600); every 10 s the process's open sockets and files (``/proc/self/fd``) and its RSS.
  Reports them at the start, the end, their maximum and after the readers are closed, and
  the messages appended (acknowledged), received and stored (all three must be equal).

Each child measures itself around the workload only (interpreter start-up, imports and one
warm-up HEAD excluded): client CPU (``time.process_time`` / ``process.cpuUsage``: user and
system time of every thread of that process), wall time, RSS before, peak RSS (``VmHWM``)
and RSS every N/10 messages. Each (workload, contender) runs ``--repeat`` times
(default 3), interleaved; the table shows the median and min-max. Ratios are of medians from
this same run. The machine is shared and noisy: client CPU is the figure to trust, wall time
also carries the server's and the writer's work; each run records the 1-minute load average
when it starts (the ``load`` column: median over the repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
OFFICIAL_VENV = HERE / ".venv-official"
OFFICIAL_REQUIREMENTS = HERE / "requirements-official.txt"
NODE_DIR = HERE / "node"
CONTENDER_SCRIPT = HERE / "_contender.py"
NODE_SCRIPT = NODE_DIR / "bench.mjs"

sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "refserver"))

try:
    import httpx
    import orjson
except ImportError:  # started with another interpreter: rerun with the repository's .venv
    if VENV_PYTHON.exists() and Path(sys.executable).resolve() != VENV_PYTHON.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    raise

import _payloads as P  # noqa: E402

from launch import ReferenceServer  # noqa: E402

JSON_CT = {"content-type": "application/json"}
PREFILL_BATCH = 10_000  # messages per append request when filling the catch-up stream
READY_GRACE = 0.3  # seconds between a live reader's "ready" and the first append
CHILD_TIMEOUT = 1800.0

WORKLOAD_TITLES = {
    "catch-up": "catch-up read of {n:,} small JSON messages (one {mb:.1f} MB response)",
    "sse": "live SSE read of {n:,} small JSON messages (written 1,000 per append)",
    "sse-small": "live SSE read of {small:,} small JSON messages (written one per append{pace})",
    "long-poll-small": (
        "live long-poll read of {small:,} small JSON messages (written one per append{pace})"
    ),
    "produce": "{n:,} small JSON messages appended through the producer",
    "append-1mib": "{big} appends of one ~1 MiB JSON message, one after another",
    "latency-long-poll": "append-to-read latency, long-poll ({lat} messages, one every {ms} ms)",
    "latency-sse": "append-to-read latency, SSE ({lat} messages, one every {ms} ms)",
    "append-one": "{ops:,} appends of one small JSON message, one after another (sync API)",
    "head-one": "{ops:,} HEAD requests, one after another (sync API)",
    "many-streams-append": (
        "{streams} streams x {per} appends, one task per stream, all at once (asyncio)"
    ),
    "throughput-small": (
        "{tput:,} appends of {tbytes} bytes to one stream, in waves of {conc} concurrent "
        "appends (asyncio; upstream's small-message throughput)"
    ),
    "catchup-nested": "catch-up read of {nested:,} nested JSON messages (~83 bytes each)",
    "soak-many-streams": (
        "soak: {soak_streams:,} streams, each appended every {soak_interval:g} s and tailed "
        "over SSE, for {soak_seconds:g} s (asyncio)"
    ),
}
WORKLOADS = list(WORKLOAD_TITLES)
DEFAULT_WORKLOADS = [w for w in WORKLOADS if w != "soak-many-streams"]
REQUESTS = ("append-one", "head-one", "many-streams-append", "throughput-small")
READS = ("catch-up", "sse", "sse-small", "long-poll-small")
SMALL = ("sse-small", "long-poll-small")  # one message per append, paced
LATENCY = ("latency-long-poll", "latency-sse")
CLIENTS = ("native", "pure", "official", "ts")
ASYNC_CLIENTS = ("native", "native-async", "pure", "official", "official-async", "ts")
FLOORS = ("socket", "socket-async")
ROWS = {
    "catch-up": [*CLIENTS, "httpx+orjson", "httpx", "orjson", "core"],
    "sse": [*ASYNC_CLIENTS, "httpx+orjson", "httpx", "orjson", "core"],
    "sse-small": [*ASYNC_CLIENTS, "httpx+orjson", "httpx", *FLOORS, "orjson", "core"],
    "long-poll-small": [*ASYNC_CLIENTS, "httpx+orjson", *FLOORS],
    "produce": [
        "native",
        "native-sync",
        "native-state",
        "pure",
        "official",
        "ts",
        "httpx+orjson",
        "httpx",
    ],
    "append-1mib": [*CLIENTS, "httpx+orjson", "httpx"],
    "latency-long-poll": [*CLIENTS, "httpx+orjson"],
    "latency-sse": [*CLIENTS, "httpx+orjson"],
    "append-one": [*CLIENTS, "socket"],
    "head-one": [*CLIENTS, "socket"],
    "many-streams-append": ["native-async", "official-async", "ts", "socket-async"],
    "throughput-small": ["native-async", "official-async", "ts", "socket-async"],
    "catchup-nested": [
        "native",
        "native-nogc",
        "pure",
        "official",
        "ts",
        "orjson",
        "core",
    ],
    "soak-many-streams": ["native-async", "official-async"],
}
LABELS = {
    "native": "native (this project)",
    "native-sync": "native, sync producer",
    "native-state": "native, with state file",
    "native-async": "native, asyncio",
    "native-nogc": "native, GC off",
    "pure": "pure (this project)",
    "official": "official Python 0.1.0",
    "official-async": "official 0.1.0, asyncio",
    "ts": "TypeScript client",
    "httpx+orjson": "raw httpx+orjson",
    "httpx": "raw httpx, bytes",
    "orjson": "orjson.loads alone",
    "core": "native core alone",
    "socket": "bare socket floor",
    "socket-async": "bare socket, asyncio",
}


# ---- contenders -----------------------------------------------------------------------------


@dataclass
class Contender:
    name: str
    argv: list[str]  # the command, before the workload's arguments
    env: dict[str, str]
    unavailable: dict[str, str] = field(default_factory=dict)  # workload -> why not
    tail: list[str] = field(default_factory=list)  # arguments after the workload's


def child_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "DURABLE_STREAMS_PURE_PYTHON", "VIRTUAL_ENV")
    }
    env.update(extra)
    return env


def ours_python() -> str:
    """An interpreter that imports this repository's durable_streams (with its native core)."""
    probe = "import durable_streams._core._native"
    for py in (sys.executable, str(VENV_PYTHON)):
        if (
            Path(py).exists()
            and subprocess.run([py, "-c", probe], capture_output=True).returncode == 0
        ):
            return py
    raise SystemExit(
        "no interpreter here imports durable_streams._core._native; build it (scripts/test)"
    )


def official_python() -> str:
    """The official client's interpreter, creating its virtualenv from the pinned
    requirements when it is missing or differs."""
    py = OFFICIAL_VENV / "bin" / "python"
    wanted = sorted(
        line.strip().lower().replace("_", "-")
        for line in OFFICIAL_REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )

    def installed() -> list[str] | None:
        if not py.exists():
            return None
        done = subprocess.run(
            [str(py), "-m", "pip", "freeze", "--disable-pip-version-check"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return None
        return sorted(line.strip().lower().replace("_", "-") for line in done.stdout.splitlines())

    have = installed()
    if have is not None and all(req in have for req in wanted):
        return str(py)
    base = shutil.which("python3") or sys.executable
    print(f"creating {OFFICIAL_VENV} from {OFFICIAL_REQUIREMENTS.name} ...", file=sys.stderr)
    if not py.exists():
        subprocess.run([base, "-m", "venv", str(OFFICIAL_VENV)], check=True)
    pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(OFFICIAL_REQUIREMENTS)], check=True)
    return str(py)


def node_command() -> list[str]:
    """``node bench.mjs``, after installing the pinned client from the lockfile if needed."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError("node and npm are not on PATH")
    installed = NODE_DIR / "node_modules" / "@durable-streams" / "client" / "package.json"
    pinned = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    want = pinned["@durable-streams/client"]
    if not installed.exists() or json.loads(installed.read_text())["version"] != want:
        print(
            f"installing @durable-streams/client {want} in {NODE_DIR} (npm ci) ...", file=sys.stderr
        )
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--update-notifier=false"],
            cwd=NODE_DIR,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return [node, str(NODE_SCRIPT)]


def probe_producer(py: str) -> str | None:
    """Why this project's producer rows cannot run, or None when it exists."""
    code = "import durable_streams as d; d.IdempotentProducer; d.BufferFullError"
    done = subprocess.run([py, "-c", code], capture_output=True, text=True, env=child_env())
    return None if done.returncode == 0 else "n/a (not built yet)"


def make_contenders(wanted: set[str]) -> dict[str, Contender]:
    out: dict[str, Contender] = {}
    ours = ours_python()
    script = str(CONTENDER_SCRIPT)
    no_producer = probe_producer(ours)
    for name in ("native", "native-sync", "native-state", "native-async", "native-nogc", "pure"):
        if name not in wanted:
            continue
        impl = "pure" if name == "pure" else "native"
        env = child_env(DURABLE_STREAMS_PURE_PYTHON="1") if impl == "pure" else child_env()
        tail = ["--expect-impl", impl]
        if name == "native-sync":
            tail.append("--sync-producer")
        elif name == "native-state":
            tail.append("--state-file")
        elif name == "native-async":
            tail.append("--async")
        elif name == "native-nogc":
            tail.append("--gc-off")
        c = Contender(name, [ours, script, "ours"], env, tail=tail)
        if no_producer:
            c.unavailable["produce"] = no_producer
        out[name] = c
    for name in ("official", "official-async"):
        if name not in wanted:
            continue
        tail = ["--async"] if name == "official-async" else []
        try:
            out[name] = Contender(
                name, [official_python(), script, "official"], child_env(), tail=tail
            )
        except (subprocess.CalledProcessError, OSError) as exc:
            out[name] = Contender(name, [], {}, dict.fromkeys(WORKLOADS, f"n/a ({exc})"))
    if "ts" in wanted:
        try:
            out["ts"] = Contender("ts", node_command(), child_env())
        except (subprocess.CalledProcessError, OSError, RuntimeError) as exc:
            out["ts"] = Contender("ts", [], {}, dict.fromkeys(WORKLOADS, f"n/a ({exc})"))
    for raw in ("httpx+orjson", "httpx", "orjson", "core"):
        if raw in wanted:
            out[raw] = Contender(raw, [ours, script, raw], child_env())
    for name in FLOORS:
        if name in wanted:
            tail = ["--async"] if name == "socket-async" else []
            out[name] = Contender(name, [ours, script, "socket"], child_env(), tail=tail)
    return out


# ---- the server side: streams, writers ------------------------------------------------------


class Server:
    """The reference server and a plain httpx client for setting up and writing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(timeout=httpx.Timeout(60.0))

    def new_stream(self, tag: str) -> str:
        url = f"{self.url}/bench/{tag}-{uuid.uuid4().hex[:12]}"
        self.http.put(url, headers=JSON_CT).raise_for_status()
        return url

    def append(self, url: str, body: bytes) -> None:
        r = self.http.post(url, content=body, headers=JSON_CT)
        if r.status_code not in (200, 204):
            raise RuntimeError(f"append to {url} failed: {r.status_code} {r.text[:200]}")

    def close_stream(self, url: str) -> None:
        self.http.post(url, headers={**JSON_CT, "Stream-Closed": "true"}).raise_for_status()

    def delete(self, url: str) -> None:
        self.http.delete(url)

    def new_streams(self, tag: str, count: int) -> str:
        """``count`` empty JSON streams ``PREFIX-0`` ... ``PREFIX-{count-1}``: their prefix."""
        prefix = f"{self.url}/bench/{tag}-{uuid.uuid4().hex[:12]}"
        for k in range(count):
            self.http.put(f"{prefix}-{k}", headers=JSON_CT).raise_for_status()
        return prefix

    def delete_streams(self, prefix: str, count: int) -> None:
        for k in range(count):
            self.delete(f"{prefix}-{k}")

    def size(self, url: str) -> int:
        """Bytes stored in a (non-JSON) stream."""
        r = self.http.get(url, params={"offset": "-1"})
        r.raise_for_status()
        return len(r.content)

    def count(self, url: str) -> int:
        r = self.http.get(url, params={"offset": "-1"})
        r.raise_for_status()
        return len(orjson.loads(r.content))

    def prefill(self, n: int) -> str:
        """A closed stream of ``n`` messages (``_payloads.message``), filled in big appends."""
        url = self.new_stream("catch-up")
        for start in range(0, n, PREFILL_BATCH):
            self.append(url, P.array_body(min(PREFILL_BATCH, n - start), start))
        self.close_stream(url)
        return url

    def prefill_nested(self, n: int) -> str:
        """A closed stream of ``n`` nested messages (``_payloads.nested_message``), appended
        1,000 per request."""
        url = self.new_stream("nested")
        per = P.MSGS_PER_EVENT
        for start in range(0, n, per):
            self.append(url, P.nested_array_body(min(per, n - start), start))
        self.close_stream(url)
        return url


# ---- running one child ----------------------------------------------------------------------


class ChildFailed(Exception):
    pass


def run_child(
    argv: list[str], env: dict[str, str], writer: Callable[[], int] | None, timeout: float
) -> tuple[dict[str, Any], int | None]:
    """Runs one contender process. With a ``writer``, waits for the child's ``ready`` line,
    then runs the writer (which returns when it started, in ``time.monotonic_ns()``)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=err, env=env, cwd=HERE, text=True
        )
        assert proc.stdout is not None
        write_start: int | None = None
        try:
            if writer is not None:
                ready, _, _ = select.select([proc.stdout], [], [], 60.0)
                line = proc.stdout.readline() if ready else ""
                if line.strip() != "ready":
                    proc.kill()
                    proc.wait()
                    raise ChildFailed(f"no 'ready' from the child (got {line!r}){_tail(err)}")
                time.sleep(READY_GRACE)
                write_start = writer()
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise ChildFailed(f"timed out after {timeout:.0f} s{_tail(err)}") from None
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        if proc.returncode != 0:
            raise ChildFailed(f"exit code {proc.returncode}{_tail(err)}")
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            raise ChildFailed(f"no result line{_tail(err)}")
        return json.loads(lines[-1]), write_start


def _tail(err: Any) -> str:
    err.seek(0)
    text = err.read().decode("utf-8", "replace").strip()
    return f"; stderr: {text[-1500:]}" if text else ""


# ---- the workloads --------------------------------------------------------------------------


@dataclass
class Settings:
    messages: int
    small_messages: int
    repeat: int
    latency_messages: int
    latency_interval: float
    big_appends: int
    window: int
    live_interval: float  # seconds between the appends of the small live workloads; 0: none
    ops: int = 2000  # append-one, head-one
    streams: int = 200  # many-streams-append
    per_stream: int = 10
    throughput_messages: int = 1000  # throughput-small
    throughput_concurrency: int = 75
    throughput_bytes: int = 100
    nested_messages: int = 200_000  # catchup-nested
    soak_streams: int = 1000  # soak-many-streams
    soak_seconds: float = 600.0
    soak_interval: float = 2.0
    soak_sample_every: float = 10.0


class Bench:
    def __init__(self, server: Server, contenders: dict[str, Contender], s: Settings) -> None:
        self.server = server
        self.contenders = contenders
        self.s = s
        self.catch_up_url: str | None = None
        self.nested_url: str | None = None
        self.sse_bodies: list[bytes] = []
        self.results: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.errors: dict[str, dict[str, str]] = {}

    def argv(self, c: Contender, workload: str, url: str, n: int) -> list[str]:
        every = max(1, n // 10)
        argv = [*c.argv, workload, "--url", url, "--messages", str(n), "--sample-every", str(every)]
        argv += c.tail
        if c.name == "official" and workload == "produce":
            argv += ["--window", str(self.s.window)]
        s = self.s
        if workload == "many-streams-append":
            argv += ["--streams", str(s.streams), "--per-stream", str(s.per_stream)]
        elif workload == "throughput-small":
            argv += ["--concurrency", str(s.throughput_concurrency)]
            argv += ["--message-bytes", str(s.throughput_bytes)]
        elif workload == "soak-many-streams":
            argv += ["--streams", str(s.soak_streams), "--soak-seconds", str(s.soak_seconds)]
            argv += ["--soak-interval", str(s.soak_interval)]
            argv += ["--soak-sample-every", str(s.soak_sample_every)]
        return argv

    def run(self, workload: str, name: str) -> None:
        c = self.contenders[name]
        if workload in c.unavailable:
            self.errors.setdefault(workload, {})[name] = c.unavailable[workload]
            return
        load = os.getloadavg()
        try:
            result = getattr(self, "_" + workload.replace("-", "_"))(c)
        except ChildFailed as exc:
            msg = f"failed: {exc}"
            print(f"  {workload} / {name}: {msg}", file=sys.stderr)
            self.errors.setdefault(workload, {})[name] = msg.splitlines()[0][:300]
            return
        result["load"] = load  # the 1, 5 and 15-minute load averages when the run started
        self.results.setdefault(workload, {}).setdefault(name, []).append(result)
        print(
            f"  {workload:<19} {name:<14} {_brief(workload, result)}  load {load[0]:.2f}",
            file=sys.stderr,
        )

    def _catch_up(self, c: Contender) -> dict[str, Any]:
        n = self.s.messages
        if c.name in ("orjson", "core"):
            r, _ = run_child(self.argv(c, "catch-up", "", n), c.env, None, CHILD_TIMEOUT)
            _expect(r, n)
            return r
        if self.catch_up_url is None:
            self.catch_up_url = self.server.prefill(n)
        r, _ = run_child(self.argv(c, "catch-up", self.catch_up_url, n), c.env, None, CHILD_TIMEOUT)
        _expect(r, n)
        return r

    def _sse(self, c: Contender) -> dict[str, Any]:
        n = self.s.messages
        if not self.sse_bodies:
            self.sse_bodies = [
                P.array_body(min(P.LIVE_APPEND, n - s), s) for s in range(0, n, P.LIVE_APPEND)
            ]
        return self._live_read(c, "sse", n, self.sse_bodies)

    def _small_live_read(self, c: Contender, workload: str) -> dict[str, Any]:
        n = self.s.small_messages
        bodies = [P.array_body(1, i) for i in range(n)]
        return self._live_read(c, workload, n, bodies, self.s.live_interval)

    def _sse_small(self, c: Contender) -> dict[str, Any]:
        return self._small_live_read(c, "sse-small")

    def _long_poll_small(self, c: Contender) -> dict[str, Any]:
        return self._small_live_read(c, "long-poll-small")

    def _live_read(
        self, c: Contender, workload: str, n: int, bodies: list[bytes], interval: float = 0.0
    ) -> dict[str, Any]:
        if c.name in ("orjson", "core"):
            r, _ = run_child(self.argv(c, workload, "", n), c.env, None, CHILD_TIMEOUT)
            return r
        url = self.server.new_stream(workload)

        def write() -> int:
            # On a fixed schedule (one append every `interval`, late ones sent at once), so
            # that every contender gets the same arrival pattern: one message per event or
            # answer, as a live tail sees it.
            start = time.monotonic_ns()
            due = time.monotonic()
            for body in bodies:
                if interval:
                    due += interval
                    if (ahead := due - time.monotonic()) > 0:
                        time.sleep(ahead)
                self.server.append(url, body)
            self.server.close_stream(url)
            return start

        try:
            r, start = run_child(self.argv(c, workload, url, n), c.env, write, CHILD_TIMEOUT)
        finally:
            self.server.delete(url)
        _expect(r, n)
        assert start is not None
        r["wall_s"] = (r["end_ns"] - start) / 1e9  # from the first append to the last message
        return r

    def _produce(self, c: Contender) -> dict[str, Any]:
        n = self.s.messages
        url = self.server.new_stream("produce")
        try:
            r, _ = run_child(self.argv(c, "produce", url, n), c.env, None, CHILD_TIMEOUT)
            stored = self.server.count(url)
        finally:
            self.server.delete(url)
        if stored != n:
            raise ChildFailed(f"the stream holds {stored:,} messages, not {n:,}")
        return r

    def _append_1mib(self, c: Contender) -> dict[str, Any]:
        n = self.s.big_appends
        url = self.server.new_stream("big")
        try:
            r, _ = run_child(self.argv(c, "append-1mib", url, n), c.env, None, CHILD_TIMEOUT)
            stored = self.server.count(url)
        finally:
            self.server.delete(url)
        if stored != n:
            raise ChildFailed(f"the stream holds {stored} messages, not {n}")
        return r

    def _latency(self, c: Contender, workload: str) -> dict[str, Any]:
        n = self.s.latency_messages
        url = self.server.new_stream("latency")
        interval = self.s.latency_interval

        def write() -> int:
            start = time.monotonic_ns()
            for i in range(n):
                self.server.append(url, b'[{"t":%d,"i":%d}]' % (time.monotonic_ns(), i))
                time.sleep(interval)
            self.server.close_stream(url)
            return start

        try:
            r, _ = run_child(self.argv(c, workload, url, n), c.env, write, 300.0)
        finally:
            self.server.delete(url)
        _expect(r, n)
        return r

    # -- the requests of issue #28 ---------------------------------------------------------

    def _one_after_another(self, c: Contender, workload: str) -> dict[str, Any]:
        n = self.s.ops
        url = self.server.new_stream(workload)
        try:
            r, _ = run_child(self.argv(c, workload, url, n), c.env, None, CHILD_TIMEOUT)
            stored = self.server.count(url)
        finally:
            self.server.delete(url)
        _expect(r, n)
        want = n if workload == "append-one" else 0
        if stored != want:
            raise ChildFailed(f"the stream holds {stored:,} messages, not {want:,}")
        return r

    def _append_one(self, c: Contender) -> dict[str, Any]:
        return self._one_after_another(c, "append-one")

    def _head_one(self, c: Contender) -> dict[str, Any]:
        return self._one_after_another(c, "head-one")

    def _many_streams_append(self, c: Contender) -> dict[str, Any]:
        s = self.s
        n = s.streams * s.per_stream
        prefix = self.server.new_streams("many", s.streams)
        try:
            r, _ = run_child(
                self.argv(c, "many-streams-append", prefix, n), c.env, None, CHILD_TIMEOUT
            )
            short = [
                k for k in range(s.streams) if self.server.count(f"{prefix}-{k}") != s.per_stream
            ]
        finally:
            self.server.delete_streams(prefix, s.streams)
        _expect(r, n)
        if short:
            raise ChildFailed(f"{len(short)} streams do not hold {s.per_stream} messages")
        return r

    def _throughput_small(self, c: Contender) -> dict[str, Any]:
        s = self.s
        n = s.throughput_messages
        url = f"{self.server.url}/bench/throughput-small-{uuid.uuid4().hex[:12]}"
        octet = {"content-type": "application/octet-stream"}
        self.server.http.put(url, headers=octet).raise_for_status()
        try:
            r, _ = run_child(self.argv(c, "throughput-small", url, n), c.env, None, CHILD_TIMEOUT)
            stored = self.server.size(url)
        finally:
            self.server.delete(url)
        _expect(r, n)
        if stored != n * s.throughput_bytes:
            raise ChildFailed(f"the stream holds {stored:,} bytes, not {n * s.throughput_bytes:,}")
        return r

    def _catchup_nested(self, c: Contender) -> dict[str, Any]:
        n = self.s.nested_messages
        url = ""
        if c.name not in ("orjson", "core"):
            if self.nested_url is None:
                self.nested_url = self.server.prefill_nested(n)
            url = self.nested_url
        r, _ = run_child(self.argv(c, "catchup-nested", url, n), c.env, None, CHILD_TIMEOUT)
        _expect(r, n)
        return r

    def _soak_many_streams(self, c: Contender) -> dict[str, Any]:
        s = self.s
        prefix = self.server.new_streams("soak", s.soak_streams)
        timeout = s.soak_seconds + 900.0
        try:
            r, _ = run_child(self.argv(c, "soak-many-streams", prefix, 0), c.env, None, timeout)
            r["info"]["stored"] = sum(
                self.server.count(f"{prefix}-{k}") for k in range(s.soak_streams)
            )
        finally:
            self.server.delete_streams(prefix, s.soak_streams)
        return r

    def _latency_long_poll(self, c: Contender) -> dict[str, Any]:
        return self._latency(c, "latency-long-poll")

    def _latency_sse(self, c: Contender) -> dict[str, Any]:
        return self._latency(c, "latency-sse")


def _expect(r: dict[str, Any], n: int) -> None:
    if r["messages"] != n:
        raise ChildFailed(f"counted {r['messages']:,} messages, expected {n:,}")


def _brief(workload: str, r: dict[str, Any]) -> str:
    if workload in LATENCY:
        lat = sorted(r["latencies_ns"])
        return f"p50 {_pct(lat, 50) / 1e6:.2f} ms  p99 {_pct(lat, 99) / 1e6:.2f} ms"
    return (
        f"wall {r['wall_s']:.2f} s  cpu {r['cpu_s']:.2f} s  peak {r['rss_peak_kib'] / 1024:.0f} MiB"
    )


def _pct(sorted_values: list[int], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[k])


# ---- the report -----------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values)


def span(values: list[float], fmt: str) -> str:
    return f"{format(med(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.0f}k"
    return f"{x:.1f}"


class Report:
    def __init__(self, bench: Bench) -> None:
        self.b = bench
        self.s = bench.s

    def runs(self, workload: str, name: str) -> list[dict[str, Any]]:
        return self.b.results.get(workload, {}).get(name, [])

    def cpu(self, workload: str, name: str) -> float | None:
        runs = self.runs(workload, name)
        return med([r["cpu_s"] for r in runs]) if runs else None

    def wall(self, workload: str, name: str) -> float | None:
        runs = self.runs(workload, name)
        return med([r["wall_s"] for r in runs]) if runs else None

    def latency(self, workload: str, name: str, q: float) -> float | None:
        runs = self.runs(workload, name)
        if not runs:
            return None
        return med([_pct(sorted(r["latencies_ns"]), q) / 1e6 for r in runs])

    def count(self, workload: str) -> int:
        if workload == "append-1mib":
            return self.s.big_appends
        if workload in ("append-one", "head-one"):
            return self.s.ops
        if workload == "many-streams-append":
            return self.s.streams * self.s.per_stream
        if workload == "throughput-small":
            return self.s.throughput_messages
        if workload == "catchup-nested":
            return self.s.nested_messages
        if workload in SMALL:
            return self.s.small_messages
        return self.s.messages

    def title(self, workload: str) -> str:
        return WORKLOAD_TITLES[workload].format(
            n=self.s.messages,
            small=self.s.small_messages,
            mb=len(P.array_body(1)) * self.s.messages / 1e6,
            big=self.s.big_appends,
            lat=self.s.latency_messages,
            ms=round(self.s.latency_interval * 1000),
            ops=self.s.ops,
            streams=self.s.streams,
            per=self.s.per_stream,
            tput=self.s.throughput_messages,
            tbytes=self.s.throughput_bytes,
            conc=self.s.throughput_concurrency,
            nested=self.s.nested_messages,
            soak_streams=self.s.soak_streams,
            soak_interval=self.s.soak_interval,
            soak_seconds=self.s.soak_seconds,
            pace=(
                f", one every {self.s.live_interval * 1000:g} ms"
                if self.s.live_interval
                else ", as fast as the server takes them"
            ),
        )

    def text(self) -> str:
        out: list[str] = []
        for workload in WORKLOADS:
            if workload not in self.b.results and workload not in self.b.errors:
                continue
            out += ["", f"== {workload}: {self.title(workload)}"]
            if workload in LATENCY:
                out += self._latency_block(workload)
            elif workload == "soak-many-streams":
                out += self._soak_block(workload)
            else:
                out += self._throughput_block(workload)
        return "\n".join(out)

    def twin(self, workload: str, name: str, sync_name: str) -> float | None:
        """The CPU of ``sync_name``, or of its asyncio variant for an asyncio row (or when the
        workload has only that)."""
        if self.runs(workload, sync_name + "-async") and (
            name.endswith("-async") or not self.runs(workload, sync_name)
        ):
            return self.cpu(workload, sync_name + "-async")
        return self.cpu(workload, sync_name)

    def load(self, workload: str, name: str) -> str:
        """The median 1-minute load average at the start of this row's runs."""
        loads = [r["load"][0] for r in self.runs(workload, name) if "load" in r]
        return f"{med(loads):.1f}" if loads else "-"

    def _throughput_block(self, workload: str) -> list[str]:
        n = self.count(workload)
        ts = self.cpu(workload, "ts")
        floor = self.cpu(workload, "httpx+orjson")
        sock = self.twin(workload, "", "socket")
        loads = self.cpu(workload, "orjson") if workload == "catchup-nested" else None
        unit = "op" if workload in ("append-one", "head-one") else "msg"
        head = (
            f"  {'contender':<22} {'wall s':>19} {unit + '/s':>7} {'client CPU s':>19} "
            f"{'CPU µs/' + unit:>10} {'peak RSS MiB':>12} {'peak +MiB':>9} {'stream +MiB':>11} "
            f"{'CPU off/x':>9} {'CPU ts/x':>8}"
        )
        if floor is not None:
            head += f" {'x/floor':>7}"
        if sock is not None:
            head += f" {'x/socket':>8}"
        if loads is not None:
            head += f" {'x/orjson':>8}"
        head += f" {'load':>5}"
        lines = [head]
        for name in ROWS[workload]:
            if name not in self.b.contenders:
                continue
            runs = self.runs(workload, name)
            if not runs:
                why = self.b.errors.get(workload, {}).get(name, "no result")
                lines.append(f"  {LABELS[name]:<22} {why}")
                continue
            walls = [r["wall_s"] for r in runs]
            cpus = [r["cpu_s"] for r in runs]
            c = med(cpus)
            off = self.twin(workload, name, "official")
            no_io = name in ("orjson", "core")
            peak = "-" if no_io else f"{med([r['rss_peak_kib'] for r in runs]) / 1024:.0f}"
            above = "{:+.1f}".format(
                med([(r["rss_peak_kib"] - r["rss_start_kib"]) / 1024 for r in runs])
            )
            growth = "-"
            if not no_io and all(len(r["rss_samples_kib"]) >= 2 for r in runs):
                growth = "{:+.1f}".format(
                    med(
                        [
                            (r["rss_samples_kib"][-1][1] - r["rss_samples_kib"][0][1]) / 1024
                            for r in runs
                        ]
                    )
                )
            line = (
                f"  {LABELS[name]:<22} {'-' if no_io else span(walls, '.2f'):>19} "
                f"{'-' if no_io else rate(n / med(walls)):>7} {span(cpus, '.3f'):>19} "
                f"{c / n * 1e6:>10.2f} {peak:>12} {above:>9} {growth:>11} "
                f"{'-' if no_io else _ratio(off, c):>9} {'-' if no_io else _ratio(ts, c):>8}"
            )
            if floor is not None:
                line += f" {c / floor:>6.2f}x"
            if sock is not None:
                ref = self.twin(workload, name, "socket")
                line += f" {'-' if no_io or ref is None else f'{c / ref:.2f}x':>8}"
            if loads is not None:
                line += f" {c / loads:>7.2f}x"
            line += f" {self.load(workload, name):>5}"
            lines.append(line)
        return lines

    def _soak_block(self, workload: str) -> list[str]:
        """Per run: sockets, files and RSS at the start (the first sample after 10 s), the end
        (the writers done, the readers caught up), their maximum and after the readers
        closed; messages appended, received and stored; client CPU per message."""
        lines = [
            f"  {'contender':<22} {'sockets start/end/max/closed':>29} "
            f"{'files s/e/max/c':>16} {'RSS MiB s/e/max/c':>20} {'appended':>9} "
            f"{'received':>9} {'stored':>9} {'CPU µs/msg':>10} {'stall s':>7} {'load':>5}  "
            "problems"
        ]
        for name in ROWS[workload]:
            if name not in self.b.contenders:
                continue
            runs = self.runs(workload, name)
            if not runs:
                why = self.b.errors.get(workload, {}).get(name, "no result")
                lines.append(f"  {LABELS[name]:<22} {why}")
            for r in runs:
                info = r["info"]
                samples = info["samples"]
                problems = []
                if not info["appended"] == r["messages"] == info.get("stored"):
                    problems.append("COUNTS DIFFER")
                if info["out_of_order"]:
                    problems.append(f"{info['out_of_order']} out of order")
                if info["streams_short"]:
                    problems.append(f"{info['streams_short']} streams short")
                problems += [f"{k} x{v}" for k, v in info["failures"].items()]
                per_msg = r["cpu_s"] / max(1, info["appended"] + r["messages"]) * 1e6
                lines.append(
                    f"  {LABELS[name]:<22} {_four(samples, 'sockets'):>29} "
                    f"{_four(samples, 'files'):>16} {_four(samples, 'rss_kib', 1024):>20} "
                    f"{info['appended']:>9,} {r['messages']:>9,} "
                    f"{info.get('stored', -1):>9,} {per_msg:>10.1f} "
                    f"{info.get('max_loop_stall_s', float('nan')):>7.1f} {r['load'][0]:>5.1f}  "
                    f"{'; '.join(problems) or 'none'}"
                )
        lines.append(
            "  (start: the first periodic sample, due 10 s in; end: writers done, readers caught "
            "up; closed: after cancelling the readers; CPU per message appended or received; "
            "stall: the longest the event loop was kept busy (a 0.1 s ticker woke that late), "
            "starting up the streams included)"
        )
        return lines

    def _latency_block(self, workload: str) -> list[str]:
        lines = [
            f"  {'contender':<22} {'p50 ms':>20} {'p99 ms':>20} {'client CPU s':>19} "
            f"{'CPU µs/msg':>10} {'peak RSS MiB':>12}"
        ]
        n = self.s.latency_messages
        for name in ROWS[workload]:
            if name not in self.b.contenders:
                continue
            runs = self.runs(workload, name)
            if not runs:
                why = self.b.errors.get(workload, {}).get(name, "no result")
                lines.append(f"  {LABELS[name]:<22} {why}")
                continue
            p50 = [_pct(sorted(r["latencies_ns"]), 50) / 1e6 for r in runs]
            p99 = [_pct(sorted(r["latencies_ns"]), 99) / 1e6 for r in runs]
            cpus = [r["cpu_s"] for r in runs]
            lines.append(
                f"  {LABELS[name]:<22} {span(p50, '.2f'):>20} {span(p99, '.2f'):>20} "
                f"{span(cpus, '.3f'):>19} {med(cpus) / n * 1e6:>10.0f} "
                f"{med([r['rss_peak_kib'] for r in runs]) / 1024:>12.0f}"
            )
        return lines

    # -- the targets of issue #13 --------------------------------------------------------

    def targets(self) -> str:
        issue13 = ("sse-small", "long-poll-small", "sse", "catch-up", *LATENCY, "produce")
        if not any(w in self.b.results or w in self.b.errors for w in issue13):
            return "\n".join(self.issue28())
        out = ["", "== targets of issue #13 (medians of this run)"]

        def verdict(ok: bool | None) -> str:
            return "n/a   " if ok is None else ("MET   " if ok else "MISSED")

        def less_cpu(w: str, ours: str, theirs: str, want: float) -> None:
            a, b = self.cpu(w, ours), self.cpu(w, theirs)
            ok = None if a is None or b is None else b / a >= want
            got = "no data" if a is None or b is None else f"{theirs}/{ours} CPU = {b / a:.2f}x"
            out.append(f"  {verdict(ok)} {w}: {ours} >= {want:g}x less CPU than {theirs} ({got})")

        def within(w: str, ours: str, limit: str, want: float) -> None:
            a, b = self.cpu(w, ours), self.cpu(w, limit)
            ok = None if a is None or b is None else a / b <= want
            got = "no data" if a is None or b is None else f"{ours}/{limit} CPU = {a / b:.2f}x"
            out.append(f"  {verdict(ok)} {w}: {ours} within {want:g}x of {limit} ({got})")

        for suffix in ("", "-async"):
            less_cpu("sse-small", "native" + suffix, "official" + suffix, 3)
            within("sse-small", "native" + suffix, "socket" + suffix, 1.3)
        for suffix in ("", "-async"):
            less_cpu("long-poll-small", "native" + suffix, "official" + suffix, 5)
            within("long-poll-small", "native" + suffix, "socket" + suffix, 1.5)
        less_cpu("sse", "native", "official", 2.5)
        less_cpu("sse", "native-async", "official-async", 2.5)
        less_cpu("catch-up", "native", "official", 1.6)
        for w in ("sse", "catch-up"):
            within(w, "native", "orjson", 1.5)
            within(w, "core", "orjson", 1.2)
        runs = self.runs("catch-up", "native")
        if runs:
            above = [(r["rss_peak_kib"] - r["rss_start_kib"]) / 1024 for r in runs]
            out.append(
                f"  {verdict(max(above) <= 32)} catch-up: peak RSS at most 32 MiB above the "
                f"start of the read (native: {med(above):+.1f} MiB, max {max(above):+.1f}; "
                f"{self.s.messages:,} messages, the consumer keeps nothing)"
            )
        runs = self.runs("sse", "native")
        if runs:
            growth = [
                (r["rss_samples_kib"][-1][1] - r["rss_samples_kib"][0][1]) / 1024 for r in runs
            ]
            first = runs[0]["rss_samples_kib"][0][0]
            out.append(
                f"  {verdict(max(growth) <= 16)} sse: memory flat while streaming: RSS from "
                f"message {first:,} to {self.s.messages:,} grew {med(growth):+.1f} MiB "
                f"(max {max(growth):+.1f}; limit +16 MiB)"
            )
        for w in LATENCY:
            nat, ts = self.latency(w, "native", 50), self.latency(w, "ts", 50)
            p99 = self.latency(w, "native", 99)
            if nat is None or ts is None or p99 is None:
                out.append(f"  n/a    {w}: p50 no worse than TypeScript (no data)")
            else:
                out.append(
                    f"  {verdict(nat <= ts)} {w}: p50 no worse than TypeScript: native "
                    f"{nat:.2f} ms vs ts {ts:.2f} ms (native p99 {p99:.2f} ms)"
                )
        nat, off = self.cpu("produce", "native"), self.cpu("produce", "official")
        if nat is not None and off is not None:
            out.append(f"  info   produce: official/native CPU = {off / nat:.2f}x")
        return "\n".join(out + self.issue28())

    def issue28(self) -> list[str]:
        """Where the requests of issue #28 stand (information: CPU per request next to the
        bare socket's, the official client's and TypeScript's)."""
        out = ["", "== issue #28, every request at native speed (medians of this run)"]

        def vs(label: str, theirs: float | None, ours: float) -> str:
            return "" if theirs is None else f"; {label} {theirs / ours:.2f}x"

        for w, name in (
            ("append-one", "native"),
            ("head-one", "native"),
            ("many-streams-append", "native-async"),
            ("throughput-small", "native-async"),
        ):
            ours = self.cpu(w, name)
            if ours is None:
                continue
            n = self.count(w)
            sock = self.twin(w, name, "socket")
            what = "request" if w in ("append-one", "head-one") else "append"
            line = f"  info   {w}: {name} {ours / n * 1e6:.0f} µs CPU per {what}"
            if sock is not None:
                line += f", {sock / n * 1e6:.0f} µs for the bare socket: {ours / sock:.2f}x it"
            line += vs("official/ours", self.twin(w, name, "official"), ours)
            line += vs("ts/ours", self.cpu(w, "ts"), ours)
            if w == "throughput-small":
                rates = [
                    f"{c} {rate(n / wall)}/s"
                    for c in ROWS[w]
                    if (wall := self.wall(w, c)) is not None
                ]
                line += "; msg/s: " + ", ".join(rates)
            out.append(line)
        ours = self.cpu("catchup-nested", "native")
        if ours is not None:
            n = self.count("catchup-nested")
            runs = self.runs("catchup-nested", "native")
            above = med([(r["rss_peak_kib"] - r["rss_start_kib"]) / 1024 for r in runs])
            line = (
                f"  info   catchup-nested: native {ours / n * 1e6:.2f} µs/msg, peak "
                f"{above:+.1f} MiB above the start"
            )
            for ref in ("orjson", "native-nogc", "official"):
                if (cpu := self.cpu("catchup-nested", ref)) is not None:
                    line += f"; {ref} {cpu / n * 1e6:.2f} µs/msg"
            out.append(line)
        return out if len(out) > 2 else []

    def markdown(self) -> str:
        """The table of docs/performance.md: medians, with the ratios that matter."""
        cols = [c for c in CLIENTS if c in self.b.contenders]
        limits = ("httpx+orjson", "httpx", "socket", "orjson", "core")
        lim = [c for c in limits if c in self.b.contenders]
        head = "| workload | " + " | ".join(LABELS[c] for c in cols + lim) + " |"
        lines = [head, "|" + " --- |" * (1 + len(cols) + len(lim))]
        for w in WORKLOADS:
            if w not in self.b.results or w == "soak-many-streams":
                continue
            cells = []
            for col in cols + lim:
                # an asyncio workload's row stands in the column of its sync name
                c = col if col in ROWS[w] else col + "-async"
                if c not in ROWS[w]:
                    cells.append("-")
                    continue
                runs = self.runs(w, c)
                if not runs:
                    why = self.b.errors.get(w, {}).get(c, "-")
                    cells.append("n/a" if why.startswith("n/a") else "failed")
                    continue
                if w in LATENCY:
                    p50 = self.latency(w, c, 50)
                    p99 = self.latency(w, c, 99)
                    cells.append(f"{p50:.2f} / {p99:.2f} ms")
                    continue
                n = self.count(w)
                cpu = self.cpu(w, c)
                assert cpu is not None
                wall = self.wall(w, c)
                assert wall is not None
                per = f"{cpu / n * 1e6:.2f} µs" if w != "append-1mib" else f"{cpu / n * 1e3:.1f} ms"
                if c == "orjson":
                    cells.append(f"{per} CPU")
                else:
                    cells.append(f"{per} CPU, {rate(n / wall)}/s")
            label = {
                "catch-up": "catch-up read, per msg",
                "sse": "SSE live read (1,000 per event), per msg",
                "sse-small": "SSE live read (1 per event), per msg",
                "long-poll-small": "long-poll live read (1 per answer), per msg",
                "produce": "producer append, per msg",
                "append-1mib": "1 MiB append, per append",
                "latency-long-poll": "latency long-poll p50 / p99",
                "latency-sse": "latency SSE p50 / p99",
                "append-one": "append, one after another, per append",
                "head-one": "HEAD, one after another, per request",
                "many-streams-append": "appends to 200 streams at once (asyncio), per append",
                "throughput-small": "100-byte appends, 75 at a time (asyncio), per append",
                "catchup-nested": "catch-up read of nested messages, per msg",
            }[w]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _four(samples: list[dict[str, Any]], key: str, scale: float = 1.0) -> str:
    """A soak figure at the start (the first periodic sample), the end, its maximum while
    running and after closing: ``start/end/max/closed``."""
    run = [x for x in samples if x["tag"] == "run"] or samples
    end = next(x for x in samples if x["tag"] == "end")
    closed = next(x for x in samples if x["tag"] == "closed")
    top = max(x[key] for x in samples if x["tag"] != "closed")
    return "/".join(f"{v / scale:.0f}" for v in (run[0][key], end[key], top, closed[key]))


def _ratio(ref: float | None, x: float) -> str:
    return "-" if ref is None or x <= 0 else f"{ref / x:.2f}x"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    node = shutil.which("node")
    node_v = (
        subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        if node
        else "-"
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "node": node_v,
        "httpx": httpx.__version__,
        "orjson": orjson.__version__,
        "loadavg": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="100k messages, 1 repeat, short latency runs"
    )
    ap.add_argument("--repeat", type=int, help="runs per workload and contender (default 3)")
    ap.add_argument(
        "--messages", type=int, help="messages of the read/produce workloads (default 1,000,000)"
    )
    ap.add_argument(
        "--only",
        action="append",
        choices=WORKLOADS,
        metavar="WORKLOAD",
        help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}",
    )
    ap.add_argument(
        "--contenders",
        default=",".join(LABELS),
        help="comma-separated subset of: " + ", ".join(LABELS),
    )
    ap.add_argument(
        "--small-messages", type=int, help="messages of sse-small (default messages / 100)"
    )
    ap.add_argument("--latency-messages", type=int, help="messages per latency run (default 300)")
    ap.add_argument(
        "--latency-interval-ms", type=float, default=10.0, help="between latency appends"
    )
    ap.add_argument(
        "--live-interval-ms",
        type=float,
        default=1.5,
        help="between the appends of sse-small and long-poll-small (default 1.5; 0: none)",
    )
    ap.add_argument("--big-appends", type=int, help="1 MiB appends per run (default 50)")
    ap.add_argument(
        "--window",
        type=int,
        default=10_000,
        help="official producer: concurrent appends per window",
    )
    ap.add_argument(
        "--ops", type=int, help="append-one, head-one: requests per run (default 2,000)"
    )
    ap.add_argument("--streams", type=int, default=200, help="many-streams-append: streams")
    ap.add_argument(
        "--per-stream", type=int, default=10, help="many-streams-append: appends per stream"
    )
    ap.add_argument(
        "--throughput-messages",
        type=int,
        default=1000,
        help="throughput-small: appends per run (default 1,000; 100000: a steady state)",
    )
    ap.add_argument(
        "--throughput-concurrency",
        type=int,
        default=75,
        help="throughput-small: concurrent appends per wave (default 75)",
    )
    ap.add_argument(
        "--nested-messages",
        type=int,
        help="catchup-nested: messages (default 200,000)",
    )
    ap.add_argument("--soak-seconds", type=float, default=600.0, help="soak-many-streams: duration")
    ap.add_argument("--soak-streams", type=int, default=1000, help="soak-many-streams: streams")
    ap.add_argument(
        "--soak-interval",
        type=float,
        default=2.0,
        help="soak-many-streams: seconds between two appends to one stream (default 2)",
    )
    ap.add_argument("--json", type=Path, metavar="OUT", help="write every run's raw results here")
    ap.add_argument(
        "--markdown", action="store_true", help="also print the table of docs/performance.md"
    )
    args = ap.parse_args()

    messages = args.messages or (100_000 if args.quick else 1_000_000)
    s = Settings(
        messages=messages,
        small_messages=args.small_messages or max(100, messages // 100),
        repeat=args.repeat or (1 if args.quick else 3),
        latency_messages=args.latency_messages or (50 if args.quick else 300),
        latency_interval=args.latency_interval_ms / 1000,
        big_appends=args.big_appends or (10 if args.quick else 50),
        window=args.window,
        live_interval=args.live_interval_ms / 1000,
        ops=args.ops or (500 if args.quick else 2000),
        streams=args.streams,
        per_stream=args.per_stream,
        throughput_messages=args.throughput_messages,
        throughput_concurrency=args.throughput_concurrency,
        nested_messages=args.nested_messages or (50_000 if args.quick else 200_000),
        soak_streams=args.soak_streams,
        soak_seconds=args.soak_seconds,
        soak_interval=args.soak_interval,
    )
    workloads = args.only or DEFAULT_WORKLOADS
    wanted = {c.strip() for c in args.contenders.split(",") if c.strip()}
    unknown = wanted - set(LABELS)
    if unknown:
        ap.error(f"unknown contenders: {', '.join(sorted(unknown))}")

    contenders = make_contenders(wanted)
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['os']}; "
        f"python {info['python']}, node {info['node']}, httpx {info['httpx']}, "
        f"orjson {info['orjson']}; load average at start {info['loadavg'][0]:.2f}",
    )
    print(
        f"settings: {s.messages:,} messages ({s.small_messages:,} for sse-small and "
        f"long-poll-small, one every {args.live_interval_ms:g} ms), "
        f"{s.repeat} repeats, latency {s.latency_messages} messages every "
        f"{args.latency_interval_ms:g} ms, {s.big_appends} x 1 MiB appends, {s.ops:,} "
        f"requests for append-one/head-one, {s.streams} x {s.per_stream} many-stream appends, "
        f"{s.throughput_messages:,} throughput appends ({s.throughput_concurrency} at a time), "
        f"{s.nested_messages:,} nested messages"
        + (
            f", soak {s.soak_streams:,} streams x {s.soak_seconds:g} s, an append every "
            f"{s.soak_interval:g} s per stream"
            if "soak-many-streams" in workloads
            else ""
        )
        + "; reference server in-memory, compression off",
        flush=True,
    )
    with ReferenceServer(compression=False) as srv:
        server = Server(srv.url)
        bench = Bench(server, contenders, s)
        for rep in range(s.repeat):
            print(f"-- repeat {rep + 1}/{s.repeat}", file=sys.stderr, flush=True)
            for workload in workloads:
                for name in ROWS[workload]:
                    if name in contenders:
                        bench.run(workload, name)
    report = Report(bench)
    print(report.text())
    print(report.targets())
    print(
        "\ncolumns: medians (min-max) over the repeats; msg/s = messages / median wall; "
        "CPU off/x and CPU ts/x = the official / TypeScript client's CPU over this row's "
        "(>1: this row uses less; asyncio rows against the official asyncio row); x/floor = "
        "this row's CPU over the raw httpx+orjson client's; x/socket = over the bare-socket "
        "floor's (asyncio rows: the asyncio floor's); stream +MiB = RSS growth from the "
        "first to the last sample (every N/10 messages: from 10% to 100% of the read)."
    )
    if args.markdown:
        print("\n" + report.markdown())
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "settings": vars(s),
                    "results": bench.results,
                    "errors": bench.errors,
                },
                indent=1,
            )
        )
        print(f"\nraw results: {args.json}")


if __name__ == "__main__":
    main()
