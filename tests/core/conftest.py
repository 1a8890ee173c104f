"""Both cores, side by side: every test here runs against the native and the pure one."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture(params=["native", "pure"])
def core(request: pytest.FixtureRequest) -> ModuleType:
    """The core under test; the native one must import (a failure here fails the test)."""
    name = (
        "durable_streams._core._native"
        if request.param == "native"
        else "durable_streams._core._pure"
    )
    return importlib.import_module(name)


@pytest.fixture(scope="session")
def native() -> ModuleType:
    return importlib.import_module("durable_streams._core._native")


@pytest.fixture(scope="session")
def pure() -> ModuleType:
    return importlib.import_module("durable_streams._core._pure")


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types, floats to the bit (``-0.0`` is not ``0.0``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a.hex() == b.hex() or (a != a and b != b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)
