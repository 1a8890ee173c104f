"""The producer's state machine alone: scripted answers, no server, no I/O."""

from __future__ import annotations

import sys
from concurrent.futures import Future

import pytest

from durable_streams import (
    AppendResult,
    BufferFullError,
    JSONParseError,
    ProducerClosedError,
    SequenceGapError,
    SequenceReusedError,
    StaleEpochError,
    StreamClosedError,
    TransportError,
)
from durable_streams._writing._sequencer import (
    MAX_PRODUCER_NUMBER,
    Batch,
    ProducerSettings,
    Sequencer,
    StoredBatch,
    fresh_epoch,
    settle,
)

URL = "http://127.0.0.1:1/s"


def connect_error() -> TransportError:
    return TransportError("request failed: ConnectError", url=URL)


OK = (200, {}, b"")


def make(**overrides: object) -> Sequencer:
    settings: dict[str, object] = {
        "url": URL,
        "producer_id": "p",
        "content_type": "application/json",
        "linger": 0.0,
        "max_batch_bytes": 16,
        "max_in_flight": 3,
    }
    settings.update(overrides)
    return Sequencer(ProducerSettings(**settings))  # type: ignore[arg-type]


def sent(core: Sequencer) -> list[Batch]:
    return core.due(now=1e9)[0]


def numbers(batches: list[Batch]) -> list[tuple[int, int]]:
    return [(b.epoch, b.seq) for b in batches]


def gap(expected: int, received: int) -> tuple[int, dict[str, str], bytes]:
    headers = {"producer-expected-seq": str(expected), "producer-received-seq": str(received)}
    return 409, headers, b"Producer sequence gap"


def test_batches_split_at_max_batch_bytes_and_a_big_message_goes_alone() -> None:
    core = make(max_in_flight=10)
    for item in [1, 2, 3, 4, 5, "1" * 30, 6]:
        core.add(item)
    bodies = [b.body for b in sent(core)]
    # the first epoch sends one batch until the server acknowledges it
    assert bodies == [b"[1,2,3,4,5]"]
    assert core.on_answer(core._in_flight[0], *OK) is None
    bodies += [b.body for b in sent(core)]
    assert bodies == [b"[1,2,3,4,5]", b"[" + b"1" * 30 + b"]", b"[6]"]
    assert all(len(b) <= 16 for b in bodies if b.count(b",") > 0)


def test_a_new_epoch_sends_one_batch_until_acknowledged_then_the_window_opens() -> None:
    core = make()
    for i in range(8):
        core.add("1" * 10 + str(i))  # one message per batch
    first = sent(core)
    assert numbers(first) == [(0, 0)]
    assert sent(core) == []
    core.on_answer(first[0], *OK)
    assert numbers(sent(core)) == [(0, 1), (0, 2), (0, 3)]


def test_gap_answered_before_an_earlier_batch_was_stored_is_resent_at_once() -> None:
    core = make()
    for i in range(3):
        core.add("1" * 10 + str(i))
    core.on_answer(sent(core)[0], *OK)
    b1, b2 = sent(core)
    # the server took b2 before b1, but b1's acknowledgement is processed first
    core.on_answer(b1, *OK)
    core.on_answer(b2, *gap(1, 2))
    assert core.take_failures() == []
    assert sent(core) == [b2] and (b2.epoch, b2.seq) == (0, 2)
    core.on_answer(b2, *OK)
    assert core.idle()


def test_gap_waits_for_earlier_batches_then_resends_with_the_same_number() -> None:
    core = make()
    for i in range(4):
        core.add("1" * 10 + str(i))
    core.on_answer(sent(core)[0], *OK)
    b1, b2, b3 = sent(core)
    # seq 2 overtook seq 1 on the way: the server wants 1 first
    assert core.on_answer(b2, *gap(1, 2)) is None
    assert sent(core) == []  # seq 1 is still in flight
    core.on_answer(b1, *OK)
    resent = sent(core)
    assert resent == [b2] and (b2.epoch, b2.seq) == (0, 2)
    assert b3.seq == 3


