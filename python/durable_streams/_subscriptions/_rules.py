"""Subscriptions (PROTOCOL.md sections 6 and 7), apart from I/O: what each call sends, what
its answer means, and the typed objects and errors it becomes.

A subscription lives under the server's stream root (the URL that stream paths are relative
to, e.g. ``http://host/v1/stream``) at ``{root}/__ds/subscriptions/{id}``. It links streams,
by a glob ``pattern`` and by an explicit ``streams`` list, each with the offset acknowledged
so far; a linked stream whose tail is past that offset has pending work. The server then
wakes the subscription: it POSTs a signed request to a webhook, or appends a wake event to a
"wake stream" on which pull-wake workers wait, claim the wake, read, acknowledge and finish."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from .. import _errors as errors
from .. import _protocol as proto
from .._protocol import HttpRequest
from .._values import (
    Ack,
    Claim,
    PendingStream,
    Subscription,
    SubscriptionLink,
    SubscriptionType,
    WebhookDelivery,
    WebhookSigning,
)

JSON_HEADERS = {"content-type": "application/json"}


MIN_LEASE_MS = 1_000


MAX_LEASE_MS = 600_000


def subscription_url(root: str, subscription_id: str) -> str:
    if not isinstance(subscription_id, str) or not subscription_id:
        raise ValueError(f"a subscription id is a non-empty string, not {subscription_id!r}")
    return f"{root.rstrip('/')}/__ds/subscriptions/{quote(subscription_id, safe='')}"


def jwks_url(root: str) -> str:
    return f"{root.rstrip('/')}/__ds/jwks.json"


# What a URL path may hold as it is (RFC 3986 pchar and "/"), "%" included: a path the
# server reports is already encoded, and one a caller gives is encoded the way an HTTP
# client encodes it, so both name the stream the server stores under the same path.
_PATH_SAFE = "/%!$&'()*+,;=:@~"


def encode_path(path: str) -> str:
    return quote(path.strip("/"), safe=_PATH_SAFE)


def stream_url(root: str, path: str) -> str:
    """The URL of the stream at ``path`` (as a subscription names it) under ``root``."""
    return f"{root.rstrip('/')}/{encode_path(path)}"


def _json_request(method: str, url: str, body: Mapping[str, Any], **kw: Any) -> HttpRequest:
    content = json.dumps(body, separators=(",", ":")).encode()
    return HttpRequest(
        method, url, {**JSON_HEADERS, **kw.pop("headers", {})}, content=content, **kw
    )


def _paths(streams: Iterable[str], what: str) -> list[str]:
    if isinstance(streams, str):
        raise TypeError(f"{what} is a list of stream paths, not one string")
    out = []
    for path in streams:
        if not isinstance(path, str) or not path.strip("/"):
            raise ValueError(f"{what} holds non-empty path strings, not {path!r}")
        out.append(encode_path(path))
    return out


def create_request(
    root: str,
    subscription_id: str,
    *,
    type: SubscriptionType,
    pattern: str | None,
    streams: Iterable[str] | None,
    webhook_url: str | None,
    wake_stream: str | None,
    lease_ttl_ms: int | None,
    description: str | None,
) -> HttpRequest:
    if type not in ("webhook", "pull-wake"):
        raise ValueError(f"type is 'webhook' or 'pull-wake', not {type!r}")
    body: dict[str, Any] = {"type": type}
    if pattern is not None:
        if not isinstance(pattern, str) or not pattern.strip("/"):
            raise ValueError(f"pattern is a non-empty glob, not {pattern!r}")
        body["pattern"] = pattern
    if streams is not None:
        paths = _paths(streams, "streams")
        if paths:
            body["streams"] = paths
    if "pattern" not in body and "streams" not in body:
        raise ValueError("a subscription needs a pattern, streams, or both")
    if type == "webhook":
        if not webhook_url:
            raise ValueError("a webhook subscription needs webhook_url")
        body["webhook"] = {"url": webhook_url}
    elif webhook_url is not None:
        raise ValueError("webhook_url is for webhook subscriptions")
    if type == "pull-wake":
        if not wake_stream or not wake_stream.strip("/"):
            raise ValueError("a pull-wake subscription needs wake_stream (a stream path)")
        body["wake_stream"] = encode_path(wake_stream)
    elif wake_stream is not None:
        raise ValueError("wake_stream is for pull-wake subscriptions")
    if lease_ttl_ms is not None:
        if (
            isinstance(lease_ttl_ms, bool)
            or not isinstance(lease_ttl_ms, int)
            or not MIN_LEASE_MS <= lease_ttl_ms <= MAX_LEASE_MS
        ):
            raise ValueError(
                f"lease_ttl_ms is an int from {MIN_LEASE_MS} to {MAX_LEASE_MS}, "
                f"not {lease_ttl_ms!r}"
            )
        body["lease_ttl_ms"] = lease_ttl_ms
    if description is not None:
        body["description"] = str(description)
    return _json_request("PUT", subscription_url(root, subscription_id), body)


def get_request(root: str, subscription_id: str) -> HttpRequest:
    return HttpRequest("GET", subscription_url(root, subscription_id))


def delete_request(root: str, subscription_id: str) -> HttpRequest:
    return HttpRequest("DELETE", subscription_url(root, subscription_id))


def add_streams_request(root: str, subscription_id: str, streams: Iterable[str]) -> HttpRequest:
    paths = _paths(streams, "streams")
    if not paths:
        raise ValueError("add_streams needs at least one stream path")
    url = subscription_url(root, subscription_id) + "/streams"
    return _json_request("POST", url, {"streams": paths})


def remove_stream_request(root: str, subscription_id: str, path: str) -> HttpRequest:
    (clean,) = _paths([path], "path")
    url = f"{subscription_url(root, subscription_id)}/streams/{quote(clean, safe='')}"
    return HttpRequest("DELETE", url)


def claim_request(root: str, subscription_id: str, worker: str) -> HttpRequest:
    if not isinstance(worker, str) or not worker:
        raise ValueError(f"worker is a non-empty name, not {worker!r}")
    # A claim resent after an answer was lost would find the wake held (by us, token unknown).
    url = subscription_url(root, subscription_id) + "/claim"
    return _json_request("POST", url, {"worker": worker}, idempotent=False)


def _ack_items(acks: Iterable[Ack] | Mapping[str, str]) -> list[dict[str, str]]:
    items = acks.items() if isinstance(acks, Mapping) else ((a.stream, a.offset) for a in acks)
    out = []
    for stream, offset in items:
        if not isinstance(stream, str) or not stream or not isinstance(offset, str) or not offset:
            raise ValueError(f"an ack is a stream path and an offset, not {stream!r}: {offset!r}")
        out.append({"stream": encode_path(stream), "offset": offset})
    return out


def ack_request(
    url: str,
    token: str,
    wake_id: str,
    generation: int,
    acks: Iterable[Ack] | Mapping[str, str],
    done: bool,
) -> HttpRequest:
    """An ack (pull-wake) or callback (webhook) to ``url``; without ``done``, also the
    heartbeat that renews the lease. Acks are idempotent; finishing is not (a resent ``done``
    finds the wake gone and is fenced), so only that is not resent after an unclear failure."""
    body: dict[str, Any] = {"wake_id": wake_id, "generation": generation}
    items = _ack_items(acks)
    if items:
        body["acks"] = items
    if done:
        body["done"] = True
    headers = {"authorization": f"Bearer {token}"}
    return _json_request("POST", url, body, headers=headers, idempotent=not done)


def release_request(root: str, claim: Claim) -> HttpRequest:
    url = subscription_url(root, claim.subscription_id) + "/release"
    body = {"wake_id": claim.wake_id, "generation": claim.generation}
    headers = {"authorization": f"Bearer {claim.token}"}
    return _json_request("POST", url, body, headers=headers, idempotent=False)


_CODES: dict[str, type[errors.SubscriptionError]] = {
    "SUBSCRIPTION_NOT_FOUND": errors.SubscriptionNotFoundError,
    "SUBSCRIPTION_ALREADY_EXISTS": errors.SubscriptionExistsError,
    "WEBHOOK_URL_REJECTED": errors.WebhookUrlRejectedError,
    "TOKEN_INVALID": errors.WakeTokenError,
    "TOKEN_EXPIRED": errors.WakeTokenExpiredError,
    "FENCED": errors.FencedError,
    "ALREADY_CLAIMED": errors.AlreadyClaimedError,
    "NO_PENDING_WORK": errors.NoPendingWorkError,
    "INVALID_OFFSET": errors.AckOffsetError,
}


def _error_fields(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else {}


def error_for(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    url: str,
    operation: str,
    subscription_id: str | None,
) -> errors.ResponseError:
    """The typed error of a refused subscription call: by the server's ``error.code`` where it
    names one we know, else by status as for any other request."""
    fields = _error_fields(body)
    code = fields.get("code")
    cls = _CODES.get(code) if isinstance(code, str) else None
    if cls is None and status == 404 and fields:
        cls = errors.SubscriptionNotFoundError
    if cls is None:
        return proto.error_for_status(status, headers, body, url=url, operation=operation)
    message = fields.get("message")
    text = f"{operation}: {code}" + (f": {message}" if isinstance(message, str) else "")
    common: dict[str, Any] = {
        "url": url,
        "status": status,
        "body": body[: proto.ERROR_BODY_LIMIT].decode("utf-8", "replace") or None,
        "code": code,
        "subscription_id": subscription_id,
    }
    if cls is errors.AlreadyClaimedError:
        holder = fields.get("current_holder")
        generation = fields.get("generation")
        return errors.AlreadyClaimedError(
            f"{text} (held by {holder!r})",
            current_holder=holder if isinstance(holder, str) else None,
            generation=generation if isinstance(generation, int) else None,
            **common,
        )
    return cls(text, **common)


def answered_as_stream(status: int, headers: Mapping[str, str]) -> bool:
    """Whether a success answered as a stream does (subscription answers carry no stream
    offset): the call went to a stream path, so ``root`` is not the server's stream root."""
    return status < 300 and proto.H_NEXT_OFFSET in headers


