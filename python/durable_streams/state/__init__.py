"""Key-value state over streams: the State Protocol (``packages/state/STATE-PROTOCOL.md``
upstream), its materialized views and compaction by key.

A state stream is a JSON stream of change messages (``insert``, ``update``, ``upsert``,
``delete`` of an entity ``key`` of a ``type``) and control messages (``snapshot-start``,
``snapshot-end``, ``reset``). :func:`materialize` folds one into ``{type: {key: value}}``;
:class:`StateWriter` writes changes through a stream handle or an idempotent producer;
:func:`compact` writes the latest value of every key into a new stream as a snapshot;
:class:`StateView` keeps the state up to date while tailing the stream. A
:class:`StateSchema` declares a model (dataclass, pydantic model, msgspec Struct) per entity
type: writers and readers given it check values and hold instances of the models. Everything has an
async twin (``amaterialize``, ``aload_state``, ``acompact``, :class:`AsyncStateWriter`,
:class:`AsyncStateView`).
"""

from __future__ import annotations

from .. import _name_public_module
from .._errors import StateMessageError, StateValueError
from ._protocol import (
    Change,
    Control,
    Operation,
    State,
    change_message,
    control_message,
    parse_message,
)
from ._schema import StateSchema
from ._streams_async import AsyncStateWriter, acompact, aload_compacted, aload_state, amaterialize
from ._streams_sync import StateWriter, compact, load_compacted, load_state, materialize
from ._view_async import AsyncStateView
from ._view_threaded import StateView

__all__ = [
    "AsyncStateView",
    "AsyncStateWriter",
    "Change",
    "Control",
    "Operation",
    "State",
    "StateMessageError",
    "StateSchema",
    "StateValueError",
    "StateView",
    "StateWriter",
    "acompact",
    "aload_compacted",
    "aload_state",
    "amaterialize",
    "change_message",
    "compact",
    "control_message",
    "load_compacted",
    "load_state",
    "materialize",
    "parse_message",
]

_name_public_module(globals(), __all__, __name__)
