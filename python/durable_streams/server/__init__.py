"""An embedded Durable Streams server, for tests, demos and local development.

It speaks the protocol's stream operations the way the reference server
(``@durable-streams/server``) does: create, append (JSON mode, ``Stream-Seq``, idempotent
producers), close, delete, forks, catch-up reads with ETags, long-poll and SSE. Streams live
in memory, or in a SQLite data file when ``data_path`` is given. Standard library plus h11
(which httpx already brings); binds 127.0.0.1 unless told otherwise.

From a shell: ``python -m durable_streams serve [--host H] [--port N] [--data PATH]``.
In tests: :func:`durable_streams.testing.local_server` and the pytest plugin there.
"""

from __future__ import annotations

from .. import _name_public_module
from ._http import Limits
from ._server import Server

__all__ = ["Limits", "Server"]

_name_public_module(globals(), __all__, __name__)
