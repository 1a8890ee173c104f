"""How requests travel: one interface, two transports.

A driver sees a *reply* (``status_code``, lower-cased ``headers``, the body as it arrives,
``read(limit)``, ``close()``) whose failures are already this package's typed errors. The
native transport (``_native``: Python sockets, ``_connections``, and the core's HTTP/1.1
decoder, ``_exchange``) serves by default; httpx (``_httpx_async``, and its generated
``_httpx_sync``) serves where the native one does not reach: a caller's own httpx client, a
proxy from the environment, a scheme other than http(s), or
``DURABLE_STREAMS_READ_TRANSPORT=httpx``."""

from __future__ import annotations

from ._select_async import AsyncReply, AsyncTransport, async_read_transport
from ._select_sync import Reply, Transport, read_transport

__all__ = [
    "AsyncReply",
    "AsyncTransport",
    "Reply",
    "Transport",
    "async_read_transport",
    "read_transport",
]
