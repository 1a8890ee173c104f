"""How requests go out, for async code (``_dispatch_sync`` is generated from it): the
transport for each URL (the native one where it reaches, else httpx), and one request sent
whole, with the caller's headers and params evaluated, resent after a transient failure only
where resending cannot apply it twice, with its span when telemetry is on.

An :class:`AsyncDispatcher` holds one connection pool per origin; every handle, reader,
producer and subscription made from one client, or from the per-URL API with the same TLS
settings, shares it (see ``_defaults``)."""

from __future__ import annotations

import os
from typing import Protocol

import httpx

from . import _errors as errors
from . import telemetry
from ._flavours import async_sleep, resolve_async
from ._log import retrying
from ._options import CLIENT_LIMITS, Headers, with_dynamic
from ._protocol import ERROR_BODY_LIMIT, HttpRequest
from ._retry import RetryPolicy, RetryState, delay_after_status
from ._transport import AsyncTransport
from ._transport._httpx_async import AsyncHttpxTransport
from ._transport._native_async import AsyncNativeTransport
from ._transport._pool_async import PoolLimits
from ._transport._request import TRANSPORT_VARIABLES, Verify, native_enabled, usable_for

__all__ = ["AsyncClientLike", "AsyncDispatcher", "dispatcher_for"]

# A whole answer read by send() may be this large (a create or fork echoes nothing big; an
# error's text is cut at ERROR_BODY_LIMIT when it becomes an error).
ANSWER_LIMIT = 64 * 1024 * 1024
# The environment variables that decide whether a URL goes through a proxy (httpx's rules).
_PROXY_VARIABLES = tuple(
    name
    for base in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    for name in (base, base.upper())
)


class AsyncDispatcher:
    """Transports and pools for every URL one client talks to."""

    def __init__(
        self,
        *,
        verify: Verify = True,
        limits: PoolLimits | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.verify = verify
        self.limits = limits or PoolLimits()
        self._native = AsyncNativeTransport(verify, self.limits)
        self._own_httpx: AsyncHttpxTransport | None = None
        self._user_httpx = (
            None if http_client is None else AsyncHttpxTransport(http_client, owns=False)
        )
        self._choices: dict[tuple[str | None, ...], AsyncTransport] = {}
        self.closed = False

    def transport_for(self, url: str) -> AsyncTransport:
        """The transport that serves ``url``: the caller's own httpx client if there is one,
        else the native transport unless a proxy (or ``DURABLE_STREAMS_TRANSPORT=httpx``)
        needs httpx. The answer is kept per URL and environment."""
        if self.closed:
            raise errors.HandleClosedError("the client is closed", url=url)
        if self._user_httpx is not None:
            return self._user_httpx
        environ = os.environ
        end = url.find("/", url.find("//") + 2)
        key = (
            url if end < 0 else url[:end],  # the scheme and authority decide, not the path
            *[environ.get(name) for name in TRANSPORT_VARIABLES],
            *[environ.get(name) for name in _PROXY_VARIABLES],
        )
        transport = self._choices.get(key)
        if transport is None:
            native = native_enabled() and usable_for(url)
            transport = self._native if native else self._httpx()
            if len(self._choices) > 1024:  # many servers: start over
                self._choices.clear()
            self._choices[key] = transport
        return transport

    def _httpx(self) -> AsyncHttpxTransport:
        if self._own_httpx is None:
            client = httpx.AsyncClient(verify=self.verify, limits=CLIENT_LIMITS)
            self._own_httpx = AsyncHttpxTransport(client, owns=True)
        return self._own_httpx

    @property
    def native(self) -> AsyncNativeTransport:
        return self._native

    async def aclose(self) -> None:
        """Close every connection this dispatcher made (a caller's own httpx client stays
        open: it is theirs)."""
        self.closed = True
        self._choices.clear()
        await self._native.aclose()
        own, self._own_httpx = self._own_httpx, None
        if own is not None:
            await own.aclose()

    async def send(
        self,
        req: HttpRequest,
        *,
        headers: Headers | None,
        params: Headers | None,
        timeout: httpx.Timeout,
        retry: RetryPolicy,
        transport: AsyncTransport | None = None,
        resent: list[bool] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request with ``headers`` and ``params`` (values may be callables) added, resent
        after transient failures where that cannot apply it twice; the answer's status,
        lower-cased headers and body. ``transport``: the one :meth:`transport_for` chose for
        this URL before (a handle keeps it, as an httpx client keeps its proxies).
        ``resent`` gets True appended when the request went again after an attempt that may
        have been applied (an idempotent one: a DELETE answered 404 then is done)."""
        if transport is None:
            transport = self.transport_for(req.url)
        attempts: RetryState | None = None
        while True:
            if headers or params:
                fresh = with_dynamic(
                    req, await resolve_async(headers, headers=True), await resolve_async(params)
                )
            else:
                fresh = req
            otel = telemetry.active
            span = None
            if otel is not None:
                attempt = 1 if attempts is None else attempts.attempts + 1
                fresh, span = otel.request(None, fresh, attempt)
            try:
                reply = await transport.send(fresh, timeout)
                status = reply.status_code
                answer_headers = reply.headers
                limit = ANSWER_LIMIT if status < 400 else ERROR_BODY_LIMIT
                body = await reply.aread(limit)
            except errors.TransportError as failure:
                if span is not None:
                    span.failed(failure)
                # Safe again when it cannot have been applied: it never went out whole, or
                # applying it twice does nothing new. A body sent as it was made is gone.
                if req.stream is not None or (req.idempotent is False and failure.request_sent):
                    raise
                attempts = attempts or RetryState(retry)
                delay = attempts.next_delay()
                if delay is None:
                    raise
                operation = telemetry.operation_of(req)
                retrying(req.method, req.url, failure, attempts.attempts, delay, operation)
                if resent is not None and failure.request_sent:
                    resent.append(True)
                await async_sleep(delay)
                continue
            except BaseException as exc:  # cancelled, or a bug: the span still ends
                if span is not None:
                    span.failed(exc)
                raise
            if span is not None:
                span.answered(status, answer_headers)
            if status < 400 or req.stream is not None:
                return status, answer_headers, body
            attempts = attempts or RetryState(retry)
            delay = delay_after_status(attempts, req, status, answer_headers)
            if delay is None:
                return status, answer_headers, body
            operation = telemetry.operation_of(req)
            retrying(req.method, req.url, f"status {status}", attempts.attempts, delay, operation)
            await async_sleep(delay)


class AsyncClientLike(Protocol):
    """What a handle, reader or producer takes from the client it was made from (the public
    :class:`AsyncClient`, which also states settings once for everything made from it)."""

    @property
    def dispatcher(self) -> AsyncDispatcher: ...


def dispatcher_for(
    client: AsyncClientLike | httpx.AsyncClient | None, verify: Verify
) -> AsyncDispatcher | None:
    """The dispatcher of what a caller passed as ``client``: a caller's own httpx client is
    used for every request (a dispatcher around it); ``None``: the shared default one, found
    when the first request goes out (it belongs to the running event loop)."""
    if client is None:
        return None
    if isinstance(client, httpx.AsyncClient):
        return AsyncDispatcher(verify=verify, http_client=client)
    return client.dispatcher
