"""A scripted upstream for the proxy tests: an http.server on 127.0.0.1 whose paths stream
tokens, stall, fail, redirect or echo, and which counts what it was asked."""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["Upstream", "big_body", "tokens"]

_LIMIT = 30.0  # no handler outlives this, whatever the test does


def tokens(first: int, last: int) -> bytes:
    """The SSE events ``token-first`` .. ``token-last`` as the upstream sends them."""
    return b"".join(b"data: token-%d\n\n" % i for i in range(first, last + 1))


def big_body(size: int) -> bytes:
    """``size`` bytes where every position is told apart (a lost or repeated piece shows)."""
    return b"".join(b"%015d\n" % i for i in range(size // 16 + 1))[:size]


class Upstream:
    """Paths: ``/tokens?n=N&gap=S`` N SSE events, S seconds apart; ``/held?n=N`` the first
    event, then the rest once ``release`` is set; ``/endless`` an event every 20 ms until the
    connection is cut (then ``cut`` is set); ``/big?size=N`` N bytes (``big_body``);
    ``/broken`` two events, then the connection
    drops; ``/slow?seconds=S`` headers after S seconds; ``/status/CODE?size=N`` an error;
    ``/redirect`` a 302 to ``/tokens``; ``/echo`` the request as JSON."""

    def __init__(self) -> None:
        self.hits: collections.Counter[str] = collections.Counter()
        self.release = threading.Event()
        self.cut = threading.Event()
        self.stop = threading.Event()
        self.sent = 0  # events /endless has sent
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                try:
                    upstream._handle(self)
                except OSError:  # the proxy hung up: what the tests provoke
                    self.close_connection = True

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return self.origin + path

    def close(self) -> None:
        self.stop.set()
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    # -- the paths ------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        self.hits[path] += 1
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        if path == "/tokens":
            self._start(h)
            for i in range(int(query.get("n", "5"))):
                if i:
                    time.sleep(float(query.get("gap", "0")))
                self._chunk(h, tokens(i, i))
            self._end(h)
        elif path == "/held":
            self._start(h)
            self._chunk(h, tokens(0, 0))
            self.release.wait(_LIMIT)
            for i in range(1, int(query.get("n", "5"))):
                self._chunk(h, tokens(i, i))
            self._end(h)
        elif path == "/endless":
            self._start(h)
            deadline = time.monotonic() + _LIMIT
            try:
                while not self.stop.is_set() and time.monotonic() < deadline:
                    self._chunk(h, tokens(self.sent, self.sent))
                    self.sent += 1
                    time.sleep(0.02)
            except OSError:
                self.cut.set()
        elif path == "/big":
            self._start(h, "application/octet-stream")
            data = big_body(int(query["size"]))
            for start in range(0, len(data), 64 * 1024):
                self._chunk(h, data[start : start + 64 * 1024])
            self._end(h)
        elif path == "/broken":
            self._start(h)
            self._chunk(h, tokens(0, 1))
            time.sleep(0.1)
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
        elif path == "/slow":
            self.stop.wait(float(query.get("seconds", "5")))
            self._start(h)
            self._end(h)
        elif path.startswith("/status/"):
            size = int(query.get("size", "0"))
            payload = b"x" * size if size else json.dumps({"error": "upstream says no"}).encode()
            h.send_response(int(path.rsplit("/", 1)[1]))
            h.send_header("content-type", "application/problem+json")
            h.send_header("content-length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        elif path == "/redirect":
            h.send_response(302)
            h.send_header("location", self.url("/tokens"))
            h.send_header("content-length", "0")
            h.end_headers()
        elif path == "/echo":
            payload = json.dumps(
                {
                    "method": h.command,
                    "headers": [[k.lower(), v] for k, v in h.headers.items()],
                    "body": body.decode(),
                }
            ).encode()
            h.send_response(200)
            h.send_header("content-type", "application/json")
            h.send_header("content-length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        else:
            h.send_response(404)
            h.send_header("content-length", "0")
            h.end_headers()

    @staticmethod
    def _start(h: BaseHTTPRequestHandler, content_type: str = "text/event-stream") -> None:
        h.send_response(200)
        h.send_header("content-type", content_type)
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()
        h.wfile.flush()

    @staticmethod
    def _chunk(h: BaseHTTPRequestHandler, data: bytes) -> None:
        h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        h.wfile.flush()

    @staticmethod
    def _end(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()
