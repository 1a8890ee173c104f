"""A loopback TCP server for tests that need to speak raw bytes: one thread accepts, each
connection is served on a thread of its own, and close() stops it all within bounds."""

from __future__ import annotations

import contextlib
import socket
import threading

JOIN_TIMEOUT = 10.0


class LoopbackServer:
    """Listens on 127.0.0.1 at a free port; subclasses implement :meth:`handle`."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(ConnectionError):  # a client that hung up
            self.handle(conn)

    def close(self) -> None:
        # Closing alone does not wake a thread blocked in accept(); shutting down does.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._acceptor.join(timeout=JOIN_TIMEOUT)
        # Connections a client keeps alive for its next request end with the server, as with
        # any server: a handler waiting on one for another request wakes up to its end.
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=JOIN_TIMEOUT)


def read_head(conn: socket.socket, pending: bytes = b"") -> tuple[bytes, bytes] | None:
    """One request head from ``conn`` (and the bytes after it), or None at EOF."""
    while b"\r\n\r\n" not in pending:
        data = conn.recv(65536)
        if not data:
            return None
        pending += data
    head, _, rest = pending.partition(b"\r\n\r\n")
    return head, rest
