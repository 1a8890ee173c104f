"""Fixtures shared by every test: the reference server, unique stream URLs."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "refserver"))

from launch import ReferenceServer


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """The pinned reference server on 127.0.0.1 at a random port, for the whole session.

    Its long-poll window is one second, so tests that wait for "no data" stay quick."""
    with ReferenceServer(long_poll_timeout_ms=1000) as server:
        yield server.url


@pytest.fixture
def stream_url(server_url: str) -> str:
    return f"{server_url}/test/{uuid.uuid4().hex}"
