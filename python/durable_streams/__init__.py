"""durable_streams: a fast, dependable client for the Durable Streams protocol."""

from __future__ import annotations

from ._errors import *  # noqa: F403
from ._errors import __all__ as _error_names
from ._impl import IMPLEMENTATION

__all__ = sorted(["IMPLEMENTATION", *_error_names])
