"""A reader whose connections are cut after the server answered keeps up with a stream being
written: it retries at once instead of after a growing wait (which only lets the next answer
grow), and an SSE reader whose catch-up burst was cut before its control event takes the
backlog with catch-up requests, then goes back to SSE.

The session's decisions, without I/O; the fault-proxy reads in test_fault_proxy_reads.py show
them against the real server.
"""

from __future__ import annotations

import random

import pytest

import durable_streams as ds
from durable_streams._reading import _session as _read
from durable_streams._reading._session import ReadSession
from durable_streams._retry import RetryPolicy, RetryState

URL = "http://streams.test/s/behind"
POLICY = RetryPolicy(max_retries=None, initial_delay=1.0, max_delay=64.0, deadline=None)
JSON = {
    "content-type": "application/json",
    "stream-next-offset": "0_5",
    "stream-up-to-date": "true",
}
SSE = {"content-type": "text/event-stream"}
CUT = ds.TransportError("connection reset", url=URL)


class Longest(random.Random):
    """Jitter that always waits the longest it may, so the waits show their ceilings."""

    def uniform(self, a: float, b: float) -> float:
        return b


def _session(live: ds.LiveMode, sse_fallback: bool = True) -> ReadSession:
    session = ReadSession(URL, offset="-1", live=live, retry=POLICY, sse_fallback=sse_fallback)
    session._retry = RetryState(POLICY, Longest())
    session.consumer = "json"
    return session


def _caught_up(session: ReadSession) -> None:
    session.request({}, {})
    assert session.on_response(200, JSON) == "body"
    session.on_body_chunk(b"[1,2,3,4,5]")
    assert session.on_body_end().data == [1, 2, 3, 4, 5]


def _mode(session: ReadSession) -> str | None:
    return dict(session.request({}, {}).params).get("live")


def _unanswered(session: ReadSession) -> float | None:
    session.request({}, {})
    return session.retry_delay(CUT)


def _cut_mid_body(session: ReadSession) -> float | None:
    session.request({}, {})
    assert session.on_response(200, JSON) == "body"
    assert session.on_body_chunk(b'[{"n": 1}, {"n"') is None
    return session.retry_delay(CUT)


def _cut_mid_burst(session: ReadSession) -> float | None:
    session.request({}, {})
    assert session.on_response(200, SSE) == "sse"
    assert session.feed(b'event: data\ndata: [{"n": 6}]\n\nevent: data\ndata: [{"n"') == []
    return session.retry_delay(CUT)


