"""The official TypeScript client (@durable-streams/client, pinned in refserver/) reads our
proxy's pre-signed URLs as the upstream proxy package's durable fetch does: a front end
written against that package reads a stream made by this proxy."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Proxy
from .upstream import tokens

SCRIPT = Path(__file__).resolve().parents[2] / "refserver" / "proxy_interop.mjs"

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("live", ["sse", "long-poll"])
def test_the_typescript_client_reads_a_proxied_stream_to_its_end(proxy: Proxy, live: str) -> None:
    exe = shutil.which("node")
    assert exe is not None, "node is needed for the interop tests (the reference server too)"
    # Read while the upstream is still sending: the client follows the writing to the close.
    location = proxy.create("/tokens?n=40&gap=0.01").headers["location"]
    done = subprocess.run(
        [exe, str(SCRIPT), location, live],
        capture_output=True,
        timeout=60,
        check=False,
        cwd=SCRIPT.parent,
    )
    assert done.returncode == 0, done.stderr.decode()
    answer = json.loads(done.stdout)
    assert base64.b64decode(answer["body"]) == tokens(0, 39)
    assert answer["upstreamContentType"] == "text/event-stream"
    assert proxy.upstream.hits["/tokens"] == 1
