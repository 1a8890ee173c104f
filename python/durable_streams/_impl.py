"""Chooses the implementation of the core, once, at import.

The native extension ``durable_streams._core`` is used unless the environment sets
``DURABLE_STREAMS_PURE_PYTHON=1`` or the extension cannot be imported; then the pure-Python
twin ``durable_streams._pure`` serves. Everything else reaches the core through ``core``.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["IMPLEMENTATION", "core", "use"]


def _load(name: str) -> ModuleType:
    if name == "native":
        from . import _core

        return _core
    from . import _pure

    return _pure


def _choose() -> tuple[str, ModuleType]:
    if os.environ.get("DURABLE_STREAMS_PURE_PYTHON") == "1":
        return "pure", _load("pure")
    try:
        return "native", _load("native")
    except ImportError:
        return "pure", _load("pure")


IMPLEMENTATION, core = _choose()


def use(name: str) -> None:
    """Switch the core for code that runs from now on (``"native"`` or ``"pure"``); for tests."""
    global IMPLEMENTATION, core
    if name not in ("native", "pure"):
        raise ValueError(f"unknown implementation {name!r}; expected 'native' or 'pure'")
    core = _load(name)
    IMPLEMENTATION = name
