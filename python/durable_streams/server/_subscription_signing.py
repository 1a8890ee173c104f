"""What the embedded server signs for subscriptions, with the two keys its journal keeps:
the bearer tokens of wakes (HMAC-SHA256, issued with a claim or a webhook and checked on
ack, release and callback) and webhook bodies (Ed25519, published as a JWKS).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from ._subscription_model import Refusal, Subscription

__all__ = ["TOKEN_SECONDS", "Signer", "WakeTokens"]

TOKEN_SECONDS = 3600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class WakeTokens:
    """Tokens that name a subscription and the generation of the wake they were issued for."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, sub: Subscription) -> str:
        claims = {
            "sub": f"subscription:{sub.id}",
            "epoch": sub.generation,
            "exp": int(time.time()) + TOKEN_SECONDS,
            "jti": secrets.token_hex(8),
        }
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{_b64url(mac)}"

    def check(self, sub: Subscription, token: str, body: dict[str, Any]) -> None:
        """Refuse unless ``token`` is ours, for ``sub``, unexpired, and it and ``body`` name
        the wake in progress."""
        parts = token.split(".")
        if len(parts) != 2:
            raise Refusal("TOKEN_INVALID", "the token is malformed")
        payload, mac = parts
        if not (payload.isascii() and mac.isascii()):
            raise Refusal("TOKEN_INVALID", "the token is malformed")
        expected = _b64url(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            raise Refusal("TOKEN_INVALID", "the token's signature does not verify")
        try:
            claims = json.loads(_unb64url(payload))
        except (ValueError, RecursionError):
            raise Refusal("TOKEN_INVALID", "the token is malformed") from None
        if not isinstance(claims, dict) or claims.get("sub") != f"subscription:{sub.id}":
            raise Refusal("TOKEN_INVALID", "the token is for another subscription")
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp < time.time():
            raise Refusal("TOKEN_EXPIRED", "the token has expired")
        generation = body.get("generation")
        if (
            claims.get("epoch") != sub.generation
            or type(generation) is not int
            or generation != sub.generation
            or body.get("wake_id") != sub.wake_id
            or sub.wake_id is None
        ):
            raise Refusal("FENCED", "Wake generation is stale")


class Signer:
    """The server's Ed25519 webhook key, from its 32 secret bytes (needs cryptography)."""

    def __init__(self, secret: bytes) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._key = Ed25519PrivateKey.from_private_bytes(secret)
        raw = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        x = _b64url(raw)
        thumbprint = json.dumps(
            {"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":")
        ).encode()
        self.kid = "ds_" + _b64url(hashlib.sha256(thumbprint).digest())
        self.jwk = {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": x,
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        }

    def header(self, body: bytes) -> str:
        """The ``webhook-signature`` header for ``body``, stamped now."""
        stamp = str(int(time.time()))
        signature = self._key.sign(stamp.encode() + b"." + body)
        return f"t={stamp},kid={self.kid},ed25519={_b64url(signature)}"
