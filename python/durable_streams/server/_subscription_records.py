"""What the embedded server keeps of its subscriptions in the journal.

With a data file, subscriptions survive a restart (the reference server keeps them in memory
only): their configuration, links and acknowledged offsets, generation and status, one record
each; and the server's token and signing keys, so what it issued before still verifies. A
wake in flight is not kept: its holder is fenced after the restart, and a subscription with
pending work is woken again under a new generation.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from ._store import Journal
from ._subscription_model import Link, Subscription

__all__ = ["SubscriptionRecords"]

_KIND = "subscription"
_CONFIG = (
    "id",
    "type",
    "pattern",
    "streams",
    "webhook_url",
    "wake_stream",
    "lease_ttl_ms",
    "description",
    "config_hash",
    "created_at",
    "generation",
    "status",
)


class SubscriptionRecords:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def load(self) -> list[Subscription]:
        return [_restore(text) for _, text in self._journal.records(_KIND)]

    def save(self, sub: Subscription) -> None:
        if not sub.deleted:
            self._journal.save_record(_KIND, sub.id, _persisted(sub))

    def remove(self, sub_id: str) -> None:
        self._journal.remove_record(_KIND, sub_id)

    def token_key(self) -> bytes:
        return self._journal.secret("wake-token-key", lambda: secrets.token_bytes(32))

    def signing_key(self) -> bytes:
        return self._journal.secret("webhook-signing-key", lambda: secrets.token_bytes(32))


def _persisted(sub: Subscription) -> str:
    state: dict[str, Any] = {name: getattr(sub, name) for name in _CONFIG}
    state["links"] = [[path, sorted(link.types), link.acked] for path, link in sub.links.items()]
    return json.dumps(state, separators=(",", ":"))


def _restore(text: str) -> Subscription:
    state = json.loads(text)
    links = state.pop("links")
    sub = Subscription(**state)
    sub.links = {path: Link(set(types), acked) for path, types, acked in links}
    return sub
