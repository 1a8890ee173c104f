"""Subscriptions (PROTOCOL.md sections 6 and 7) over HTTP, as the reference server serves them
under ``/v1/stream/__ds``: each request's path, JSON body and bearer token read, the registry
and its wakes asked, and the answer put in the reference server's JSON and status codes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from ._http import Request, Response
from ._subscription_model import PREFIX, Refusal, Subscription
from ._subscription_registry import SubscriptionRegistry

__all__ = ["SubscriptionRoutes"]


class SubscriptionRoutes:
    """``base_url`` gives the server's own URL (for JWKS URLs)."""

    def __init__(self, registry: SubscriptionRegistry, base_url: Callable[[], str]) -> None:
        self._registry = registry
        self._wakes = registry.wakes
        self._base_url = base_url

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
        registry = self._registry
        sub_id = unquote(rest[1])
        tail = rest[2:]
        if not tail:
            if method == "PUT":
                sub, created = registry.create(sub_id, _body(request))
                return _json(201 if created else 200, self._describe(sub))
            if method == "GET":
                return _json(200, self._describe(registry.get(sub_id)))
            if method == "DELETE":
                registry.delete(sub_id)
                return Response(204)
            return _method_not_allowed()
        if tail == ["streams"]:
            if method != "POST":
                return _method_not_allowed()
            registry.add_streams(sub_id, _body(request))
            return Response(204)
        if tail[0] == "streams" and len(tail) > 1:
            if method != "DELETE":
                return _method_not_allowed()
            registry.remove_stream(sub_id, unquote("/".join(tail[1:])))
            return Response(204)
        if len(tail) == 1 and tail[0] in ("callback", "claim", "ack", "release"):
            if tail[0] == "claim":
                worker = _body(request).get("worker")
                if not isinstance(worker, str) or not worker:
                    raise Refusal("INVALID_REQUEST", "worker is required")
                return _json(200, self._wakes.claim(registry.get(sub_id), worker))
            token = _bearer(request)  # a missing token is refused before a bad body
            body = _body(request)
            sub = registry.get(sub_id)
            if tail[0] == "release":
                self._wakes.release(sub, token, body)
                return Response(204)
            next_wake = self._wakes.acknowledge(sub, token, body, pull_wake=tail[0] == "ack")
            return _json(200, {"ok": True, "next_wake": next_wake})
        raise Refusal("SUBSCRIPTION_NOT_FOUND", "Durable Streams control route not found")

    def _describe(self, sub: Subscription) -> dict[str, Any]:
        out: dict[str, Any] = {"id": sub.id, "subscription_id": sub.id, "type": sub.type}
        if sub.pattern is not None:
            out["pattern"] = sub.pattern
        out["streams"] = [
            {"path": path, "link_type": link.link_type, "acked_offset": link.acked}
            for path, link in sub.links.items()
        ]
        if sub.webhook_url is not None:
            signer = self._registry.signer()
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

    def _jwks(self) -> Response:
        try:
            keys = [self._registry.signer().jwk]
        except Refusal:  # no cryptography here: nothing is signed, so nothing to publish
            keys = []
        response = _json(200, {"keys": keys}, "application/jwk-set+json")
        response.headers.append(("cache-control", "public, max-age=300"))
        return response


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


def _bearer(request: Request) -> str:
    header = request.header("authorization") or ""
    if not header.startswith("Bearer "):
        raise Refusal("TOKEN_INVALID", "a Bearer token is required")
    return header[len("Bearer ") :]


def _json(status: int, body: Any, content_type: str = "application/json") -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    return Response(status, [("content-type", content_type)], data)


def _refused(refusal: Refusal) -> Response:
    error: dict[str, Any] = {"code": refusal.code}
    if refusal.message is not None:
        error["message"] = refusal.message
    error.update(refusal.extra)
    return _json(refusal.status, {"error": error})


def _method_not_allowed() -> Response:
    return Response(405, [("content-type", "text/plain")], b"Method not allowed")
