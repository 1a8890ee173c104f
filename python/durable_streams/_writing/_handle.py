"""What a stream handle is, apart from I/O: its settings and the request each operation sends.

:class:`DurableStream` and :class:`AsyncDurableStream` inherit this and add only the sending.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from .. import _errors as errors
from .. import _protocol as proto
from .._options import Headers, make_timeout
from .._protocol import HttpRequest
from .._retry import RetryPolicy, RetryState, action_values, note_retries_spent, replace_headers
from .._values import STOP, ErrorDecision, RetryAction

__all__ = ["HandleBase", "may_have_been_applied"]

# What an append's own headers may not set: what its parameters and the protocol say.
_RESERVED = frozenset(
    {
        "content-type",
        "content-length",
        "transfer-encoding",
        "host",
        proto.H_SEQ,
        proto.H_CLOSED,
        proto.H_PRODUCER_ID,
        proto.H_PRODUCER_EPOCH,
        proto.H_PRODUCER_SEQ,
    }
)


def check_own_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """One request's own headers (an append's ``headers=``): text that can be sent, none of
    the headers the protocol sets itself."""
    if not headers:
        return {}
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(value, str):
            raise errors.UsageError(
                f"an append's header {name!r} must be a str, not {type(value).__name__}"
            )
        proto.check_header(name, value)
        if name.lower() in _RESERVED:
            raise errors.UsageError(
                f"{name!r} cannot be an append's own header: the client sets it (use the "
                "stream's content type, seq=, close_stream() or a producer instead)"
            )
        out[name] = value
    return out


def may_have_been_applied(exc: errors.DurableStreamError) -> bool:
    """Whether the request that failed with ``exc`` may have been applied: anything but a
    failure before it all went out, or an answer from the server that says it was not (a 4xx,
    429, 500, 503). A gateway's 502 or 504, or an answer that cannot be read, say nothing."""
    if isinstance(exc, errors.TransportError):
        return exc.request_sent
    if isinstance(exc, errors.ResponseError) and exc.status is not None:
        return not (400 <= exc.status < 500 or exc.status in (500, 503))
    return True


