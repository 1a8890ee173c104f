"""Fixtures shared by every test: the reference server, unique stream URLs, the core under
test and the async backends."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from durable_streams import _core

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "refserver"))

from launch import ReferenceServer

# A shell without job control starts background commands with SIGINT ignored, and children
# inherit that: the tests that press Ctrl+C in a child process need it delivered, as in a
# terminal. (An ignored SIGINT stays ignored across exec; a handled one is reset to default.)
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Which server the integration tests talk to: "reference" (the pinned npm server, default)
# or "embedded" (durable_streams.server, in this process).
TEST_SERVER = os.environ.get("DURABLE_STREAMS_TEST_SERVER", "reference")


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """The test server on 127.0.0.1 at a random port, for the whole session.

    Its long-poll window is one second, so tests that wait for "no data" stay quick."""
    if TEST_SERVER == "embedded":
        from durable_streams.testing import local_server

        with local_server(long_poll_timeout=1.0, fault_injection=True) as url:
            yield url
    elif TEST_SERVER == "reference":
        with ReferenceServer(long_poll_timeout_ms=1000) as server:
            yield server.url
    else:
        raise pytest.UsageError(
            f"DURABLE_STREAMS_TEST_SERVER must be embedded or reference, not {TEST_SERVER!r}"
        )


@pytest.fixture
def stream_url(server_url: str) -> str:
    return f"{server_url}/test/{uuid.uuid4().hex}"


# Both cores by default; a pure-only install (the py3-none-any wheel) runs with "pure". A
# missing native core then fails the "native" runs rather than skipping them.
IMPLEMENTATIONS = os.environ.get("DURABLE_STREAMS_TEST_IMPLS", "native,pure").split(",")


@pytest.fixture(params=IMPLEMENTATIONS)
def core_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs the test with the API on this core (``durable_streams._core.use``)."""
    previous = _core.IMPLEMENTATION
    _core.use(request.param)
    yield request.param
    _core.use(previous)


# Both async backends by default; the quick loop (scripts/test --quick) runs with "asyncio".
BACKENDS = os.environ.get("DURABLE_STREAMS_TEST_BACKENDS", "asyncio,trio").split(",")


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def native_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """The native transport serves, whatever ``DURABLE_STREAMS_TRANSPORT`` the run set: for
    tests of its pool and connections (the httpx rerun of the suite covers the rest)."""
    from durable_streams._transport._request import TRANSPORT_VARIABLES

    for name in TRANSPORT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
