"""Subscriptions (PROTOCOL.md sections 6 and 7) in the embedded server, as the reference
server serves them under ``/v1/stream/__ds``: membership by glob and explicit lists, one
cursor per linked stream, wakes with generations, pull-wake claims under leases, webhook
deliveries signed with Ed25519, callbacks and acks fenced by generation and wake id.

With a data file, subscriptions survive a restart (the reference server keeps them in memory
only): their configuration, links and acknowledged offsets, generation, and the server's
signing and token keys. A wake in flight does not: its holder is fenced after the restart, and
a subscription with pending work is woken again under a new generation. Webhook delivery
needs the ``cryptography`` package and ``webhooks=True``; pull-wake works without either.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import json
import logging
import random
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from ._http import Request, Response
from ._store import Store, StoreError
from ._subscription_model import (
    PREFIX,
    STREAM_ROOT,
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
from ._webhook_urls import resolved_problem, webhook_url_problem

__all__ = ["PREFIX", "Subscriptions"]

log = logging.getLogger("durable_streams.server")

DEFAULT_LEASE_MS = 30_000
MIN_LEASE_MS = 1_000
MAX_LEASE_MS = 600_000
WEBHOOK_TIMEOUT = 10.0
RETRY_FIRST = 1.0
RETRY_MAX = 60.0


def _json(status: int, body: Any, content_type: str = "application/json") -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    return Response(status, [("content-type", content_type)], data)


class Subscriptions:
    """The ``__ds`` routes and the wake machinery. ``base_url`` gives the server's own URL
    (for callback and JWKS URLs); ``on_append`` and ``on_delete`` are the store's hooks."""

    def __init__(
        self, store: Store, base_url: Callable[[], str], *, webhooks: bool = False
    ) -> None:
        self._store = store
        self._records = SubscriptionRecords(store.journal)
        self._base_url = base_url
        self._webhooks = webhooks
        self._subs: dict[str, Subscription] = {}
        self._tokens = WakeTokens(self._records.token_key())
        self._signer: Signer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: Any = None
        for sub in self._records.load():
            self._subs[sub.id] = sub

    def start(self) -> None:
        """Once the server listens (its URL known): wakes in flight did not survive a
        restart, so work that is pending gets a new one."""
        for sub in list(self._subs.values()):
            if not sub.deleted:
                self._maybe_wake(sub)

    def _save(self, sub: Subscription) -> None:
        self._records.save(sub)

    # -- routing -----------------------------------------------------------------

    @staticmethod
    def handles(path: str) -> bool:
        return path == PREFIX or path.startswith(PREFIX + "/")

    async def dispatch(self, request: Request) -> Response:
        try:
            return self._route(request)
        except Refusal as exc:
            return _refused(exc)

    def _route(self, request: Request) -> Response:
        rest = request.path[len(PREFIX) :].split("/")[1:]
        method = request.method
        if rest == ["jwks.json"]:
            if method != "GET":
                return _method_not_allowed()
            return self._jwks()
        if len(rest) < 2 or rest[0] != "subscriptions" or not rest[1]:
            raise Refusal("SUBSCRIPTION_NOT_FOUND", "Durable Streams control route not found")
        sub_id = unquote(rest[1])
        tail = rest[2:]
        if not tail:
            if method == "PUT":
                return self._create(sub_id, self._body(request))
            if method == "GET":
                return _json(200, self._describe(self._get(sub_id)))
            if method == "DELETE":
                self._delete(sub_id)
                return Response(204)
            return _method_not_allowed()
        if tail == ["streams"]:
            if method != "POST":
                return _method_not_allowed()
            return self._add_streams(sub_id, self._body(request))
        if tail[0] == "streams" and len(tail) > 1:
            if method != "DELETE":
                return _method_not_allowed()
            return self._remove_stream(sub_id, unquote("/".join(tail[1:])))
        if len(tail) == 1 and tail[0] in ("callback", "claim", "ack", "release"):
            if tail[0] == "claim":
                return self._claim(sub_id, self._body(request))
            token = self._bearer(request)  # a missing token is refused before a bad body
            body = self._body(request)
            if tail[0] == "callback":
                return self._acknowledge(sub_id, token, body, pull_wake=False)
            if tail[0] == "ack":
                return self._acknowledge(sub_id, token, body, pull_wake=True)
            return self._release(sub_id, token, body)
        raise Refusal("SUBSCRIPTION_NOT_FOUND", "Durable Streams control route not found")

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        if not request.body:
            return {}
        try:
            body = json.loads(request.body)
        except (ValueError, RecursionError):
            raise Refusal("INVALID_REQUEST", "Invalid JSON body") from None
        if not isinstance(body, dict):
            raise Refusal("INVALID_REQUEST", "the body must be a JSON object")
        return body

    @staticmethod
    def _bearer(request: Request) -> str:
        header = request.header("authorization") or ""
        if not header.startswith("Bearer "):
            raise Refusal("TOKEN_INVALID", "a Bearer token is required")
        return header[len("Bearer ") :]

    def _get(self, sub_id: str) -> Subscription:
        sub = self._subs.get(sub_id)
        if sub is None:
            raise Refusal("SUBSCRIPTION_NOT_FOUND", f"subscription {sub_id} not found")
        return sub

    # -- management --------------------------------------------------------------

    def _create(self, sub_id: str, body: dict[str, Any]) -> Response:
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
        existing = self._subs.get(sub_id)
        if existing is not None:
            if existing.config_hash != config_hash:
                raise Refusal(
                    "SUBSCRIPTION_ALREADY_EXISTS",
                    f"subscription {sub_id} exists with another configuration",
                )
            return _json(200, self._describe(existing))
        if kind == "webhook":
            if not self._webhooks:
                raise Refusal(
                    "INVALID_REQUEST", "webhook subscriptions are not enabled on this server"
                )
            problem = webhook_url_problem(webhook_url or "")
            if problem is not None:
                raise Refusal("WEBHOOK_URL_REJECTED", problem)
            self._signing()
        now = _dt.datetime.now(_dt.timezone.utc)
        sub = Subscription(
            id=sub_id,
            type=kind,
            pattern=pattern,
            streams=streams,
            webhook_url=webhook_url,
            wake_stream=wake_stream,
            lease_ttl_ms=lease,
            description=description,
            config_hash=config_hash,
            created_at=now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )
        for path in streams:
            self._link(sub, path, "explicit", self._tail(path))
        if pattern is not None:
            for path in self._store.paths():
                relative = relative_path(path)
                if relative is not None and glob_matches(pattern, relative):
                    self._link(sub, relative, "glob", self._tail(relative))
        self._subs[sub_id] = sub
        self._save(sub)
        return _json(201, self._describe(sub))

    def _describe(self, sub: Subscription) -> dict[str, Any]:
        out: dict[str, Any] = {"id": sub.id, "subscription_id": sub.id, "type": sub.type}
        if sub.pattern is not None:
            out["pattern"] = sub.pattern
        out["streams"] = [
            {"path": path, "link_type": link.link_type, "acked_offset": link.acked}
            for path, link in sub.links.items()
        ]
        if sub.webhook_url is not None:
            signer = self._signing()
            out["webhook"] = {
                "url": sub.webhook_url,
                "signing": {
                    "alg": "ed25519",
                    "kid": signer.kid,
                    "jwks_url": f"{self._base_url()}{PREFIX}/jwks.json",
                },
            }
        if sub.wake_stream is not None:
            out["wake_stream"] = sub.wake_stream
        out["lease_ttl_ms"] = sub.lease_ttl_ms
        out["created_at"] = sub.created_at
        out["status"] = sub.status
        if sub.description is not None:
            out["description"] = sub.description
        return out

    def _delete(self, sub_id: str) -> None:
        sub = self._subs.pop(sub_id, None)
        if sub is not None:
            sub.deleted = True
            sub.cancel_timers()
            self._records.remove(sub_id)

    def _add_streams(self, sub_id: str, body: dict[str, Any]) -> Response:
        streams = body.get("streams")
        if (
            not isinstance(streams, list)
            or not streams
            or not all(isinstance(s, str) and s for s in streams)
        ):
            raise Refusal("INVALID_REQUEST", "streams must be a non-empty string array")
        sub = self._get(sub_id)
        for path in streams:
            self._link(sub, path.strip("/"), "explicit", self._tail(path.strip("/")))
        self._save(sub)
        return Response(204)

    def _remove_stream(self, sub_id: str, path: str) -> Response:
        sub = self._get(sub_id)
        link = sub.links.get(path.strip("/"))
        if link is not None:
            link.types.discard("explicit")
            if not link.types:
                del sub.links[path.strip("/")]
            self._save(sub)
        return Response(204)

    def _jwks(self) -> Response:
        try:
            keys = [self._signing().jwk]
        except Refusal:  # no cryptography here: nothing is signed, so nothing to publish
            keys = []
        response = _json(200, {"keys": keys}, "application/jwk-set+json")
        response.headers.append(("cache-control", "public, max-age=300"))
        return response

    def _signing(self) -> Signer:
        if self._signer is None:
            secret = self._records.signing_key()
            try:
                self._signer = Signer(secret)
            except ImportError:
                raise Refusal(
                    "INVALID_REQUEST", "webhook signing needs the cryptography package"
                ) from None
        return self._signer

    # -- membership ----------------------------------------------------------------

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
                self._save(sub)
            if relative in sub.links:
                self._maybe_wake(sub, relative)

    def on_delete(self, path: str) -> None:
        relative = relative_path(path)
        if relative is None:
            return
        for sub in self._subs.values():
            if sub.links.pop(relative, None) is not None:
                self._save(sub)

    # -- wakes ---------------------------------------------------------------------

    def _pending(self, sub: Subscription) -> list[dict[str, Any]]:
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
        return any(s["has_pending"] for s in self._pending(sub))

    def _maybe_wake(self, sub: Subscription, trigger: str | None = None) -> bool:
        if sub.wake_id is not None or sub.holder is not None or not self._has_work(sub):
            return False
        self._wake(sub, trigger)
        return True

    def _wake(self, sub: Subscription, trigger: str | None) -> None:
        sub.generation += 1
        self._save(sub)
        sub.wake_id = "w_" + secrets.token_hex(12)
        pending = self._pending(sub)
        sub.snapshot = {s["path"]: s["tail_offset"] for s in pending}
        if trigger is None:
            trigger = next((s["path"] for s in pending if s["has_pending"]), None)
        if sub.type == "webhook":
            self._start_lease(sub)
            if self._webhooks:  # a webhook subscription kept from a run that allowed them
                self._deliver_soon(sub)
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
        return self._maybe_wake(sub)

    # -- claim, ack, release, callback ---------------------------------------------

    def _claim(self, sub_id: str, body: dict[str, Any]) -> Response:
        worker = body.get("worker")
        if not isinstance(worker, str) or not worker:
            raise Refusal("INVALID_REQUEST", "worker is required")
        sub = self._get(sub_id)
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
        return _json(
            200,
            {
                "wake_id": sub.wake_id,
                "generation": sub.generation,
                "token": self._tokens.issue(sub),
                "streams": self._pending(sub),
                "lease_ttl_ms": sub.lease_ttl_ms,
            },
        )

    def _acknowledge(
        self, sub_id: str, token: str, body: dict[str, Any], *, pull_wake: bool
    ) -> Response:
        sub = self._get(sub_id)
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
            if offset == "-1" or offset < link.acked or offset > self._tail(path.strip("/")):
                raise Refusal("INVALID_OFFSET", f"offset {offset} is out of range for {path}")
            updates[path.strip("/")] = offset
        for path, offset in updates.items():
            sub.links[path].acked = offset
        if updates:
            self._save(sub)
        if body.get("done") is True:
            next_wake = self._finish(sub)
        else:
            self._start_lease(sub)
            next_wake = False
        return _json(200, {"ok": True, "next_wake": next_wake})

    def _release(self, sub_id: str, token: str, body: dict[str, Any]) -> Response:
        sub = self._get(sub_id)
        if sub.type != "pull-wake":
            raise Refusal("INVALID_REQUEST", "Subscription is not pull-wake")
        self._tokens.check(sub, token, body)
        self._finish(sub)
        return Response(204)

    # -- webhook delivery ----------------------------------------------------------

    def _deliver_soon(self, sub: Subscription, delay: float = 0.0) -> None:
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

        signer = self._signing()
        callback = f"{self._base_url()}{PREFIX}/subscriptions/{quote(sub.id, safe='')}/callback"
        payload = {
            "subscription_id": sub.id,
            "wake_id": sub.wake_id,
            "generation": sub.generation,
            "streams": self._pending(sub),
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
                self._deliver_soon(sub, min(RETRY_FIRST * 2 ** (sub.retries - 1), RETRY_MAX))
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
                self._save(sub)
            sub.retries += 1
            delay = min(RETRY_FIRST * 2 ** (sub.retries - 1), RETRY_MAX)
            self._deliver_soon(sub, delay * random.uniform(0.8, 1.2))
            return
        if sub.status != "active":
            sub.status = "active"
            self._save(sub)
        sub.retries = 0
        try:
            reply = json.loads(answer.content)
        except ValueError:
            reply = None
        if isinstance(reply, dict) and reply.get("done") is True and sub.wake_id == wake_id:
            for path, tail in (sub.snapshot or {}).items():
                link = sub.links.get(path)
                if link is not None and tail > link.acked:
                    link.acked = tail
            self._save(sub)
            self._finish(sub)

    async def aclose(self) -> None:
        for sub in self._subs.values():
            sub.cancel_timers()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()


def _refused(refusal: Refusal) -> Response:
    error: dict[str, Any] = {"code": refusal.code}
    if refusal.message is not None:
        error["message"] = refusal.message
    error.update(refusal.extra)
    return _json(refusal.status, {"error": error})


def _method_not_allowed() -> Response:
    return Response(405, [("content-type", "text/plain")], b"Method not allowed")
