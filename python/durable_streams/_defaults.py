"""The dispatchers of the per-URL API (``stream(url)``, ``DurableStream(url)``, a producer on
a URL...): shared, so that everything talking to one origin shares one connection pool.

Sync code shares one per process (per TLS setting), closed at exit. Async code shares one per
event loop (asyncio) or run (trio), since connections belong to the loop that opened them;
it closes with the loop: an async generator parked on the loop is finalized when the loop
shuts its generators down (``asyncio.run`` and trio both do), and closes the connections."""

from __future__ import annotations

import atexit
import ssl
import sys
import threading
import weakref
from collections.abc import AsyncGenerator
from typing import Any

from ._dispatch_async import AsyncDispatcher
from ._dispatch_sync import Dispatcher
from ._transport._request import Verify

__all__ = ["async_default_dispatcher", "default_dispatcher"]

_lock = threading.Lock()
_sync: dict[Any, Dispatcher] = {}
_async: weakref.WeakKeyDictionary[Any, dict[Any, AsyncDispatcher]] = weakref.WeakKeyDictionary()
# Parked generators, one per loop, kept alive until their loop finalizes them.
_watchers: weakref.WeakKeyDictionary[Any, AsyncGenerator[None, None]] = weakref.WeakKeyDictionary()


def _key(verify: Verify) -> Any:
    # An SSLContext is compared by identity: two contexts may trust different roots.
    return ("context", id(verify)) if isinstance(verify, ssl.SSLContext) else verify


def default_dispatcher(verify: Verify = True) -> Dispatcher:
    """The process's dispatcher for ``verify``."""
    key = _key(verify)
    dispatcher = _sync.get(key)
    if dispatcher is None:
        with _lock:
            dispatcher = _sync.get(key)
            if dispatcher is None:
                dispatcher = _sync[key] = Dispatcher(verify=verify)
    return dispatcher


@atexit.register
def _close_at_exit() -> None:
    with _lock:
        dispatchers = list(_sync.values())
        _sync.clear()
    for dispatcher in dispatchers:
        dispatcher.close()


def _running_loop() -> Any:
    """What connections belong to: the running asyncio loop, or the trio run's token."""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
    import asyncio

    return asyncio.get_running_loop()


async def _close_with_loop(dispatchers: dict[Any, AsyncDispatcher]) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        for dispatcher in list(dispatchers.values()):
            await dispatcher.aclose()


async def async_default_dispatcher(verify: Verify = True) -> AsyncDispatcher:
    """The running loop's dispatcher for ``verify``."""
    loop = _running_loop()
    dispatchers = _async.get(loop)
    if dispatchers is None:
        dispatchers = _async[loop] = {}
        watcher = _close_with_loop(dispatchers)
        await watcher.__anext__()
        _watchers[loop] = watcher
    key = _key(verify)
    dispatcher = dispatchers.get(key)
    if dispatcher is None or dispatcher.closed:
        dispatcher = dispatchers[key] = AsyncDispatcher(verify=verify)
    return dispatcher
