"""Connections of the native transport, a socket each: blocking ones for sync code (kernel
timeouts, one reused receive buffer), an asyncio protocol of our own on asyncio, and anyio's
streams under trio. All say the same things: ``receive(timeout)``, ``send(data, timeout)``,
``abort()``, whether they may still serve a request (``alive()``, checked before reusing an
idle one: the server may have closed it), whether an answer has begun to arrive
(``answered()``, checked while a long body goes out: a server that refuses it answers early),
and how many bytes of what was sent have not left yet (``unsent()``). ``connect`` and
``async_connect`` open one."""

from __future__ import annotations

import asyncio
import collections
import select
import socket
import ssl
import struct
import sys

import anyio
import anyio.abc

from .._errors import HTTPParseError
from ._interrupt import shut_down

RECV_BYTES = 256 * 1024


# Servers commonly drop idle keep-alive connections after 5 s (Node's default); one idle for
# longer than this is not reused, so a request never races that close.
KEEPALIVE_EXPIRY = 4.0


# Plain TCP sockets leave timeouts to the kernel (SO_RCVTIMEO) where its timeval is what
# struct "ll" packs: a Python socket timeout costs a poll() before every recv and send.
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")


_UNSET = -1.0


def _timeval(seconds: float | None) -> bytes:
    if seconds is None:
        return struct.pack("ll", 0, 0)  # no timeout
    micros = max(1, round(seconds * 1e6))  # 0 would mean none at all
    return struct.pack("ll", micros // 1_000_000, micros % 1_000_000)


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read now (bytes, or the peer's close); poll, not
    select, so that a process with thousands of sockets is not limited to fd 1023."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


Origin = tuple[str, str, int]


class BlockingConnection:
    """A blocking socket, for sync code."""

    __slots__ = ("_kernel_timeouts", "_poller", "_timeouts", "_view", "idle_since", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.idle_since = 0.0
        self._view = memoryview(bytearray(RECV_BYTES))
        self._kernel_timeouts = _KERNEL_TIMEOUTS and not isinstance(sock, ssl.SSLSocket)
        # The timeout in force per direction (the kernel keeps one for each, Python's socket
        # one for both): only a change costs a system call.
        self._timeouts: dict[int, float | None] = {}
        if self._kernel_timeouts:
            sock.settimeout(None)
        self._poller: select.poll | None = None

    def _use_timeout(self, option: int, seconds: float | None) -> None:
        if not self._kernel_timeouts:
            option = 0
        if self._timeouts.get(option, _UNSET) == seconds:
            return
        self._timeouts[option] = seconds
        if option:
            self.sock.setsockopt(socket.SOL_SOCKET, option, _timeval(seconds))
        else:
            self.sock.settimeout(seconds)

    def set_read_timeout(self, seconds: float | None) -> None:
        """The timeout of every later receive."""
        self._use_timeout(socket.SO_RCVTIMEO, seconds)

    def recv(self) -> bytes:
        """The next bytes (``b""`` at the end). Into one reused buffer, then copied out at
        their size: ``recv(RECV_BYTES)`` would make glibc map, shrink and unmap a fresh
        256 KiB block for every read, three system calls per small event."""
        view = self._view
        try:
            return view[: self.sock.recv_into(view)].tobytes()
        except BlockingIOError:  # what the kernel's receive timeout running out looks like
            raise TimeoutError("timed out") from None

    def receive(self, timeout: float | None) -> bytes:
        """The next bytes within ``timeout`` seconds (``b""`` at the end)."""
        self._use_timeout(socket.SO_RCVTIMEO, timeout)
        return self.recv()

    def send(self, data: bytes | memoryview, timeout: float | None) -> None:
        self._use_timeout(socket.SO_SNDTIMEO, timeout)
        try:
            self.sock.sendall(data)
        except BlockingIOError:
            raise TimeoutError("timed out") from None

    def _readable(self) -> bool:
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        poller = self._poller
        if poller is None:
            poller = self._poller = select.poll()
            poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))

    def alive(self) -> bool:
        """Whether an idle connection may serve another request: nothing arrived on it since
        (an idle connection readable is one the server closed, or one that went wrong)."""
        return self.sock.fileno() >= 0 and not self._readable()

    def answered(self) -> bool:
        return self._readable()

    def unsent(self) -> int:
        return 0  # sendall returns once the kernel has every byte, or raises

    def abort(self) -> None:
        self.sock.close()

    def interrupt(self) -> None:
        """Wake a receive blocked on this connection in another thread."""
        shut_down(self.sock)


def connect(
    origin: Origin, timeout: float | None, tls: ssl.SSLContext | None
) -> BlockingConnection:
    """A new connection to ``origin`` (TLS through ``tls`` for https)."""
    scheme, host, port = origin
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            assert tls is not None
            sock = tls.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return BlockingConnection(sock)


class AnyioConnection:
    """A connection through anyio's streams (trio)."""

    __slots__ = ("idle_since", "stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.idle_since = 0.0

    async def receive(self, timeout: float | None) -> bytes:
        try:
            with anyio.fail_after(timeout):
                return await self.stream.receive(RECV_BYTES)
        except anyio.EndOfStream:
            return b""

    async def send(self, data: bytes | memoryview, timeout: float | None) -> None:
        with anyio.fail_after(timeout):
            await self.stream.send(bytes(data))

    def _readable(self) -> bool:
        sock = self.stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        return sock is not None and _readable(sock)

    def alive(self) -> bool:
        return not self._readable()

    def answered(self) -> bool:
        return self._readable()

    def unsent(self) -> int:
        return 0  # send returns once the stream took every byte

    def interrupt(self) -> None:
        """Wake a receive waiting on this connection in another task."""
        shut_down(self.stream.extra(anyio.abc.SocketAttribute.raw_socket, None))

    async def abort(self) -> None:
        """Close without waiting on the peer (a TLS close_notify could block), even when the
        surrounding scope is being cancelled."""
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(self.stream)


# The asyncio connection stops reading from the socket while this much is received and not
# yet taken, and reads again once the reader has taken it below a quarter of that.
PAUSE_READING_BYTES = 4 * RECV_BYTES


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("timed out"))


class AsyncioConnection(asyncio.BufferedProtocol):
    """A connection as an asyncio protocol, for code running on asyncio.

    anyio's asyncio streams cost a live reader about as much as the rest of its read path
    (per receive: a cancel scope for the timeout, and the socket taken out of and put back
    into epoll). Here the socket stays registered, the event loop reads into one reused
    buffer, and a receive that must wait costs one future. Its timeout is one timer per
    connection that is moved on lazily: when it fires before the current deadline (the
    reads since it was set were quicker), it sets itself for that deadline instead."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.idle_since = 0.0
        self._loop = loop
        self._view = memoryview(bytearray(RECV_BYTES))
        self._received: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._paused = False
        self._ended = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: float | None = None  # of the receive waiting now, if it has one
        self._timer: asyncio.TimerHandle | None = None

    # the protocol's side, called by the event loop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self._received.append(self._view[:nbytes].tobytes())
        self._queued += nbytes
        if self._queued >= PAUSE_READING_BYTES and not self._paused:
            self._paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake()
        return False  # close the transport: a response never continues after the peer's EOF

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        if exc is not None:
            self._error = exc
        self._wake()
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def pause_writing(self) -> None:
        self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # the reader's side

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return  # nothing waits now; the next wait sets a timer again
        # Within a millisecond counts as reached: the loop may fire a timer that much early.
        if self._loop.time() + 0.001 >= deadline:
            if self._waiter is not None:
                _expire(self._waiter)
        else:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    async def receive(self, timeout: float | None) -> bytes:
        if not self._received and not self._ended:
            loop = self._loop
            waiter = self._waiter = loop.create_future()
            if timeout is not None:
                deadline = self._deadline = loop.time() + timeout
                timer = self._timer
                if timer is not None and timer.when() > deadline:
                    timer.cancel()
                    timer = None
                if timer is None:
                    self._timer = loop.call_at(deadline, self._on_timer)
            try:
                await waiter
            finally:
                self._waiter = None
                self._deadline = None
        if self._received:
            data = self._received.popleft()
            self._queued -= len(data)
            if self._paused and self._queued < PAUSE_READING_BYTES // 4:
                self._paused = False
                assert self._transport is not None
                self._transport.resume_reading()
            return data
        if self._error is not None:
            raise self._error
        return b""

    def alive(self) -> bool:
        transport = self._transport
        return not (self._ended or self._received or transport is None or transport.is_closing())

    def answered(self) -> bool:
        return bool(self._received) or self._ended

    def unsent(self) -> int:
        return 0 if self._transport is None else self._transport.get_write_buffer_size()

    async def send(self, data: bytes | memoryview, timeout: float | None) -> None:
        transport = self._transport
        if transport is None or self._ended or transport.is_closing():
            raise self._error or ConnectionResetError("the connection is closed")
        transport.write(data)
        drained = self._drained
        if drained is not None:
            timer = None if timeout is None else self._loop.call_later(timeout, _expire, drained)
            try:
                await drained
            finally:
                if timer is not None:
                    timer.cancel()
            if self._ended:
                raise self._error or ConnectionResetError("the connection closed while sending")

    def interrupt(self) -> None:
        """Wake a receive waiting on this connection in another task."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            shut_down(transport.get_extra_info("socket"))

    async def abort(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()
            # The loop closes the socket in its next round: let it, so that the connection
            # is gone when this returns (if cancelled here, it is gone a round later).
            await asyncio.sleep(0)


AsyncConnection = AnyioConnection | AsyncioConnection
Connection = BlockingConnection

# What a connection's failures look like, whatever drives it (the decoder's among them: a
# connection that ended before an answer).
FAILURES = (OSError, TimeoutError, anyio.BrokenResourceError, HTTPParseError)


async def async_connect(
    origin: Origin, timeout: float | None, tls: ssl.SSLContext | None
) -> AsyncConnection:
    """A new connection to ``origin``: our asyncio protocol on asyncio, anyio's streams on
    anything else (trio)."""
    scheme, host, port = origin
    context = tls if scheme == "https" else None
    loop = asyncio_loop()
    if loop is not None:
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: AsyncioConnection(loop),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                ),
                timeout,
            )
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            raise TimeoutError(f"connecting to {host}:{port} timed out") from None
        return connection
    with anyio.fail_after(timeout):
        if context is not None:
            stream: anyio.abc.ByteStream = await anyio.connect_tcp(
                host, port, ssl_context=context, tls_hostname=host, tls_standard_compatible=False
            )
        else:
            stream = await anyio.connect_tcp(host, port)
    return AnyioConnection(stream)


def asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop if this task runs on asyncio itself; None under trio."""
    try:
        import sniffio
    except ImportError:
        pass
    else:
        try:
            if sniffio.current_async_library() != "asyncio":
                return None
        except sniffio.AsyncLibraryNotFoundError:
            return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
