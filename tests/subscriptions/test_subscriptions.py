"""Managing subscriptions and working pull-wake wakes by hand, against the reference server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import durable_streams as ds

from .conftest import WAIT


def make_stream(root: str, path: str, *messages: object) -> ds.DurableStream:
    handle = ds.DurableStream.create(f"{root}/{path}", content_type="application/json")
    for message in messages:
        handle.append(message)
    return handle


def pull_wake(
    subs: ds.Subscriptions, root: str, prefix: str, *, lease_ttl_ms: int = 30_000
) -> tuple[str, str]:
    """A pull-wake subscription over ``{prefix}/data/*`` and its (empty) wake stream."""
    wake = f"{prefix}/wake"
    make_stream(root, wake).close()
    sub_id = f"{prefix}-sub"
    subs.create(
        sub_id,
        type="pull-wake",
        pattern=f"{prefix}/data/*",
        wake_stream=wake,
        lease_ttl_ms=lease_ttl_ms,
    )
    return sub_id, wake


def wait_for(predicate: object, timeout: float = WAIT) -> None:
    """Polls ``predicate`` (a callable) until it is true; the server works on its own time."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("the server did not get there in time")
        time.sleep(0.02)


def test_a_base_url_that_is_not_the_stream_root_is_named_and_leaves_nothing_behind(
    subs_server: str, root: str, prefix: str
) -> None:
    make_stream(root, f"{prefix}/wake").close()
    sub_id = f"{prefix}-sub"
    with (
        ds.Subscriptions(subs_server) as subs,  # the server's URL, without /v1/stream
        pytest.raises(ds.UsageError, match="is not the server's stream root") as caught,
    ):
        subs.create(sub_id, type="pull-wake", pattern=f"{prefix}/*", wake_stream=f"{prefix}/wake")
    assert subs_server in str(caught.value) and "/v1/stream" in str(caught.value)
    # The PUT made a stream where the subscription should have been; it is gone again.
    with (
        ds.DurableStream(f"{subs_server}/__ds/subscriptions/{sub_id}") as stray,
        pytest.raises(ds.StreamNotFoundError),
    ):
        stray.head()
    with ds.Subscriptions(root) as subs, pytest.raises(ds.SubscriptionNotFoundError):
        subs.get(sub_id)


def test_create_confirm_conflict_read_and_delete(root: str, prefix: str) -> None:
    with ds.Subscriptions(root) as subs:
        make_stream(root, f"{prefix}/wake").close()
        first = subs.create(
            f"{prefix}-a",
            type="pull-wake",
            pattern=f"{prefix}/data/**",
            streams=[f"{prefix}/manual/x"],
            wake_stream=f"{prefix}/wake",
            lease_ttl_ms=5_000,
            description="orders",
        )
        assert first.created is True
        assert (first.type, first.pattern, first.wake_stream) == (
            "pull-wake",
            f"{prefix}/data/**",
            f"{prefix}/wake",
        )
        assert (first.lease_ttl_ms, first.description, first.status) == (5_000, "orders", "active")
        assert [(link.path, link.link_type) for link in first.streams] == [
            (f"{prefix}/manual/x", "explicit")
        ]
        again = subs.create(
            f"{prefix}-a",
            type="pull-wake",
            pattern=f"{prefix}/data/**",
            streams=[f"{prefix}/manual/x"],
            wake_stream=f"{prefix}/wake",
            lease_ttl_ms=5_000,
            description="orders",
        )
        assert again.created is False
        with pytest.raises(ds.SubscriptionExistsError) as info:
            subs.create(
                f"{prefix}-a", type="pull-wake", pattern="other/*", wake_stream=f"{prefix}/wake"
            )
        assert info.value.code == "SUBSCRIPTION_ALREADY_EXISTS" and info.value.status == 409
        assert isinstance(info.value, ds.ConflictError)
        assert subs.get(f"{prefix}-a").id == f"{prefix}-a"
        subs.delete(f"{prefix}-a")
        subs.delete(f"{prefix}-a")  # deleting what is gone is fine
        with pytest.raises(ds.SubscriptionNotFoundError) as missing:
            subs.get(f"{prefix}-a")
        assert missing.value.code == "SUBSCRIPTION_NOT_FOUND"
        assert missing.value.subscription_id == f"{prefix}-a"


def test_explicit_streams_are_added_and_removed(root: str, prefix: str) -> None:
    with ds.Subscriptions(root) as subs:
        sub_id, _ = pull_wake(subs, root, prefix)
        # A path with characters that need encoding, and one whose stream does not exist yet.
        odd = f"{prefix}/manual/a b&c"
        with make_stream(root, odd, {"n": 1}) as handle:
            tail = handle.head().offset
        subs.add_streams(sub_id, [odd, f"{prefix}/manual/later"])
        links = {link.path: link for link in subs.get(sub_id).streams}
        # Named as the server names the stream (encoded as in its URL), linked at its tail.
        encoded = f"{prefix}/manual/a%20b&c"
        assert links[encoded].link_type == "explicit"
        assert links[encoded].acked_offset == tail
        assert f"{prefix}/manual/later" in links
        subs.remove_stream(sub_id, odd)
        assert encoded not in {link.path for link in subs.get(sub_id).streams}


def test_unsafe_webhook_url_is_refused(root: str, prefix: str) -> None:
    with ds.Subscriptions(root) as subs, pytest.raises(ds.WebhookUrlRejectedError) as info:
        subs.create(
            f"{prefix}-hook", type="webhook", pattern="x/*", webhook_url="http://10.0.0.1/hook"
        )
    assert info.value.code == "WEBHOOK_URL_REJECTED"
    assert isinstance(info.value, ds.BadRequestError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "pull-wake", "wake_stream": "w"}, "pattern, streams"),
        ({"type": "pull-wake", "pattern": "a/*"}, "wake_stream"),
        ({"type": "webhook", "pattern": "a/*"}, "webhook_url"),
        ({"type": "pull-wake", "pattern": "a/*", "wake_stream": "w", "lease_ttl_ms": 10}, "lease"),
        ({"type": "push", "pattern": "a/*"}, "type"),
        ({"type": "pull-wake", "streams": "a/b", "wake_stream": "w"}, "list"),
    ],
)
def test_bad_arguments_are_refused_before_any_request(
    root: str, kwargs: dict[str, object], message: str
) -> None:
    with ds.Subscriptions(root) as subs, pytest.raises((ValueError, TypeError), match=message):
        subs.create("never-sent", **kwargs)  # type: ignore[arg-type]


def test_glob_picks_up_streams_created_after_the_subscription(root: str, prefix: str) -> None:
    with ds.Subscriptions(root) as subs:
        sub_id, _ = pull_wake(subs, root, prefix)
        make_stream(root, f"{prefix}/data/new", {"n": 1}).close()
        make_stream(root, f"{prefix}/other/ignored", {"n": 2}).close()

        def linked() -> bool:
            return f"{prefix}/data/new" in {link.path for link in subs.get(sub_id).streams}

        wait_for(linked)
        paths = {link.path for link in subs.get(sub_id).streams}
        assert f"{prefix}/other/ignored" not in paths
        claim = subs.claim(sub_id, "w1")
        pending = {s.path: s for s in claim.streams}
        assert pending[f"{prefix}/data/new"].has_pending
        assert pending[f"{prefix}/data/new"].acked_offset == "-1"


def test_two_workers_compete_and_a_finished_wake_is_fenced(root: str, prefix: str) -> None:
    with ds.Subscriptions(root) as subs:
        sub_id, wake = pull_wake(subs, root, prefix)
        with pytest.raises(ds.NoPendingWorkError):
            subs.claim(sub_id, "w1")
        handle = make_stream(root, f"{prefix}/data/s", {"n": 1}, {"n": 2})
        # The wake event lands on the wake stream.
        with ds.stream(f"{root}/{wake}") as res:
            wakes = [m for m in res.read_json() if m.get("subscription_id") == sub_id]
        assert wakes and wakes[0]["type"] == "wake"
        claim = subs.claim(sub_id, "w1")
        assert "token" not in repr(claim) and claim.token not in repr(claim)
        with pytest.raises(ds.AlreadyClaimedError) as held:
            subs.claim(sub_id, "w2")
        assert held.value.current_holder == "w1"
        assert held.value.generation == claim.generation
        (pending,) = [s for s in claim.streams if s.path == f"{prefix}/data/s"]
        with pytest.raises(ds.AckOffsetError):
            subs.ack(claim, {f"{prefix}/never/linked": pending.tail_offset})
        assert subs.ack(claim) is False  # a heartbeat
        assert subs.ack(claim, {pending.path: pending.tail_offset}, done=True) is False
        with pytest.raises(ds.FencedError) as fenced:
            subs.ack(claim, {pending.path: pending.tail_offset})
        assert fenced.value.code == "FENCED"
        links = {link.path: link.acked_offset for link in subs.get(sub_id).streams}
        assert links[pending.path] == pending.tail_offset
        # New data: a new wake of a later generation; releasing it leaves the data pending.
        handle.append({"n": 3})
        second = subs.claim(sub_id, "w2")
        assert second.generation > claim.generation
        subs.release(second)
        third = subs.claim(sub_id, "w1")
        (again,) = [s for s in third.streams if s.path == pending.path]
        assert again.has_pending and again.acked_offset == pending.tail_offset
        handle.close()


def test_an_expired_lease_fences_its_worker_and_the_next_resumes_from_the_last_ack(
    root: str, prefix: str
) -> None:
    with ds.Subscriptions(root) as subs:
        sub_id, _ = pull_wake(subs, root, prefix, lease_ttl_ms=1_000)
        path = f"{prefix}/data/s"
        handle = make_stream(root, path, *({"n": i} for i in range(5)))
        first = subs.claim(sub_id, "w1")
        with ds.stream(f"{root}/{path}") as res:
            events = list(res.iter_events())
        assert [e.data["n"] for e in events] == [0, 1, 2, 3, 4]
        middle = handle.append({"n": 5}).offset  # acked up to here by "w1", which then dies
        assert middle is not None
        subs.ack(first, {path: events[-1].offset})
        handle.append({"n": 6})

        claims: list[ds.Claim] = []

        def claimed_once_the_lease_ran_out() -> bool:
            # Asking does not renew w1's lease (only its acks would).
            try:
                claims.append(subs.claim(sub_id, "w2"))
            except ds.AlreadyClaimedError as exc:
                assert exc.current_holder == "w1"
                return False
            return True

        wait_for(claimed_once_the_lease_ran_out)
        second = claims[0]
        assert second.generation > first.generation
        with pytest.raises(ds.FencedError):
            subs.ack(first, {path: events[-1].offset})
        (pending,) = [s for s in second.streams if s.path == path]
        assert pending.acked_offset == events[-1].offset
        with ds.stream(f"{root}/{path}", offset=pending.acked_offset) as res:
            assert [m["n"] for m in res.read_json()] == [5, 6]
        handle.close()


@pytest.mark.anyio
async def test_async_client_works_a_wake(root: str, prefix: str, anyio_backend: str) -> None:
    async with ds.AsyncSubscriptions(root) as subs:
        wake = f"{prefix}/wake"
        await (await ds.AsyncDurableStream.create(f"{root}/{wake}")).aclose()
        sub_id = f"{prefix}-sub"
        created = await subs.create(
            sub_id, type="pull-wake", streams=[f"{prefix}/data/a"], wake_stream=wake
        )
        assert created.created
        async with await ds.AsyncDurableStream.create(
            f"{root}/{prefix}/data/a", content_type="application/json"
        ) as handle:
            await handle.append({"n": 1})
        claim = await subs.claim(sub_id, "w1")
        (pending,) = claim.streams
        assert pending.has_pending
        assert (
            await subs.ack(claim, [ds.Ack(pending.path, pending.tail_offset)], done=True) is False
        )
        with pytest.raises(ds.NoPendingWorkError):
            await subs.claim(sub_id, "w1")
        await subs.delete(sub_id)


def test_subscriptions_survive_a_restart_of_the_embedded_server_on_a_data_file(
    tmp_path: Path,
) -> None:
    from durable_streams.testing import local_server

    data = tmp_path / "streams.sqlite3"
    with local_server(data_path=data, webhooks=True) as url:
        root = f"{url}/v1/stream"
        with ds.Subscriptions(root) as subs:
            sub_id, _ = pull_wake(subs, root, "p")
            handle = make_stream(root, "p/data/s", {"n": 1})
            kid = subs.create(
                "hook", type="webhook", streams=["p/data/s"], webhook_url="http://127.0.0.1:9/x"
            ).signing
            wait_for(lambda: "p/data/s" in {link.path for link in subs.get(sub_id).streams})
            claim = subs.claim(sub_id, "w1")
            (pending,) = claim.streams
            subs.ack(claim, {pending.path: pending.tail_offset})  # acked, not finished
            handle.append({"n": 2})
            handle.close()
            # Linked while the wake is in flight (no new wake to save it along).
            make_stream(root, "p/data/t", {"n": 3}).close()
            wait_for(lambda: "p/data/t" in {link.path for link in subs.get(sub_id).streams})
            before = subs.get(sub_id)
    with local_server(data_path=data, webhooks=True) as url:
        root = f"{url}/v1/stream"
        with ds.Subscriptions(root) as subs:
            after = subs.get(sub_id)
            assert (after.pattern, after.wake_stream, after.created_at) == (
                before.pattern,
                before.wake_stream,
                before.created_at,
            )
            assert after.streams == before.streams  # the acknowledged offset too
            signing = subs.get("hook").signing
            assert signing is not None and kid is not None and signing.kid == kid.kid
            # The wake in flight did not survive: its holder is fenced, and the work still
            # pending (message 2) is claimed under a newer generation.
            with pytest.raises(ds.FencedError):
                subs.ack(claim)
            again = subs.claim(sub_id, "w2")
            assert again.generation > claim.generation
            streams = {s.path: s for s in again.streams}
            assert streams["p/data/s"].acked_offset == pending.tail_offset
            assert streams["p/data/s"].has_pending and streams["p/data/t"].has_pending


def test_the_server_refuses_bad_tokens_and_bodies_with_typed_answers(
    root: str, prefix: str
) -> None:
    import httpx

    with ds.Subscriptions(root) as subs:
        sub_id, _ = pull_wake(subs, root, prefix)
        base = f"{root}/__ds/subscriptions/{sub_id}"
        # No token: 401 before the body is even looked at.
        answer = httpx.post(f"{base}/ack", content=b"{not json")
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "TOKEN_INVALID"
        weird = httpx.post(
            f"{base}/ack",
            headers={"authorization": b"Bearer caf\xe9.x"},  # not ASCII
            content=b"{}",
        )
        assert weird.status_code == 401
        deep = httpx.post(f"{base}/claim", content=b"[" * 100_000 + b"]" * 100_000)
        assert deep.status_code == 400
        assert deep.json()["error"]["code"] == "INVALID_REQUEST"


def test_a_wake_whose_work_went_away_does_not_block_later_wakes(root: str, prefix: str) -> None:
    with ds.Subscriptions(root) as subs:
        sub_id, _ = pull_wake(subs, root, prefix)
        first = make_stream(root, f"{prefix}/data/a", {"n": 1})
        wait_for(lambda: bool(subs.get(sub_id).streams))
        first.delete()  # the unclaimed wake's only work is gone
        first.close()
        with pytest.raises(ds.NoPendingWorkError):
            subs.claim(sub_id, "w1")
        make_stream(root, f"{prefix}/data/b", {"n": 2}).close()

        def claimable() -> bool:
            try:
                claim = subs.claim(sub_id, "w1")
            except ds.NoPendingWorkError:
                return False
            return any(s.path == f"{prefix}/data/b" and s.has_pending for s in claim.streams)

        wait_for(claimable)
