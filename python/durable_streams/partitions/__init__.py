"""Partitioned streams: a named set of N streams written through one producer that routes
each message by key, and consumed by consumer groups whose workers share the partitions.

One stream is one ordered log; a set of partitions takes what one stream cannot. A set
named ``orders`` is the streams ``orders/0`` .. ``orders/N-1`` under a server's stream root,
and the JSON stream ``orders`` that records N (see ``docs/partitions.md``).

- :class:`PartitionSet` / :class:`AsyncPartitionSet`: ``create``, ``connect``, ``info`` (every
  partition's tail), ``delete``; ``create_group`` / ``delete_group``.
- :class:`SyncPartitionedProducer` / :class:`PartitionedProducer`: exactly-once appends,
  routed by :func:`partition_for` (SHA-256 of the key) or round robin without a key, over an
  idempotent producer per partition.
- :class:`ConsumerGroup` / :class:`AsyncConsumerGroup`: one worker of a group; a pull-wake
  subscription per partition, so the group's workers share the partitions and a crashed
  worker's partitions are taken over when its lease runs out.
"""

from __future__ import annotations

from .. import _name_public_module
from ._group_async import AsyncConsumerGroup
from ._group_threaded import ConsumerGroup
from ._layout import HASH, PartitionInfo, PartitionSetInfo, partition_for
from ._producer_async import PartitionedProducer
from ._producer_threaded import SyncPartitionedProducer
from ._set_async import AsyncPartitionSet
from ._set_sync import PartitionSet

__all__ = [
    "HASH",
    "AsyncConsumerGroup",
    "AsyncPartitionSet",
    "ConsumerGroup",
    "PartitionInfo",
    "PartitionSet",
    "PartitionSetInfo",
    "PartitionedProducer",
    "SyncPartitionedProducer",
    "partition_for",
]

_name_public_module(globals(), __all__, __name__)