def test_gap_waits_for_an_earlier_batch_that_is_queued_for_resending() -> None:
    core = make()
    for i in range(4):
        core.add("1" * 10 + str(i))
    core.on_answer(sent(core)[0], *OK)
    b1, b2, b3 = sent(core)
    core.on_answer(b2, *gap(1, 2))  # b1 is in flight: b2 waits
    core.on_answer(b1, 403, {"producer-epoch": "0"}, b"")  # pretend: b1 must be resent
    # b1 now waits in the queue, nothing before b3 is in flight, but b3 must still wait
    core.on_answer(b3, *gap(1, 3))
    assert core.take_failures()[0].seq == 1  # only b1 (fenced, no auto_claim) failed
    assert b3.id in {b.id for b in core._ready} or b3.id not in core._unresolved


def test_gap_with_nothing_before_it_fails_the_batch_and_everything_after_it() -> None:
    """Gap-less: the server lost this producer's state; nothing after the failed batch may
    be stored in this session, or the stream would have a hole in the middle."""
    core = make()
    for i in range(4):
        core.add("1" * 10 + str(i))
    core.on_answer(sent(core)[0], *OK)
    b1, b2, b3 = sent(core)
    core.on_answer(b1, *OK)
    core.on_answer(b2, *gap(0, 2))
    assert sent(core) == [b2]
    core.add(99)  # still in the open batch when the gap is found
    core.on_answer(b2, *gap(0, 2))
    failed = core.take_failures()
    assert [(f.seq, type(f.error)) for f in failed] == [
        (2, SequenceGapError),
        (4, ProducerClosedError),  # the open batch, sealed and failed at once
    ]
    assert "gap-less" in str(failed[1].error) and failed[1].error.__cause__ is failed[0].error
    assert sent(core) == []  # b3 is on its way under the old epoch: it settles by its answer
    core.on_answer(b3, *gap(0, 3))
    (follower,) = core.take_failures()
    assert follower.seq == 3 and isinstance(follower.error, ProducerClosedError)
    assert sent(core) == [] and core.epoch == 1 and core.next_seq == 0  # where a next one starts
    assert core.idle() and core.messages_taken == 2  # the two acknowledged ones
    with pytest.raises(ProducerClosedError) as info:
        core.add(5)
    assert isinstance(info.value.__cause__, SequenceGapError)


def test_fire_and_forget_skips_a_batch_lost_to_a_gap_and_moves_to_a_new_epoch() -> None:
    core = make(gapless=False)
    for i in range(4):
        core.add("1" * 10 + str(i))
    core.on_answer(sent(core)[0], *OK)
    b1, b2, b3 = sent(core)
    core.on_answer(b1, *OK)
    # the server forgot this producer (restarted): it expects seq 0; once may be a race with
    # an acknowledgement, so the batch is resent once; the same answer again is a real gap
    core.on_answer(b2, *gap(0, 2))
    assert core.take_failures() == []
    assert sent(core) == [b2]
    core.on_answer(b2, *gap(0, 2))
    (failed,) = core.take_failures()
    assert isinstance(failed.error, SequenceGapError)
    assert (failed.epoch, failed.seq, failed.messages()) == (0, 2, [int("1" * 10 + "2")])
    assert sent(core) == []  # b3 is still on the way under the old epoch
    core.on_answer(b3, *gap(0, 3))  # not stored either: it moves to the new epoch
    assert numbers(sent(core)) == [(1, 0)]
    assert core.epoch == 1


def test_stale_epoch_without_auto_claim_stops_the_producer() -> None:
    core = make()
    core.add(1)
    core.add("1" * 20)
    batch = sent(core)[0]
    core.on_answer(batch, 403, {"producer-epoch": "4"}, b"Stale producer epoch")
    failures = core.take_failures()
    assert [f.seq for f in failures] == [0, 1]
    assert all(isinstance(f.error, StaleEpochError) for f in failures)
    assert failures[0].error.current_epoch == 4  # type: ignore[attr-defined]
    with pytest.raises(ProducerClosedError) as info:
        core.add(2)
    assert isinstance(info.value.__cause__, StaleEpochError)


