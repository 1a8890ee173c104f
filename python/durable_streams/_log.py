"""What durable_streams tells the ``durable_streams`` logger (stdlib :mod:`logging`; the
library installs no handler, so nothing shows until the application configures logging).

Retries are INFO for the first two attempts of a run and WARNING after, so an operator at
WARNING sees a server that keeps failing and not every blip; a producer moving to a new epoch
(fenced, or a batch whose fate is unknown) is WARNING; a batch given up is WARNING too (the
caller also gets it as an error). Messages name streams by URL without query string or user
info, and never carry headers: credentials stay out of logs.
"""

from __future__ import annotations

import logging

from . import telemetry
from ._errors import redact_url

__all__ = ["log", "retrying"]

log = logging.getLogger("durable_streams")

# Attempts of one run logged at INFO before retries show at WARNING.
QUIET_ATTEMPTS = 2


def retrying(
    what: str,
    url: str | None,
    error: BaseException | str,
    attempt: int,
    delay: float,
    operation: str,
) -> None:
    """``what`` on ``url`` failed with ``error`` (attempt ``attempt``); retried in ``delay`` s.
    ``operation`` names it for telemetry (see :mod:`durable_streams.telemetry`)."""
    otel = telemetry.active
    if otel is not None:
        otel.retries.add(1, {"durable_streams.operation": operation})
    level = logging.INFO if attempt <= QUIET_ATTEMPTS else logging.WARNING
    if log.isEnabledFor(level):
        log.log(
            level,
            "%s %s failed (attempt %d): %s; retrying in %.2f s",
            what,
            redact_url(url),
            attempt,
            error,
            delay,
        )
