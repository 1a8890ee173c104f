"""The fault proxy (tests/faultproxy.py) itself: faithful without faults, byte-exact when it
fragments, and every fault it reports is one that happened."""

from __future__ import annotations

import hashlib
import random
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from faultproxy import FaultProxy

pytestmark = pytest.mark.timeout(60)

BLOB = random.Random(1).randbytes(300_000)


class _BlobHandler(socketserver.BaseRequestHandler):
    """Reads one request head, answers with ``BLOB`` (or nothing, for ``/silent``), closes."""

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = self.request.recv(4096)
            if not data:
                return
            head += data
        self.server.heads.append(head)  # type: ignore[attr-defined]
        if head.startswith(b"GET /silent"):
            self.request.recv(1)  # until the peer goes away
            return
        self.request.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(BLOB) + BLOB
        )


class _BlobServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _BlobHandler)
        self.heads: list[bytes] = []


@pytest.fixture
def blob_url() -> Iterator[str]:
    server = _BlobServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _raw_get(url: str, path: str = "/blob") -> bytes:
    """Everything a client receives for one GET on a fresh connection, until EOF or a cut."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
        parts = []
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            parts.append(data)
    return b"".join(parts)


def _body(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[1]


def test_forwards_faithfully_without_faults(server_url: str) -> None:
    url = f"{server_url}/test/{uuid.uuid4().hex}"
    path = url.removeprefix(server_url)
    with FaultProxy(server_url, fragment=False) as proxy, httpx.Client() as client:
        assert proxy.url.startswith("http://127.0.0.1:")
        assert proxy.url != server_url
        created = client.put(proxy.url + path, headers={"content-type": "application/json"})
        assert created.status_code == 201
        for n in range(5):
            appended = client.post(proxy.url + path, json=[{"n": n, "pad": "x" * 1000}])
            assert appended.status_code == 204
        through = client.get(proxy.url + path, params={"offset": "-1"})
        direct = client.get(url, params={"offset": "-1"})
    assert through.status_code == direct.status_code == 200
    assert through.content == direct.content
    assert through.json() == [{"n": n, "pad": "x" * 1000} for n in range(5)]
    assert through.headers["stream-next-offset"] == direct.headers["stream-next-offset"]
    assert proxy.stats["connections"] >= 1
    assert proxy.stats["fragments"] == 0
    assert sum(v for k, v in proxy.stats.items() if k.startswith("cuts")) == 0


def test_keeps_the_upstream_path_prefix(server_url: str) -> None:
    with FaultProxy(server_url + "/test/", fragment=False) as proxy:
        assert proxy.url.endswith("/test")
        name = uuid.uuid4().hex
        assert httpx.put(f"{proxy.url}/{name}").status_code == 201
        assert httpx.head(f"{server_url}/test/{name}").status_code == 200


def test_fragmentation_does_not_alter_bytes(blob_url: str) -> None:
    direct = _raw_get(blob_url)
    with FaultProxy(blob_url, seed=3, fragment=True, max_delay=0.0002) as proxy:
        through = _raw_get(proxy.url)
        fragments = proxy.stats["fragments"]
    assert _body(direct) == BLOB
    assert hashlib.sha256(through).digest() == hashlib.sha256(direct).digest()
    # 300 kB in pieces of at most 512 bytes.
    assert fragments >= len(direct) // 512


def test_fragments_reach_the_client_in_small_reads(blob_url: str) -> None:
    with FaultProxy(blob_url, seed=5, fragment=True, max_delay=0.001) as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /blob HTTP/1.1\r\nhost: x\r\n\r\n")
            sizes = []
            while sum(sizes) < 20_000:
                data = sock.recv(65536)
                assert data
                sizes.append(len(data))
    assert len(sizes) > 20
    assert min(sizes) <= 8


def test_counts_mid_response_cuts_and_they_happen(blob_url: str) -> None:
    received = []
    with FaultProxy(blob_url, seed=11, fragment=False, cut_mid_response=1.0) as proxy:
        for _ in range(12):
            received.append(len(_raw_get(proxy.url)))
        assert proxy.wait_open_connections(0, timeout=5)
    full = len(_raw_get(blob_url))
    cut = [n for n in received if n < full]
    assert proxy.stats["connections"] == 12
    assert proxy.stats["cuts_mid_response"] == len(cut)
    # Cut points are log-uniform up to 64 KiB: all of them fall inside a 300 kB answer.
    assert len(cut) == 12
    assert len(set(cut)) > 1


def test_same_seed_same_faults(blob_url: str) -> None:
    def run(seed: int) -> list[int]:
        with FaultProxy(blob_url, seed=seed, fragment=False, cut_mid_response=0.5) as proxy:
            return [len(_raw_get(proxy.url)) for _ in range(10)]

    first, second, other = run(42), run(42), run(43)
    assert first == second
    assert first != other
    assert len(set(first)) > 1


def test_cuts_sse_answers_after_so_many_bytes_and_nothing_else(server_url: str) -> None:
    url = f"{server_url}/test/{uuid.uuid4().hex}"
    with httpx.Client() as client:
        assert client.put(url, headers={"content-type": "text/plain"}).status_code == 201
        text = {"content-type": "text/plain"}
        assert client.post(url, content=b"x" * 20_000, headers=text).status_code == 204
    with FaultProxy(server_url, fragment=False, cut_sse_after=3000) as proxy:
        target = proxy.url + url.removeprefix(server_url)
        with httpx.Client() as client:
            assert len(client.get(target, params={"offset": "-1"}).content) == 20_000
            received = 0
            sse = client.stream("GET", target, params={"offset": "-1", "live": "sse"})
            with pytest.raises(httpx.TransportError), sse as res:
                for chunk in res.iter_raw():
                    received += len(chunk)
        assert 0 < received < 3000
        assert proxy.stats["cuts_sse"] == 1
        assert proxy.stats["cuts_mid_response"] == 0


def test_cut_after_request_means_processed_but_unanswered(server_url: str) -> None:
    url = f"{server_url}/test/{uuid.uuid4().hex}"
    path = url.removeprefix(server_url)
    assert httpx.put(url, headers={"content-type": "application/json"}).status_code == 201
    with FaultProxy(server_url, fragment=False, cut_after_request=1.0) as proxy:
        for n in range(3):
            with pytest.raises(httpx.RemoteProtocolError):
                httpx.post(proxy.url + path, json={"n": n})
        assert proxy.stats["cuts_after_request"] == 3
    assert httpx.get(url, params={"offset": "-1"}).json() == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_cut_mid_request_means_never_processed(server_url: str) -> None:
    url = f"{server_url}/test/{uuid.uuid4().hex}"
    path = url.removeprefix(server_url)
    assert httpx.put(url, headers={"content-type": "application/json"}).status_code == 201
    with FaultProxy(server_url, seed=9, fragment=False, cut_mid_request=1.0) as proxy:
        for n in range(5):
            with pytest.raises(httpx.TransportError):
                httpx.post(proxy.url + path, json={"n": n, "pad": "y" * 500})
        assert proxy.stats["cuts_mid_request"] == 5
        assert proxy.wait_open_connections(0, timeout=5)
    assert httpx.get(url, params={"offset": "-1"}).json() == []


def test_set_faults_turns_faults_off_on_open_connections(blob_url: str) -> None:
    with FaultProxy(blob_url, seed=1, fragment=True, cut_mid_response=1.0) as proxy:
        proxy.set_faults(cut_mid_response=0.0, fragment=False)
        assert _raw_get(proxy.url) == _raw_get(blob_url)
        assert proxy.stats["cuts_mid_response"] == 0
        assert proxy.stats["fragments"] == 0
        with pytest.raises(TypeError):
            proxy.set_faults(cut_everything=1.0)
        with pytest.raises(ValueError):
            proxy.set_faults(cut_mid_response=0.7, cut_mid_request=0.7)


def test_close_is_prompt_with_idle_and_waiting_clients(blob_url: str) -> None:
    proxy = FaultProxy(blob_url).start()
    host, port = proxy.url.removeprefix("http://").split(":")
    idle = socket.create_connection((host, int(port)), timeout=10)
    waiting = socket.create_connection((host, int(port)), timeout=10)
    waiting.sendall(b"GET /silent HTTP/1.1\r\nhost: x\r\n\r\n")
    try:
        assert proxy.wait_open_connections(2, timeout=5)
        started = time.monotonic()
        proxy.close()
        elapsed = time.monotonic() - started
        assert elapsed < 2.0
        assert proxy.open_connections == 0
        assert waiting.recv(10) == b""  # the waiting client sees EOF, it does not hang
    finally:
        idle.close()
        waiting.close()
    with pytest.raises(RuntimeError):
        proxy.start()