def test_stale_epoch_with_auto_claim_resends_at_the_servers_epoch_plus_one() -> None:
    core = make(auto_claim=True)
    core.add(1)
    batch = sent(core)[0]
    server_epoch = core.epoch + 4
    core.on_answer(batch, 403, {"producer-epoch": str(server_epoch)}, b"")
    again = sent(core)
    assert again == [batch] and (batch.epoch, batch.seq) == (server_epoch + 1, 0)
    assert core.take_failures() == []


def test_auto_claim_starts_at_a_fresh_epoch_not_below_the_given_one() -> None:
    before = fresh_epoch()
    assert before <= make(auto_claim=True).epoch <= fresh_epoch()
    assert make(auto_claim=True, epoch=MAX_PRODUCER_NUMBER).epoch == MAX_PRODUCER_NUMBER
    assert make().epoch == 0 and make(epoch=7).epoch == 7


def test_a_claimed_session_fenced_later_stops_instead_of_claiming_back() -> None:
    """After its first acknowledgement, a 403 means a newer session took over: claiming above
    it would fence that newer session in turn, and the two would fence each other forever."""
    core = make(auto_claim=True)
    core.add(1)
    first = sent(core)[0]
    assert core.on_answer(first, *OK) is None
    core.add(2)
    second = sent(core)[0]
    core.on_answer(second, 403, {"producer-epoch": str(core.epoch + 1)}, b"")
    (failed,) = core.take_failures()
    assert isinstance(failed.error, StaleEpochError) and failed.messages() == [2]
    assert not failed.maybe_delivered
    with pytest.raises(ProducerClosedError):
        core.add(3)


def test_a_fenced_batch_that_may_be_stored_fails_and_stops_a_gapless_session() -> None:
    core = make(auto_claim=True)
    core.add(1)
    batch = sent(core)[0]
    core.on_transport_error(batch, reached_server=True)  # stored, perhaps, then fenced
    core.on_answer(batch, 403, {"producer-epoch": str(core.epoch + 1)}, b"")
    (failed,) = core.take_failures()
    assert failed.maybe_delivered and isinstance(failed.error, StaleEpochError)
    with pytest.raises(ProducerClosedError):
        core.add(2)


def test_a_fenced_batch_that_may_be_stored_fails_instead_of_moving_epochs() -> None:
    core = make(auto_claim=True, gapless=False)
    core.add(1)
    batch = sent(core)[0]
    core.on_transport_error(batch, reached_server=True)  # stored, perhaps, then fenced
    core.on_answer(batch, 403, {"producer-epoch": str(core.epoch + 1)}, b"")
    (failed,) = core.take_failures()
    assert failed.maybe_delivered and isinstance(failed.error, StaleEpochError)
    core.add(2)  # the producer goes on, under the claimed epoch
    (next_batch,) = sent(core)
    assert next_batch.epoch == core.epoch and next_batch.seq == 0


def test_first_attempt_answered_duplicate_fails_and_stops_the_producer() -> None:
    """Nothing of this session can have stored the batch: the server holds another session's
    messages under these numbers, and these were not stored. That is a failure, not a
    success and not a log line."""
    core = make()
    core.add(1)
    core.add("1" * 20)
    batch = sent(core)[0]
    headers = {"producer-epoch": "0", "producer-seq": "41"}
    assert core.on_answer(batch, 204, headers, b"") is None
    failed = core.take_failures()
    assert [f.seq for f in failed] == [0, 1]
    assert all(isinstance(f.error, SequenceReusedError) for f in failed)
    assert failed[0].messages() == [1] and not failed[0].maybe_delivered
    assert "replay=True" in str(failed[0].error) and "auto_claim" in str(failed[0].error)
    with pytest.raises(ProducerClosedError) as info:
        core.add(2)
    assert isinstance(info.value.__cause__, SequenceReusedError)


def test_a_duplicate_after_an_attempt_that_reached_the_server_is_a_delivery() -> None:
    core = make()
    core.add(1)
    batch = sent(core)[0]
    core.on_transport_error(batch, reached_server=True)
    assert core.on_answer(batch, 204, {"producer-seq": "0"}, b"") is None
    assert core.take_failures() == [] and core.idle()


