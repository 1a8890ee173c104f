"""Sync twins are generated from the async modules: the generator's rules hold, and every
committed ``X_sync.py`` is exactly what they make of its ``X_async.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "unasync.py"


@pytest.fixture(scope="module")
def unasync() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _with_prose(unasync: ModuleType, body: str) -> str:
    return "\n".join(async_text for async_text, _ in unasync.READS_PROSE) + "\n" + body


def test_async_words_become_sync_ones(unasync: ModuleType) -> None:
    body = (
        "async def go(r: AsyncReply) -> None:\n"
        "    async with aclosing(r.aiter_bytes()) as chunks:\n"
        "        async for chunk in chunks:\n"
        "            await async_sleep(await resolve_async(chunk))\n"
        "    await r.aclose()\n"
        "    raise StopAsyncIteration\n"
    )
    out = unasync.unasync(_with_prose(unasync, body), unasync.READS_PROSE)
    assert out.startswith(unasync.HEADER.format(source="_async.py"))
    assert out.endswith(
        "def go(r: Reply) -> None:\n"
        "    with closing(r.iter_bytes()) as chunks:\n"
        "        for chunk in chunks:\n"
        "            sleep(resolve_sync(chunk))\n"
        "    r.close()\n"
        "    raise StopIteration\n"
    )
    for _, sync_text in unasync.READS_PROSE:
        assert sync_text in out


def test_a_missing_sentence_of_prose_is_an_error(unasync: ModuleType) -> None:
    first, _ = unasync.READS_PROSE[0]
    with pytest.raises(unasync.Stale, match="update its prose table"):
        unasync.unasync(_with_prose(unasync, "x = 1\n").replace(first, ""), unasync.READS_PROSE)


def test_an_async_word_left_over_is_an_error(unasync: ModuleType) -> None:
    with pytest.raises(unasync.Stale, match=r"line \d+ of the sync text still says 'anyio'"):
        unasync.unasync(_with_prose(unasync, "import anyio\n"), unasync.READS_PROSE)


def test_every_async_module_has_its_twin_or_a_threaded_one(unasync: ModuleType) -> None:
    for path in unasync.PACKAGE.rglob("*_async.py"):
        stem = path.name.removesuffix("_async.py")
        twins = [path.with_name(f"{stem}_sync.py"), path.with_name(f"{stem}_threaded.py")]
        assert sum(twin.exists() for twin in twins) == 1, path


def test_committed_sync_twins_are_generated(unasync: ModuleType) -> None:
    stale = []
    for source, target, prose in unasync.pairs():
        committed = (unasync.PACKAGE / target).read_text(encoding="utf-8")
        if committed != unasync.generate(source, target, prose):
            stale.append(target)
    assert stale == []
