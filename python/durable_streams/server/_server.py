"""The server's lifecycle: bind, accept, stop; in the caller's event loop or a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from types import TracebackType

from ._app import App, Settings
from ._asgi import ASGIApp, call_asgi
from ._http import Connection, Limits, Request, Response
from ._notify import Notifier
from ._sqlite import SqliteJournal
from ._store import Journal, MemoryJournal, Store

__all__ = ["Server"]

_SWEEP_INTERVAL = 30.0  # how often expired streams are dropped even if nobody asks for them
_STOP_GRACE = 2.0  # for answers in flight (woken long-polls, ending SSE) before connections drop


class Server:
    """A Durable Streams server: in-memory, or backed by a SQLite data file.

    Run it in the current asyncio event loop::

        async with Server() as server:
            print(server.url)

    or on a background thread with its own loop (``start()``/``close()``)::

        with Server(port=0) as server:
            print(server.url)

    ``port=0`` picks a free port. ``data_path`` names the SQLite file that makes streams
    survive a restart (created if missing). ``long_poll_timeout`` is how long (seconds) a
    long-poll waits, and how often an idle SSE response sends a keep-alive control event;
    ``sse_reconnect_interval`` is when an SSE response ends so the reader reconnects.
    ``fault_injection`` enables ``POST``/``DELETE /_test/inject-error``. Subscriptions
    (PROTOCOL.md sections 6-7) are served under ``/v1/stream/__ds``, in memory; ``webhooks``
    lets them deliver by webhook (signed with Ed25519: needs the ``cryptography`` package).
    :meth:`mount` hosts an ASGI application under a path prefix (the durable proxy).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        data_path: str | os.PathLike[str] | None = None,
        long_poll_timeout: float = 30.0,
        sse_reconnect_interval: float = 60.0,
        compression: bool = True,
        fault_injection: bool = False,
        webhooks: bool = False,
        max_read_bytes: int = 4 * 1024 * 1024,
        max_connections: int = 1024,
        limits: Limits | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, not {port}")
        if long_poll_timeout <= 0 or sse_reconnect_interval <= 0:
            raise ValueError("long_poll_timeout and sse_reconnect_interval must be > 0")
        if max_read_bytes < 1 or max_connections < 1:
            raise ValueError("max_read_bytes and max_connections must be >= 1")
        self.host = host
        self.port = port
        self.data_path = None if data_path is None else os.fspath(data_path)
        self._settings = Settings(
            long_poll_timeout=long_poll_timeout,
            sse_reconnect_interval=sse_reconnect_interval,
            max_read_bytes=max_read_bytes,
            compression=compression,
            fault_injection=fault_injection,
            webhooks=webhooks,
        )
        self.limits = limits or Limits()
        self.max_connections = max_connections
        self._url: str | None = None
        self._listener: asyncio.Server | None = None
        self._store: Store | None = None
        self._app: App | None = None
        self._notifier = Notifier()
        self._connections: dict[asyncio.Task[None], Connection] = {}
        self._mounts: dict[str, ASGIApp] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped: asyncio.Event | None = None
        # Thread mode
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_request: asyncio.Event | None = None
        self._startup_error: BaseException | None = None

    @property
    def url(self) -> str:
        """The base URL, ``http://HOST:PORT`` (no trailing slash)."""
        if self._url is None:
            raise RuntimeError("the server is not running")
        return self._url

    def __repr__(self) -> str:
        return f"<Server {self._url or 'not running'}>"

    # -- in the current event loop -------------------------------------------------

    async def astart(self) -> str:
        """Bind and start accepting connections; returns the URL."""
        if self._listener is not None:
            raise RuntimeError("the server is already running")
        journal: Journal = (
            MemoryJournal() if self.data_path is None else SqliteJournal(self.data_path)
        )
        try:
            self._store = Store(journal, on_change=self._notifier.notify)
            self._app = App(self._store, self._notifier, self._settings, lambda: self._url or "")
            self._listener = await asyncio.start_server(self._accept, self.host, self.port)
        except BaseException:
            journal.close()
            raise
        port = self._listener.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._url = f"http://{host}:{port}"
        self._app.subscription_registry.start()
        self._stopped = asyncio.Event()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return self._url

    async def serve_forever(self) -> None:
        """Serve until ``aclose()`` (or cancellation), then stop."""
        if self._listener is None:
            await self.astart()
        assert self._stopped is not None
        try:
            await self._stopped.wait()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop: no new connections, answers in flight get a moment, then every connection
        is dropped and the data file closed. Safe to call twice."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        assert self._app is not None and self._store is not None and self._stopped is not None
        for app in self._mounts.values():
            close = getattr(app, "aclose", None)
            if close is not None:  # the proxy: its upstream fetches end (and write their
                # last bytes, perhaps to this server) first
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(close(), _STOP_GRACE * 5)
        self._app.closing = True
        listener.close()
        self._notifier.notify_all()
        for connection in self._connections.values():
            connection.stop()
        tasks = list(self._connections)
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=_STOP_GRACE)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        await self._app.subscription_registry.aclose()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(listener.wait_closed(), _STOP_GRACE)
        self._store.close_journal()
        self._url = None
        self._stopped.set()

    async def __aenter__(self) -> Server:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def mount(self, prefix: str, app: ASGIApp) -> None:
        """Serve the requests for ``prefix`` and the paths under it with the ASGI application
        ``app`` (``http`` scopes only; it runs in the server's event loop). May be called
        while the server runs; an ``app`` with an ``aclose()`` coroutine method is closed
        when the server stops."""
        prefix = "/" + prefix.strip("/")
        if prefix == "/":
            raise ValueError("an application is mounted under a path, not at /")
        self._mounts[prefix] = app

    async def _handle(self, request: Request) -> Response:
        for prefix, app in self._mounts.items():
            if request.path == prefix or request.path.startswith(prefix + "/"):
                port = self._listener.sockets[0].getsockname()[1] if self._listener else 0
                return await call_asgi(app, request, (self.host, port))
        assert self._app is not None
        return await self._app(request)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        app = self._app
        if app is None or app.closing or task is None:
            writer.transport.abort()
            return
        if len(self._connections) >= self.max_connections:
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n")
            writer.write(b"Connection: close\r\nRetry-After: 1\r\n\r\n")
            writer.close()
            return
        connection = Connection(reader, writer, self._handle, self.limits)
        self._connections[task] = connection
        try:
            await connection.run()
        except asyncio.CancelledError:
            pass  # stopped by aclose(); nobody awaits this task's outcome
        finally:
            del self._connections[task]

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL)
            if self._store is not None:
                self._store.expire_all()

    # -- on a thread of its own ---------------------------------------------------

    def start(self, timeout: float = 30.0) -> str:
        """Run the server on a background thread with its own event loop; returns the URL
        once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the server was already started")
        ready = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run,
            args=(self._run_thread(ready),),
            name=f"durable-streams-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"the server did not start within {timeout:g} s")
        if self._startup_error is not None:
            self._thread.join(timeout)
            raise self._startup_error
        return self.url

    def close(self, timeout: float = 30.0) -> None:
        """Stop a server started with ``start()`` and wait for its thread. Safe to call twice."""
        thread, loop, stop = self._thread, self._loop, self._stop_request
        if thread is None or loop is None or stop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has already finished
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the server thread did not stop within {timeout:g} s")

    async def _run_thread(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_request = asyncio.Event()
        try:
            await self.astart()
        except BaseException as exc:
            self._startup_error = exc
            ready.set()
            return
        ready.set()
        try:
            await self._stop_request.wait()
        finally:
            await self.aclose()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
