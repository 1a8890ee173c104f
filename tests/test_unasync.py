"""The sync driver is generated from the async one: the generator's rules hold, and the
committed ``_sync.py`` is exactly what they make of ``_async.py``."""

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


@pytest.mark.parametrize("pair", range(3))
def test_committed_sync_drivers_are_generated(unasync: ModuleType, pair: int) -> None:
    source, target, prose = unasync.PAIRS[pair]
    committed = (unasync.PACKAGE / target).read_text(encoding="utf-8")
    assert committed == unasync.generate(source, target, prose)
