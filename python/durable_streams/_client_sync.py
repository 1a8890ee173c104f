# Generated from _client_async.py by scripts/unasync.py:
# edit that file, then run the script.
"""Sending one request: the caller's headers
and params evaluated, resent after a transient failure where resending cannot apply it twice,
the whole answer returned. Handles and subscriptions send their requests through it."""

from __future__ import annotations

import httpx

from . import _errors as errors
from . import telemetry
from ._flavours import (
    resolve_sync,
    sleep,
)
from ._log import retrying
from ._options import (
    Headers,
    with_dynamic,
)
from ._protocol import HttpRequest
from ._retry import RetryPolicy, RetryState, delay_after_status, delay_after_transport_error
from ._transport._failures import transport_error
from ._transport._httpx import build_httpx_request, lower_headers


def send(
    client: httpx.Client,
    req: HttpRequest,
    headers: Headers | None,
    params: Headers | None,
    timeout: httpx.Timeout,
    retry: RetryPolicy,
) -> tuple[int, dict[str, str], bytes]:
    """One request with ``headers`` and ``params`` (values may be callables) added, resent
    after transient failures where that cannot apply it twice; the answer's status,
    lower-cased headers and body."""
    if client.is_closed:
        raise errors.HandleClosedError(
            "the HTTP client is closed: the handle it belongs to (or the one this was forked "
            "or made from) was closed",
            url=req.url,
        )
    attempts = RetryState(retry)
    while True:
        fresh = with_dynamic(req, resolve_sync(headers, headers=True), resolve_sync(params))
        otel = telemetry.active
        span = None
        if otel is not None:
            fresh, span = otel.request(None, fresh, attempts.attempts + 1)
        try:
            http = client.send(build_httpx_request(client, fresh, timeout))
        except httpx.HTTPError as exc:
            failure = transport_error(exc, url=req.url)
            if span is not None:
                span.failed(failure)
            delay = delay_after_transport_error(attempts, req, exc)
            if delay is None:
                raise failure from exc
            retrying(
                req.method, req.url, failure, attempts.attempts, delay, telemetry.operation_of(req)
            )
            sleep(delay)
            continue
        except BaseException as exc:  # cancelled, or a bug: the span still ends
            if span is not None:
                span.failed(exc)
            raise
        answer_headers = lower_headers(http.headers)
        if span is not None:
            span.answered(http.status_code, answer_headers)
        delay = delay_after_status(attempts, req, http.status_code, answer_headers)
        if delay is None:
            return http.status_code, answer_headers, http.content
        retrying(
            req.method,
            req.url,
            f"status {http.status_code}",
            attempts.attempts,
            delay,
            telemetry.operation_of(req),
        )
        sleep(delay)
