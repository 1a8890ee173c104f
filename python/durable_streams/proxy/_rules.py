"""The proxy's decisions, without I/O: pre-signed URLs, the allowlist, which headers go
upstream, and the error bodies (PROXY_PROTOCOL.md sections 5, 6, 7 and 11)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = [
    "ALLOWED_METHODS",
    "Allowlist",
    "error_body",
    "sign",
    "signature_problem",
    "upstream_headers",
]

ALLOWED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

# Section 5.2: hop-by-hop headers, and the ones the proxy itself consumes or replaces.
# content-length is recomputed for the body actually sent.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "authorization",
        "upstream-url",
        "upstream-method",
        "upstream-authorization",
        "content-length",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _digest(secret: bytes, stream_id: str, expires: int) -> str:
    mac = hmac.new(secret, f"{stream_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def sign(secret: bytes, stream_id: str, expires: int) -> str:
    """The signature of a pre-signed URL: HMAC-SHA256 of ``"{stream_id}:{expires}"``,
    base64url without padding."""
    return _digest(secret, stream_id, expires)


def signature_problem(
    secret: bytes, stream_id: str, expires: str | None, signature: str | None, now: float
) -> str | None:
    """None when the pre-signed parameters grant access to ``stream_id`` at ``now``, else
    the error code (section 7.2). The signature is checked before the expiry, so an expired
    URL is told apart only when it is genuine."""
    if not expires or not signature:
        return "MISSING_SIGNATURE"
    if not re.fullmatch(r"[0-9]{1,12}", expires):
        return "SIGNATURE_INVALID"
    expected = _digest(secret, stream_id, int(expires))
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
        return "SIGNATURE_INVALID"
    if int(expires) <= now:
        return "SIGNATURE_EXPIRED"
    return None


def _normalize(url: str) -> str | None:
    """``scheme://host[:port]/path[?query]`` with scheme and host in lower case and a default
    port dropped; None for what is not an absolute http(s) URL with a host, or carries user
    info (``https://allowed.example@elsewhere/`` must not pass for the allowed host)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if "@" in parts.netloc or any(c in url for c in " \t\r\n\\"):
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}{parts.path or '/'}{query}"


def _compile(entry: str) -> re.Pattern[str]:
    scheme, sep, rest = entry.partition("://")
    if not sep or scheme.lower() not in _DEFAULT_PORTS or not rest:
        raise ValueError(f"allowlist entry {entry!r} is not an http(s) URL pattern")
    authority, slash, path = rest.partition("/")
    if not authority or "@" in authority:
        raise ValueError(f"allowlist entry {entry!r} has no host, or has user info")
    authority = authority.lower()
    for scheme_name, port in _DEFAULT_PORTS.items():
        if scheme.lower() == scheme_name and authority.endswith(f":{port}"):
            authority = authority[: -len(f":{port}")]
    if not slash:  # a bare origin: every URL on it
        path = "**"
    pieces = re.split(r"(\*\*|\*)", f"{scheme.lower()}://{authority}/{path}")
    regex = "".join(
        ".*" if piece == "**" else "[^/?#]*" if piece == "*" else re.escape(piece)
        for piece in pieces
    )
    return re.compile(regex)


class Allowlist:
    """Which upstream URLs the proxy may fetch (section 6). Empty: none.

    Each entry is either an origin, ``https://api.example.com`` (every URL on it), or a URL
    pattern where ``*`` matches any run of characters within one path segment (no ``/``,
    ``?`` or ``#``) and ``**`` any run at all, e.g. ``https://api.example.com/v1/**`` or
    ``https://*.example.com/v1/chat/*``. Scheme and host compare case-insensitively and a
    default port is the same as none; the rest is compared as written. A URL with user info
    (``https://a@b/``) never matches.
    """

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.entries = tuple(entries)
        self._patterns = [_compile(entry) for entry in self.entries]

    def __repr__(self) -> str:
        return f"Allowlist({list(self.entries)!r})"

    def allows(self, url: str) -> bool:
        normalized = _normalize(url)
        if normalized is None:
            return False
        return any(pattern.fullmatch(normalized) for pattern in self._patterns)


def upstream_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The client's headers as they go upstream (sections 5.1, 5.2): hop-by-hop and
    proxy headers dropped, ``Upstream-Authorization`` sent as ``Authorization``."""
    out: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "upstream-authorization":
            out.append(("authorization", value))
        elif lower not in _NOT_FORWARDED:
            out.append((name, value))
    return out


def error_body(code: str, message: str) -> bytes:
    """Section 11's error shape: ``{"error": {"code": ..., "message": ...}}``."""
    return json.dumps({"error": {"code": code, "message": message}}).encode()
