"""benches/node/bench_scenarios.mjs (upstream's scenarios from the TypeScript client) and
benches/bench_side_by_side.py, with tiny counts against the reference server: the Node report
holds the fields of ``durable-streams bench --json``, counts every operation once, and the
side-by-side table is the median of the runs it keeps."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from launch import ReferenceServer
from npm_packages import ensure_installed

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "benches" / "node"
SCRIPT = NODE_DIR / "bench_scenarios.mjs"
SIDE_BY_SIDE = ROOT / "benches" / "bench_side_by_side.py"
ORDERED = ("min", "p50", "p75", "p99", "p999", "max")


@pytest.fixture(scope="module")
def node_client() -> None:
    """``npm ci`` of benches/node from its lockfile, once."""
    ensure_installed(NODE_DIR, ["ci"], "the TypeScript side")


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with ReferenceServer(long_poll_timeout_ms=1000) as reference:
        yield reference.url


def _node(*args: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node is not None, "node is needed for the TypeScript side"
    return subprocess.run(
        [node, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _ours(url: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "durable_streams", "bench", "--url", url, *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_the_node_report_has_the_fields_of_durable_streams_bench(
    node_client: None, server_url: str
) -> None:
    done = _node(
        "--url",
        server_url,
        "--roundtrips",
        "6",
        "--small-count",
        "20",
        "--small-concurrency",
        "7",
        "--large-count",
        "4",
        "--large-size",
        "3000",
        "--large-concurrency",
        "3",
    )
    assert done.returncode == 0, done.stderr
    ts = json.loads(done.stdout)
    assert ts["client"]["name"] == "@durable-streams/client"
    assert (
        ts["client"]["version"]
        == json.loads((NODE_DIR / "package.json").read_text())["dependencies"][
            "@durable-streams/client"
        ]
    )
    ours = _ours(
        server_url, "roundtrip", "append-small", "--count", "6", "--processes", "1", "--waves"
    )

    expected = {"roundtrip": (6, 100, "rtt"), "append-small": (20, 100, "append")}
    expected["append-large"] = (4, 3000, "append")
    assert list(ts["scenarios"]) == list(expected)
    for name, (count, size, metric) in expected.items():
        result = ts["scenarios"][name]
        assert result["errors"] == 0, result["first_error"]
        assert result["ops"] == count  # waves of 7 and 3: exactly the count, the last short
        assert result["bytes"] == count * size
        assert result["latency"][metric]["count"] == count
        assert result["elapsed_s"] > 0
        assert result["client_cpu_s"] > 0
        assert result["ops_per_s"] == pytest.approx(count / result["elapsed_s"], rel=0.01)
        for figures in result["latency"].values():
            values = [figures[key] for key in ORDERED]
            assert values == sorted(values), figures
            assert figures["min"] <= figures["mean"] <= figures["max"]
        # the same fields as this client's report, but the per-process list and the histograms
        reference = ours["scenarios"]["append-small" if name == "append-large" else name]
        assert set(result) == set(reference) - {"processes"}
        assert set(result["latency"]) == set(reference["latency"])
        for metric_name, figures in result["latency"].items():
            assert set(figures) == set(reference["latency"][metric_name]) - {"hdr"}
    rtt = ts["scenarios"]["roundtrip"]["latency"]
    assert rtt["overhead"]["max"] <= rtt["rtt"]["max"]


def test_the_node_script_refuses_an_unknown_scenario(node_client: None, server_url: str) -> None:
    done = _node("--url", server_url, "--scenario", "fan-out")
    assert done.returncode == 2
    assert "unknown scenario fan-out" in done.stderr
    assert done.stdout == ""


def test_side_by_side_reports_the_medians_of_its_runs(node_client: None, tmp_path: Path) -> None:
    out = tmp_path / "side.json"
    done = subprocess.run(
        [
            sys.executable,
            str(SIDE_BY_SIDE),
            "--repeat",
            "2",
            "--roundtrips",
            "5",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # alternating: the second repeat starts with the TypeScript client
    assert done.stderr.split("\n")[:4] == [
        "-- run 1/2: ours",
        "-- run 1/2: ts",
        "-- run 2/2: ts",
        "-- run 2/2: ours",
    ]
    saved = json.loads(out.read_text())
    assert saved["repeat"] == 2
    assert len(saved["runs"]["ours"]) == len(saved["runs"]["ts"]) == 2
    for client in ("ours", "ts"):
        for run in saved["runs"][client]:
            counts = {name: result["ops"] for name, result in run["scenarios"].items()}
            assert counts == {"roundtrip": 5, "append-small": 1000, "append-large": 50}
    rows = {(row["scenario"], row["figure"]): row for row in saved["rows"]}
    row = rows[("append-small", "ops/s")]
    for client in ("ours", "ts"):
        runs = saved["runs"][client]
        assert row[client] == statistics.median(
            r["scenarios"]["append-small"]["ops_per_s"] for r in runs
        )
    assert row["ratio"] == round(row["ours"] / row["ts"], 3)
    p99 = rows[("roundtrip", "rtt p99 ms")]
    assert p99["ts"] == statistics.median(
        r["scenarios"]["roundtrip"]["latency"]["rtt"]["p99"] for r in saved["runs"]["ts"]
    )
    assert f"| append-small | ops/s | {row['ours']:,.0f} |" in done.stdout
    assert "load average" in done.stdout
