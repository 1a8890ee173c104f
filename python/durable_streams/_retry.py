"""When to retry, and how long to wait: exponential backoff with full jitter, bounded."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from . import _errors as errors
from ._protocol import HttpRequest, is_transient_status, retry_after_seconds
from ._values import RetryAction

__all__ = [
    "RetryPolicy",
    "RetryState",
    "action_values",
    "note_retries_spent",
    "replace_headers",
]


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried.

    ``max_retries`` counts retries after the first attempt (``None``: no limit, for live
    readers); ``deadline`` bounds the whole run of attempts in seconds (``None``: no bound).
    Each wait is drawn uniformly from ``[0, min(max_delay, initial_delay * multiplier**n)]``
    (full jitter), or is the server's ``Retry-After`` when that is longer. ``n`` counts the
    failed attempts in a row that got nothing: a reader's connection cut after the server
    answered and sent data waits at most ``initial_delay``, and the growth starts over.

    ``max_requested_retries`` bounds the retries an ``on_error`` hook asks for (by returning
    a :class:`RetryAction`) of errors that would otherwise be raised, a 401 or a 404 say, in a
    row: a hook that always answers "retry" stops there and the error is raised. They count
    against ``max_retries`` and ``deadline`` as well.
    """

    max_retries: int | None = 8
    initial_delay: float = 0.1
    max_delay: float = 10.0
    multiplier: float = 2.0
    deadline: float | None = 60.0
    max_requested_retries: int = 5

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
        if isinstance(self.max_requested_retries, bool) or not (
            isinstance(self.max_requested_retries, int) and self.max_requested_retries >= 0
        ):
            raise ValueError(
                f"max_requested_retries must be an int >= 0, not {self.max_requested_retries!r}"
            )

    @classmethod
    def live(cls) -> RetryPolicy:
        """The default for live readers: keep trying, never more than 30 s apart."""
        return cls(max_retries=None, max_delay=30.0, deadline=None)

    @classmethod
    def never(cls) -> RetryPolicy:
        return cls(max_retries=0, deadline=None)


# One generator for every run's jitter: a new random.Random() seeds itself from the OS, about
# 15 µs, and runs start with every read and every producer batch.
_JITTER = random.Random()


class RetryState:
    """One run of attempts under a policy. ``next_delay`` says how long to wait, or ``None``
    when the policy is exhausted; ``reset`` starts over after a success."""

    __slots__ = ("_attempts", "_policy", "_requested", "_rng", "_started", "_step")

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self._policy = policy
        self._rng = rng or _JITTER
        self._attempts = 0
        # The exponent of the next growing wait: attempts counts every retry of the run, but
        # only attempts that got nothing make the waits grow.
        self._step = 0
        self._started: float | None = None
        self._requested = 0  # retries an on_error hook asked for, of errors raised otherwise

    @property
    def attempts(self) -> int:
        return self._attempts

    @property
    def policy(self) -> RetryPolicy:
        return self._policy

    @property
    def requested(self) -> int:
        """Retries of this run an ``on_error`` hook asked for."""
        return self._requested

    def reset(self) -> None:
        self._attempts = 0
        self._step = 0
        self._started = None
        self._requested = 0

    def next_delay(
        self, retry_after: float | None = None, *, grow: bool = True, requested: bool = False
    ) -> float | None:
        """The wait before the next attempt. ``grow=False`` for a failed attempt that still got
        somewhere (the server answered and sent data): its wait is the first step's, and the
        growth starts over. Every attempt counts against ``max_retries`` and ``deadline``;
        ``requested=True`` for one an ``on_error`` hook asked for, which also counts against
        ``max_requested_retries``."""
        policy = self._policy
        now = time.monotonic()
        if self._started is None:
            self._started = now
        if policy.max_retries is not None and self._attempts >= policy.max_retries:
            return None
        if requested and self._requested >= policy.max_requested_retries:
            return None
        step = self._step if grow else 0
        ceiling = min(policy.max_delay, policy.initial_delay * policy.multiplier**step)
        delay = self._rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if policy.deadline is not None and now + delay - self._started > policy.deadline:
            return None
        self._attempts += 1
        self._requested += requested
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


def action_values(action: RetryAction) -> tuple[dict[str, str], dict[str, str]]:
    """The headers and params an ``on_error`` hook's :class:`RetryAction` gives, checked."""
    headers = dict(action.headers or {})
    params = dict(action.params or {})
    for name, value in [*headers.items(), *params.items()]:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"RetryAction headers and params are str, not {name!r}: {value!r}")
    return headers, params


def replace_headers(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``new`` in place of the headers of the same names, whatever their case."""
    if not new:
        return dict(base)
    replaced = {name.lower() for name in new}
    return {**{k: v for k, v in base.items() if k.lower() not in replaced}, **new}


def note_retries_spent(exc: errors.DurableStreamError, state: RetryState) -> None:
    """Say in ``exc``'s message that the retries an ``on_error`` hook asked for ran out."""
    done = state.requested
    exc.message = (
        f"{exc.message}; on_error asked for a retry again after {done} "
        f"{'retry' if done == 1 else 'retries'} it had asked for, and the RetryPolicy allows no "
        f"more (max_requested_retries={state.policy.max_requested_retries}, "
        f"max_retries={state.policy.max_retries})"
    )
    exc.args = (exc.message,)