def not_a_root(root: str) -> errors.UsageError:
    return errors.UsageError(
        f"{errors.redact_url(root)} is not the server's stream root: a stream answered there, "
        "not the subscription API. Give the URL stream paths are relative to, e.g. "
        "http://127.0.0.1:4437/v1/stream"
    )


def _object(body: bytes, *, url: str, what: str) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise errors.ProtocolError(f"{what} is not JSON: {exc}", url=url) from None
    if not isinstance(parsed, dict):
        raise errors.ProtocolError(f"{what} is not a JSON object", url=url)
    return parsed


def _field(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...], url: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise errors.ProtocolError(f"the server's answer lacks a valid {name!r}", url=url)
    return value


def _optional(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    return value if isinstance(value, str) else None


def _links(raw: Any, url: str) -> tuple[SubscriptionLink, ...]:
    if not isinstance(raw, list):
        raise errors.ProtocolError("the subscription's streams are not a list", url=url)
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise errors.ProtocolError("a subscription's stream link is not an object", url=url)
        path = _field(item, "path", str, url)
        out.append(
            SubscriptionLink(
                path, _field(item, "link_type", str, url), _field(item, "acked_offset", str, url)
            )
        )
    return tuple(out)


def pending_streams(raw: Any, url: str) -> tuple[PendingStream, ...]:
    if not isinstance(raw, list):
        raise errors.ProtocolError("the wake's streams are not a list", url=url)
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise errors.ProtocolError("a wake's stream is not an object", url=url)
        out.append(
            PendingStream(
                _field(item, "path", str, url),
                _field(item, "link_type", str, url),
                _field(item, "acked_offset", str, url),
                _field(item, "tail_offset", str, url),
                bool(item.get("has_pending")),
            )
        )
    return tuple(out)


def subscription_result(status: int, body: bytes, *, url: str) -> Subscription:
    obj = _object(body, url=url, what="the subscription")
    kind = obj.get("type")
    if kind not in ("webhook", "pull-wake"):
        raise errors.ProtocolError(f"unknown subscription type {kind!r}", url=url)
    webhook = obj.get("webhook")
    signing = None
    webhook_url = None
    if isinstance(webhook, dict):
        webhook_url = _optional(webhook, "url")
        raw_signing = webhook.get("signing")
        if isinstance(raw_signing, dict):
            signing = WebhookSigning(
                _field(raw_signing, "alg", str, url),
                _field(raw_signing, "kid", str, url),
                _field(raw_signing, "jwks_url", str, url),
            )
    lease = obj.get("lease_ttl_ms")
    return Subscription(
        id=_field(obj, "id", str, url),
        type=kind,
        pattern=_optional(obj, "pattern"),
        streams=_links(obj.get("streams", []), url),
        webhook_url=webhook_url,
        signing=signing,
        wake_stream=_optional(obj, "wake_stream"),
        lease_ttl_ms=lease if isinstance(lease, int) and not isinstance(lease, bool) else 0,
        created_at=_optional(obj, "created_at"),
        status=_optional(obj, "status") or "active",
        description=_optional(obj, "description"),
        created=status == 201 if status in (200, 201) else None,
    )


def claim_result(body: bytes, *, url: str, subscription_id: str, worker: str) -> Claim:
    obj = _object(body, url=url, what="the claim")
    return Claim(
        subscription_id=subscription_id,
        worker=worker,
        wake_id=_field(obj, "wake_id", str, url),
        generation=_field(obj, "generation", int, url),
        token=_field(obj, "token", str, url),
        streams=pending_streams(obj.get("streams"), url),
        lease_ttl_ms=_field(obj, "lease_ttl_ms", int, url),
    )


def ack_result(body: bytes, *, url: str) -> bool:
    """Whether the server woke the subscription again at once (work is still pending)."""
    obj = _object(body, url=url, what="the ack's answer")
    if obj.get("ok") is not True:
        raise errors.ProtocolError("the ack's answer does not say ok", url=url)
    return obj.get("next_wake") is True


def delivery_from(body: bytes) -> WebhookDelivery:
    """The webhook request's JSON body (already verified) as a :class:`WebhookDelivery`."""
    try:
        obj = _object(body, url="", what="the webhook body")
        return WebhookDelivery(
            subscription_id=_field(obj, "subscription_id", str, ""),
            wake_id=_field(obj, "wake_id", str, ""),
            generation=_field(obj, "generation", int, ""),
            streams=pending_streams(obj.get("streams"), ""),
            callback_url=_field(obj, "callback_url", str, ""),
            callback_token=_field(obj, "callback_token", str, ""),
        )
    except errors.ProtocolError as exc:
        raise errors.WebhookVerificationError(
            f"a signed but malformed webhook body: {exc}"
        ) from None
