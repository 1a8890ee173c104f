"""What decoding costs when the reader has just woken up, as a live tail's reader has.

    .venv/bin/python benches/cold_decode.py [--events 200] [--pause-ms 5] [--repeat 3]

compare.py measures ``orjson.loads`` alone in a tight loop (hot caches) while the live
readers it sits next to decode one event after each wait for the network (cold caches, a
CPU that may have clocked down). This runs both decoders both ways on the same SSE bytes
(``_payloads``: events of 1,000 messages): the native core's ``SseDecoder`` and
``orjson.loads`` on each event's JSON, one event at a time, back to back and with a sleep of
``--pause-ms`` before each event (the sleep is not counted: CPU time only). The ratio of the
paced to the back-to-back figure is what waking costs per event; it is why a live read's CPU
per message sits well above ``orjson.loads`` in a loop for every client, ours included.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import _payloads as P
import orjson

from durable_streams._core import _native as _core


def per_message(decode: Callable[[bytes], int], inputs: list[bytes], pause: float) -> float:
    cpu = 0.0
    got = 0
    for data in inputs:
        if pause:
            time.sleep(pause)
        start = time.process_time()
        got += decode(data)
        cpu += time.process_time() - start
    return cpu / got * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--pause-ms", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    per = P.MSGS_PER_EVENT
    payloads = [P.array_body(per, i * per) for i in range(args.events)]
    events = [
        b"event: data\ndata:%s\n\n%s" % (p, P.control_event(f"0_{(i + 1) * per}"))
        for i, p in enumerate(payloads)
    ]
    decoder = _core.SseDecoder("json")

    def native(event: bytes) -> int:
        return sum(len(item) for item in decoder.feed(event) if type(item) is list)

    def with_orjson(payload: bytes) -> int:
        return len(orjson.loads(payload))

    rows: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for pause in (0.0, args.pause_ms / 1000):
            rows.setdefault(f"core, pause {pause * 1000:g} ms", []).append(
                per_message(native, events, pause)
            )
            rows.setdefault(f"orjson, pause {pause * 1000:g} ms", []).append(
                per_message(with_orjson, payloads, pause)
            )
    print(f"{args.events} events of {per} messages; CPU µs per message, median of {args.repeat}")
    for name, values in rows.items():
        print(f"  {name:<24} {statistics.median(values):.3f}")
    for who in ("core", "orjson"):
        hot = statistics.median(rows[f"{who}, pause 0 ms"])
        cold = statistics.median(rows[f"{who}, pause {args.pause_ms:g} ms"])
        print(f"  {who}: paced / back to back = {cold / hot:.2f}x")


if __name__ == "__main__":
    main()
