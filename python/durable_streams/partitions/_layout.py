"""A partition set without I/O: its names, its metadata message, and which partition a key
goes to.

A set named ``orders`` with 4 partitions is the streams ``orders/0`` .. ``orders/3`` under
a server's stream root, plus ``orders`` itself: a JSON stream whose first message,
``{"partitions": 4, "hash": "sha256-64", "content_type": "application/json"}``, records
the set's size, routing scheme and the partitions' content type. It is
created last and deleted first, so a set whose metadata stream exists is complete. A
consumer group ``billing`` of it is one pull-wake subscription per partition,
``billing@orders/0`` .. ``billing@orders/3``, each woken through its own wake stream
``orders/groups/billing/wake-0`` ..; the glob ``orders/*`` matches exactly the partitions.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from .. import _errors as errors
from .._options import Headers
from .._protocol import check_headers, check_url

__all__ = [
    "HASH",
    "PartitionInfo",
    "PartitionSetInfo",
    "Router",
    "SetBase",
    "check_group",
    "check_name",
    "check_partitions",
    "group_subscription",
    "meta_from",
    "meta_message",
    "partition_for",
    "partition_path",
    "wake_path",
]

# The routing scheme, recorded in the set's metadata: the first 8 bytes of SHA-256 of the
# key, as a big-endian unsigned integer, modulo the number of partitions.
HASH = "sha256-64"
# How many partitions a set may have: enough for any one server, few enough that creating,
# inspecting and consuming the set stays one round of requests each.
MAX_PARTITIONS = 1024

_SEGMENT = re.compile(r"[A-Za-z0-9_.~-]+")
_GROUP = re.compile(r"[A-Za-z0-9_.-]+")


def check_name(name: str) -> str:
    """A set's name: path segments of letters, digits and ``_.~-``, joined by ``/``. (No
    glob star, no escapes: the partitions' paths are used as subscription patterns.)"""
    if not isinstance(name, str):
        raise errors.UsageError(f"a partition set's name is a str, not {type(name).__name__}")
    segments = name.split("/")
    if not name or not all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        raise errors.UsageError(
            f"a partition set's name is path segments of letters, digits and '_.~-' "
            f"joined by '/', not {name!r}"
        )
    return name


def check_group(group: str) -> str:
    if not isinstance(group, str) or not _GROUP.fullmatch(group) or group in (".", ".."):
        raise errors.UsageError(
            f"a consumer group's name is letters, digits and '_.-', not {group!r}"
        )
    return group


def check_partitions(partitions: int) -> int:
    if (
        isinstance(partitions, bool)
        or not isinstance(partitions, int)
        or not 1 <= partitions <= MAX_PARTITIONS
    ):
        raise errors.UsageError(
            f"a partition set has 1 to {MAX_PARTITIONS} partitions, not {partitions!r}"
        )
    return partitions


def partition_path(name: str, partition: int) -> str:
    return f"{name}/{partition}"


def group_subscription(name: str, group: str, partition: int) -> str:
    """The id of group ``group``'s subscription to one partition."""
    return f"{group}@{name}/{partition}"


def wake_path(name: str, group: str, partition: int) -> str:
    return f"{name}/groups/{group}/wake-{partition}"


def meta_message(partitions: int, content_type: str) -> dict[str, Any]:
    return {"partitions": partitions, "hash": HASH, "content_type": content_type}


def meta_from(messages: list[Any], *, url: str) -> tuple[int, str | None]:
    """The size and content type a set's metadata stream records; :class:`UsageError` if
    it records no size (the stream is not a partition set's) or a routing scheme this
    version does not know."""
    first = messages[0] if messages else None
    if (
        not isinstance(first, dict)
        or isinstance(first.get("partitions"), bool)
        or not isinstance(first.get("partitions"), int)
    ):
        raise errors.UsageError("this stream is not a partition set's metadata stream", url=url)
    if first.get("hash") != HASH:
        raise errors.UsageError(
            f"the partition set routes keys by {first.get('hash')!r}; this version knows "
            f"{HASH!r} only",
            url=url,
        )
    content_type = first.get("content_type")
    return check_partitions(first["partitions"]), (
        content_type if isinstance(content_type, str) else None
    )


def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition of ``key`` in a set of ``partitions``: the first 8 bytes of the SHA-256
    digest of the key (a ``str`` as UTF-8), read as a big-endian unsigned integer, modulo
    ``partitions``. Stable across processes, machines, versions and languages."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    elif not isinstance(key, bytes):
        raise TypeError(f"a partition key is a str or bytes, not {type(key).__name__}")
    digest = hashlib.sha256(key).digest()
    return int.from_bytes(digest[:8], "big") % check_partitions(partitions)


class Router:
    """Where each message of a producer goes: by its key when it has one, else to the next
    partition in turn (round robin), which spreads keyless messages evenly."""

    def __init__(self, partitions: int) -> None:
        self.partitions = check_partitions(partitions)
        self._next = 0

    def route(self, key: str | bytes | None) -> int:
        if key is not None:
            return partition_for(key, self.partitions)
        partition = self._next
        self._next = (partition + 1) % self.partitions
        return partition


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One partition as a ``HEAD`` saw it: its index, its path under the stream root, its
    URL, where it ends (``tail_offset``) and whether it is closed."""

    partition: int
    path: str
    url: str
    tail_offset: str | None
    closed: bool


@dataclass(frozen=True, slots=True)
class PartitionSetInfo:
    """A partition set: its ``name`` and every partition's :class:`PartitionInfo`, in order."""

    name: str
    partitions: tuple[PartitionInfo, ...]


class SetBase:
    """What every handle of a partition set knows: where it is and how many partitions it
    has, and the settings its requests go out with. No I/O."""

    def __init__(
        self,
        root: str,
        name: str,
        partitions: int,
        *,
        content_type: str | None,
        headers: Headers | None,
        params: Headers | None,
        timeout: float | httpx.Timeout | None,
        verify: bool | str | ssl.SSLContext,
    ) -> None:
        self.root = check_url(root, "stream root").rstrip("/")
        self.name = check_name(name)
        self.partitions = check_partitions(partitions)
        self.content_type = content_type
        check_headers(headers)
        self._headers = headers
        self._params = params
        self._timeout = timeout
        self._verify = verify

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {errors.redact_url(self.root)} {self.name!r} "
            f"partitions={self.partitions}>"
        )

    @property
    def meta_url(self) -> str:
        return f"{self.root}/{self.name}"

    def known_content_type(self) -> str:
        """The partitions' content type, which a producer needs before it writes."""
        if self.content_type is None:
            raise errors.UsageError(
                "the partition set's content type is unknown: open it with create(), or give "
                "content_type to its constructor"
            )
        return self.content_type

    def path(self, partition: int) -> str:
        """The path of partition ``partition`` under the stream root."""
        if not 0 <= partition < self.partitions:
            raise IndexError(f"partition {partition} of a set of {self.partitions}")
        return partition_path(self.name, partition)

    def url(self, partition: int) -> str:
        return f"{self.root}/{self.path(partition)}"

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(partition_path(self.name, p) for p in range(self.partitions))

    def partition_of(self, path: str) -> int:
        """The partition whose path is ``path`` (a :class:`SubscriptionMessage`'s ``stream``)."""
        prefix, _, index = path.rpartition("/")
        if prefix != self.name or not index.isdigit() or int(index) >= self.partitions:
            raise ValueError(f"{path!r} is not a partition of {self.name!r}")
        return int(index)
