"""Wakes: a subscription with unacknowledged data on a linked stream is woken under a new
generation, by an event on its wake stream (pull-wake) or by a webhook. A pull-wake worker
claims the wake and holds it under a lease; acks move the subscription's offsets, and a
token of an older generation is fenced. The wake ends when its holder says done, releases
it, or lets the lease run out; if work is pending then, the next wake follows at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any, Protocol

from ._store import Store, StoreError
from ._subscription_model import STREAM_ROOT, ZERO, Refusal, Subscription, tail_offset
from ._subscription_records import SubscriptionRecords
from ._subscription_signing import WakeTokens


class Sender(Protocol):
    """What sends a webhook subscription's wakes (``WebhookSender``)."""

    def deliver_soon(self, sub: Subscription) -> None: ...
    async def aclose(self) -> None: ...


__all__ = ["Wakes"]

log = logging.getLogger("durable_streams.server")


class Wakes:
    def __init__(self, store: Store, records: SubscriptionRecords, tokens: WakeTokens) -> None:
        self._store = store
        self._records = records
        self._tokens = tokens
        # Set when the server delivers webhooks: the driver that sends a webhook's wakes.
        self.sender: Sender | None = None

    def pending(self, sub: Subscription) -> list[dict[str, Any]]:
        """Every linked stream with its tail and whether it has work."""
        out = []
        for path, link in sub.links.items():
            tail = tail_offset(self._store, path)
            out.append(
                {
                    "path": path,
                    "link_type": link.link_type,
                    "acked_offset": link.acked,
                    "tail_offset": tail or ZERO,
                    # A stream that does not exist (yet, or any more) has nothing to read: it
                    # must not wake the subscription over and over.
                    "has_pending": tail is not None and tail > link.acked,
                }
            )
        return out

    def _has_work(self, sub: Subscription) -> bool:
        return any(s["has_pending"] for s in self.pending(sub))

    def maybe_wake(self, sub: Subscription, trigger: str | None = None) -> bool:
        if sub.wake_id is not None or sub.holder is not None or not self._has_work(sub):
            return False
        self._wake(sub, trigger)
        return True

    def _wake(self, sub: Subscription, trigger: str | None) -> None:
        sub.generation += 1
        self._records.save(sub)
        sub.wake_id = "w_" + secrets.token_hex(12)
        pending = self.pending(sub)
        sub.snapshot = {s["path"]: s["tail_offset"] for s in pending}
        if trigger is None:
            trigger = next((s["path"] for s in pending if s["has_pending"]), None)
        if sub.type == "webhook":
            self._start_lease(sub)
            # None when webhooks are off, for a webhook subscription kept from a run that
            # allowed them.
            if self.sender is not None:
                self.sender.deliver_soon(sub)
            return
        assert sub.wake_stream is not None
        event = {
            "type": "wake",
            "subscription_id": sub.id,
            "stream": trigger,
            "generation": sub.generation,
            "ts": int(time.time() * 1000),
        }
        try:
            wake = self._store.get(STREAM_ROOT + sub.wake_stream)
            self._store.append(
                wake.path,
                json.dumps(event, separators=(",", ":")).encode(),
                content_type=wake.content_type,
            )
        except StoreError as exc:
            log.warning("subscription %s: no wake event on %s: %s", sub.id, sub.wake_stream, exc)

    def _start_lease(self, sub: Subscription) -> None:
        if sub.lease is not None:
            sub.lease.cancel()
        loop = asyncio.get_running_loop()
        sub.lease = loop.call_later(sub.lease_ttl_ms / 1000, self._lease_expired, sub)

    def _lease_expired(self, sub: Subscription) -> None:
        sub.lease = None
        if sub.deleted:
            return
        self._finish(sub)

    def _finish(self, sub: Subscription) -> bool:
        """The wake is over: clear it, and wake again at once if work is pending."""
        if sub.lease is not None:
            sub.lease.cancel()
        sub.lease = None
        sub.holder = None
        sub.wake_id = None
        sub.snapshot = None
        return self.maybe_wake(sub)

    def claim(self, sub: Subscription, worker: str) -> dict[str, Any]:
        if sub.type != "pull-wake":
            raise Refusal("INVALID_REQUEST", "Subscription is not pull-wake")
        if sub.holder is not None:
            raise Refusal(
                "ALREADY_CLAIMED", None, current_holder=sub.holder, generation=sub.generation
            )
        if not self._has_work(sub):
            # An unclaimed wake whose work went away (its stream was deleted) would otherwise
            # stand forever, and no later append would wake the subscription.
            sub.wake_id = None
            sub.snapshot = None
            raise Refusal("NO_PENDING_WORK", "no linked stream has pending work")
        if sub.wake_id is None:
            self._wake(sub, None)
        sub.holder = worker
        self._start_lease(sub)
        return {
            "wake_id": sub.wake_id,
            "generation": sub.generation,
            "token": self._tokens.issue(sub),
            "streams": self.pending(sub),
            "lease_ttl_ms": sub.lease_ttl_ms,
        }

    def acknowledge(
        self, sub: Subscription, token: str, body: dict[str, Any], *, pull_wake: bool
    ) -> bool:
        """Move the acknowledged offsets; True if a next wake started at once."""
        if pull_wake and sub.type != "pull-wake":
            raise Refusal("INVALID_REQUEST", "Subscription is not pull-wake")
        self._tokens.check(sub, token, body)
        acks = body.get("acks") or []
        if not isinstance(acks, list):
            raise Refusal("INVALID_REQUEST", "acks must be a list")
        updates: dict[str, str] = {}
        for ack in acks:
            path = ack.get("stream", ack.get("path")) if isinstance(ack, dict) else None
            offset = ack.get("offset") if isinstance(ack, dict) else None
            if not isinstance(path, str) or not isinstance(offset, str):
                raise Refusal("INVALID_OFFSET", "an ack names a stream and an offset")
            link = sub.links.get(path.strip("/"))
            if link is None:
                raise Refusal("INVALID_OFFSET", f"unknown subscription stream {path}")
            if (
                offset == "-1"
                or offset < link.acked
                or offset > (tail_offset(self._store, path.strip("/")) or ZERO)
            ):
                raise Refusal("INVALID_OFFSET", f"offset {offset} is out of range for {path}")
            updates[path.strip("/")] = offset
        for path, offset in updates.items():
            sub.links[path].acked = offset
        if updates:
            self._records.save(sub)
        if body.get("done") is True:
            return self._finish(sub)
        self._start_lease(sub)
        return False

    def release(self, sub: Subscription, token: str, body: dict[str, Any]) -> None:
        if sub.type != "pull-wake":
            raise Refusal("INVALID_REQUEST", "Subscription is not pull-wake")
        self._tokens.check(sub, token, body)
        self._finish(sub)

    def webhook_done(self, sub: Subscription) -> None:
        """The receiver answered done: all the wake saw is acknowledged, and the wake is over."""
        for path, tail in (sub.snapshot or {}).items():
            link = sub.links.get(path)
            if link is not None and tail > link.acked:
                link.acked = tail
        self._records.save(sub)
        self._finish(sub)
