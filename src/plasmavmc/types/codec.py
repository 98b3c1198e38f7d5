"""Generic conversion between the frozen dataclasses of `plasmavmc.types` and plain JSON data.

One walker over the type hints serves every record, so adding a field never means touching a
serialiser. Used by the store (records are JSON) and by the CLI's `-o json`. The walk over a type
is done once: `_decoder` compiles a type into a function (cached), and `_encoder` does the same per
runtime class, so a record costs only its own fields.

The store's bytes (`dumps`, `loads`, `peek`) go through orjson: it writes a dataclass tree (enums as
their values, tuples as arrays) in C, the same JSON `to_data` describes, with the fields in their
declared order (a record's bytes are stable; nothing compares them with another encoder's), about 15x
faster than `json.dumps(to_data(...))` — a VM record is encoded on every change of it, an event on
every change of a VM.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from enum import Enum
from functools import cache
from typing import Any, TypeVar

import orjson

T = TypeVar("T")
_Convert = Callable[[Any], Any]
_PLAIN = frozenset({str, int, float, bool, type(None)})  # JSON already (exact classes: not enums)


def _same(data: Any) -> Any:
    return data


def to_data(obj: Any) -> Any:
    """A dataclass tree as JSON-ready dicts, lists, strings and numbers."""
    cls: Any = type(obj)
    return obj if cls in _PLAIN else _encoder(cls)(obj)


@cache
def _encoder(cls: Any) -> _Convert:
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))
        return lambda obj: {name: to_data(getattr(obj, name)) for name in names}
    if issubclass(cls, Enum):
        return lambda obj: obj.value
    if issubclass(cls, (list, tuple)):
        return lambda obj: [to_data(x) for x in obj]
    if issubclass(cls, dict):
        return lambda obj: {str(k): to_data(v) for k, v in obj.items()}
    return _same


def from_data(tp: Any, data: Any) -> Any:
    """Rebuild a value of type `tp` from `to_data` output; unknown keys are ignored (forward compatible)."""
    return _decoder(tp)(data)


@cache
def _decoder(tp: Any) -> _Convert:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = _decoder(next(a for a in args if a is not type(None)))
        return lambda data: None if data is None else inner(data)
    if origin in (tuple, list):
        item = _decoder(args[0])
        if item is _same:
            return tuple if origin is tuple else list
        return lambda data: origin(item(x) for x in data)
    if origin is dict:
        value = _decoder(args[1])
        return dict if value is _same else lambda data: {k: value(v) for k, v in data.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp
    if tp is float:
        return lambda data: float(data) if isinstance(data, int) else data
    return _same


def _dataclass_decoder(cls: type) -> _Convert:
    plan: list[tuple[str, _Convert]] | None = None  # (field, decoder), built on first use (types may nest)

    def decode(data: Any) -> Any:
        nonlocal plan
        if plan is None:
            hints = _field_types(cls)
            plan = [(f.name, _decoder(hints[f.name])) for f in dataclasses.fields(cls)]
        return cls(**{name: convert(data[name]) for name, convert in plan if name in data})

    return decode


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def peek(cls: type, raw: bytes, *names: str) -> tuple[Any, ...]:
    """Just the named fields of a `cls` record, decoded, without building the record (for indexes that
    keep a field or two of every record); a missing field raises KeyError."""
    data = orjson.loads(raw)
    target: Any = cls
    hints = _field_types(target)
    return tuple(_decoder(hints[name])(data[name]) for name in names)


@cache
def _field_types(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def loads(cls: type[T], raw: bytes) -> T:
    result: T = from_data(cls, orjson.loads(raw))
    return result
