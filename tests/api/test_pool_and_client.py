"""Every request on the native transport (#28): one bounded pool per server shared by what a
client opens, settings stated once, appends coalesced while one is in flight, and the write
rules: an append is resent only when it cannot have been stored."""

from __future__ import annotations

import select
import socket
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import durable_streams as ds
from durable_streams import AsyncClient, Client
from durable_streams._transport._native_async import AsyncNativeTransport

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faultproxy import FaultProxy
from injection import inject_delay, inject_status
from loopback import LoopbackServer, read_head

JSON = "application/json"

pytestmark = pytest.mark.usefixtures("native_transport")


def read_all(url: str) -> list[Any]:
    with ds.stream(url) as res:
        return res.read_json()


# -- settings stated once ----------------------------------------------------------------------


def test_a_client_states_the_base_url_and_headers_once(server_url: str) -> None:
    base = f"{server_url}/test/{uuid.uuid4().hex}"
    seen: list[str] = []

    def token() -> str:
        seen.append("asked")
        return "Bearer t"

    with Client(base, headers={"authorization": token}, timeout=10) as client:
        handle = client.create("orders", content_type=JSON)
        assert handle.url == f"{base}/orders"
        handle.append({"n": 1})
        assert client.handle("orders").head().offset == handle.head().offset
        with client.stream("orders") as res:
            assert res.read_json() == [{"n": 1}]
        producer = client.producer("orders", producer_id="p", content_type=JSON)
        with producer:
            producer.append_nowait({"n": 2})
        assert read_all(f"{base}/orders") == [{"n": 1}, {"n": 2}]
    assert len(seen) >= 5  # the header callable ran for each request made from the client
    with pytest.raises(ds.UsageError, match="base_url"):
        Client().handle("orders")


@pytest.mark.anyio
async def test_an_async_client_opens_everything_on_one_pool(server_url: str) -> None:
    base = f"{server_url}/test/{uuid.uuid4().hex}"
    async with AsyncClient(base) as client:
        handle = await client.create("a", content_type=JSON)
        await handle.append([1, 2])
        async with client.stream("a") as res:
            assert await res.read_json() == [[1, 2]]
        async with client.producer("a", producer_id="p", content_type=JSON) as producer:
            producer.append_nowait(3)
        (pool,) = client.dispatcher.native.pools()
        assert pool.connections == 1  # every request above shared one kept-alive connection
    assert read_all(f"{base}/a") == [[1, 2], 3]


# -- the pool: bounded, shared, idle connections expire and are checked ---------------------------


@pytest.mark.anyio
async def test_requests_wait_for_a_connection_instead_of_opening_more(
    server_url: str,
) -> None:
    base = f"{server_url}/test/{uuid.uuid4().hex}"
    async with AsyncClient(base) as setup:
        for n in range(20):
            await setup.create(f"s{n}", content_type=JSON)
    with FaultProxy(server_url, fragment=False) as proxy:
        front = base.replace(server_url, proxy.url)
        async with AsyncClient(front, max_connections=3) as client:
            async with anyio.create_task_group() as group:
                for n in range(20):
                    for m in range(5):
                        group.start_soon(client.handle(f"s{n}").append, {"m": m})
            (pool,) = client.dispatcher.native.pools()
            assert pool.connections <= 3
        assert proxy.stats["connections"] <= 3
    for n in range(20):
        assert sorted(m["m"] for m in read_all(f"{base}/s{n}")) == list(range(5))


@pytest.mark.anyio
async def test_a_request_cancelled_while_waiting_for_a_connection_passes_its_turn_on(
    server_url: str,
) -> None:
    base = f"{server_url}/test/{uuid.uuid4().hex}"
    async with AsyncClient(base, max_connections=1, timeout=30) as client:
        slow = await client.create("slow", content_type=JSON)
        other = await client.create("other", content_type=JSON)
        third = await client.create("third", content_type=JSON)
        inject_delay(server_url, slow.url.removeprefix(server_url), delay_ms=300, count=1,
                     method="POST")  # fmt: skip
        (pool,) = client.dispatcher.native.pools()
        done: list[str] = []

        async def append(handle: Any, value: str) -> None:
            await handle.append({"v": value})
            done.append(value)

        async def until(condition: Any) -> None:
            while not condition():
                await anyio.lowlevel.checkpoint()

        # Without passing it on, the wake-up went to the cancelled request and "next" waited
        # out the 30 s pool timeout with the connection idle.
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(append, slow, "slow")  # holds the only connection a while
                await until(lambda: pool.connections == 1 and not pool._idle)
                async with anyio.create_task_group() as waiting:
                    waiting.start_soon(append, other, "cancelled")
                    await until(lambda: len(pool._waiting) == 1)
                    group.start_soon(append, third, "next")  # another handle: no coalescing
                    await until(lambda: len(pool._waiting) == 2)
                    waiting.cancel_scope.cancel()
        assert sorted(done) == ["next", "slow"]
        assert not pool._waiting
    assert read_all(f"{base}/other") == []
    assert [m["v"] for m in read_all(f"{base}/third")] == ["next"]


