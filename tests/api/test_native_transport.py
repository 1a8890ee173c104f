"""The native read transport: when it is chosen, that it keeps connections alive and
recovers from a kept one the server closed, and https with certificates made here."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from durable_streams import (
    AsyncDurableStream,
    DurableStream,
    RetryPolicy,
    TransportError,
    astream,
    stream,
)
from durable_streams._defaults import default_dispatcher
from durable_streams._protocol import HttpRequest
from durable_streams._transport._connections import PAUSE_READING_BYTES, AsyncioConnection
from durable_streams._transport._httpx_async import AsyncHttpxTransport
from durable_streams._transport._httpx_sync import HttpxTransport
from durable_streams._transport._native_async import AsyncNativeTransport
from durable_streams._transport._native_sync import NativeTransport
from durable_streams._transport._request import _query, prepare

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faultproxy import FaultProxy
from loopback import LoopbackServer, read_head

JSON = "application/json"


@pytest.fixture(autouse=True)
def native_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the native transport, whichever the run's default is."""
    monkeypatch.setenv("DURABLE_STREAMS_TRANSPORT", "native")


def transport_of(response: Any) -> Any:
    """The transport a response's requests go through (the default pool's, if it has none
    of its own yet)."""
    dispatcher = response._dispatcher or default_dispatcher(response._verify)
    return dispatcher.transport_for(response.url)


