"""Typed state values: a StateSchema of dataclasses (no dependency) checks each value when it
is written and when it is read, holds instances of the models, and names the type, the key
and the offset of a value that does not fit. Against the reference server, sync and async."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, Literal

import anyio
import pytest

import durable_streams as ds
from durable_streams.state import (
    AsyncStateView,
    AsyncStateWriter,
    StateSchema,
    StateView,
    StateWriter,
    amaterialize,
    load_state,
    materialize,
)

JSON = "application/json"


@dataclasses.dataclass
class Address:
    city: str
    zip: str | None = None


@dataclasses.dataclass
class User:
    name: str
    age: int
    tags: list[str] = dataclasses.field(default_factory=list)
    address: Address | None = None
    role: Literal["admin", "member"] = "member"
    score: float = 0.0


@dataclasses.dataclass(frozen=True)
class Tree:
    label: str
    children: tuple[Tree, ...] = ()
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


SCHEMA = StateSchema({"user": User, "tree": Tree})


@pytest.fixture
def state_url(server_url: str) -> str:
    return f"{server_url}/v1/stream/typed-{uuid.uuid4().hex}"


def test_dataclass_values_are_checked_and_made_instances() -> None:
    ada = SCHEMA.load("user", "1", {"name": "Ada", "age": 36, "address": {"city": "London"}})
    assert ada == User("Ada", 36, address=Address("London"))
    assert SCHEMA.load("user", "2", {"name": "B", "age": 1, "score": 3}).score == 3.0
    tree = SCHEMA.load("tree", "t", {"label": "a", "children": [{"label": "b"}]})
    assert tree == Tree("a", (Tree("b"),))
    assert SCHEMA.dump("user", "1", ada) == {
        "name": "Ada",
        "age": 36,
        "tags": [],
        "address": {"city": "London", "zip": None},
        "role": "member",
        "score": 0.0,
    }
    assert SCHEMA.load("other", "k", {"anything": 1}) == {"anything": 1}  # not in the schema
    assert SCHEMA.dump("other", "k", [1]) == [1]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({"name": "Ada"}, "missing field(s) ['age']"),
        ({"name": "Ada", "age": 1, "email": "x"}, "unknown field(s) ['email']"),
        ({"name": "Ada", "age": "36"}, "age: expected an integer, got a string"),
        ({"name": "Ada", "age": True}, "age: expected an integer, got a boolean"),
        ({"name": "Ada", "age": 1, "tags": ["a", 2]}, "tags.[1]: expected a string"),
        ({"name": "A", "age": 1, "address": {"city": 5}}, "address.city: expected a string"),
        ({"name": "A", "age": 1, "role": "root"}, "role: expected one of ['admin', 'member']"),
        ([1, 2], "expected an object, got an array"),
    ],
)
def test_a_value_that_does_not_fit_names_the_type_key_and_field(value: Any, why: str) -> None:
    with pytest.raises(ds.StateValueError) as caught:
        SCHEMA.load("user", "u1", value, offset="0000_0042")
    error = caught.value
    assert error.type == "user" and error.key == "u1" and error.offset == "0000_0042"
    assert why in str(error) and "User" in str(error) and "0000_0042" in str(error)
    assert isinstance(error, ds.StateMessageError)


def test_instances_are_checked_when_written_too() -> None:
    with pytest.raises(ds.StateValueError, match="age: expected an integer") as caught:
        SCHEMA.dump("user", "1", User("Ada", "36"))  # type: ignore[arg-type]
    assert caught.value.offset is None


def test_what_a_schema_cannot_check_is_refused_when_it_is_made() -> None:
    class Plain:
        pass

    @dataclasses.dataclass
    class Odd:
        when: complex

    with pytest.raises(TypeError, match="not a dataclass, a pydantic model or a msgspec"):
        StateSchema({"p": Plain})
    with pytest.raises(TypeError, match="pydantic model or a msgspec Struct"):
        StateSchema({"o": Odd})
    with pytest.raises(ValueError):
        StateSchema({"": User})


def test_typed_writes_and_reads_against_the_server(state_url: str) -> None:
    with ds.DurableStream.create(state_url, content_type=JSON) as handle:
        writer = StateWriter(handle, schema=SCHEMA)
        writer.insert("user", "1", User("Ada", 36, ["math"]))
        writer.insert("user", "2", {"name": "Bob", "age": 40})  # JSON that fits is taken
        writer.update("user", "2", User("Bob", 41), old_value=User("Bob", 40))
        writer.upsert("note", "n", {"free": "form"})  # not in the schema: plain JSON
        before = handle.head().offset
        with pytest.raises(ds.StateValueError) as caught:
            writer.insert("user", "3", {"name": "Eve", "age": "old"})
        assert caught.value.key == "3" and caught.value.offset is None
        with pytest.raises(ds.StateValueError):
            writer.update("user", "1", User("Ada", 37), old_value={"name": 1, "age": 1})
        assert handle.head().offset == before  # nothing was sent
        stored = list(ds.stream(state_url).iter_json())
        assert stored[0]["value"]["name"] == "Ada" and isinstance(stored[0]["value"], dict)
    typed = materialize(state_url, schema=SCHEMA)
    assert typed["user"] == {"1": User("Ada", 36, ["math"]), "2": User("Bob", 41)}
    assert typed["note"] == {"n": {"free": "form"}}
    assert materialize(state_url)["user"]["2"]["age"] == 41  # untyped readers see JSON


def test_a_bad_value_in_the_stream_is_named_by_its_offset(state_url: str) -> None:
    with ds.DurableStream.create(state_url, content_type=JSON) as handle:
        StateWriter(handle, schema=SCHEMA).insert("user", "1", User("Ada", 36))
        # Written without the schema: the stream holds what no typed reader accepts.
        bad = StateWriter(handle).insert("user", "2", {"name": "Bob", "age": "forty"}).offset
        after = StateWriter(handle).insert("user", "3", {"name": "Cy", "age": 3}).offset
    with pytest.raises(ds.StateValueError) as caught:
        load_state(state_url, schema=SCHEMA)
    # The offset is where the stream stands after the batch the value came in.
    assert bad <= (caught.value.offset or "") <= after and caught.value.key == "2"
    assert "user '2' does not fit User: age: expected an integer" in str(caught.value)
    assert f"offset {caught.value.offset}" in str(caught.value)
    state = load_state(state_url, schema=SCHEMA, on_malformed="skip")
    assert state.skipped == 1 and state.offset == after
    assert set(state.types["user"]) == {"1", "3"}


@pytest.mark.anyio
async def test_async_writers_and_views_hold_instances(state_url: str, anyio_backend: str) -> None:
    async with await ds.AsyncDurableStream.create(state_url, content_type=JSON) as handle:
        writer = AsyncStateWriter(handle, schema={"user": User})  # a mapping is a schema too
        await writer.insert("user", "1", User("Ada", 36))
        with pytest.raises(ds.StateValueError):
            await writer.upsert("user", "2", {"name": "Bob"})
        with anyio.fail_after(30):
            async with AsyncStateView(state_url, schema=SCHEMA) as view:
                await view.wait_current()
                assert view.get("user", "1") == User("Ada", 36)
                last = await writer.update("user", "1", User("Ada", 37))
                await view.wait_for(last.offset)
                assert view.get("user", "1") == User("Ada", 37)
                # A bad value stops the view, naming it, as a malformed message does.
                await AsyncStateWriter(handle).insert("user", "9", {"name": 9, "age": 9})
                with pytest.raises(ds.StateValueError, match="name: expected a string"):
                    await view.wait_for("9" * 33)
        assert (await amaterialize(state_url, schema=SCHEMA, on_malformed="skip"))["user"] == {
            "1": User("Ada", 37)
        }


def test_a_sync_view_holds_instances(state_url: str) -> None:
    with ds.DurableStream.create(state_url, content_type=JSON) as handle:
        writer = StateWriter(handle, schema=SCHEMA)
        tree = Tree("root", (Tree("leaf", meta={"k": [1]}),))
        result = writer.insert("tree", "t", tree)
        with StateView(state_url, schema=SCHEMA) as view:
            view.wait_for(result.offset, timeout=30)
            assert view.get("tree", "t") == tree
            assert view.items("tree") == {"t": tree}


@pytest.mark.anyio
async def test_an_async_load_stops_at_a_bad_value(state_url: str, anyio_backend: str) -> None:
    async with await ds.AsyncDurableStream.create(state_url, content_type=JSON) as handle:
        await AsyncStateWriter(handle).insert("user", "1", {"name": "Ada", "age": 1.5})
    with pytest.raises(ds.StateValueError, match="age: expected an integer, got a number"):
        await amaterialize(state_url, schema=SCHEMA)
