"""Where a request goes and its request head: the origin, the Host header, the target encoded
as httpx would encode it, checked headers, and the TLS context that honours ``verify``."""

from __future__ import annotations

import functools
import os
import re
import ssl
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

import httpx

from .. import _errors as errors
from .._protocol import HttpRequest

if TYPE_CHECKING:
    pass


USER_AGENT = "durable-streams-rs"


Verify = bool | str | ssl.SSLContext


def native_enabled() -> bool:
    """Whether the native transport may serve at all (``DURABLE_STREAMS_READ_TRANSPORT``)."""
    choice = os.environ.get("DURABLE_STREAMS_READ_TRANSPORT", "native")
    if choice not in ("native", "httpx"):
        raise ValueError(f"DURABLE_STREAMS_READ_TRANSPORT must be native or httpx, not {choice!r}")
    return choice == "native"


def usable_for(url: str) -> bool:
    """Whether the native transport can serve ``url``: http(s), and no proxy configured for
    it in the environment (httpx honours those; so must we, by leaving them to it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return True
    return bool(urllib.request.proxy_bypass(parts.hostname))


def ssl_context(verify: Verify) -> ssl.SSLContext:
    """The TLS context httpx would make for ``verify``."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    import certifi  # httpx's own default trust store

    return ssl.create_default_context(cafile=certifi.where())


Origin = tuple[str, str, int]


@dataclass(slots=True)
class Prepared:
    """A GET ready for the wire: where it goes and its request head."""

    origin: Origin
    head: bytes
    url: str
    offset: str | None


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


_HEADER_VALUE_BREAK = re.compile(r"[\r\n\x00]")


@functools.lru_cache(maxsize=256)
def _locate(url: str) -> tuple[Origin, str, str]:
    """Where ``url`` goes, its Host header, and its path and query as httpx encodes them
    (parsed once per URL: a reader sends many requests to one)."""
    parsed = httpx.URL(url)
    scheme = parsed.scheme
    host = parsed.host
    default_port = 443 if scheme == "https" else 80
    port = parsed.port or default_port
    authority = parsed.raw_host.decode("ascii")
    if ":" in authority:
        authority = f"[{authority}]"
    if port != default_port:
        authority = f"{authority}:{port}"
    return (scheme, host, port), authority, parsed.raw_path.decode("ascii")


# What form encoding leaves as it is, and the separators of a query.
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9_.~=&-]*")


def _query(params: list[tuple[str, str]]) -> str:
    """``urlencode(params)``, without its cost when nothing needs encoding (offsets, cursors
    and modes never do): then the names and values hold no "=" or "&" of their own, as
    counting them shows."""
    query = "&".join([f"{name}={value}" for name, value in params])
    if (
        _PLAIN_QUERY.fullmatch(query)
        and query.count("=") == len(params)
        and query.count("&") == len(params) - 1
    ):
        return query
    return urlencode(params)


@functools.lru_cache(maxsize=64)
def _header_lines(fields: tuple[tuple[str, str], ...]) -> str:
    """The header lines after Host, checked (once per distinct set of headers: a reader sends
    the same ones on every request)."""
    lines = []
    names = set()
    for name, value in fields:
        if not _HEADER_NAME.fullmatch(name) or _HEADER_VALUE_BREAK.search(value):
            raise errors.UsageError(f"header {name!r} cannot be sent as given")
        names.add(name.lower())
        lines.append(f"{name}: {value}\r\n")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}\r\n")
    if "accept-encoding" not in names:
        lines.append("Accept-Encoding: gzip, deflate\r\n")
    block = "".join(lines)
    try:
        block.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"a request header is not latin-1 text: {exc}") from None
    return block


def prepare(req: HttpRequest) -> Prepared:
    """The request head of ``req``, its target encoded as httpx would encode it. A header
    that could not travel as given (a line break or NUL in it, a name that is not a token,
    text beyond latin-1) is a ValueError, never sent."""
    origin, authority, target = _locate(req.url)
    params = req.params
    offset = None
    if params:
        if "?" in target:  # merged as the httpx path merges them (see build_httpx_request)
            merged = httpx.URL(req.url).copy_merge_params(tuple(params))
            target = merged.raw_path.decode("ascii")
        else:
            target = f"{target}?{_query(params)}"
        for name, value in params:
            if name == "offset":
                offset = value
    lines = _header_lines(tuple(req.headers.items()))
    head = f"GET {target} HTTP/1.1\r\nHost: {authority}\r\n{lines}\r\n".encode("latin-1")
    return Prepared(origin, head, req.url, offset)
