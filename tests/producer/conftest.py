"""Producer tests run once per core (``core_impl``); async ones under asyncio and trio."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def each_core(core_impl: str) -> str:
    return core_impl
