"""Key-value state over streams: the State Protocol (``packages/state/STATE-PROTOCOL.md``
upstream), its materialized views and compaction by key.

A state stream is a JSON stream of change messages (``insert``, ``update``, ``upsert``,
``delete`` of an entity ``key`` of a ``type``) and control messages (``snapshot-start``,
``snapshot-end``, ``reset``). :func:`materialize` folds one into ``{type: {key: value}}``;
:class:`StateWriter` writes changes through a stream handle or an idempotent producer;
:func:`compact` writes the latest value of every key into a new stream as a snapshot.
Every function has an async twin (``amaterialize``, ``aload_state``, ``acompact``,
:class:`AsyncStateWriter`).
"""

from __future__ import annotations

from ._errors import StateMessageError
from ._state_async import AsyncStateWriter, acompact, aload_state, amaterialize
from ._state_sync import StateWriter, compact, load_state, materialize
from ._statecore import (
    Change,
    Control,
    Operation,
    State,
    change_message,
    control_message,
    parse_message,
)

__all__ = [
    "AsyncStateWriter",
    "Change",
    "Control",
    "Operation",
    "State",
    "StateMessageError",
    "StateWriter",
    "acompact",
    "aload_state",
    "amaterialize",
    "change_message",
    "compact",
    "control_message",
    "load_state",
    "materialize",
    "parse_message",
]
