"""Strict standard base64 for SSE data events; mirrors ``rust/base64.rs``."""

from __future__ import annotations

import binascii
import re

__all__ = ["Base64ScanError", "decode"]

_VALID = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


class Base64ScanError(Exception):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(message, position)
        self.message = message
        self.position = position


def decode(text: bytes) -> bytes:
    """Decodes ``text``, ignoring CR and LF; raises :class:`Base64ScanError` with the offset."""
    compact = text.translate(None, b"\r\n")
    if len(compact) % 4 == 0 and _VALID.fullmatch(compact):
        return binascii.a2b_base64(compact)
    _locate_error(text)
    raise AssertionError("unreachable: the fast check and the scan disagree")


def _locate_error(text: bytes) -> None:
    nsig = 0
    pad_at: tuple[int, int] | None = None
    for off, c in enumerate(text):
        if c in (0x0D, 0x0A):
            continue
        if c == 0x3D:
            if pad_at is None:
                pad_at = (nsig, off)
            nsig += 1
            continue
        if c not in _ALPHABET:
            raise Base64ScanError("invalid base64 character", off)
        if pad_at is not None:
            raise Base64ScanError("base64 data after padding", off)
        nsig += 1
    if nsig % 4 != 0:
        raise Base64ScanError("base64 length is not a multiple of 4", len(text))
    if pad_at is not None and nsig - pad_at[0] > 2:
        raise Base64ScanError("too much base64 padding", pad_at[1])