def test_an_idle_connection_past_its_expiry_is_not_reused(stream_url: str) -> None:
    with Client(keepalive_expiry=30) as client:
        handle = client.create(stream_url, content_type=JSON)
        handle.append(1)
        (pool,) = client.dispatcher.native.pools()
        (first,) = pool._idle
        first.idle_since -= 31  # as if it had been idle for longer than the expiry
        handle.append(2)
        (second,) = pool._idle
        assert second is not first and first.sock.fileno() == -1  # closed, not leaked
    assert read_all(stream_url) == [1, 2]


class _ClosesAfterEachAnswer(LoopbackServer):
    """Answers each POST 204 with Stream-Next-Offset, then closes the connection while it is
    idle, without saying so in the answer (as a server whose keep-alive timer ran out)."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []
        self.closed = threading.Semaphore(0)

    def handle(self, conn: socket.socket) -> None:
        got = read_head(conn)
        if got is None:
            return
        head, rest = got
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += conn.recv(65536)
        self.bodies.append(rest[:length])
        conn.sendall(b"HTTP/1.1 204 No Content\r\nStream-Next-Offset: 1\r\n\r\n")
        conn.close()
        self.closed.release()


def test_a_connection_the_server_closed_while_idle_is_replaced_and_nothing_is_sent_twice() -> None:
    server = _ClosesAfterEachAnswer()
    url = f"http://127.0.0.1:{server.port}/s"
    try:
        with Client() as client:
            handle = client.handle(url, content_type=JSON)
            for n in range(5):
                assert handle.append({"n": n}).offset == "1"
                assert server.closed.acquire(timeout=10)
                (pool,) = client.dispatcher.native.pools()
                (idle,) = pool._idle
                # Wait until the server's close has reached this end (the socket turns
                # readable: end of file), as it has for a connection idle for a while.
                assert select.select([idle.sock], [], [], 10)[0]
                assert not idle.alive()
        assert server.bodies == [b'[{"n":%d}]' % n for n in range(5)]
        assert server.connections == 5
    finally:
        server.close()


# -- the write rules ---------------------------------------------------------------------------


class _AnswersNothing(LoopbackServer):
    """Takes the whole request, then closes without a byte of answer: it may have stored it."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def handle(self, conn: socket.socket) -> None:
        got = read_head(conn)
        if got is None:
            return
        self.requests += 1


def test_an_append_cut_after_it_went_out_is_not_resent_and_says_so() -> None:
    server = _AnswersNothing()
    try:
        handle = ds.DurableStream(f"http://127.0.0.1:{server.port}/s", content_type=JSON)
        with pytest.raises(ds.TransportError) as info:
            handle.append({"once": True})
        assert info.value.request_sent is True
        assert server.requests == 1
    finally:
        server.close()


def test_an_append_that_never_reached_the_server_is_resent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handle = ds.DurableStream(
        f"http://127.0.0.1:{port}/s",
        content_type=JSON,
        retry=ds.RetryPolicy(max_retries=2, initial_delay=0.01),
    )
    with pytest.raises(ds.TransportError) as info:
        handle.append(1)
    assert info.value.request_sent is False  # connection refused: safe to resend, and it was


class _RefusesBigBodies(LoopbackServer):
    """Reads a request head; answers 413 at once and closes, without reading the body (a
    reset follows when the client keeps sending)."""

    def handle(self, conn: socket.socket) -> None:
        if read_head(conn) is None:
            return
        conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


@pytest.mark.timeout(60)
def test_a_server_refusing_a_big_body_early_is_heard_not_retried() -> None:
    server = _RefusesBigBodies()
    try:
        handle = ds.DurableStream(
            f"http://127.0.0.1:{server.port}/s",
            content_type=JSON,
            retry=ds.RetryPolicy(max_retries=5, initial_delay=0.01),
        )
        with pytest.raises(ds.PayloadTooLargeError):
            handle.append({"big": "x" * (16 << 20)})
        assert server.connections == 1
    finally:
        server.close()


