"""What lets a reader blocked on a socket be woken from elsewhere: another thread (a watchdog,
a shutdown handler) or another task closing the response it reads.

The transport names what would wake the request in flight (shutting its socket down) while it
waits on it; :meth:`Interrupt.fire` does that, and every later request it is given is shut down
as soon as it has a socket. The blocked read then fails, and the reader, seeing ``fired``,
stops instead of retrying."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Interrupt", "shut_down"]


def shut_down(sock: Any) -> None:
    """Wake every read and write blocked on ``sock``, a socket or asyncio's view of one
    (closing it alone would not); closing it is left to its owner."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class Interrupt:
    __slots__ = ("_lock", "_wake", "fired")

    def __init__(self) -> None:
        self.fired = False
        self._wake: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def watch(self, wake: Callable[[], None]) -> None:
        """The request in flight is woken by ``wake``; at once, if already fired."""
        with self._lock:
            self._wake = wake
            if not self.fired:
                return
        wake()

    def unwatch(self) -> None:
        with self._lock:
            self._wake = None

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            wake = self._wake
        if wake is not None:
            wake()
