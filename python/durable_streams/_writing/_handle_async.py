"""The async stream handle, :class:`AsyncDurableStream`: create, append, head, close,
delete, fork and read one stream, for asyncio and trio alike."""

from __future__ import annotations

import datetime as _dt
import ssl
from contextlib import suppress
from types import TracebackType
from typing import Any

import httpx

from .. import _errors as errors
from .. import _protocol as proto
from .._client_async import async_send
from .._options import (
    CLIENT_LIMITS,
    DEFAULT_LIVE_READ_TIMEOUT,
    AsyncOnError,
    Headers,
    make_timeout,
    merge,
)
from .._protocol import OFFSET_BEGINNING, HttpRequest
from .._reading._delivery import response_args
from .._reading._response_async import AsyncStreamResponse
from .._reading._session import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_EVENT_BYTES,
)
from .._retry import RetryPolicy
from .._transport import async_read_transport
from .._values import AppendResult, HeadResult, LiveMode
from ._handle import HandleBase


class AsyncDurableStream(HandleBase):
    """A handle on one stream: create, append, read, close, delete and fork it.

    The handle keeps one HTTP client (connections are reused); close the handle, or use it as a
    context manager, to release it. A client passed in is the caller's to close.
    """

    def __init__(
        self,
        url: str,
        *,
        content_type: str | None = None,
        headers: Headers | None = None,
        params: Headers | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
    ) -> None:
        self._configure(url, content_type, headers, params, timeout, retry)
        self._verify = verify
        self._owns_client = client is None
        self._client = (
            client if client is not None else httpx.AsyncClient(verify=verify, limits=CLIENT_LIMITS)
        )

    async def __aenter__(self) -> AsyncDurableStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the HTTP client (if the handle made it). The stream itself stays open; the
        handle takes no more calls (:class:`HandleClosedError`)."""
        self._closed = True
        if self._owns_client:
            await self._client.aclose()

    # -- construction -------------------------------------------------------------------------

    @classmethod
    async def create(
        cls,
        url: str,
        *,
        content_type: str = proto.DEFAULT_CONTENT_TYPE,
        ttl_seconds: int | None = None,
        expires_at: _dt.datetime | str | None = None,
        data: Any = None,
        closed: bool = False,
        headers: Headers | None = None,
        params: Headers | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
    ) -> AsyncDurableStream:
        """Create the stream (or accept an identical existing one) and return its handle.

        ``data`` is an optional first message (JSON streams) or first bytes; ``closed=True``
        creates it already closed. A stream with another configuration raises
        :class:`StreamExistsError`. ``handle.created`` says whether the stream is new."""
        handle = cls(
            url,
            content_type=content_type,
            headers=headers,
            params=params,
            client=client,
            timeout=timeout,
            retry=retry,
            verify=verify,
        )
        try:
            req = handle._create_request(ttl_seconds, expires_at, data, closed)
            handle.created = proto.create_result(*await handle._send(req), url=url).created
        except BaseException:
            await handle.aclose()
            raise
        return handle

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        headers: Headers | None = None,
        params: Headers | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
    ) -> AsyncDurableStream:
        """A handle on an existing stream; raises :class:`StreamNotFoundError` if there is none."""
        handle = cls(
            url,
            headers=headers,
            params=params,
            client=client,
            timeout=timeout,
            retry=retry,
            verify=verify,
        )
        try:
            await handle.head()
        except BaseException:
            await handle.aclose()
            raise
        return handle

    # -- operations ---------------------------------------------------------------------------

    async def _send(self, req: HttpRequest) -> tuple[int, dict[str, str], bytes]:
        self._check_open()
        return await async_send(
            self._client, req, self._headers, self._params, self._timeout, self._retry
        )

    async def head(self) -> HeadResult:
        """The stream's metadata: tail offset, content type, TTL, expiry, closed, ETag."""
        status, headers, _ = await self._send(HttpRequest("HEAD", self.url))
        result = proto.head_result(status, headers, url=self.url)
        self._learn_content_type(result.content_type)
        return result

    async def _know_content_type(self) -> None:
        if self.content_type is None:
            await self.head()

    async def append(self, data: Any, *, seq: str | None = None) -> AppendResult:
        """Append one message (JSON streams: any JSON value, a list stays one message; str or
        bytes are taken as serialized JSON) or raw bytes/str to other streams."""
        await self._know_content_type()
        answer = await self._send(self._append_request(data, seq=seq))
        return proto.append_result(*answer, url=self.url, seq=seq is not None)

    async def close_stream(self, data: Any = None) -> AppendResult:
        """Close the stream, optionally appending ``data`` as its final message, atomically.
        Closing a closed stream again (without data) succeeds. ``offset`` is the final offset."""
        if data is not None:
            await self._know_content_type()
        answer = await self._send(self._close_request(data))
        return proto.append_result(*answer, url=self.url, operation="close")

    async def delete(self) -> None:
        """Delete the stream and its data."""
        proto.delete_result(*await self._send(HttpRequest("DELETE", self.url)), url=self.url)

    async def fork(
        self,
        url: str,
        *,
        offset: str | None = None,
        sub_offset: int | None = None,
        ttl_seconds: int | None = None,
        expires_at: _dt.datetime | str | None = None,
    ) -> AsyncDurableStream:
        """Create a stream at ``url`` that inherits this one's data up to ``offset`` (default:
        the tail), plus ``sub_offset`` messages (JSON) or bytes past it. Returns its handle,
        sharing this handle's HTTP client; ``fork.created`` says whether the fork is new
        (an identical fork was there already: False)."""
        self._check_open()
        fork = AsyncDurableStream(url, client=self._client, **self._fork_settings())
        req = self._fork_request(url, offset, sub_offset, ttl_seconds, expires_at)
        status, headers, body = await fork._send(req)
        source_status = None
        if status == 409:
            # Also the answer when the source was deleted: only the source can tell which.
            with suppress(errors.DurableStreamError):
                source_status = (await self._send(HttpRequest("HEAD", self.url)))[0]
        result = proto.fork_result(
            status,
            headers,
            body,
            url=url,
            source=self.url,
            offset=offset,
            source_status=source_status,
        )
        fork.created = result.created
        fork._learn_content_type(result.content_type)
        return fork

    def stream(
        self,
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
        on_error: AsyncOnError | None = None,
    ) -> AsyncStreamResponse:
        """Read this stream; see :func:`astream`. Uses the handle's HTTP client."""
        self._check_open()
        proto.check_headers(headers)
        args = response_args(
            self.url,
            offset=offset,
            live=live,
            cursor=cursor,
            headers=merge(self._headers, headers),
            params=merge(self._params, params),
            timeout=make_timeout(timeout) if timeout is not None else self._timeout,
            live_read_timeout=live_read_timeout,
            retry=retry,
            max_event_bytes=max_event_bytes,
            max_body_bytes=max_body_bytes,
        )
        transport, owns = async_read_transport(
            self.url,
            verify=self._verify,
            user_client=None if self._owns_client else self._client,
            fallback_client=self._client,
        )
        return AsyncStreamResponse(
            transport=transport, owns_transport=owns, on_error=on_error, **args
        )
