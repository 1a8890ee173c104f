"""When to retry, and how long to wait: exponential backoff with full jitter, bounded."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from ._protocol import HttpRequest, is_transient_status, retry_after_seconds

__all__ = ["RetryPolicy", "RetryState"]


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried.

    ``max_retries`` counts retries after the first attempt (``None``: no limit, for live
    readers); ``deadline`` bounds the whole run of attempts in seconds (``None``: no bound).
    Each wait is drawn uniformly from ``[0, min(max_delay, initial_delay * multiplier**n)]``
    (full jitter), or is the server's ``Retry-After`` when that is longer. ``n`` counts the
    failed attempts in a row that got nothing: a reader's connection cut after the server
    answered and sent data waits at most ``initial_delay``, and the growth starts over.
    """

    max_retries: int | None = 8
    initial_delay: float = 0.1
    max_delay: float = 10.0
    multiplier: float = 2.0
    deadline: float | None = 60.0

    def __post_init__(self) -> None:
        if self.max_retries is not None and (
            isinstance(self.max_retries, bool) or self.max_retries < 0
        ):
            raise ValueError(f"max_retries must be >= 0 or None, not {self.max_retries!r}")
        if not (self.initial_delay > 0 and math.isfinite(self.initial_delay)):
            raise ValueError(f"initial_delay must be > 0, not {self.initial_delay!r}")
        if not (self.max_delay >= self.initial_delay and math.isfinite(self.max_delay)):
            raise ValueError(
                f"max_delay must be >= initial_delay ({self.initial_delay}), not {self.max_delay!r}"
            )
        if not (self.multiplier >= 1 and math.isfinite(self.multiplier)):
            raise ValueError(f"multiplier must be >= 1, not {self.multiplier!r}")
        if self.deadline is not None and not self.deadline > 0:
            raise ValueError(f"deadline must be > 0 or None, not {self.deadline!r}")

    @classmethod
    def live(cls) -> RetryPolicy:
        """The default for live readers: keep trying, never more than 30 s apart."""
        return cls(max_retries=None, max_delay=30.0, deadline=None)

    @classmethod
    def never(cls) -> RetryPolicy:
        return cls(max_retries=0, deadline=None)


class RetryState:
    """One run of attempts under a policy. ``next_delay`` says how long to wait, or ``None``
    when the policy is exhausted; ``reset`` starts over after a success."""

    __slots__ = ("_attempts", "_policy", "_rng", "_started", "_step")

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self._policy = policy
        self._rng = rng or random.Random()
        self._attempts = 0
        # The exponent of the next growing wait: attempts counts every retry of the run, but
        # only attempts that got nothing make the waits grow.
        self._step = 0
        self._started: float | None = None

    @property
    def attempts(self) -> int:
        return self._attempts

    def reset(self) -> None:
        self._attempts = 0
        self._step = 0
        self._started = None

    def next_delay(self, retry_after: float | None = None, *, grow: bool = True) -> float | None:
        """The wait before the next attempt. ``grow=False`` for a failed attempt that still got
        somewhere (the server answered and sent data): its wait is the first step's, and the
        growth starts over. Every attempt counts against ``max_retries`` and ``deadline``."""
        policy = self._policy
        now = time.monotonic()
        if self._started is None:
            self._started = now
        if policy.max_retries is not None and self._attempts >= policy.max_retries:
            return None
        step = self._step if grow else 0
        ceiling = min(policy.max_delay, policy.initial_delay * policy.multiplier**step)
        delay = self._rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if policy.deadline is not None and now + delay - self._started > policy.deadline:
            return None
        self._attempts += 1
        self._step = step + 1 if grow else 0
        return delay


def delay_after_transport_error(
    retry: RetryState, req: HttpRequest, exc: httpx.HTTPError
) -> float | None:
    """How long to wait before resending ``req`` after ``exc``, or ``None`` to give up.

    A request that never reached the server is always safe to send again; one that may have
    been processed only when resending it cannot store anything twice."""
    safe = req.idempotent or isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
    return retry.next_delay() if safe else None


def delay_after_status(
    retry: RetryState, req: HttpRequest, status: int, headers: Mapping[str, str]
) -> float | None:
    """How long to wait before resending ``req`` after a transient status, or ``None``.

    An answer from the server itself (429, 500, 503) says the request was not applied, so even
    appends are resent; a gateway's 502/504 does not (the origin may have stored it)."""
    if not is_transient_status(status):
        return None
    if not (req.idempotent or status in (429, 500, 503)):
        return None
    return retry.next_delay(retry_after_seconds(headers))