def test_reads_take_the_native_transport_unless_something_needs_httpx(
    stream_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DurableStream.create(stream_url, content_type=JSON) as handle:
        assert isinstance(transport_of(stream(stream_url)), NativeTransport)
        assert isinstance(transport_of(handle.stream()), NativeTransport)
        with httpx.Client() as client:  # the caller's own client is always used
            assert isinstance(transport_of(stream(stream_url, client=client)), HttpxTransport)
        with DurableStream(stream_url, client=httpx.Client()) as own:
            assert isinstance(transport_of(own.stream()), HttpxTransport)
            own._client.close()  # type: ignore[union-attr]
        monkeypatch.setenv("DURABLE_STREAMS_TRANSPORT", "httpx")
        assert isinstance(transport_of(stream(stream_url)), HttpxTransport)
        monkeypatch.setenv("DURABLE_STREAMS_TRANSPORT", "native")
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # httpx honours proxies
        monkeypatch.setenv("NO_PROXY", "")
        assert isinstance(transport_of(stream(stream_url)), HttpxTransport)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        assert isinstance(transport_of(stream(stream_url)), NativeTransport)
        monkeypatch.setenv("DURABLE_STREAMS_TRANSPORT", "fast")
        with pytest.raises(ValueError, match="DURABLE_STREAMS_TRANSPORT"):
            stream(stream_url)


def test_a_long_poll_tail_keeps_one_connection(server_url: str, stream_url: str) -> None:
    path = urlsplit(stream_url).path
    with (
        DurableStream.create(stream_url, content_type=JSON) as handle,
        FaultProxy(server_url, fragment=True) as proxy,
        stream(proxy.url + path, live="long-poll") as response,
    ):
        items = response.iter_json()
        for n in range(20):
            handle.append({"n": n})
            assert next(items) == {"n": n}
        assert proxy.stats["requests_forwarded"] >= 20
        assert proxy.stats["connections"] == 1


class ClosingServer(LoopbackServer):
    """Answers each request on a connection with a complete keep-alive response, then closes
    the connection anyway (as a server dropping idle connections does)."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []
        self.url = f"http://127.0.0.1:{self.port}/s"

    def handle(self, conn: socket.socket) -> None:
        request = read_head(conn)
        if request is None:
            return
        self.targets.append(request[0].split(b" ")[1].decode())
        n = self.connections
        body = b'[{"n":%d}]' % n
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Stream-Next-Offset: %016d\r\nStream-Up-To-Date: true\r\n"
            % n
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )


def test_a_kept_connection_closed_by_the_server_is_replaced_without_a_retry() -> None:
    server = ClosingServer()
    decisions: list[Exception] = []

    def on_error(error: Exception) -> None:
        decisions.append(error)

    try:
        with stream(server.url, live="long-poll", on_error=on_error) as response:
            items = response.iter_json()
            assert [next(items) for _ in range(3)] == [{"n": 1}, {"n": 2}, {"n": 3}]
    finally:
        server.close()
    assert decisions == []  # each stale connection was replaced at once, not retried
    assert server.connections == 3


# -- https ---------------------------------------------------------------------------------


class TlsForwarder(LoopbackServer):
    """An https front for the plain test server: terminates TLS with a certificate of the
    test's own CA and pumps bytes to the server and back."""

    def __init__(self, upstream: str, context: ssl.SSLContext) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._context = context
        super().__init__()
        self.url = f"https://127.0.0.1:{self.port}"

    def handle(self, raw: socket.socket) -> None:
        try:
            client = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that refused our certificate
        upstream = socket.create_connection(self._upstream)

        def pump(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for s in (source, sink):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join(timeout=10)
        client.close()
        upstream.close()


@pytest.fixture
def https_front(server_url: str, tmp_path: Path) -> Iterator[tuple[str, trustme.CA, str]]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    front = TlsForwarder(server_url, context)
    try:
        yield front.url, ca, str(ca_file)
    finally:
        front.close()


def test_https_reads_verify_the_servers_certificate(
    stream_url: str, https_front: tuple[str, trustme.CA, str]
) -> None:
    base, ca, ca_file = https_front
    with DurableStream.create(stream_url, content_type=JSON) as handle:
        handle.append({"secure": True})
    url = base + urlsplit(stream_url).path
    with stream(url, verify=ca_file) as response:
        assert isinstance(transport_of(response), NativeTransport)
        assert response.read_json() == [{"secure": True}]
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with stream(url, verify=context, live="long-poll") as response:
        assert next(response.iter_json()) == {"secure": True}
    with stream(url, verify=False) as response:
        assert response.read_json() == [{"secure": True}]
    with (
        pytest.raises(TransportError) as info,
        stream(url, retry=RetryPolicy(max_retries=0)) as response,
    ):
        response.read_json()
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


# -- async --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_reads_take_the_native_transport_too(stream_url: str) -> None:
    async with await AsyncDurableStream.create(stream_url, content_type=JSON) as handle:
        async with astream(stream_url) as response:
            assert isinstance(transport_of(response), AsyncNativeTransport)
        async with handle.stream() as response:
            assert isinstance(transport_of(response), AsyncNativeTransport)
        async with httpx.AsyncClient() as client, astream(stream_url, client=client) as response:
            assert isinstance(transport_of(response), AsyncHttpxTransport)


@pytest.mark.anyio
async def test_an_async_long_poll_tail_keeps_one_connection(
    server_url: str, stream_url: str
) -> None:
    path = urlsplit(stream_url).path
    handle = await AsyncDurableStream.create(stream_url, content_type=JSON)
    with FaultProxy(server_url, fragment=True) as proxy:
        async with astream(proxy.url + path, live="long-poll") as response:
            items = response.iter_json()
            for n in range(10):
                await handle.append({"n": n})
                assert await items.__anext__() == {"n": n}
            await items.aclose()  # type: ignore[attr-defined]
        assert proxy.stats["connections"] == 1
    await handle.aclose()


@pytest.mark.anyio
async def test_async_https_reads_verify_the_servers_certificate(
    stream_url: str, https_front: tuple[str, trustme.CA, str]
) -> None:
    base, _, ca_file = https_front
    async with await AsyncDurableStream.create(stream_url, content_type=JSON) as handle:
        await handle.append({"secure": "async"})
    url = base + urlsplit(stream_url).path
    async with astream(url, verify=ca_file) as response:
        assert isinstance(transport_of(response), AsyncNativeTransport)
        assert await response.read_json() == [{"secure": "async"}]
    with pytest.raises(TransportError) as info:
        async with astream(url, retry=RetryPolicy(max_retries=0)) as response:
            await response.read_json()
    assert isinstance(info.value.__cause__, (ssl.SSLError, OSError))


# -- the request head ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:4437/streams/a b/é",
        "http://127.0.0.1/s?token=x%20y&z=1",
        "https://[::1]:8443/v1/stream/ü?a=b",
    ],
)
def test_the_request_target_is_encoded_as_httpx_encodes_it(url: str) -> None:
    params = [("cursor", "12 34"), ("live", "sse"), ("offset", "0000_0001")]
    head = prepare(HttpRequest("GET", url, {"accept": "text/event-stream"}, params)).head
    request_line, host = head.decode("latin-1").split("\r\n")[:2]
    expected = httpx.URL(url).copy_merge_params(params)  # what the httpx path sends
    assert request_line == f"GET {expected.raw_path.decode()} HTTP/1.1"
    assert host == f"Host: {httpx.Request('GET', expected).headers['host']}"


@pytest.mark.parametrize(
    "headers",
    [{"x-a": "1\r\nInjected: yes"}, {"x-a": "1\nx"}, {"x-a": "nul\x00"}, {"bad name": "1"}],
)
def test_a_header_that_would_break_the_request_is_refused(
    stream_url: str, headers: dict[str, str]
) -> None:
    # The reader refuses it where it is given (tests/api/test_usage_errors.py); the native
    # transport would refuse it too, whoever builds the request.
    with pytest.raises(ValueError, match="cannot be sent as given"):
        prepare(HttpRequest("GET", stream_url, headers))


def test_a_stream_whose_path_needs_encoding_reads_back(server_url: str) -> None:
    url = f"{server_url}/test/{uuid.uuid4().hex}/with space/é"
    with DurableStream.create(url, content_type=JSON) as handle:
        handle.append({"path": "encoded"})
    with stream(url) as response:
        assert isinstance(transport_of(response), NativeTransport)
        assert response.read_json() == [{"path": "encoded"}]


