"""The embedded server's subscription rules that need no network: glob matching and the
webhook URL checks of PROTOCOL.md section 12.8."""

from __future__ import annotations

import pytest

from durable_streams.server._subscription_model import glob_matches
from durable_streams.server._webhook_urls import webhook_url_problem


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("events/*", "events/a", True),
        ("events/*", "events/a/b", False),
        ("events/*", "events", False),
        ("events/**", "events", True),
        ("events/**", "events/a/b/c", True),
        ("**/x", "a/b/x", True),
        ("**/x", "x", True),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("a/**/z", "a/b/c", False),
        ("ev*", "events", False),  # no partial wildcards
        ("ev*", "ev*", True),
        ("a/%2A", "a/*", True),
        ("a/%2A", "a/b", False),
        ("/events//*/", "events/a", True),  # empty segments do not count
        ("Events/*", "events/a", False),  # case matters
    ],
)
def test_glob(pattern: str, path: str, matches: bool) -> None:
    assert glob_matches(pattern, path) is matches


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1:8080/hook", False),
        ("http://localhost/hook", False),
        ("https://hooks.example.com/x", False),
        ("https://93.184.216.34/x", False),
        ("http://10.0.0.1/hook", True),
        ("http://hooks.example.com/x", True),  # plain http leaves the machine
        ("https://localhost/hook", True),
        ("https://10.1.2.3/x", True),
        ("https://192.168.1.1/x", True),
        ("https://172.16.0.9/x", True),
        ("https://169.254.169.254/latest", True),  # cloud metadata
        ("https://127.0.0.1/x", True),
        ("https://0.0.0.0/x", True),
        ("https://[::1]/x", True),
        ("ftp://example.com/x", True),
        ("not a url", True),
    ],
)
def test_webhook_urls(url: str, refused: bool) -> None:
    assert (webhook_url_problem(url) is not None) is refused
