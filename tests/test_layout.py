"""The package's shape holds: every public name imports and says where users find it, and the
modules import one another without a cycle, ``TYPE_CHECKING`` imports included."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import durable_streams

PACKAGE = Path(durable_streams.__file__).resolve().parent
# The documented submodules, each with the public names it owns.
SUBMODULES = [
    "state",
    "generations",
    "partitions",
    "proxy",
    "webhooks",
    "telemetry",
    "testing",
    "server",
]
# The names of the official client's README, which must keep working as they are.
OFFICIAL = ["stream", "astream", "DurableStream", "AsyncDurableStream", "IdempotentProducer"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports, at any depth of its code."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("durable_streams"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and node.module.startswith("durable_streams"):
                module = node.module
            else:
                continue
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.add(candidate if _path_of(candidate) is not None else module)
    return {m for m in found if m != name}


def _path_of(module: str) -> Path | None:
    base = PACKAGE.parent.joinpath(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.exists():
            return path
    return None


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        graph[_module_name(path)] = {m for m in _imports(path) if _path_of(m) is not None}
    return graph


def _defined_here(value: object) -> bool:
    """A class or function (not a type alias such as ``LiveMode``)."""
    return isinstance(value, type) or inspect.isfunction(value)


def test_public_names_import_and_name_their_public_module() -> None:
    assert set(OFFICIAL) <= set(durable_streams.__all__)
    private = []
    for name in durable_streams.__all__:
        value = getattr(durable_streams, name)
        if _defined_here(value) and value.__module__ != "durable_streams":
            private.append((name, value.__module__))
    for submodule in SUBMODULES:
        module = importlib.import_module(f"durable_streams.{submodule}")
        for name in getattr(module, "__all__", []):
            value = getattr(module, name)
            # A name the package's top level also exports is known by that.
            expected = "durable_streams" if name in durable_streams.__all__ else module.__name__
            if _defined_here(value) and value.__module__ != expected:
                private.append((f"{submodule}.{name}", value.__module__))
    assert private == []


def test_errors_import_nothing_of_the_package() -> None:
    """The Rust binding and the pure core import the errors module by name, early."""
    assert _imports(PACKAGE / "_errors.py") == set()


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            # A package imports its own modules to re-export them: that is not a cycle.
            if node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


@pytest.mark.parametrize("private", ["_shared", "_wire", "_exchange", "_impl", "_read"])
def test_the_old_grab_bags_are_gone(private: str) -> None:
    assert _path_of(f"durable_streams.{private}") is None
