"""Connections to one origin, shared by every request to it (async; ``_pool_sync`` is
generated from it).

Bounded: at most ``max_connections`` sockets serve requests that end on their own (appends,
control calls, catch-up reads, a producer's batches) or wait idle; one more such request waits
for a connection to come back (up to the pool timeout) instead of opening a socket. Live reads
(long-poll, SSE), which hold their connection for as long as the server keeps them, are not
counted: they reuse an idle connection when there is one, else open their own, and give it
back like any other. Idle connections are kept at most ``keepalive_expiry`` seconds, newest
first, and one the server closed while it was idle is noticed before it is used."""

from __future__ import annotations

import ssl
import time
from collections import deque
from dataclasses import dataclass

from .._flavours import (
    AsyncGuard,
    AsyncSignal,
    async_guard,
    async_signal,
    async_wait_signal,
)
from ._connections import AsyncConnection, Origin, async_connect

__all__ = ["AsyncConnectionPool", "PoolLimits"]


@dataclass(frozen=True)
class PoolLimits:
    """How many connections a client keeps per origin.

    ``max_connections``: sockets serving requests that end on their own, busy or idle (live
    reads come on top); ``keepalive_expiry``: seconds an idle connection is kept (servers
    commonly drop idle ones after 5 s, Node's default: ours go first, so a request never
    races that close)."""

    max_connections: int = 64
    keepalive_expiry: float = 4.0

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_connections, bool)
            or not isinstance(self.max_connections, int)
            or self.max_connections < 1
        ):
            raise ValueError(
                f"max_connections must be a positive integer, not {self.max_connections!r}"
            )
        if not self.keepalive_expiry >= 0:
            raise ValueError(f"keepalive_expiry must be >= 0, not {self.keepalive_expiry!r}")


class AsyncConnectionPool:
    """The connections of one client to one origin."""

    def __init__(self, origin: Origin, limits: PoolLimits, tls: ssl.SSLContext | None) -> None:
        self.origin = origin
        self._limits = limits
        self._tls = tls
        self._idle: list[AsyncConnection] = []  # newest last
        self._bounded = 0  # sockets of requests that end on their own, busy now
        self._waiting: deque[AsyncSignal] = deque()
        self._guard: AsyncGuard = async_guard()
        self._closed = False

    @property
    def saturated(self) -> bool:
        """Every connection the bound allows is busy: a request now would wait."""
        return self._bounded >= self._limits.max_connections

    @property
    def connections(self) -> int:
        """Sockets the bound counts: busy with requests that end on their own, or idle."""
        return self._bounded + len(self._idle)

    def _take_idle(self, stale: list[AsyncConnection]) -> AsyncConnection | None:
        expiry = time.monotonic() - self._limits.keepalive_expiry
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.idle_since >= expiry and connection.alive():
                return connection
            stale.append(connection)
        return None

    async def acquire(
        self, connect_timeout: float | None, pool_timeout: float | None, *, live: bool
    ) -> tuple[AsyncConnection, bool]:
        """A connection for one request, and whether it served one before. ``live``: the
        request may be held open by the server (not counted by the bound)."""
        while True:
            stale: list[AsyncConnection] = []
            waiter: AsyncSignal | None = None
            with self._guard:
                if self._closed:
                    raise ConnectionAbortedError("the client is closed")
                connection = self._take_idle(stale)
                if connection is None and not live:
                    if self._bounded < self._limits.max_connections:
                        self._bounded += 1  # this request's slot: its socket is on the way
                    else:
                        waiter = async_signal()
                        self._waiting.append(waiter)
                elif connection is not None and not live:
                    self._bounded += 1
            for old in stale:
                await old.abort()
            if connection is not None:
                return connection, True
            if waiter is None:
                try:
                    return await async_connect(self.origin, connect_timeout, self._tls), False
                except BaseException:
                    if not live:
                        self._give_back_slot()
                    raise
            try:
                came = await async_wait_signal(waiter, pool_timeout)
            except BaseException:  # cancelled: a wake-up meant for it goes to the next in line
                with self._guard:
                    if waiter in self._waiting:
                        self._waiting.remove(waiter)
                    elif waiter.is_set():
                        self._wake_one()
                raise
            if not came:
                with self._guard:
                    if waiter in self._waiting:
                        self._waiting.remove(waiter)
                        raise TimeoutError(
                            f"no connection to {self.origin[1]}:{self.origin[2]} came free "
                            f"within {pool_timeout} s (max_connections="
                            f"{self._limits.max_connections})"
                        )
                # Handed a slot just as the wait ran out: take it.

    def _give_back_slot(self) -> None:
        with self._guard:
            self._bounded -= 1
            self._wake_one()

    def _wake_one(self) -> None:
        if self._waiting and self._bounded + len(self._idle) <= self._limits.max_connections:
            self._waiting.popleft().set()

    async def release(self, connection: AsyncConnection, *, live: bool, reusable: bool) -> None:
        """The request is done with ``connection``: kept for the next one if ``reusable``
        and there is room, else closed."""
        drop = not reusable
        with self._guard:
            if not live:
                self._bounded -= 1
            if reusable:
                if self._closed or self._bounded + len(self._idle) >= self._limits.max_connections:
                    drop = True
                else:
                    connection.idle_since = time.monotonic()
                    self._idle.append(connection)
            self._wake_one()
        if drop:
            await connection.abort()

    async def aclose(self) -> None:
        """Close the idle connections now; busy ones close when their requests end."""
        with self._guard:
            self._closed = True
            idle, self._idle = self._idle, []
            waiting, self._waiting = self._waiting, deque()
        for waiter in waiting:
            waiter.set()
        for connection in idle:
            await connection.abort()
