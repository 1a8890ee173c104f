"""Fault injection for tests: ``POST /_test/inject-error`` arms a fault on a path for its
next requests, ``DELETE /_test/inject-error`` disarms them all. The JSON body takes the
reference server's fields: ``path`` (required), ``count``, ``method``, ``probability``, and at
least one of ``status`` (with ``retryAfter``), ``delayMs`` (with ``jitterMs``),
``dropConnection``, ``truncateBodyBytes``, ``corruptBody``, ``injectSseEvent``
(``{"eventType", "data"}``). Only a server started with ``fault_injection=True`` has it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

__all__ = ["FAULT_PATH", "Fault", "Faults"]

FAULT_PATH = "/_test/inject-error"


@dataclass
class Fault:
    count: int = 1
    method: str | None = None
    probability: float | None = None
    status: int | None = None
    retry_after: int | None = None
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    drop: bool = False
    truncate: int | None = None
    corrupt: bool = False
    sse_event: tuple[str, str] | None = None

    def mangle(self, body: bytes) -> bytes:
        if self.truncate is not None:
            body = body[: self.truncate]
        if self.corrupt and body:
            damaged = bytearray(body)
            damaged[0:2] = b"XY"[: len(damaged)]
            for _ in range(max(1, len(damaged) // 10)):
                damaged[random.randrange(len(damaged))] = ord("Z")
            body = bytes(damaged)
        return body

    @property
    def delay(self) -> float:
        return (self.delay_ms + random.random() * self.jitter_ms) / 1000


def _number(config: dict[str, Any], key: str, *, minimum: float = 0) -> float | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ValueError(f"{key} must be a number >= {minimum}")
    return float(value)


class Faults:
    def __init__(self) -> None:
        self._armed: dict[str, Fault] = {}

    def clear(self) -> None:
        self._armed.clear()

    def arm(self, body: bytes) -> None:
        """Arm the fault a request body describes; ValueError says what is wrong with it."""
        config = json.loads(body)
        if not isinstance(config, dict):
            raise ValueError("the body must be a JSON object")
        path = config.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError("missing required field: path")
        status = _number(config, "status", minimum=100)
        delay = _number(config, "delayMs")
        truncate = _number(config, "truncateBodyBytes")
        event = config.get("injectSseEvent")
        sse_event = None
        if event is not None:
            if not isinstance(event, dict) or not isinstance(event.get("eventType"), str):
                raise ValueError("injectSseEvent must be {eventType, data}")
            sse_event = (event["eventType"], str(event.get("data", "")))
        drop, corrupt = bool(config.get("dropConnection")), bool(config.get("corruptBody"))
        effects = (status, delay, truncate, sse_event)
        if all(effect is None for effect in effects) and not (drop or corrupt):
            raise ValueError(
                "give at least one of status, delayMs, dropConnection, "
                "truncateBodyBytes, corruptBody, injectSseEvent"
            )
        if status is not None and status > 599:
            raise ValueError("status must be in 100..599")
        method = config.get("method")
        retry_after = _number(config, "retryAfter")
        self._armed[path] = Fault(
            count=int(_number(config, "count", minimum=1) or 1),
            method=method.upper() if isinstance(method, str) else None,
            probability=_number(config, "probability"),
            status=None if status is None else int(status),
            retry_after=None if retry_after is None else int(retry_after),
            delay_ms=delay or 0.0,
            jitter_ms=_number(config, "jitterMs") or 0.0,
            drop=drop,
            truncate=None if truncate is None else int(truncate),
            corrupt=corrupt,
            sse_event=sse_event,
        )

    def take(self, path: str, method: str) -> Fault | None:
        """The fault armed for this request, if any; each use counts down."""
        fault = self._armed.get(path)
        if fault is None or (fault.method is not None and fault.method != method):
            return None
        if fault.probability is not None and random.random() > fault.probability:
            return None
        fault.count -= 1
        if fault.count <= 0:
            del self._armed[path]
        return fault
