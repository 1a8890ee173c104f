"""Test helpers: a real Durable Streams server, in-process, on a free port.

:func:`local_server` runs the embedded server (:mod:`durable_streams.server`) on a
background thread for the duration of a ``with`` block and yields its base URL::

    import uuid

    from durable_streams import DurableStream
    from durable_streams.testing import local_server

    with local_server() as url:
        handle = DurableStream.create(f"{url}/streams/{uuid.uuid4().hex}",
                                      content_type="application/json")
        handle.append({"hello": "world"})
        with handle.stream() as res:
            assert res.read_json() == [{"hello": "world"}]

This module is also a pytest plugin. List it in a ``conftest.py``::

    pytest_plugins = ["durable_streams.testing"]

and take the session-scoped fixture ``durable_streams_server``, the base URL of one server
shared by the whole test session (in memory, one-second long-polls, fault injection on)::

    def test_append(durable_streams_server: str) -> None:
        url = f"{durable_streams_server}/streams/{uuid.uuid4().hex}"
        ...

See docs/testing.md for more.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .server import Server

__all__ = ["local_server"]


@contextmanager
def local_server(
    *,
    data_path: str | os.PathLike[str] | None = None,
    long_poll_timeout: float = 1.0,
    sse_reconnect_interval: float = 60.0,
    fault_injection: bool = False,
    webhooks: bool = False,
    host: str = "127.0.0.1",
    startup_timeout: float = 30.0,
) -> Iterator[str]:
    """Run the embedded server on a free port in a background thread; yields its URL
    (``http://127.0.0.1:PORT``) and stops it, dropping open connections, on exit.

    ``long_poll_timeout`` defaults to one second here (the server's own default is 30) so
    that tests waiting for "no new data" stay quick. ``fault_injection`` enables
    ``POST /_test/inject-error`` as in the reference server. ``data_path`` keeps the streams
    in a SQLite file, so a second ``local_server`` on the same file sees them. ``webhooks``
    lets subscriptions deliver by webhook (needs the ``cryptography`` package)."""
    server = Server(
        host,
        0,
        data_path=data_path,
        long_poll_timeout=long_poll_timeout,
        sse_reconnect_interval=sse_reconnect_interval,
        fault_injection=fault_injection,
        webhooks=webhooks,
    )
    url = server.start(timeout=startup_timeout)
    try:
        yield url
    finally:
        server.close()


if TYPE_CHECKING:
    import pytest
else:
    try:
        import pytest
    except ImportError:  # pytest is optional: without it this module is just local_server
        pytest = None

if pytest is not None:
    __all__ += ["durable_streams_server"]

    @pytest.fixture(scope="session")
    def durable_streams_server() -> Iterator[str]:
        """The base URL of an embedded server shared by the test session."""
        with local_server(fault_injection=True) as url:
            yield url
