"""Arming the test servers' fault injection (``POST /_test/inject-error``, on the reference
server and on the embedded one with ``fault_injection=True``)."""

from __future__ import annotations

import httpx


def inject_status(base: str, path: str, *, status: int, count: int, method: str) -> None:
    """The next ``count`` ``method`` requests to ``path`` on ``base`` answer ``status``."""
    answer = httpx.post(
        f"{base}/_test/inject-error",
        json={"path": path, "status": status, "count": count, "method": method},
    )
    assert answer.status_code in (200, 204), answer.text


def inject_delay(base: str, path: str, *, delay_ms: int, count: int, method: str) -> None:
    """The next ``count`` ``method`` requests to ``path`` on ``base`` are answered after
    ``delay_ms`` milliseconds."""
    answer = httpx.post(
        f"{base}/_test/inject-error",
        json={"path": path, "delayMs": delay_ms, "count": count, "method": method},
    )
    assert answer.status_code in (200, 204), answer.text
