"""Every API test runs once per core implementation, and async ones under asyncio and trio."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from durable_streams import _impl

# Both cores by default; a pure-only install (the py3-none-any wheel) runs with "pure". A
# missing native core is then a failure of the "native" runs, never a silent skip.
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
