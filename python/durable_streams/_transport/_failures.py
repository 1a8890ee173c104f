"""Failures on the way, as this package's :class:`TransportError`: what a socket or httpx
raised, with the original as ``__cause__``, and whether a failure shows the request never
reached anything (so it may go again at once)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.abc
import httpx

from .. import _errors as errors

if TYPE_CHECKING:
    pass


def transport_error(
    exc: BaseException, *, url: str, offset: str | None = None
) -> errors.TransportError:
    """Our error for a failure of httpx or of a socket; the original exception stays
    reachable as ``__cause__``."""
    kind = type(exc).__name__
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        err: errors.TransportError = errors.DeadlineExceededError(
            f"request timed out ({kind})", url=url, offset=offset
        )
    else:
        reason = str(exc) or kind
        err = errors.TransportError(f"request failed: {kind}: {reason}", url=url, offset=offset)
    err.__cause__ = exc
    return err


# The decoder's message (both cores) when a connection ends before any byte of a response.
CLOSED_BEFORE_A_RESPONSE = "connection closed before a response"


def nothing_arrived(exc: BaseException) -> bool:
    """Whether a kept connection failed before any byte of an answer: the server had closed
    it while idle, so the request never reached anything and may go again at once."""
    if isinstance(exc, errors.TransportError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, errors.HTTPParseError):
        return exc.message == CLOSED_BEFORE_A_RESPONSE
    return isinstance(
        exc,
        (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, anyio.BrokenResourceError),
    )
