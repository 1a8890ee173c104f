"""Client CPU of a live tail of small events, per candidate HTTP transport.

Decides what a native read path could gain: how much of the per-event cost of a live tail is
httpx's, how much of it a Rust transport under httpx (or a Rust client without httpx) takes
away, and how close any of them gets to the floor of a Python loop over a raw socket.

Run it from the repository root with the candidates' virtualenv (not the project's ``.venv``)::

    python3 -m venv benches/.venv-candidates
    benches/.venv-candidates/bin/pip install -r benches/requirements-candidates.txt
    benches/.venv-candidates/bin/python benches/transport_candidates.py

(the pins, ``h2`` among them because ``pyqwest.httpx`` imports it without declaring it). Flags:
``--messages N`` (default 3000), ``--interval-ms MS`` (default 1.5), ``--repeat R`` (default 3;
medians and min-max are shown), ``--only WORKLOAD`` and ``--contenders a,b`` (subsets),
``--wait-load L`` (wait, up to ``--wait-max`` seconds, until the 1-minute load average is below
L; default 1.5), ``--json OUT`` (every run's raw numbers). About five minutes with the defaults.

Workloads. One reference server (``refserver/launch.py``) serves every run; each run gets a
fresh stream. The writer lives in this (parent) process and appends one message per POST
(``[{"type":"click",...}]``, 51 bytes, the messages of ``compare.py``'s sse-small), one
every ``--interval-ms`` on a fixed schedule, ``--messages`` of them, over one keep-alive
``http.client`` connection. The reader is a fresh subprocess per (workload, contender,
repeat), so that its CPU time is its own:

- ``sse-small``: one ``GET ?offset=-1&live=sse``; the reader counts ``event: data`` events
  (the server sends each as its own chunks, followed by an ``event: control``), splitting
  the body on blank lines and ``orjson.loads``-ing each data payload, until it holds N
  messages. Reported: client CPU per message (= per data event).
- ``long-poll-small``: ``GET ?offset=<next>&live=long-poll`` in a loop over one client (one
  keep-alive connection); each 200 answer's body is ``orjson.loads``-ed, ``Stream-Next-Offset``
  gives the next offset. Reported: client CPU per message and per request (a slower client
  gets more messages per answer, so per request is the transport's cost, per message the
  user's).

Measured in the reader: ``time.process_time()`` (user + system CPU of every thread, so a Rust
runtime's own threads count) and wall time, from just before the SSE GET or the first
long-poll GET (the reader prints ``ready`` then; the writer starts 0.3 s later) to the N-th
message; interpreter start-up, imports, client construction, one warm-up HEAD (which opens
the connection the reads then reuse) and, for long-poll, one catch-up GET come before the
clock. Columns besides CPU per message (and per request): ``pieces/event``, the body pieces
handed to Python per data event (httpx and both Rust clients hand over each HTTP chunk);
``of which sys``, the kernel part of the CPU (``getrusage``); ``wall s``; ``tail lag ms``,
the last message's arrival after the writer's last POST was answered (it can come before
that answer, hence small negative values); ``ctx sw/msg``, voluntary context switches of
the reader (all threads) per message, i.e. wake-ups; ``threads``, its OS threads.

Contenders (all share the same SSE splitter and long-poll loop; only the bytes' source
differs):

- ``httpx``: ``httpx.Client``, ``client.stream(...)`` + ``iter_raw()``; ``client.get``.
- ``pyreqwest-httpx``: the same code on ``pyreqwest.compatibility.httpx.SyncHttpxTransport``
  (pyreqwest's ``HttpxTransport`` is the asyncio one), patched so that a live body streams
  at all (see ``_live_pyreqwest_sync``; ``pyreqwest-httpx-stock`` and
  ``pyreqwest-httpx-async-stock``, run only when named, are the transports as shipped: their
  SSE reads stall until 64 KiB of events have arrived).
- ``pyqwest-httpx``: the same on ``pyqwest.httpx.PyqwestTransport(SyncHTTPTransport())``.
- ``pyreqwest-native``: pyreqwest's own ``SyncClient`` (``streamed_read_buffer_limit(0)``,
  ``build_streamed()`` and ``body_reader.read_chunk()`` for SSE; ``build().send()`` for
  long-poll), no httpx.
- ``pyqwest-native``: pyqwest's own ``SyncClient`` (``stream()`` and ``response.content``).
- ``socket-floor``: a blocking ``socket`` with a hand-written HTTP/1.1 request, status line
  and header parsing and incremental chunked decoding (all complete chunks of one
  ``recv`` joined): what a design owning its socket in Python could approach.
  ``socket-floor-unjoined`` (sse-small only) hands each HTTP chunk to the splitter apart,
  as httpx and both Rust clients do (the server writes 4 chunks per message: ``event:`` and
  ``data:`` lines of the data event, then of the control event).
- ``httpx-async``, ``pyreqwest-httpx-async``, ``pyqwest-httpx-async``, ``socket-floor-async``:
  the same on asyncio (``httpx.AsyncClient``; asyncio streams for the floor).

A reader that printed its result and then died keeps its numbers, with a note. Seen: with
``pyqwest-httpx-async`` about one process in five aborted at interpreter exit (SIGABRT,
"Fatal Python error: Aborted", no Python frame) until the reader closed pyqwest's
``HTTPTransport`` itself (``AsyncPyqwestTransport`` has no ``aclose``, so
``AsyncClient.aclose()`` leaves it open); once, ``pyreqwest-httpx-async`` died at exit with
"Fatal Python error: PyGILState_Release: thread state ... must be current when releasing".

In the table, sync rows are divided by ``socket-floor`` and ``httpx``, asyncio rows by
``socket-floor-async`` and ``httpx-async``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "refserver"))

import _payloads as P  # noqa: E402
from _floor import SocketFloor, SocketFloorAsync, SseCounter, split_url  # noqa: E402

WORKLOADS = ("sse-small", "long-poll-small")
SYNC_CONTENDERS = (
    "httpx",
    "pyreqwest-httpx",
    "pyqwest-httpx",
    "pyreqwest-native",
    "pyqwest-native",
    "socket-floor",
    "socket-floor-unjoined",
)
# Run only when named in --contenders: pyreqwest's httpx transports as shipped, which hang on
# SSE (see _live_pyreqwest_sync).
EXTRA_CONTENDERS = ("pyreqwest-httpx-stock", "pyreqwest-httpx-async-stock")
ASYNC_CONTENDERS = (
    "httpx-async",
    "pyreqwest-httpx-async",
    "pyqwest-httpx-async",
    "socket-floor-async",
)
CONTENDERS = SYNC_CONTENDERS + ASYNC_CONTENDERS
SSE_ONLY = frozenset({"socket-floor-unjoined"})
PACKAGES = ("httpx", "httpcore", "h11", "orjson", "pyreqwest", "pyqwest", "h2", "anyio")
READY_GRACE = 0.3  # seconds between the reader's "ready" and the first append
CHILD_TIMEOUT = 120.0
JSON_HEADERS = {"Content-Type": "application/json"}


# ---- the contenders: where the bytes come from -------------------------------------------


class SyncSource(Protocol):
    def warm(self, url: str) -> None: ...

    def sse(self, url: str) -> contextlib.AbstractContextManager[Iterator[bytes]]: ...

    def get(self, url: str, offset: str, live: bool) -> tuple[int, str, bytes]: ...

    def close(self) -> None: ...


class AsyncSource(Protocol):
    async def warm(self, url: str) -> None: ...

    def sse(self, url: str) -> contextlib.AbstractAsyncContextManager[AsyncIterator[bytes]]: ...

    async def get(self, url: str, offset: str, live: bool) -> tuple[int, str, bytes]: ...

    async def close(self) -> None: ...


def _params(offset: str, live: str | None) -> dict[str, Any]:
    return {"offset": offset, "live": live} if live else {"offset": offset}


class HttpxSync:
    def __init__(self, transport: Any = None, inner: Any = None) -> None:
        """``inner``: a transport under ``transport`` to close as well (httpx does not)."""
        import httpx

        timeout = httpx.Timeout(30.0, read=120.0)
        self.client = httpx.Client(transport=transport, timeout=timeout)
        self.inner = inner

    def warm(self, url: str) -> None:
        self.client.head(url)

    @contextlib.contextmanager
    def sse(self, url: str) -> Iterator[Iterator[bytes]]:
        with self.client.stream("GET", url, params=_params("-1", "sse")) as r:
            if r.status_code != 200:
                raise RuntimeError(f"SSE GET answered {r.status_code}")
            yield r.iter_raw()

    def get(self, url: str, offset: str, live: bool) -> tuple[int, str, bytes]:
        r = self.client.get(url, params=_params(offset, "long-poll" if live else None))
        return r.status_code, r.headers["stream-next-offset"], r.content

    def close(self) -> None:
        self.client.close()
        if self.inner is not None:
            self.inner.close()


class HttpxAsync:
    def __init__(self, transport: Any = None, inner: Any = None) -> None:
        import httpx

        timeout = httpx.Timeout(30.0, read=120.0)
        self.client = httpx.AsyncClient(transport=transport, timeout=timeout)
        self.inner = inner

    async def warm(self, url: str) -> None:
        await self.client.head(url)

    @contextlib.asynccontextmanager
    async def sse(self, url: str) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self.client.stream("GET", url, params=_params("-1", "sse")) as r:
            if r.status_code != 200:
                raise RuntimeError(f"SSE GET answered {r.status_code}")
            yield r.aiter_raw()

    async def get(self, url: str, offset: str, live: bool) -> tuple[int, str, bytes]:
        r = await self.client.get(url, params=_params(offset, "long-poll" if live else None))
        return r.status_code, r.headers["stream-next-offset"], r.content

    async def close(self) -> None:
        await self.client.aclose()
        if self.inner is not None:
            await self.inner.aclose()


class PyreqwestNative:
    def __init__(self) -> None:
        from pyreqwest.client import SyncClientBuilder

        self.client = SyncClientBuilder().build()

    def warm(self, url: str) -> None:
        self.client.head(url).build().send()

    @contextlib.contextmanager
    def sse(self, url: str) -> Iterator[Iterator[bytes]]:
        builder = self.client.get(url).query(_params("-1", "sse"))
        # 0: hand over the response at once (see _live_pyreqwest_sync)
        request = builder.streamed_read_buffer_limit(0).build_streamed()
        with request as resp:
            if resp.status != 200:
                raise RuntimeError(f"SSE GET answered {resp.status}")
            reader = resp.body_reader

            def chunks() -> Iterator[bytes]:
                while (chunk := reader.read_chunk()) is not None:
                    yield bytes(chunk)

            yield chunks()

    def get(self, url: str, offset: str, live: bool) -> tuple[int, str, bytes]:
        params = _params(offset, "long-poll" if live else None)
        resp = self.client.get(url).query(params).build().send()
        next_offset = resp.get_header("stream-next-offset")
        assert next_offset is not None
        return resp.status, next_offset, bytes(resp.bytes())

    def close(self) -> None:
        self.client.close()


class PyqwestNative:
    def __init__(self) -> None:
        from pyqwest import SyncClient, SyncHTTPTransport

        self.transport = SyncHTTPTransport()
        self.client = SyncClient(self.transport)

    def warm(self, url: str) -> None:
        self.client.head(url)

    @contextlib.contextmanager
    def sse(self, url: str) -> Iterator[Iterator[bytes]]:
        with self.client.stream("GET", url, params=_params("-1", "sse")) as resp:
            if resp.status != 200:
                raise RuntimeError(f"SSE GET answered {resp.status}")
            yield (bytes(chunk) for chunk in resp.content)

    def get(self, url: str, offset: str, live: bool) -> tuple[int, str, bytes]:
        resp = self.client.get(url, params=_params(offset, "long-poll" if live else None))
        return resp.status, resp.headers["stream-next-offset"], resp.content

    def close(self) -> None:
        self.transport.close()


def _live_pyreqwest_sync() -> Any:
    """pyreqwest's sync httpx transport, patched so that a live body streams.

    As shipped (0.15.1) it cannot tail a live stream, for two reasons: every request is built
    with the default ``streamed_read_buffer_limit`` (64 KiB), and a streamed request first
    buffers that much of the body (or all of it) before the response is handed over, so
    ``client.stream()`` of an SSE GET on a quiet stream does not return; and its body stream
    iterates ``body_reader.read()``, which also waits for a full default-size read. The patch:
    limit 0 on every request (set in ``_map_body``, where the transport builds it) and
    ``read_chunk()`` (whatever has arrived) in place of ``read()``.
    """
    import httpx
    from pyreqwest.compatibility.httpx import SyncHttpxTransport
    from pyreqwest.compatibility.httpx.transport import SyncResponseStream

    class LiveStream(SyncResponseStream):
        def __iter__(self) -> Iterator[bytes]:
            read_chunk = self._body_reader.read_chunk
            while (chunk := read_chunk()) is not None:
                yield bytes(chunk)

    class LiveTransport(SyncHttpxTransport):
        def _map_body(self, builder: Any, request: httpx.Request) -> Any:
            return super()._map_body(builder, request).streamed_read_buffer_limit(0)

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            response.stream.__class__ = LiveStream
            return response

    return LiveTransport()


def _live_pyreqwest_async() -> Any:
    """The same patch (see ``_live_pyreqwest_sync``) of pyreqwest's asyncio httpx transport."""
    import httpx
    from pyreqwest.compatibility.httpx import HttpxTransport
    from pyreqwest.compatibility.httpx.transport import ResponseStream

    class LiveStream(ResponseStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            read_chunk = self._body_reader.read_chunk
            while (chunk := await read_chunk()) is not None:
                yield bytes(chunk)

    class LiveTransport(HttpxTransport):
        def _map_body(self, builder: Any, request: httpx.Request) -> Any:
            return super()._map_body(builder, request).streamed_read_buffer_limit(0)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            response.stream.__class__ = LiveStream
            return response

    return LiveTransport()


def make_sync(name: str) -> SyncSource:
    if name == "httpx":
        return HttpxSync()
    if name in ("pyreqwest-httpx", "pyreqwest-httpx-stock"):
        from pyreqwest.compatibility.httpx import SyncHttpxTransport

        if name == "pyreqwest-httpx-stock":
            return HttpxSync(SyncHttpxTransport())
        return HttpxSync(_live_pyreqwest_sync())
    if name == "pyqwest-httpx":
        from pyqwest import SyncHTTPTransport
        from pyqwest.httpx import PyqwestTransport

        inner = SyncHTTPTransport()
        return HttpxSync(PyqwestTransport(inner), inner)
    if name == "pyreqwest-native":
        return PyreqwestNative()
    if name == "pyqwest-native":
        return PyqwestNative()
    if name == "socket-floor":
        return SocketFloor()
    if name == "socket-floor-unjoined":
        return SocketFloor(join=False)
    raise ValueError(f"unknown sync contender {name!r}")


def make_async(name: str) -> AsyncSource:
    if name == "httpx-async":
        return HttpxAsync()
    if name in ("pyreqwest-httpx-async", "pyreqwest-httpx-async-stock"):
        from pyreqwest.compatibility.httpx import HttpxTransport

        if name == "pyreqwest-httpx-async-stock":
            return HttpxAsync(HttpxTransport())
        return HttpxAsync(_live_pyreqwest_async())
    if name == "pyqwest-httpx-async":
        from pyqwest import HTTPTransport
        from pyqwest.httpx import AsyncPyqwestTransport

        inner = HTTPTransport()
        return HttpxAsync(AsyncPyqwestTransport(inner), inner)
    if name == "socket-floor-async":
        return SocketFloorAsync()
    raise ValueError(f"unknown asyncio contender {name!r}")


# ---- the reader (child process) ----------------------------------------------------------


def is_async(name: str) -> bool:
    return "-async" in name


def os_threads() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


class Meter:
    def __init__(self) -> None:
        self.cpu0 = self.wall0 = 0.0
        self.cpu = self.wall = 0.0
        self.csw0 = self.csw = 0
        self.sys0 = self.sys = 0.0  # system (kernel) CPU, a part of cpu
        self.end_monotonic = 0.0

    def start(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.csw0, self.sys0 = usage.ru_nvcsw, usage.ru_stime
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()

    def stop(self) -> None:
        self.cpu = time.process_time() - self.cpu0
        self.wall = time.perf_counter() - self.wall0
        self.end_monotonic = time.monotonic()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.csw, self.sys = usage.ru_nvcsw - self.csw0, usage.ru_stime - self.sys0


def ready() -> None:
    print("ready", flush=True)


def run_sync(name: str, workload: str, url: str, n: int, m: Meter) -> dict[str, Any]:
    import orjson

    source = make_sync(name)
    source.warm(url)
    loads = orjson.loads
    try:
        if workload == "sse-small":
            counter = SseCounter(n, loads)
            feed = counter.feed
            ready()
            m.start()
            with source.sse(url) as pieces:
                for piece in pieces:
                    if feed(piece):
                        break
                m.stop()
            if counter.messages < n:
                raise RuntimeError(f"the SSE body ended after {counter.messages} messages")
            return {
                "messages": counter.messages,
                "events": counter.events,
                "pieces": counter.pieces,
            }
        status, offset, _ = source.get(url, "-1", False)  # catch up (the stream is empty)
        if status != 200:
            raise RuntimeError(f"catch-up GET answered {status}")
        got = requests = timeouts = 0
        get = source.get
        ready()
        m.start()
        while got < n:
            status, offset, body = get(url, offset, True)
            requests += 1
            if status == 200:
                got += len(loads(body))
            elif status == 204:
                timeouts += 1
            else:
                raise RuntimeError(f"long-poll GET answered {status}")
        m.stop()
        return {"messages": got, "requests": requests, "timeouts": timeouts}
    finally:
        source.close()


async def run_async(name: str, workload: str, url: str, n: int, m: Meter) -> dict[str, Any]:
    import orjson

    source = make_async(name)
    await source.warm(url)
    loads = orjson.loads
    try:
        if workload == "sse-small":
            counter = SseCounter(n, loads)
            feed = counter.feed
            ready()
            m.start()
            async with source.sse(url) as pieces:
                async for piece in pieces:
                    if feed(piece):
                        break
                m.stop()
            if counter.messages < n:
                raise RuntimeError(f"the SSE body ended after {counter.messages} messages")
            return {
                "messages": counter.messages,
                "events": counter.events,
                "pieces": counter.pieces,
            }
        status, offset, _ = await source.get(url, "-1", False)
        if status != 200:
            raise RuntimeError(f"catch-up GET answered {status}")
        got = requests = timeouts = 0
        get = source.get
        ready()
        m.start()
        while got < n:
            status, offset, body = await get(url, offset, True)
            requests += 1
            if status == 200:
                got += len(loads(body))
            elif status == 204:
                timeouts += 1
            else:
                raise RuntimeError(f"long-poll GET answered {status}")
        m.stop()
        return {"messages": got, "requests": requests, "timeouts": timeouts}
    finally:
        await source.close()


def child_main(args: argparse.Namespace) -> int:
    m = Meter()
    if is_async(args.contender):
        result = asyncio.run(run_async(args.contender, args.workload, args.url, args.messages, m))
    else:
        result = run_sync(args.contender, args.workload, args.url, args.messages, m)
    result.update(
        cpu_s=m.cpu,
        sys_s=m.sys,
        wall_s=m.wall,
        end_monotonic=m.end_monotonic,
        voluntary_csw=m.csw,
        threads=os_threads(),
    )
    print(json.dumps(result), flush=True)
    return 0


# ---- the parent: server, writer, runs, table ---------------------------------------------


class ChildFailed(Exception):
    pass


class Writer:
    """Appends over one keep-alive connection (stdlib, so little CPU of its own)."""

    def __init__(self, base_url: str) -> None:
        host, port, _ = split_url(base_url + "/")
        self.conn = http.client.HTTPConnection(host, port, timeout=30.0)

    def request(self, method: str, path: str, body: bytes | None = None) -> int:
        self.conn.request(method, path, body=body, headers=JSON_HEADERS)
        resp = self.conn.getresponse()
        resp.read()
        return resp.status

    def append_paced(self, path: str, bodies: list[bytes], interval: float) -> float:
        """POSTs the bodies on a fixed schedule; returns when the last POST was answered
        (``time.monotonic``)."""
        t0 = time.perf_counter()
        for i, body in enumerate(bodies):
            delay = t0 + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            status = self.request("POST", path, body)
            if status not in (200, 204):
                raise RuntimeError(f"POST answered {status}")
        return time.monotonic()

    def close(self) -> None:
        self.conn.close()


def _tail(path: str, limit: int = 3000) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return text[-limit:].strip()


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@dataclass
class Settings:
    base_url: str
    messages: int
    interval: float


def run_one(s: Settings, writer: Writer, contender: str, workload: str, tag: str) -> dict[str, Any]:
    path = f"/v1/stream/candidates-{tag}-{os.getpid()}"
    status = writer.request("PUT", path)
    if status not in (200, 201):
        raise RuntimeError(f"PUT {path} answered {status}")
    bodies = [P.array_body(1, i) for i in range(s.messages)]
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        contender,
        workload,
        "--url",
        s.base_url + path,
        "--messages",
        str(s.messages),
    ]
    with tempfile.NamedTemporaryFile("w+", suffix=".stderr", delete=False) as err:
        err_path = err.name
    try:
        with open(err_path, "w") as err_file:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=err_file, text=True, cwd=REPO
            )
        try:
            assert proc.stdout is not None
            readable, _, _ = select.select([proc.stdout], [], [], 60.0)
            line = proc.stdout.readline() if readable else ""
            if line.strip() != "ready":
                _kill(proc)
                raise ChildFailed(f"no 'ready' (got {line!r}); stderr:\n{_tail(err_path)}")
            time.sleep(READY_GRACE)
            writer_end = writer.append_paced(path, bodies, s.interval)
            try:
                out, _ = proc.communicate(timeout=CHILD_TIMEOUT)
            except subprocess.TimeoutExpired:
                _kill(proc)
                raise ChildFailed(f"no result within {CHILD_TIMEOUT:g} s") from None
        finally:
            _kill(proc)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            raise ChildFailed(f"exit code {proc.returncode}; stderr:\n{_tail(err_path)}")
        result: dict[str, Any] = json.loads(lines[-1])
        if proc.returncode != 0:  # it measured, then died (seen at interpreter exit)
            result["exit"] = f"exit code {proc.returncode} after the result: {_tail(err_path, 300)}"
    finally:
        os.unlink(err_path)
        with contextlib.suppress(OSError, http.client.HTTPException):
            writer.request("DELETE", path)
    result["lag_ms"] = (result.pop("end_monotonic") - writer_end) * 1000
    n = result["messages"]
    result["cpu_us_per_msg"] = result["cpu_s"] / n * 1e6
    result["sys_us_per_msg"] = result["sys_s"] / n * 1e6
    if workload == "sse-small":
        result["pieces_per_event"] = result["pieces"] / result["events"]
    else:
        result["cpu_us_per_request"] = result["cpu_s"] / result["requests"] * 1e6
        result["msgs_per_request"] = n / result["requests"]
    return result


