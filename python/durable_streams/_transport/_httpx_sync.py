# Generated from _transport/_httpx_async.py by scripts/unasync.py:
# edit that file, then run the script.
"""The httpx transport for sync code: a caller's own
``httpx.Client``, or one of ours where the native transport does not reach."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import closing

import httpx

from .. import _errors as errors
from .._protocol import HttpRequest
from ._exchange import Gathered
from ._failures import transport_error
from ._httpx import NOT_SENT, build_httpx_request, compressed_body_cut_short, lower_headers
from ._interrupt import Interrupt, shut_down


class HttpxReply:
    """An httpx response, seen as an :class:`Reply`."""

    def __init__(
        self,
        http: httpx.Response,
        *,
        url: str,
        offset: str | None,
        interrupt: Interrupt | None = None,
    ) -> None:
        self._http = http
        self._interrupt = interrupt
        if interrupt is not None:
            # httpx shows the socket only once the answer's head is in: a wait for the head
            # ends with the server's answer (a long-poll's timeout at most).
            stream = http.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            interrupt.watch(lambda: shut_down(sock))
        self.status_code = http.status_code
        self.headers = lower_headers(http.headers)
        self._url = url
        self._offset = offset

    def iter_bytes(self) -> Generator[bytes, None, None]:
        """The body as it arrives; one cut short (also inside its compression) raises
        :class:`TransportError`."""
        received = False
        try:
            with closing(self._http.iter_bytes()) as chunks:  # type: ignore[type-var]
                for chunk in chunks:
                    received = received or bool(chunk)
                    yield chunk
        except httpx.HTTPError as exc:
            self._http.close()
            raise transport_error(exc, url=self._url, offset=self._offset) from exc
        if compressed_body_cut_short(self._http, received):
            self._http.close()
            raise errors.TransportError(
                "compressed body ended early", url=self._url, offset=self._offset
            )

    def read(self, limit: int) -> bytes:
        """The whole body, refusing one over ``limit`` bytes."""
        gathered = Gathered(limit, url=self._url, offset=self._offset)
        try:
            for chunk in self.iter_bytes():
                gathered.add(chunk)
        except errors.ProtocolError:
            self._http.close()
            raise
        return gathered.body()

    def close(self) -> None:
        if self._interrupt is not None:
            self._interrupt.unwatch()
        self._http.close()


class HttpxTransport:
    """Requests through an httpx client; ``owns``: closing the transport closes the client."""

    def __init__(self, client: httpx.Client, *, owns: bool) -> None:
        self.client = client
        self._owns = owns

    def send(
        self,
        req: HttpRequest,
        timeout: httpx.Timeout,
        *,
        live: bool = False,
        interrupt: Interrupt | None = None,
    ) -> HttpxReply:
        if self.client.is_closed:  # httpx says RuntimeError; a handle kept it past close
            raise errors.HandleClosedError("the client is closed", url=req.url)
        offset = dict(req.params).get("offset")
        try:
            http = self.client.send(build_httpx_request(self.client, req, timeout), stream=True)
        except httpx.HTTPError as exc:
            failure = transport_error(exc, url=req.url, offset=offset)
            failure.request_sent = not isinstance(exc, NOT_SENT)
            raise failure from exc
        return HttpxReply(http, url=req.url, offset=offset, interrupt=interrupt)

    def saturated(self, url: str) -> bool:
        return False  # httpx's pool does not say; requests wait in it unseen

    def close(self) -> None:
        if self._owns:
            self.client.close()
