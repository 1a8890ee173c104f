"""Webhook delivery from the reference server to a receiver on 127.0.0.1: signatures checked
against the server's published keys, acks through the callback, and forgeries refused."""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import durable_streams as ds
from durable_streams.webhooks import WebhookVerifier, parse_signature

from .conftest import Receiver
from .test_subscriptions import make_stream, wait_for


def webhook_subscription(
    subs: ds.Subscriptions, prefix: str, receiver: Receiver
) -> ds.Subscription:
    sub = subs.create(
        f"{prefix}-hook",
        type="webhook",
        pattern=f"{prefix}/data/*",
        webhook_url=receiver.url,
        lease_ttl_ms=5_000,
    )
    assert sub.created and sub.signing is not None
    assert sub.signing.alg == "ed25519" and sub.signing.kid.startswith("ds_")
    return sub


def test_a_verified_delivery_is_acknowledged_through_its_callback(
    root: str, prefix: str, receiver: Receiver
) -> None:
    with ds.Subscriptions(root) as subs:
        sub = webhook_subscription(subs, prefix, receiver)
        assert sub.signing is not None
        path = f"{prefix}/data/s"
        with make_stream(root, path, {"n": 1}, {"n": 2}) as handle:
            assert handle.head().offset is not None
        headers, body = receiver.wait()
        verifier = WebhookVerifier(sub.signing.jwks_url)
        delivery = verifier.verify(body, headers)
        assert delivery.subscription_id == sub.id
        assert delivery.callback_token not in repr(delivery)
        (pending,) = [s for s in delivery.streams if s.path == path]
        assert pending.has_pending
        with ds.stream(f"{root}/{path}", offset=pending.acked_offset) as res:
            assert [m["n"] for m in res.read_json()] == [1, 2]
            end = res.offset
        assert subs.callback(delivery, {path: end}, done=True) is False
        with pytest.raises(ds.FencedError):
            subs.callback(delivery, {path: end}, done=True)
        acked = {link.path: link.acked_offset for link in subs.get(sub.id).streams}
        assert acked[path] == end


def test_a_synchronous_done_reply_acknowledges_the_wake(
    root: str, prefix: str, receiver: Receiver
) -> None:
    receiver.reply = {"done": True}
    with ds.Subscriptions(root) as subs:
        sub = webhook_subscription(subs, prefix, receiver)
        path = f"{prefix}/data/s"
        make_stream(root, path, {"n": 1}).close()
        _, body = receiver.wait()
        (pending,) = [s for s in json.loads(body)["streams"] if s["path"] == path]

        def acked() -> bool:
            links = {link.path: link.acked_offset for link in subs.get(sub.id).streams}
            return links.get(path) == pending["tail_offset"]

        wait_for(acked)


def test_forged_altered_and_stale_requests_are_refused(
    root: str, prefix: str, receiver: Receiver
) -> None:
    with ds.Subscriptions(root) as subs:
        sub = webhook_subscription(subs, prefix, receiver)
        assert sub.signing is not None
        make_stream(root, f"{prefix}/data/s", {"n": 1}).close()
        headers, body = receiver.wait()
        verifier = WebhookVerifier(sub.signing.jwks_url, refresh_interval=3600)
        stamp, kid, _ = parse_signature(headers["webhook-signature"])
        verifier.verify(body, headers)  # the genuine request passes

        def refused(body: bytes, headers: dict[str, str], match: str, **kw: float) -> None:
            with pytest.raises(ds.WebhookVerificationError, match=match) as info:
                verifier.verify(body, headers, **kw)
            assert isinstance(info.value, ValueError)

        altered = body.replace(b'"generation":', b'"generation": ', 1)
        assert altered != body
        refused(altered, headers, "does not match")
        refused(body, headers, "timestamp", now=int(stamp) + 3600)
        refused(body, headers, "timestamp", now=int(stamp) - 3600)
        # Signed by a key that is not the server's, under the server's key id.
        forger = Ed25519PrivateKey.generate()
        forged = base64.urlsafe_b64encode(forger.sign(stamp.encode() + b"." + body))
        forged_sig = f"t={stamp},kid={kid},ed25519={forged.rstrip(b'=').decode()}"
        refused(body, {**headers, "webhook-signature": forged_sig}, "does not match")
        # A key id nobody published (the cache is not refreshed again within the interval).
        unknown = forged_sig.replace(f"kid={kid}", "kid=ds_nobody")
        refused(body, {**headers, "webhook-signature": unknown}, "no published key")
        refused(body, {}, "no Webhook-Signature")
        refused(body, {"Webhook-Signature": "t=1,kid=x"}, "malformed")
        refused(body, {"webhook-signature": f"t={stamp},kid={kid},ed25519=AAAA"}, "64 bytes")


