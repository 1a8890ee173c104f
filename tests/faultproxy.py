"""A loopback TCP proxy that breaks connections on purpose, for tests. Standard library only.

::

    with FaultProxy(server_url, seed=7, cut_mid_response=0.3) as proxy:
        read(proxy.url + "/stream/path")       # same path layout as the upstream
        proxy.stats["cuts_mid_response"]       # how many faults actually happened
        proxy.set_faults(cut_mid_response=0)   # e.g. turn faults off to verify the result

``FaultProxy(upstream_url, *, seed=0, fragment=True, max_delay=0.0, cut_mid_response=0.0,
cut_after_request=0.0, cut_mid_request=0.0, cut_sse_after=0)`` listens on 127.0.0.1 at a free
port and forwards every connection to the upstream's host and port. It is a context manager;
``start()`` and ``close()`` do the same by hand. ``close()`` cuts every open connection and
joins every thread within a few seconds (``RuntimeError`` if one is stuck).

Attributes and methods:

- ``url``: ``"http://127.0.0.1:<port>"`` plus the upstream URL's path, if it has one.
- ``stats``: counters, updated live: ``connections`` (accepted), ``fragments`` (response pieces
  sent separately), ``cuts_mid_response``, ``cuts_after_request``, ``cuts_mid_request``,
  ``cuts_sse``, ``requests_forwarded`` (client reads passed on upstream whole).
- ``forwarded``: per connection, in the order they were accepted, the bytes the client sent
  that went on upstream (its requests' heads and bodies, to check what a client sent).
- ``wait_stat(key, at_least, timeout)``: wait until a counter reaches a value.
- ``open_connections``: client connections not yet closed by either side.
- ``wait_open_connections(n, timeout)``: wait until exactly ``n`` are open; returns whether
  that happened in time.
- ``set_faults(**keywords)``: the constructor's fault keywords, changed at runtime. New
  connections follow the new values; a fault turned off (rate 0, ``fragment=False``) also stops
  on connections already open, so turning everything off gives a faithful proxy at once.

Faults, drawn per connection from ``random.Random(f"{seed}:{n}")`` for the n-th accepted
connection (the same client behaviour meets the same faults). At most one cut per connection,
chosen with the three cut probabilities (their sum must not exceed 1):

- ``fragment``: the response bytes go out in random small pieces (1 to 512 bytes, often 1 to
  8), one ``send`` each on a TCP_NODELAY socket, each followed by a random pause of up to
  ``max_delay`` seconds. Bytes are never altered, dropped or reordered.
- ``cut_mid_response``: after a random number of response bytes (log-uniform from 1 byte to
  64 KiB, counted over the connection's responses: in the headers, mid-body, mid-SSE-event)
  both sides are closed. If the connection carries fewer bytes, no cut happens.
- ``cut_after_request``: the first request is forwarded whole; once the upstream starts to
  answer it (so it was processed), both sides are closed and no answer reaches the client.
- ``cut_mid_request``: only part of the first bytes the client sends (its first request's
  start, never all of it) is forwarded, then both sides are closed: the upstream never sees a
  complete request.

And one fault by content, on every connection: ``cut_sse_after`` (0: off) closes both sides
once that many bytes went down after a response's ``content-type: text/event-stream`` header,
so every SSE response longer than that is cut, and nothing else is.

A cut is ``shutdown(SHUT_RDWR)`` on both sockets, so no blocked thread on either side waits
for anything; the sockets are closed once both of the connection's pumps have stopped.
"""

from __future__ import annotations

import contextlib
import math
import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FaultProxy"]

MAX_FRAGMENT = 512
MAX_CUT_BYTES = 1 << 16
RECV_SIZE = 65536
CONNECT_TIMEOUT = 5.0
CLOSE_TIMEOUT = 5.0

STAT_KEYS = (
    "connections",
    "fragments",
    "cuts_mid_response",
    "cuts_after_request",
    "cuts_mid_request",
    "cuts_sse",
    "requests_forwarded",
)
SSE_HEAD = b"content-type: text/event-stream"


@dataclass(frozen=True)
class _Faults:
    fragment: bool = True
    max_delay: float = 0.0
    cut_mid_response: float = 0.0
    cut_after_request: float = 0.0
    cut_mid_request: float = 0.0
    cut_sse_after: int = 0

    def __post_init__(self) -> None:
        if self.cut_sse_after < 0:
            raise ValueError(f"cut_sse_after must be >= 0, not {self.cut_sse_after!r}")
        if not (0.0 <= self.max_delay < math.inf):
            raise ValueError(f"max_delay must be >= 0, not {self.max_delay!r}")
        rates = (self.cut_mid_response, self.cut_after_request, self.cut_mid_request)
        if any(not 0.0 <= p <= 1.0 for p in rates):
            raise ValueError(f"cut probabilities must be in [0, 1], not {rates!r}")
        if sum(rates) > 1.0 + 1e-9:
            raise ValueError(f"cut probabilities must add up to at most 1, not {sum(rates)}")


