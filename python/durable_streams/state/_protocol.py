"""The State Protocol (``packages/state/STATE-PROTOCOL.md`` upstream), apart from I/O: its
messages, checked as they are read, and the state they fold into.

A state stream is a JSON stream of *change* messages, ``{"type", "key", "value",
"old_value"?, "headers": {"operation", "txid"?, "timestamp"?}}``, and *control* messages,
``{"headers": {"control": "snapshot-start" | "snapshot-end" | "reset", "offset"?}}``. Folding
the changes in stream order gives, per ``type``, a map from ``key`` to ``value``: insert,
update and upsert store the value whole, delete removes the key, and ``reset`` clears
everything. Reading is lenient where the TypeScript implementation is (``upsert``, extra
header keys such as the ``offset`` the reference server adds, a delete without ``value``)
and strict about the rest: a malformed message is a :class:`StateMessageError` naming its
offset, unless the reader chose to skip and count them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from .. import _core
from .. import _errors as errors
from ._schema import StateSchema, _as_schema

__all__ = [
    "CONTROLS",
    "OPERATIONS",
    "Change",
    "Control",
    "Operation",
    "State",
    "change_message",
    "control_message",
    "parse_message",
]

Operation = Literal["insert", "update", "delete", "upsert"]
ControlKind = Literal["snapshot-start", "snapshot-end", "reset"]
OPERATIONS: frozenset[str] = frozenset(("insert", "update", "delete", "upsert"))
CONTROLS: frozenset[str] = frozenset(("snapshot-start", "snapshot-end", "reset"))
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Change:
    """A change message: ``operation`` of the entity ``key`` of ``type``. ``value`` is
    ``None`` for a delete that carries none; ``has_old_value`` tells an absent ``old_value``
    from a ``null`` one. ``offset`` is where the stream stands after the message's batch
    (for the parts of a long catch-up response handed out before it ends: before it)."""

    type: str
    key: str
    operation: Operation
    value: Any = None
    old_value: Any = None
    has_old_value: bool = False
    txid: str | None = None
    timestamp: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    offset: str | None = None


@dataclass(frozen=True, slots=True)
class Control:
    """A control message: ``snapshot-start``, ``snapshot-end`` or ``reset``, with the offset
    it names (``headers.offset``), if any."""

    control: ControlKind
    at: str | None = None
    offset: str | None = None


def _bad(message: str, offset: str | None) -> errors.StateMessageError:
    return errors.StateMessageError(f"malformed state message: {message}", offset=offset)


def parse_message(message: Any, offset: str | None = None) -> Change | Control:
    """``message`` (one decoded JSON message of a state stream) as a :class:`Change` or a
    :class:`Control`; a :class:`StateMessageError` naming ``offset`` if it is neither."""
    if not isinstance(message, dict):
        raise _bad(f"not a JSON object but {type(message).__name__}", offset)
    headers = message.get("headers")
    if not isinstance(headers, dict):
        raise _bad("no headers object", offset)
    if "control" in headers and "operation" not in headers:
        control = headers["control"]
        if not isinstance(control, str) or control not in CONTROLS:
            raise _bad(f"unknown control {control!r}", offset)
        at = headers.get(NAMED_OFFSET, headers.get("offset"))
        if at is not None and not isinstance(at, str):
            raise _bad("a control's offset is not a string", offset)
        return Control(cast(ControlKind, control), at, offset)
    operation = headers.get("operation")
    if not isinstance(operation, str) or operation not in OPERATIONS:
        raise _bad(f"unknown operation {operation!r}", offset)
    kind, key = message.get("type"), message.get("key")
    if not isinstance(kind, str) or not kind:
        raise _bad("type is not a non-empty string", offset)
    if not isinstance(key, str) or not key:
        raise _bad("key is not a non-empty string", offset)
    value = message.get("value", _MISSING)
    if value is _MISSING:
        if operation != "delete":
            raise _bad(f"an {operation} without a value", offset)
        value = None
    txid = headers.get("txid")
    if txid is not None and (not isinstance(txid, str) or not txid):
        raise _bad("txid is not a non-empty string", offset)
    timestamp = headers.get("timestamp")
    if timestamp is not None and (
        not isinstance(timestamp, str) or _RFC3339.fullmatch(timestamp) is None
    ):
        raise _bad("timestamp is not an RFC 3339 date-time", offset)
    old_value = message.get("old_value", _MISSING)
    return Change(
        kind,
        key,
        cast(Operation, operation),
        value,
        None if old_value is _MISSING else old_value,
        old_value is not _MISSING,
        txid,
        timestamp,
        headers,
        offset,
    )


def _timestamp(value: _dt.datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("a timestamp must be timezone-aware")
    # As JavaScript's Date.toISOString() writes it: UTC, milliseconds, Z.
    utc = value.astimezone(_dt.timezone.utc)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def change_message(
    operation: Operation,
    type: str,
    key: str,
    value: Any = _MISSING,
    *,
    old_value: Any = _MISSING,
    txid: str | None = None,
    timestamp: _dt.datetime | str | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A change message as the TypeScript writer lays it out: ``type, key, value, old_value,
    headers`` with the caller's headers first and ``operation`` last; a delete carries no
    ``value``."""
    if operation not in OPERATIONS:
        raise ValueError(f"operation is one of {sorted(OPERATIONS)}, not {operation!r}")
    if not isinstance(type, str) or not type:
        raise ValueError(f"type is a non-empty string, not {type!r}")
    if not isinstance(key, str) or not key:
        raise ValueError(f"key is a non-empty string, not {key!r}")
    message: dict[str, Any] = {"type": type, "key": key}
    if operation == "delete":
        if value is not _MISSING:
            raise ValueError("a delete carries no value (pass old_value= to record it)")
    elif value is _MISSING:
        raise ValueError(f"an {operation} needs a value")
    else:
        message["value"] = value
    if old_value is not _MISSING:
        message["old_value"] = old_value
    out_headers: dict[str, Any] = dict(headers or {})
    if txid is not None:
        if not isinstance(txid, str) or not txid:
            raise ValueError(f"txid is a non-empty string, not {txid!r}")
        out_headers["txid"] = txid
    stamp = _timestamp(timestamp)
    if stamp is not None:
        out_headers["timestamp"] = stamp
    out_headers.pop("operation", None)
    out_headers["operation"] = operation
    message["headers"] = out_headers
    try:  # what readers would refuse (a bad timestamp or txid in headers=) is never written
        parse_message(message)
    except errors.StateMessageError as exc:
        raise ValueError(
            str(exc).replace("malformed state message", "not a valid change")
        ) from None
    return message