def test_a_declared_replay_counts_first_attempt_duplicates_as_delivered() -> None:
    core = make(replay=True)
    core.add(1)
    batch = sent(core)[0]
    waiter: Future[AppendResult] = Future()
    batch.waiters = [waiter]
    core.on_answer(batch, 204, {"producer-epoch": "0", "producer-seq": "3"}, b"")
    settle(*core.take_outcomes(), None)
    assert waiter.result().duplicate and core.take_failures() == [] and core.idle()


def test_reused_sequence_with_auto_claim_moves_to_a_fresh_epoch() -> None:
    core = make(auto_claim=True)
    core.add(1)
    batch = sent(core)[0]
    epoch = core.epoch
    core.on_answer(batch, 204, {"producer-seq": "41"}, b"")
    assert sent(core) == [batch] and batch.epoch > epoch and batch.seq == 0
    assert core.take_failures() == []


def test_restored_batches_go_first_under_their_numbers_and_duplicates_count() -> None:
    core = make(max_in_flight=5)
    stored = [StoredBatch(7, 3, 4, 1, False, b"[4]"), StoredBatch(6, 3, 3, 2, False, b"[2,3]")]
    core.restore(3, 5, stored, 10)
    core.track_changes()
    core.add(5)
    (first,) = sent(core)  # one at a time until the epoch is acknowledged
    assert (first.epoch, first.seq, first.body) == (3, 3, b"[2,3]")
    assert core.on_answer(first, 204, {"producer-seq": "4"}, b"") is None  # stored before
    batches = sent(core)
    assert numbers(batches) == [(3, 4), (3, 5)] and batches[1].id == 8
    changes = core.take_changes()
    assert changes is not None and (changes.epoch, changes.next_seq, changes.taken) == (3, 6, 11)
    assert [b.id for b in changes.upserts] == [8] and changes.deletes == [6]
    assert core.take_changes() is None
    for batch in batches:
        core.on_answer(batch, *OK)
    assert core.take_failures() == [] and core.idle()


def test_a_restored_batch_is_never_renumbered() -> None:
    """An earlier session may have stored it: under a new number it could be stored twice.
    When the producer must move to a new epoch first, it fails, flagged maybe_delivered."""
    core = make(auto_claim=True, max_in_flight=5, gapless=False)
    stored = [StoredBatch(0, 3, 0, 1, False, b"[0]"), StoredBatch(1, 3, 1, 1, False, b"[1]")]
    core.restore(3, 2, stored, 2)
    core.add(2)
    (first,) = sent(core)
    core.on_answer(first, 403, {"producer-epoch": "9"}, b"")
    batches = sent(core)
    failed = core.take_failures()
    assert [(f.seq, f.maybe_delivered) for f in failed] == [(0, True), (1, True)]
    assert [b.body for b in batches] == [b"[2]"] and numbers(batches) == [(10, 0)]


def test_a_refused_batch_and_those_after_it_leave_the_state_file_to_be_sent_again() -> None:
    """Gap-less, refused (not stored, and the server's sequence did not move): the batch and
    every later one are dropped from the file, which says the next session starts at the
    refused batch's number; taken counts only what is stored, so a rerun resends the rest."""
    core = make(max_in_flight=1, max_batch_bytes=4)
    core.track_changes()
    core.add(0)
    core.on_answer(sent(core)[0], *OK)
    for item in [1, 2, 3]:
        core.add(item)
    core.seal_all()
    first = sent(core)[0]
    core.take_changes()
    assert core.messages_taken == 4
    core.on_answer(first, 413, {}, b"too large")
    assert sent(core) == []
    changes = core.take_changes()
    assert changes is not None and (changes.epoch, changes.next_seq, changes.taken) == (0, 1, 1)
    assert changes.upserts == [] or all(b.id not in changes.deletes for b in changes.upserts)
    assert sorted(changes.deletes) == [1, 2, 3]
    assert [f.kept for f in core.take_failures()] == [False, False, False]


