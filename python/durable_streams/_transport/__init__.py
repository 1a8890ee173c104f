"""How requests travel: one interface, two transports.

A driver sees a *reply* (``status_code``, lower-cased ``headers``, the body as it arrives,
``read(limit)``, ``close()``) whose failures are already this package's typed errors. The
native transport (``_native``: Python sockets, ``_connections``, and the core's HTTP/1.1
decoder, ``_exchange``; a pool per origin, ``_pool_async``) serves by default; httpx
(``_httpx_async``) serves where the native one does not reach: a caller's own httpx client, a
proxy from the environment, a scheme other than http(s), or
``DURABLE_STREAMS_TRANSPORT=httpx``. The choice is the dispatcher's (``_dispatch``)."""

from __future__ import annotations

from ._interface_async import AsyncReply, AsyncTransport
from ._interface_sync import Reply, Transport

__all__ = [
    "AsyncReply",
    "AsyncTransport",
    "Reply",
    "Transport",
]
