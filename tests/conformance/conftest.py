"""Fixtures of the conformance run: a reference server with the upstream runner's settings,
and one adapter process per variant (core implementation x API) for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conformance_runner import VARIANTS, AdapterHolder

from launch import ReferenceServer


@pytest.fixture(scope="session")
def conformance_server() -> Iterator[str]:
    """The reference server as the upstream runner starts it: 500 ms long-poll timeout."""
    with ReferenceServer(long_poll_timeout_ms=500) as server:
        yield server.url


@pytest.fixture(scope="session")
def runner_http() -> Iterator[httpx.Client]:
    """The runner's own HTTP client, for server-append, inject-error and the like."""
    with httpx.Client(timeout=30.0) as client:
        yield client


@pytest.fixture(scope="session", params=VARIANTS, ids=[v.id for v in VARIANTS])
def adapter(request: pytest.FixtureRequest) -> Iterator[AdapterHolder]:
    holder = AdapterHolder(request.param)
    yield holder
    holder.close()
