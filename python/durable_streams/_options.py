"""What callers state for their requests: headers and query parameters (values may be
callables, evaluated per request), timeouts, connection limits, and the ``on_error`` hooks'
types."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping

import httpx

from . import _errors as errors
from ._protocol import (
    HttpRequest,
)
from ._values import ErrorDecision

HeaderValue = str | Callable[[], str] | Callable[[], Awaitable[str]]


Headers = Mapping[str, HeaderValue]


OnError = Callable[[errors.DurableStreamError], ErrorDecision]


AsyncOnError = Callable[[errors.DurableStreamError], ErrorDecision | Awaitable[ErrorDecision]]


DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


# A live request may be held by the server for its whole long-poll window (30 s on the
# reference server) or SSE connection lifetime (~60 s); the socket read timeout must outlast it.
DEFAULT_LIVE_READ_TIMEOUT = 90.0


# Servers commonly drop idle keep-alive connections after 5 s (Node's default); closing ours a
# little sooner keeps a request from racing that close on a connection about to die.
CLIENT_LIMITS = httpx.Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=4.0
)


def make_timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if isinstance(timeout, bool) or not (timeout > 0 and math.isfinite(timeout)):
        # Zero would time every request out at once, which reads as an unreachable server.
        raise errors.UsageError(
            f"timeout must be a positive number of seconds (None: the default), not {timeout!r}"
        )
    return httpx.Timeout(timeout)


def request_timeout(base: httpx.Timeout, live_read_timeout: float, live: bool) -> httpx.Timeout:
    if not live:
        return base
    read = max(base.read or 0.0, live_read_timeout)
    return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)


def merge(base: Headers | None, extra: Headers | None) -> dict[str, HeaderValue]:
    out: dict[str, HeaderValue] = dict(base or {})
    out.update(extra or {})
    return out


def with_dynamic(
    req: HttpRequest, headers: Mapping[str, str], params: Mapping[str, str]
) -> HttpRequest:
    """``req`` with the handle's evaluated headers and params under its own (a header of the
    request's own replaces the handle's of the same name, whatever their case)."""
    own = {name.lower() for name in req.headers}
    return HttpRequest(
        req.method,
        req.url,
        {**{k: v for k, v in headers.items() if k.lower() not in own}, **req.headers},
        sorted({**params, **dict(req.params)}.items()),
        req.content,
        req.idempotent,
        req.stream,
    )
