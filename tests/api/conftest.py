"""Every API test runs once per core implementation, and async ones under asyncio and trio."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from durable_streams import _impl


@pytest.fixture(params=["native", "pure"], autouse=True)
def core_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = _impl.IMPLEMENTATION
    _impl.use(request.param)
    yield request.param
    _impl.use(previous)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
