"""Readers give their connections back: when dropped unclosed (sync), when an iterator is
closed early, when cancelled (async); and Ctrl+C stops a blocked sync reader at once.

Connections are counted at a fault proxy with its faults off; every wait is bounded.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

import durable_streams as ds
from durable_streams._defaults import default_dispatcher
from faultproxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

WAIT = 5.0


@pytest.fixture
def proxy(server_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(server_url, fragment=False) as faithful:
        yield faithful


def _json_stream(url: str, *messages: object) -> None:
    assert httpx.put(url, headers={"content-type": "application/json"}).status_code == 201
    if messages:
        _append(url, *messages)


def _append(url: str, *messages: object) -> None:
    assert httpx.post(url, json=list(messages)).status_code == 204


def _through(proxy: FaultProxy, server_url: str, url: str) -> str:
    return proxy.url + url.removeprefix(server_url)


def _resource_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


# -- sync: dropped responses, closed iterators -------------------------------------------------


@pytest.mark.usefixtures("native_transport")  # counts the native pool's idle connections
@pytest.mark.parametrize("live", [False, "long-poll", "sse"])
def test_dropped_response_releases_its_connection_sync(
    proxy: FaultProxy, server_url: str, stream_url: str, live: ds.LiveMode
) -> None:
    _json_stream(stream_url, {"n": 1})
    res = ds.stream(_through(proxy, server_url, stream_url), live=live)
    iterator = res.iter_json()
    assert next(iterator) == {"n": 1}
    if live:  # a second item comes over the live connection, which stays open
        _append(stream_url, {"n": 2})
        assert next(iterator) == {"n": 2}
    assert proxy.open_connections == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del iterator, res
        gc.collect()
    assert _resource_warnings(caught) == []
    if live == "sse":  # an answer read in part: its connection is closed
        assert proxy.wait_open_connections(0, WAIT), proxy.open_connections
    else:  # answers read to their end: their connection waits, idle, in the pool
        pools = default_dispatcher().native.pools()
        port = urlsplit(proxy.url).port
        idle = [c for pool in pools if pool.origin[2] == port for c in pool._idle]
        assert len(idle) == proxy.open_connections == 1


def test_closing_an_iterator_early_releases_its_connection_sync(
    proxy: FaultProxy, server_url: str, stream_url: str
) -> None:
    _json_stream(stream_url, {"n": 1})
    with (
        httpx.Client() as client,
        ds.stream(_through(proxy, server_url, stream_url), live="sse", client=client) as res,
    ):
        first = res.iter_json()
        assert next(first) == {"n": 1}
        _append(stream_url, {"n": 2}, {"n": 3})
        assert next(first) == {"n": 2}  # over SSE; {"n": 3} waits in the same batch
        assert proxy.open_connections == 1
        first.close()  # type: ignore[attr-defined]
        assert proxy.wait_open_connections(0, WAIT)
        # The next iterator starts where the closed one stopped, on a new connection.
        second = res.iter_json()
        assert next(second) == {"n": 3}
        _append(stream_url, {"n": 4})
        assert next(second) == {"n": 4}
        assert proxy.open_connections == 1
        assert proxy.stats["connections"] == 2
    assert proxy.wait_open_connections(0, WAIT)


def test_a_new_iterator_takes_over_the_connection_sync(
    proxy: FaultProxy, server_url: str, stream_url: str
) -> None:
    _json_stream(stream_url, {"n": 1})
    with ds.stream(_through(proxy, server_url, stream_url), live="sse") as res:
        for item in res.iter_json():
            assert item == {"n": 1}
            break
        _append(stream_url, {"n": 2})
        for item in res.iter_json():
            assert item == {"n": 2}
            break
        assert proxy.stats["connections"] == 1
    assert proxy.wait_open_connections(0, WAIT)


# -- async: closed iterators, dropped iterators, cancellation ---------------------------------


@pytest.mark.anyio
async def test_closing_an_iterator_early_releases_its_connection_async(
    proxy: FaultProxy, server_url: str, stream_url: str
) -> None:
    _json_stream(stream_url, {"n": 1})
    async with (
        httpx.AsyncClient() as client,
        ds.astream(_through(proxy, server_url, stream_url), live="sse", client=client) as res,
    ):
        first = res.iter_json()
        assert await first.__anext__() == {"n": 1}
        _append(stream_url, {"n": 2}, {"n": 3})
        assert await first.__anext__() == {"n": 2}
        assert proxy.open_connections == 1
        await first.aclose()  # type: ignore[attr-defined]
        assert proxy.wait_open_connections(0, WAIT)
        second = res.iter_json()
        assert await second.__anext__() == {"n": 3}
        _append(stream_url, {"n": 4})
        assert await second.__anext__() == {"n": 4}
        assert proxy.stats["connections"] == 2
    assert proxy.wait_open_connections(0, WAIT)


@pytest.mark.anyio
async def test_a_dropped_iterator_neither_warns_nor_loses_items_async(
    proxy: FaultProxy, server_url: str, stream_url: str
) -> None:
    _json_stream(stream_url, {"n": 1})
    async with ds.astream(_through(proxy, server_url, stream_url), live="sse") as res:
        dropped = res.iter_json()
        assert await dropped.__anext__() == {"n": 1}
        _append(stream_url, {"n": 2}, {"n": 3})
        assert await dropped.__anext__() == {"n": 2}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del dropped
            gc.collect()
        assert _resource_warnings(caught) == []
        # The response still holds the connection; the next iterator goes on with it.
        assert [item async for item in _take(res, 1)] == [{"n": 3}]
        assert proxy.stats["connections"] == 1
    assert proxy.wait_open_connections(0, WAIT)


async def _take(res: ds.AsyncStreamResponse, n: int) -> AsyncIterator[Any]:
    async for item in res.iter_json():
        yield item
        n -= 1
        if n == 0:
            return


@pytest.mark.anyio
@pytest.mark.parametrize("live", ["long-poll", "sse"])
async def test_a_waiting_live_reader_is_cancelled_promptly(
    proxy: FaultProxy, server_url: str, stream_url: str, live: ds.LiveMode
) -> None:
    _json_stream(stream_url, {"n": 1})
    items = []
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.3):
            async with ds.astream(_through(proxy, server_url, stream_url), live=live) as res:
                async for item in res.iter_json():
                    items.append(item)
    elapsed = time.monotonic() - started
    assert items == [{"n": 1}]
    # The server would answer the long-poll (or send a keep-alive) only after 1 s.
    assert elapsed < 0.6, elapsed
    assert proxy.wait_open_connections(0, WAIT)


# -- Ctrl+C ------------------------------------------------------------------------------------

TAIL_SCRIPT = textwrap.dedent(
    """
    import faulthandler
    import signal
    import sys

    import durable_streams as ds

    # If Ctrl+C ever fails to stop it, the test asks where it is stuck (SIGUSR1).
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    url, live = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    with ds.stream(url, live=live, offset="now") as res:
        for item in res.iter_json():
            print("item", item, flush=True)
    """
)


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return proc.stdout.readline()


@pytest.mark.parametrize("live", ["long-poll", "sse"])
def test_ctrl_c_stops_a_blocked_sync_reader_at_once(
    proxy: FaultProxy,
    server_url: str,
    stream_url: str,
    tmp_path: Path,
    core_impl: str,
    live: str,
) -> None:
    _json_stream(stream_url, {"n": 1})
    # The server holds the reader's requests for 20 s: without Ctrl+C it would block that long.
    fault = {"path": stream_url.removeprefix(server_url), "delayMs": 20_000, "count": 2}
    assert httpx.post(f"{server_url}/_test/inject-error", json=fault).status_code == 200
    script = tmp_path / "tail.py"
    script.write_text(TAIL_SCRIPT)
    env = {**os.environ, "DURABLE_STREAMS_PURE_PYTHON": "1" if core_impl == "pure" else "0"}
    with subprocess.Popen(
        [sys.executable, str(script), _through(proxy, server_url, stream_url), live],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            assert _readline(proc, 20) == "ready\n"
            assert proxy.wait_stat("requests_forwarded", 1, WAIT)  # it waits for the answer
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=0.75)
            except subprocess.TimeoutExpired:
                # CPython notices a signal that lands in the microseconds between its last
                # check and the start of a blocking recv() only when recv() returns (about 1 in
                # 100 runs here); a second Ctrl+C, as a user would press, lands inside it.
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGUSR1)
                time.sleep(0.5)  # only on failure: give faulthandler time to write the stacks
                proc.kill()
                _, stuck = proc.communicate(timeout=WAIT)
                pytest.fail(f"still running {WAIT} s after Ctrl+C; its stacks:\n{stuck}")
            elapsed = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
        _, stderr = proc.communicate(timeout=WAIT)
    assert proc.returncode == -signal.SIGINT, stderr
    assert "KeyboardInterrupt" in stderr
    assert "durable_streams" in stderr  # it was inside the read, waiting for the server
    assert elapsed < 1.5, elapsed


# -- close() from another thread (a watchdog, a shutdown handler) or another task -------------

# The reference server here ends an idle long-poll after 1 s: a read it did not wake would
# end no sooner than that.
PROMPTLY = 0.5


def _transport_of(res: Any) -> str:
    dispatcher = res._dispatcher or default_dispatcher(True)
    return type(dispatcher.transport_for(res.url)).__name__


def _wait_for(condition: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.005)


@pytest.fixture(params=["native", "httpx"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    from durable_streams._transport._request import TRANSPORT_VARIABLES

    for name in TRANSPORT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if request.param == "httpx":
        monkeypatch.setenv("DURABLE_STREAMS_TRANSPORT", "httpx")
    return str(request.param)


@pytest.mark.parametrize("live", ["long-poll", "sse"])
def test_close_from_another_thread_ends_a_blocked_read(
    proxy: FaultProxy,
    server_url: str,
    stream_url: str,
    live: ds.LiveMode,
    transport: str,
) -> None:
    _json_stream(stream_url, {"n": 1})
    items: list[Any] = []
    errors: list[BaseException] = []
    with ds.Client() as client:
        res = client.stream(_through(proxy, server_url, stream_url), live=live)
        assert _transport_of(res).lower().startswith(transport)

        def read() -> None:
            try:
                for item in res.iter_json():
                    items.append(item)
            except BaseException as exc:
                errors.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        # The catch-up is read; the live request is on its way or waiting for the server.
        _wait_for(lambda: items and res.stats().requests >= 2)
        closed = time.monotonic()
        res.close()
        assert res.is_closed
        reader.join(WAIT)
        elapsed = time.monotonic() - closed
        assert not reader.is_alive()
        assert errors == []  # the loop just ends
        assert items == [{"n": 1}]
        assert res.offset == res.stats().offset  # where to resume: after what it handed out
        if transport == "native" or live == "sse":
            assert elapsed < PROMPTLY, elapsed
        else:
            # httpx shows no socket until the answer's head: the long-poll ends when the
            # server answers it (its timeout at most).
            assert elapsed < 1.0 + PROMPTLY, elapsed
        # Nothing is left open, and the response refuses to read on.
        assert proxy.wait_open_connections(0, WAIT), proxy.open_connections
        with pytest.raises(ds.DurableStreamError, match="closed"):
            res.read_json()
    # A new read resumes where the closed one stopped.
    _append(stream_url, {"n": 2})
    with ds.stream(stream_url, offset=res.offset) as again:
        assert again.read_json() == [{"n": 2}]


@pytest.mark.anyio
@pytest.mark.parametrize("live", ["long-poll", "sse"])
async def test_close_from_another_task_ends_a_waiting_read(
    proxy: FaultProxy, server_url: str, stream_url: str, live: ds.LiveMode
) -> None:
    _json_stream(stream_url, {"n": 1})
    items: list[Any] = []
    async with ds.astream(_through(proxy, server_url, stream_url), live=live) as res:

        async def read() -> None:
            async for item in res.iter_json():
                items.append(item)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read)
            with anyio.fail_after(WAIT):
                while not (items and res.stats().requests >= 2):
                    await anyio.sleep(0.005)
            closed = time.monotonic()
            await res.aclose()
        elapsed = time.monotonic() - closed
    if live == "long-poll" and _transport_of(res) == "AsyncHttpxTransport":
        assert elapsed < 1.0 + PROMPTLY, elapsed  # the answer's head wakes it (see above)
    else:
        assert elapsed < PROMPTLY, elapsed
    assert items == [{"n": 1}]
    assert proxy.wait_open_connections(0, WAIT), proxy.open_connections


def test_close_from_another_thread_while_the_loop_body_runs(
    proxy: FaultProxy, server_url: str, stream_url: str
) -> None:
    _json_stream(stream_url, {"n": 1})
    items: list[Any] = []
    errors: list[BaseException] = []
    in_body, closed = threading.Event(), threading.Event()
    client = ds.Client()
    res = client.stream(_through(proxy, server_url, stream_url), live="sse")

    def read() -> None:
        try:
            for item in res.iter_json():
                items.append(item)
                in_body.set()
                assert closed.wait(WAIT)  # the close comes while the loop handles an item
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    assert in_body.wait(WAIT)
    res.close()  # the iterator waits in the other thread: it is woken, not closed from here
    closed.set()
    reader.join(WAIT)
    assert not reader.is_alive()
    assert errors == []
    assert items == [{"n": 1}]
    assert res.is_closed
    assert res._held.http is None  # the response holds no connection: the pool has them all
    client.close()
    assert proxy.wait_open_connections(0, WAIT), proxy.open_connections


@pytest.mark.usefixtures("native_transport")
def test_close_from_another_thread_while_the_response_opens(
    proxy: FaultProxy, server_url: str, stream_url: str
) -> None:
    _json_stream(stream_url, {"n": 1})
    items: list[Any] = []
    errors: list[BaseException] = []
    with ds.Client() as client:
        # From "now" the first request is a long-poll: `with` waits for its answer.
        res = client.stream(_through(proxy, server_url, stream_url), live="long-poll", offset="now")

        def read() -> None:
            try:
                with res:
                    items.extend(res.iter_json())
            except BaseException as exc:
                errors.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        _wait_for(lambda: res.stats().requests >= 1)
        closed = time.monotonic()
        res.close()
        reader.join(WAIT)
        elapsed = time.monotonic() - closed
        assert not reader.is_alive()
        assert errors == []
        assert items == []
        assert elapsed < PROMPTLY, elapsed
        assert proxy.wait_open_connections(0, WAIT), proxy.open_connections
