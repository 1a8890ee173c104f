"""Every ``python`` code block of the documentation runs, each against a fresh embedded server.

The examples talk to ``http://127.0.0.1:4437`` (what ``durable-streams serve`` listens on);
here that address is replaced by a local server on a free port. Blocks fenced as ``py`` are
fragments shown, not run (a webhook handler, a placeholder token); every ``python`` block
must run as it is.
"""

from __future__ import annotations

import logging
import re
import sys
import types
from pathlib import Path

import pytest

from durable_streams.testing import local_server

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLE_BASE = "http://127.0.0.1:4437"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((page.name, line, match.group(1)))
    return found


EXAMPLES = blocks()


def test_the_docs_have_examples() -> None:
    pages = {page for page, _, _ in EXAMPLES}
    assert {
        "index.md",
        "reading.md",
        "writing.md",
        "state.md",
        "subscriptions.md",
        "partitions.md",
        "proxy.md",
    } <= pages
    # Examples reach no server but the one the tests stand in for.
    urls = [url for _, _, code in EXAMPLES for url in re.findall(r"https?://[^\s\"']+", code)]
    assert urls and all(url.startswith(EXAMPLE_BASE) for url in urls)


@pytest.mark.parametrize(
    "code", [code for _, _, code in EXAMPLES], ids=[f"{p}:{n}" for p, n, _ in EXAMPLES]
)
def test_example_runs(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("durable_streams")
    level = logger.level  # an example may configure logging: the other tests must not see it
    try:
        with local_server() as url:
            source = code.replace(EXAMPLE_BASE, url)
            # A module of its own, in sys.modules: a dataclass defined there looks itself up.
            module = types.ModuleType("__docs__")
            sys.modules[module.__name__] = module
            try:
                exec(compile(source, "<docs example>", "exec"), module.__dict__)
            finally:
                del sys.modules[module.__name__]
    finally:
        logger.setLevel(level)
    # An example that prints shows its output in the docs; it must have printed something.
    if "print(" in code:
        assert capsys.readouterr().out.strip()
