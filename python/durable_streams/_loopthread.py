"""An asyncio event loop on a daemon thread of its own: how the sync producer and the sync
state view run their async twins for threaded code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """Starts the loop's thread at once; :meth:`stop` ends it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop; its future, for any thread to wait on."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` on the loop's thread, unless the loop is gone already."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(callback)

    def stop(self, timeout: float) -> None:
        """Stop the loop and wait up to ``timeout`` s for its thread; the loop is closed once
        the thread has ended (a thread still busy keeps it)."""
        self.call_soon(self.loop.stop)
        self.thread.join(timeout)
        if not self.thread.is_alive():
            self.loop.close()
