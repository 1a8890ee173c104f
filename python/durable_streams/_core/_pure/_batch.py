"""Append-body assembly of the pure-Python core; mirrors ``rust/batch.rs``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, final

from ..._errors import JSONParseError
from .. import NOT_TAKEN, TAKEN, TAKEN_FILLED, TAKEN_FIRST
from . import _json

__all__ = ["BatchBuilder"]

_WS = b" \t\n\r"


@final
class BatchBuilder:
    """Assembles append bodies: a JSON array for JSON streams, concatenation otherwise."""

    __slots__ = (
        "_parts",
        "_size",
        "accepting",
        "json_mode",
        "max_batch_bytes",
        "max_items",
        "on_outcome",
        "room",
    )

    json_mode: Final[bool]
    max_batch_bytes: Final[int]

    def __init__(self, json_mode: bool, max_batch_bytes: int) -> None:
        cap = max_batch_bytes.__index__()
        if cap <= 0:
            raise ValueError("max_batch_bytes must be positive")
        if cap >= 1 << 63:
            raise OverflowError("max_batch_bytes is too large")
        self.json_mode = bool(json_mode)
        self.max_batch_bytes = cap
        self._parts: list[bytes] = []
        self._size = 0  # sum of the message lengths
        # offer() takes a message only while accepting and the open batch is below room
        # bytes, and says when the batch reaches max_items messages (0: no limit).
        self.room = (1 << 63) - 1
        self.max_items = 0
        self.accepting = True
        # What add() calls with (item, outcome) when offer() leaves something to do.
        self.on_outcome: Callable[[Any, int], object] | None = None

    @property
    def nbytes(self) -> int:
        n = len(self._parts)
        if self.json_mode and n:
            return self._size + n + 1  # brackets and n - 1 commas
        return self._size

    def __len__(self) -> int:
        return len(self._parts)

    def _encoded(self, item: Any) -> bytes:
        if isinstance(item, bytes):
            raw = item
        elif isinstance(item, str):
            raw = item.encode("utf-8")
        elif isinstance(item, (bytearray, memoryview)):
            raw = bytes(item)
        elif not self.json_mode:
            raise TypeError(
                "BatchBuilder without json_mode takes str or bytes-like items, "
                f"not {type(item).__name__}"
            )
        else:
            return _json.encode_json(item)
        if not self.json_mode:
            return raw
        try:
            if raw[:1] not in _WS and raw[-1:] not in _WS:
                _json.loads_value(raw)  # fast, and as strict as the scanner
                return raw
            a, b = _json.validate_value(raw)
        except _json.JsonScanError as e:
            raise JSONParseError(e.message, position=e.position) from None
        return raw[a:b]

    def push(self, item: Any) -> bool:
        """Adds one message; False (nothing added) if the batch is non-empty and it won't fit."""
        msg = self._encoded(item)
        n = len(self._parts)
        if n:
            after = self._size + len(msg) + (n + 2 if self.json_mode else 0)
            if after > self.max_batch_bytes:
                return False
        self._parts.append(msg)
        self._size += len(msg)
        return True

    def offer(self, item: Any) -> int:
        """One message for a producer: ``NOT_TAKEN`` while not accepting, when the open batch
        has ``room`` bytes or more, or when the message does not fit it (seal, then push);
        otherwise taken, and ``TAKEN_FIRST`` when it opened the batch, ``TAKEN_FILLED`` when
        the batch now has ``max_items``, else ``TAKEN``."""
        if not self.accepting or self.nbytes >= self.room or not self.push(item):
            return NOT_TAKEN
        count = len(self._parts)
        if count == self.max_items:
            return TAKEN_FILLED
        return TAKEN_FIRST if count == 1 else TAKEN

    def add(self, item: Any) -> None:
        """``offer(item)``, then ``on_outcome(item, outcome)`` unless the outcome is ``TAKEN``."""
        outcome = self.offer(item)
        if outcome == TAKEN:
            return
        if self.on_outcome is None:
            raise ValueError("BatchBuilder.add needs on_outcome for what offer leaves to do")
        self.on_outcome(item, outcome)

    def push_many(self, items: Any) -> int:
        """Pushes items until one does not fit; how many were taken."""
        taken = 0
        for item in items:
            if not self.push(item):
                break
            taken += 1
        return taken

    def take(self) -> bytes:
        """The body (``b""`` when empty); the batch starts over."""
        parts = self._parts
        self._parts = []
        self._size = 0
        if not parts:
            return b""
        if self.json_mode:
            return b"[" + b",".join(parts) + b"]"
        return b"".join(parts)
