"""Typed state values: :class:`StateSchema` declares the model of each entity ``type`` of a
state stream, checks values against it when they are written and read, and turns them into
instances of the model (and back into JSON).

A model is a dataclass (checked here, no dependency), a pydantic model or a msgspec Struct
(each checked by its own library, used only when the model is one of its classes: neither is
a dependency). Types the schema does not name stay plain JSON values.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections import abc
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union

from .. import _errors as errors

__all__ = ["StateSchema"]

# Turns a decoded JSON value into what the model holds, or raises _Mismatch saying where.
_Check = Callable[[Any], Any]


class _Mismatch(Exception):
    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}" if where else why)
        self.where = where
        self.why = why

    def inside(self, part: str) -> _Mismatch:
        return _Mismatch(f"{part}.{self.where}" if self.where else part, self.why)


class _Model:
    """One model: ``load`` validates a JSON value into an instance, ``dump`` turns a
    value (an instance, or JSON to validate) into the JSON value to write."""

    __slots__ = ("dump", "load", "name")

    def __init__(self, name: str, load: Callable[[Any], Any], dump: Callable[[Any], Any]):
        self.name = name
        self.load = load
        self.dump = dump


class StateSchema:
    """The model of each entity type: ``StateSchema({"user": User, "order": Order})``.

    A model is a dataclass, a pydantic model or a msgspec Struct. Writers given the schema
    (``StateWriter(handle, schema=...)``) check each value against its type's model before
    anything is sent, and write instances as JSON; readers (``materialize``, ``load_state``,
    views) check each value as they apply it and hold instances of the model. A value that
    does not fit raises :class:`StateValueError` naming the type, the key and, when read,
    the offset. Entity types the schema does not name are plain JSON values."""

    __slots__ = ("_models",)

    def __init__(self, models: Mapping[str, type]) -> None:
        if not isinstance(models, Mapping):
            raise TypeError(f"a schema maps entity types to models, not {models!r}")
        self._models: dict[str, _Model] = {}
        for name, model in models.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"an entity type is a non-empty string, not {name!r}")
            self._models[name] = _model(model)

    def __repr__(self) -> str:
        inner = ", ".join(f"{t!r}: {m.name}" for t, m in self._models.items())
        return f"StateSchema({{{inner}}})"

    def __contains__(self, type: object) -> bool:
        return type in self._models

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self._models)

    def load(self, type: str, key: str, value: Any, offset: str | None = None) -> Any:
        """``value`` (JSON) as an instance of ``type``'s model; unchanged for other types."""
        model = self._models.get(type)
        if model is None:
            return value
        try:
            return model.load(value)
        except Exception as exc:
            raise _value_error(type, key, model, exc, offset) from _cause(exc)

    def dump(self, type: str, key: str, value: Any) -> Any:
        """``value`` (an instance of ``type``'s model, or JSON that fits it) as the JSON value
        to write; unchanged for other types."""
        model = self._models.get(type)
        if model is None:
            return value
        try:
            return model.dump(value)
        except Exception as exc:
            raise _value_error(type, key, model, exc, None) from _cause(exc)


def _value_error(
    type: str, key: str, model: _Model, exc: Exception, offset: str | None
) -> errors.StateValueError:
    why = str(exc).strip().replace("\n", "; ")
    return errors.StateValueError(
        f"the value of {type} {key!r} does not fit {model.name}: {why}",
        type=type,
        key=key,
        offset=offset,
    )


def _cause(exc: Exception) -> Exception | None:
    return None if isinstance(exc, _Mismatch) else exc


def _as_schema(schema: StateSchema | Mapping[str, type] | None) -> StateSchema | None:
    if schema is None or isinstance(schema, StateSchema):
        return schema
    return StateSchema(schema)


def _model(model: Any) -> _Model:
    if not isinstance(model, type):
        raise TypeError(
            f"a model is a dataclass, a pydantic model or a msgspec Struct class, not {model!r}"
        )
    name = model.__qualname__
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and issubclass(model, pydantic.BaseModel):
        return _pydantic(name, model)
    msgspec = sys.modules.get("msgspec")
    if msgspec is not None and issubclass(model, msgspec.Struct):
        return _msgspec(name, model, msgspec)
    if dataclasses.is_dataclass(model):
        return _dataclass(name, model)
    raise TypeError(
        f"{name} is not a dataclass, a pydantic model or a msgspec Struct: a state schema "
        "cannot check its values"
    )


def _pydantic(name: str, model: Any) -> _Model:
    def dump(value: Any) -> Any:
        instance = value if isinstance(value, model) else model.model_validate(value)
        # An instance made with model_construct() or changed after validation: check it.
        return model.model_validate(instance.model_dump()).model_dump(mode="json")

    return _Model(name, model.model_validate, dump)


