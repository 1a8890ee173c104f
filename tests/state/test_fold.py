"""The fast fold of change messages (``_core.fold_changes`` and its pure twin) does exactly
what folding message by message through the checked path does, on any input."""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import durable_streams as ds
from durable_streams import _core
from durable_streams.state import State

# Every core this install has (the pure-Python wheel has no native one).
FOLDS = [
    _core.load(name).fold_changes
    for name in os.environ.get("DURABLE_STREAMS_TEST_IMPLS", "native,pure").split(",")
]

values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=2))
maybe_str = st.one_of(st.sampled_from(["", "a", "b", "k1"]), values)
stamps = st.one_of(
    st.none(),
    st.sampled_from(["2025-01-15T10:30:00Z", "2025-01-15T10:30:00.5+01:00", "nope", "", 5]),
)


@st.composite
def messages(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:  # now and then something that is no change at all
        return draw(
            st.one_of(
                values,
                st.just({"headers": {"control": "reset"}}),
                st.just({"headers": {"control": "snapshot-end", "offset": "0_1"}}),
                st.just({"type": "a", "key": "k1"}),
            )
        )
    headers: dict[str, Any] = {
        "operation": draw(st.sampled_from(["insert", "update", "upsert", "delete", "nope", 3]))
    }
    for name, strategy in (("txid", maybe_str), ("timestamp", stamps), ("control", maybe_str)):
        if draw(st.booleans()):
            headers[name] = draw(strategy)
    message: dict[str, Any] = {"type": draw(maybe_str), "key": draw(maybe_str), "headers": headers}
    if draw(st.integers(0, 4)):
        message["value"] = draw(values)
    return message


def fold_one_by_one(batch: list[Any]) -> State | type[BaseException]:
    state = State(on_malformed="skip")
    state.apply_batch(copy.deepcopy(batch), "0_9")
    return state


def fold_fast(batch: list[Any], fold: Any) -> State:
    state = State(on_malformed="skip")
    messages = copy.deepcopy(batch)
    start = 0
    while start < len(messages):
        start = fold(messages, start, state.types, state.txids)
        if start < len(messages):
            state.apply(messages[start], "0_9")
            start += 1
    state.offset = "0_9"
    return state


def same(a: State, b: Any) -> None:
    assert isinstance(b, State)
    assert (a.types, a.txids, a.skipped, a.snapshot_covers) == (
        b.types,
        b.txids,
        b.skipped,
        b.snapshot_covers,
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(messages(), max_size=30))
def test_native_and_pure_fast_folds_match_the_checked_path(batch: list[Any]) -> None:
    expected = fold_one_by_one(batch)
    for fold in FOLDS:
        same(fold_fast(batch, fold), expected)


def test_fold_batch_raises_what_the_checked_path_raises() -> None:
    good = {"type": "a", "key": "1", "value": 1, "headers": {"operation": "insert"}}
    bad = {"type": "a", "key": "", "value": 1, "headers": {"operation": "insert"}}
    state = State()
    try:
        state.fold_batch([good, bad, good], "0_3")
    except ds.StateMessageError as exc:
        assert exc.offset == "0_3" and "key" in str(exc)
    else:
        raise AssertionError("no error")
    assert state.types == {"a": {"1": 1}}  # the message before the bad one was folded
