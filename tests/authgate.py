"""A loopback HTTP gate for tests: it forwards requests carrying the one accepted
Authorization header to an upstream server and answers 401 to the others. Standard library
only; for short requests (no live reads).

::

    with AuthGate(server_url, "Bearer s3cret") as gate:
        head(gate.url + "/stream/path", headers={"Authorization": "Bearer s3cret"})
        gate.refused  # how many requests were answered 401
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

# Hop-by-hop headers, and the ones the gate rewrites, are not copied.
_SKIP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


class AuthGate:
    def __init__(self, upstream: str, accepted: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self.accepted = accepted
        self.refused = 0
        self.forwarded = 0
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.headers.get("Authorization") != gate.accepted:
                    gate.refused += 1
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                gate.forwarded += 1
                upstream = http.client.HTTPConnection(gate._host, gate._port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIP}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in _SKIP:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{parts.path}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> AuthGate:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
