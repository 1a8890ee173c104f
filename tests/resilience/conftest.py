"""Every resilience test runs once per core implementation; async ones under asyncio and trio."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from durable_streams import _impl

# Both cores unless the environment narrows it (a pure-only install runs with "pure"); a
# missing native core then fails the "native" runs rather than skipping them.
IMPLEMENTATIONS = os.environ.get("DURABLE_STREAMS_TEST_IMPLS", "native,pure").split(",")


@pytest.fixture(params=IMPLEMENTATIONS, autouse=True)
def core_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = _impl.IMPLEMENTATION
    _impl.use(request.param)
    yield request.param
    _impl.use(previous)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
