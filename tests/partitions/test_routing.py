"""Routing by key: the documented formula (the first 8 bytes of SHA-256 of the key, big
endian, modulo N), stable across processes, and keyless messages spread evenly. No server."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

import durable_streams as ds
from durable_streams.partitions import HASH, partition_for
from durable_streams.partitions._layout import (
    Router,
    check_group,
    check_name,
    group_subscription,
    meta_from,
    meta_message,
    wake_path,
)

# Worked out with `printf %s KEY | sha256sum`: the first 16 hex digits, modulo N.
EXPECTED = [
    ("order-1", "0bafe22156d2698c", {4: 0, 16: 12, 7: 0}),
    ("customer-42", "a045eb33f8797f35", {4: 1, 16: 5, 7: 5}),
    ("", "e3b0c44298fc1c14", {4: 0, 16: 4, 7: 1}),
    ("ключ", "1de36a32af798da0", {4: 0, 16: 0, 7: 6}),
    ("a", "ca978112ca1bbdca", {4: 2, 16: 10, 7: 4}),
]


@pytest.mark.parametrize(("key", "prefix", "partitions"), EXPECTED)
def test_a_key_goes_where_the_documented_formula_says(
    key: str, prefix: str, partitions: dict[int, int]
) -> None:
    for n, expected in partitions.items():
        assert int(prefix, 16) % n == expected  # the table is the formula
        assert partition_for(key, n) == expected
        assert partition_for(key.encode("utf-8"), n) == expected  # str is its UTF-8 bytes
    assert HASH == "sha256-64"


def test_bytes_keys_are_hashed_as_they_are() -> None:
    # printf '\x00\xff' | sha256sum: 06eb7d6a69ee19e5...
    assert [partition_for(b"\x00\xff", n) for n in (4, 16, 7)] == [1, 5, 2]


def test_the_partition_of_a_key_is_the_same_in_another_process() -> None:
    """Not Python's hash(): that one changes from process to process (PYTHONHASHSEED)."""
    keys = [f"user-{i}" for i in range(200)]
    here = [partition_for(k, 12) for k in keys]
    code = (
        "import sys; from durable_streams.partitions import partition_for; "
        "print(*(partition_for(f'user-{i}', 12) for i in range(200)))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": ":".join(sys.path)},
        ).stdout.split()
        assert [int(p) for p in out] == here


def test_keys_spread_over_the_partitions() -> None:
    counts = Counter(partition_for(f"customer-{i}", 8) for i in range(80_000))
    assert sorted(counts) == list(range(8))
    # 10,000 expected per partition; a fair hash stays within a few standard deviations
    # (about 94 here).
    assert all(9_600 < c < 10_400 for c in counts.values()), counts


def test_messages_without_a_key_go_round_robin() -> None:
    router = Router(3)
    assert [router.route(None) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    # A keyed message does not move the turn of the keyless ones.
    assert router.route("order-1") == partition_for("order-1", 3)
    assert router.route(None) == 1


@pytest.mark.parametrize("key", [1, None, 3.5, ["a"]])
def test_a_key_is_str_or_bytes(key: object) -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        partition_for(key, 4)  # type: ignore[arg-type]


@pytest.mark.parametrize("partitions", [0, -1, 1025, True, 2.0, "4"])
def test_the_number_of_partitions_is_checked(partitions: object) -> None:
    with pytest.raises(ds.UsageError, match="1 to 1024 partitions"):
        partition_for("k", partitions)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "/orders", "orders/", "a//b", "a/*", "a/../b", "a b", 7])
def test_a_set_name_is_plain_path_segments(name: object) -> None:
    with pytest.raises(ds.UsageError):
        check_name(name)  # type: ignore[arg-type]


@pytest.mark.parametrize("group", ["", "a/b", "a*", "..", "a b"])
def test_a_group_name_is_one_plain_word(group: str) -> None:
    with pytest.raises(ds.UsageError):
        check_group(group)


def test_names_of_a_group_and_its_wake_streams() -> None:
    assert check_name("shop/orders") == "shop/orders"
    assert group_subscription("shop/orders", "billing", 3) == "billing@shop/orders/3"
    assert wake_path("shop/orders", "billing", 3) == "shop/orders/groups/billing/wake-3"


def test_the_metadata_message_round_trips_and_is_checked() -> None:
    url = "http://127.0.0.1:1/v1/stream/orders"
    assert meta_from([meta_message(4, "application/json")], url=url) == (4, "application/json")
    with pytest.raises(ds.UsageError, match="not a partition set"):
        meta_from([], url=url)
    with pytest.raises(ds.UsageError, match="not a partition set"):
        meta_from([{"partitions": True}], url=url)
    with pytest.raises(ds.UsageError, match="knows 'sha256-64' only"):
        meta_from([{"partitions": 4, "hash": "murmur2"}], url=url)
