"""Conversion between domain dataclasses (`plasmavmc.types`) and protobuf messages, generically.

The dataclasses and the messages share field names, so one walker serves every type: enums map by
member name with the proto enum's type prefix (`VmState.RUNNING` <-> `VM_STATE_RUNNING`; `*_UNSPECIFIED`
reads back as the dataclass default), optional and oneof fields map to `None` when unset, tuples to
repeated fields, dicts to maps. A field missing on either side is a programming error and fails loudly.

The walk is planned once per (dataclass, message type) pair and compiled into one function of plain
attribute reads and writes (`_compiled_from`, `_compiled_to`): a VM and its images cross every RunVm
twice each way, and a loop that interprets the plan per field took three times as long.
"""

from __future__ import annotations

import dataclasses
import functools
import keyword
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


@cache
def _numbers(enum_desc: EnumDescriptor) -> dict[str, int]:
    """Wire number by member name (the prefix taken off)."""
    prefix = _prefix(enum_desc)
    return {v.name.removeprefix(prefix): v.number for v in enum_desc.values}


def enum_to_proto(value: Enum, enum_desc: EnumDescriptor) -> int:
    return _numbers(enum_desc)[value.name]


_UNKNOWN = object()


@cache
def _members(enum_cls: type[Enum], enum_desc: EnumDescriptor) -> dict[int, Enum | None]:
    """Member by wire number (None: UNSPECIFIED); numbers whose name `enum_cls` lacks are left out."""
    prefix = _prefix(enum_desc)
    found: dict[int, Enum | None] = {}
    for value in enum_desc.values:
        name = value.name.removeprefix(prefix)
        if name == "UNSPECIFIED":
            found[value.number] = None
        elif name in enum_cls.__members__:
            found[value.number] = enum_cls[name]
    return found


def enum_from_proto(enum_cls: type[E], number: int, enum_desc: EnumDescriptor, field: str = "") -> E | None:
    """The member for wire value `number`; INVALID_ARGUMENT naming `field` for a number this side does
    not know (proto3 enums are open: a peer may send any int32)."""
    member: E | None = _enum_reader(enum_cls, enum_desc, field or enum_desc.name)(number)
    return member


@cache
def _enum_reader(enum_cls: type[Enum], enum_desc: EnumDescriptor, field: str) -> Callable[[int], Any]:
    members = _members(enum_cls, enum_desc)

    def read(number: int) -> Enum | None:
        member = members.get(number, _UNKNOWN)
        if member is _UNKNOWN:
            raise InvalidArgument(field, f"{number} is not a known {enum_desc.name} value")
        return typing.cast("Enum | None", member)

    return read


def _kind(fd: Any) -> str:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        return "map"
    if fd.is_repeated:
        return "repeated message" if fd.message_type is not None else "repeated"
    return "message" if fd.message_type is not None else "scalar"


def _attr(obj: str, name: str) -> str:
    """Source reading attribute `name` of `obj` (a keyword is no attribute name in source)."""
    return f"getattr({obj}, {name!r})" if keyword.iskeyword(name) else f"{obj}.{name}"


def _bound_later(scope: dict[str, Any], name: str, resolve: Callable[[], Callable[..., Any]]) -> None:
    """`name` in `scope`: a function that, at its first call, puts `resolve()` in its place (a nested
    type's compiled converter, found once; compiling it now could recurse into a type being compiled)."""
    def first(*args: Any) -> Any:
        scope[name] = fn = resolve()
        return fn(*args)

    scope[name] = first


def _compile(source: str, name: str, scope: dict[str, Any]) -> Callable[..., Any]:
    exec(compile(source, f"<plasmavmc.wire.convert {name}>", "exec"), scope)  # our own plan's source
    fn: Callable[..., Any] = scope[name]
    return fn


