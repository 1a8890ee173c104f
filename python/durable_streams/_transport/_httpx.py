"""httpx plumbing shared by both httpx transports: requests built as httpx must see them,
headers as a plain lower-cased dict, and the check for a compressed body cut short."""

from __future__ import annotations

import httpx

from .._protocol import (
    HttpRequest,
)


def compressed_body_cut_short(response: httpx.Response, received: bool) -> bool:
    """Whether a gzip or deflate body, read to its end (``received``: any bytes of it),
    stopped before its compressed data did.

    httpx's zlib decoders never check for the end, so a body truncated by the server or a
    middlebox would otherwise read as a shorter, valid one. No bytes at all is no body, not a
    cut one."""
    if not received and response.num_bytes_downloaded == 0:
        return False
    decompressor = getattr(getattr(response, "_decoder", None), "decompressor", None)
    return getattr(decompressor, "eof", True) is False


def build_httpx_request(
    client: httpx.Client | httpx.AsyncClient, req: HttpRequest, timeout: httpx.Timeout
) -> httpx.Request:
    # httpx replaces a URL's own query with params= (a token in the URL would be lost), so
    # merge them here: the URL's parameters stay, ours are added (or replace same-named ones).
    url = httpx.URL(req.url)
    if req.params:
        url = url.copy_merge_params(tuple(req.params))
    return client.build_request(
        req.method,
        url,
        headers=req.headers,
        content=req.content,
        timeout=timeout,
    )


def lower_headers(headers: httpx.Headers) -> dict[str, str]:
    """httpx headers as a plain dict with lower-case names; repeated names joined by ``, ``."""
    out: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


# httpx's failures that leave the request unsent, or not sent whole: it cannot have been
# applied, whatever it was.
NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
)
