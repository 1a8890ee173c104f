"""The figures of ``durable-streams bench``: latency histograms, one process's result, and the
merge of several processes' results into the report (JSON) and its table.

Latencies go into HdrHistograms (the ``hdrhistogram`` package, the ``bench`` extra) in
microseconds, 1 µs to an hour at 3 significant digits. A process sends its histograms encoded
(HdrHistogram's compressed base64 form); the report adds their counts, so a merged p99 is the
p99 of every operation of every process, never an average of percentiles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

__all__ = ["Histogram", "Outcome", "merge", "table"]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3


class Histogram:
    """Latencies in microseconds; :meth:`record` takes seconds."""

    def __init__(self, hdr: Any = None) -> None:
        self._hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS) if hdr is None else hdr

    def record(self, seconds: float) -> None:
        self._hdr.record_value(min(HIGHEST_US, max(LOWEST_US, round(seconds * 1e6))))

    @property
    def count(self) -> int:
        return int(self._hdr.get_total_count())

    def add(self, other: Histogram) -> None:
        self._hdr.add(other._hdr)

    def encode(self) -> str:
        return bytes(self._hdr.encode()).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Histogram:
        merged = cls()
        merged._hdr.decode_and_add(text.encode("ascii"))
        return merged

    def summary(self) -> dict[str, Any]:
        """count, min, mean, p50, p75, p99, p99.9 and max in milliseconds, and ``hdr``, the
        histogram encoded (HdrHistogram's compressed base64 form) for other tools."""
        if not self.count:
            return {"count": 0, "unit": "ms"}

        def ms(microseconds: float) -> float:
            return round(microseconds / 1000, 3)

        hdr = self._hdr
        return {
            "count": self.count,
            "unit": "ms",
            "min": ms(hdr.get_min_value()),
            "mean": ms(hdr.get_mean_value()),
            "p50": ms(hdr.get_value_at_percentile(50.0)),
            "p75": ms(hdr.get_value_at_percentile(75.0)),
            "p99": ms(hdr.get_value_at_percentile(99.0)),
            "p999": ms(hdr.get_value_at_percentile(99.9)),
            "max": ms(hdr.get_max_value()),
            "hdr": self.encode(),
        }


@dataclass
class Outcome:
    """What one process did in one scenario, in a form that crosses process boundaries.

    ``elapsed`` and ``cpu`` (the process's CPU seconds, every thread) cover the measured part
    only, from the moment every process was ready to the last operation's answer."""

    ops: int = 0
    bytes: int = 0
    errors: int = 0
    first_error: str | None = None
    elapsed: float = 0.0
    cpu: float = 0.0
    histograms: dict[str, str] = field(default_factory=dict)
    failed: str | None = None  # the scenario could not run (setup failed, a deadline passed)


def merge(outcomes: Sequence[Outcome], settings: dict[str, Any]) -> dict[str, Any]:
    """The report of one scenario: totals, rates over the longest process's elapsed time,
    client CPU per operation, and the histograms merged."""
    ops = sum(o.ops for o in outcomes)
    size = sum(o.bytes for o in outcomes)
    cpu = sum(o.cpu for o in outcomes)
    elapsed = max((o.elapsed for o in outcomes), default=0.0)
    histograms: dict[str, Histogram] = {}
    for outcome in outcomes:
        for name, encoded in outcome.histograms.items():
            histograms.setdefault(name, Histogram()).add(Histogram.decode(encoded))
    errors = [o.first_error for o in outcomes if o.first_error] + [
        o.failed for o in outcomes if o.failed
    ]
    return {
        "settings": settings,
        "ops": ops,
        "bytes": size,
        "errors": sum(o.errors for o in outcomes),
        "failed": [o.failed for o in outcomes if o.failed],
        "first_error": errors[0] if errors else None,
        "elapsed_s": round(elapsed, 4),
        "ops_per_s": round(ops / elapsed, 1) if elapsed else None,
        "mb_per_s": round(size / elapsed / 1e6, 3) if elapsed else None,
        "client_cpu_s": round(cpu, 4),
        "client_cpu_us_per_op": round(cpu / ops * 1e6, 1) if ops else None,
        "client_cores": round(cpu / elapsed, 3) if elapsed else None,
        "processes": [
            {
                "ops": o.ops,
                "elapsed_s": round(o.elapsed, 4),
                "cpu_s": round(o.cpu, 4),
                "counts": {name: Histogram.decode(h).count for name, h in o.histograms.items()},
            }
            for o in outcomes
        ],
        "latency": {name: h.summary() for name, h in sorted(histograms.items())},
    }


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    return lines


def table(report: dict[str, Any]) -> str:
    """The final table: throughput and client CPU per scenario, then every latency."""
    rate = [["scenario", "ops", "errors", "seconds", "ops/s", "MB/s", "CPU µs/op", "cores"]]
    latency = [["latency (ms)", "count", "min", "mean", "p50", "p75", "p99", "p99.9", "max"]]
    for name, result in report["scenarios"].items():
        rate.append(
            [
                name,
                _number(result["ops"]),
                _number(result["errors"]),
                _number(result["elapsed_s"], 2),
                _number(result["ops_per_s"]),
                _number(result["mb_per_s"], 2),
                _number(result["client_cpu_us_per_op"]),
                _number(result["client_cores"], 2),
            ]
        )
        for metric, figures in result["latency"].items():
            keys = ("min", "mean", "p50", "p75", "p99", "p999", "max")
            latency.append(
                [f"{name} {metric}", _number(figures["count"])]
                + [_number(figures.get(key), 2) for key in keys]
            )
    lines = _columns(rate)
    if len(latency) > 1:
        lines += ["", *_columns(latency)]
    lines.append(
        "CPU µs/op: the client's CPU time per operation, all its processes; cores: that CPU "
        "over the elapsed time (near the process count: the client is the bottleneck)."
    )
    return "\n".join(lines)
