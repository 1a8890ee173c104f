"""Receiving a subscription's webhooks: check that a request comes from the server, then work
its wake.

A webhook request carries ``Webhook-Signature: t=<unix seconds>,kid=<key id>,ed25519=<sig>``,
an Ed25519 signature (unpadded base64url) over ``<t>.<raw body>`` by the key the server
publishes under ``kid`` in its JWKS (``{root}/__ds/jwks.json``). :class:`WebhookVerifier`
checks all of it against the raw body, framework-agnostic::

    verifier = WebhookVerifier(subscription.signing.jwks_url)

    # in any web framework's handler, with the body exactly as received:
    try:
        delivery = verifier.verify(raw_body, request_headers)
    except WebhookVerificationError:
        return 401
    ...read delivery.streams from their acked offsets, then:
    subscriptions.callback(delivery, {path: offset, ...}, done=True)

Keys are fetched on first use and again when a request names a key the cache lacks (the server
rotated), at most once per ``refresh_interval`` seconds, so forged key ids cannot make the
verifier hammer the server. Needs the ``cryptography`` package (``pip install
'durable-streams-rs[webhooks]'``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import ssl
import threading
import time
from typing import Any, Protocol

import httpx

from . import _errors as errors
from ._options import CLIENT_LIMITS
from ._subscriptions._rules import delivery_from
from ._values import WebhookDelivery

__all__ = ["SIGNATURE_HEADER", "Headers", "WebhookVerifier"]

SIGNATURE_HEADER = "webhook-signature"
DEFAULT_TOLERANCE = 300.0
DEFAULT_REFRESH_INTERVAL = 10.0
_SIGNATURE = re.compile(r"^t=(\d{1,15}),kid=([^,\s]+),ed25519=([A-Za-z0-9_-]+)$")


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Headers(Protocol):
    """What ``verify`` reads headers from: a dict, or any framework's headers object."""

    def get(self, key: str, /) -> Any: ...

    def items(self) -> Any: ...


