"""One response on a connection, without I/O: :class:`Exchange` is fed what the connection
reads and gives the head, then the body with its framing (the core's HTTP/1.1 decoder) and
compression undone, and says whether the connection may serve another request."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from .. import _core
from .. import _errors as errors

if TYPE_CHECKING:
    from .._core._native import HttpResponseDecoder


# The most body bytes one compressed chunk inflates to at a time.
INFLATE_BYTES = 256 * 1024


def body_too_large(limit: int, *, url: str, offset: str | None) -> errors.ProtocolError:
    return errors.ProtocolError(
        f"response body exceeds the limit of {limit} bytes (max_body_bytes)",
        url=url,
        offset=offset,
    )


class Gathered:
    """A whole body taken chunk by chunk; more than ``limit`` bytes is a
    :class:`ProtocolError` (a server sending without end is an error, not an allocation)."""

    __slots__ = ("_limit", "_offset", "_parts", "_size", "_url")

    def __init__(self, limit: int, *, url: str, offset: str | None) -> None:
        self._limit = limit
        self._url = url
        self._offset = offset
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise body_too_large(self._limit, url=self._url, offset=self._offset)
        self._parts.append(chunk)

    def body(self) -> bytes:
        parts = self._parts
        return parts[0] if len(parts) == 1 else b"".join(parts)


class Exchange:
    """One response on a connection, without I/O: fed what the connection reads, it gives
    the head, then the body with framing and compression undone, and says whether the
    connection may serve another request. Every failure is a typed error naming the URL."""

    def __init__(
        self, url: str, offset: str | None, max_head_bytes: int, no_body: bool = False
    ) -> None:
        self.url = url
        self.offset = offset
        self.decoder: HttpResponseDecoder = _core.impl.HttpResponseDecoder(max_head_bytes, no_body)
        self.status = 0
        self.headers: dict[str, str] = {}
        self._inflate: zlib._Decompress | None = None
        self._reusable = True
        self._received_body = False

    @property
    def done(self) -> bool:
        return bool(self.decoder.done)

    @property
    def keep_alive(self) -> bool:
        """Whether the body ended cleanly on a connection the server keeps open."""
        decoder = self.decoder
        return self._reusable and decoder.done and not decoder.close_delimited

    def _context(self, exc: errors.DurableStreamError) -> errors.DurableStreamError:
        return exc.with_context(url=self.url, offset=self.offset)

    def on_head_data(self, data: bytes) -> bytes | None:
        """Bytes read before the head completed (``b""``: the connection closed). Returns
        the first body bytes once the head is complete (see ``status`` and ``headers``)."""
        decoder = self.decoder
        try:
            if not data:
                decoder.finish()  # raises: no response, or a head cut short
            got, body, taken = decoder.feed(data)
        except errors.HTTPParseError as exc:
            raise self._context(exc) from None
        if got is None:
            return None
        self.status, self.headers = got
        if taken < len(data):
            self._reusable = False  # bytes after the response: a broken server
        if "close" in self.headers.get("connection", "").lower():
            self._reusable = False
        self._inflate = _decompressor(
            self.headers.get("content-encoding"), url=self.url, offset=self.offset
        )
        return self._body(body)

    def on_data(self, data: bytes) -> bytes:
        """More body bytes read (``b""``: the connection closed); the body they carry."""
        decoder = self.decoder
        try:
            if not data:
                decoder.finish()
                self._reusable = False
                return self._body(b"")
            _, body, taken = decoder.feed(data)
        except errors.HTTPParseError as exc:
            raise self._context(exc) from None
        if taken < len(data):
            self._reusable = False
        return self._body(body)

    def _body(self, body: bytes) -> bytes:
        inflate = self._inflate
        if inflate is None:
            return body
        if body:
            self._received_body = True
            body = self._inflated(body)
        if not inflate.unconsumed_tail:
            self._check_whole()
        return body

    def more(self) -> bytes:
        """Body bytes still to come out of what was fed (a compressed chunk inflates in
        pieces of at most INFLATE_BYTES, so that a highly compressed answer never sits in
        memory whole); ``b""`` when there are none."""
        inflate = self._inflate
        if inflate is None or not inflate.unconsumed_tail:
            return b""
        body = self._inflated(inflate.unconsumed_tail)
        if not inflate.unconsumed_tail:
            self._check_whole()
        return body

    def _inflated(self, data: bytes) -> bytes:
        assert self._inflate is not None
        try:
            return self._inflate.decompress(data, INFLATE_BYTES)
        except zlib.error as exc:
            raise errors.TransportError(
                f"compressed body is corrupt: {exc}", url=self.url, offset=self.offset
            ) from exc

    def _check_whole(self) -> None:
        # httpx's check too: a compressed body that stops before its compressed data did
        # was cut short, even if the framing around it looked whole.
        inflate = self._inflate
        assert inflate is not None
        if self._received_body and self.decoder.done and not inflate.eof:
            raise errors.TransportError(
                "compressed body ended early", url=self.url, offset=self.offset
            )


def _decompressor(encoding: str | None, *, url: str, offset: str | None) -> zlib._Decompress | None:
    """A zlib decompressor for the Content-Encoding answered, or None for identity."""
    if encoding is None:
        return None
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name == "gzip":
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if name == "deflate":
        return zlib.decompressobj()
    raise errors.ProtocolError(
        f"response compressed as {encoding!r}, which was not asked for", url=url, offset=offset
    )
