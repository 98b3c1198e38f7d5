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
from collections.abc import Callable
from enum import Enum
from functools import cache
from typing import Any, TypeVar

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message

from plasmavmc.errors import InvalidArgument

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


def enum_from_proto(enum_cls: type[E], number: int, enum_desc: EnumDescriptor, field: str = "") -> E | None:
    """The member for wire value `number`; INVALID_ARGUMENT naming `field` for a number this side does
    not know (proto3 enums are open: a peer may send any int32)."""
    try:
        name = enum_desc.values_by_number[number].name.removeprefix(_prefix(enum_desc))
        return None if name == "UNSPECIFIED" else enum_cls[name]
    except KeyError:
        raise InvalidArgument(field or enum_desc.name, f"{number} is not a known {enum_desc.name} value") from None


def _to_scalar(enum_desc: EnumDescriptor | None, value: Any) -> Any:
    if enum_desc is not None and isinstance(value, Enum):
        return enum_to_proto(value, enum_desc)
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
def _fields(cls: Any, desc: Any) -> tuple[tuple[str, _Kind, EnumDescriptor | None], ...]:
    """Each field of the dataclass `cls` with its kind in `desc` and its proto enum, if it is one
    (descriptors are walked once per pair, not per message)."""
    plan = []
    for f in dataclasses.fields(cls):
        fd = desc.fields_by_name[f.name]
        plan.append((f.name, _kind(fd), fd.enum_type))
    return tuple(plan)


def to_proto(obj: Any, msg: M) -> M:
    """Fill `msg` (a fresh message) from the dataclass `obj`; returns `msg`."""
    cls: Any = type(obj)
    for name, kind, enum_desc in _fields(cls, msg.DESCRIPTOR):
        value = getattr(obj, name)
        if value is None:
            continue
        if kind is _Kind.SCALAR:
            setattr(msg, name, _to_scalar(enum_desc, value))
        elif kind is _Kind.MESSAGE:
            to_proto(value, getattr(msg, name))
            getattr(msg, name).SetInParent()
        elif kind is _Kind.MAP:
            getattr(msg, name).update(value)
        elif kind is _Kind.REPEATED_MESSAGE:
            target = getattr(msg, name)
            for item in value:
                to_proto(item, target.add())
        else:
            getattr(msg, name).extend(_to_scalar(enum_desc, item) for item in value)
    return msg


def _reader(tp: Any, fd: Any) -> Callable[[Any], Any] | None:
    """How to turn one wire value of field `fd` into a `tp` (None: as it is)."""
    if fd.message_type is not None:
        return lambda raw: from_proto(tp, raw)
    if fd.enum_type is not None:
        enum_desc = fd.enum_type
        return lambda raw: enum_from_proto(tp, raw, enum_desc, fd.name)
    return None


@cache
def _reading(cls: Any, desc: Any) -> tuple[tuple[str, _Kind, Callable[[Any], Any] | None, bool, bool], ...]:
    """Per field: its kind, how to read one value, whether the message tracks its presence, and
    whether the dataclass field is optional."""
    hints = typing.get_type_hints(cls)
    plan = []
    for name, kind, _ in _fields(cls, desc):
        fd = desc.fields_by_name[name]
        tp, optional = _unwrap_optional(hints[name])
        if kind in (_Kind.REPEATED, _Kind.REPEATED_MESSAGE):
            (tp,) = typing.get_args(tp)[:1]
        plan.append((name, kind, _reader(tp, fd), bool(fd.has_presence), optional))
    return tuple(plan)


def from_proto(cls: type[T], msg: Message) -> T:
    """Build the dataclass `cls` from `msg`; unset optional fields become None or the default."""
    kwargs: dict[str, Any] = {}
    target: Any = cls
    for name, kind, read, tracked, optional in _reading(target, msg.DESCRIPTOR):
        if tracked and not msg.HasField(name):
            if optional:
                kwargs[name] = None
            continue
        raw = getattr(msg, name)
        if kind is _Kind.MAP:
            kwargs[name] = dict(raw)
        elif kind is _Kind.REPEATED or kind is _Kind.REPEATED_MESSAGE:
            kwargs[name] = tuple(raw) if read is None else tuple(read(x) for x in raw)
        else:
            value = raw if read is None else read(raw)
            if value is not None or optional:
                kwargs[name] = value
    missing = [n for n in _required(target) if n not in kwargs]
    if missing:  # a field without a default left unset (an UNSPECIFIED enum): the sender's error
        raise InvalidArgument(missing[0], f"required in {msg.DESCRIPTOR.name}")
    return cls(**kwargs)


@cache
def _required(cls: Any) -> tuple[str, ...]:
    """The fields of dataclass `cls` that have no default."""
    return tuple(f.name for f in dataclasses.fields(cls)
                 if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