class HandleBase:
    url: str
    _content_type: str | None = None
    _json = False  # whether content_type is JSON (asked at every append, so kept)
    # After create() or fork(): whether the stream was new (201) rather than an identical
    # one (200).
    created: bool | None = None
    _closed = False

    def _configure(
        self,
        url: str,
        content_type: str | None,
        headers: Headers | None,
        params: Headers | None,
        timeout: float | httpx.Timeout | None,
        retry: RetryPolicy | None,
    ) -> None:
        self.url = proto.check_url(url)
        proto.check_headers(headers)
        self.content_type = content_type
        self._headers = headers
        self._params = params
        self._timeout = make_timeout(timeout)
        self._retry = retry or RetryPolicy()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {errors.redact_url(self.url)} "
            f"content_type={self.content_type!r}>"
        )

    def _check_open(self) -> None:
        if self._closed:
            raise errors.HandleClosedError(
                "the stream handle is closed: open a new one (close() released its HTTP client)",
                url=self.url,
            )

    def _fork_settings(self) -> dict[str, Any]:
        """The keyword arguments that give a fork this handle's settings."""
        return {
            "content_type": self.content_type,
            "headers": self._headers,
            "params": self._params,
            "timeout": self._timeout,
            "retry": self._retry,
            "on_error": self._on_error,
        }

    _on_error: Any = None

    def _requested_delay(
        self,
        exc: errors.DurableStreamError,
        decision: ErrorDecision,
        req: HttpRequest,
        run: RetryState,
    ) -> tuple[float, HttpRequest] | None:
        """Seconds before sending ``req`` again because the ``on_error`` hook asked to, and
        the request to send (the hook's headers and params then stay the handle's, and beat
        the request's own), or ``None`` to raise ``exc``."""
        if decision is None or decision is STOP:
            return None
        if not isinstance(decision, RetryAction):
            raise TypeError(
                f"on_error must return None, a RetryAction or STOP, not {decision!r}"
            ) from exc
        headers, params = action_values(decision)
        if not req.idempotent and may_have_been_applied(exc):
            what = "append" if req.method == "POST" else "request"
            exc.message = (
                f"{exc.message}; on_error asked for a retry, but this {what} may have been "
                "stored, so it was not sent again (read the stream to see whether it was; an "
                "IdempotentProducer's appends are safe to retry)"
            )
            exc.args = (exc.message,)
            return None
        retry_after = None
        if isinstance(exc, (errors.RateLimitedError, errors.ServerError)):
            retry_after = exc.retry_after
        delay = run.next_delay(retry_after, requested=True)
        if delay is None:
            note_retries_spent(exc, run)
            return None
        if headers:
            self._headers = replace_headers(self._headers or {}, headers)
            req = dataclasses.replace(req, headers=replace_headers(req.headers, headers))
        if params:
            self._params = {**(self._params or {}), **params}
            kept = [(k, v) for k, v in req.params if k not in params]
            req = dataclasses.replace(req, params=kept)
        return delay, req

    @property
    def content_type(self) -> str | None:
        """The stream's content type, once known (given, or learnt from the server)."""
        return self._content_type

    @content_type.setter
    def content_type(self, content_type: str | None) -> None:
        self._content_type = content_type
        self._json = proto.is_json_content_type(content_type)

    def _learn_content_type(self, content_type: str | None) -> None:
        if content_type:
            self.content_type = content_type

    def _check_source(self, source: object) -> None:
        """Refuse what iterates but is one value: append_stream would write its characters,
        bytes or keys one by one."""
        if isinstance(source, (str, bytes, bytearray, memoryview, Mapping)):
            raise errors.UsageError(
                f"append_stream takes an iterable of items, not one {type(source).__name__}: "
                "use append() for one value, or pass [value]"
            )

    def _body(self, data: Any) -> bytes:
        return proto.encode_append_body(data, json_mode=self._json)

    def _create_request(
        self,
        ttl_seconds: int | None,
        expires_at: _dt.datetime | str | None,
        data: Any,
        closed: bool,
    ) -> HttpRequest:
        return proto.create_request(
            self.url,
            content_type=self.content_type,
            ttl_seconds=ttl_seconds,
            expires_at=expires_at,
            body=None if data is None else self._body(data),
            closed=closed,
            headers={},
        )

    def _append_request(
        self, data: Any, *, seq: str | None = None, headers: Mapping[str, str] | None = None
    ) -> HttpRequest:
        """The POST appending ``data`` (``None`` is JSON null here), with its own ``headers``
        (checked). ``content_type`` must be known (the drivers ask HEAD first when it is not)."""
        return proto.append_request(
            self.url,
            self._body(data),
            content_type=self.content_type or proto.DEFAULT_CONTENT_TYPE,
            headers=check_own_headers(headers),
            seq=seq,
        )

    def _batch_request(self, bodies: list[bytes]) -> HttpRequest:
        """One POST carrying several appends' bodies, in order: on JSON streams their messages
        in one array, on others their bytes one after another."""
        if len(bodies) == 1:
            body = bodies[0]
        elif self._json:
            body = b"[" + b",".join([b[1:-1] for b in bodies]) + b"]"
        else:
            body = b"".join(bodies)
        return proto.append_request(
            self.url,
            body,
            content_type=self.content_type or proto.DEFAULT_CONTENT_TYPE,
            headers={},
        )

    def _close_request(self, final: Any, headers: Mapping[str, str] | None = None) -> HttpRequest:
        """The POST closing the stream, appending ``final`` first unless it is ``None``."""
        return proto.append_request(
            self.url,
            b"" if final is None else self._body(final),
            content_type=self.content_type or proto.DEFAULT_CONTENT_TYPE,
            headers=check_own_headers(headers),
            close=True,
        )

    def _fork_request(
        self,
        url: str,
        offset: str | None,
        sub_offset: int | None,
        ttl_seconds: int | None,
        expires_at: _dt.datetime | str | None,
    ) -> HttpRequest:
        if offset in (proto.OFFSET_BEGINNING, proto.OFFSET_NOW):
            raise errors.UsageError(
                f"a fork offset is a position the server returned (an append's or head()'s "
                f"offset), not {offset!r}; leave it out to fork at the tail"
            )
        return proto.create_request(
            url,
            content_type=None,
            ttl_seconds=ttl_seconds,
            expires_at=expires_at,
            body=None,
            closed=False,
            headers={},
            forked_from=urlsplit(self.url).path,
            fork_offset=offset,
            fork_sub_offset=sub_offset,
        )
