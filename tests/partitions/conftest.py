"""Partition sets live under the test server's stream root, /v1/stream, where its
subscriptions are (pull-wake ones need no webhook support)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def root(server_url: str) -> str:
    return f"{server_url}/v1/stream"


@pytest.fixture
def name() -> str:
    """A set name of this test's own."""
    return f"t{uuid.uuid4().hex[:12]}/orders"
