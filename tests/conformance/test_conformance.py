"""Every official conformance case, against the reference server, through the adapter.

One test per YAML case, id ``<suite id>/<case id>``, for each variant (core implementation x
sync/async API). The three cases known to be defective upstream are strict xfails; nothing
else is skipped: a case needing a feature the adapter does not declare fails with that
reason, and the YAML ``skip`` key (upstream's note about another client) is not honoured.
"""

from __future__ import annotations

import httpx
import pytest
from conformance_runner import KNOWN_DEFECTS, AdapterHolder, Case, load_cases, run_case

CASES = load_cases()


def _param(case: Case) -> object:
    reason = KNOWN_DEFECTS.get(case.id)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(case, id=case.id, marks=marks)


def test_known_defects_exist() -> None:
    ids = {case.id for case in CASES}
    assert set(KNOWN_DEFECTS) <= ids, set(KNOWN_DEFECTS) - ids


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_case(
    case: Case, adapter: AdapterHolder, conformance_server: str, runner_http: httpx.Client
) -> None:
    process = adapter.get()
    init = process.request({"type": "init", "serverUrl": conformance_server})
    assert init.get("success") is True, init
    core = adapter.variant.implementation
    assert f"{core} core" in str(init.get("clientName")), (
        f"the adapter runs {init.get('clientName')!r}, not the {core} core"
    )
    try:
        run_case(case, process, conformance_server, runner_http, init.get("features") or {})
    except BaseException:
        tail = process.stderr_tail()
        if tail:
            print(f"--- adapter stderr ({adapter.variant.id}) ---\n{tail}")
        raise
