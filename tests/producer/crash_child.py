"""A worker for the crash tests: appends numbered messages through a producer with a state
file until it is killed, and says on stdout how far the server has acknowledged.

    python crash_child.py URL STATE ROUND sync|async [--finish]

Prints ``restored N`` (bytes the state file held from an earlier session), then ``acked K``
each time a flush returned (messages 0..K-1 of this round are on the server), then ``done``
after a clean close. ``--finish`` appends nothing: it only delivers what the file holds.
"""

from __future__ import annotations

import asyncio
import sys

from durable_streams import IdempotentProducer, RetryPolicy, SyncIdempotentProducer

FLUSH_EVERY = 25
LIMIT = 20_000  # a bound on the loop, far above what a round sends before its kill
OPTIONS = {
    "producer_id": "crash-worker",
    "content_type": "application/json",
    "linger_ms": 1,
    "max_batch_bytes": 120,
    "max_in_flight": 4,
    "retry": RetryPolicy(max_retries=1000, initial_delay=0.002, max_delay=0.02, deadline=60),
    "headers": {"connection": "close"},  # every request meets the fault proxy's faults
}


def say(line: str) -> None:
    print(line, flush=True)


def run_sync(url: str, state: str, round_no: int, finish: bool) -> None:
    with SyncIdempotentProducer(url, state=state, **OPTIONS) as producer:  # type: ignore[arg-type]
        say(f"restored {producer.buffered_bytes}")
        for n in range(0 if finish else LIMIT):
            producer.append_nowait({"r": round_no, "n": n})
            if (n + 1) % FLUSH_EVERY == 0:
                producer.flush()
                say(f"acked {n + 1}")
        producer.flush()
    say("done")


async def run_async(url: str, state: str, round_no: int, finish: bool) -> None:
    async with IdempotentProducer(url, state=state, **OPTIONS) as producer:  # type: ignore[arg-type]
        say(f"restored {producer.buffered_bytes}")
        for n in range(0 if finish else LIMIT):
            producer.append_nowait({"r": round_no, "n": n})
            if (n + 1) % FLUSH_EVERY == 0:
                await producer.flush()
                say(f"acked {n + 1}")
        await producer.flush()
    say("done")


def main() -> None:
    url, state, round_no, mode = sys.argv[1:5]
    finish = "--finish" in sys.argv[5:]
    if mode == "sync":
        run_sync(url, state, int(round_no), finish)
    else:
        asyncio.run(run_async(url, state, int(round_no), finish))


if __name__ == "__main__":
    main()
