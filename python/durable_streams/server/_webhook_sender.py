"""Webhook wakes sent: the I/O around :class:`Wakes` for webhook subscriptions. Each wake is
POSTed, signed, to the subscription's URL with a callback URL and token; a failure is retried
with exponential backoff (and jitter) while the wake stands, and an answer of
``{"done": true}`` ends the wake as a callback would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ._subscription_model import PREFIX, Subscription
from ._subscription_records import SubscriptionRecords
from ._subscription_signing import Signer, WakeTokens
from ._webhook_urls import resolved_problem

if TYPE_CHECKING:
    from ._subscription_wakes import Wakes

__all__ = ["WebhookSender"]

log = logging.getLogger("durable_streams.server")

WEBHOOK_TIMEOUT = 10.0
RETRY_FIRST = 1.0
RETRY_MAX = 60.0


class WebhookSender:
    def __init__(
        self,
        wakes: Wakes,
        records: SubscriptionRecords,
        tokens: WakeTokens,
        signer: Callable[[], Signer],
        base_url: Callable[[], str],
    ) -> None:
        self._wakes = wakes
        self._records = records
        self._tokens = tokens
        self._signer = signer
        self._base_url = base_url
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: Any = None

    def deliver_soon(self, sub: Subscription, delay: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        if sub.retry is not None:  # one delivery chain per subscription
            sub.retry.cancel()
            sub.retry = None
        wake_id = sub.wake_id

        def start() -> None:
            sub.retry = None
            if not sub.deleted and sub.wake_id is not None and sub.wake_id == wake_id:
                task = loop.create_task(self._deliver(sub))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        if delay <= 0:
            start()
        else:
            sub.retry = loop.call_later(delay, start)

    async def _deliver(self, sub: Subscription) -> None:
        import httpx

        signer = self._signer()
        callback = f"{self._base_url()}{PREFIX}/subscriptions/{quote(sub.id, safe='')}/callback"
        payload = {
            "subscription_id": sub.id,
            "wake_id": sub.wake_id,
            "generation": sub.generation,
            "streams": self._wakes.pending(sub),
            "callback_url": callback,
            "callback_token": self._tokens.issue(sub),
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        wake_id = sub.wake_id
        problem = await resolved_problem(sub.webhook_url or "")
        if problem is not None:
            log.warning("subscription %s: webhook not delivered: %s", sub.id, problem)
            if not sub.deleted and sub.wake_id == wake_id:
                sub.retries += 1
                self.deliver_soon(sub, min(RETRY_FIRST * 2 ** (sub.retries - 1), RETRY_MAX))
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT)
        try:
            answer = await self._client.post(
                sub.webhook_url or "",
                content=body,
                headers={
                    "content-type": "application/json",
                    "webhook-signature": signer.header(body),
                },
            )
            ok = 200 <= answer.status_code < 300
        except httpx.HTTPError as exc:
            log.info("subscription %s: webhook delivery failed: %s", sub.id, exc)
            ok = False
        if sub.deleted or sub.wake_id != wake_id:
            return  # a newer wake has its own delivery
        if not ok:
            if sub.status != "failed":
                sub.status = "failed"
                self._records.save(sub)
            sub.retries += 1
            delay = min(RETRY_FIRST * 2 ** (sub.retries - 1), RETRY_MAX)
            self.deliver_soon(sub, delay * random.uniform(0.8, 1.2))
            return
        if sub.status != "active":
            sub.status = "active"
            self._records.save(sub)
        sub.retries = 0
        try:
            reply = json.loads(answer.content)
        except ValueError:
            reply = None
        if isinstance(reply, dict) and reply.get("done") is True and sub.wake_id == wake_id:
            self._wakes.webhook_done(sub)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
