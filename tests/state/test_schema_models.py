"""Typed state values with pydantic models and msgspec Structs: each library checks its
own models (neither is a dependency of the package; the test extra installs both)."""

from __future__ import annotations

import uuid

import msgspec
import pydantic
import pytest

import durable_streams as ds
from durable_streams.state import StateSchema, StateWriter, materialize

JSON = "application/json"


class Order(pydantic.BaseModel):
    id: int
    items: list[str]
    note: str | None = None


class Point(msgspec.Struct):
    x: int
    y: int


SCHEMA = StateSchema({"order": Order, "point": Point})


@pytest.fixture
def state_url(server_url: str) -> str:
    return f"{server_url}/v1/stream/models-{uuid.uuid4().hex}"


def test_pydantic_models_check_values_with_pydantic() -> None:
    assert SCHEMA.load("order", "1", {"id": 1, "items": ["a"]}) == Order(id=1, items=["a"])
    assert SCHEMA.dump("order", "1", Order(id=1, items=[])) == {"id": 1, "items": [], "note": None}
    with pytest.raises(ds.StateValueError, match="order '1' does not fit Order") as e:
        SCHEMA.load("order", "1", {"id": "x", "items": []}, offset="7")
    assert isinstance(e.value.__cause__, pydantic.ValidationError) and e.value.offset == "7"
    with pytest.raises(ds.StateValueError):  # built without validation: checked on write
        SCHEMA.dump("order", "1", Order.model_construct(id="x", items=[]))


def test_msgspec_structs_check_values_with_msgspec() -> None:
    assert SCHEMA.load("point", "p", {"x": 1, "y": 2}) == Point(1, 2)
    assert SCHEMA.dump("point", "p", Point(1, 2)) == {"x": 1, "y": 2}
    with pytest.raises(ds.StateValueError, match="point 'p' does not fit Point") as e:
        SCHEMA.dump("point", "p", Point(1, "2"))  # type: ignore[arg-type]
    assert isinstance(e.value.__cause__, msgspec.ValidationError)


def test_models_round_trip_through_the_server(state_url: str) -> None:
    with ds.DurableStream.create(state_url, content_type=JSON) as handle:
        writer = StateWriter(handle, schema=SCHEMA)
        writer.insert("order", "1", Order(id=1, items=["tea"]))
        writer.insert("point", "p", {"x": 3, "y": 4})
        with pytest.raises(ds.StateValueError):
            writer.insert("point", "q", {"x": 3})
    assert materialize(state_url, schema=SCHEMA) == {
        "order": {"1": Order(id=1, items=["tea"])},
        "point": {"p": Point(3, 4)},
    }