def test_a_batch_given_up_stays_in_the_state_file_with_everything_after_it() -> None:
    """Its fate is unknown (the server did not answer): the next session resends it and the
    ones after it under their numbers, so whatever happened, each is stored once."""
    core = make(max_in_flight=3, max_batch_bytes=4)
    core.track_changes()
    core.add(0)
    core.on_answer(sent(core)[0], *OK)
    for item in [1, 2, 3, 4]:
        core.add(item)
    core.seal_all()
    b1, b2, b3 = sent(core)
    core.take_changes()
    core.on_transport_error(b1, reached_server=True)
    core.give_up(b1, connect_error())
    assert core.halted and sent(core) == []
    failed = core.take_failures()
    assert [(f.seq, f.kept, f.maybe_delivered) for f in failed] == [
        (1, True, True),
        (4, True, False),
    ]
    core.give_up(b2, connect_error())  # in flight when it stopped: kept as well
    core.on_answer(b3, 503, {}, b"")  # ... whatever its answer
    assert [(f.seq, f.kept) for f in core.take_failures()] == [(2, True), (3, True)]
    assert core.take_changes() is None  # the file keeps all four, and where it stood
    assert (core.epoch, core.next_seq, core.messages_taken) == (0, 5, 5)


def test_changes_record_renumbering_before_the_renumbered_batches_go_out() -> None:
    core = make(max_in_flight=1, max_batch_bytes=4, gapless=False)
    core.track_changes()
    for item in [1, 2, 3]:
        core.add(item)
    core.seal_all()
    first = sent(core)[0]
    assert [(b.seq, b.body) for b in core.take_changes().upserts] == [  # type: ignore[union-attr]
        (0, b"[1]"),
        (1, b"[2]"),
        (2, b"[3]"),
    ]
    core.on_answer(first, 400, {}, b"bad")  # refused: what follows moves to epoch 1
    batch = sent(core)[0]
    changes = core.take_changes()
    assert changes is not None and changes.deletes == [first.id] and changes.epoch == 1
    assert sorted((b.epoch, b.seq) for b in changes.upserts) == [(1, 0), (1, 1)]
    assert (batch.epoch, batch.seq) == (1, 0)


def test_max_batch_items_seals_a_batch_at_that_many_messages() -> None:
    core = make(max_batch_items=3, max_batch_bytes=1000, max_in_flight=5)
    for i in range(7):
        core.add(i)
    core.on_answer(sent(core)[0], *OK)
    assert [b.body for b in sent(core)] == [b"[3,4,5]", b"[6]"]


def test_a_close_answered_204_on_its_first_attempt_is_the_close() -> None:
    core = make()
    waiter: Future[AppendResult] = Future()
    core.add_close(b"", waiter)
    batch = sent(core)[0]
    core.on_answer(batch, 204, {"stream-closed": "true", "stream-next-offset": "7"}, b"")
    core_outcomes = core.take_outcomes()[0]
    assert core_outcomes[0][1].closed  # type: ignore[union-attr]
    assert core.take_failures() == []


def test_a_close_refused_as_already_closed_by_someone_else_is_an_error() -> None:
    core = make()
    waiter: Future[AppendResult] = Future()
    core.add_close(b"", waiter)
    batch = sent(core)[0]
    core.on_answer(batch, 409, {"stream-closed": "true", "stream-next-offset": "7"}, b"")
    assert isinstance(core.take_outcomes()[0][0][1], StreamClosedError)


def test_duplicate_after_an_attempt_that_may_have_been_stored_is_an_acknowledgement() -> None:
    core = make()
    core.add(1)
    batch = sent(core)[0]
    core.on_transport_error(batch, reached_server=True)
    assert core.on_answer(batch, 204, {"producer-seq": "0"}, b"") is None
    assert core.take_failures() == [] and core.idle()


def test_transient_statuses_ask_for_a_resend_under_the_same_number() -> None:
    core = make()
    core.add(1)
    batch = sent(core)[0]
    retry = core.on_answer(batch, 503, {"retry-after": "2"}, b"")
    assert retry is not None and retry.retry_after == 2.0
    assert not batch.maybe_stored
    retry = core.on_answer(batch, 500, {}, b"")
    assert retry is not None and batch.maybe_stored
    assert (batch.epoch, batch.seq) == (0, 0)


