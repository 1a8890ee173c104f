"""A griffe extension for the docs site: the docstrings are written for Sphinx-style readers
(``:class:`Name```, ``:meth:`name```, a ``::`` before a literal block); mkdocstrings renders
Markdown, so the roles become code spans and ``::`` a colon before the indented block."""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj):`~?([^`]+)`")
LITERAL_BLOCK = re.compile(r"::$", re.MULTILINE)


class SphinxRoles(Extension):
    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is not None:
            text = ROLE.sub(r"`\1`", docstring.value)
            docstring.value = LITERAL_BLOCK.sub(":", text)