@pytest.mark.anyio
async def test_async_verification_and_callback(
    root: str, prefix: str, receiver: Receiver, anyio_backend: str
) -> None:
    async with ds.AsyncSubscriptions(root) as subs:
        sub = await subs.create(
            f"{prefix}-hook",
            type="webhook",
            streams=[f"{prefix}/data/s"],
            webhook_url=receiver.url,
        )
        assert sub.signing is not None
        async with await ds.AsyncDurableStream.create(
            f"{root}/{prefix}/data/s", content_type="application/json"
        ) as handle:
            tail = (await handle.append({"n": 1})).offset
        headers, body = receiver.wait()
        delivery = await WebhookVerifier(sub.signing.jwks_url).averify(body, headers)
        assert delivery.generation >= 1
        assert tail is not None
        assert await subs.callback(delivery, [ds.Ack(f"{prefix}/data/s", tail)], done=True) is False


def test_a_delivery_for_another_subscription_is_refused(
    root: str, prefix: str, receiver: Receiver
) -> None:
    with ds.Subscriptions(root) as subs:
        sub = webhook_subscription(subs, prefix, receiver)
        assert sub.signing is not None
        make_stream(root, f"{prefix}/data/s", {"n": 1}).close()
        headers, body = receiver.wait()
        mine = WebhookVerifier(sub.signing.jwks_url, subscription_id=sub.id)
        assert mine.verify(body, headers).subscription_id == sub.id
        theirs = WebhookVerifier(sub.signing.jwks_url, subscription_id="someone-else")
        with pytest.raises(ds.WebhookVerificationError, match="for subscription"):
            theirs.verify(body, headers)


def test_unknown_key_ids_cannot_make_the_verifier_hammer_a_failing_jwks() -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    verifier = WebhookVerifier(f"http://127.0.0.1:{port}/jwks.json", refresh_interval=3600)
    stamp = str(int(time.time()))
    header = {"webhook-signature": f"t={stamp},kid=ds_made_up,ed25519={'A' * 86}"}
    with pytest.raises(ds.TransportError):
        verifier.verify(b"{}", header)  # the one fetch this interval allows
    for _ in range(3):  # refused at once, no more fetches
        with pytest.raises(ds.WebhookVerificationError, match="no published key"):
            verifier.verify(b"{}", header)
    stale = {"webhook-signature": f"t=1000,kid=ds_other,ed25519={'A' * 86}"}
    with pytest.raises(ds.WebhookVerificationError, match="timestamp"):
        WebhookVerifier(f"http://127.0.0.1:{port}/jwks.json").verify(b"{}", stale)


def test_after_a_restart_deliveries_carry_the_servers_full_callback_url(
    tmp_path: Path, receiver: Receiver
) -> None:
    from durable_streams.testing import local_server

    data = tmp_path / "streams.sqlite3"
    with (
        local_server(data_path=data, webhooks=True) as url,
        ds.Subscriptions(f"{url}/v1/stream") as subs,
    ):
        subs.create("hook", type="webhook", streams=["x/s"], webhook_url=receiver.url)
        make_stream(f"{url}/v1/stream", "x/s", {"n": 1}).close()
        receiver.wait(1)
    with local_server(data_path=data, webhooks=True) as url:
        _, body = receiver.wait(2)  # the wake in flight is issued again under a new generation
        delivery = json.loads(body)
        assert delivery["callback_url"] == f"{url}/v1/stream/__ds/subscriptions/hook/callback"
