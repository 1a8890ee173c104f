"""The loop thread behind the sync producer and the sync state view: one ``call()`` for both,
whose timeout cancels what is still running and keeps what finished as the time ran out."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import pytest

from durable_streams._loop_thread import LoopThread


class Late(Exception):
    pass


@pytest.fixture
def runner() -> Any:
    thread = LoopThread("test-loop-thread")
    yield thread
    thread.stop(5.0)


def test_call_returns_the_result(runner: LoopThread) -> None:
    async def answer() -> int:
        return 42

    assert runner.call(answer(), 5.0, Late) == 42


def test_a_timeout_cancels_the_call_and_raises_the_given_error(runner: LoopThread) -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(Late):
        runner.call(forever(), 0.01, Late)
    assert cancelled.wait(5.0)


def test_a_call_that_finished_as_the_time_ran_out_keeps_its_result(
    runner: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait timed out, but the coroutine had finished by the time it was to be cancelled:
    its result counts (a cancel that did not take must not turn a success into an error)."""
    submit = runner.submit

    def late_wait(coro: Any) -> concurrent.futures.Future[Any]:
        future = submit(coro)
        future.result(5.0)  # finished...
        result = future.result

        def timed_out(timeout: float | None = None) -> Any:
            future.result = result  # type: ignore[method-assign]
            raise concurrent.futures.TimeoutError  # ... but the waiter had timed out

        future.result = timed_out  # type: ignore[method-assign]
        return future

    monkeypatch.setattr(runner, "submit", late_wait)

    async def answer() -> str:
        return "done"

    assert runner.call(answer(), 0.01, Late) == "done"


def test_stop_leaves_no_task_pending(runner: LoopThread) -> None:
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    runner.submit(forever())
    assert started.wait(5.0)
    runner.stop(5.0)
    assert runner.loop.is_closed()  # no 'Task was destroyed but it is pending' either
