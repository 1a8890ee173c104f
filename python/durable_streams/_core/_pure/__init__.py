"""The pure-Python twin of ``durable_streams._core``: same names, same behaviour, same errors.

Used where the native extension is unavailable, or when ``DURABLE_STREAMS_PURE_PYTHON=1``.
It never imports ``_core``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._batch import BatchBuilder
from ._fold import fold_changes
from ._framer import JsonArrayReader
from ._http import HttpResponseDecoder
from ._json import encode_json, parse_json_array, split_json_array
from ._sse import Control, SseDecoder

__all__ = [
    "BatchBuilder",
    "Control",
    "HttpResponseDecoder",
    "JsonArrayReader",
    "SseDecoder",
    "__version__",
    "encode_json",
    "fold_changes",
    "parse_json_array",
    "split_json_array",
]

try:
    __version__: str = version("durable-streams-rs")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
