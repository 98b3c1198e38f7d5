"""Generic conversion between the frozen dataclasses of `plasmavmc.types` and plain JSON data.

One walker over the type hints serves every record, so adding a field never means touching a
serialiser. Used by the store (records are JSON) and by the CLI's `-o json`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def to_data(obj: Any) -> Any:
    """A dataclass tree as JSON-ready dicts, lists, strings and numbers."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_data(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_data(v) for k, v in obj.items()}
    return obj


def from_data(tp: Any, data: Any) -> Any:
    """Rebuild a value of type `tp` from `to_data` output; unknown keys are ignored (forward compatible)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if data is None else from_data(args[0], data)
    if origin is tuple:
        return tuple(from_data(typing.get_args(tp)[0], x) for x in data)
    if origin is list:
        return [from_data(typing.get_args(tp)[0], x) for x in data]
    if origin is dict:
        vt = typing.get_args(tp)[1]
        return {k: from_data(vt, v) for k, v in data.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        kwargs = {f.name: from_data(hints[f.name], data[f.name]) for f in dataclasses.fields(tp) if f.name in data}
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(data)
    if tp is float and isinstance(data, int):
        return float(data)
    return data


def dumps(obj: Any) -> bytes:
    return json.dumps(to_data(obj), separators=(",", ":"), sort_keys=True).encode()


def loads(cls: type[T], raw: bytes) -> T:
    result: T = from_data(cls, json.loads(raw))
    return result
