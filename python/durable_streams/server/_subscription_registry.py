"""The embedded server's subscriptions by id: creating one from its configuration, linking
streams to it (an explicit list, and a glob that also takes in streams created later), and
the store's hooks by which a stream's data reaches the subscriptions that follow it.
Webhook delivery needs the ``cryptography`` package and ``webhooks=True``; pull-wake works
without either.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._store import Store
from ._subscription_model import (
    ZERO,
    Link,
    Refusal,
    Subscription,
    glob_matches,
    relative_path,
    tail_offset,
)
from ._subscription_records import SubscriptionRecords
from ._subscription_signing import Signer, WakeTokens
from ._subscription_wakes import Wakes
from ._webhook_sender import WebhookSender
from ._webhook_urls import webhook_url_problem

__all__ = ["SubscriptionRegistry"]

DEFAULT_LEASE_MS = 30_000
MIN_LEASE_MS = 1_000
MAX_LEASE_MS = 600_000


@dataclass(frozen=True)
class _Config:
    type: str
    pattern: str | None
    streams: list[str]
    webhook_url: str | None
    wake_stream: str | None
    lease_ttl_ms: int
    description: str | None
    hash: str


def _config(body: dict[str, Any]) -> _Config:
    """The configuration a create request asks for, checked."""
    kind = body.get("type")
    if kind not in ("webhook", "pull-wake"):
        raise Refusal("INVALID_REQUEST", "type must be 'webhook' or 'pull-wake'")
    pattern = body.get("pattern")
    pattern = pattern.strip("/") if isinstance(pattern, str) and pattern.strip("/") else None
    raw_streams = body.get("streams")
    streams: list[str] = []
    if isinstance(raw_streams, list) and raw_streams:
        if not all(isinstance(s, str) for s in raw_streams):
            raise Refusal("INVALID_REQUEST", "streams must contain only strings")
        streams = [s.strip("/") for s in raw_streams]
    if pattern is None and not streams:
        raise Refusal("INVALID_REQUEST", "a subscription needs a pattern or streams")
    lease = body.get("lease_ttl_ms", DEFAULT_LEASE_MS)
    if (
        isinstance(lease, bool)
        or not isinstance(lease, int)
        or not MIN_LEASE_MS <= lease <= MAX_LEASE_MS
    ):
        raise Refusal(
            "INVALID_REQUEST",
            f"lease_ttl_ms must be an integer in {MIN_LEASE_MS}..{MAX_LEASE_MS}",
        )
    webhook_url = None
    if kind == "webhook":
        webhook = body.get("webhook")
        url = webhook.get("url") if isinstance(webhook, dict) else None
        if not isinstance(url, str) or not url:
            raise Refusal("INVALID_REQUEST", "a webhook subscription needs webhook.url")
        webhook_url = url
    wake = body.get("wake_stream")
    wake_stream = wake.strip("/") if isinstance(wake, str) and wake.strip("/") else None
    if kind == "pull-wake" and wake_stream is None:
        raise Refusal("INVALID_REQUEST", "a pull-wake subscription needs wake_stream")
    description = body.get("description")
    description = description if isinstance(description, str) else None
    config = {
        "type": kind,
        "pattern": pattern,
        "streams": sorted(set(streams)),
        "webhook": None if webhook_url is None else {"url": webhook_url},
        "wake_stream": wake_stream,
        "lease_ttl_ms": lease,
        "description": description,
    }
    config_hash = hashlib.sha256(
        json.dumps({k: v for k, v in config.items() if v is not None}).encode()
    ).hexdigest()
    return _Config(
        kind, pattern, streams, webhook_url, wake_stream, lease, description, config_hash
    )


class SubscriptionRegistry:
    """``base_url`` gives the server's own URL (for webhook callback URLs); ``on_append``
    and ``on_delete`` are the store's hooks."""

    def __init__(
        self, store: Store, base_url: Callable[[], str], *, webhooks: bool = False
    ) -> None:
        self._store = store
        self._records = SubscriptionRecords(store.journal)
        self._webhooks = webhooks
        self._subs: dict[str, Subscription] = {}
        tokens = WakeTokens(self._records.token_key())
        self._signer: Signer | None = None
        self.wakes = Wakes(store, self._records, tokens)
        if webhooks:
            self.wakes.sender = WebhookSender(
                self.wakes, self._records, tokens, self.signer, base_url
            )
        for sub in self._records.load():
            self._subs[sub.id] = sub

    def start(self) -> None:
        """Once the server listens (its URL known): wakes in flight did not survive a
        restart, so work that is pending gets a new one."""
        for sub in list(self._subs.values()):
            if not sub.deleted:
                self.wakes.maybe_wake(sub)

    def signer(self) -> Signer:
        if self._signer is None:
            secret = self._records.signing_key()
            try:
                self._signer = Signer(secret)
            except ImportError:
                raise Refusal(
                    "INVALID_REQUEST", "webhook signing needs the cryptography package"
                ) from None
        return self._signer

    def get(self, sub_id: str) -> Subscription:
        sub = self._subs.get(sub_id)
        if sub is None:
            raise Refusal("SUBSCRIPTION_NOT_FOUND", f"subscription {sub_id} not found")
        return sub

    def create(self, sub_id: str, body: dict[str, Any]) -> tuple[Subscription, bool]:
        """The subscription, and whether it is new (an identical one may exist already)."""
        config = _config(body)
        existing = self._subs.get(sub_id)
        if existing is not None:
            if existing.config_hash != config.hash:
                raise Refusal(
                    "SUBSCRIPTION_ALREADY_EXISTS",
                    f"subscription {sub_id} exists with another configuration",
                )
            return existing, False
        if config.type == "webhook":
            if not self._webhooks:
                raise Refusal(
                    "INVALID_REQUEST", "webhook subscriptions are not enabled on this server"
                )
            problem = webhook_url_problem(config.webhook_url or "")
            if problem is not None:
                raise Refusal("WEBHOOK_URL_REJECTED", problem)
            self.signer()
        now = _dt.datetime.now(_dt.timezone.utc)
        sub = Subscription(
            id=sub_id,
            type=config.type,
            pattern=config.pattern,
            streams=config.streams,
            webhook_url=config.webhook_url,
            wake_stream=config.wake_stream,
            lease_ttl_ms=config.lease_ttl_ms,
            description=config.description,
            config_hash=config.hash,
            created_at=now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )
        for path in config.streams:
            self._link(sub, path, "explicit", self._tail(path))
        if config.pattern is not None:
            for path in self._store.paths():
                relative = relative_path(path)
                if relative is not None and glob_matches(config.pattern, relative):
                    self._link(sub, relative, "glob", self._tail(relative))
        self._subs[sub_id] = sub
        self._records.save(sub)
        return sub, True

    def delete(self, sub_id: str) -> None:
        sub = self._subs.pop(sub_id, None)
        if sub is not None:
            sub.deleted = True
            sub.cancel_timers()
            self._records.remove(sub_id)

    def add_streams(self, sub_id: str, body: dict[str, Any]) -> None:
        streams = body.get("streams")
        if (
            not isinstance(streams, list)
            or not streams
            or not all(isinstance(s, str) and s for s in streams)
        ):
            raise Refusal("INVALID_REQUEST", "streams must be a non-empty string array")
        sub = self.get(sub_id)
        for path in streams:
            self._link(sub, path.strip("/"), "explicit", self._tail(path.strip("/")))
        self._records.save(sub)

    def remove_stream(self, sub_id: str, path: str) -> None:
        sub = self.get(sub_id)
        link = sub.links.get(path.strip("/"))
        if link is not None:
            link.types.discard("explicit")
            if not link.types:
                del sub.links[path.strip("/")]
            self._records.save(sub)

    def _tail(self, path: str) -> str:
        return tail_offset(self._store, path) or ZERO

    @staticmethod
    def _link(sub: Subscription, path: str, kind: str, offset: str) -> Link:
        link = sub.links.get(path)
        if link is None:
            link = sub.links[path] = Link({kind}, offset)
        else:
            link.types.add(kind)
        return link

    def on_append(self, path: str) -> None:
        """A stream got data through the API: join it to matching globs, wake who follows it."""
        relative = relative_path(path)
        if relative is None:
            return
        for sub in list(self._subs.values()):
            if (
                sub.pattern is not None
                and relative not in sub.links
                and glob_matches(sub.pattern, relative)
            ):
                self._link(sub, relative, "glob", "-1")
                self._records.save(sub)
            if relative in sub.links:
                self.wakes.maybe_wake(sub, relative)

    def on_delete(self, path: str) -> None:
        relative = relative_path(path)
        if relative is None:
            return
        for sub in self._subs.values():
            if sub.links.pop(relative, None) is not None:
                self._records.save(sub)

    async def aclose(self) -> None:
        for sub in self._subs.values():
            sub.cancel_timers()
        if self.wakes.sender is not None:
            await self.wakes.sender.aclose()
