"""deploy/nginx/durable-streams-cache.conf, run by a real nginx in front of the test server.

nginx comes from the system's packages: installed with apt-get when missing (tests/nginx.py),
and a machine where that cannot happen fails these tests, saying why, rather than skipping
them. The origin's requests are counted twice: by nginx's access log (which requests went
upstream) and by a FaultProxy between nginx and the origin, faults off (what reached it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

import nginx
from durable_streams import AsyncDurableStream, DurableStream, astream, stream
from faultproxy import FaultProxy
from nginx import NginxCache

pytestmark = pytest.mark.integration

READERS = 20
MESSAGES = 50


@pytest.fixture(scope="module")
def origin(server_url: str) -> Iterator[FaultProxy]:
    """The test server behind a counting proxy that changes nothing."""
    with FaultProxy(server_url, fragment=False) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def cache(origin: FaultProxy) -> Iterator[NginxCache]:
    try:
        nginx = NginxCache(origin.url).start()
    except RuntimeError as exc:
        pytest.fail(f"nginx could not be installed or started: {exc}")
    try:
        yield nginx
    finally:
        nginx.stop()


def _lines(cache: NginxCache, path: str, at_least: int = 0) -> list[dict[str, str]]:
    """The access log's lines for ``path``, once there are ``at_least`` of them: nginx writes
    a line when it finalizes the request, which can come after the client has its answer."""

    def of_path(lines: list[dict[str, str]]) -> list[dict[str, str]]:
        return [line for line in lines if urlsplit(line["uri"]).path == path]

    return of_path(cache.wait_for_lines(lambda lines: len(of_path(lines)) >= at_least))


def _query(line: dict[str, str]) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(line["uri"]).query).items()}


@pytest.mark.anyio
async def test_long_poll_readers_share_one_origin_request_per_offset(
    server_url: str, cache: NginxCache, origin: FaultProxy
) -> None:
    path = f"/test/{uuid.uuid4().hex}"
    handle = await AsyncDurableStream.create(server_url + path, content_type="application/json")
    received: list[list[int]] = [[] for _ in range(READERS)]
    progress = anyio.Condition()
    before = origin.stats["requests_forwarded"]

    async def read(n: int) -> None:
        async with astream(cache.url + path, live="long-poll") as res:
            async for item in res.iter_json():
                received[n].append(item["n"])
                async with progress:
                    progress.notify_all()

    async def everyone_has(count: int) -> None:
        async with progress:
            while min(len(got) for got in received) < count:
                await progress.wait()

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tasks:
            for n in range(READERS):
                tasks.start_soon(read, n)
            # One message at a time, the next once every reader has the last: every message
            # is a new offset with all twenty readers waiting at it.
            for n in range(MESSAGES):
                await handle.append({"n": n})
                await everyone_has(n + 1)
            await handle.close_stream()
    await handle.aclose()

    assert received == [list(range(MESSAGES))] * READERS

    def long_polls_in(lines: list[dict[str, str]]) -> list[dict[str, str]]:
        return [
            line
            for line in lines
            if urlsplit(line["uri"]).path == path and _query(line).get("live") == "long-poll"
        ]

    def enough_answered(lines: list[dict[str, str]]) -> bool:
        answered = [line for line in long_polls_in(lines) if line["status"] == "200"]
        return len(answered) >= READERS * (MESSAGES - 1)

    long_polls = long_polls_in(cache.wait_for_lines(enough_answered))
    upstream = [line for line in long_polls if line["upstream"] != "-"]
    offsets = {_query(line)["offset"] for line in long_polls}
    answered = [line for line in long_polls if line["status"] == "200"]
    # Every message but the first (which a reader may have had from its catch-up read) came
    # to every reader in a long-poll answer of its own, at an offset of its own. (The last
    # answers, the closing 204s, may not be in the log yet: nginx writes a line after the
    # reader has its answer.)
    assert len(answered) >= READERS * (MESSAGES - 1)
    assert len(offsets) >= MESSAGES - 1
    assert all(line["status"] in ("200", "204") for line in long_polls), long_polls
    # About one origin request per offset: far from one per reader and offset.
    assert len(upstream) <= 3 * len(offsets), (len(upstream), len(offsets))
    # The origin's own count agrees: the readers' catch-up requests (one each), the long-polls
    # nginx passed on, nothing else.
    at_origin = origin.stats["requests_forwarded"] - before
    assert at_origin <= READERS + len(upstream) + 5, (at_origin, len(upstream))
    assert at_origin < READERS * len(offsets) // 5


def test_sse_passes_through_unstored(server_url: str, cache: NginxCache) -> None:
    path = f"/test/{uuid.uuid4().hex}"
    handle = DurableStream.create(server_url + path, content_type="application/json")
    with handle, stream(cache.url + path, live="sse") as res:
        handle.append({"n": 0})
        items = res.iter_json()
        assert next(items) == {"n": 0}
        handle.append({"n": 1})
        assert next(items) == {"n": 1}
        handle.close_stream()
        assert list(items) == []
        assert res.stream_closed

    def sse_lines(lines: list[dict[str, str]]) -> list[dict[str, str]]:
        return [
            line
            for line in lines
            if urlsplit(line["uri"]).path == path and _query(line).get("live") == "sse"
        ]

    sse = sse_lines(cache.wait_for_lines(lambda lines: bool(sse_lines(lines))))
    assert sse and all(line["cache"] == "-" and line["status"] == "200" for line in sse)


def test_what_must_be_fresh_is_not_stored(server_url: str, cache: NginxCache) -> None:
    path = f"/test/{uuid.uuid4().hex}"
    with DurableStream.create(server_url + path, content_type="application/json") as handle:
        first = handle.append({"n": 0}).offset
        assert first is not None
        # A catch-up answer at the tail is not stored, so the next append shows at once.
        with stream(cache.url + path, offset=first) as res:
            assert res.read_json() == []
        second = handle.append({"n": 1}).offset
        with stream(cache.url + path, offset=first) as res:
            assert res.read_json() == [{"n": 1}]
        # offset=now and HEAD always reach the origin.
        with stream(cache.url + path, offset="now") as res:
            assert res.read_json() == []
        assert DurableStream(cache.url + path).head().offset == second
        third = handle.append({"n": 2}).offset
        assert DurableStream(cache.url + path).head().offset == third
    seen = [
        (line["method"], _query(line).get("offset"), line["cache"])
        for line in _lines(cache, path, at_least=5)
    ]
    assert seen == [
        ("GET", first, "MISS"),
        ("GET", first, "MISS"),
        ("GET", "now", "BYPASS"),
        ("HEAD", None, "BYPASS"),
        ("HEAD", None, "BYPASS"),
    ]


def test_no_nginx_and_no_apt_fails_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nginx, "SEARCH_PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="neither nginx nor apt-get"):
        nginx.ensure_nginx(timeout=5)


@pytest.mark.anyio
async def test_idle_long_poll_readers_stay_together(server_url: str, cache: NginxCache) -> None:
    path = f"/test/{uuid.uuid4().hex}"
    handle = await AsyncDurableStream.create(server_url + path, content_type="application/json")
    received: list[list[int]] = [[] for _ in range(READERS)]
    got_one = anyio.Event()

    async def read(n: int) -> None:
        async with astream(cache.url + path, live="long-poll") as res:
            async for item in res.iter_json():
                received[n].append(item["n"])
                if all(received):
                    got_one.set()

    def empty_answers() -> list[dict[str, str]]:
        return [
            line
            for line in _lines(cache, path)
            if _query(line).get("live") == "long-poll" and line["status"] == "204"
        ]

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            for n in range(READERS):
                tasks.start_soon(read, n)
            await handle.append({"n": 0})
            await got_one.wait()
            # Three long-poll windows pass with nothing new (the server's window is 1 s).
            while len(empty_answers()) < 3 * READERS:
                await anyio.sleep(0.1)  # polling nginx's log: nothing to wait on
            await handle.append({"n": 1})
            await handle.close_stream()
    await handle.aclose()

    assert received == [[0, 1]] * READERS
    empty = empty_answers()
    from_origin = [line for line in empty if line["upstream"] != "-"]
    # Each window's 204 went to every reader from one origin request: stored, the readers all
    # got the same next cursor, so the next window's requests were one key again. (Not
    # stored, nginx's lock passes the waiters to the origin one after another, each gets
    # a cursor of its own, and every reader costs the origin a request per window.)
    assert len(from_origin) <= len(empty) // 5, (len(from_origin), len(empty))