def test_a_refused_batch_stops_a_gapless_producer() -> None:
    core = make()
    core.add("1" * 14)
    core.add("2" * 14)
    first = sent(core)[0]
    core.on_answer(first, 400, {}, b"Invalid JSON")
    assert [(f.seq, type(f.error).__name__) for f in core.take_failures()] == [
        (0, "BadRequestError"),
        (1, "ProducerClosedError"),
    ]
    assert sent(core) == [] and core.messages_taken == 0


def test_a_refused_batch_fails_alone_and_the_rest_continue_under_a_new_epoch() -> None:
    core = make(gapless=False)
    core.add("1" * 14)
    core.add("2" * 14)
    first = sent(core)[0]
    core.on_answer(first, 400, {}, b"Invalid JSON")
    assert [f.seq for f in core.take_failures()] == [0]
    second = sent(core)
    assert numbers(second) == [(1, 0)]


def test_closed_stream_fails_everything_buffered_at_once() -> None:
    core = make()
    for i in range(5):
        core.add("1" * 10 + str(i))
    batch = sent(core)[0]
    core.on_answer(batch, 409, {"stream-closed": "true", "stream-next-offset": "9"}, b"")
    failures = core.take_failures()
    assert sum(f.count for f in failures) == 5
    assert all(isinstance(f.error, StreamClosedError) for f in failures)
    assert sent(core) == []


def test_buffer_limit_refuses_without_keeping_anything() -> None:
    core = make(max_buffered_bytes=10, max_batch_bytes=100)
    core.add("1" * 12)
    before = core.buffered_bytes
    with pytest.raises(BufferFullError):
        core.add(2)
    assert core.buffered_bytes == before
    batch = sent(core)[0]
    core.on_answer(batch, *OK)
    core.add(2)  # room again
    assert core.buffered_bytes == 3


def test_restart_moves_to_the_next_epoch_at_seq_zero() -> None:
    core = make()
    core.add(1)
    core.on_answer(sent(core)[0], *OK)
    core.start_new_epoch()
    assert (core.epoch, core.next_seq) == (1, 0)
    core.add(2)
    assert numbers(sent(core)) == [(1, 0)]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"producer_id": ""}, "producer_id"),
        ({"epoch": -1}, "epoch"),
        ({"max_batch_bytes": 0}, "max_batch_bytes"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_buffered_bytes": -5}, "max_buffered_bytes"),
        ({"linger": -1.0}, "linger_ms"),
        ({"max_batch_items": 0}, "max_batch_items"),
        ({"max_batch_items": -1}, "max_batch_items"),
    ],
)
def test_settings_are_validated(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**overrides)


def test_a_group_is_batched_the_same_whatever_the_timing() -> None:
    core = make(max_batch_bytes=12, max_in_flight=5)
    core.add_many([1, 22, 333, 4444, 55555, 6])
    first = sent(core)[0]
    core.on_answer(first, *OK)
    bodies = [first.body] + [b.body for b in sent(core)]
    assert bodies == [b"[1,22,333]", b"[4444,55555]", b"[6]"]


def test_a_group_with_a_bad_message_keeps_those_before_it_and_says_so() -> None:
    core = make(max_batch_bytes=100)
    with pytest.raises(JSONParseError) as info:
        core.add_many(["1", "2", "{bad", "4"])
    if sys.version_info >= (3, 11):
        assert "the 2 message(s) before it in the group were taken" in info.value.__notes__
    assert sent(core)[0].body == b"[1,2]"


def test_with_the_pool_saturated_the_open_batch_grows_while_one_is_on_its_way() -> None:
    core = make(max_in_flight=3, max_batch_bytes=1000)
    core.add(0)
    (zero,) = sent(core)
    assert core.on_answer(zero, *OK) is None  # the epoch is confirmed: three may be on their way
    core.add(1)
    (one,) = sent(core)
    core.add(2)
    core.add(3)
    assert core.due(now=1e9, hold_open=True) == ([], None)  # woken by the answer, not a timer
    core.add(4)
    assert core.due(now=1e9, hold_open=True) == ([], None)
    assert core.on_answer(one, *OK) is None
    (two,) = core.due(now=1e9, hold_open=True)[0]
    assert two.body == b"[2,3,4]"
    core.add(5)  # a connection free: the window applies as always
    assert [b.body for b in core.due(now=1e9)[0]] == [b"[5]"]
