"""The store alone, on a clock the tests move: expiry, forks, producers; and offsets, cursors
and timestamps."""

from __future__ import annotations

import pytest

from durable_streams.server._offsets import BEYOND_ANY, format_offset, parse_offset, response_cursor
from durable_streams.server._store import (
    ClosedConflict,
    Conflict,
    CreateSpec,
    Gone,
    Invalid,
    NotFound,
    Producer,
    Store,
    Verdict,
    parse_timestamp,
)

TEXT = CreateSpec(content_type="text/plain")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Store:
    return Store(clock=clock)


def _read(store: Store, path: str, start: int = 0) -> bytes:
    return b"".join(store.read(store.get(path), start, 1 << 30).chunks)


def test_a_ttl_slides_with_each_access(store: Store, clock: Clock) -> None:
    store.create("/ttl", CreateSpec(content_type="text/plain", ttl_seconds=10), b"x")
    for _ in range(3):
        clock.now += 9
        store.touch(store.get("/ttl"))
    clock.now += 10
    with pytest.raises(NotFound):
        store.get("/ttl")
    assert len(store) == 0


def test_an_expiry_time_is_absolute(store: Store, clock: Clock) -> None:
    spec = CreateSpec(content_type="text/plain", expires_at="2001-09-09T01:46:40Z")
    clock.now = 1_000_000_000.0 - 1
    store.create("/at", spec, b"")
    store.touch(store.get("/at"))
    clock.now += 1
    with pytest.raises(NotFound):
        store.get("/at")


def test_an_expired_source_with_forks_is_soft_deleted(store: Store, clock: Clock) -> None:
    store.create("/src", CreateSpec(content_type="text/plain", ttl_seconds=5), b"abc")
    store.create("/fork", CreateSpec(content_type=None, forked_from="/src", ttl_seconds=60), b"")
    clock.now += 5
    with pytest.raises(Gone):
        store.get("/src")
    assert _read(store, "/fork") == b"abc"
    with pytest.raises(Conflict):
        store.create("/src", TEXT, b"")
    store.delete("/fork")
    with pytest.raises(NotFound):
        store.get("/src")
    store.create("/src", TEXT, b"new")
    assert _read(store, "/src") == b"new"


def test_forks_chain_and_stop_at_their_offsets(store: Store) -> None:
    store.create("/a", TEXT, b"one")
    store.append("/a", b"two", content_type="text/plain")
    first_end = store.get("/a").ends[0]
    store.create("/b", CreateSpec(content_type=None, forked_from="/a", fork_offset=first_end), b"")
    store.append("/b", b"-b", content_type="text/plain")
    store.create("/c", CreateSpec(content_type=None, forked_from="/b", fork_sub_offset=0), b"")
    store.append("/a", b"three", content_type="text/plain")
    store.append("/c", b"-c", content_type="text/plain")
    assert _read(store, "/a") == b"onetwothree"
    assert _read(store, "/b") == b"one-b"
    assert _read(store, "/c") == b"one-b-c"
    assert _read(store, "/c", first_end) == b"-b-c"
    assert store.get("/c").content_type == "text/plain"


def test_fork_sub_offsets_split_a_message(store: Store) -> None:
    store.create("/j", CreateSpec(content_type="application/json"), b"[1, 2, 3]")
    json_fork = CreateSpec(content_type=None, forked_from="/j", fork_offset=0, fork_sub_offset=2)
    store.create("/jf", json_fork, b"")
    assert _read(store, "/jf") == b"1,2,"
    with pytest.raises(Invalid):
        store.create(
            "/jx", CreateSpec(None, forked_from="/j", fork_offset=0, fork_sub_offset=4), b""
        )
    store.create("/t", TEXT, b"hello")
    store.create("/tf", CreateSpec(None, forked_from="/t", fork_offset=0, fork_sub_offset=2), b"")
    assert _read(store, "/tf") == b"he"
    with pytest.raises(Invalid):
        store.create(
            "/tx", CreateSpec(None, forked_from="/t", fork_offset=0, fork_sub_offset=6), b""
        )