@pytest.mark.parametrize("transport", ["native", "httpx"])
def test_the_urls_own_query_travels_with_every_read(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token in the stream URL must reach the server on every request, next to the
    reader's own offset and live parameters (httpx alone would replace it)."""
    monkeypatch.setenv("DURABLE_STREAMS_TRANSPORT", transport)
    server = ClosingServer()
    try:
        with stream(server.url + "?token=s3cret", live="long-poll") as response:
            items = response.iter_json()
            assert [next(items) for _ in range(2)] == [{"n": 1}, {"n": 2}]
    finally:
        server.close()
    assert server.targets[0] == "/s?token=s3cret&offset=-1"
    assert server.targets[1] == "/s?token=s3cret&live=long-poll&offset=0000000000000001"


_QUERY_TEXT = st.text(alphabet=st.sampled_from("az09_-.~=&+% é/?#\x00"), max_size=8)


@given(st.lists(st.tuples(_QUERY_TEXT, _QUERY_TEXT), min_size=1, max_size=4))
def test_the_query_is_what_urlencode_makes_of_it(params: list[tuple[str, str]]) -> None:
    assert _query(params) == urlencode(params)


# -- the asyncio connection ------------------------------------------------------------------


async def _asyncio_pair() -> tuple[AsyncioConnection, socket.socket]:
    """A connection of the asyncio kind on one end of a TCP connection; the other end raw."""
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname())
        theirs, _ = listener.accept()
    _, connection = await loop.create_connection(lambda: AsyncioConnection(loop), sock=ours)
    return connection, theirs


def test_the_asyncio_connection_stops_reading_while_its_reader_lags_and_loses_nothing() -> None:
    sent = bytes(range(256)) * (3 * PAUSE_READING_BYTES // 256)

    async def main() -> bytes:
        connection, theirs = await _asyncio_pair()
        writer = threading.Thread(target=lambda: (theirs.sendall(sent), theirs.close()))
        writer.start()
        # Let the loop take in what the kernel holds until the connection pauses: the writer
        # cannot finish before that, with three times the pause threshold to send.
        while not connection._paused:
            await asyncio.sleep(0)
        assert connection._queued >= PAUSE_READING_BYTES
        got = []
        while data := await connection.receive(5.0):
            got.append(data)
        writer.join(timeout=10)
        assert not connection._paused
        await connection.abort()
        return b"".join(got)

    assert asyncio.run(main()) == sent


def test_the_asyncio_connection_times_out_ends_and_fails_as_a_socket_does() -> None:
    async def main() -> None:
        connection, theirs = await _asyncio_pair()
        with pytest.raises(TimeoutError):
            await connection.receive(0.05)
        assert connection._waiter is None
        theirs.sendall(b"last words")
        theirs.shutdown(socket.SHUT_WR)
        assert await connection.receive(5.0) == b"last words"
        assert await connection.receive(5.0) == b""
        assert await connection.receive(5.0) == b""
        with pytest.raises(ConnectionResetError):
            await connection.send(b"GET / HTTP/1.1\r\n\r\n", 5.0)
        theirs.close()

        connection, theirs = await _asyncio_pair()
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        theirs.close()  # a reset, not an orderly end
        with pytest.raises(OSError):
            while await connection.receive(5.0):
                pass
        await connection.abort()

    asyncio.run(main())


def test_the_asyncio_connection_keeps_every_receives_own_deadline() -> None:
    async def main() -> None:
        connection, theirs = await _asyncio_pair()
        # A long timeout first: its timer is set far out, and a shorter one must still hold.
        theirs.sendall(b"a")
        assert await connection.receive(30.0) == b"a"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(connection.receive(0.05), 5.0)
        # Quick receives leave a timer that fires before the next deadline: it moves on.
        for _ in range(3):
            theirs.sendall(b"b")
            assert await connection.receive(0.2) == b"b"
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(connection.receive(0.2), 5.0)
        assert loop.time() - started >= 0.19
        await connection.abort()
        theirs.close()

    asyncio.run(main())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kernel timeouts are Linux's")
def test_a_sync_connection_keeps_the_write_and_read_timeouts_apart(stream_url: str) -> None:
    with DurableStream.create(stream_url, content_type=JSON) as handle:
        handle.append({"n": 1})
    transport = NativeTransport()
    try:
        request = HttpRequest("GET", stream_url, {}, [("offset", "-1")])
        reply = transport.send(request, httpx.Timeout(30.0, write=1.5, read=2.25))
        assert reply.read(1 << 20) == b'[{"n":1}]'
        (pool,) = transport.pools()
        (connection,) = pool._idle
        sock = connection.sock
        assert sock.gettimeout() is None  # the kernel keeps the timeouts, not Python
        for option, seconds in ((socket.SO_SNDTIMEO, 1.5), (socket.SO_RCVTIMEO, 2.25)):
            tv_sec, tv_usec = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, option, 16))
            # The kernel keeps it in scheduler ticks (4 ms at HZ=250), so it reads back rounded.
            assert tv_sec + tv_usec / 1e6 == pytest.approx(seconds, abs=0.01)
    finally:
        transport.close()