def _msgspec(name: str, model: Any, msgspec: Any) -> _Model:
    def load(value: Any) -> Any:
        return msgspec.convert(value, model)

    def dump(value: Any) -> Any:
        # Struct fields are not checked on construction: convert checks them.
        plain = msgspec.to_builtins(value) if isinstance(value, model) else value
        return msgspec.to_builtins(load(plain))

    return _Model(name, load, dump)


def _dataclass(name: str, model: Any) -> _Model:
    load = _checker(model, {})

    def dump(value: Any) -> Any:
        plain = _plain(value)
        load(plain)  # a dataclass does not check its fields: this does
        return plain

    return _Model(name, load, dump)


def _plain(value: Any) -> Any:
    """An instance as JSON values: dataclasses as objects, tuples as arrays."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_NONE = type(None)
_JSON_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _checker(hint: Any, seen: dict[Any, _Check]) -> _Check:
    """A check of JSON values against the type ``hint``, made once per model."""
    if hint is Any or hint is object:
        return lambda value: value
    if hint is None or hint is _NONE:

        def none(value: Any) -> Any:
            if value is not None:
                raise _Mismatch("", f"expected null, got {_kind(value)}")
            return None

        return none
    if hint in (str, bool):

        def exact(value: Any) -> Any:
            if type(value) is not hint:
                raise _Mismatch("", f"expected {_JSON_NAMES[hint]}, got {_kind(value)}")
            return value

        return exact
    if hint is int:

        def integer(value: Any) -> Any:
            if type(value) is not int:
                raise _Mismatch("", f"expected an integer, got {_kind(value)}")
            return value

        return integer
    if hint is float:

        def number(value: Any) -> Any:
            if type(value) not in (int, float):
                raise _Mismatch("", f"expected a number, got {_kind(value)}")
            return float(value)

        return number
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_checker(hint, seen)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        choices = args

        def literal(value: Any) -> Any:
            if not any(type(value) is type(c) and value == c for c in choices):
                raise _Mismatch("", f"expected one of {list(choices)!r}, got {value!r}")
            return value

        return literal
    if origin in (Union, types.UnionType):
        nullable = _NONE in args
        options = [_checker(a, seen) for a in args if a is not _NONE]

        def union(value: Any) -> Any:
            if value is None and nullable:
                return None
            failures = []
            for option in options:
                try:
                    return option(value)
                except _Mismatch as exc:
                    failures.append(exc)
            if len(failures) == 1:  # X | None: say what is wrong inside X
                raise failures[0]
            raise _Mismatch("", " or ".join(dict.fromkeys(str(f) for f in failures)))

        return union
    if origin in (list, tuple, abc.Sequence):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis) and args:
            raise TypeError(f"{hint} is not supported in a state dataclass: use tuple[X, ...]")
        item = _checker(args[0] if args else Any, seen)
        make = tuple if origin is tuple else list

        def sequence(value: Any) -> Any:
            if not isinstance(value, list):
                raise _Mismatch("", f"expected an array, got {_kind(value)}")
            out = []
            for i, v in enumerate(value):
                try:
                    out.append(item(v))
                except _Mismatch as exc:
                    raise exc.inside(f"[{i}]") from None
            return make(out)

        return sequence
    if origin in (dict, abc.Mapping):
        if args and args[0] is not str:
            raise TypeError(f"{hint} is not supported in a state dataclass: JSON keys are str")
        item = _checker(args[1] if args else Any, seen)

        def mapping(value: Any) -> Any:
            if not isinstance(value, dict):
                raise _Mismatch("", f"expected an object, got {_kind(value)}")
            out = {}
            for k, v in value.items():
                try:
                    out[k] = item(v)
                except _Mismatch as exc:
                    raise exc.inside(str(k)) from None
            return out

        return mapping
    if hint in (list, dict):
        return _checker(hint[Any], seen)
    raise TypeError(
        f"{hint!r} is not a type a state dataclass can hold (JSON types, list, tuple[X, ...], "
        "dict[str, X], unions, Literal, dataclasses); use a pydantic model or a msgspec Struct"
    )


def _dataclass_checker(model: Any, seen: dict[Any, _Check]) -> _Check:
    if model in seen:  # a recursive model: check through the one being made
        return lambda value: seen[model](value)
    seen[model] = lambda value: check(value)
    hints = typing.get_type_hints(model)
    fields = [f for f in dataclasses.fields(model) if f.init]
    checks = {f.name: _checker(hints.get(f.name, Any), seen) for f in fields}
    required = frozenset(
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )

    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Mismatch("", f"expected an object, got {_kind(value)}")
        unknown = value.keys() - checks.keys()
        if unknown:
            raise _Mismatch("", f"unknown field(s) {sorted(unknown)}")
        missing = required - value.keys()
        if missing:
            raise _Mismatch("", f"missing field(s) {sorted(missing)}")
        out = {}
        for name, v in value.items():
            try:
                out[name] = checks[name](v)
            except _Mismatch as exc:
                raise exc.inside(name) from None
        return model(**out)

    seen[model] = check
    return check