def test_waits_grow_only_after_attempts_that_got_nothing() -> None:
    session = _session("long-poll")
    assert [_unanswered(session) for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert [_cut_mid_body(session) for _ in range(4)] == [1.0, 1.0, 1.0, 1.0]
    assert [_unanswered(session) for _ in range(3)] == [1.0, 2.0, 4.0]
    assert session.attempts == 11


def test_cuts_mid_body_still_count_against_the_policy() -> None:
    policy = RetryPolicy(max_retries=3, initial_delay=1.0, deadline=None)
    session = ReadSession(URL, offset="-1", live=False, retry=policy)
    session.consumer = "json"
    assert [_cut_mid_body(session) is not None for _ in range(4)] == [True, True, True, False]


def test_a_cut_sse_burst_is_taken_by_catch_up_requests_then_sse_again() -> None:
    session = _session("sse")
    _caught_up(session)
    assert _cut_mid_burst(session) == 1.0
    assert _mode(session) is None, "the backlog is asked for by a catch-up request"
    assert session.on_response(200, {**JSON, "stream-next-offset": "0_9"}) == "body"
    assert session.on_body_chunk(b"[6,7,8,9]") is None
    assert session.on_body_end().offset == "0_9"
    assert _mode(session) == "sse"


def test_a_burst_cut_after_a_commit_on_the_same_connection_falls_back_too() -> None:
    session = _session("sse")
    _caught_up(session)
    session.request({}, {})
    session.on_response(200, SSE)
    control = b'event: control\ndata: {"streamNextOffset": "0_6", "streamCursor": "c"}\n\n'
    (batch,) = session.feed(b'event: data\ndata: [{"n": 6}]\n\n' + control)
    assert batch.offset == "0_6"
    assert session.feed(b'event: data\ndata: [{"n": 7}]\n\n') == []
    assert session.retry_delay(CUT) == 1.0
    assert _mode(session) is None


def test_sse_that_fails_again_where_the_catch_up_found_nothing_backs_off() -> None:
    """Falling back happens once per offset: an SSE answer that breaks before its first
    control event where a catch-up request just said there is nothing more is broken SSE, not
    a long burst, and is retried with growing waits, not in a loop of quick requests (here
    without the fallback to long-poll, which would end it after three: see below)."""
    session = _session("sse", sse_fallback=False)
    _caught_up(session)
    assert _cut_mid_burst(session) == 1.0
    _caught_up(session)  # the catch-up found nothing newer: still at 0_5
    assert [_cut_mid_burst(session) for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert _mode(session) == "sse"


def test_broken_sse_ends_in_long_poll() -> None:
    session = _session("sse")
    _caught_up(session)
    assert _cut_mid_burst(session) == 1.0
    _caught_up(session)
    assert [_cut_mid_burst(session) for _ in range(2)] == [1.0, 2.0]
    assert _mode(session) == "long-poll"
    assert session.stats().sse_fell_back


def test_an_sse_connection_cut_between_events_reconnects_to_sse() -> None:
    session = _session("sse")
    _caught_up(session)
    session.request({}, {})
    session.on_response(200, SSE)
    control = b'event: control\ndata: {"streamNextOffset": "0_6", "streamCursor": "c"}\n\n'
    assert len(session.feed(b'event: data\ndata: [{"n": 6}]\n\n' + control)) == 1
    assert session.retry_delay(CUT) == 1.0
    assert _mode(session) == "sse"


@pytest.mark.parametrize("status", [503, 500])
def test_error_statuses_back_off_as_before(status: int) -> None:
    session = _session("long-poll")
    delays = []
    for _ in range(3):
        session.request({}, {})
        assert session.on_response(status, {}) == "error"
        delays.append(session.retry_delay(session.error(status, {}, b"")))
    assert delays == [1.0, 2.0, 4.0]


# -- SSE answers that keep ending too soon: the reader goes on by long-poll ---------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _sse_answer_lasting(session: ReadSession, clock: Clock, seconds: float, n: int) -> None:
    """One SSE answer that delivers a batch, then ends cleanly ``seconds`` after it began."""
    assert _mode(session) == "sse"
    session.on_response(200, SSE)
    control = b'event: control\ndata: {"streamNextOffset": "0_%d", "upToDate": true}\n\n' % n
    (batch,) = session.feed(b"event: data\ndata: [%d]\n\n" % n + control)
    assert batch.data == [n]
    clock.now += seconds
    session.on_sse_end()


@pytest.mark.parametrize("fallback", [True, ds.SseFallback(0.5, 2), False])
def test_short_sse_answers_in_a_row_move_the_reader_to_long_poll(
    fallback: ds.SseFallback | bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(_read.time, "monotonic", clock)
    session = ReadSession(URL, offset="-1", live="sse", retry=POLICY, sse_fallback=fallback)
    session.consumer = "json"
    _caught_up(session)
    policy = fallback if isinstance(fallback, ds.SseFallback) else ds.SseFallback()
    short = policy.min_connection_seconds / 2
    # Short answers, one long one (which starts the count again), then short ones.
    for n in range(policy.max_short_connections - 1):
        _sse_answer_lasting(session, clock, short, n)
    _sse_answer_lasting(session, clock, policy.min_connection_seconds, 10)
    for n in range(policy.max_short_connections - 1):
        _sse_answer_lasting(session, clock, short, 20 + n)
        assert not session.stats().sse_fell_back
    _sse_answer_lasting(session, clock, short, 30)
    if fallback is False:
        assert _mode(session) == "sse"
        assert not session.stats().sse_fell_back
    else:
        assert _mode(session) == "long-poll"
        assert session.stats().sse_fell_back
        assert session.stats().mode == "long-poll"


def test_sse_fallback_takes_a_bool_or_limits() -> None:
    with pytest.raises(TypeError, match="sse_fallback"):
        ReadSession(URL, offset="-1", live="sse", sse_fallback=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_short_connections"):
        ds.SseFallback(max_short_connections=0)
    with pytest.raises(ValueError, match="min_connection_seconds"):
        ds.SseFallback(min_connection_seconds=-1)