@dataclass(frozen=True)
class _Plan:
    """One connection's fate: which cut (if any) and where."""

    cut: str | None  # "mid_response", "after_request", "mid_request"
    cut_at: int  # response bytes forwarded before a mid-response cut


def _plan(faults: _Faults, rng: random.Random) -> _Plan:
    draw = rng.random()
    cut_at = int(math.exp(rng.uniform(0.0, math.log(MAX_CUT_BYTES))))
    if draw < faults.cut_mid_response:
        return _Plan("mid_response", cut_at)
    draw -= faults.cut_mid_response
    if draw < faults.cut_after_request:
        return _Plan("after_request", cut_at)
    draw -= faults.cut_after_request
    if draw < faults.cut_mid_request:
        return _Plan("mid_request", cut_at)
    return _Plan(None, cut_at)


def _shutdown(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):  # not connected (any more): nothing to wake
            sock.shutdown(socket.SHUT_RDWR)


class _Link:
    """One client connection and its upstream connection, pumped by two threads."""

    def __init__(
        self, proxy: FaultProxy, client: socket.socket, rng: random.Random, plan: _Plan
    ) -> None:
        self._proxy = proxy
        self._client = client
        self._upstream: socket.socket | None = None
        self._rng = rng
        self._plan = plan
        self._lock = threading.Lock()
        self._dead = False
        self._sent = proxy._new_record()

    def cut(self) -> None:
        with self._lock:
            self._dead = True
            upstream = self._upstream
        _shutdown(self._client)
        _shutdown(upstream)

    def _fault_on(self, name: str) -> bool:
        """Whether the planned cut ``name`` is still wanted (set_faults may have turned it off)."""
        return self._plan.cut == name and getattr(self._proxy._faults, f"cut_{name}") > 0

    def run(self) -> None:
        proxy = self._proxy
        try:
            try:
                upstream = socket.create_connection(proxy._upstream, timeout=CONNECT_TIMEOUT)
            except OSError:
                return
            upstream.settimeout(None)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._upstream = upstream
                dead = self._dead
            if dead:
                _shutdown(upstream)
                upstream.close()
                return
            down = proxy._spawn(self._pump_down, "down")
            try:
                self._pump_up(upstream)
            finally:
                down.join(CLOSE_TIMEOUT)
                upstream.close()
        finally:
            self._client.close()
            proxy._link_done(self)

    def _pump_up(self, upstream: socket.socket) -> None:
        """Client to upstream: the requests."""
        first = True
        try:
            while True:
                data = self._client.recv(RECV_SIZE)
                if not data:
                    return
                if first and self._fault_on("mid_request"):
                    part = self._rng.randrange(1, len(data)) if len(data) > 1 else 0
                    upstream.sendall(data[:part])
                    self._proxy._count("cuts_mid_request")
                    return
                first = False
                self._proxy._record(self._sent, data)  # first: the answer may come at once
                upstream.sendall(data)
                self._proxy._count("requests_forwarded")
        except OSError:
            return
        finally:
            self.cut()

    def _pump_down(self) -> None:
        """Upstream to client: the responses."""
        upstream = self._upstream
        assert upstream is not None
        sent = 0
        sse_at: int | None = None  # where an SSE response's content type went down
        tail = b""  # the last bytes sent, lower-cased: a header split across reads still shows
        try:
            while True:
                data = upstream.recv(RECV_SIZE)
                if not data:
                    return
                if self._fault_on("after_request"):
                    self._proxy._count("cuts_after_request")
                    return
                if self._fault_on("mid_response") and sent + len(data) > self._plan.cut_at:
                    self._send(data[: self._plan.cut_at - sent])
                    self._proxy._count("cuts_mid_response")
                    return
                cut_sse_after = self._proxy._faults.cut_sse_after
                if cut_sse_after and sse_at is None:
                    window = tail + data.lower()
                    found = window.find(SSE_HEAD)
                    if found >= 0:
                        sse_at = sent - len(tail) + found
                    tail = window[-len(SSE_HEAD) :]
                cut_at = None if sse_at is None else sse_at + cut_sse_after
                if cut_sse_after and cut_at is not None and sent + len(data) > cut_at:
                    self._send(data[: cut_at - sent])
                    self._proxy._count("cuts_sse")
                    return
                self._send(data)
                sent += len(data)
        except OSError:
            return
        finally:
            self.cut()

    def _send(self, data: bytes) -> None:
        faults = self._proxy._faults
        if not faults.fragment:
            self._client.sendall(data)
            return
        rng = self._rng
        view = memoryview(data)
        start = 0
        while start < len(view):
            size = rng.randint(1, 8) if rng.random() < 0.25 else rng.randint(1, MAX_FRAGMENT)
            self._client.sendall(view[start : start + size])
            start += size
            self._proxy._count("fragments")
            if faults.max_delay > 0:
                time.sleep(rng.uniform(0.0, faults.max_delay))  # injected latency


