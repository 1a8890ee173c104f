"""The State Protocol's fast fold of change messages (the twin of ``_core.fold_changes``)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["fold_changes"]

_OPERATIONS = frozenset(("insert", "update", "upsert"))
# The same rule as rust/state.rs and _statecore._RFC3339.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _nonempty_str(d: dict[str, Any], name: str) -> str | None:
    value = d.get(name)
    return value if type(value) is str and value else None


def fold_changes(
    messages: list[Any], start: int, types: dict[str, dict[str, Any]], txids: set[str]
) -> int:
    """Folds change messages ``messages[start:]`` into ``types`` and their txids into
    ``txids`` until one it does not take (a control, or not a valid change); returns its
    index, or ``len(messages)``."""
    end = len(messages)
    for i in range(start, end):
        message = messages[i]
        # Exact types only: anything else (subclasses with their own lookups included) goes
        # through the checked path.
        if type(message) is not dict:
            return i
        headers = message.get("headers")
        if type(headers) is not dict:
            return i
        operation = _nonempty_str(headers, "operation")
        if operation is None:
            return i
        delete = operation == "delete"
        if not delete and operation not in _OPERATIONS:
            return i
        kind, key = _nonempty_str(message, "type"), _nonempty_str(message, "key")
        if kind is None or key is None:
            return i
        txid = headers.get("txid")
        if txid is not None and _nonempty_str(headers, "txid") is None:
            return i
        stamp = headers.get("timestamp")
        if stamp is not None and (type(stamp) is not str or not _RFC3339.fullmatch(stamp)):
            return i
        keys = types.get(kind)
        if keys is not None and type(keys) is not dict:
            return i
        if delete:
            if keys is not None:
                keys.pop(key, None)
        else:
            if "value" not in message:
                return i
            if keys is None:
                keys = types[kind] = {}
            keys[key] = message["value"]
        if txid is not None:
            txids.add(txid)
    return end