def test_producer_verdicts(store: Store) -> None:
    store.create("/p", TEXT, b"")

    def verdict(epoch: int, seq: int) -> tuple[Verdict, int, int]:
        outcome = store.append(
            "/p", b"x", content_type="text/plain", producer=Producer("w", epoch, seq)
        )
        assert outcome.check is not None
        return outcome.check.verdict, outcome.check.epoch, outcome.check.seq

    assert verdict(0, 1) == (Verdict.SEQ_GAP, 0, 0)
    assert verdict(0, 0) == (Verdict.ACCEPTED, 0, 0)
    assert verdict(0, 1) == (Verdict.ACCEPTED, 0, 1)
    assert verdict(0, 0) == (Verdict.DUPLICATE, 0, 1)
    assert verdict(0, 3) == (Verdict.SEQ_GAP, 0, 2)
    assert verdict(1, 1) == (Verdict.EPOCH_SEQ_NOT_ZERO, 1, 1)
    assert verdict(1, 0) == (Verdict.ACCEPTED, 1, 0)
    assert verdict(0, 2) == (Verdict.STALE_EPOCH, 1, 2)
    assert _read(store, "/p") == b"xxx"


def test_closing_by_a_producer_is_idempotent_for_that_producer_only(store: Store) -> None:
    store.create("/c", TEXT, b"")
    closer = Producer("w", 0, 0)
    store.append("/c", b"end", content_type="text/plain", producer=closer, close=True)
    again = store.append("/c", b"end", content_type="text/plain", producer=closer, close=True)
    assert again.check is not None and again.check.verdict is Verdict.DUPLICATE
    with pytest.raises(ClosedConflict):
        store.append("/c", b"x", content_type="text/plain", producer=Producer("w", 0, 1))
    assert store.close("/c").closed
    assert _read(store, "/c") == b"end"


def test_reads_stop_at_the_byte_limit_on_message_boundaries(store: Store) -> None:
    store.create("/r", TEXT, b"aaaa")
    for piece in (b"bbbb", b"cccc"):
        store.append("/r", piece, content_type="text/plain")
    stream = store.get("/r")
    first = store.read(stream, 0, 6)
    assert (first.chunks, first.complete) == ([b"aaaa"], False)
    rest = store.read(stream, first.next, 6)
    assert (rest.chunks, rest.complete) == ([b"bbbb"], False)
    assert store.read(stream, 0, 1).chunks == [b"aaaa"]  # at least one whole message
    last = store.read(stream, stream.tail, 6)
    assert (last.chunks, last.next, last.complete) == ([], stream.tail, True)


def test_offsets_round_trip_and_sort() -> None:
    assert format_offset(42) == "0000000000000000_0000000000000042"
    assert parse_offset(format_offset(42)) == 42
    assert parse_offset("1_0") == BEYOND_ANY
    for bad in ("", "now", "-1", "1", "a_b", "1_2_3", "\uff11_\uff12", "0_" + "9" * 41):
        assert parse_offset(bad) is None
    assert sorted([format_offset(n) for n in (100, 9, 10)]) == [
        format_offset(n) for n in (9, 10, 100)
    ]


def test_cursors_never_go_backwards() -> None:
    now = 1_800_000_000.0
    current = int(response_cursor(None, now))
    assert int(response_cursor(str(current - 5), now)) == current
    for _ in range(50):
        assert int(response_cursor(str(current), now)) > current
        assert int(response_cursor(str(current + 1000), now)) > current + 1000
    assert response_cursor("garbage", now) == str(current)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2001-09-09T01:46:40Z", 1_000_000_000.0),
        ("2001-09-09T01:46:40.5Z", 1_000_000_000.5),
        ("2001-09-09T03:46:40+02:00", 1_000_000_000.0),
        ("2001-09-09 01:46:40", 1_000_000_000.0),
        ("2001-02-29T00:00:00Z", None),
        ("2001-09-09", None),
        ("soon", None),
    ],
)
def test_timestamps(text: str, expected: float | None) -> None:
    assert parse_timestamp(text) == expected
