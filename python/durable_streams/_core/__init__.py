"""The core: the hot paths (decoding SSE, HTTP/1.1 responses and JSON, building batches,
folding state changes), native or pure, chosen once, at import.

``_native`` is the Rust extension (``rust/``, through PyO3; its stubs are ``_native.pyi``);
``_pure`` is its pure-Python twin, the same classes with the same behaviour and errors. The
native one serves unless the environment sets ``DURABLE_STREAMS_PURE_PYTHON=1`` or it cannot
be imported. Everything else in the package reaches the core through :data:`impl`, looked up
at each use, so that :func:`use` switches it (the test suite runs everything on both).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Final

__all__ = [
    "IMPLEMENTATION",
    "NOT_TAKEN",
    "TAKEN",
    "TAKEN_FILLED",
    "TAKEN_FIRST",
    "impl",
    "load",
    "use",
]

# What BatchBuilder.offer leaves the producer to do (both cores answer these numbers).
TAKEN: Final = 0
TAKEN_FIRST: Final = 1
TAKEN_FILLED: Final = 2
NOT_TAKEN: Final = 3


def load(name: str) -> ModuleType:
    """The core called ``name`` (``"native"`` or ``"pure"``)."""
    if name == "native":
        from . import _native

        return _native
    from . import _pure

    return _pure


def _choose() -> tuple[str, ModuleType]:
    if os.environ.get("DURABLE_STREAMS_PURE_PYTHON") == "1":
        return "pure", load("pure")
    try:
        return "native", load("native")
    except ImportError:
        return "pure", load("pure")


IMPLEMENTATION, impl = _choose()


def use(name: str) -> None:
    """Switch the core for code that runs from now on (``"native"`` or ``"pure"``); for tests."""
    global IMPLEMENTATION, impl
    if name not in ("native", "pure"):
        raise ValueError(f"unknown implementation {name!r}; expected 'native' or 'pure'")
    impl = load(name)
    IMPLEMENTATION = name
