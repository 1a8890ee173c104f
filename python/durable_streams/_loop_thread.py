"""An asyncio event loop on a daemon thread of its own: how the sync producer and the sync
state view run their async twins for threaded code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
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

    def call(
        self,
        coro: Coroutine[Any, Any, T],
        timeout: float | None,
        on_timeout: Callable[[], BaseException],
    ) -> T:
        """Run ``coro`` on the loop and wait for its result, at most ``timeout`` seconds:
        then it is cancelled and ``on_timeout()`` raised, unless it finished as the time ran
        out (its result counts). An interrupt (Ctrl+C) while waiting cancels it too."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.cancel():
                raise on_timeout() from None
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` on the loop's thread, unless the loop is gone already."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(callback)

    def stop(self, timeout: float) -> None:
        """Cancel what still runs on the loop, let it finish, stop the loop and wait up to
        ``timeout`` s for its thread; the loop is closed once the thread has ended (a thread
        still busy keeps it). Tasks are never left pending: the loop would warn of each."""
        if self.loop.is_closed():
            return
        if self.thread.is_alive():
            gone = (concurrent.futures.TimeoutError, concurrent.futures.CancelledError)
            with contextlib.suppress(*gone):
                self.submit(_cancel_others()).result(timeout)
        self.call_soon(self.loop.stop)
        self.thread.join(timeout)
        if not self.thread.is_alive():
            self.loop.close()


async def _cancel_others() -> None:
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    for task in others:
        task.cancel()
    if others:
        await asyncio.wait(others)
    # What belongs to the loop closes with it (the default connection pools among them).
    await asyncio.get_running_loop().shutdown_asyncgens()
