# Generated from _client_async.py by scripts/unasync.py:
# edit that file, then run the script.
"""Settings stated once for many streams:
:class:`Client` holds a base URL, headers, params, timeouts, retries, TLS and connection
limits, and opens handles, readers, producers and subscriptions that share its connection
pool."""

from __future__ import annotations

import datetime as _dt
import ssl
from types import TracebackType
from typing import Any

import httpx

from . import _errors as errors
from . import _protocol as proto
from ._dispatch_sync import Dispatcher
from ._options import DEFAULT_LIVE_READ_TIMEOUT, Headers, OnError, make_timeout, merge
from ._protocol import OFFSET_BEGINNING
from ._reading._response_sync import StreamResponse, stream
from ._reading._session import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_EVENT_BYTES
from ._retry import RetryPolicy
from ._subscriptions._client_sync import Subscriptions
from ._transport._pool_sync import PoolLimits
from ._values import LiveMode, SseFallback
from ._writing._handle_sync import DurableStream
from ._writing._producer_threaded import SyncIdempotentProducer

__all__ = ["Client"]


class Client:
    """Settings stated once for many streams, and one connection pool per server shared by
    everything opened from it.

    ``base_url`` is what stream paths are relative to (``client.stream("orders/7")``); full
    URLs work as well. ``headers`` and ``params`` (values may be callables, evaluated for each
    request: a token that refreshes), ``timeout``, ``retry`` and ``verify`` apply to every
    handle, reader, producer and subscription made from the client, under what each call adds
    of its own. ``max_connections`` bounds the sockets per server serving requests that end on
    their own (appends, control calls, catch-up reads, producer batches): one more waits for a
    connection to come free, up to the timeout's ``pool`` part; live reads come on top.
    ``http_client``: a caller's own ``httpx.Client`` for every request instead (proxies,
    HTTP/2), closed by its owner.

    Use it as a context manager, or close it: its connections close; what was opened from it
    takes no more requests. The per-URL API (``stream(url)``, ``DurableStream(url)``)
    keeps working without a client and shares a default pool per server."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
        max_connections: int = PoolLimits.max_connections,
        keepalive_expiry: float = PoolLimits.keepalive_expiry,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.base_url = None if base_url is None else proto.check_url(base_url, "base URL")
        proto.check_headers(headers)
        self.headers = headers
        self.params = params
        self.timeout = make_timeout(timeout)
        self.retry = retry
        self.verify = verify
        self._dispatcher = Dispatcher(
            verify=verify,
            limits=PoolLimits(max_connections, keepalive_expiry),
            http_client=http_client,
        )

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    def __repr__(self) -> str:
        base = "" if self.base_url is None else f" {errors.redact_url(self.base_url)}"
        return f"<{type(self).__name__}{base}>"

    def url(self, path: str) -> str:
        """The URL of a stream: ``path`` under ``base_url``, or ``path`` itself if it is a
        full URL."""
        if path.startswith(("http://", "https://")):
            return proto.check_url(path)
        if self.base_url is None:
            raise errors.UsageError(
                f"{path!r} is not a URL, and the client has no base_url to put it under"
            )
        return proto.join_url(self.base_url, path)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection of the client's pools."""
        self._dispatcher.close()

    def _settings(
        self,
        headers: Headers | None,
        params: Headers | None,
        timeout: float | httpx.Timeout | None,
        retry: RetryPolicy | None,
    ) -> dict[str, Any]:
        return {
            "headers": merge(self.headers, headers),
            "params": merge(self.params, params),
            "timeout": self.timeout if timeout is None else make_timeout(timeout),
            "retry": self.retry if retry is None else retry,
        }

    # -- streams ------------------------------------------------------------------------------

    def handle(
        self,
        path: str,
        *,
        content_type: str | None = None,
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        coalesce: bool = True,
        on_error: OnError | None = None,
    ) -> DurableStream:
        """A handle on the stream at ``path`` (under ``base_url``, or a URL); nothing is
        sent."""
        return DurableStream(
            self.url(path),
            content_type=content_type,
            client=self,
            verify=self.verify,
            coalesce=coalesce,
            on_error=on_error,
            **self._settings(headers, params, timeout, retry),
        )

    def create(
        self,
        path: str,
        *,
        content_type: str = proto.DEFAULT_CONTENT_TYPE,
        ttl_seconds: int | None = None,
        expires_at: _dt.datetime | str | None = None,
        data: Any = None,
        closed: bool = False,
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        coalesce: bool = True,
        on_error: OnError | None = None,
    ) -> DurableStream:
        """Create the stream at ``path`` (or accept an identical one); see
        :meth:`DurableStream.create`."""
        return DurableStream.create(
            self.url(path),
            content_type=content_type,
            ttl_seconds=ttl_seconds,
            expires_at=expires_at,
            data=data,
            closed=closed,
            client=self,
            verify=self.verify,
            coalesce=coalesce,
            on_error=on_error,
            **self._settings(headers, params, timeout, retry),
        )

    def connect(
        self,
        path: str,
        *,
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        on_error: OnError | None = None,
    ) -> DurableStream:
        """A handle on an existing stream; :class:`StreamNotFoundError` if there is none."""
        return DurableStream.connect(
            self.url(path),
            client=self,
            verify=self.verify,
            on_error=on_error,
            **self._settings(headers, params, timeout, retry),
        )

    def stream(
        self,
        path: str,
        *,
        offset: str = OFFSET_BEGINNING,
        live: LiveMode = False,
        cursor: str | None = None,
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
        live_read_timeout: float = DEFAULT_LIVE_READ_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        json: bool = False,
        sse_fallback: SseFallback | bool = True,
        on_error: OnError | None = None,
    ) -> StreamResponse:
        """Read the stream at ``path``; see :func:`stream`."""
        settings = self._settings(headers, params, timeout, None)
        return stream(
            self.url(path),
            offset=offset,
            live=live,
            cursor=cursor,
            client=self,
            live_read_timeout=live_read_timeout,
            retry=retry,
            max_event_bytes=max_event_bytes,
            max_body_bytes=max_body_bytes,
            json=json,
            sse_fallback=sse_fallback,
            verify=self.verify,
            on_error=on_error,
            headers=settings["headers"],
            params=settings["params"],
            timeout=settings["timeout"],
        )

    def producer(
        self,
        path: str | DurableStream,
        *,
        producer_id: str,
        content_type: str | None = None,
        **options: Any,
    ) -> SyncIdempotentProducer:
        """An :class:`SyncIdempotentProducer` appending to the stream at ``path`` (or through a
        handle), with the client's settings; ``options`` are the producer's."""
        handle = self.handle(path, content_type=content_type) if isinstance(path, str) else path
        return SyncIdempotentProducer(
            handle, producer_id=producer_id, content_type=content_type, **options
        )

    def subscriptions(
        self,
        root: str | None = None,
        *,
        headers: Headers | None = None,
        params: Headers | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> Subscriptions:
        """The subscriptions under ``root`` (default: ``base_url``, the stream root)."""
        where = self.base_url if root is None else self.url(root)
        if where is None:
            raise errors.UsageError("subscriptions need a root: pass it, or give a base_url")
        return Subscriptions(
            where,
            client=self,
            verify=self.verify,
            **self._settings(headers, params, timeout, retry),
        )
