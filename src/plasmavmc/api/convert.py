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


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


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


def _set_scalar(msg: Message, fd: Any, value: Any) -> Any:
    if fd.enum_type is not None and isinstance(value, Enum):
        return enum_to_proto(value, fd.enum_type)
    return value


def to_proto(obj: Any, msg: M) -> M:
    """Fill `msg` (a fresh message) from the dataclass `obj`; returns `msg`."""
    desc = msg.DESCRIPTOR
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        fd = desc.fields_by_name[f.name]
        if value is None:
            continue
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            getattr(msg, f.name).update({k: v for k, v in value.items()})
        elif fd.is_repeated:
            target = getattr(msg, f.name)
            for item in value:
                if fd.message_type is not None:
                    to_proto(item, target.add())
                else:
                    target.append(_set_scalar(msg, fd, item))
        elif fd.message_type is not None:
            to_proto(value, getattr(msg, f.name))
            getattr(msg, f.name).SetInParent()
        else:
            setattr(msg, f.name, _set_scalar(msg, fd, value))
    return msg


def _from_value(tp: Any, fd: Any, raw: Any) -> Any:
    if fd.message_type is not None:
        return from_proto(tp, raw)
    if fd.enum_type is not None:
        return enum_from_proto(tp, raw, fd.enum_type)
    return raw


def from_proto(cls: type[T], msg: Message) -> T:
    """Build the dataclass `cls` from `msg`; unset optional fields become None or the default."""
    hints = _hints(cls)  # type: ignore[arg-type]
    desc = msg.DESCRIPTOR
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        fd = desc.fields_by_name[f.name]
        tp, optional = _unwrap_optional(hints[f.name])
        raw = getattr(msg, f.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            kwargs[f.name] = dict(raw)
        elif fd.is_repeated:
            (elem_tp,) = typing.get_args(tp)[:1]
            kwargs[f.name] = tuple(_from_value(elem_tp, fd, x) for x in raw)
        elif fd.has_presence and not msg.HasField(f.name):
            if optional:
                kwargs[f.name] = None
        else:
            value = _from_value(tp, fd, raw)
            if value is not None or optional:
                kwargs[f.name] = value
    return cls(**kwargs)