class FaultProxy:
    """A loopback TCP proxy injecting seeded faults; see the module docstring."""

    def __init__(
        self,
        upstream_url: str,
        *,
        seed: int = 0,
        fragment: bool = True,
        max_delay: float = 0.0,
        cut_mid_response: float = 0.0,
        cut_after_request: float = 0.0,
        cut_mid_request: float = 0.0,
        cut_sse_after: int = 0,
    ) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"upstream_url must be an http:// URL, not {upstream_url!r}")
        self._upstream = (parts.hostname, parts.port or 80)
        self._path = parts.path.rstrip("/")
        self._seed = seed
        self._faults = _Faults(
            fragment, max_delay, cut_mid_response, cut_after_request, cut_mid_request, cut_sse_after
        )
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self._forwarded: list[bytearray] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._links: set[_Link] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._acceptor: threading.Thread | None = None
        self._url: str | None = None
        self._closed = False

    # -- public -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the proxy is not started")
        return self._url

    @property
    def forwarded(self) -> list[bytes]:
        with self._lock:
            return [bytes(record) for record in self._forwarded]

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._links)

    def wait_open_connections(self, n: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self._links) == n, timeout)

    def wait_stat(self, key: str, at_least: int, timeout: float) -> bool:
        """Wait until ``stats[key]`` reaches ``at_least``; returns whether it did in time."""
        with self._changed:
            return self._changed.wait_for(lambda: self.stats[key] >= at_least, timeout)

    def set_faults(self, **faults: Any) -> None:
        unknown = set(faults) - set(_Faults.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown fault keywords: {sorted(unknown)}")
        self._faults = replace(self._faults, **faults)

    def start(self) -> FaultProxy:
        if self._listener is not None or self._closed:
            raise RuntimeError("a FaultProxy starts once")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self._wake = socket.socketpair()
        self._url = f"http://127.0.0.1:{listener.getsockname()[1]}{self._path}"
        self._acceptor = self._spawn(self._serve, "accept")
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + CLOSE_TIMEOUT
        if self._wake is not None:
            self._wake[1].send(b"x")
        if self._acceptor is not None:
            self._acceptor.join(CLOSE_TIMEOUT)
        with self._lock:
            links = list(self._links)
        for link in links:
            link.cut()
        stuck = [] if self._acceptor is None or not self._acceptor.is_alive() else ["accept"]
        for thread in self._all_threads():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive() and thread is not self._acceptor:
                stuck.append(thread.name)
        if self._listener is not None:
            self._listener.close()
        if self._wake is not None:
            for sock in self._wake:
                sock.close()
        if stuck:
            raise RuntimeError(f"FaultProxy threads did not stop: {stuck}")

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FaultProxy {self._url} -> {self._upstream} stats={self.stats}>"

    # -- internals --------------------------------------------------------------------------

    def _new_record(self) -> bytearray:
        record = bytearray()
        with self._lock:
            self._forwarded.append(record)
        return record

    def _record(self, record: bytearray, data: bytes) -> None:
        with self._lock:
            record += data

    def _count(self, key: str) -> None:
        with self._changed:
            self.stats[key] += 1
            self._changed.notify_all()

    def _spawn(self, target: Any, role: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=f"faultproxy-{role}", daemon=True)
        with self._lock:
            # Another thread may be between appending and starting its own: keep unstarted ones.
            self._threads = [t for t in self._threads if t.ident is None or t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return thread

    def _all_threads(self) -> list[threading.Thread]:
        with self._lock:
            return list(self._threads)

    def _link_done(self, link: _Link) -> None:
        with self._changed:
            self._links.discard(link)
            self._changed.notify_all()

    def _serve(self) -> None:
        listener, wake = self._listener, self._wake
        assert listener is not None and wake is not None
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake[0], selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is wake[0]:
                        return
                    try:
                        client, _ = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    self._accept(client)

    def _accept(self, client: socket.socket) -> None:
        client.setblocking(True)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.stats["connections"] += 1
            index = self.stats["connections"]
            if self._closed:
                client.close()
                return
        rng = random.Random(f"{self._seed}:{index}")
        link = _Link(self, client, rng, _plan(self._faults, rng))
        with self._changed:
            self._links.add(link)
            self._changed.notify_all()
        self._spawn(link.run, f"link-{index}")