@cache
def _compiled_to(cls: Any, desc: Any) -> Callable[[Any, Any], None]:
    """`to_proto` for dataclass `cls` and message type `desc`: every field of `cls`, by kind."""
    hints = typing.get_type_hints(cls)
    scope: dict[str, Any] = {"Enum": Enum}
    lines = ["def fill(obj, msg):"]
    for n, f in enumerate(dataclasses.fields(cls)):
        fd = desc.fields_by_name[f.name]
        kind, value, target = _kind(fd), f"v{n}", _attr("msg", f.name)
        lines += [f"    {value} = {_attr('obj', f.name)}", f"    if {value} is not None:"]
        if fd.enum_type is not None:
            scope[f"num{n}"] = _numbers(fd.enum_type)
            wire = f"(num{n}[{{x}}.name] if isinstance({{x}}, Enum) else {{x}})"
        else:
            wire = "{x}"
        if kind == "scalar":
            setter = f"setattr(msg, {f.name!r}, " if keyword.iskeyword(f.name) else f"{target} = ("
            lines.append(f"        {setter}{wire.format(x=value)})")
        elif kind == "message":
            _nested_to(scope, n, hints[f.name], fd)
            lines += [f"        fill{n}({value}, {target})", f"        {target}.SetInParent()"]
        elif kind == "map":
            lines.append(f"        {target}.update({value})")
        elif kind == "repeated message":
            _nested_to(scope, n, hints[f.name], fd)
            lines += [f"        t{n} = {target}", f"        for x in {value}:", f"            fill{n}(x, t{n}.add())"]
        else:
            lines.append(f"        {target}.extend([{wire.format(x='x')} for x in {value}])")
    lines.append("    return None")
    return _compile("\n".join(lines) + "\n", "fill", scope)


def _nested_to(scope: dict[str, Any], n: int, hint: Any, fd: Any) -> None:
    """`fill<n>` in `scope`: the compiled `to_proto` of the dataclass a field declares (`hint`)."""
    tp, _ = _unwrap_optional(hint)
    if typing.get_origin(tp) is tuple:
        (tp,) = typing.get_args(tp)[:1]
    _bound_later(scope, f"fill{n}", functools.partial(_compiled_to, tp, fd.message_type))


def to_proto(obj: Any, msg: M) -> M:
    """Fill `msg` (a fresh message) from the dataclass `obj`; returns `msg`."""
    cls: Any = type(obj)
    _compiled_to(cls, msg.DESCRIPTOR)(obj, msg)
    return msg


@cache
def _compiled_from(cls: Any, desc: Any) -> Callable[[Any], Any]:
    """`from_proto` for dataclass `cls` and message type `desc`: unset optional fields None, unset
    others their default; a field without a default left unset is the sender's error."""
    hints = typing.get_type_hints(cls)
    scope: dict[str, Any] = {"cls": cls, "InvalidArgument": InvalidArgument, "desc_name": desc.name}
    lines = ["def build(msg):", "    kw = {}"]
    for n, f in enumerate(dataclasses.fields(cls)):
        fd = desc.fields_by_name[f.name]
        kind, raw = _kind(fd), _attr("msg", f.name)
        tp, optional = _unwrap_optional(hints[f.name])
        if kind in ("repeated", "repeated message"):
            (tp,) = typing.get_args(tp)[:1]
        if fd.message_type is not None:
            _bound_later(scope, f"build{n}", functools.partial(_compiled_from, tp, fd.message_type))
            read = f"build{n}({{x}})"
        elif fd.enum_type is not None:
            scope[f"enum{n}"] = _enum_reader(tp, fd.enum_type, fd.name)
            read = f"enum{n}({{x}})"
        else:
            read = "{x}"
        indent = "    "
        if fd.has_presence:
            lines.append(f"    if msg.HasField({f.name!r}):")
            indent = "        "
        if kind == "map":
            lines.append(f"{indent}kw[{f.name!r}] = dict({raw})")
        elif kind in ("repeated", "repeated message"):
            items = f"tuple({raw})" if read == "{x}" else f"tuple([{read.format(x='x')} for x in {raw}])"
            lines.append(f"{indent}kw[{f.name!r}] = {items}")
        elif read == "{x}" or optional:
            lines.append(f"{indent}kw[{f.name!r}] = {read.format(x=raw)}")
        else:  # a read that may give None (UNSPECIFIED): the default then
            lines += [f"{indent}v{n} = {read.format(x=raw)}", f"{indent}if v{n} is not None:",
                      f"{indent}    kw[{f.name!r}] = v{n}"]
        if fd.has_presence and optional:
            lines += ["    else:", f"        kw[{f.name!r}] = None"]
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    for name in required:  # a field without a default left unset (an UNSPECIFIED enum): the sender's error
        lines += [f"    if {name!r} not in kw:",
                  f"        raise InvalidArgument({name!r}, 'required in ' + desc_name)"]
    lines.append("    return cls(**kw)")
    return _compile("\n".join(lines) + "\n", "build", scope)


def from_proto(cls: type[T], msg: Message) -> T:
    """Build the dataclass `cls` from `msg`; unset optional fields become None or the default."""
    target: Any = cls
    built: T = _compiled_from(target, msg.DESCRIPTOR)(msg)
    return built
