"""Both cores, side by side: every test here runs against the native and the pure one."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest


@pytest.fixture(params=["native", "pure"])
def core(request: pytest.FixtureRequest) -> ModuleType:
    """The core under test; the native one must import (a failure here fails the test)."""
    name = "durable_streams._core" if request.param == "native" else "durable_streams._pure"
    return importlib.import_module(name)


@pytest.fixture(scope="session")
def native() -> ModuleType:
    return importlib.import_module("durable_streams._core")


@pytest.fixture(scope="session")
def pure() -> ModuleType:
    return importlib.import_module("durable_streams._pure")
