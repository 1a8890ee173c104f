"""Wake-ups for long-polls and SSE readers waiting at a stream's tail.

A waiter checks the store and, with no await in between, registers here; the store calls
:meth:`Notifier.notify` after every change to a path. Both run on the event loop's thread,
so no change can slip between the check and the wait.
"""

from __future__ import annotations

import asyncio

__all__ = ["Notifier"]


class Notifier:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    def notify(self, path: str) -> None:
        for future in self._waiters.pop(path, ()):
            if not future.done():
                future.set_result(None)

    def notify_all(self) -> None:
        for path in list(self._waiters):
            self.notify(path)

    async def wait(self, path: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a change to ``path``; True if one came."""
        if timeout <= 0:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(path, set())
        waiters.add(future)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            waiters.discard(future)
            if not waiters and self._waiters.get(path) is waiters:
                del self._waiters[path]
