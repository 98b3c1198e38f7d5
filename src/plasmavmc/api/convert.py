"""Conversion between domain dataclasses (`plasmavmc.types`) and protobuf messages, generically.

The dataclasses and the messages share field names, so one walker serves every type: enums map by
member name with the proto enum's type prefix (`VmState.RUNNING` <-> `VM_STATE_RUNNING`; `*_UNSPECIFIED`
reads back as the dataclass default), optional and oneof fields map to `None` when unset, tuples to
repeated fields, dicts to maps. A field missing on either side is a programming error and fails loudly.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, TypeVar

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message

T = TypeVar("T")
E = TypeVar("E", bound=Enum)
M = TypeVar("M", bound=Message)


@cache
def _prefix(enum_desc: EnumDescriptor) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum_desc.name).upper() + "_"


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def enum_to_proto(value: Enum, enum_desc: EnumDescriptor) -> int:
    number: int = enum_desc.values_by_name[_prefix(enum_desc) + value.name].number
    return number


def enum_from_proto(enum_cls: type[E], number: int, enum_desc: EnumDescriptor) -> E | None:
    name = enum_desc.values_by_number[number].name.removeprefix(_prefix(enum_desc))
    return None if name == "UNSPECIFIED" else enum_cls[name]


def _set_scalar(fd: Any, value: Any) -> Any:
    if fd.enum_type is not None and isinstance(value, Enum):
        return enum_to_proto(value, fd.enum_type)
    return value


class _Kind(Enum):
    MAP = "map"
    REPEATED_MESSAGE = "repeated message"
    REPEATED = "repeated scalar"
    MESSAGE = "message"
    SCALAR = "scalar"


def _kind(fd: Any) -> _Kind:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        return _Kind.MAP
    if fd.is_repeated:
        return _Kind.REPEATED_MESSAGE if fd.message_type is not None else _Kind.REPEATED
    return _Kind.MESSAGE if fd.message_type is not None else _Kind.SCALAR


@cache
def _fields(cls: Any, desc: Any) -> tuple[tuple[str, Any, _Kind], ...]:
    """Each field of the dataclass `cls` with its descriptor in `desc` and its kind (walked once)."""
    return tuple(
        (f.name, desc.fields_by_name[f.name], _kind(desc.fields_by_name[f.name])) for f in dataclasses.fields(cls)
    )


def to_proto(obj: Any, msg: M) -> M:
    """Fill `msg` (a fresh message) from the dataclass `obj`; returns `msg`."""
    cls: Any = type(obj)
    for name, fd, kind in _fields(cls, msg.DESCRIPTOR):
        value = getattr(obj, name)
        if value is None:
            continue
        if kind is _Kind.MAP:
            getattr(msg, name).update(value)
        elif kind is _Kind.REPEATED_MESSAGE:
            target = getattr(msg, name)
            for item in value:
                to_proto(item, target.add())
        elif kind is _Kind.REPEATED:
            getattr(msg, name).extend(_set_scalar(fd, item) for item in value)
        elif kind is _Kind.MESSAGE:
            to_proto(value, getattr(msg, name))
            getattr(msg, name).SetInParent()
        else:
            setattr(msg, name, _set_scalar(fd, value))
    return msg


def _from_value(tp: Any, fd: Any, raw: Any) -> Any:
    if fd.message_type is not None:
        return from_proto(tp, raw)
    if fd.enum_type is not None:
        return enum_from_proto(tp, raw, fd.enum_type)
    return raw


@cache
def _reading(cls: Any, desc: Any) -> tuple[tuple[str, Any, _Kind, Any, bool], ...]:
    """`_fields` with each field's value type (element type when repeated) and whether it is optional."""
    hints = typing.get_type_hints(cls)
    plan = []
    for name, fd, kind in _fields(cls, desc):
        tp, optional = _unwrap_optional(hints[name])
        if kind in (_Kind.REPEATED, _Kind.REPEATED_MESSAGE):
            (tp,) = typing.get_args(tp)[:1]
        plan.append((name, fd, kind, tp, optional))
    return tuple(plan)


def from_proto(cls: type[T], msg: Message) -> T:
    """Build the dataclass `cls` from `msg`; unset optional fields become None or the default."""
    kwargs: dict[str, Any] = {}
    target: Any = cls
    for name, fd, kind, tp, optional in _reading(target, msg.DESCRIPTOR):
        raw = getattr(msg, name)
        if kind is _Kind.MAP:
            kwargs[name] = dict(raw)
        elif kind in (_Kind.REPEATED, _Kind.REPEATED_MESSAGE):
            kwargs[name] = tuple(_from_value(tp, fd, x) for x in raw)
        elif fd.has_presence and not msg.HasField(name):
            if optional:
                kwargs[name] = None
        else:
            value = _from_value(tp, fd, raw)
            if value is not None or optional:
                kwargs[name] = value
    return cls(**kwargs)
