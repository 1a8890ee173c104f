"""Where the embedded server delivers webhooks (PROTOCOL.md 12.8): a URL is checked when a
subscription is created, and its host name again whenever a delivery resolves it."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = ["resolved_problem", "webhook_url_problem"]

# Besides private, loopback, link-local and unspecified addresses: shared address space
# (carrier-grade NAT), which also never names a public webhook receiver.
_SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")


def _numeric_host(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a numeric host stands for, in any spelling a resolver accepts
    (``127.1``, ``0x7f000001``, ``2130706433``, ``0177.0.0.1``); None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if address.version == 6:
        return "IPv6 webhook addresses are not accepted"
    if (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address in _SHARED_SPACE
    ):
        return "private, loopback, link-local and shared addresses are not accepted"
    return None


def webhook_url_problem(url: str) -> str | None:
    """Why the server refuses to deliver to ``url``, or None. A host name is checked again
    when a delivery resolves it (:func:`resolved_problem`)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "invalid webhook URL"
    if not host or parts.scheme not in ("http", "https"):
        return "invalid webhook URL"
    host = host.rstrip(".")
    address = _numeric_host(host)
    loopback = host == "localhost" or (
        address is not None
        and address.version == 4
        and address.is_loopback
        and host.startswith("127.")
        and host.count(".") == 3
    )
    if parts.scheme == "http":
        return None if loopback else "http is only allowed for localhost or 127.0.0.x"
    if host == "localhost":
        return "localhost webhooks must use http"
    return None if address is None else address_problem(address)


async def resolved_problem(url: str) -> str | None:
    """Whether an https webhook's host name resolves to an address it may not reach."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme != "https" or _numeric_host(host) is not None:
        return None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443)
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    for info in infos:
        problem = address_problem(ipaddress.ip_address(info[4][0]))
        if problem is not None:
            return f"{host} resolves to {info[4][0]}: {problem}"
    return None
