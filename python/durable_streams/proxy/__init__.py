"""The durable proxy (PROXY_PROTOCOL.md of the Durable Streams project): make any HTTP
streaming response resumable.

Server side, :class:`ProxyApp` is an ASGI application that fetches an allowed upstream URL,
answers at once with a pre-signed read URL, and writes the upstream body to a stream while
clients read it (``durable-streams serve --proxy-secret ... --proxy-allow ...`` hosts one).
Client side, :func:`durable_fetch` / :func:`adurable_fetch` send a request through the proxy
and read the answer as a resumable stream; with a ``request_id`` and a :class:`RequestStore`
a restarted process reads the same answer again instead of asking the upstream twice.
"""

from __future__ import annotations

from .. import _name_public_module
from ._app import ProxyApp
from ._fetch_async import AsyncProxyResponse, adurable_fetch
from ._fetch_sync import ProxyResponse, durable_fetch
from ._rules import Allowlist
from ._store import ProxiedRequest, RequestStore

__all__ = [
    "Allowlist",
    "AsyncProxyResponse",
    "ProxiedRequest",
    "ProxyApp",
    "ProxyResponse",
    "RequestStore",
    "adurable_fetch",
    "durable_fetch",
]

_name_public_module(globals(), __all__, __name__)