def wait_for_load(limit: float, max_wait: float) -> None:
    deadline = time.monotonic() + max_wait
    while True:
        load = os.getloadavg()[0]
        if load < limit:
            print(f"load average {load:.2f} < {limit:g}: starting", file=sys.stderr, flush=True)
            return
        if time.monotonic() >= deadline:
            print(
                f"load average still {load:.2f} after {max_wait:g} s: starting anyway",
                file=sys.stderr,
                flush=True,
            )
            return
        print(f"load average {load:.2f} >= {limit:g}: waiting 30 s", file=sys.stderr, flush=True)
        time.sleep(30.0)


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
        found["node"] = node.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        found["node"] = "?"
    from launch import PACKAGE_NAME, pinned_version

    found[PACKAGE_NAME] = pinned_version()
    return found


def _fmt(values: list[float], digits: int = 1) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return "-"
    return f"{value / base:.2f}x"


def table(
    workload: str,
    contenders: list[str],
    runs: dict[tuple[str, str], list[dict[str, Any]]],
    errors: dict[tuple[str, str], str],
) -> str:
    def median_of(name: str, key: str) -> float | None:
        rs = runs.get((workload, name))
        return statistics.median(r[key] for r in rs) if rs else None

    lp = workload == "long-poll-small"
    head = ["contender", "CPU µs/msg", "÷ floor", "÷ httpx"]
    if lp:
        head += ["CPU µs/request", "÷ floor", "÷ httpx", "msgs/request"]
    else:
        head += ["pieces/event"]
    head += ["of which sys µs/msg", "wall s", "tail lag ms", "ctx sw/msg", "threads"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in contenders:
        key = (workload, name)
        if key in errors:
            first = errors[key].strip().splitlines()[-1][:150]
            lines.append(f"| {name} | failed: {first} |" + " |" * (len(head) - 2))
            continue
        rs = runs.get(key)
        if not rs:
            continue
        floor, base = (
            ("socket-floor-async", "httpx-async") if is_async(name) else ("socket-floor", "httpx")
        )
        row = [name]
        for metric in ("cpu_us_per_msg", "cpu_us_per_request") if lp else ("cpu_us_per_msg",):
            mine = median_of(name, metric)
            row += [
                _fmt([r[metric] for r in rs]),
                _ratio(mine, median_of(floor, metric)),
                _ratio(mine, median_of(base, metric)),
            ]
        if lp:
            row.append(_fmt([r["msgs_per_request"] for r in rs], 2))
        else:
            row.append(_fmt([r["pieces_per_event"] for r in rs], 2))
        row += [
            _fmt([r["sys_us_per_msg"] for r in rs]),
            _fmt([r["wall_s"] for r in rs], 2),
            _fmt([r["lag_ms"] for r in rs], 1),
            _fmt([r["voluntary_csw"] / r["messages"] for r in rs], 2),
            str(max(r["threads"] for r in rs)),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def parent_main(args: argparse.Namespace) -> int:
    from launch import ReferenceServer

    workloads = args.only or list(WORKLOADS)
    contenders = args.contenders.split(",") if args.contenders else list(CONTENDERS)
    unknown = sorted(set(contenders) - set(CONTENDERS) - set(EXTRA_CONTENDERS))
    if unknown:
        raise SystemExit(f"unknown contenders: {', '.join(unknown)}")
    found = versions()
    print("versions: " + ", ".join(f"{k} {v}" for k, v in found.items()), flush=True)
    wait_for_load(args.wait_load, args.wait_max)
    load_before = os.getloadavg()
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    errors: dict[tuple[str, str], str] = {}
    notes: dict[tuple[str, str], str] = {}
    started = time.monotonic()
    with ReferenceServer(long_poll_timeout_ms=args.long_poll_timeout_ms) as server:
        s = Settings(server.url, args.messages, args.interval_ms / 1000)
        writer = Writer(server.url)
        try:
            for rep in range(args.repeat):
                for workload in workloads:
                    for name in contenders:
                        key = (workload, name)
                        if key in errors or (name in SSE_ONLY and workload != "sse-small"):
                            continue
                        tag = f"{workload}-{name}-{rep}"
                        try:
                            r = run_one(s, writer, name, workload, tag)
                        except (ChildFailed, RuntimeError) as err:
                            errors[key] = str(err)
                            print(f"{tag}: FAILED: {err}", file=sys.stderr, flush=True)
                            continue
                        runs.setdefault(key, []).append(r)
                        if "exit" in r:
                            notes.setdefault(key, r["exit"])
                            print(f"{tag}: {r['exit']}", file=sys.stderr, flush=True)
                        extra = (
                            f", {r['cpu_us_per_request']:.1f} µs/request, "
                            f"{r['msgs_per_request']:.2f} msgs/request"
                            if workload == "long-poll-small"
                            else f", {r['pieces_per_event']:.2f} pieces/event"
                        )
                        print(
                            f"{tag}: {r['cpu_us_per_msg']:.1f} µs/msg{extra}, "
                            f"wall {r['wall_s']:.2f} s, lag {r['lag_ms']:.1f} ms",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            writer.close()
    load_after = os.getloadavg()
    elapsed = time.monotonic() - started
    print()
    print(
        f"{args.messages:,} messages, one per POST every {args.interval_ms:g} ms; "
        f"{args.repeat} runs each, median (min-max); load average {load_before[0]:.2f} "
        f"before, {load_after[0]:.2f} after; {elapsed:.0f} s in all"
    )
    for workload in workloads:
        print(f"\n### {workload}\n")
        print(table(workload, contenders, runs, errors))
    for key, message in errors.items():
        print(f"\nFAILED {key[0]} / {key[1]}:\n{message}")
    for key, note in notes.items():
        print(f"\nNOTE {key[0]} / {key[1]} (its numbers are kept): {note}")
    if args.json:
        payload = {
            "versions": found,
            "settings": vars(args),
            "load": {"before": load_before, "after": load_after},
            "runs": [
                {"workload": w, "contender": c, **r} for (w, c), rs in runs.items() for r in rs
            ],
            "errors": {f"{w}/{c}": e for (w, c), e in errors.items()},
        }
        Path(args.json).write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Client CPU of a live tail of small events, per candidate HTTP transport.",
        epilog="See the module docstring for the workloads and what is measured.",
    )
    parser.add_argument(
        "--child", nargs=2, metavar=("CONTENDER", "WORKLOAD"), help=argparse.SUPPRESS
    )
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, default=3000, help="messages per run (3000)")
    parser.add_argument("--interval-ms", type=float, default=1.5, help="between appends (1.5)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (3)")
    parser.add_argument("--only", action="append", choices=WORKLOADS, help="workload (repeatable)")
    parser.add_argument("--contenders", help=f"comma-separated subset of {','.join(CONTENDERS)}")
    parser.add_argument("--long-poll-timeout-ms", type=int, default=20000, help="server's (20000)")
    parser.add_argument("--wait-load", type=float, default=1.5, help="start below this load (1.5)")
    parser.add_argument(
        "--wait-max", type=float, default=1800.0, help="most seconds to wait (1800)"
    )
    parser.add_argument("--json", metavar="OUT", help="write every run's numbers to OUT")
    args = parser.parse_args(argv)
    if args.child:
        args.contender, args.workload = args.child
        return child_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