def _header(headers: Headers, name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == name:
                return str(candidate)
    return None if value is None else str(value)


def parse_signature(header: str | None) -> tuple[str, str, bytes]:
    """The ``(timestamp, kid, signature)`` of a ``Webhook-Signature`` header; the timestamp
    as the header spells it, since that text is what was signed."""
    if not header:
        raise errors.WebhookVerificationError("the request has no Webhook-Signature header")
    match = _SIGNATURE.match(header.strip())
    if match is None:
        raise errors.WebhookVerificationError("the Webhook-Signature header is malformed")
    try:
        signature = _b64url(match.group(3))
    except (binascii.Error, ValueError):
        raise errors.WebhookVerificationError("the webhook signature is not base64url") from None
    if len(signature) != 64:
        raise errors.WebhookVerificationError("the webhook signature is not 64 bytes")
    return match.group(1), match.group(2), signature


def _public_keys(document: Any) -> dict[str, Any]:
    """The Ed25519 keys of a JWKS document, by ``kid``; keys of other kinds are skipped."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise errors.ProtocolError("the JWKS document has no list of keys")
    out: dict[str, Any] = {}
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") != "OKP" or key.get("crv") != "Ed25519":
            continue
        kid, x = key.get("kid"), key.get("x")
        if not isinstance(kid, str) or not isinstance(x, str):
            continue
        try:
            out[kid] = Ed25519PublicKey.from_public_bytes(_b64url(x))
        except ValueError:
            continue
    return out


class WebhookVerifier:
    """Verifies webhook requests against the keys published at ``jwks_url``.

    ``tolerance``: how far (seconds) a request's timestamp may be from this machine's clock,
    so a captured request cannot be replayed later. ``subscription_id``: the subscription
    this endpoint serves; a request signed for another one (the server signs every
    subscription's requests with the same key) is refused. ``verify`` fetches keys with a blocking
    request when it must; ``averify`` is the same for async code. Both return the request as a
    :class:`WebhookDelivery`, or raise :class:`WebhookVerificationError` (answer 401 and do
    nothing with the request); a JWKS that cannot be fetched raises the usual transport or
    response error (answer 5xx: the server retries the delivery)."""

    def __init__(
        self,
        jwks_url: str,
        *,
        subscription_id: str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        timeout: float = 10.0,
        verify: bool | str | ssl.SSLContext = True,
    ) -> None:
        try:
            import cryptography  # noqa: F401
        except ImportError:  # pragma: no cover - depends on the install
            raise ImportError(
                "verifying webhooks needs the cryptography package: "
                "pip install 'durable-streams-rs[webhooks]'"
            ) from None
        if tolerance <= 0 or refresh_interval < 0:
            raise ValueError("tolerance must be positive and refresh_interval not negative")
        self.jwks_url = jwks_url
        self.subscription_id = subscription_id
        self.tolerance = tolerance
        self.refresh_interval = refresh_interval
        self._timeout = timeout
        self._verify = verify
        self._keys: dict[str, Any] = {}
        self._tried_at: float | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<WebhookVerifier {errors.redact_url(self.jwks_url)} keys={sorted(self._keys)}>"

    def _due(self, kid: str) -> bool:
        """Whether the cache lacks ``kid`` and may be refreshed now; if so, the attempt counts
        from now, whether it succeeds or not, so requests naming made-up key ids (or arriving
        while the JWKS is down) cannot make it fetch more than once per interval."""
        with self._lock:
            if kid in self._keys:
                return False
            last = self._tried_at
            now = time.monotonic()
            if last is not None and now - last < self.refresh_interval:
                return False
            self._tried_at = now
            return True

    def _fresh(self, stamp: str, now: float | None) -> None:
        clock = time.time() if now is None else now
        if abs(clock - int(stamp)) > self.tolerance:
            raise errors.WebhookVerificationError(
                f"the webhook's timestamp is {clock - int(stamp):+.0f} s from this clock "
                f"(tolerance {self.tolerance:.0f} s)"
            )

    def _store(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise errors.ResponseError(
                f"the JWKS answered {response.status_code}",
                url=self.jwks_url,
                status=response.status_code,
            )
        try:
            document = json.loads(response.content)
        except ValueError:
            raise errors.ProtocolError("the JWKS is not JSON", url=self.jwks_url) from None
        keys = _public_keys(document)
        with self._lock:
            self._keys = keys

    def _fetch(self) -> None:
        try:
            with httpx.Client(verify=self._verify, limits=CLIENT_LIMITS) as client:
                response = client.get(self.jwks_url, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise errors.TransportError(
                f"fetching the JWKS failed: {exc}", url=self.jwks_url
            ) from exc
        self._store(response)

    async def _afetch(self) -> None:
        try:
            async with httpx.AsyncClient(verify=self._verify, limits=CLIENT_LIMITS) as client:
                response = await client.get(self.jwks_url, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise errors.TransportError(
                f"fetching the JWKS failed: {exc}", url=self.jwks_url
            ) from exc
        self._store(response)

    def verify(self, body: bytes, headers: Headers, *, now: float | None = None) -> WebhookDelivery:
        """Check the request whose raw ``body`` and ``headers`` are given; returns what it
        delivers. ``now`` (Unix seconds) is for tests."""
        stamp, kid, _ = parse_signature(_header(headers, SIGNATURE_HEADER))
        self._fresh(stamp, now)  # before any fetch: stale requests cost nothing
        if self._due(kid):
            self._fetch()
        return self.check(body, headers, now=now)

    async def averify(
        self, body: bytes, headers: Headers, *, now: float | None = None
    ) -> WebhookDelivery:
        """:meth:`verify` for async code."""
        stamp, kid, _ = parse_signature(_header(headers, SIGNATURE_HEADER))
        self._fresh(stamp, now)
        if self._due(kid):
            await self._afetch()
        return self.check(body, headers, now=now)

    def check(self, body: bytes, headers: Headers, *, now: float | None = None) -> WebhookDelivery:
        """:meth:`verify` against the keys already fetched, with no I/O."""
        from cryptography.exceptions import InvalidSignature

        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError("body must be the request's raw bytes, exactly as received")
        stamp, kid, signature = parse_signature(_header(headers, SIGNATURE_HEADER))
        self._fresh(stamp, now)
        key = self._keys.get(kid)
        if key is None:
            raise errors.WebhookVerificationError(f"no published key has kid {kid!r}")
        try:
            key.verify(signature, stamp.encode() + b"." + bytes(body))
        except InvalidSignature:
            raise errors.WebhookVerificationError(
                "the webhook signature does not match its body"
            ) from None
        delivery = delivery_from(bytes(body))
        if self.subscription_id is not None and delivery.subscription_id != self.subscription_id:
            raise errors.WebhookVerificationError(
                f"the webhook is for subscription {delivery.subscription_id!r}, "
                f"not {self.subscription_id!r}"
            )
        return delivery
