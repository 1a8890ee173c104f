"""The durable proxy's client for async code: :func:`adurable_fetch` sends a request through
the proxy and reads its answer as a resumable stream, remembering the stream per request id."""

from __future__ import annotations

import json as json_module
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from .. import _errors as errors
from .. import _protocol as proto
from .._protocol import OFFSET_BEGINNING
from .._reading._response_async import AsyncStreamResponse, astream
from .._values import LiveMode
from ._store import ProxiedRequest, RequestStore

__all__ = ["AsyncProxyResponse", "adurable_fetch"]

# What a remembered stream answers when it is no longer there to be read: make a new one.
_GONE = frozenset({401, 404, 410})


class AsyncProxyResponse:
    """A proxied upstream answer, read from its stream: iterate it for the upstream body's
    bytes, chunk by chunk, up to the end of the upstream body (reconnecting from where it
    left off when a connection drops). ``resumed`` says whether the stream was remembered
    from an earlier call rather than made by this one; ``abort()`` stops the upstream."""

    def __init__(
        self, reader: AsyncStreamResponse, proxied: ProxiedRequest, resumed: bool, timeout: float
    ) -> None:
        self._reader = reader
        self.stream_url = proxied.stream_url
        self.expires = proxied.expires
        self.upstream_content_type = proxied.upstream_content_type
        self.resumed = resumed
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.stream_id} resumed={self.resumed}>"

    @property
    def stream_id(self) -> str:
        """The proxy's id of the stream (the last segment of ``stream_url``)."""
        return urlsplit(self.stream_url).path.rsplit("/", 1)[-1]

    @property
    def offset(self) -> str:
        """The stream offset after the bytes handed out so far (pass it as ``offset`` to
        read on from there later)."""
        return self._reader.offset

    async def __aenter__(self) -> AsyncProxyResponse:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.aiter_bytes()

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The upstream body, chunk by chunk, to its end."""
        return self._reader.iter_bytes()

    async def aread(self) -> bytes:
        """The rest of the upstream body, whole (to its end, not to what is there now)."""
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def abort(self) -> None:
        """Ask the proxy to stop the upstream request (``PATCH ...&action=abort``); what was
        received until then stays readable, and the stream ends there."""
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            joiner = "&" if urlsplit(self.stream_url).query else "?"
            answer = await client.patch(f"{self.stream_url}{joiner}action=abort")
        if answer.status_code >= 300:
            raise _proxy_error(answer, self.stream_url)

    async def aclose(self) -> None:
        """Close the connection (the stream and the upstream request go on)."""
        await self._reader.aclose()


def _proxy_error(answer: httpx.Response, url: str) -> errors.ProxyError:
    code = None
    message = answer.text[: proto.ERROR_BODY_LIMIT]
    try:
        detail = answer.json()["error"]
        code, message = detail["code"], detail["message"]
    except (ValueError, KeyError, TypeError):
        pass
    return errors.ProxyError(
        f"the proxy refused: {message}",
        code=code,
        url=url,
        status=answer.status_code,
        body=answer.text[: proto.ERROR_BODY_LIMIT],
    )


def _upstream_error(answer: httpx.Response, url: str) -> errors.UpstreamError:
    status = int(answer.headers.get("upstream-status", "0") or 0)
    return errors.UpstreamError(
        f"the upstream answered {status}",
        upstream_status=status,
        content=answer.content,
        content_type=answer.headers.get("content-type"),
        url=url,
        status=answer.status_code,
        body=answer.text[: proto.ERROR_BODY_LIMIT],
    )


def _proxied(location: str, answer: httpx.Response) -> ProxiedRequest:
    expires = parse_qs(urlsplit(location).query).get("expires", [""])[0]
    if not expires.isdigit():
        raise errors.ProtocolError("the proxy's Location has no expiry", url=location)
    return ProxiedRequest(location, int(expires), answer.headers.get("upstream-content-type"))


async def _open(
    proxied: ProxiedRequest, resumed: bool, offset: str, live: LiveMode, timeout: float
) -> AsyncProxyResponse:
    reader = astream(proxied.stream_url, offset=offset, live=live)
    await reader.__aenter__()
    return AsyncProxyResponse(reader, proxied, resumed, timeout)


async def adurable_fetch(
    proxy_url: str,
    url: str,
    *,
    secret: str,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    content: bytes | str | None = None,
    json: Any = None,
    request_id: str | None = None,
    store: RequestStore | None = None,
    offset: str = OFFSET_BEGINNING,
    live: LiveMode = True,
    timeout: float = 90.0,
) -> AsyncProxyResponse:
    """Send ``method url`` through the durable proxy at ``proxy_url`` (its ``POST`` route,
    e.g. ``https://proxy.example/v1/proxy``) and read the answer as a resumable stream.

    ``headers`` and the body (``content``, or ``json`` encoded) are the upstream request's;
    an ``Authorization`` among them goes upstream (as ``Upstream-Authorization``), while
    ``secret`` is the proxy's service credential. With a ``request_id`` and a ``store``, the
    stream that answers the request is remembered: a later call with the same id (in this
    process or after a restart) reads that stream again, from ``offset``, instead of asking
    the upstream twice; a stream gone or expired is forgotten and the request sent anew.

    An upstream error status raises :class:`UpstreamError` (with the upstream's status and
    body); a refusal by the proxy, :class:`ProxyError` with its ``code``. ``timeout`` bounds
    the proxy's answer (which waits for the upstream's headers) and an abort.
    """
    proto.check_url(proxy_url)
    proxy_url = proxy_url.rstrip("/")
    if (request_id is None) != (store is None):
        raise errors.UsageError("request_id and store go together")
    if store is not None and request_id is not None:
        known = store.get(proxy_url, request_id)
        if known is not None and not known.expired():
            try:
                return await _open(known, True, offset, live, timeout)
            except errors.ResponseError as exc:
                if exc.status not in _GONE:
                    raise
            store.remove(proxy_url, request_id)
    sent = {"Upstream-URL": url, "Upstream-Method": method.upper()}
    for name, value in (headers or {}).items():
        lower = name.lower()
        if lower == "authorization":
            sent["Upstream-Authorization"] = value
        elif lower != "host":
            sent[name] = value
    sent["Authorization"] = f"Bearer {secret}"
    body: bytes | None = content.encode() if isinstance(content, str) else content
    if json is not None:
        body = json_module.dumps(json).encode()
        sent.setdefault("Content-Type", "application/json")
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            answer = await client.post(proxy_url, headers=sent, content=body)
    except httpx.TimeoutException as exc:
        raise errors.DeadlineExceededError(
            f"the proxy did not answer within {timeout:g} s", url=proxy_url
        ) from exc
    except httpx.HTTPError as exc:
        raise errors.TransportError(
            f"the proxy could not be reached: {exc}", url=proxy_url
        ) from exc
    if answer.status_code == 502 and "upstream-status" in answer.headers:
        raise _upstream_error(answer, proxy_url)
    if answer.status_code != 201:
        raise _proxy_error(answer, proxy_url)
    location = answer.headers.get("location")
    if not location:
        raise errors.ProtocolError("the proxy answered 201 without a Location", url=proxy_url)
    proxied = _proxied(urljoin(proxy_url + "/", location), answer)
    if store is not None and request_id is not None:
        store.put(proxy_url, request_id, proxied)
    return await _open(proxied, False, OFFSET_BEGINNING, live, timeout)
