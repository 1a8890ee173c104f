"""The adapter's line protocol itself: one answer per line, errors instead of silence."""

from __future__ import annotations

from conformance_runner import AdapterHolder


def test_unknown_command_is_not_supported(adapter: AdapterHolder, conformance_server: str) -> None:
    process = adapter.get()
    process.request({"type": "init", "serverUrl": conformance_server})
    result = process.request({"type": "teleport", "path": "/x"})
    assert result == {
        "type": "error",
        "success": False,
        "commandType": "teleport",
        "errorCode": "NOT_SUPPORTED",
        "message": "unknown command type 'teleport'",
    }


def test_malformed_line_gets_an_error_answer(adapter: AdapterHolder) -> None:
    process = adapter.get()
    assert process.proc.stdin is not None
    process.proc.stdin.write(b"{not json\n")
    process.proc.stdin.flush()
    result = process.receive("a malformed line")
    assert result["success"] is False
    assert result["errorCode"] == "PARSE_ERROR"


def test_missing_field_is_an_invalid_argument(
    adapter: AdapterHolder, conformance_server: str
) -> None:
    process = adapter.get()
    process.request({"type": "init", "serverUrl": conformance_server})
    result = process.request({"type": "append", "data": "x"})  # no path
    assert result["success"] is False
    assert result["commandType"] == "append"
    assert result["errorCode"] == "INVALID_ARGUMENT"
    assert "path" in result["message"]
