"""Where a request goes and its request head: the origin, the Host header, the target encoded
as httpx would encode it, checked headers, and the TLS context that honours ``verify``."""

from __future__ import annotations

import functools
import os
import re
import ssl
import urllib.request
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx

from .. import _errors as errors
from .._protocol import HttpRequest
from ._connections import Origin

USER_AGENT = "durable-streams-rs"


Verify = bool | str | ssl.SSLContext


# Which transport serves requests where both could: "native" (the default) or "httpx". The
# second name is the one of releases whose native transport served reads only.
TRANSPORT_VARIABLES = ("DURABLE_STREAMS_TRANSPORT", "DURABLE_STREAMS_READ_TRANSPORT")


def native_enabled() -> bool:
    """Whether the native transport may serve at all (``DURABLE_STREAMS_TRANSPORT``)."""
    for name in TRANSPORT_VARIABLES:
        choice = os.environ.get(name)
        if choice is None:
            continue
        if choice not in ("native", "httpx"):
            raise ValueError(f"{name} must be native or httpx, not {choice!r}")
        return choice == "native"
    return True


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


@dataclass(slots=True)
class Prepared:
    """A request ready for the wire: where it goes, its head, and its body: ``body`` of known
    length (sent with Content-Length), or ``stream``, chunks sent as they come (chunked)."""

    origin: Origin
    head: bytes
    url: str
    offset: str | None
    body: bytes | None = None
    stream: Iterable[bytes] | AsyncIterable[bytes] | None = None
    no_body: bool = False  # a HEAD: its answer has no body, whatever its head says


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


def origin_of(url: str) -> Origin:
    """The scheme, host and port of the server ``url`` goes to."""
    return _locate(url)[0]


def prepare(req: HttpRequest) -> Prepared:
    """The request head of ``req``, its target encoded as httpx would encode it, and its body
    framed. A header that could not travel as given (a line break or NUL in it, a name that
    is not a token, text beyond latin-1) is a :class:`UsageError`, never sent."""
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
    method = req.method
    body = req.content
    stream = req.stream
    if stream is not None:
        framing = "Transfer-Encoding: chunked\r\n"
    elif body is not None:
        framing = f"Content-Length: {len(body)}\r\n"
    elif method in ("POST", "PUT", "PATCH"):
        framing = "Content-Length: 0\r\n"
    else:
        framing = ""
    head = f"{method} {target} HTTP/1.1\r\nHost: {authority}\r\n{lines}{framing}\r\n"
    return Prepared(origin, head.encode("latin-1"), req.url, offset, body, stream, method == "HEAD")
