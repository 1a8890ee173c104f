"""State Protocol messages and folding, with no server: what is accepted, what is a typed
error naming its offset, and what each message does to the state."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import durable_streams as ds
from durable_streams.state import (
    Change,
    Control,
    State,
    change_message,
    control_message,
    parse_message,
)


def change(op: str, key: str = "1", value: Any = None, **headers: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "user", "key": key, "headers": {"operation": op, **headers}}
    if value is not None:
        message["value"] = value
    return message


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ([1, 2], "not a JSON object"),
        ({"type": "user", "key": "1"}, "no headers"),
        (change("rename", value=1), "unknown operation"),
        ({"key": "1", "value": 1, "headers": {"operation": "insert"}}, "type"),
        ({"type": "", "key": "1", "value": 1, "headers": {"operation": "insert"}}, "type"),
        ({"type": "user", "key": 7, "value": 1, "headers": {"operation": "insert"}}, "key"),
        (change("insert"), "without a value"),
        (change("update"), "without a value"),
        (change("insert", value=1, txid=""), "txid"),
        (change("insert", value=1, timestamp="yesterday"), "timestamp"),
        ({"headers": {"control": "rewind"}}, "unknown control"),
        ({"headers": {"control": "reset", "offset": 5}}, "offset"),
    ],
)
def test_malformed_messages_are_typed_errors_naming_their_offset(
    message: Any, problem: str
) -> None:
    with pytest.raises(ds.StateMessageError, match=problem) as info:
        parse_message(message, "0000000000000000_0000000000000042")
    assert info.value.offset == "0000000000000000_0000000000000042"
    assert isinstance(info.value, ds.ParseError) and isinstance(info.value, ValueError)


def test_what_the_typescript_writer_and_reference_server_add_is_accepted() -> None:
    upsert = parse_message(change("upsert", value={"a": 1}, offset="0_5", sourceApp="x"))
    assert isinstance(upsert, Change) and upsert.operation == "upsert"
    gone = parse_message(change("delete"))  # no value, as the TypeScript helper writes it
    assert isinstance(gone, Change) and gone.value is None and not gone.has_old_value
    stamped = parse_message(change("insert", value=0, timestamp="2025-01-15T10:30:00.123Z"))
    assert isinstance(stamped, Change) and stamped.timestamp == "2025-01-15T10:30:00.123Z"
    null_old = parse_message({**change("update", value=2), "old_value": None})
    assert isinstance(null_old, Change) and null_old.has_old_value and null_old.old_value is None
    control = parse_message({"headers": {"control": "snapshot-end", "offset": "0_9"}}, "0_10")
    assert control == Control("snapshot-end", "0_9", "0_10")


def test_messages_are_laid_out_as_the_typescript_helpers_lay_them_out() -> None:
    stamp = dt.datetime(2025, 1, 15, 10, 30, 0, 123456, tzinfo=dt.timezone.utc)
    message = change_message(
        "update",
        "user",
        "1",
        {"id": "1"},
        old_value={"id": "0"},
        txid="t1",
        timestamp=stamp,
        headers={"sourceApp": "x", "operation": "ignored"},
    )
    assert list(message) == ["type", "key", "value", "old_value", "headers"]
    assert list(message["headers"]) == ["sourceApp", "txid", "timestamp", "operation"]
    assert message["headers"]["timestamp"] == "2025-01-15T10:30:00.123Z"
    assert message["headers"]["operation"] == "update"
    assert "value" not in change_message("delete", "user", "1")
    # The offset also under source_offset: the reference server overwrites headers.offset.
    assert control_message("snapshot-end", "0_7") == {
        "headers": {"control": "snapshot-end", "offset": "0_7", "source_offset": "0_7"}
    }
    served = {"headers": {"control": "snapshot-end", "offset": "9_9", "source_offset": "0_7"}}
    assert parse_message(served) == Control("snapshot-end", "0_7")
    with pytest.raises(ValueError, match="carries no value"):
        change_message("delete", "user", "1", {"x": 1})
    with pytest.raises(ValueError, match="needs a value"):
        change_message("insert", "user", "1")
    with pytest.raises(ValueError, match="timezone"):
        change_message("insert", "user", "1", 1, timestamp=dt.datetime(2025, 1, 1))


def test_folding_changes_and_controls() -> None:
    state = State()
    state.apply_batch(
        [
            change("insert", "1", {"n": 1}, txid="a"),
            change("insert", "2", {"n": 2}),
            change("update", "1", {"n": 10}),  # replaces the value whole
            change("upsert", "3", "plain values are fine"),
            change("delete", "2"),
            change("delete", "missing"),  # nothing to delete: no error
            change("update", "4", {"n": 4}),  # an update of a missing key stores it
            {"type": "config", "key": "theme", "value": "dark", "headers": {"operation": "insert"}},
        ],
        "0_8",
    )
    assert state.snapshot() == {
        "user": {"1": {"n": 10}, "3": "plain values are fine", "4": {"n": 4}},
        "config": {"theme": "dark"},
    }
    assert state.offset == "0_8" and state.txids == {"a"}
    state.apply(control_message("snapshot-start"))
    assert state.in_snapshot
    state.apply(control_message("snapshot-end", "0_5"))
    assert not state.in_snapshot and state.snapshot_covers == "0_5"
    state.apply(control_message("reset"))
    assert state.snapshot() == {}


def test_malformed_messages_can_be_skipped_and_counted() -> None:
    state = State(on_malformed="skip")
    state.apply_batch([change("insert", "1", 1), "garbage", change("nope", "2", 2)], "0_3")
    assert state.snapshot() == {"user": {"1": 1}} and state.skipped == 2
    with pytest.raises(ds.StateMessageError):
        State().apply_batch(["garbage"], "0_1")


def test_unhashable_operations_and_controls_are_malformed_not_type_errors() -> None:
    for message in ({"headers": {"operation": []}}, {"headers": {"control": {}}}):
        with pytest.raises(ds.StateMessageError):
            parse_message(message, "0_1")
    state = State(on_malformed="skip")
    state.fold_batch(({"headers": {"operation": []}}, change("insert", "1", 1)), "0_2")
    assert state.snapshot() == {"user": {"1": 1}} and state.skipped == 1


def test_the_writer_never_writes_what_readers_refuse() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        change_message("insert", "user", "1", 1, timestamp="")
    with pytest.raises(ValueError, match="txid"):
        change_message("insert", "user", "1", 1, headers={"txid": ""})
    early = dt.datetime(999, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    stamped = change_message("insert", "user", "1", 1, timestamp=early)
    assert stamped["headers"]["timestamp"] == "0999-01-02T03:04:05.000Z"
    assert isinstance(parse_message(stamped), Change)