# -- coalescing ----------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("coalesce", [True, False])
async def test_concurrent_appends_on_one_handle_share_requests(
    server_url: str, stream_url: str, coalesce: bool
) -> None:
    async with await ds.AsyncDurableStream.create(stream_url, content_type=JSON):
        pass
    path = stream_url.removeprefix(server_url)
    with FaultProxy(server_url, fragment=False) as proxy:
        async with AsyncClient(proxy.url) as client:
            handle = client.handle(path, content_type=JSON, coalesce=coalesce)
            results: list[ds.AppendResult] = []

            async def one(n: int) -> None:
                results.append(await handle.append({"n": n}))

            async with anyio.create_task_group() as group:
                for n in range(100):
                    group.start_soon(one, n)
        requests = proxy.stats["requests_forwarded"]
    stored = read_all(stream_url)
    assert sorted(m["n"] for m in stored) == list(range(100))  # each once
    assert len(results) == 100 and all(r.offset for r in results)
    if coalesce:
        # Started together: the first waits one turn of the loop, in which the others join it.
        assert requests == 1
    else:
        assert requests == 100


def test_appends_from_many_threads_on_one_sync_handle_coalesce_too(stream_url: str) -> None:
    handle = ds.DurableStream.create(stream_url, content_type=JSON)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(50):
                handle.append({"w": worker, "n": n})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    stored = read_all(stream_url)
    for worker in range(8):  # each thread's appends in its own order, each once
        assert [m["n"] for m in stored if m["w"] == worker] == list(range(50))


@pytest.mark.anyio
async def test_a_coalesced_request_refused_fails_every_append_it_carried(
    server_url: str, stream_url: str
) -> None:
    handle = await ds.AsyncDurableStream.create(stream_url, content_type=JSON)
    await handle.append({"first": True})
    inject_status(server_url, stream_url.removeprefix(server_url), status=400, count=1,
                  method="POST")  # fmt: skip
    outcomes: list[Any] = []

    async def one(n: int) -> None:
        try:
            outcomes.append(await handle.append({"n": n}))
        except ds.BadRequestError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as group:
        for n in range(10):
            group.start_soon(one, n)
    failed = [o for o in outcomes if isinstance(o, ds.BadRequestError)]
    assert failed and len({id(e) for e in failed}) == 1  # one request, one error for all
    stored = read_all(stream_url)[1:]
    assert len(stored) + len(failed) == 10
    await handle.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the order of the tasks' turns is fixed
async def test_an_append_cancelled_in_its_joining_turn_hands_over_to_those_that_joined(
    stream_url: str,
) -> None:
    handle = await ds.AsyncDurableStream.create(stream_url, content_type=JSON)
    done: list[str] = []

    async def append(value: str) -> None:
        await handle.append({"v": value})
        done.append(value)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group, anyio.create_task_group() as first:
            first.start_soon(append, "cancelled")  # alone: it lets the loop run once
            group.start_soon(append, "joined")  # queued behind it in that turn
            while len(handle._queue) != 1:
                await anyio.lowlevel.checkpoint()
            first.cancel_scope.cancel()  # before the first one sends
    assert done == ["joined"]
    assert [m["v"] for m in read_all(stream_url)] == ["joined"]
    assert not handle._sending and not handle._queue
    await handle.aclose()


@pytest.mark.anyio
async def test_a_cancelled_append_waiting_its_turn_is_not_sent_and_the_next_still_goes(
    server_url: str, stream_url: str
) -> None:
    handle = await ds.AsyncDurableStream.create(stream_url, content_type=JSON)
    await handle.append({"v": "before"})
    path = stream_url.removeprefix(server_url)
    inject_delay(server_url, path, delay_ms=300, count=1, method="POST")  # "first" is out a while
    done: list[str] = []

    async def append(value: str) -> None:
        await handle.append({"v": value})
        done.append(value)

    async def until(condition: Any) -> None:
        while not condition():
            await anyio.lowlevel.checkpoint()

    def in_flight() -> bool:
        """ "first" has its connection: past the turn in which appends made with it join."""
        transport = handle._transport
        pools = transport.pools() if isinstance(transport, AsyncNativeTransport) else []
        return any(pool.connections > len(pool._idle) for pool in pools)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(append, "first")
            await until(in_flight)
            async with anyio.create_task_group() as waiting:
                waiting.start_soon(append, "cancelled")
                await until(lambda: len(handle._queue) == 1)
                group.start_soon(append, "second")
                await until(lambda: len(handle._queue) == 2)
                waiting.cancel_scope.cancel()  # the next one to send, while "first" is out
    assert sorted(done) == ["first", "second"]
    assert [m["v"] for m in read_all(stream_url)] == ["before", "first", "second"]
    await handle.aclose()