# The reference server overwrites ``headers.offset`` of every message it serves with the
# message's own offset, so the offset a control names (the source offset a compacted snapshot
# covers) also goes under this key, which it leaves alone.
NAMED_OFFSET = "source_offset"


def control_message(control: ControlKind, at: str | None = None) -> dict[str, Any]:
    if control not in CONTROLS:
        raise ValueError(f"control is one of {sorted(CONTROLS)}, not {control!r}")
    headers: dict[str, Any] = {"control": control}
    if at is not None:
        headers["offset"] = at
        headers[NAMED_OFFSET] = at
    return {"headers": headers}


class State:
    """Entities by ``type`` and ``key``, folded from a state stream's messages in order.

    ``offset`` is where the stream stands after the last batch applied; ``in_snapshot`` is
    true between a ``snapshot-start`` and its ``snapshot-end``, whose ``offset`` is kept as
    ``snapshot_covers`` (the source offset a compacted snapshot stands for); ``txids`` are
    the transaction ids seen. ``skipped`` counts malformed messages passed over when the
    state was made with ``on_malformed="skip"`` (the default raises). With a ``schema``
    (:class:`StateSchema`, or a mapping of entity types to models), each value of a type it
    names is checked and held as an instance of its model; one that does not fit is a
    :class:`StateValueError` (a malformed message: skipped and counted under "skip")."""

    __slots__ = (
        "_on_malformed",
        "in_snapshot",
        "offset",
        "schema",
        "skipped",
        "snapshot_covers",
        "txids",
        "types",
    )

    def __init__(
        self,
        *,
        on_malformed: Literal["raise", "skip"] = "raise",
        schema: StateSchema | Mapping[str, type] | None = None,
    ) -> None:
        if on_malformed not in ("raise", "skip"):
            raise ValueError(f"on_malformed is 'raise' or 'skip', not {on_malformed!r}")
        self._on_malformed = on_malformed
        self.schema = _as_schema(schema)
        self.types: dict[str, dict[str, Any]] = {}
        self.offset: str | None = None
        self.in_snapshot = False
        self.snapshot_covers: str | None = None
        self.txids: set[str] = set()
        self.skipped = 0

    def __repr__(self) -> str:
        counts = ", ".join(f"{t}: {len(keys)}" for t, keys in self.types.items())
        return f"<State at {self.offset} {{{counts}}}>"

    def get(self, type: str, key: str, default: Any = None) -> Any:
        return self.types.get(type, {}).get(key, default)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A copy of the state: ``{type: {key: value}}`` (types that hold no key left out)."""
        return {t: dict(keys) for t, keys in self.types.items() if keys}

    def apply(self, message: Any, offset: str | None = None) -> Change | Control | None:
        """Fold one decoded message; returns it parsed (``None`` when skipped as malformed)."""
        try:
            parsed = parse_message(message, offset)
            schema = self.schema
            if (
                schema is not None
                and isinstance(parsed, Change)
                and parsed.operation != "delete"
                and parsed.type in schema
            ):
                value = schema.load(parsed.type, parsed.key, parsed.value, offset)
                parsed = dataclasses.replace(parsed, value=value)
        except errors.StateMessageError:
            if self._on_malformed == "raise":
                raise
            self.skipped += 1
            return None
        self._fold(parsed)
        return parsed

    def apply_batch(self, messages: Iterable[Any], offset: str | None) -> list[Change | Control]:
        """Fold a batch of decoded messages that share ``offset``; returns the applied ones."""
        applied = []
        for message in messages:
            parsed = self.apply(message, offset)
            if parsed is not None:
                applied.append(parsed)
        if offset is not None:
            self.offset = offset
        return applied

    def fold_batch(self, messages: list[Any], offset: str | None) -> None:
        """Fold a whole batch that shares ``offset``: changes go straight into the dicts
        (the core's ``fold_changes``, with no object per message); a control, or anything it
        does not take, goes through :meth:`apply`, which checks it and names what is wrong.
        When a message raises, the messages before it stay applied and ``offset`` does not
        move: folding the batch again from its start gives the same state."""
        if self.schema is not None:  # each value checked and made an instance of its model
            self.apply_batch(messages, offset)
            return
        if type(messages) is not list:
            messages = list(messages)
        fold = _core.impl.fold_changes
        types, txids = self.types, self.txids
        start, end = 0, len(messages)
        while start < end:
            start = fold(messages, start, types, txids)
            if start < end:
                self.apply(messages[start], offset)
                start += 1
        if offset is not None:
            self.offset = offset

    def _fold(self, parsed: Change | Control) -> None:
        if isinstance(parsed, Control):
            if parsed.control == "reset":
                self.types.clear()
                self.in_snapshot = False
            elif parsed.control == "snapshot-start":
                self.in_snapshot = True
            else:
                self.in_snapshot = False
                self.snapshot_covers = parsed.at
            return
        if parsed.txid is not None:
            self.txids.add(parsed.txid)
        if parsed.operation == "delete":
            keys = self.types.get(parsed.type)
            if keys is not None:
                keys.pop(parsed.key, None)
            return
        self.types.setdefault(parsed.type, {})[parsed.key] = parsed.value

    def changes(self) -> Iterator[dict[str, Any]]:
        """The state as insert messages, type by type and key by key in insertion order."""
        schema = self.schema
        for kind, keys in self.types.items():
            for key, value in keys.items():
                if schema is not None:
                    value = schema.dump(kind, key, value)
                yield change_message("insert", kind, key, value)
